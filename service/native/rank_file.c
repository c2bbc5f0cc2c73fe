/* tiktoken rank files in their canonical form, parsed in C (cold start), a slice of lines a call
 * (tokend.engine.tiktoken_ranks.parse_canonical_ranks joins them):
 *
 *   parse_canonical_ranks(b"YQ== 0\nYg== 1\n")  -> {b"a": 0, b"b": 1}
 *   parse_canonical_ranks(b"YQ==  0\n")          -> None   (not canonical: two spaces)
 *
 * The spec is the Python parser (tokend.engine.tiktoken_ranks.load_tiktoken_ranks); this is its fast path
 * for what every published rank file is: lines "base64 rank\n", one space, canonical base64 (no whitespace,
 * padding only at the end, unused bits zero), a rank of at most 10 ASCII digits below 2**24, each token and
 * rank once, empty lines allowed. Anything else returns None and the Python parser decides (with its
 * errors naming the line), so this never accepts what it rejects nor reads a line differently. ~10x faster
 * than the Python loop (base64 module + int() per line): cl100k_base's 100,256 lines in ~10 ms. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "rank_file.h"

static int8_t base64_value[256];

static void init_base64_table(void) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset(base64_value, -1, sizeof base64_value);
    for (int i = 0; i < 64; i++) base64_value[(uint8_t)alphabet[i]] = (int8_t)i;
}

/* Canonical base64 `in` (len a positive multiple of 4) decoded into `out`; its length, or -1. */
static Py_ssize_t decode_base64(const uint8_t *in, size_t len, uint8_t *out) {
    if (len == 0 || len % 4) return -1;
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int a = base64_value[in[i]], b = base64_value[in[i + 1]];
        int last = i + 4 == len;
        int c = last && pad == 2 ? 0 : base64_value[in[i + 2]];
        int d = last && pad >= 1 ? 0 : base64_value[in[i + 3]];
        if ((a | b | c | d) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[n++] = (uint8_t)(v >> 16);
        if (last && pad == 2) {
            if (v & 0xFFFF) return -1; /* unused bits set: not canonical */
            break;
        }
        out[n++] = (uint8_t)(v >> 8);
        if (last && pad == 1) {
            if (v & 0xFF) return -1;
            break;
        }
        out[n++] = (uint8_t)v;
    }
    return (Py_ssize_t)n;
}

/* A rank of 1..10 ASCII digits below 2**24 (what real vocabularies use; it bounds the table of seen ranks);
 * -1 otherwise (then the Python parser decides). */
static int64_t parse_rank(const uint8_t *digits, size_t len) {
    if (len == 0 || len > 10) return -1;
    int64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (digits[i] < '0' || digits[i] > '9') return -1;
        value = value * 10 + (digits[i] - '0');
    }
    return value < (1 << 24) ? value : -1;
}

/* parse_canonical_rank_lines(data, offset, max_lines, ranks, seen): the lines of `data` from byte `offset`,
 * at most `max_lines` of them, added to the dict `ranks`; `seen` (a writable buffer, zero at the first call)
 * marks the ranks given so far. Returns the offset after the last line read (len(data) at the end), or -1
 * when a line is not canonical, repeats a token or a rank, or has a rank past `seen` (then the Python
 * parser decides). The caller goes a slice of lines at a time (tiktoken_ranks.py): one call over
 * o200k_base's 200,000 lines held the GIL ~46 ms, which a server worker loading a model while it serves
 * made every other call wait. */
static PyObject *parse_canonical_rank_lines(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer view, seen_view;
    Py_ssize_t offset, max_lines;
    PyObject *ranks;
    if (!PyArg_ParseTuple(args, "y*nnO!w*", &view, &offset, &max_lines, &PyDict_Type, &ranks, &seen_view)) return NULL;
    PyObject *result = NULL;
    if (offset < 0 || offset > view.len || max_lines < 1) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= offset <= len(data) and max_lines >= 1");
        goto done;
    }
    const uint8_t *data = view.buf, *end = data + view.len, *line = data + offset;
    uint8_t *seen = seen_view.buf;
    uint8_t token[768]; /* a token's bytes: base64 of at most 1,024 chars; longer lines go to Python */
    int canonical = 1;
    for (Py_ssize_t lines = 0; line < end && lines < max_lines; lines++) {
        const uint8_t *newline = memchr(line, '\n', (size_t)(end - line));
        const uint8_t *line_end = newline ? newline : end;
        if (line_end == line) { /* an empty line */
            line = newline + 1;     /* line < end, so there is a newline here */
            continue;
        }
        const uint8_t *space = memchr(line, ' ', (size_t)(line_end - line));
        size_t token_len = space ? (size_t)(space - line) : 0;
        Py_ssize_t n = -1;
        int64_t rank = -1;
        if (space && token_len <= 1024) {
            n = decode_base64(line, token_len, token);
            rank = parse_rank(space + 1, (size_t)(line_end - space - 1));
        }
        if (n < 0 || rank < 0 || rank >= seen_view.len || seen[rank]) { /* a \r, a tab, a sign, ...: Python's rules */
            canonical = 0;
            break;
        }
        PyObject *key = PyBytes_FromStringAndSize((const char *)token, n);
        PyObject *value = key ? PyLong_FromLongLong(rank) : NULL;
        Py_ssize_t before = PyDict_GET_SIZE(ranks);
        int failed = !value || PyDict_SetItem(ranks, key, value) < 0;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (failed) goto done;
        if (PyDict_GET_SIZE(ranks) == before) { /* a token listed twice: Python's error */
            canonical = 0;
            break;
        }
        seen[rank] = 1;
        line = newline ? newline + 1 : end;
    }
    result = PyLong_FromSsize_t(canonical ? (Py_ssize_t)(line - data) : -1);
done:
    PyBuffer_Release(&view);
    PyBuffer_Release(&seen_view);
    return result;
}

static PyMethodDef rank_file_functions[] = {
    {"parse_canonical_rank_lines", parse_canonical_rank_lines, METH_VARARGS,
     "parse_canonical_rank_lines(data, offset, max_lines, ranks, seen) -> offset after the lines added to "
     "ranks, or -1 when a line is not in the canonical form"},
    {NULL, NULL, 0, NULL},
};

int tk_rank_file_add(PyObject *module) {
    init_base64_table();
    return PyModule_AddFunctions(module, rank_file_functions);
}
