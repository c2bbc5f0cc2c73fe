/* tokend.engine._alignment: where each token's bytes lie in the text it was encoded from.
 *
 *   align(text, ids, table, lead, *, offsets=True)  ==  prepare(text, ids, table, lead, offsets=...).run()
 *       -> (char_starts, char_ends, byte_starts, byte_ends, cut_tokens, cut_chars)
 *          six bytes objects of native uint32 (memoryview(...).cast("I")), or an int
 *
 * The surface of token i (the bytes it adds to the decoded text) is lead[i] for the first len(lead) tokens
 * and table[ids[i]] after them: an encoding's `token_surfaces` at the start of a sequence, then its
 * per-token surfaces (offsets.py builds both; `table` a SurfaceTable, token_surfaces.h, or a list of bytes
 * or None, flattened per call). `ids`: a list of ints or a buffer of native uint32 (array('I'),
 * encode_to_buffer's memoryview). The surfaces must spell the UTF-8 of `text` exactly, in order. `text` is
 * the caller's str as given: a lone surrogate counts as U+FFFD (3 bytes, 1 index) and a high+low surrogate
 * pair as the character it encodes (4 bytes, 2 indexes), which is how the engine repairs such text before
 * encoding, so character offsets index the caller's string.
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
 * Two steps, so that a service can run the long one where it likes (a bulk lane's thread):
 * - prepare (GIL held, on the caller's thread): checks the arguments, copies the ids into a uint32 array
 *   (~1 ns an id from a list) and the lead surfaces into a flat block, takes the str's UTF-8 (cached in the
 *   str: the encode made it already) and allocates the answer.
 * - run (the GIL released for the whole walk): reads only memory nobody may change meanwhile (the str's
 *   characters or cached UTF-8, the SurfaceTable's block, the copies, the answer's buffers, each owned or
 *   referenced by the walk object) and honours the call's stop (tokend.engine.call_stop, read when run
 *   starts, in the running thread's context) every ALIGN_STOP_TOKENS tokens (~1 ms): CallStopped.
 *   A walk runs once.
 *
 * Why C, and why a table: the same loop in Python costs ~0.4 s per 10 MB of English (2.4 M tokens), and
 * so does building a list of surfaces per call; this reads each id, looks its bytes up, compares them
 * with the str's cached UTF-8 and counts lead bytes: ~10-15 ns per token. Text with surrogates has no UTF-8
 * form; it is decoded (repaired) a character at a time, ~3x slower, and rare.
 * Kept out of module.c (the BpeCore type) on purpose: it needs no vocabulary of its own and serves any
 * encoding family that implements `token_surfaces`. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "call_stop.h"
#include "call_stopped.h"
#include "token_surfaces.h"

/* Tokens between two looks at the call's stop: ~0.5-1 ms of walk, a clock read each (~25 ns). */
#define ALIGN_STOP_TOKENS 65536

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
    /* fast path: the text's UTF-8 (NULL: the slow path's cursor) */
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

/* ---- the walk object: prepare() makes it, run() walks without the GIL ------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *text;             /* the str walked (its characters or cached UTF-8 are read) */
    PyObject *table;            /* the SurfaceTable */
    uint32_t *ids;              /* n_tokens; NO_SURFACE where the id cannot have one */
    Py_ssize_t n_tokens;
    uint8_t *lead_bytes;        /* the lead surfaces, one after the other */
    size_t *lead_ends;          /* n_lead: where each ends in lead_bytes */
    Py_ssize_t n_lead;
    PyObject *buffers[N_OUTPUTS];
    Walk walk;
    int state;                  /* 0 prepared, 1 running or ran */
} AlignmentWalk;

#define NO_SURFACE UINT32_MAX /* above every table's ids (a SurfaceTable holds fewer than 2**32 - 1) */

static PyTypeObject AlignmentWalk_Type;

static void walk_dealloc(AlignmentWalk *self) {
    Py_XDECREF(self->text);
    Py_XDECREF(self->table);
    PyMem_Free(self->ids);
    PyMem_Free(self->lead_bytes);
    PyMem_Free(self->lead_ends);
    for (int k = 0; k < N_OUTPUTS; k++) Py_XDECREF(self->buffers[k]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An id of a list as a uint32 (NO_SURFACE: not an int, negative or too large). Ints of one digit (below 2**30,
 * every real id) are read in place: PyLong_AsLongAndOverflow for each was ~3.5 ns an id, the GIL held. */
static inline uint32_t id_of(PyObject *id_object) {
    if (PyLong_CheckExact(id_object)) {
#if PY_VERSION_HEX >= 0x030C0000
        if (PyUnstable_Long_IsCompact((PyLongObject *)id_object)) {
            Py_ssize_t value = PyUnstable_Long_CompactValue((PyLongObject *)id_object);
            return value >= 0 && (uint64_t)value < NO_SURFACE ? (uint32_t)value : NO_SURFACE;
        }
#else
        Py_ssize_t size = Py_SIZE(id_object);
        if (size == 0) return 0;
        if (size == 1) return (uint32_t)((PyLongObject *)id_object)->ob_digit[0];
#endif
    }
    if (!PyLong_Check(id_object)) return NO_SURFACE;
    int overflow;
    long value = PyLong_AsLongAndOverflow(id_object, &overflow);
    return !overflow && value >= 0 && (unsigned long)value < NO_SURFACE ? (uint32_t)value : NO_SURFACE;
}

/* ids (a list of ints, or a buffer of uint32) copied to self->ids; -1 with an exception. */
static int copy_ids(AlignmentWalk *self, PyObject *ids) {
    if (PyList_Check(ids)) {
        Py_ssize_t n = PyList_GET_SIZE(ids);
        self->ids = (uint32_t *)PyMem_Malloc((size_t)(n ? n : 1) * sizeof(uint32_t));
        if (!self->ids) return PyErr_NoMemory(), -1;
        for (Py_ssize_t i = 0; i < n; i++) self->ids[i] = id_of(PyList_GET_ITEM(ids, i));
        self->n_tokens = n;
        return 0;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(ids, &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "ids must be a list of ints or a buffer of uint32, got %.100s", Py_TYPE(ids)->tp_name);
        return -1;
    }
    const char *format = view.format ? view.format : "B";
    if (*format == '=' || *format == '@') format++;
    if (view.itemsize != 4 || strcmp(format, "I") != 0) {
        PyErr_Format(PyExc_TypeError, "an ids buffer must hold native uint32 ('I'), got format '%s'", view.format ? view.format : "B");
        PyBuffer_Release(&view);
        return -1;
    }
    Py_ssize_t n = view.len / 4;
    self->ids = (uint32_t *)PyMem_Malloc((size_t)(n ? n : 1) * sizeof(uint32_t));
    if (!self->ids) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory(), -1;
    }
    memcpy(self->ids, view.buf, (size_t)n * sizeof(uint32_t));
    PyBuffer_Release(&view);
    self->n_tokens = n;
    return 0;
}

static int copy_lead(AlignmentWalk *self, PyObject *lead) {
    Py_ssize_t n = PyList_GET_SIZE(lead);
    size_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *surface = PyList_GET_ITEM(lead, i);
        if (!PyBytes_Check(surface)) {
            PyErr_Format(PyExc_TypeError, "lead[%zd]: expected bytes, got %.100s", i, Py_TYPE(surface)->tp_name);
            return -1;
        }
        total += (size_t)PyBytes_GET_SIZE(surface);
    }
    self->lead_bytes = (uint8_t *)PyMem_Malloc(total ? total : 1);
    self->lead_ends = (size_t *)PyMem_Malloc((size_t)(n ? n : 1) * sizeof(size_t));
    if (!self->lead_bytes || !self->lead_ends) return PyErr_NoMemory(), -1;
    size_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *surface = PyList_GET_ITEM(lead, i);
        memcpy(self->lead_bytes + at, PyBytes_AS_STRING(surface), (size_t)PyBytes_GET_SIZE(surface));
        at += (size_t)PyBytes_GET_SIZE(surface);
        self->lead_ends[i] = at;
    }
    self->n_lead = n;
    return 0;
}

static PyObject *prepare(PyObject *module, PyObject *args, PyObject *kwargs) {
    (void)module;
    static char *keywords[] = {"text", "ids", "table", "lead", "offsets", NULL};
    PyObject *text, *ids, *table, *lead;
    int offsets = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UOOO!|$p:prepare", keywords, &text, &ids, &table, &PyList_Type,
                                     &lead, &offsets))
        return NULL;
    AlignmentWalk *self = PyObject_New(AlignmentWalk, &AlignmentWalk_Type);
    if (!self) return NULL;
    self->text = Py_NewRef(text);
    self->table = NULL;
    self->ids = NULL;
    self->lead_bytes = NULL;
    self->lead_ends = NULL;
    self->n_tokens = self->n_lead = 0;
    for (int k = 0; k < N_OUTPUTS; k++) self->buffers[k] = NULL;
    memset(&self->walk, 0, sizeof(Walk));
    self->state = 0;
    if (PyObject_TypeCheck(table, &TkSurfaceTable_Type)) {
        self->table = Py_NewRef(table);
    } else if (PyList_Check(table)) { /* a list of surfaces: flattened for this call */
        self->table = PyObject_CallOneArg((PyObject *)&TkSurfaceTable_Type, table);
        if (!self->table) goto fail;
    } else {
        PyErr_Format(PyExc_TypeError, "table must be a SurfaceTable or a list, got %.100s", Py_TYPE(table)->tp_name);
        goto fail;
    }
    if (copy_ids(self, ids) < 0) goto fail;
    if (PyList_GET_SIZE(lead) > self->n_tokens) {
        PyErr_SetString(PyExc_ValueError, "lead has more surfaces than there are ids");
        goto fail;
    }
    if (copy_lead(self, lead) < 0) goto fail;
    Walk *w = &self->walk;
    w->offsets = offsets;
    Py_ssize_t n_bytes = 0;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n_bytes); /* cached in the str: free after encode */
    if (!utf8) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) goto fail;
        PyErr_Clear(); /* surrogates: the cursor repairs them */
        w->cursor = (TextCursor){PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), 0, 0, {0}, 0, 0};
        cursor_load(&w->cursor);
    } else {
        w->utf8 = (const uint8_t *)utf8;
        w->n_bytes = (size_t)n_bytes;
    }
    /* Offsets are 32-bit. Repaired UTF-8 takes at most 4 bytes per str index (the slow path's bound). */
    if ((uint64_t)n_bytes >= UINT32_MAX || (!utf8 && (uint64_t)PyUnicode_GET_LENGTH(text) >= UINT32_MAX / 4)) {
        PyErr_SetString(PyExc_ValueError, "texts of 4 GiB or more cannot be aligned (offsets are 32-bit)");
        goto fail;
    }
    /* Without offsets the per-token arrays get one slot, rewritten for every token: 40 MB of fresh memory
     * for 10 MB of text costs ~15 ms in page faults alone, so truncate and chunk ask only for the cuts. */
    for (int k = 0; k < N_OUTPUTS; k++) {
        Py_ssize_t size = k >= CUT_TOKENS ? self->n_tokens + 1 : offsets ? self->n_tokens : 1;
        self->buffers[k] = PyBytes_FromStringAndSize(NULL, size * (Py_ssize_t)sizeof(uint32_t));
        if (!self->buffers[k]) goto fail;
        w->out[k] = (uint32_t *)PyBytes_AS_STRING(self->buffers[k]);
        if (size == 1) w->out[k][0] = 0; /* a slot no token may write (no tokens): not left as heap garbage */
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* The walk proper (no GIL): the index of the first token that departs, -1 when all spell the text, -2 when
 * the call's stop came first. */
static Py_ssize_t walk_tokens(AlignmentWalk *self, const tk_call_stop *stop) {
    Walk *w = &self->walk;
    const TkSurfaceTable *table = (const TkSurfaceTable *)self->table;
    int fast = w->utf8 != NULL;
    add_cut(w, 0, 0);
    for (Py_ssize_t i = 0; i < self->n_tokens; i++) {
        if (i % ALIGN_STOP_TOKENS == ALIGN_STOP_TOKENS - 1 && tk_call_stop_due(stop)) return -2;
        const uint8_t *bytes;
        size_t len;
        if (i < self->n_lead) {
            size_t begin = i ? self->lead_ends[i - 1] : 0;
            bytes = self->lead_bytes + begin;
            len = self->lead_ends[i] - begin;
        } else if (!tk_surface_of(table, self->ids[i], &bytes, &len)) {
            return i;
        }
        if ((fast ? step_utf8(w, i, bytes, len) : step_cursor(w, i, bytes, len)) < 0) return i;
    }
    if (fast ? w->byte_pos != w->n_bytes : w->cursor.index < w->cursor.n_chars || w->cursor.consumed)
        return self->n_tokens;
    return -1;
}

static PyObject *walk_run(AlignmentWalk *self, PyObject *unused) {
    (void)unused;
    if (self->state != 0) {
        PyErr_SetString(PyExc_RuntimeError, "an alignment walk runs once");
        return NULL;
    }
    self->state = 1;
    double deadline = 0;
    Py_buffer flag;
    int has_stop = tk_read_call_stop(&deadline, &flag);
    if (has_stop < 0) return NULL;
    tk_call_stop stop = {deadline, has_stop ? (const uint8_t *)flag.buf : NULL};
    Py_ssize_t mismatch;
    Py_BEGIN_ALLOW_THREADS
    mismatch = walk_tokens(self, has_stop ? &stop : NULL);
    Py_END_ALLOW_THREADS
    if (has_stop) PyBuffer_Release(&flag);
    if (mismatch == -2) {
        tk_raise_call_stopped();
        return NULL;
    }
    if (mismatch >= 0) return PyLong_FromSsize_t(mismatch);
    for (int k = CUT_TOKENS; k <= CUT_CHARS; k++)
        if (_PyBytes_Resize(&self->buffers[k], self->walk.n_cuts * (Py_ssize_t)sizeof(uint32_t)) < 0) return NULL;
    PyObject *result = PyTuple_New(N_OUTPUTS);
    if (!result) return NULL;
    for (int k = 0; k < N_OUTPUTS; k++) {
        PyTuple_SET_ITEM(result, k, self->buffers[k]);
        self->buffers[k] = NULL;
    }
    return result;
}

static PyObject *walk_text_bytes(AlignmentWalk *self, void *closure) {
    (void)closure;
    return PyLong_FromSize_t(self->walk.utf8 ? self->walk.n_bytes : 4 * (size_t)self->walk.cursor.n_chars);
}

static PyMethodDef walk_methods[] = {
    {"run", (PyCFunction)walk_run, METH_NOARGS,
     "run() -> align's answer: the walk, with the GIL released throughout (once; CallStopped at the call's stop)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef walk_getset[] = {
    {"text_bytes", (getter)walk_text_bytes, NULL, "the size of the text walked, in bytes (an upper bound with surrogates)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject AlignmentWalk_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokend.engine._alignment.AlignmentWalk",
    .tp_basicsize = sizeof(AlignmentWalk),
    .tp_dealloc = (destructor)walk_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A prepared alignment (prepare()); run() walks it without the GIL",
    .tp_methods = walk_methods,
    .tp_getset = walk_getset,
};

static PyObject *align(PyObject *module, PyObject *args, PyObject *kwargs) {
    PyObject *walk = prepare(module, args, kwargs);
    if (!walk) return NULL;
    PyObject *result = walk_run((AlignmentWalk *)walk, NULL);
    Py_DECREF(walk);
    return result;
}

static PyMethodDef alignment_functions[] = {
    {"align", (PyCFunction)(void (*)(void))align, METH_VARARGS | METH_KEYWORDS,
     "align(text, ids, table, lead, *, offsets=True) -> (char_starts, char_ends, byte_starts, byte_ends, "
     "cut_tokens, cut_chars) as uint32 bytes (per-token arrays of one slot when offsets=False), or the index of "
     "the first token whose surface departs from the text"},
    {"prepare", (PyCFunction)(void (*)(void))prepare, METH_VARARGS | METH_KEYWORDS,
     "prepare(text, ids, table, lead, *, offsets=True) -> AlignmentWalk: align's arguments checked and copied "
     "(GIL held); its run() walks without the GIL"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef alignment_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tokend.engine._alignment",
    .m_doc = "Token surfaces aligned with the text they spell (see service/native/token_alignment.c).",
    .m_size = -1,
    .m_methods = alignment_functions,
};

PyMODINIT_FUNC PyInit__alignment(void) {
    if (PyType_Ready(&TkSurfaceTable_Type) < 0 || PyType_Ready(&AlignmentWalk_Type) < 0) return NULL;
    PyObject *module = PyModule_Create(&alignment_module);
    if (!module) return NULL;
    if (PyModule_AddObjectRef(module, "SurfaceTable", (PyObject *)&TkSurfaceTable_Type) < 0 ||
        PyModule_AddObjectRef(module, "AlignmentWalk", (PyObject *)&AlignmentWalk_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
