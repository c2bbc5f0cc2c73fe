/* tokend.server._chat_shape: how many conversations and messages a large tokend.v1.EncodeChatRequest or
 * CountChatTokensRequest holds, read from its wire bytes with the GIL released, before protobuf parses it.
 *
 * Why: an empty chat message is 2 bytes on the wire and ~120 bytes once protobuf has built it; 5,000,000 of
 * them fit under the wire bound (server/wire_bound.py) and cost ~0.25 s and ~600 MiB of parse before the
 * service refused them from their count (service/chat.py, check_chat_shape). Counting the records costs
 * ~2 ns a byte and allocates nothing.
 *
 *   chat_shape(data: bytes, over: int) -> (conversations, messages, first_over, first_over_messages) or None
 *
 * Both requests hold `conversations` as field 2 and a ChatConversation its `messages` as field 1, as
 * protobuf counts them: each record of a repeated message field is one more element. `first_over`: the index
 * of the first conversation with more than `over` messages (-1: none), and its count. None when protobuf must
 * decide: bytes that do not parse as far as this reader goes, groups, or field 2 / field 1 with another wire
 * type; the caller then lets protobuf parse (and refuse) as before. Nothing inside a message is read.
 * tests/server/test_chat_shape.py holds the counts to protobuf's on arbitrary messages.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "wire_reader.h"

enum { FIELD_CONVERSATIONS = 2, FIELD_MESSAGES = 1 };

typedef struct {
    int64_t conversations, messages, first_over, first_over_messages;
} Shape;

/* The messages of one ChatConversation's bytes, or -1. */
static int64_t count_messages(const uint8_t *p, const uint8_t *end) {
    int64_t messages = 0;
    while (p < end) {
        uint32_t field;
        int wire;
        if (tk_wire_tag(&p, end, &field, &wire) < 0) return -1;
        if (field == FIELD_MESSAGES) {
            const uint8_t *start;
            if (wire != WIRE_DELIMITED || tk_wire_delimited(&p, end, &start) < 0) return -1;
            messages++;
        } else if (tk_wire_skip(&p, end, wire) < 0) {
            return -1;
        }
    }
    return messages;
}

static int read_shape(const uint8_t *p, const uint8_t *end, int64_t over, Shape *shape) {
    *shape = (Shape){0, 0, -1, 0};
    while (p < end) {
        uint32_t field;
        int wire;
        if (tk_wire_tag(&p, end, &field, &wire) < 0) return -1;
        if (field != FIELD_CONVERSATIONS) {
            if (tk_wire_skip(&p, end, wire) < 0) return -1;
            continue;
        }
        const uint8_t *start;
        if (wire != WIRE_DELIMITED || tk_wire_delimited(&p, end, &start) < 0) return -1;
        int64_t messages = count_messages(start, p);
        if (messages < 0) return -1;
        if (messages > over && shape->first_over < 0) {
            shape->first_over = shape->conversations;
            shape->first_over_messages = messages;
        }
        shape->conversations++;
        shape->messages += messages;
    }
    return 0;
}

static PyObject *chat_shape(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]))
        return PyErr_Format(PyExc_TypeError, "chat_shape(data: bytes, over: int)");
    long long over = PyLong_AsLongLong(args[1]);
    if (over == -1 && PyErr_Occurred()) return NULL;
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(args[0]); /* immutable: safe to read without the GIL */
    const uint8_t *end = p + PyBytes_GET_SIZE(args[0]);
    Shape shape;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = read_shape(p, end, (int64_t)over, &shape);
    Py_END_ALLOW_THREADS
    if (status < 0) Py_RETURN_NONE;
    return Py_BuildValue("(LLLL)", (long long)shape.conversations, (long long)shape.messages,
                         (long long)shape.first_over, (long long)shape.first_over_messages);
}

static PyMethodDef methods[] = {
    {"chat_shape", (PyCFunction)(void (*)(void))chat_shape, METH_FASTCALL,
     "chat_shape(data: bytes, over: int) -> (conversations, messages, first_over, first_over_messages) or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tokend.server._chat_shape",
                                    "The conversation and message counts of a large chat request's wire bytes.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__chat_shape(void) { return PyModule_Create(&module); }
