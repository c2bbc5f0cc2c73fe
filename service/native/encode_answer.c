/* tokend.server._encode_answer: the bytes of a tokend.v1.EncodeResponse, written straight from the ids'
 * buffers with the GIL released.
 *
 * Why: protobuf's SerializeToString of an answer of millions of ids is one C call that holds the GIL for
 * tens of milliseconds (and filling the message's repeated fields first takes as long again), while every
 * other call of the worker waits. Here the GIL is held only to look at the arguments and to allocate the
 * result; measuring and writing the varints run without it.
 *
 *   encode_response(model_name: bytes, version: int, total_tokens: int, results: list) -> bytes
 *
 * Each item of `results` is one input's ids: a buffer of native uint32 (memoryview.cast("I"), array("I"))
 * or a list of ints (converted under the GIL, handing it over to a waiting thread every switch interval and a
 * quarter). The bytes are what protobuf
 * writes for EncodeResponse(model=ModelVersion(name, version), results=[TokenIds(ids=...)], total_tokens)
 * (fields in number order, packed ids, defaults left out, an empty TokenIds as a zero-length message):
 * tests/server/test_encode_answer.py compares them with SerializeToString for random answers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "gil_hand_off.h"
#include "varint.h"

/* Below this many ids in all, releasing the GIL costs more than the work. */
#define RELEASE_GIL_IDS 16384
/* A list being converted looks whether to hand the GIL over (gil_hand_off.h) this often (~0.2 ms). */
#define CHECK_IDS 65536

typedef struct {
    const uint32_t *ids;
    size_t n;
    size_t payload; /* bytes of the packed varints */
    Py_buffer view; /* when the ids came from a buffer */
    int has_view;
    uint32_t *owned; /* when they came from a list */
} Result;

static inline size_t varint_size(uint64_t value) {
    size_t size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}

static inline uint8_t *put_varint(uint8_t *out, uint64_t value) {
    while (value >= 0x80) {
        *out++ = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    *out++ = (uint8_t)value;
    return out;
}


/* TokenIds message bytes: the packed field (tag 1, wire type 2) when there are ids, else nothing. */
static size_t token_ids_size(const Result *r) { return r->n ? 1 + varint_size(r->payload) + r->payload : 0; }

/* `unchecked` counts the ids converted since the last look at the clock, across the call's lists. */
static int from_list(PyObject *list, Result *r, TkGilHandOff *hand_off, size_t *unchecked) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    r->owned = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *r->owned);
    if (!r->owned) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (++*unchecked == CHECK_IDS) {
            *unchecked = 0;
            if (tk_gil_hand_off(hand_off) && PyList_GET_SIZE(list) != n) {
                PyErr_SetString(PyExc_RuntimeError, "an id list changed while it was written");
                return -1;
            }
        }
        unsigned long value = PyLong_AsUnsignedLong(PyList_GET_ITEM(list, i));
        if (value == (unsigned long)-1 && PyErr_Occurred()) return -1;
        if (value > UINT32_MAX) {
            PyErr_Format(PyExc_OverflowError, "token id %lu does not fit uint32", value);
            return -1;
        }
        r->owned[i] = (uint32_t)value;
    }
    r->ids = r->owned;
    r->n = (size_t)n;
    return 0;
}

static int from_buffer(PyObject *object, Result *r) {
    if (PyObject_GetBuffer(object, &r->view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) return -1;
    r->has_view = 1;
    const char *format = r->view.format ? r->view.format : "B";
    if (format[0] == '@' || format[0] == '=') format++;
    if (r->view.itemsize != 4 || strcmp(format, "I") != 0) {
        PyErr_Format(PyExc_TypeError, "ids must be native uint32 (format 'I'), got format %s", r->view.format);
        return -1;
    }
    r->ids = r->view.buf;
    r->n = (size_t)(r->view.len / 4);
    return 0;
}

static void release(Result *results, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        if (results[i].has_view) PyBuffer_Release(&results[i].view);
        PyMem_Free(results[i].owned);
    }
    PyMem_Free(results);
}

static PyObject *encode_response(PyObject *module, PyObject *args) {
    const char *name;
    Py_ssize_t name_len;
    unsigned long long version, total;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "y#KKO!:encode_response", &name, &name_len, &version, &total, &PyList_Type, &items))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(items);
    Result *results = PyMem_Calloc((size_t)(count ? count : 1), sizeof *results);
    if (!results) return PyErr_NoMemory();
    size_t all_ids = 0;
    TkGilHandOff hand_off = {0, 0}; /* across the lists: many of 60,000 ids hold the GIL as long as one */
    size_t unchecked = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        Py_INCREF(item); /* a list yields the GIL while it is converted */
        int status = PyList_Check(item) ? from_list(item, &results[i], &hand_off, &unchecked) : from_buffer(item, &results[i]);
        Py_DECREF(item);
        if (status < 0) {
            release(results, count);
            return NULL;
        }
        if (PyList_GET_SIZE(items) != count) {
            release(results, count);
            PyErr_SetString(PyExc_RuntimeError, "the results list changed while it was written");
            return NULL;
        }
        all_ids += results[i].n;
    }
    /* Sizes. */
    size_t model = (name_len ? 1 + varint_size((uint64_t)name_len) + (size_t)name_len : 0) + (version ? 1 + varint_size(version) : 0);
    size_t size = 1 + varint_size(model) + model + (total ? 1 + varint_size(total) : 0);
    int release_gil = all_ids >= RELEASE_GIL_IDS;
    PyThreadState *state = release_gil ? PyEval_SaveThread() : NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        results[i].payload = tk_packed_varint_size(results[i].ids, results[i].n);
        size_t message = token_ids_size(&results[i]);
        size += 1 + varint_size(message) + message;
    }
    if (state) PyEval_RestoreThread(state);
    if (size > PY_SSIZE_T_MAX) {
        release(results, count);
        return PyErr_NoMemory();
    }
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!bytes) {
        release(results, count);
        return NULL;
    }
    /* Writing: the bytes object is not shared yet, the buffers are held (their exporters cannot resize
     * them) and the lists were copied, so nothing here needs the GIL. */
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(bytes);
    state = release_gil ? PyEval_SaveThread() : NULL;
    *out++ = 0x0A; /* model = 1, length-delimited */
    out = put_varint(out, model);
    if (name_len) {
        *out++ = 0x0A; /* ModelVersion.name = 1 */
        out = put_varint(out, (uint64_t)name_len);
        memcpy(out, name, (size_t)name_len);
        out += name_len;
    }
    if (version) {
        *out++ = 0x10; /* ModelVersion.version = 2, varint */
        out = put_varint(out, version);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const Result *r = &results[i];
        *out++ = 0x12; /* results = 2, length-delimited */
        out = put_varint(out, token_ids_size(r));
        if (!r->n) continue;
        *out++ = 0x0A; /* TokenIds.ids = 1, packed */
        out = put_varint(out, r->payload);
        for (size_t j = 0; j < r->n; j++) out = put_varint(out, r->ids[j]);
    }
    if (total) {
        *out++ = 0x18; /* total_tokens = 3, varint */
        out = put_varint(out, total);
    }
    if (state) PyEval_RestoreThread(state);
    release(results, count);
    if ((char *)out != PyBytes_AS_STRING(bytes) + size) { /* cannot happen: the sizes above are exact */
        Py_DECREF(bytes);
        PyErr_SetString(PyExc_SystemError, "encode_response: size mismatch");
        return NULL;
    }
    return bytes;
}

static PyMethodDef methods[] = {
    {"encode_response", encode_response, METH_VARARGS,
     "encode_response(model_name: bytes, version: int, total_tokens: int, results: list) -> bytes of a "
     "tokend.v1.EncodeResponse; each result a native uint32 buffer or a list of ints"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_encode_answer",
                                    "EncodeResponse bytes written from id buffers without the GIL.", -1, methods};

PyMODINIT_FUNC PyInit__encode_answer(void) { return PyModule_Create(&module); }
