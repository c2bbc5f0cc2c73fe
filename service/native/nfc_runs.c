/* nfc_runs(text, classes, quiet_below=0): where NFC may change `text`, as a list of (start, end) code point
 * offsets.
 *
 * The scan behind tokend/engine/nfc.py (which explains the rule): `classes` has a byte per code point
 * (code points past its end are class 0), built there from the running interpreter's unicodedata:
 *   0  a starter whose NFC quick check is Yes, without a canonical decomposition
 *   1  a mark (combining class > 0) whose quick check is Yes
 *   2  quick check No or Maybe
 *   3  a starter whose quick check is Yes, with a canonical decomposition
 * A run is a maximal stretch of classes 1 and 2; it may change when it holds a class 2, is two or more
 * long, or follows a class 3. Each such run is reported with the character before it. `quiet_below`: the
 * caller's promise that no code point below it is of class 1 or 2 (nfc.py takes it from the table), so those
 * are passed with one compare each (a wrong one gives wrong runs, never a bad read). One pass, a table read
 * per character from quiet_below on: `re` with these classes (thousands of ranges) scanned at 20-150 ms per
 * MB, more than unicodedata's whole normalization of the same text. */
#include "nfc_runs.h"

#include <stdint.h>

static inline int class_of(const uint8_t *table, Py_ssize_t size, Py_UCS4 c) { return c < (Py_UCS4)size ? table[c] : 0; }

/* Adds the run [start, end) to `runs` with the character before it: 0, or -1 with an exception. */
static int add_run(PyObject *runs, Py_ssize_t start, Py_ssize_t end) {
    PyObject *run = Py_BuildValue("(nn)", start ? start - 1 : 0, end);
    if (!run) return -1;
    int status = PyList_Append(runs, run);
    Py_DECREF(run);
    return status;
}

/* The scan for one of CPython's kinds of str (T: its character type), without a branch on the kind per
 * character. Characters below `quiet_below` are classes 0 and 3 (no mark, quick check Yes): they only end a
 * run or come before one, so they are passed with one compare; the table is read for the others, and for the
 * character before a run. 0, or -1 with an exception. */
#define TK_NFC_SCAN(T)                                                                                           \
    static int scan_##T(const T *text, Py_ssize_t n, const uint8_t *table, Py_ssize_t size, Py_UCS4 quiet_below, \
                        PyObject *runs) {                                                                        \
        for (Py_ssize_t i = 0; i < n;) {                                                                         \
            int cls = 0;                                                                                         \
            for (; i < n; i++) {                                                                                 \
                if (text[i] < quiet_below) continue;                                                             \
                cls = class_of(table, size, text[i]);                                                            \
                if (cls == 1 || cls == 2) break;                                                                 \
            }                                                                                                    \
            if (i >= n) break;                                                                                   \
            Py_ssize_t start = i;                                                                                \
            int may_change = cls == 2 || (i > 0 && class_of(table, size, text[i - 1]) == 3);                     \
            for (i++; i < n; i++) {                                                                              \
                cls = class_of(table, size, text[i]);                                                            \
                if (cls != 1 && cls != 2) break;                                                                 \
                may_change |= cls == 2;                                                                          \
            }                                                                                                    \
            may_change |= i - start >= 2;                                                                        \
            if (may_change && add_run(runs, start, i) < 0) return -1;                                            \
        }                                                                                                        \
        return 0;                                                                                                \
    }
TK_NFC_SCAN(Py_UCS1)
TK_NFC_SCAN(Py_UCS2)
TK_NFC_SCAN(Py_UCS4)

static PyObject *nfc_runs(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *text;
    Py_buffer classes;
    unsigned int quiet_below = 0;
    if (!PyArg_ParseTuple(args, "Uy*|I", &text, &classes, &quiet_below)) return NULL;
    PyObject *runs = PyList_New(0);
    if (!runs) {
        PyBuffer_Release(&classes);
        return NULL;
    }
    const uint8_t *table = classes.buf;
    Py_ssize_t size = classes.len;
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text), status;
    if (kind == PyUnicode_1BYTE_KIND)
        status = scan_Py_UCS1(data, n, table, size, quiet_below, runs);
    else if (kind == PyUnicode_2BYTE_KIND)
        status = scan_Py_UCS2(data, n, table, size, quiet_below, runs);
    else
        status = scan_Py_UCS4(data, n, table, size, quiet_below, runs);
    PyBuffer_Release(&classes);
    if (status < 0) {
        Py_DECREF(runs);
        return NULL;
    }
    return runs;
}

static PyMethodDef nfc_functions[] = {
    {"nfc_runs", nfc_runs, METH_VARARGS,
     "nfc_runs(text, classes, quiet_below=0) -> [(start, end)] where NFC may change text"},
    {NULL, NULL, 0, NULL},
};

int tk_nfc_runs_add(PyObject *module) { return PyModule_AddFunctions(module, nfc_functions); }
