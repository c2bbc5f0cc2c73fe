/* tokend.engine._chunk_plan: where chunking's next chunks end if each one's own encoding fits.
 *
 *   plan(text, cut_tokens, cut_chars, protected, kinds, max_tokens, overlap, window_tokens,
 *        start, previous_end, limit) -> bytes of native uint32 pairs (start, end), one pair a chunk
 *   separator_cut(text, kind, low, high) -> int or None
 *
 * `plan` is engine/chunking.py's chunk loop with the first attempt of `_Chunker.chunk_end` for every chunk
 * (the furthest cut the whole encoding puts within the budget, moved back to a separator) and
 * `_Chunker.next_start` between them: up to `limit` chunks from (start, previous_end), the last one ending
 * at len(text) or the limit reached. It does not encode: chunking.py encodes each planned chunk and keeps
 * the plan while the chunk's own encoding fits, which is the first attempt's own test, so the chunks are the
 * same as the Python loop's by construction; a chunk that overshoots goes to the Python search from there.
 * cut_tokens, cut_chars: the cut grid (buffers of uint32, offsets.py's Alignment); protected: uint32 pairs
 * (start, end) of special-token text, sorted, disjoint; kinds: separator kinds in order (0 paragraph,
 * 1 sentence, 2 whitespace).
 *
 * `separator_cut` is separators.py's `last_separator_cut` for kind 0/1/2: the reverse `regex` searches
 * written as the conditions on the characters before (and the one after) a cut that those patterns test,
 * and the same window: two characters past `high` count as context, and after a match that ends past `high`
 * the window ends one character before that match's end (so a later look-ahead cannot see past it).
 * Whitespace (`\s` of the `regex` module): the 25 White_Space code points (tests/engine/test_chunk_plan.py
 * holds the list to `regex` over every code point and this function to `last_separator_cut` on random text).
 *
 * Why C: the Python loop cost ~10 us a chunk (three reverse regex searches for prefer="paragraph", a dozen
 * bisects and min/max), so 100,000 one-token chunks held a worker's GIL for over a second (docs/decisions.md,
 * "Calls with many chunks"); here a chunk's plan is well under a microsecond. The GIL is held (a batch is
 * short: chunking.py asks for at most CHUNK_PLAN_BATCH chunks a call). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { KIND_PARAGRAPH, KIND_SENTENCE, KIND_WHITESPACE, N_KINDS };

#define HUGE_TOKENS ((int64_t)1 << 40) /* past every uint32 token count */

typedef struct {
    int kind;
    const void *data;
    Py_ssize_t n;
} Text;

static inline Py_UCS4 at(const Text *t, Py_ssize_t i) { return PyUnicode_READ(t->kind, t->data, i); }

/* `\s` of the regex module: Unicode White_Space. */
static inline int is_space(Py_UCS4 c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static inline int is_terminator(Py_UCS4 c) { return c == '.' || c == '!' || c == '?' || c == 0x2026; }
static inline int is_closer(Py_UCS4 c) { return c == '"' || c == '\'' || c == 0x201D || c == 0x2019 || c == ')' || c == ']'; }
static inline int is_cjk_stop(Py_UCS4 c) { return c == 0x3002 || c == 0xFF01 || c == 0xFF1F; }
static inline int is_cjk_closer(Py_UCS4 c) { return is_closer(c) || c == 0x300D || c == 0x300F; }

/* The last cut of `kind` with low < cut <= high, or -1 (separators.py's last_separator_cut). A match lies in
 * [low, end); its cut is where it ends (paragraph, sentence) or starts (whitespace). */
static Py_ssize_t separator_cut_at(const Text *t, int kind, Py_ssize_t low, Py_ssize_t high) {
    Py_ssize_t end = high + 2 < t->n ? high + 2 : t->n;
    for (;;) {
        Py_ssize_t found = -1;
        /* a run of closers before c ends where the previous c's did (c descends): looked up once a run, or a
         * text of closers would cost its window squared, as the reverse search does */
        Py_ssize_t run_end = -1, run_start = -1;
        for (Py_ssize_t c = end; c > low && found < 0; c--) {
            Py_UCS4 before = at(t, c - 1);
            if (kind == KIND_PARAGRAPH) {
                /* \n[^\S\n]*\n ending at c */
                if (before != '\n') continue;
                Py_ssize_t j = c - 2;
                while (j >= low && at(t, j) != '\n' && is_space(at(t, j))) j--;
                if (j >= low && at(t, j) == '\n') found = c;
            } else if (kind == KIND_SENTENCE) {
                /* [.!?…]+["'”’)\]]*(?=\s) | [。！？]+["'”’)\]」』]* | \n, ending at c */
                if (before == '\n') {
                    found = c;
                    continue;
                }
                if (c < end && is_space(at(t, c))) {
                    Py_ssize_t j = c - 1;
                    while (j >= low && is_closer(at(t, j))) j--;
                    if (j >= low && is_terminator(at(t, j))) {
                        found = c;
                        continue;
                    }
                }
                Py_ssize_t j;
                if (is_cjk_closer(before)) {
                    if (run_end != c - 1) { /* a new run of closers: find its start */
                        j = c - 1;
                        while (j >= low && is_cjk_closer(at(t, j))) j--;
                        run_start = j;
                    }
                    run_end = c - 2; /* the next c (one less) continues this run if its char is a closer too */
                    j = run_start;
                } else {
                    run_end = -1;
                    j = c - 1;
                }
                if (j >= low && is_cjk_stop(at(t, j))) found = c;
            } else {
                /* \s(?=\S) starting at c - 1 */
                if (is_space(before) && c < end && !is_space(at(t, c))) found = c;
            }
        }
        if (found < 0) return -1;
        Py_ssize_t cut = kind == KIND_WHITESPACE ? found - 1 : found;
        if (cut <= high) return cut > low ? cut : -1;
        end = found - 1; /* the match ends past `high`: look before it */
    }
}

typedef struct {
    Text text;
    const uint32_t *cut_tokens, *cut_chars, *protected_spans;
    Py_ssize_t n_cuts, n_protected;
    int kinds[N_KINDS];
    int n_kinds;
    int64_t max_tokens, overlap, window_tokens;
} Planner;

/* bisect.bisect_right over a non-decreasing uint32 array */
static inline Py_ssize_t bisect_right(const uint32_t *values, Py_ssize_t n, int64_t x) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (x < (int64_t)values[mid]) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* _Chunker.inside_special: the position lies strictly inside a protected span */
static int inside_special(const Planner *p, Py_ssize_t position) {
    Py_ssize_t lo = 0, hi = p->n_protected; /* the last span starting at or before `position` */
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if ((Py_ssize_t)p->protected_spans[2 * mid] <= position) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return 0;
    return (Py_ssize_t)p->protected_spans[2 * (lo - 1)] < position && position < (Py_ssize_t)p->protected_spans[2 * (lo - 1) + 1];
}

/* _Chunker.separator_cut */
static Py_ssize_t planned_separator_cut(const Planner *p, Py_ssize_t low, Py_ssize_t high) {
    for (int k = 0; k < p->n_kinds; k++) {
        Py_ssize_t cut = separator_cut_at(&p->text, p->kinds[k], low, high);
        if (cut >= 0 && !inside_special(p, cut)) return cut;
    }
    return high;
}

/* _Chunker.chunk_end's first attempt */
static Py_ssize_t first_end(const Planner *p, Py_ssize_t start, Py_ssize_t previous_end) {
    const uint32_t *tokens = p->cut_tokens, *chars = p->cut_chars;
    Py_ssize_t n = p->n_cuts;
    int64_t base = tokens[bisect_right(chars, n, start) - 1];
    Py_ssize_t first = bisect_right(chars, n, max64(start, previous_end));
    Py_ssize_t budget_index = bisect_right(tokens, n, base + p->max_tokens) - 1;
    Py_ssize_t end = chars[first > budget_index ? first : budget_index];
    int64_t low = chars[bisect_right(tokens, n, base + p->window_tokens - 1) - 1];
    low = max64(max64(low, start), previous_end);
    if (end < p->text.n) end = planned_separator_cut(p, (Py_ssize_t)low, end);
    return end;
}

/* _Chunker.next_start */
static Py_ssize_t next_start(const Planner *p, Py_ssize_t start, Py_ssize_t end) {
    if (!p->overlap) return end;
    const uint32_t *tokens = p->cut_tokens, *chars = p->cut_chars;
    Py_ssize_t n = p->n_cuts;
    int64_t target = (int64_t)tokens[bisect_right(chars, n, end) - 1] - p->overlap;
    Py_ssize_t index = bisect_right(tokens, n, target) - 1;
    Py_ssize_t candidate = chars[index > 0 ? index : 0];
    if (candidate <= start) candidate = chars[bisect_right(chars, n, start)];
    return candidate < end ? candidate : end;
}

static int read_uint32s(PyObject *object, Py_buffer *view, const char *name) {
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 4 || (view->format && strcmp(view->format, "I") != 0 && strcmp(view->format, "=I") != 0 &&
                                strcmp(view->format, "@I") != 0)) {
        PyErr_Format(PyExc_TypeError, "%s must be a buffer of uint32 ('I')", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int read_kinds(PyObject *kinds, Planner *p) {
    PyObject *sequence = PySequence_Fast(kinds, "kinds must be a sequence of ints");
    if (!sequence) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(sequence);
    int ok = n <= N_KINDS;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        long kind = PyLong_AsLong(PySequence_Fast_GET_ITEM(sequence, i));
        ok = kind >= 0 && kind < N_KINDS;
        p->kinds[i] = (int)kind;
    }
    Py_DECREF(sequence);
    if (!ok) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "kinds: at most 3 of 0 (paragraph), 1 (sentence), 2 (whitespace)");
        return -1;
    }
    p->n_kinds = (int)n;
    return 0;
}

static PyObject *plan(PyObject *self, PyObject *args) {
    PyObject *text, *tokens_object, *chars_object, *protected_object, *kinds;
    long long max_tokens, overlap, window_tokens;
    Py_ssize_t start, previous_end, limit;
    if (!PyArg_ParseTuple(args, "UOOOOLLLnnn:plan", &text, &tokens_object, &chars_object, &protected_object, &kinds,
                          &max_tokens, &overlap, &window_tokens, &start, &previous_end, &limit))
        return NULL;
    Planner p = {.text = {PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)},
                 .max_tokens = max_tokens, .overlap = overlap, .window_tokens = window_tokens};
    if (read_kinds(kinds, &p) < 0) return NULL;
    if (max_tokens < 1 || overlap < 0 || overlap >= max_tokens || window_tokens < 1 || window_tokens > max_tokens ||
        start < 0 || previous_end < 0 || limit < 1) {
        PyErr_SetString(PyExc_ValueError, "plan: need 0 <= overlap < max_tokens, 1 <= window_tokens <= max_tokens, "
                                          "start and previous_end >= 0, limit >= 1");
        return NULL;
    }
    /* Token counts are uint32: a budget, overlap or window past 2**40 reaches past all of them, as any larger one
     * does, so they are planned as 2**40 (chunking.py does the same for Python's ints): base + max_tokens cannot
     * overflow int64 then. (Checked above first: overlap < max_tokens and window_tokens <= max_tokens still hold.) */
    if (p.max_tokens > HUGE_TOKENS + 1) p.max_tokens = HUGE_TOKENS + 1;
    if (p.overlap > HUGE_TOKENS) p.overlap = HUGE_TOKENS;
    if (p.window_tokens > HUGE_TOKENS) p.window_tokens = HUGE_TOKENS;
    Py_buffer views[3];
    int held = 0;
    PyObject *result = NULL;
    const char *names[3] = {"cut_tokens", "cut_chars", "protected"};
    PyObject *objects[3] = {tokens_object, chars_object, protected_object};
    for (; held < 3; held++)
        if (read_uint32s(objects[held], &views[held], names[held]) < 0) goto done;
    p.cut_tokens = views[0].buf;
    p.cut_chars = views[1].buf;
    p.n_cuts = views[0].len / 4;
    p.protected_spans = views[2].buf;
    p.n_protected = views[2].len / 8;
    if (p.n_cuts < 2 || views[1].len / 4 != p.n_cuts || p.cut_tokens[0] != 0 || p.cut_chars[0] != 0 ||
        (Py_ssize_t)p.cut_chars[p.n_cuts - 1] != p.text.n || start >= p.text.n || previous_end >= p.text.n) {
        PyErr_SetString(PyExc_ValueError, "plan: the cut grid must run from (0, 0) to (tokens, len(text)) with "
                                          "start and previous_end inside the text");
        goto done;
    }
    if (limit > p.text.n) limit = p.text.n; /* every chunk ends past its start: at most one a character */
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(uint32_t) * 2 * limit);
    if (!result) goto done;
    uint32_t *out = (uint32_t *)PyBytes_AS_STRING(result);
    Py_ssize_t count = 0;
    while (count < limit) {
        Py_ssize_t end = first_end(&p, start, previous_end);
        out[2 * count] = (uint32_t)start;
        out[2 * count + 1] = (uint32_t)end;
        count++;
        if (end >= p.text.n) break;
        start = next_start(&p, start, end);
        previous_end = end;
    }
    if (count < limit && _PyBytes_Resize(&result, (Py_ssize_t)sizeof(uint32_t) * 2 * count) < 0) result = NULL;
done:
    for (int k = 0; k < held; k++) PyBuffer_Release(&views[k]);
    return result;
}

static PyObject *separator_cut(PyObject *self, PyObject *args) {
    PyObject *text;
    int kind;
    Py_ssize_t low, high;
    if (!PyArg_ParseTuple(args, "Uinn:separator_cut", &text, &kind, &low, &high)) return NULL;
    Text t = {PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)};
    if (kind < 0 || kind >= N_KINDS || low < 0 || high < 0 || high > t.n) {
        PyErr_SetString(PyExc_ValueError, "separator_cut: kind 0, 1 or 2 and 0 <= low, 0 <= high <= len(text)");
        return NULL;
    }
    Py_ssize_t cut = separator_cut_at(&t, kind, low, high);
    if (cut < 0) Py_RETURN_NONE;
    return PyLong_FromSsize_t(cut);
}

static PyMethodDef chunk_plan_functions[] = {
    {"plan", plan, METH_VARARGS,
     "plan(text, cut_tokens, cut_chars, protected, kinds, max_tokens, overlap, window_tokens, start, previous_end, "
     "limit) -> uint32 (start, end) pairs: the next chunks if each one's own encoding fits"},
    {"separator_cut", separator_cut, METH_VARARGS,
     "separator_cut(text, kind, low, high) -> the last cut of kind 0 (paragraph), 1 (sentence) or 2 (whitespace) "
     "with low < cut <= high, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef chunk_plan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tokend.engine._chunk_plan",
    .m_doc = "Chunking's planned chunk ends and separator cuts (see service/native/chunk_plan.c).",
    .m_size = -1,
    .m_methods = chunk_plan_functions,
};

PyMODINIT_FUNC PyInit__chunk_plan(void) { return PyModule_Create(&chunk_plan_module); }
