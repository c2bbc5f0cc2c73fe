/* tokend.server._batch_items: how many inputs a large tokend.v1 Encode, CountTokens, Decode, Truncate, Chunk or
 * ChunkStream request holds, and how many strings its special-token policy lists, read from its wire bytes
 * with the GIL released, before protobuf parses it.
 *
 * Why: an empty `Input` or `TokenIds` is 2 bytes on the wire: 4,900,000 of them in an Encode, Truncate or Chunk
 * cost ~2.2 s of CPU and +300-500 MiB before `max_batch_items` refused them, and in a Decode minutes
 * (protobuf's list of that many empty messages grows worse than linearly: 800,000 took 13 s); 4,900,000 empty
 * listed special-token strings +200 MiB of parse before the service refused the list's length. Counting the
 * records costs ~2 ns a byte and allocates nothing. (Chat requests: chat_shape.c.)
 *
 *   batch_items(data: bytes, policy_field: int) -> (items, allowed, disallowed, complete)
 *
 * Each of these requests holds its inputs as field 2; each record of a repeated message field is one more
 * element, as protobuf counts them. `allowed` / `disallowed`: the strings the special-token policy (field
 * `policy_field`, 0: none) lists in each set. Records protobuf keeps as unknown fields are skipped as protobuf
 * skips them: a field of another wire type, groups (nested, up to their matching end). `complete` is false when
 * the bytes stop parsing: protobuf refuses them too, and the counts are those of the records before that point,
 * which protobuf would have built before refusing (so the caller refuses from them when they are already over
 * a limit). tests/server/test_batch_items.py holds the counts to protobuf's on arbitrary messages.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "wire_reader.h"

enum { FIELD_INPUTS = 2 };

/* The records of field `number` with wire type 2 (a repeated message field's elements) in a message's bytes,
 * added to *count. 0: read to the end; -1: bytes protobuf refuses (*count then holds the records before them). */
static int count_records(const uint8_t *p, const uint8_t *end, uint32_t number, int64_t *count) {
    while (p < end) {
        uint32_t field;
        int wire;
        const uint8_t *start;
        if (tk_wire_tag(&p, end, &field, &wire) < 0) return -1;
        if (field == number && wire == WIRE_DELIMITED) {
            if (tk_wire_delimited(&p, end, &start) < 0) return -1;
            (*count)++;
        } else if (tk_wire_skip_unknown(&p, end, field, wire, TK_WIRE_MAX_GROUPS) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The strings a SpecialTokenPolicy's bytes list: tokens (field 2) of its allowed (1) and disallowed (2) sets,
 * each record of a set merged into it as protobuf merges a singular message field. 0 or -1 as count_records. */
static int count_listed(const uint8_t *p, const uint8_t *end, int64_t *allowed, int64_t *disallowed) {
    while (p < end) {
        uint32_t field;
        int wire;
        const uint8_t *start;
        if (tk_wire_tag(&p, end, &field, &wire) < 0) return -1;
        if ((field == 1 || field == 2) && wire == WIRE_DELIMITED) {
            if (tk_wire_delimited(&p, end, &start) < 0) return -1;
            if (count_records(start, p, 2, field == 1 ? allowed : disallowed) < 0) return -1;
        } else if (tk_wire_skip_unknown(&p, end, field, wire, TK_WIRE_MAX_GROUPS) < 0) {
            return -1;
        }
    }
    return 0;
}


typedef struct {
    int64_t items, allowed, disallowed;
} Items;

static int read_items(const uint8_t *p, const uint8_t *end, uint32_t policy_field, Items *items) {
    while (p < end) {
        uint32_t field;
        int wire;
        const uint8_t *start;
        if (tk_wire_tag(&p, end, &field, &wire) < 0) return -1;
        if (policy_field && field == policy_field && wire == WIRE_DELIMITED) {
            if (tk_wire_delimited(&p, end, &start) < 0) return -1;
            if (count_listed(start, p, &items->allowed, &items->disallowed) < 0) return -1;
        } else if (field == FIELD_INPUTS && wire == WIRE_DELIMITED) {
            if (tk_wire_delimited(&p, end, &start) < 0) return -1;
            items->items++;
        } else if (tk_wire_skip_unknown(&p, end, field, wire, TK_WIRE_MAX_GROUPS) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *batch_items(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]))
        return PyErr_Format(PyExc_TypeError, "batch_items(data: bytes, policy_field: int)");
    long field = PyLong_AsLong(args[1]);
    if (field < 0 || field > 536870911) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "policy_field: a field number, or 0");
        return NULL;
    }
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(args[0]); /* immutable: safe to read without the GIL */
    const uint8_t *end = p + PyBytes_GET_SIZE(args[0]);
    Items items = {0, 0, 0};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = read_items(p, end, (uint32_t)field, &items);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(LLLO)", (long long)items.items, (long long)items.allowed, (long long)items.disallowed,
                         status == 0 ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"batch_items", (PyCFunction)(void (*)(void))batch_items, METH_FASTCALL,
     "batch_items(data: bytes, policy_field: int) -> (records of field 2, allowed, disallowed, complete)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tokend.server._batch_items",
                                    "The batch items of a large request's wire bytes, counted.", -1, methods};

PyMODINIT_FUNC PyInit__batch_items(void) { return PyModule_Create(&module); }
