/* nfc_runs(text, classes): where NFC may change `text`, as a list of (start, end) code point offsets.
 *
 * The scan behind tokend/engine/nfc.py (which explains the rule): `classes` has a byte per code point
 * (code points past its end are class 0), built there from the running interpreter's unicodedata:
 *   0  a starter whose NFC quick check is Yes, without a canonical decomposition
 *   1  a mark (combining class > 0) whose quick check is Yes
 *   2  quick check No or Maybe
 *   3  a starter whose quick check is Yes, with a canonical decomposition
 * A run is a maximal stretch of classes 1 and 2; it may change when it holds a class 2, is two or more
 * long, or follows a class 3. Each such run is reported with the character before it. One pass, one table
 * read per character: `re` with these classes (thousands of ranges) scanned at 20-150 ms per MB, more than
 * unicodedata's whole normalization of the same text. */
#include "nfc_runs.h"

#include <stdint.h>

static inline int class_of(const uint8_t *table, Py_ssize_t size, Py_UCS4 c) { return c < (Py_UCS4)size ? table[c] : 0; }

static PyObject *nfc_runs(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *text;
    Py_buffer classes;
    if (!PyArg_ParseTuple(args, "Uy*", &text, &classes)) return NULL;
    PyObject *runs = PyList_New(0);
    if (!runs) {
        PyBuffer_Release(&classes);
        return NULL;
    }
    const uint8_t *table = classes.buf;
    Py_ssize_t size = classes.len;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int before = 0; /* class of the character before position i */
    for (Py_ssize_t i = 0; i < n;) {
        int cls = class_of(table, size, PyUnicode_READ(kind, data, i));
        if (cls != 1 && cls != 2) {
            before = cls;
            i++;
            continue;
        }
        Py_ssize_t start = i;
        int may_change = cls == 2 || before == 3;
        for (i++; i < n; i++) {
            cls = class_of(table, size, PyUnicode_READ(kind, data, i));
            if (cls != 1 && cls != 2) break;
            may_change |= cls == 2;
        }
        may_change |= i - start >= 2;
        if (may_change) {
            PyObject *run = Py_BuildValue("(nn)", start ? start - 1 : 0, i);
            if (!run || PyList_Append(runs, run) < 0) {
                Py_XDECREF(run);
                Py_DECREF(runs);
                PyBuffer_Release(&classes);
                return NULL;
            }
            Py_DECREF(run);
        }
    }
    PyBuffer_Release(&classes);
    return runs;
}

static PyMethodDef nfc_functions[] = {
    {"nfc_runs", nfc_runs, METH_VARARGS, "nfc_runs(text, classes) -> [(start, end)] where NFC may change text"},
    {NULL, NULL, 0, NULL},
};

int tk_nfc_runs_add(PyObject *module) { return PyModule_AddFunctions(module, nfc_functions); }
