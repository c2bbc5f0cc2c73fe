/* tokend.server._chat_shape: what a large tokend.v1.EncodeChatRequest or CountChatTokensRequest holds — its
 * conversations, messages, content parts, tool calls and the containers of its JSON fields — read from its
 * wire bytes with the GIL released, before protobuf parses it.
 *
 * Why: an empty chat message, content part or tool call is 2 bytes on the wire and ~120-500 bytes once
 * protobuf and the servicer have built it; 5,000,000 of them fit under the wire bound (server/wire_bound.py)
 * and cost 0.25-20 s and 0.6-2.5 GiB of a worker before the service refused their count. Likewise "{}," in a
 * JSON field (3 bytes, a 64-byte dict once parsed). Counting the records costs ~2 ns a byte and allocates
 * nothing.
 *
 *   chat_shape(data: bytes, over: int, tools_over: int)
 *       -> (conversations, messages, first_over, first_over_messages, parts, tool_calls, containers, commas,
 *           extra_objects, first_tools_over, first_tools_over_bytes, typed_parts, type_bytes,
 *           refused_conversation, refused_message, refused_part, refused_type_start, refused_type_length,
 *           keys, key_bytes, null_contents, lists, scalars) or None
 *
 * Both requests hold `conversations` as field 2. Read as protobuf reads them: each record of a repeated
 * message field is one more element; records of a singular message field merge (so the parts of two `parts`
 * records add up), of a string field the last one counts (and of `arguments` / `arguments_json`, a oneof of
 * strings, the last member set); a known field number with another wire type is an unknown field; unknown
 * fields, groups included, are skipped. Content parts a later `text` replaces count too: protobuf builds them
 * before it drops them (4,900,000 parts, then a text: the same +1.6 GiB). Counted: a ChatConversation's `messages` (1) and `tools_json` (2); a ChatMessage's
 * `parts` (3, a ChatContentParts whose `parts` are field 1), `tool_calls` (6) and `extra_json` (8); a
 * ChatToolCall's `function` (3), a ChatFunctionCall's `arguments_json` (3). A JSON field counts its `[` and `{`
 * (containers), `,` and scalars (numbers, true, false, null) outside strings (but an `extra_json`'s commas whose
 * entry may be a typed key's, read_message); `extra_objects` is how many `extra_json` fields are not empty (their
 * outer object is merged into the message, not a container of its own). Strings are not read (but a part's
 * `type`); their lengths count (below). A message's other fields are not read. `first_over`: the index of the first conversation with
 * more than `over` messages (-1: none), and its count; `first_tools_over`: of the first whose tools_json
 * counts more than `tools_over` bytes at least (8 a container, 2 a comma, 8 a scalar), and that least.
 *
 * Content parts are read too (a ChatContentPart's `type`, 1): `typed_parts` is how many have a `type`, and
 * `type_bytes` the bytes of their types (the last record's, as protobuf keeps it); 168,000-209,000 typed empty
 * parts were within the least the untyped count made of them, and parsed before their refusal (190,000:
 * 0.33-0.39 s, +45-79 MiB). `refused_*`: the first part a chat format refuses (no `type`, or one other than
 * "text") of a message whose content stays its parts (no later `text` or `null_content`; no `extra_json`,
 * whose "content" could replace them): its conversation, message and part (its index in the content list),
 * and where its type's bytes start in `data` and how many (-1, 0: untyped); all -1 when there is none.
 *
 * And a message's typed keys: `keys` the keys of its dict, `key_bytes` the bytes of those keys and, for a
 * message without `extra_json` (whose keys may replace their values), of the strings they hold (role, text
 * content, name, tool_call_id), `null_contents` its contents that are null, `lists` its lists (parts, tool
 * calls). 249,600
 * messages {"role": "user"} counted 32 bytes each on the wire, 42 parsed: within the limit as counted, they
 * were parsed before their refusal (0.66-0.70 s, +58-89 MiB).
 *
 * Likewise a tool call's keys beyond {"function": {"name": ...}} ("id", "type", the function's "arguments", when
 * set) and its strings' bytes (for a message without `extra_json`, as its own strings), and each scalar of a
 * JSON field (`scalars`, 8 bytes each parsed): uncounted, 240,000 tool calls with an empty id, type and
 * arguments, or 4,000,000 numbers in one arguments_json, were within the limit as counted and parsed before
 * their refusal.
 *
 * None: bytes protobuf refuses (a truncated record, a length past the end, wire type 6 or 7, an unmatched
 * group end, groups nested deeper than protobuf's 100 levels), so the caller refuses them without parsing.
 * tests/server/test_chat_shape.py holds the counts to protobuf's and the servicer's on arbitrary messages.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "wire_reader.h"

enum { MAX_DEPTH = 100 }; /* protobuf's recursion limit: messages and groups nested */

typedef struct {
    int64_t conversations, messages, first_over, first_over_messages;
    int64_t parts, tool_calls, containers, commas, extra_objects;
    int64_t first_tools_over, first_tools_over_bytes;
    int64_t typed_parts, type_bytes;
    int64_t keys, key_bytes, null_contents, lists;
    int64_t scalars; /* numbers, true, false and null in JSON fields */
    int64_t refused_conversation, refused_message, refused_part;
    const uint8_t *refused_type; /* NULL: untyped */
    int64_t refused_type_length;
    int64_t over, tools_over;
} Shape;

/* The content parts of one message as protobuf ends up with them: parts records merge (`count` goes on), a
 * later `text` or `null_content` (the oneof's other members) drops them (all reset). */
typedef struct {
    int64_t count;                     /* parts of the content so far */
    int64_t first_refused;             /* index of the first refused one, -1: none */
    const uint8_t *type;               /* its type's bytes (NULL: untyped) */
    int64_t type_length;
    int is_parts;                      /* the oneof's last member set is `parts` */
} Content;

/* The next field of a message at `depth`: 1 when it is length-delimited (*field, *start, *p past it), 0 when it
 * is not (skipped as protobuf skips it: groups may nest up to protobuf's MAX_DEPTH with the message's own
 * nesting; *wire says what it was), -1 bytes protobuf refuses. */
static int next_field(const uint8_t **p, const uint8_t *end, uint32_t *field, int depth, const uint8_t **start,
                      int *wire) {
    if (tk_wire_tag(p, end, field, wire) < 0) return -1;
    if (*wire == WIRE_DELIMITED) return tk_wire_delimited(p, end, start) < 0 ? -1 : 1;
    return tk_wire_skip_unknown(p, end, *field, *wire, MAX_DEPTH - depth) < 0 ? -1 : 0;
}

static int next_delimited(const uint8_t **p, const uint8_t *end, uint32_t *field, int depth, const uint8_t **start) {
    int wire;
    return next_field(p, end, field, depth, start, &wire);
}

/* A JSON field's containers, commas and scalars outside strings. A scalar (a number, true, false, null, NaN,
 * Infinity) is counted where a value may start (the field's start, after `[`, `,` or `:`) and something other
 * than a string or a container starts: in JSON that parses, once per scalar (after a `,` in an object a key
 * starts, a string). "0," is 2 bytes and a scalar counts SCALAR_BYTES (8) parsed: uncounted, 4,000,000 of
 * them were within the least of an 8 MiB request and parsed before its refusal. `top_scalar`: whether a scalar
 * that is the whole field counts (not for tools_json, whose `null` is no tools: nothing counted). */
static void count_json(const uint8_t *p, const uint8_t *end, int top_scalar, Shape *shape) {
    int in_string = 0, value_may_start = top_scalar;
    for (; p < end; p++) {
        uint8_t c = *p;
        if (in_string) {
            if (c == '\\' && p + 1 < end)
                p++; /* the escaped character, whatever it is */
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
            value_may_start = 0;
        } else if (c == '[' || c == '{') {
            shape->containers++;
            value_may_start = c == '[';
        } else if (c == ',') {
            shape->commas++;
            value_may_start = 1;
        } else if (c == ':') {
            value_may_start = 1;
        } else if (c == ']' || c == '}') {
            value_may_start = 0;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            shape->scalars += value_may_start;
            value_may_start = 0;
        }
    }
}

/* The commas between the entries of the JSON object in [p, end) (outside strings, at its top level), at most
 * `most`: read only for a message with extra_json and two typed keys or more (read_message). */
static int64_t top_level_commas(const uint8_t *p, const uint8_t *end, int64_t most) {
    int64_t commas = 0, depth = 0;
    int in_string = 0;
    for (; p < end && commas < most; p++) {
        uint8_t c = *p;
        if (in_string) {
            if (c == '\\' && p + 1 < end)
                p++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if (c == ',' && depth == 1) {
            commas++;
        }
    }
    return commas;
}

/* Each reader below: one message's fields at `depth` (its nesting), counting what the header says. A
 * singular field sent in several records is its last one's value (a string), or their merge (a message), as
 * protobuf reads it; a oneof of strings (`arguments` / `arguments_json`) its last member set. */
typedef struct {
    const uint8_t *json, *json_end; /* the last arguments_json; NULL when unset or `arguments` came after it */
    int64_t name;                   /* the name's bytes (the last record's) */
    int has_arguments;              /* the oneof is set: the function's dict has "arguments" */
    int64_t arguments;              /* the bytes of `arguments` when it is the oneof's last member set */
} Function;

static int read_function(const uint8_t *p, const uint8_t *end, int depth, Function *function) {
    while (p < end) {
        uint32_t field;
        const uint8_t *start;
        int got = next_delimited(&p, end, &field, depth, &start);
        if (got < 0) return -1;
        if (got && field == 1) function->name = p - start;
        if (got && field == 2) { /* arguments: the oneof's other member */
            function->json = function->json_end = NULL;
            function->has_arguments = 1;
            function->arguments = p - start;
        }
        if (got && field == 3) { /* arguments_json */
            function->json = start;
            function->json_end = p;
            function->has_arguments = 1;
            function->arguments = 0;
        }
    }
    return 0;
}

/* A ChatToolCall: its keys beyond those EMPTY_TOOL_CALL_BYTES prices ("id" and "type" when set, the function's
 * "arguments" when set) added to the shape's, and the bytes of its strings (id, type, name, arguments) to
 * `*strings`, which its message counts when it has no extra_json. {"id": "", "type": "", "function": {"name":
 * "", "arguments": ""}} is 10 bytes on the wire and counts 55 parsed: counted 34, 240,000 of them were within
 * the least of an 8 MiB request and parsed before its refusal. */
static int read_tool_call(const uint8_t *p, const uint8_t *end, int depth, Shape *shape, int64_t *strings) {
    Function function = {NULL, NULL, 0, 0, 0}; /* `function` records merge: their oneof's last member counts */
    int has_id = 0, has_type = 0;
    int64_t id = 0, type = 0; /* the last record's bytes */
    while (p < end) {
        uint32_t field;
        const uint8_t *start;
        int got = next_delimited(&p, end, &field, depth, &start);
        if (got < 0) return -1;
        if (got && field == 1) {
            has_id = 1;
            id = p - start;
        } else if (got && field == 2) {
            has_type = 1;
            type = p - start;
        } else if (got && field == 3 && read_function(start, p, depth + 1, &function) < 0) {
            return -1;
        }
    }
    if (function.json) count_json(function.json, function.json_end, 1, shape);
    shape->keys += has_id + has_type + function.has_arguments;
    shape->key_bytes += (has_id ? 2 : 0) + (has_type ? 4 : 0) + (function.has_arguments ? 9 : 0);
    *strings += id + type + function.name + function.arguments;
    return 0;
}

/* One ChatContentPart: its `type` (the last record's: *type NULL when it has none), or -1. Its text is not read. */
static int read_part(const uint8_t *p, const uint8_t *end, int depth, const uint8_t **type, int64_t *type_length) {
    *type = NULL;
    *type_length = 0;
    while (p < end) {
        uint32_t field;
        const uint8_t *start;
        int got = next_delimited(&p, end, &field, depth, &start);
        if (got < 0) return -1;
        if (got && field == 1) {
            *type = start;
            *type_length = p - start;
        }
    }
    return 0;
}

/* The parts of one ChatContentParts record, added to `content`; -1 for bytes protobuf refuses. */
static int read_parts(const uint8_t *p, const uint8_t *end, int depth, Shape *shape, Content *content) {
    while (p < end) {
        uint32_t field;
        const uint8_t *start;
        int got = next_delimited(&p, end, &field, depth, &start);
        if (got < 0) return -1;
        if (!got || field != 1) continue;
        const uint8_t *type;
        int64_t type_length;
        if (read_part(start, p, depth + 1, &type, &type_length) < 0) return -1;
        shape->parts++;
        if (type) {
            shape->typed_parts++;
            shape->type_bytes += type_length;
        }
        if (content->first_refused < 0 && !(type && type_length == 4 && memcmp(type, "text", 4) == 0)) {
            content->first_refused = content->count;
            content->type = type;
            content->type_length = type_length;
        }
        content->count++;
    }
    return 0;
}

enum { NO_CONTENT, TEXT_CONTENT, PARTS_CONTENT, NULL_CONTENT };

/* A ChatMessage, the `index`th of its conversation. */
static int read_message(const uint8_t *p, const uint8_t *end, int depth, int64_t index, Shape *shape) {
    const uint8_t *extra = NULL, *extra_end = NULL;
    Content content = {0, -1, NULL, 0, 0};
    static const Content no_parts = {0, -1, NULL, 0, 0};
    int kind = NO_CONTENT, has_name = 0, has_id = 0;
    int64_t role = 0, text = 0, name = 0, id = 0, tool_calls = 0; /* string lengths: the last record's */
    int64_t call_strings = 0; /* the bytes of its tool calls' strings */
    while (p < end) {
        uint32_t field;
        const uint8_t *start;
        int wire;
        int got = next_field(&p, end, &field, depth, &start, &wire);
        if (got < 0) return -1;
        if (!got) {
            if (field == 4 && wire == WIRE_VARINT) { /* null_content: the oneof's other member */
                content = no_parts;
                kind = NULL_CONTENT;
            }
            continue;
        }
        if (field == 1) {
            role = p - start;
        } else if (field == 2) {
            content = no_parts; /* text: the oneof's other member */
            kind = TEXT_CONTENT;
            text = p - start;
        } else if (field == 5) {
            has_name = 1;
            name = p - start;
        } else if (field == 7) {
            has_id = 1;
            id = p - start;
        } else if (field == 3) {
            kind = PARTS_CONTENT;
            /* Every part counts, also those a later `text` replaces (the oneof): protobuf builds them first. */
            content.is_parts = 1;
            if (read_parts(start, p, depth + 1, shape, &content) < 0) return -1;
        } else if (field == 6) {
            shape->tool_calls++;
            tool_calls++;
            if (read_tool_call(start, p, depth + 1, shape, &call_strings) < 0) return -1;
        } else if (field == 8) {
            extra = start;
            extra_end = p;
        }
    }
    /* The keys of the message's dict (tokend_api.chat_message): "role" when not empty, "content" (a string, a
     * list or null), "name" and "tool_call_id" when set, "tool_calls" when there are any; the bytes of the
     * keys and of the strings they hold; and the brackets of its lists. */
    shape->keys += (role > 0) + (kind != NO_CONTENT) + has_name + has_id + (tool_calls > 0);
    shape->key_bytes += (role > 0 ? 4 : 0) + (kind != NO_CONTENT ? 7 : 0) + (has_name ? 4 : 0) + (has_id ? 12 : 0)
                        + (tool_calls > 0 ? 10 : 0);
    if (extra && extra_end > extra) {
        shape->extra_objects++;
        count_json(extra, extra_end, 1, shape);
        /* Its keys may be typed ones too, the dict then holding one entry for both (json's value): each comma
         * between its own keys counted an entry, the first key none (its object's braces are the message's), so
         * as many commas as the typed keys but one may make no entry. Uncounted, {"role": ..., "content": ...}
         * beside a role and a text counted 57 bytes, 56 parsed. */
        int64_t typed = (role > 0) + (kind != NO_CONTENT) + has_name + has_id + (tool_calls > 0);
        if (typed >= 2) shape->commas -= top_level_commas(extra, extra_end, typed - 1);
        return 0; /* its keys may replace the typed ones' values (none removes a key): those are not counted */
    }
    shape->key_bytes += role + (kind == TEXT_CONTENT ? text : 0) + (has_name ? name : 0) + (has_id ? id : 0) + call_strings;
    shape->null_contents += kind == NULL_CONTENT;
    shape->lists += (kind == PARTS_CONTENT) + (tool_calls > 0);
    if (content.is_parts && content.first_refused >= 0 && shape->refused_conversation < 0) {
        shape->refused_conversation = shape->conversations;
        shape->refused_message = index;
        shape->refused_part = content.first_refused;
        shape->refused_type = content.type;
        shape->refused_type_length = content.type_length;
    }
    return 0;
}

/* A ChatConversation: its messages, or -1. */
static int64_t read_conversation(const uint8_t *p, const uint8_t *end, int depth, Shape *shape) {
    int64_t messages = 0;
    const uint8_t *tools = NULL, *tools_end = NULL;
    while (p < end) {
        uint32_t field;
        const uint8_t *start;
        int got = next_delimited(&p, end, &field, depth, &start);
        if (got < 0) return -1;
        if (!got) continue;
        if (field == 1) {
            if (read_message(start, p, depth + 1, messages, shape) < 0) return -1;
            messages++;
        } else if (field == 2) {
            tools = start; /* tools_json: the last record's */
            tools_end = p;
        }
    }
    if (tools) {
        int64_t containers = shape->containers, commas = shape->commas, scalars = shape->scalars;
        count_json(tools, tools_end, 0, shape);
        /* the least these tools count (service/chat.py: 8 a container, 2 a comma, 8 a scalar) */
        int64_t least = 8 * (shape->containers - containers) + 2 * (shape->commas - commas)
                        + 8 * (shape->scalars - scalars);
        if (least > shape->tools_over && shape->first_tools_over < 0) {
            shape->first_tools_over = shape->conversations;
            shape->first_tools_over_bytes = least;
        }
    }
    return messages;
}

static int read_shape(const uint8_t *p, const uint8_t *end, Shape *shape) {
    while (p < end) {
        uint32_t field;
        const uint8_t *start;
        int got = next_delimited(&p, end, &field, 0, &start);
        if (got < 0) return -1;
        if (!got || field != 2) continue;
        int64_t messages = read_conversation(start, p, 1, shape);
        if (messages < 0) return -1;
        if (messages > shape->over && shape->first_over < 0) {
            shape->first_over = shape->conversations;
            shape->first_over_messages = messages;
        }
        shape->conversations++;
        shape->messages += messages;
    }
    return 0;
}

static PyObject *chat_shape(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]) || !PyLong_Check(args[2]))
        return PyErr_Format(PyExc_TypeError, "chat_shape(data: bytes, over: int, tools_over: int)");
    long long over = PyLong_AsLongLong(args[1]);
    if (over == -1 && PyErr_Occurred()) return NULL;
    long long tools_over = PyLong_AsLongLong(args[2]);
    if (tools_over == -1 && PyErr_Occurred()) return NULL;
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(args[0]); /* immutable: safe to read without the GIL */
    const uint8_t *end = p + PyBytes_GET_SIZE(args[0]);
    Shape shape = {0};
    shape.first_over = -1;
    shape.first_tools_over = -1;
    shape.refused_conversation = shape.refused_message = shape.refused_part = -1;
    shape.over = (int64_t)over;
    shape.tools_over = (int64_t)tools_over;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = read_shape(p, end, &shape);
    Py_END_ALLOW_THREADS
    if (status < 0) Py_RETURN_NONE;
    long long type_start = shape.refused_type ? (long long)(shape.refused_type - p) : -1;
    return Py_BuildValue("(LLLLLLLLLLLLLLLLLLLLLLL)", (long long)shape.conversations, (long long)shape.messages,
                         (long long)shape.first_over, (long long)shape.first_over_messages, (long long)shape.parts,
                         (long long)shape.tool_calls, (long long)shape.containers, (long long)shape.commas,
                         (long long)shape.extra_objects, (long long)shape.first_tools_over,
                         (long long)shape.first_tools_over_bytes, (long long)shape.typed_parts,
                         (long long)shape.type_bytes, (long long)shape.refused_conversation,
                         (long long)shape.refused_message, (long long)shape.refused_part, type_start,
                         (long long)shape.refused_type_length, (long long)shape.keys, (long long)shape.key_bytes,
                         (long long)shape.null_contents, (long long)shape.lists, (long long)shape.scalars);
}

static PyMethodDef methods[] = {
    {"chat_shape", (PyCFunction)(void (*)(void))chat_shape, METH_FASTCALL,
     "chat_shape(data: bytes, over: int, tools_over: int) -> (conversations, messages, first_over, "
     "first_over_messages, parts, tool_calls, containers, commas, extra_objects, first_tools_over, "
     "first_tools_over_bytes, typed_parts, type_bytes, refused_conversation, refused_message, refused_part, "
     "refused_type_start, refused_type_length, keys, key_bytes, null_contents, lists, scalars) or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tokend.server._chat_shape",
                                    "What a large chat request's wire bytes hold, counted.", -1, methods};

PyMODINIT_FUNC PyInit__chat_shape(void) { return PyModule_Create(&module); }
