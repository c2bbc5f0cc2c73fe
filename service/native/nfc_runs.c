/* nfc_runs(text, classes, quiet_below=0, combining=b""): where NFC may change `text`, as a list of
 * (start, end, replaced) code point offsets.
 *
 * The scan behind tokend/engine/nfc.py (which explains the rule): `classes` has a byte per code point
 * (code points past its end are class 0), built there from the running interpreter's unicodedata:
 *   0  a starter whose NFC quick check is Yes, without a canonical decomposition
 *   1  a mark (combining class > 0) whose quick check is Yes
 *   2  quick check No or Maybe
 *   3  a starter whose quick check is Yes, with a canonical decomposition
 *   4  quick check No, replaced by a fixed string that starts with a class 0 (U+1D160: three characters)
 * A run is a maximal stretch of classes 1, 2 and 4; it may change when it holds a class 2 or 4, follows a
 * class 3, or has two marks out of canonical order (`combining`: a byte per code point, its combining class;
 * without it, any two marks). Each such run is reported with the character before it; `replaced` when it is
 * all class 4 (then its NFC is each character's replacement: nothing composes or reorders across a class 0
 * of quick check Yes, which begins each replacement and follows the run). `quiet_below`: the
 * caller's promise that no code point below it is of class 1 or 2 (nfc.py takes it from the table), so those
 * are passed with one compare each (a wrong one gives wrong runs, never a bad read). One pass, a table read
 * per character from quiet_below on: `re` with these classes (thousands of ranges) scanned at 20-150 ms per
 * MB, more than unicodedata's whole normalization of the same text. */
#include "nfc_runs.h"

#include <stdint.h>

static inline int class_of(const uint8_t *table, Py_ssize_t size, Py_UCS4 c) { return c < (Py_UCS4)size ? table[c] : 0; }

/* A mark's combining class; 255 (above every class) when `combining` does not say: then no two marks are taken
 * to be in order. */
static inline int combining_of(const uint8_t *combining, Py_ssize_t size, Py_UCS4 c) {
    return c < (Py_UCS4)size ? combining[c] : 255;
}

/* Adds the run [start, end) to `runs` with the character before it: 0, or -1 with an exception. */
static int add_run(PyObject *runs, Py_ssize_t start, Py_ssize_t end, int replaced) {
    PyObject *run = Py_BuildValue("(nnO)", start ? start - 1 : 0, end, replaced ? Py_True : Py_False);
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
                        const uint8_t *combining, Py_ssize_t combining_size, PyObject *runs) {                  \
        for (Py_ssize_t i = 0; i < n;) {                                                                         \
            int cls = 0;                                                                                         \
            for (; i < n; i++) {                                                                                 \
                if (text[i] < quiet_below) continue;                                                             \
                cls = class_of(table, size, text[i]);                                                            \
                if (cls == 1 || cls == 2 || cls == 4) break;                                                     \
            }                                                                                                    \
            if (i >= n) break;                                                                                   \
            Py_ssize_t start = i;                                                                                \
            int may_change = cls == 2 || cls == 4 || (i > 0 && class_of(table, size, text[i - 1]) == 3);         \
            int all_replaced = cls == 4, last_mark = 0; /* the combining class of the mark before (1: none yet) */ \
            for (; i < n; i++) {                                                                                 \
                cls = class_of(table, size, text[i]);                                                            \
                if (cls != 1 && cls != 2 && cls != 4) break;                                                     \
                may_change |= cls != 1;                                                                          \
                all_replaced &= cls == 4;                                                                        \
                if (cls == 1) {                                                                                  \
                    int mark = combining_of(combining, combining_size, text[i]);                                 \
                    may_change |= mark < last_mark || (mark == 255 && last_mark);                               \
                    last_mark = mark;                                                                            \
                }                                                                                                \
            }                                                                                                    \
            if (may_change && add_run(runs, start, i, all_replaced) < 0) return -1;                              \
        }                                                                                                        \
        return 0;                                                                                                \
    }
TK_NFC_SCAN(Py_UCS1)
TK_NFC_SCAN(Py_UCS2)
TK_NFC_SCAN(Py_UCS4)

static PyObject *nfc_runs(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *text;
    Py_buffer classes, combining = {0};
    unsigned int quiet_below = 0;
    if (!PyArg_ParseTuple(args, "Uy*|Iy*", &text, &classes, &quiet_below, &combining)) return NULL;
    PyObject *runs = PyList_New(0);
    if (!runs) {
        PyBuffer_Release(&classes);
        if (combining.obj) PyBuffer_Release(&combining);
        return NULL;
    }
    const uint8_t *table = classes.buf;
    Py_ssize_t size = classes.len;
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text), status;
    const uint8_t *marks = combining.obj ? combining.buf : NULL;
    Py_ssize_t marks_size = combining.obj ? combining.len : 0;
    if (kind == PyUnicode_1BYTE_KIND)
        status = scan_Py_UCS1(data, n, table, size, quiet_below, marks, marks_size, runs);
    else if (kind == PyUnicode_2BYTE_KIND)
        status = scan_Py_UCS2(data, n, table, size, quiet_below, marks, marks_size, runs);
    else
        status = scan_Py_UCS4(data, n, table, size, quiet_below, marks, marks_size, runs);
    PyBuffer_Release(&classes);
    if (combining.obj) PyBuffer_Release(&combining);
    if (status < 0) {
        Py_DECREF(runs);
        return NULL;
    }
    return runs;
}

static PyMethodDef nfc_functions[] = {
    {"nfc_runs", nfc_runs, METH_VARARGS,
     "nfc_runs(text, classes, quiet_below=0, combining=b'') -> [(start, end, replaced)] where NFC may change text"},
    {NULL, NULL, 0, NULL},
};

int tk_nfc_runs_add(PyObject *module) { return PyModule_AddFunctions(module, nfc_functions); }
