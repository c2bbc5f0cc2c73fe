/* tokend.server._text_request: a large tokend.v1.EncodeRequest or CountTokensRequest read from its wire bytes
 * with the GIL released.
 *
 * Why: protobuf's FromString of an 8 MiB text request holds the GIL 2-5 ms (copying and checking the text),
 * and reading its `text` another 1-3 ms (UTF-8 into a str), while every other call of the worker waits. Here
 * the GIL is held only to allocate each str and bytes object; checking the UTF-8, measuring the strs and
 * filling them (they are not shared yet) run without it.
 *
 *   read_text_request(data: bytes, last_field: int)
 *       -> (model: str, inputs: list[str | bytes], special_tokens: tuple[bytes, ...], offsets: bool, token_bytes: bool)
 *          or None
 *
 * `last_field`: 5 for EncodeRequest (model 1, inputs 2, special_tokens 3, offsets 4, token_bytes 5), 3 for
 * CountTokensRequest (model 1, inputs 2, special_tokens 3; 4 and 5 are unknown fields there). The values are
 * what protobuf reads: the last `model`, `offsets`, `token_bytes` win; each `inputs` record is one more Input,
 * in which the last of `text` / `data` wins (a oneof; neither: "", as the servicer reads an empty Input);
 * `special_tokens` is its records' payloads, one bytes each: protobuf parses each record alone and merges
 * them (so a record that does not parse alone fails the message, even where the records joined would parse;
 * the caller merges them the same way); fields this reader does not know are skipped. None when protobuf must decide: bytes that do not parse,
 * any `model` or `text` that is not UTF-8, groups, a known field with another wire type, more than MAX_INPUTS
 * inputs (refused by the item limit anyway); the caller then parses with FromString. Nothing of the special-token
 * policy is checked here (protobuf parses it, UTF-8 included). tests/server/test_text_request.py holds this to
 * FromString on arbitrary messages and fails when the proto gains a field this reader does not know.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire_reader.h"

#define MAX_INPUTS 65536

enum { FIELD_MODEL = 1, FIELD_INPUTS = 2, FIELD_SPECIAL_TOKENS = 3, FIELD_OFFSETS = 4, FIELD_TOKEN_BYTES = 5 };
enum { INPUT_TEXT = 1, INPUT_DATA = 2 };

typedef struct {
    int which; /* 0 (neither: ""), INPUT_TEXT, INPUT_DATA */
    const uint8_t *start, *end;
    tk_utf8_shape shape; /* a text's */
    PyObject *object;    /* made under the GIL, filled without it */
} Input;

typedef struct {
    const uint8_t *start, *end;
    PyObject *object; /* its bytes: made under the GIL, filled without it */
} Span;

typedef struct {
    const uint8_t *model;
    size_t model_len;
    int offsets, token_bytes;
    Input *inputs;
    size_t n_inputs, cap_inputs;
    Span *policy; /* special_tokens records */
    size_t n_policy, cap_policy;
} Request;

static int grow(void **items, size_t *cap, size_t size) {
    size_t more = *cap ? 4 * *cap : 16;
    void *grown = realloc(*items, more * size); /* PyMem_* needs the GIL */
    if (!grown) return -1;
    *items = grown;
    *cap = more;
    return 0;
}

static int read_input(const uint8_t *p, const uint8_t *end, Input *input) {
    memset(input, 0, sizeof *input);
    uint32_t field;
    int wire, next;
    while ((next = tk_wire_next_field(&p, end, INPUT_DATA, &field, &wire)) == 1) {
        const uint8_t *start;
        if (wire != WIRE_DELIMITED || tk_wire_delimited(&p, end, &start) < 0) return -1;
        if (field == INPUT_TEXT && !tk_wire_utf8(start, p, &input->shape)) return -1;
        input->which = (int)field;
        input->start = start;
        input->end = p;
    }
    return next;
}

/* The whole message (no GIL: touches only `data` and malloc'd memory). */
static int read_request(const uint8_t *p, const uint8_t *end, uint32_t last_field, Request *r) {
    uint32_t field;
    int wire, next;
    while ((next = tk_wire_next_field(&p, end, last_field, &field, &wire)) == 1) {
        uint64_t value;
        const uint8_t *start;
        int expected = field <= FIELD_SPECIAL_TOKENS ? WIRE_DELIMITED : WIRE_VARINT;
        if (wire != expected) return -1;
        if (field == FIELD_OFFSETS || field == FIELD_TOKEN_BYTES) {
            if (tk_wire_varint(&p, end, &value) < 0) return -1;
            *(field == FIELD_OFFSETS ? &r->offsets : &r->token_bytes) = value != 0;
            continue;
        }
        if (tk_wire_delimited(&p, end, &start) < 0) return -1;
        if (field == FIELD_MODEL) {
            if (!tk_wire_utf8(start, p, NULL)) return -1;
            r->model = start;
            r->model_len = (size_t)(p - start);
        } else if (field == FIELD_INPUTS) {
            if (r->n_inputs == MAX_INPUTS) return -1;
            if (r->n_inputs == r->cap_inputs && grow((void **)&r->inputs, &r->cap_inputs, sizeof *r->inputs) < 0) return -1;
            if (read_input(start, p, &r->inputs[r->n_inputs++]) < 0) return -1;
        } else {
            if (r->n_policy == r->cap_policy && grow((void **)&r->policy, &r->cap_policy, sizeof *r->policy) < 0) return -1;
            r->policy[r->n_policy++] = (Span){start, p, NULL};
        }
    }
    return next;
}

/* Copies every input's and policy record's bytes into its (not yet shared) object. */
static void fill(const Request *r) {
    for (size_t i = 0; i < r->n_inputs; i++) {
        const Input *input = &r->inputs[i];
        size_t len = (size_t)(input->end - input->start);
        if (input->which == INPUT_DATA) {
            memcpy(PyBytes_AS_STRING(input->object), input->start, len);
        } else if (input->which == INPUT_TEXT && input->shape.code_points) {
            if (input->shape.max_char < 0x80)
                memcpy(PyUnicode_DATA(input->object), input->start, len);
            else
                tk_wire_utf8_fill(input->start, input->end, PyUnicode_DATA(input->object), PyUnicode_KIND(input->object));
        }
    }
    for (size_t i = 0; i < r->n_policy; i++)
        memcpy(PyBytes_AS_STRING(r->policy[i].object), r->policy[i].start, (size_t)(r->policy[i].end - r->policy[i].start));
}

static PyObject *make_input(Input *input) {
    if (input->which == INPUT_DATA) return PyBytes_FromStringAndSize(NULL, input->end - input->start);
    if (input->which == 0) return PyUnicode_New(0, 0);
    return PyUnicode_New((Py_ssize_t)input->shape.code_points, input->shape.max_char);
}

static PyObject *read_text_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]))
        return PyErr_Format(PyExc_TypeError, "read_text_request(data: bytes, last_field: int)");
    long last_field = PyLong_AsLong(args[1]);
    if (last_field < FIELD_SPECIAL_TOKENS || last_field > FIELD_TOKEN_BYTES)
        return PyErr_Format(PyExc_ValueError, "last_field must be 3, 4 or 5, got %ld", last_field);
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(args[0]); /* immutable: safe to read without the GIL */
    const uint8_t *end = p + PyBytes_GET_SIZE(args[0]);
    Request r = {0};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = read_request(p, end, (uint32_t)last_field, &r);
    Py_END_ALLOW_THREADS
    PyObject *result = NULL, *model = NULL, *inputs = NULL, *policy = NULL;
    if (status < 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    model = PyUnicode_DecodeUTF8((const char *)r.model, (Py_ssize_t)r.model_len, "strict"); /* checked above */
    if (!model) goto done;
    inputs = PyList_New((Py_ssize_t)r.n_inputs);
    if (!inputs) goto done;
    for (size_t i = 0; i < r.n_inputs; i++) {
        r.inputs[i].object = make_input(&r.inputs[i]);
        if (!r.inputs[i].object) goto done;
        PyList_SET_ITEM(inputs, (Py_ssize_t)i, r.inputs[i].object); /* the list owns it; nobody else sees it yet */
    }
    policy = PyTuple_New((Py_ssize_t)r.n_policy);
    if (!policy) goto done;
    for (size_t i = 0; i < r.n_policy; i++) {
        r.policy[i].object = PyBytes_FromStringAndSize(NULL, r.policy[i].end - r.policy[i].start);
        if (!r.policy[i].object) goto done;
        PyTuple_SET_ITEM(policy, (Py_ssize_t)i, r.policy[i].object); /* the tuple owns it; nobody else sees it yet */
    }
    Py_BEGIN_ALLOW_THREADS
    fill(&r);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(OOONN)", model, inputs, policy, PyBool_FromLong(r.offsets), PyBool_FromLong(r.token_bytes));
done:
    Py_XDECREF(model);
    Py_XDECREF(inputs);
    Py_XDECREF(policy);
    free(r.inputs);
    free(r.policy);
    return result;
}

static PyMethodDef methods[] = {
    {"read_text_request", (PyCFunction)(void (*)(void))read_text_request, METH_FASTCALL,
     "read_text_request(data: bytes, last_field: int) -> (model, inputs, special_tokens bytes, offsets, token_bytes) "
     "or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tokend.server._text_request",
                                    "A large EncodeRequest or CountTokensRequest read with the GIL released.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__text_request(void) { return PyModule_Create(&module); }
