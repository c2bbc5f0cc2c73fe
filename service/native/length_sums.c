/* summed_lengths(lengths, ids): the bytes that decoding a buffer of native uint32 token ids gives, summed from
 * a table of token lengths with the GIL released.
 *
 *   summed_lengths(array("I", [0, 3, 5]), memoryview(array("I", [1, 2, 2, 7])))   -> 13 (id 7: not in the table, 0)
 *   summed_lengths(table, [1, 2])                                                -> TypeError (a list: summed in Python)
 *
 * Why: the service sizes a Decode answer before building it (tokend.service.token_sizes.decoded_bytes). In
 * Python the exact sum is ~30-60 ns per id, a slice at a time under the GIL: 0.1-0.4 s of the worker's CPU for
 * the 2,097,152 ids of the decode-amplification request, each slice a GIL hold that grows whenever the machine
 * is busy. A large Decode request's ids arrive as a uint32 buffer (tokend.server.decode_request): here they
 * are summed in one pass, ~1 ns per id, no Python int made, no GIL. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "length_sums.h"

static int uint32_view(PyObject *arg, Py_buffer *view, const char *name) {
    if (PyObject_GetBuffer(arg, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) return -1;
    const char *format = view->format ? view->format : "B";
    if (view->itemsize != 4 || strcmp(format, "I") != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "summed_lengths needs %s as a contiguous buffer of native uint32 (format 'I')", name);
        return -1;
    }
    return 0;
}

static PyObject *summed_lengths(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "summed_lengths(lengths, ids) takes 2 arguments, got %zd", nargs);
    Py_buffer table, ids;
    if (uint32_view(args[0], &table, "lengths") < 0) return NULL;
    if (uint32_view(args[1], &ids, "ids") < 0) {
        PyBuffer_Release(&table);
        return NULL;
    }
    /* Exported buffers cannot be resized meanwhile (array and bytearray refuse while a view is held). */
    const uint32_t *lengths = table.buf, *id = ids.buf;
    size_t size = (size_t)table.len / 4, n = (size_t)ids.len / 4;
    unsigned long long total = 0;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < n; i++)
        total += id[i] < size ? lengths[id[i]] : 0;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&ids);
    PyBuffer_Release(&table);
    return PyLong_FromUnsignedLongLong(total);
}

static PyMethodDef length_sum_functions[] = {
    {"summed_lengths", (PyCFunction)(void (*)(void))summed_lengths, METH_FASTCALL,
     "summed_lengths(lengths, ids) -> sum of lengths[id] over a native uint32 buffer of ids (0 past the table; "
     "the GIL released)"},
    {NULL, NULL, 0, NULL},
};

int tk_length_sums_add(PyObject *module) { return PyModule_AddFunctions(module, length_sum_functions); }
