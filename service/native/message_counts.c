/* tk_count_messages: the tokens of a plain chat in one call (see message_counts.h). The common request, a list
 * of {"role", "content"} dicts, otherwise costs a Python check, a rendered part and a list append per message
 * (~1 us each: more than counting a short turn's text). Here a message costs two dict lookups, a memchr
 * for the first bytes of the forbidden strings, and the count of its text.
 *
 * The core may release the GIL inside a long text, so nothing borrowed from `messages` is used across a
 * count: the text is either the content itself (held by a new reference) or a copy in our own buffer, and
 * the list's length is read again for every message. */
#include "message_counts.h"

#include <string.h>

#define TK_MAX_FORBIDDEN 64

typedef struct {
    const char *text[TK_MAX_FORBIDDEN];
    Py_ssize_t len[TK_MAX_FORBIDDEN];
    Py_ssize_t n;
    char firsts[TK_MAX_FORBIDDEN]; /* the distinct first bytes */
    Py_ssize_t n_firsts;
} Forbidden;

typedef struct {
    const char *prefix, *suffix;
    Py_ssize_t prefix_len, suffix_len;
    Py_ssize_t constant;
    int may_be_last;
    long flags; /* TK_ROLE_* (message_counts.h) */
    int ascii_around; /* prefix and suffix are ASCII */
    /* TK_ROLE_PREFIX_APART: the prefix's own tokens, and the characters besides whitespace that keep a
     * content joined to it (borrowed from the entry, which the layout cache holds) */
    Py_ssize_t prefix_tokens;
    PyObject *joining;
} RoleLayout;

static PyObject *role_key, *content_key; /* interned "role", "content" */

static int read_forbidden(PyObject *forbidden, Forbidden *out) {
    if (!PyTuple_Check(forbidden)) {
        PyErr_Format(PyExc_TypeError, "forbidden must be a tuple of str, got %.100s", Py_TYPE(forbidden)->tp_name);
        return -1;
    }
    out->n = PyTuple_GET_SIZE(forbidden);
    out->n_firsts = 0;
    if (out->n > TK_MAX_FORBIDDEN) {
        PyErr_Format(PyExc_ValueError, "at most %d forbidden strings, got %zd", TK_MAX_FORBIDDEN, out->n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < out->n; i++) {
        PyObject *item = PyTuple_GET_ITEM(forbidden, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "forbidden[%zd] must be a str", i);
            return -1;
        }
        out->text[i] = PyUnicode_AsUTF8AndSize(item, &out->len[i]);
        if (!out->text[i]) return -1;
        if (out->len[i] == 0) {
            PyErr_Format(PyExc_ValueError, "forbidden[%zd] must not be empty", i);
            return -1;
        }
        char first = out->text[i][0];
        if (!memchr(out->firsts, first, (size_t)out->n_firsts)) out->firsts[out->n_firsts++] = first;
    }
    return 0;
}

/* 1 when `text` holds one of the forbidden strings. One memchr per distinct first byte ("<" for most
 * vocabularies) skips text without any candidate at memory speed. */
static int holds_forbidden(const Forbidden *forbidden, const char *text, size_t len) {
    for (Py_ssize_t f = 0; f < forbidden->n_firsts; f++) {
        const char *at = text, *end = text + len;
        while ((at = memchr(at, forbidden->firsts[f], (size_t)(end - at))) != NULL) {
            for (Py_ssize_t i = 0; i < forbidden->n; i++)
                if (forbidden->text[i][0] == forbidden->firsts[f] && end - at >= forbidden->len[i] &&
                    memcmp(at, forbidden->text[i], (size_t)forbidden->len[i]) == 0)
                    return 1;
            at++;
        }
    }
    return 0;
}

static int read_role(PyObject *entry, RoleLayout *out) {
    Py_ssize_t size = PyTuple_Check(entry) ? PyTuple_GET_SIZE(entry) : 0;
    if ((size != 3 && size != 5 && size != 7) || !PyUnicode_Check(PyTuple_GET_ITEM(entry, 0)) ||
        !PyLong_Check(PyTuple_GET_ITEM(entry, 1)) ||
        (size >= 5 && (!PyUnicode_Check(PyTuple_GET_ITEM(entry, 3)) || !PyLong_Check(PyTuple_GET_ITEM(entry, 4)))) ||
        (size == 7 && (!PyLong_Check(PyTuple_GET_ITEM(entry, 5)) || !PyUnicode_Check(PyTuple_GET_ITEM(entry, 6))))) {
        PyErr_SetString(PyExc_TypeError, "a role's layout must be (prefix: str, constant: int, may_be_last: bool"
                                         "[, suffix: str, flags: int[, prefix_tokens: int, joining: str]])");
        return -1;
    }
    out->prefix = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(entry, 0), &out->prefix_len);
    if (!out->prefix) return -1;
    out->suffix = "", out->suffix_len = 0, out->flags = 0, out->prefix_tokens = 0, out->joining = NULL;
    out->ascii_around = PyUnicode_IS_ASCII(PyTuple_GET_ITEM(entry, 0));
    if (size >= 5) {
        out->suffix = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(entry, 3), &out->suffix_len);
        if (!out->suffix) return -1;
        out->ascii_around = out->ascii_around && PyUnicode_IS_ASCII(PyTuple_GET_ITEM(entry, 3));
        out->flags = PyLong_AsLong(PyTuple_GET_ITEM(entry, 4));
        if (out->flags == -1 && PyErr_Occurred()) return -1;
        if (out->flags & ~(long)TK_ROLE_ALL_FLAGS) {
            PyErr_SetString(PyExc_ValueError, "unknown role flags");
            return -1;
        }
    }
    if (out->flags & TK_ROLE_PREFIX_APART) {
        /* the rule holds only for a prefix that ends in "\n" and content that nothing follows in its text */
        if (size != 7 || out->prefix_len == 0 || out->prefix[out->prefix_len - 1] != '\n' || out->suffix_len) {
            PyErr_SetString(PyExc_ValueError, "ROLE_PREFIX_APART needs a prefix ending in a newline, no suffix, "
                                              "and (prefix_tokens, joining) as the sixth and seventh items");
            return -1;
        }
        out->prefix_tokens = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 5));
        if (out->prefix_tokens == -1 && PyErr_Occurred()) return -1;
        if (out->prefix_tokens < 0) {
            PyErr_SetString(PyExc_ValueError, "a prefix's tokens must not be negative");
            return -1;
        }
        out->joining = PyTuple_GET_ITEM(entry, 6);
    }
    out->constant = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, 1));
    if (out->constant == -1 && PyErr_Occurred()) return -1;
    if (out->constant < 0) {
        PyErr_SetString(PyExc_ValueError, "a role's constant tokens must not be negative");
        return -1;
    }
    out->may_be_last = PyObject_IsTrue(PyTuple_GET_ITEM(entry, 2));
    return out->may_be_last < 0 ? -1 : 0;
}

/* The code point that starts at text[i] (valid UTF-8: CPython made it) and the index after it. */
static Py_UCS4 utf8_at(const unsigned char *text, size_t i, size_t *next) {
    unsigned char lead = text[i];
    if (lead < 0x80) {
        *next = i + 1;
        return lead;
    }
    int extra = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : 1;
    Py_UCS4 point = lead & (0x3F >> extra);
    for (int k = 1; k <= extra; k++) point = (point << 6) | (text[i + k] & 0x3F);
    *next = i + 1 + (size_t)extra;
    return point;
}

/* `text[*start:*end]` without surrounding whitespace, as str.strip() sees whitespace. */
static void strip_utf8(const char *text, size_t *start, size_t *end) {
    const unsigned char *bytes = (const unsigned char *)text;
    size_t next;
    while (*start < *end && Py_UNICODE_ISSPACE(utf8_at(bytes, *start, &next))) *start = next;
    while (*end > *start) {
        size_t lead = *end - 1;
        while (lead > *start && (bytes[lead] & 0xC0) == 0x80) lead--;
        if (!Py_UNICODE_ISSPACE(utf8_at(bytes, lead, &next))) break;
        *end = lead;
    }
}

typedef struct {
    char *data;
    size_t cap;
} Buffer;

/* The layouts read so far in one call, by entry (a strong reference each): a chat alternates between a few
 * roles, and reading an entry (its tuple, str and ints) cost more per message than the lookup here. */
#define TK_LAYOUT_CACHE 4
typedef struct {
    PyObject *entry[TK_LAYOUT_CACHE];
    RoleLayout layout[TK_LAYOUT_CACHE];
    int n;
} LayoutCache;

static const RoleLayout *cached_role(LayoutCache *cache, PyObject *entry) {
    for (int i = 0; i < cache->n; i++)
        if (cache->entry[i] == entry) return &cache->layout[i];
    RoleLayout layout;
    if (read_role(entry, &layout) < 0) return NULL;
    int slot = cache->n < TK_LAYOUT_CACHE ? cache->n++ : TK_LAYOUT_CACHE - 1;
    Py_INCREF(entry);
    Py_XSETREF(cache->entry[slot], entry);
    cache->layout[slot] = layout;
    return &cache->layout[slot];
}

/* Text joined before one message's content (a system prompt and its separator), or none (len 0). */
typedef struct {
    char *text;
    size_t len;
    int narrow; /* every code point below U+0100 */
} Lead;

/* prefix + lead + text + suffix, in `buffer`. */
static const char *joined(Buffer *buffer, const RoleLayout *layout, const Lead *lead, const char *text, size_t len) {
    size_t prefix_len = (size_t)layout->prefix_len, suffix_len = (size_t)layout->suffix_len;
    if (prefix_len + lead->len + len + suffix_len > buffer->cap) {
        size_t cap = 2 * (prefix_len + lead->len + len + suffix_len) + 64;
        char *data = PyMem_Realloc(buffer->data, cap);
        if (!data) {
            PyErr_NoMemory();
            return NULL;
        }
        buffer->data = data;
        buffer->cap = cap;
    }
    char *at = buffer->data;
    memcpy(at, layout->prefix, prefix_len), at += prefix_len;
    if (lead->len) memcpy(at, lead->text, lead->len), at += lead->len;
    memcpy(at, text, len), at += len;
    memcpy(at, layout->suffix, suffix_len);
    return buffer->data;
}

/* 1 when the model's normalizer (NFC) leaves `whole` as it is (`normalized(str)` says so), 0 when not, -1:
 * an exception. Text of code points below U+0100 is in NFC (each of them is its own composition, none is a
 * combining mark or composes with a neighbour), so only wider text pays the call. */
static int is_normalized(PyObject *normalized, PyObject *content, const RoleLayout *layout, const Lead *lead,
                         const char *whole, size_t len) {
    if (PyUnicode_KIND(content) == PyUnicode_1BYTE_KIND && layout->ascii_around && (!lead->len || lead->narrow)) return 1;
    PyObject *text = PyUnicode_DecodeUTF8(whole, (Py_ssize_t)len, "strict");
    if (!text) return -1;
    PyObject *answer = PyObject_CallOneArg(normalized, text);
    Py_DECREF(text);
    if (!answer) return -1;
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

/* What stays the same for every message of one call. */
typedef struct {
    const tk_parts_ops *ops;
    PyObject *roles, *first_roles, *normalized;
    Forbidden forbidden;
    int strip;
    LayoutCache layouts;
    Buffer buffer;
} Walk;

/* A first-character guard of the shape (tk_count_messages): (not_empty: bool, characters: str). 1 when
 * `content` passes it (not empty if asked; its first character not one of `characters`), 0 when not, -1: a
 * malformed guard (TypeError). What `content[:1] not in {"", *characters}` says in Python. */
static int first_character_holds(PyObject *guard, PyObject *content) {
    if (!PyTuple_Check(guard) || PyTuple_GET_SIZE(guard) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(guard, 1))) {
        PyErr_SetString(PyExc_TypeError, "a first-character guard must be None or (not_empty: bool, characters: str)");
        return -1;
    }
    if (PyUnicode_GET_LENGTH(content) == 0) {
        int not_empty = PyObject_IsTrue(PyTuple_GET_ITEM(guard, 0));
        return not_empty < 0 ? -1 : !not_empty;
    }
    PyObject *characters = PyTuple_GET_ITEM(guard, 1);
    Py_UCS4 first = PyUnicode_READ_CHAR(content, 0);
    int kind = PyUnicode_KIND(characters);
    const void *data = PyUnicode_DATA(characters);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(characters); i++)
        if (PyUnicode_READ(kind, data, i) == first) return 0;
    return 1;
}

/* 1 when `point` is one of the characters of `characters` (a str). */
static int holds_character(PyObject *characters, Py_UCS4 point) {
    int kind = PyUnicode_KIND(characters);
    const void *data = PyUnicode_DATA(characters);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(characters); i++)
        if (PyUnicode_READ(kind, data, i) == point) return 1;
    return 0;
}

/* 1: counted; 0: not plain; -1: an exception. `*role_out` gets a new reference to the message's role. */
static int count_message(Walk *walk, PyObject *message, int first, int last, PyObject *previous_role,
                         PyObject *expected_role, PyObject *first_guard, PyObject **role_out, const Lead *lead,
                         size_t *tokens) {
    const tk_parts_ops *ops = walk->ops;
    if (!PyDict_CheckExact(message) || PyDict_GET_SIZE(message) != 2) return 0;
    PyObject *role = PyDict_GetItemWithError(message, role_key);
    PyObject *content = role ? PyDict_GetItemWithError(message, content_key) : NULL;
    if (!content) return PyErr_Occurred() ? -1 : 0;
    if (!PyUnicode_CheckExact(role) || !PyUnicode_CheckExact(content)) return 0;
    if (expected_role) {
        int same = role == expected_role ? 1 : PyUnicode_Compare(role, expected_role) == 0;
        if (!same) return PyErr_Occurred() ? -1 : 0;
    }
    if (first_guard && first_guard != Py_None) {
        int holds = first_character_holds(first_guard, content);
        if (holds <= 0) return holds;
    }
    PyObject *entry = first && walk->first_roles != Py_None ? PyDict_GetItemWithError(walk->first_roles, role)
                                                            : PyDict_GetItemWithError(walk->roles, role);
    if (!entry) return PyErr_Occurred() ? -1 : 0;
    const RoleLayout *layout = cached_role(&walk->layouts, entry);
    if (!layout) return -1;
    if (last && !layout->may_be_last) return 0;
    if (layout->flags) {
        if ((layout->flags & TK_ROLE_NOT_EMPTY) && PyUnicode_GET_LENGTH(content) == 0) return 0;
        if ((layout->flags & TK_ROLE_NOT_REPEATED) && previous_role && PyUnicode_Compare(previous_role, role) == 0) return 0;
    }
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(content, &len);
    if (!text) { /* lone surrogates: the general path repairs them as tiktoken does */
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return 0;
    }
    size_t start = 0, end = (size_t)len;
    if (walk->strip) strip_utf8(text, &start, &end);
    if (layout->flags & TK_ROLE_RSTRIP_SPACES)
        while (end > start && text[end - 1] == ' ') end--;
    /* The prefix's tokens known, the content alone where the split provably cuts before it (message_counts.h) */
    int apart = (layout->flags & TK_ROLE_PREFIX_APART) && !lead->len;
    if (apart && end > start) {
        size_t next;
        Py_UCS4 first = utf8_at((const unsigned char *)text, start, &next);
        if (Py_UNICODE_ISSPACE(first) || holds_character(layout->joining, first)) apart = 0;
    }
    Py_INCREF(content); /* `text` lives as long as it; the count may release the GIL */
    Py_INCREF(role);
    *role_out = role;
    int status = 1;
    const char *whole = text + start;
    size_t whole_len = end - start;
    if (!apart && (layout->prefix_len || layout->suffix_len || lead->len)) {
        whole = joined(&walk->buffer, layout, lead, text + start, end - start);
        whole_len += (size_t)(layout->prefix_len + layout->suffix_len) + lead->len;
        if (!whole) status = -1;
    }
    if (status == 1 && walk->forbidden.n && holds_forbidden(&walk->forbidden, whole, whole_len)) status = 0;
    if (status == 1 && walk->normalized != Py_None)
        status = is_normalized(walk->normalized, content, layout, lead, whole, whole_len);
    if (status == 1) {
        size_t before = *ops->position;
        if (whole_len && ops->text(ops->core, ops->sink, (const uint8_t *)whole, whole_len) < 0) status = -1;
        *tokens = *ops->position - before + (size_t)layout->constant + (apart ? (size_t)layout->prefix_tokens : 0);
    }
    Py_DECREF(content);
    return status;
}

/* The role of messages[i] when it is an exact dict holding an exact str "role" (borrowed), else NULL. */
static PyObject *role_of(PyObject *messages, Py_ssize_t i) {
    PyObject *message = PyList_GET_ITEM(messages, i);
    if (!PyDict_CheckExact(message)) return NULL;
    PyObject *role = PyDict_GetItemWithError(message, role_key);
    return role && PyUnicode_CheckExact(role) ? role : NULL;
}

/* With a system prompt layout (role, separator, target role, last) and messages[0] a plain message of that
 * role: its content + separator as *lead (a copy), and in *target the index of the first (or, with `last`,
 * the last) later message of the target role. 1: taken; 0: no system prompt here; -1: an exception;
 * 2: not plain (no target message, or text that is not valid UTF-8). */
static int read_system_prompt(PyObject *spec, PyObject *messages, Lead *lead, Py_ssize_t *target) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 4 || !PyUnicode_Check(PyTuple_GET_ITEM(spec, 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(spec, 1)) || !PyUnicode_Check(PyTuple_GET_ITEM(spec, 2))) {
        PyErr_SetString(PyExc_TypeError, "system_prompt must be None or (role: str, separator: str, target role: str, last: bool)");
        return -1;
    }
    int last = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 3));
    if (last < 0) return -1;
    Py_ssize_t n = PyList_GET_SIZE(messages);
    PyObject *first = n ? PyList_GET_ITEM(messages, 0) : NULL;
    PyObject *role = n ? role_of(messages, 0) : NULL;
    if (!role) return PyErr_Occurred() ? -1 : 0;
    if (PyDict_GET_SIZE(first) != 2 || PyUnicode_Compare(role, PyTuple_GET_ITEM(spec, 0)) != 0) return 0;
    PyObject *content = PyDict_GetItemWithError(first, content_key);
    if (!content) return PyErr_Occurred() ? -1 : 0;
    if (!PyUnicode_CheckExact(content)) return 0;
    *target = -1;
    for (Py_ssize_t k = 1; k < n; k++) {
        Py_ssize_t i = last ? n - k : k;
        PyObject *other = role_of(messages, i);
        if (!other && PyErr_Occurred()) return -1;
        if (other && PyUnicode_Compare(other, PyTuple_GET_ITEM(spec, 2)) == 0) {
            *target = i;
            break;
        }
    }
    if (*target < 0) return 2;
    Py_ssize_t len, separator_len;
    const char *text = PyUnicode_AsUTF8AndSize(content, &len);
    if (!text) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return 2;
    }
    const char *separator = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(spec, 1), &separator_len);
    if (!separator) return -1;
    if (len == 0) return 1; /* an empty system prompt joins nothing */
    lead->text = PyMem_Malloc((size_t)(len + separator_len) + 1);
    if (!lead->text) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(lead->text, text, (size_t)len);
    memcpy(lead->text + len, separator, (size_t)separator_len);
    lead->len = (size_t)(len + separator_len);
    lead->narrow = PyUnicode_KIND(content) == PyUnicode_1BYTE_KIND && PyUnicode_IS_ASCII(PyTuple_GET_ITEM(spec, 1));
    return 1;
}

/* The shape argument read: each message's expected role, the index its tokens go to, its first-character
 * guard (borrowed from the tuples; NULL when the shape leaves them out). 1: read; 0: the chat is not of this
 * shape (another length); -1: a malformed shape. */
typedef struct {
    PyObject *roles, *owners, *guards;
} Shape;

static int read_shape(PyObject *spec, Py_ssize_t n, Shape *shape, Py_ssize_t *owners) {
    shape->roles = shape->owners = shape->guards = NULL;
    for (Py_ssize_t i = 0; i < n; i++) owners[i] = i;
    if (spec == Py_None) return 1;
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 3) goto malformed;
    PyObject **slots[3] = {&shape->roles, &shape->owners, &shape->guards};
    for (int k = 0; k < 3; k++) {
        PyObject *item = PyTuple_GET_ITEM(spec, k);
        if (item == Py_None) continue;
        if (!PyTuple_Check(item)) goto malformed;
        if (PyTuple_GET_SIZE(item) != n) {
            if (k == 0) return 0; /* a chat of another length */
            goto malformed;
        }
        *slots[k] = item;
    }
    if (!shape->roles) goto malformed;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(shape->roles, i))) goto malformed;
        if (!shape->owners) continue;
        Py_ssize_t owner = PyLong_Check(PyTuple_GET_ITEM(shape->owners, i)) ? PyLong_AsSsize_t(PyTuple_GET_ITEM(shape->owners, i)) : -1;
        if (owner < 0 || owner >= n) {
            PyErr_Clear();
            goto malformed;
        }
        owners[i] = owner;
    }
    return 1;
malformed:
    PyErr_SetString(PyExc_TypeError, "shape must be None or (roles: tuple of str, owners: None or tuple of int in "
                                     "range, first-character guards: None or tuple), one item per message");
    return -1;
}

#define TK_STACK_MESSAGES 64

static void release(Py_ssize_t *tally, Py_ssize_t *stack) {
    if (tally != stack) PyMem_Free(tally);
}

PyObject *tk_count_messages(const tk_parts_ops *ops, PyObject *roles, PyObject *first_roles, PyObject *forbidden,
                            int strip, Py_ssize_t overhead, PyObject *normalized, PyObject *system_prompt,
                            PyObject *messages, int per_message, PyObject *shape_spec) {
    if (!PyDict_Check(roles) || (first_roles != Py_None && !PyDict_Check(first_roles))) {
        PyErr_SetString(PyExc_TypeError, "roles and first_roles must be dicts (first_roles may be None)");
        return NULL;
    }
    if (!role_key && !(role_key = PyUnicode_InternFromString("role"))) return NULL;
    if (!content_key && !(content_key = PyUnicode_InternFromString("content"))) return NULL;
    if (normalized != Py_None && !PyCallable_Check(normalized)) {
        PyErr_SetString(PyExc_TypeError, "normalized must be None or callable");
        return NULL;
    }
    if (overhead < 0) {
        PyErr_SetString(PyExc_ValueError, "overhead must not be negative");
        return NULL;
    }
    Walk walk = {ops, roles, first_roles, normalized, {{0}}, strip, {{NULL}, {{0}}, 0}, {NULL, 0}};
    if (read_forbidden(forbidden, &walk.forbidden) < 0) return NULL;
    /* An empty chat is the format's own answer (its header alone, or an error): the general path. */
    if (!PyList_CheckExact(messages) || PyList_GET_SIZE(messages) == 0) Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(messages), start = 0, target = -1;
    /* tokens of each message, then owners: two arrays of n in one block (on the stack for a usual chat) */
    Py_ssize_t stack[2 * TK_STACK_MESSAGES];
    Py_ssize_t *tally = n <= TK_STACK_MESSAGES ? stack : PyMem_Malloc((size_t)(2 * n) * sizeof(Py_ssize_t));
    if (!tally) return PyErr_NoMemory();
    memset(tally, 0, (size_t)n * sizeof(Py_ssize_t));
    Py_ssize_t *owners = tally + n;
    Shape shape;
    int of_shape = read_shape(shape_spec, n, &shape, owners);
    if (of_shape <= 0) {
        release(tally, stack);
        if (of_shape < 0) return NULL;
        Py_RETURN_NONE;
    }
    Lead lead = {NULL, 0, 1}, no_lead = {NULL, 0, 1};
    if (system_prompt != Py_None) {
        int taken = read_system_prompt(system_prompt, messages, &lead, &target);
        if (taken < 0 || taken == 2) {
            release(tally, stack);
            if (taken < 0) return NULL;
            Py_RETURN_NONE;
        }
        start = taken; /* the system message counts 0: its text is in the target's */
    }
    size_t total = (size_t)overhead;
    PyObject *result = NULL, *previous_role = NULL;
    int status = 1;
    for (Py_ssize_t i = start; i < n; i++) {
        if (PyList_GET_SIZE(messages) != n) { /* changed by another thread while the GIL was released */
            status = 0;
            break;
        }
        PyObject *message = PyList_GET_ITEM(messages, i);
        Py_INCREF(message);
        size_t tokens = 0;
        PyObject *role = NULL;
        status = count_message(&walk, message, i == start, i == n - 1, previous_role,
                               shape.roles ? PyTuple_GET_ITEM(shape.roles, i) : NULL,
                               shape.guards ? PyTuple_GET_ITEM(shape.guards, i) : NULL, &role,
                               i == target ? &lead : &no_lead, &tokens);
        Py_DECREF(message);
        Py_XSETREF(previous_role, role);
        if (status <= 0) break;
        total += tokens;
        tally[i] = (Py_ssize_t)tokens;
    }
    PyMem_Free(walk.buffer.data);
    PyMem_Free(lead.text);
    for (int k = 0; k < walk.layouts.n; k++) Py_DECREF(walk.layouts.entry[k]);
    Py_XDECREF(previous_role);
    if (status <= 0) {
        release(tally, stack);
        if (status == 0) Py_RETURN_NONE;
        return NULL;
    }
    PyObject *counts = Py_None;
    Py_INCREF(counts);
    if (per_message) {
        /* a message whose boundary is unknown: its tokens belong to its owner (the shape says which) */
        for (Py_ssize_t i = 0; i < n; i++)
            if (owners[i] != i) {
                tally[owners[i]] += tally[i];
                tally[i] = 0;
            }
        Py_SETREF(counts, PyList_New(n));
        for (Py_ssize_t i = 0; counts && i < n; i++) {
            PyObject *count = PyLong_FromSsize_t(tally[i]);
            if (!count) Py_CLEAR(counts);
            else PyList_SET_ITEM(counts, i, count);
        }
    }
    release(tally, stack);
    if (!counts) return NULL;
    PyObject *sum = PyLong_FromSize_t(total);
    result = sum ? PyTuple_Pack(2, sum, counts) : NULL;
    Py_XDECREF(sum);
    Py_DECREF(counts);
    return result;
}

/* UTF-8 bytes of `text`, lone surrogates 3 each (what encode("utf-8", "surrogatepass") gives). */
static size_t utf8_bytes(PyObject *text) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (PyUnicode_IS_ASCII(text)) return (size_t)n;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    size_t bytes = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 point = PyUnicode_READ(kind, data, i);
        bytes += point < 0x80 ? 1 : point < 0x800 ? 2 : point < 0x10000 ? 3 : 4;
    }
    return bytes;
}

/* plain_message_bytes(messages): for a list of exact {"role": str, "content": str} dicts (exact str), the
 * UTF-8 bytes of every key and value (11 for "role" + "content" per message); None for anything else. */
static PyObject *plain_message_bytes(PyObject *Py_UNUSED(module), PyObject *messages) {
    if (!role_key && !(role_key = PyUnicode_InternFromString("role"))) return NULL;
    if (!content_key && !(content_key = PyUnicode_InternFromString("content"))) return NULL;
    if (!PyList_CheckExact(messages)) Py_RETURN_NONE;
    size_t total = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(messages); i++) {
        PyObject *message = PyList_GET_ITEM(messages, i);
        if (!PyDict_CheckExact(message) || PyDict_GET_SIZE(message) != 2) Py_RETURN_NONE;
        PyObject *role = PyDict_GetItemWithError(message, role_key);
        PyObject *content = role ? PyDict_GetItemWithError(message, content_key) : NULL;
        if (!content) {
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        if (!PyUnicode_CheckExact(role) || !PyUnicode_CheckExact(content)) Py_RETURN_NONE;
        total += 11 + utf8_bytes(role) + utf8_bytes(content);
    }
    return PyLong_FromSize_t(total);
}

static PyMethodDef message_count_functions[] = {
    {"plain_message_bytes", plain_message_bytes, METH_O,
     "plain_message_bytes(messages) -> UTF-8 bytes of a plain chat's keys and strings, or None when not plain"},
    {NULL, NULL, 0, NULL},
};

int tk_message_counts_add(PyObject *module) { return PyModule_AddFunctions(module, message_count_functions); }

PyObject *tk_count_messages_call(const tk_parts_ops *ops, PyObject *const *args, Py_ssize_t nargs) {
    /* read by hand (METH_FASTCALL): the layout's partial passes ten arguments per chat, and a tuple plus
     * PyArg_ParseTuple's format cost as much as counting a short message */
    if (nargs != 9 && nargs != 10) {
        PyErr_Format(PyExc_TypeError, "count_messages takes 9 or 10 arguments (%zd given)", nargs);
        return NULL;
    }
    int strip = PyObject_IsTrue(args[3]);
    if (strip < 0) return NULL;
    Py_ssize_t overhead = PyNumber_AsSsize_t(args[4], PyExc_OverflowError);
    if (overhead == -1 && PyErr_Occurred()) return NULL;
    int per_message = PyObject_IsTrue(args[8]);
    if (per_message < 0) return NULL;
    return tk_count_messages(ops, args[0], args[1], args[2], strip, overhead, args[5], args[6], args[7], per_message,
                             nargs == 10 ? args[9] : Py_None);
}
