/* tokend.server._decode_request: a large tokend.v1.DecodeRequest's wire bytes read with the GIL released.
 *
 * Why: protobuf's DecodeRequest.FromString of 2,097,152 packed ids (6.3 MB) is one C call that holds the GIL
 * for 7-13 ms, and every other call of the worker waits meanwhile. Here the GIL is held only to allocate the
 * ids' buffer and to make the model's str; walking the message and writing the ids run without it.
 *
 *   read_decode_request(data: bytes) -> (model: str, ids: bytes, counts: list[int], errors: int, output: int)
 *                                       or None
 *
 * `ids` holds every input's ids as native uint32, one input after the other; `counts[i]` is input i's number
 * of ids. The values are what protobuf reads: the last `model`, `errors` and `output` win (errors and output as
 * int32, unknown enum values kept), each `inputs` record is one more input, its ids packed or not, in as many
 * records as the sender used, each truncated to 32 bits as protobuf does for uint32; fields this reader does
 * not know are skipped. None when protobuf must decide: bytes that do not parse, a model that is not UTF-8,
 * groups, a known field with another wire type, more than MAX_INPUTS inputs (refused by the item limit
 * anyway); the caller then parses with FromString, which raises protobuf's own error or gives its value.
 * tests/server/test_decode_request.py holds this to FromString on arbitrary messages, and fails when the
 * proto gains a field this reader does not know.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire_reader.h"

#define MAX_INPUTS 65536

enum { FIELD_MODEL = 1, FIELD_INPUTS = 2, FIELD_ERRORS = 3, FIELD_OUTPUT = 4, LAST_FIELD = 4 };

typedef struct {
    const uint8_t *start, *end; /* the TokenIds message */
    size_t count;               /* its ids */
} Input;

typedef struct {
    const uint8_t *model;
    size_t model_len;
    int32_t errors, output;
    Input *inputs;
    size_t n_inputs, cap_inputs;
    size_t total;
} Request;

/* The ids of one TokenIds message (field 1, packed or not, in any number of records): counted, and written
 * to `out` unless it is NULL. */
static int read_token_ids(const uint8_t *p, const uint8_t *end, uint32_t *out, size_t *count) {
    size_t n = 0;
    uint32_t field;
    int wire, next;
    while ((next = tk_wire_next_field(&p, end, 1, &field, &wire)) == 1) {
        uint64_t value;
        if (wire == WIRE_VARINT) {
            if (tk_wire_varint(&p, end, &value) < 0) return -1;
            if (out) out[n] = (uint32_t)value;
            n++;
        } else if (wire == WIRE_DELIMITED) {
            const uint8_t *packed;
            if (tk_wire_delimited(&p, end, &packed) < 0) return -1;
            while (packed < p) {
                if (tk_wire_varint(&packed, p, &value) < 0) return -1;
                if (out) out[n] = (uint32_t)value;
                n++;
            }
        } else {
            return -1;
        }
    }
    *count = n;
    return next;
}

/* The whole message, counting each input's ids (no GIL: touches only `data` and malloc'd memory). */
static int read_request(const uint8_t *p, const uint8_t *end, Request *r) {
    uint32_t field;
    int wire, next;
    while ((next = tk_wire_next_field(&p, end, LAST_FIELD, &field, &wire)) == 1) {
        uint64_t value;
        const uint8_t *start;
        int expected = field == FIELD_MODEL || field == FIELD_INPUTS ? WIRE_DELIMITED : WIRE_VARINT;
        if (wire != expected) return -1;
        if (field == FIELD_MODEL) {
            if (tk_wire_delimited(&p, end, &start) < 0 || !tk_wire_utf8(start, p, NULL)) return -1;
            r->model = start;
            r->model_len = (size_t)(p - start);
        } else if (field == FIELD_INPUTS) {
            if (tk_wire_delimited(&p, end, &start) < 0) return -1;
            if (r->n_inputs == r->cap_inputs) {
                if (r->n_inputs == MAX_INPUTS) return -1;
                size_t cap = r->cap_inputs ? 4 * r->cap_inputs : 16;
                Input *more = realloc(r->inputs, cap * sizeof *more); /* PyMem_* needs the GIL */
                if (!more) return -1;
                r->inputs = more;
                r->cap_inputs = cap;
            }
            Input *input = &r->inputs[r->n_inputs++];
            input->start = start;
            input->end = p;
            if (read_token_ids(start, p, NULL, &input->count) < 0) return -1;
            r->total += input->count;
        } else {
            if (tk_wire_varint(&p, end, &value) < 0) return -1;
            if (field == FIELD_ERRORS)
                r->errors = (int32_t)(uint32_t)value;
            else
                r->output = (int32_t)(uint32_t)value;
        }
    }
    return next;
}

static void write_ids(const Request *r, uint32_t *out) {
    for (size_t i = 0; i < r->n_inputs; i++) {
        size_t count = 0;
        read_token_ids(r->inputs[i].start, r->inputs[i].end, out, &count); /* parsed once already */
        out += count;
    }
}

static PyObject *read_decode_request(PyObject *module, PyObject *data) {
    if (!PyBytes_Check(data)) return PyErr_Format(PyExc_TypeError, "expected bytes, got %.100s", Py_TYPE(data)->tp_name);
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(data); /* immutable: safe to read without the GIL */
    const uint8_t *end = p + PyBytes_GET_SIZE(data);
    Request r = {0};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = read_request(p, end, &r);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL, *model = NULL, *ids = NULL, *counts = NULL;
    if (status < 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    model = PyUnicode_DecodeUTF8((const char *)r.model, (Py_ssize_t)r.model_len, "strict");
    if (!model) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) goto done;
        PyErr_Clear();
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (r.total > (size_t)PY_SSIZE_T_MAX / sizeof(uint32_t)) {
        PyErr_NoMemory();
        goto done;
    }
    ids = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(r.total * sizeof(uint32_t)));
    if (!ids) goto done;
    uint32_t *out = (uint32_t *)PyBytes_AS_STRING(ids); /* not shared yet: written without the GIL */
    Py_BEGIN_ALLOW_THREADS
    write_ids(&r, out);
    Py_END_ALLOW_THREADS
    counts = PyList_New((Py_ssize_t)r.n_inputs);
    if (!counts) goto done;
    for (size_t i = 0; i < r.n_inputs; i++) {
        PyObject *count = PyLong_FromSize_t(r.inputs[i].count);
        if (!count) goto done;
        PyList_SET_ITEM(counts, (Py_ssize_t)i, count);
    }
    result = Py_BuildValue("(OOOii)", model, ids, counts, (int)r.errors, (int)r.output);
done:
    Py_XDECREF(model);
    Py_XDECREF(ids);
    Py_XDECREF(counts);
    free(r.inputs);
    return result;
}

static PyMethodDef methods[] = {
    {"read_decode_request", read_decode_request, METH_O,
     "read_decode_request(data: bytes) -> (model, ids: bytes of uint32, counts, errors, output) or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tokend.server._decode_request",
                                    "A large DecodeRequest read with the GIL released.", -1, methods};

PyMODINIT_FUNC PyInit__decode_request(void) { return PyModule_Create(&module); }
