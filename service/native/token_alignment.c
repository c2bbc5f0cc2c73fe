/* tokend.engine._alignment: where each token's bytes lie in the text it was encoded from.
 *
 *   align(text, ids, table, lead, *, offsets=True)
 *       -> (char_starts, char_ends, byte_starts, byte_ends, cut_tokens, cut_chars)
 *          six bytes objects of native uint32 (memoryview(...).cast("I")), or an int
 *
 * The surface of token i (the bytes it adds to the decoded text) is lead[i] for the first len(lead) tokens
 * and table[ids[i]] after them: an encoding's `token_surfaces` at the start of a sequence, then its
 * per-token surfaces (offsets.py builds both). The surfaces must spell the UTF-8 of `text` exactly, in
 * order. `text` is the caller's str as given: a lone surrogate counts as U+FFFD (3 bytes, 1 index) and a
 * high+low surrogate pair as the character it encodes (4 bytes, 2 indexes), which is how the engine repairs
 * such text before encoding, so character offsets index the caller's string.
 * Per token i: characters [char_starts[i], char_ends[i]) are the smallest run of whole characters holding
 * its bytes (a token holding part of a character covers that character); bytes [byte_starts[i],
 * byte_ends[i]) index the UTF-8 of the (repaired) text. offsets=False leaves these four out (one slot
 * each) when only the cuts are wanted. Cuts: after how many tokens (cut_tokens[j]) the text can be cut on a
 * character boundary, and where (cut_chars[j]); (0, 0) and (n_tokens, len(text)) included, both arrays
 * non-decreasing.
 * When the surfaces do not spell the text, returns the index of the first token that departs from it
 * (n_tokens when they spell only a proper prefix; an id without a surface departs). Texts of 4 GiB of
 * UTF-8 or more (1 G characters when they hold surrogates) raise ValueError.
 *
 * Why C, and why a table: the same loop in Python costs ~0.4 s per 10 MB of English (2.4 M tokens), and
 * so does building a list of surfaces per call; this reads each id, looks its bytes up, compares them
 * with the str's cached UTF-8 (encode made it already) and counts lead bytes: ~15-20 ns per token, most of
 * it touching the bytes objects. Text with surrogates has no UTF-8 form; it is decoded (repaired) a
 * character at a time, ~3x slower, and rare.
 * The GIL is held (the lists are read in place, no copy) but given up for a moment, so a 10 MB text does
 * not stall the other threads of a worker; the lists' lengths are checked again after each such yield.
 * Handed to a waiting thread once per switch interval and a quarter (gil_hand_off.h: why not more
 * often), looked at every ALIGN_YIELD_TOKENS tokens.
 * Kept out of module.c (the BpeCore type) on purpose: it needs no vocabulary of its own and serves any
 * encoding family that implements `token_surfaces`. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "gil_hand_off.h"

#define ALIGN_YIELD_TOKENS 65536

enum { CHAR_STARTS, CHAR_ENDS, BYTE_STARTS, BYTE_ENDS, CUT_TOKENS, CUT_CHARS, N_OUTPUTS };

/* The repaired characters of a str, one at a time (the slow path, for text with surrogates). */
typedef struct {
    int kind;
    const void *data;
    Py_ssize_t n_chars;
    Py_ssize_t index;  /* index in the str of the character being consumed (== n_chars at the end) */
    int width;         /* str indexes it takes: 2 for a surrogate pair, else 1 */
    uint8_t utf8[4];   /* its UTF-8 after repair */
    int utf8_len, consumed;
} TextCursor;

static void cursor_load(TextCursor *cursor) {
    cursor->consumed = 0;
    if (cursor->index >= cursor->n_chars) {
        cursor->utf8_len = 0;
        cursor->width = 0;
        return;
    }
    Py_UCS4 cp = PyUnicode_READ(cursor->kind, cursor->data, cursor->index);
    cursor->width = 1;
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        Py_UCS4 low = cursor->index + 1 < cursor->n_chars ? PyUnicode_READ(cursor->kind, cursor->data, cursor->index + 1) : 0;
        if (cp <= 0xDBFF && low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            cursor->width = 2;
        } else {
            cp = 0xFFFD;
        }
    }
    uint8_t *out = cursor->utf8;
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        cursor->utf8_len = 1;
    } else if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        cursor->utf8_len = 2;
    } else if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        cursor->utf8_len = 3;
    } else {
        out[0] = (uint8_t)(0xF0 | (cp >> 18));
        out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (uint8_t)(0x80 | (cp & 0x3F));
        cursor->utf8_len = 4;
    }
}

/* Consume `len` bytes of the text, which must equal `bytes`; 0 on success, -1 on a mismatch. */
static int cursor_consume(TextCursor *cursor, const uint8_t *bytes, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (cursor->index >= cursor->n_chars || bytes[i] != cursor->utf8[cursor->consumed]) return -1;
        if (++cursor->consumed == cursor->utf8_len) {
            cursor->index += cursor->width;
            cursor_load(cursor);
        }
    }
    return 0;
}

static int is_continuation(uint8_t byte) { return (byte & 0xC0) == 0x80; }

typedef struct {
    uint32_t *out[N_OUTPUTS];
    int offsets; /* 0: the per-token arrays have one slot (only the cuts are wanted) */
    Py_ssize_t n_cuts;
    uint64_t byte_pos;
    /* fast path: the text's UTF-8 */
    const uint8_t *utf8;
    size_t n_bytes;
    size_t chars; /* lead bytes before byte_pos = characters started */
    /* slow path */
    TextCursor cursor;
} Walk;

static void add_cut(Walk *w, Py_ssize_t n_tokens_before, size_t char_pos) {
    w->out[CUT_TOKENS][w->n_cuts] = (uint32_t)n_tokens_before;
    w->out[CUT_CHARS][w->n_cuts] = (uint32_t)char_pos;
    w->n_cuts++;
}

/* Token i with these bytes; 0, or -1 when they depart from the text. A token starting on a continuation
 * byte starts in the character before; the characters up to its end are the lead bytes before its end,
 * whether or not it ends inside a character. */
static int step_utf8(Walk *w, Py_ssize_t i, const uint8_t *bytes, size_t len) {
    Py_ssize_t slot = w->offsets ? i : 0;
    size_t pos = (size_t)w->byte_pos;
    if (len > w->n_bytes - pos || memcmp(bytes, w->utf8 + pos, len) != 0) return -1;
    w->out[CHAR_STARTS][slot] = (uint32_t)(w->chars - (pos < w->n_bytes && is_continuation(w->utf8[pos])));
    w->out[BYTE_STARTS][slot] = (uint32_t)pos;
    for (size_t k = 0; k < len; k++) w->chars += !is_continuation(bytes[k]);
    pos += len;
    w->byte_pos = pos;
    w->out[CHAR_ENDS][slot] = (uint32_t)w->chars;
    w->out[BYTE_ENDS][slot] = (uint32_t)pos;
    if (pos == w->n_bytes || !is_continuation(w->utf8[pos])) add_cut(w, i + 1, w->chars);
    return 0;
}

static int step_cursor(Walk *w, Py_ssize_t i, const uint8_t *bytes, size_t len) {
    Py_ssize_t slot = w->offsets ? i : 0;
    TextCursor *cursor = &w->cursor;
    w->out[CHAR_STARTS][slot] = (uint32_t)cursor->index;
    w->out[BYTE_STARTS][slot] = (uint32_t)w->byte_pos;
    if (cursor_consume(cursor, bytes, len) < 0) return -1;
    w->byte_pos += len;
    w->out[BYTE_ENDS][slot] = (uint32_t)w->byte_pos;
    if (cursor->consumed == 0) {
        w->out[CHAR_ENDS][slot] = (uint32_t)cursor->index;
        add_cut(w, i + 1, (size_t)cursor->index);
    } else {
        w->out[CHAR_ENDS][slot] = (uint32_t)(cursor->index + cursor->width);
    }
    return 0;
}

/* The surface of token i: lead[i] for the first len(lead) tokens, else table[ids[i]]. NULL without an
 * exception when the id has none (not an int, out of range, no bytes in the table); NULL with TypeError
 * when lead[i] is not bytes. Borrowed, valid while the GIL is held. */
static PyObject *surface_of(PyObject *ids, PyObject *table, PyObject *lead, Py_ssize_t i) {
    if (i < PyList_GET_SIZE(lead)) {
        PyObject *surface = PyList_GET_ITEM(lead, i);
        if (PyBytes_Check(surface)) return surface;
        PyErr_Format(PyExc_TypeError, "lead[%zd]: expected bytes, got %.100s", i, Py_TYPE(surface)->tp_name);
        return NULL;
    }
    PyObject *id_object = PyList_GET_ITEM(ids, i);
    Py_ssize_t id = PyLong_Check(id_object) ? PyLong_AsSsize_t(id_object) : -1;
    if (id < 0 || id >= PyList_GET_SIZE(table)) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *surface = PyList_GET_ITEM(table, id);
    return PyBytes_Check(surface) ? surface : NULL;
}

static PyObject *align(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"text", "ids", "table", "lead", "offsets", NULL};
    PyObject *text, *ids, *table, *lead;
    int offsets = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UO!O!O!|$p:align", keywords, &text, &PyList_Type, &ids,
                                     &PyList_Type, &table, &PyList_Type, &lead, &offsets))
        return NULL;
    Py_ssize_t n_tokens = PyList_GET_SIZE(ids);
    if (PyList_GET_SIZE(lead) > n_tokens) {
        PyErr_SetString(PyExc_ValueError, "lead has more surfaces than there are ids");
        return NULL;
    }
    Walk w = {0};
    w.offsets = offsets;
    Py_ssize_t n_bytes = 0;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n_bytes); /* cached in the str: free after encode */
    if (!utf8) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return NULL;
        PyErr_Clear(); /* surrogates: the cursor repairs them */
        w.cursor = (TextCursor){PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), 0, 0, {0}, 0, 0};
        cursor_load(&w.cursor);
    } else {
        w.utf8 = (const uint8_t *)utf8;
        w.n_bytes = (size_t)n_bytes;
    }
    /* Offsets are 32-bit. Repaired UTF-8 takes at most 4 bytes per str index (the slow path's bound). */
    if ((uint64_t)n_bytes >= UINT32_MAX || (!utf8 && (uint64_t)PyUnicode_GET_LENGTH(text) >= UINT32_MAX / 4)) {
        PyErr_SetString(PyExc_ValueError, "texts of 4 GiB or more cannot be aligned (offsets are 32-bit)");
        return NULL;
    }
    PyObject *buffers[N_OUTPUTS] = {NULL};
    PyObject *result = NULL;
    /* Without offsets the per-token arrays get one slot, rewritten for every token: 40 MB of fresh memory
     * for 10 MB of text costs ~15 ms in page faults alone, so truncate and chunk ask only for the cuts. */
    for (int k = 0; k < N_OUTPUTS; k++) {
        Py_ssize_t size = k >= CUT_TOKENS ? n_tokens + 1 : offsets ? n_tokens : 1;
        buffers[k] = PyBytes_FromStringAndSize(NULL, size * (Py_ssize_t)sizeof(uint32_t));
        if (!buffers[k]) goto done;
        w.out[k] = (uint32_t *)PyBytes_AS_STRING(buffers[k]);
    }
    add_cut(&w, 0, 0);
    TkGilHandOff hand_off = {0, 0};
    Py_ssize_t mismatch = -1;
    for (Py_ssize_t i = 0; i < n_tokens && mismatch < 0; i++) {
        if (i % ALIGN_YIELD_TOKENS == ALIGN_YIELD_TOKENS - 1 && tk_gil_hand_off(&hand_off)) {
            if (PyList_GET_SIZE(ids) != n_tokens || PyList_GET_SIZE(lead) > n_tokens) {
                PyErr_SetString(PyExc_RuntimeError, "the ids or lead list changed size during align");
                goto done;
            }
        }
        PyObject *item = surface_of(ids, table, lead, i);
        if (!item) {
            if (PyErr_Occurred()) goto done;
            mismatch = i;
            break;
        }
        const uint8_t *bytes = (const uint8_t *)PyBytes_AS_STRING(item);
        size_t len = (size_t)PyBytes_GET_SIZE(item);
        if ((utf8 ? step_utf8(&w, i, bytes, len) : step_cursor(&w, i, bytes, len)) < 0) mismatch = i;
    }
    if (mismatch < 0 && (utf8 ? w.byte_pos != w.n_bytes : w.cursor.index < w.cursor.n_chars || w.cursor.consumed))
        mismatch = n_tokens;
    if (mismatch >= 0) {
        result = PyLong_FromSsize_t(mismatch);
        goto done;
    }
    for (int k = CUT_TOKENS; k <= CUT_CHARS; k++)
        if (_PyBytes_Resize(&buffers[k], w.n_cuts * (Py_ssize_t)sizeof(uint32_t)) < 0) goto done;
    result = PyTuple_New(N_OUTPUTS);
    if (result) {
        for (int k = 0; k < N_OUTPUTS; k++) {
            PyTuple_SET_ITEM(result, k, buffers[k]);
            buffers[k] = NULL;
        }
    }
done:
    for (int k = 0; k < N_OUTPUTS; k++) Py_XDECREF(buffers[k]);
    return result;
}

static PyMethodDef alignment_functions[] = {
    {"align", (PyCFunction)(void (*)(void))align, METH_VARARGS | METH_KEYWORDS,
     "align(text, ids, table, lead, *, offsets=True) -> (char_starts, char_ends, byte_starts, byte_ends, "
     "cut_tokens, cut_chars) as uint32 bytes (per-token arrays of one slot when offsets=False), or the index of "
     "the first token whose surface departs from the text"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef alignment_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tokend.engine._alignment",
    .m_doc = "Token surfaces aligned with the text they spell (see service/native/token_alignment.c).",
    .m_size = -1,
    .m_methods = alignment_functions,
};

PyMODINIT_FUNC PyInit__alignment(void) { return PyModule_Create(&alignment_module); }
