/* contains_any(text, strings): whether any of a few strings occurs in a str, the first test every encode and
 * count of a model with special or added tokens runs on its whole text (tokend/engine/prefix_scan.py).
 *
 *   contains_any("a < b <| c", ("<|",))   -> True
 *   contains_any("a < b, c", ("<|", "[INST"))  -> False
 *   contains_any("x", ("",))  -> True (the empty string is in every text)
 *
 * Why in C: in Python the test was a `str.find` of each first character (a memchr) and a `startswith` where it
 * occurs, then one regex search of the whole text after 8 occurrences; English and code, where "<" is
 * common, spent 13-15 % of a `count` of text already seen on it (docs/decisions.md, "The special-token
 * pre-check in C"). Here the text is scanned once, 16 bytes a step (16, 8 or 4 characters by CPython's kind
 * of the str), for every group's first two characters at once (SSE2, part of every x86-64; one character at
 * a time elsewhere, by memchr in one-byte text when the strings share their first character), whatever
 * their density; a group's strings (those that share their first two characters) are compared where those
 * occur (an added token's whole text is looked for, not only its first two characters, which code holds
 * often: "</", "<t"). Where every string begins with one character ("<"), steps of 64 bytes look for it
 * alone first. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "text_find.h"

/* The strings looked for, grouped: a group is the strings that share their first two characters (each
 * string of one character is a group of its own). Up to TK_PASS_GROUPS groups are found in one pass over
 * the text. */
typedef struct {
    const void *data; /* m characters of CPython's `kind` (the str's own buffer; UTF-8 bytes: kind 1) */
    int kind;
    Py_ssize_t m;
} tk_needle;

static inline Py_UCS4 needle_char(const tk_needle *needle, Py_ssize_t j) { return PyUnicode_READ(needle->kind, needle->data, j); }

/* Groups found in one pass. Why one pass for all: Qwen's 26 added tokens make 3 groups ("<|", "<t", "</"),
 * and three passes over a text of code took 6 % of its first `count`'s instructions (0.99 M of 16.2 M;
 * Llama 3's one group 0.30 M): a pass is bound by its loads and loop, not by its compares. */
#define TK_PASS_GROUPS 8
/* Second characters compared at once for one first character (groups that share their first character,
 * as Qwen's three share "<"): a fixed count, so the compares unroll; more make another head. */
#define TK_HEAD_SECONDS 4

typedef struct {
    const tk_needle *needles; /* the group's n needles, sharing their first min(2, m) characters */
    size_t n;
    Py_UCS4 first, second; /* second: of needles of >= 2 characters */
    int single;            /* one needle of one character */
} tk_group;

/* Whether one of the group's needles starts at text[at] (its first characters already compared or not). */
#define TK_ONE_MATCHES(T)                                                                                      \
    static inline int one_matches_##T(const T *text, Py_ssize_t length, Py_ssize_t at, const tk_group *group) { \
        for (size_t k = 0; k < group->n; k++) {                                                                \
            const tk_needle *needle = &group->needles[k];                                                      \
            Py_ssize_t m = needle->m, j = 0;                                                                   \
            if (m > length - at) continue;                                                                     \
            while (j < m && text[at + j] == needle_char(needle, j)) j++;                                       \
            if (j == m) return 1;                                                                              \
        }                                                                                                      \
        return 0;                                                                                              \
    }                                                                                                          \
    /* whether a needle of one of the groups starts at text[at] (at < length) */                               \
    static inline int any_matches_##T(const T *text, Py_ssize_t length, Py_ssize_t at, const tk_group *groups,  \
                                      size_t n_groups) {                                                       \
        for (size_t g = 0; g < n_groups; g++)                                                                  \
            if (text[at] == groups[g].first &&                                                                 \
                (groups[g].single || (at + 1 < length && text[at + 1] == groups[g].second)) &&                 \
                one_matches_##T(text, length, at, &groups[g]))                                                 \
                return 1;                                                                                      \
        return 0;                                                                                              \
    }

/* Whether a needle of the n_groups groups (<= TK_PASS_GROUPS; each needle's characters fitting the text's
 * kind) occurs in text (length characters of type T, LANES of them in 16 bytes). SSE2: 16 bytes of starts a
 * step, every group's first two characters compared at once (the groups' heads: a first character and up
 * to TK_HEAD_SECONDS second ones, or a single character alone), whatever their density; the groups are
 * tried only at a start where a head matched. One start at a time after that and without SSE2 (kind 1 with
 * one first character: memchr to the next). */
#if defined(__SSE2__)
#define TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)                                                                    \
    {                                                                                                          \
        struct {                                                                                               \
            __m128i first, seconds[TK_HEAD_SECONDS];                                                           \
            int single;                                                                                        \
        } heads[TK_PASS_GROUPS];                                                                               \
        size_t n_heads = 0, n_seconds = 0;                                                                     \
        for (size_t g = 0; g < n_groups; g++) {                                                                \
            const tk_group *group = &groups[g];                                                                \
            if (!group->single && n_heads && !heads[n_heads - 1].single && n_seconds < TK_HEAD_SECONDS &&      \
                group->first == groups[g - 1].first && !groups[g - 1].single) {                                \
                heads[n_heads - 1].seconds[n_seconds++] = SET1(group->second);                                 \
                continue;                                                                                      \
            }                                                                                                  \
            for (; n_heads && n_seconds < TK_HEAD_SECONDS; n_seconds++) /* the last head's rest: repeats */    \
                heads[n_heads - 1].seconds[n_seconds] = heads[n_heads - 1].seconds[0];                         \
            heads[n_heads].first = SET1(group->first);                                                         \
            heads[n_heads].single = group->single;                                                             \
            heads[n_heads].seconds[0] = SET1(group->single ? 0 : group->second);                               \
            n_heads++;                                                                                         \
            n_seconds = 1;                                                                                     \
        }                                                                                                      \
        for (; n_heads && n_seconds < TK_HEAD_SECONDS; n_seconds++)                                            \
            heads[n_heads - 1].seconds[n_seconds] = heads[n_heads - 1].seconds[0];                             \
        /* at + LANES < length keeps both loads (starts at..at+LANES-1, plus one) inside the text */           \
        if (n_heads == 1 && !heads[0].single) { /* the common case, its vectors in registers */                \
            const __m128i first = heads[0].first, s0 = heads[0].seconds[0], s1 = heads[0].seconds[1],         \
                          s2 = heads[0].seconds[2], s3 = heads[0].seconds[3];                                  \
            /* 64 bytes a step for the first character alone, the pairs only in a step that holds it: in code \
             * "<" is ~1 byte in 900, so most steps are 4 loads and compares (HTML's dense "<" costs a few  \
             * instructions a step more than the pairs alone) */                                              \
            for (; at + 4 * LANES < length; at += 4 * LANES) {                                                 \
                __m128i any = _mm_or_si128(                                                                    \
                    _mm_or_si128(CMPEQ(_mm_loadu_si128((const __m128i *)(text + at)), first),                  \
                                 CMPEQ(_mm_loadu_si128((const __m128i *)(text + at + LANES)), first)),         \
                    _mm_or_si128(CMPEQ(_mm_loadu_si128((const __m128i *)(text + at + 2 * LANES)), first),      \
                                 CMPEQ(_mm_loadu_si128((const __m128i *)(text + at + 3 * LANES)), first)));    \
                if (!_mm_movemask_epi8(any)) continue;                                                         \
                for (Py_ssize_t step_end = at + 4 * LANES; at < step_end; at += LANES) {                       \
                    TK_ONE_HEAD_STEP(T, CMPEQ)                                                                 \
                }                                                                                              \
                at -= 4 * LANES; /* the step's own increment follows */                                        \
            }                                                                                                  \
            for (; at + LANES < length; at += LANES) {                                                         \
                TK_ONE_HEAD_STEP(T, CMPEQ)                                                                     \
            }                                                                                                  \
        }                                                                                                      \
        for (; at + LANES < length; at += LANES) {                                                             \
            __m128i here = _mm_loadu_si128((const __m128i *)(text + at));                                      \
            __m128i next = _mm_loadu_si128((const __m128i *)(text + at + 1));                                  \
            __m128i hits = _mm_setzero_si128();                                                                \
            for (size_t h = 0; h < n_heads; h++) {                                                             \
                __m128i seconds = CMPEQ(next, heads[h].seconds[0]);                                            \
                for (int k = 1; k < TK_HEAD_SECONDS; k++) seconds = _mm_or_si128(seconds, CMPEQ(next, heads[h].seconds[k])); \
                if (heads[h].single) seconds = _mm_set1_epi8(-1);                                              \
                hits = _mm_or_si128(hits, _mm_and_si128(CMPEQ(here, heads[h].first), seconds));                \
            }                                                                                                  \
            unsigned mask = (unsigned)_mm_movemask_epi8(hits);                                                 \
            TK_SCAN_HITS(T)                                                                                    \
        }                                                                                                      \
    }
/* One step of 16 bytes of starts against the one head (`first`, seconds s0-s3), its hits tried. */
#define TK_ONE_HEAD_STEP(T, CMPEQ)                                                                             \
    __m128i here = _mm_loadu_si128((const __m128i *)(text + at));                                              \
    __m128i next = _mm_loadu_si128((const __m128i *)(text + at + 1));                                          \
    __m128i seconds = _mm_or_si128(_mm_or_si128(CMPEQ(next, s0), CMPEQ(next, s1)),                             \
                                   _mm_or_si128(CMPEQ(next, s2), CMPEQ(next, s3)));                            \
    unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(CMPEQ(here, first), seconds));                   \
    TK_SCAN_HITS(T)
/* The groups tried at each start of the step `mask` marks (sizeof(T) bits a start). */
#define TK_SCAN_HITS(T)                                                                                        \
    while (mask) {                                                                                             \
        unsigned lane = (unsigned)__builtin_ctz(mask) / sizeof(T);                                             \
        if (any_matches_##T(text, length, at + lane, groups, n_groups)) return 1;                              \
        mask &= ~(((1u << sizeof(T)) - 1) << (lane * sizeof(T))); /* the lane's sizeof(T) bits */              \
    }
#else
#define TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)
#endif

#define TK_OCCURS(T, LANES, SET1, CMPEQ)                                                                        \
    TK_ONE_MATCHES(T)                                                                                          \
    static int occurs_##T(const T *text, Py_ssize_t length, const tk_group *groups, size_t n_groups) {         \
        Py_ssize_t at = 0;                                                                                     \
        int one_first = 1; /* every group begins with the same character */                                    \
        for (size_t g = 1; g < n_groups; g++) one_first &= groups[g].first == groups[0].first;                 \
        TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)                                                                   \
        for (; at < length; at++) {                                                                            \
            if (sizeof(T) == 1 && one_first) { /* memchr to the next first character */                        \
                const void *hit = memchr(text + at, (int)groups[0].first, (size_t)(length - at));              \
                if (!hit) return 0;                                                                            \
                at = (const T *)hit - text;                                                                    \
            }                                                                                                  \
            if (any_matches_##T(text, length, at, groups, n_groups)) return 1;                                 \
        }                                                                                                      \
        return 0;                                                                                              \
    }

#define TK_SET1_8(c) _mm_set1_epi8((char)(c))
#define TK_SET1_16(c) _mm_set1_epi16((short)(c))
#define TK_SET1_32(c) _mm_set1_epi32((int)(c))
TK_OCCURS(Py_UCS1, 16, TK_SET1_8, _mm_cmpeq_epi8)
TK_OCCURS(Py_UCS2, 8, TK_SET1_16, _mm_cmpeq_epi16)
TK_OCCURS(Py_UCS4, 4, TK_SET1_32, _mm_cmpeq_epi32)

/* Whether a needle of `needles` (each non-empty, its characters fitting the text's `kind`) occurs in the
 * text: a run of needles that share their first two characters is one group, TK_PASS_GROUPS groups a pass
 * (needles sorted make each pair's needles one run; in any other order the answer is the same, in more
 * groups). */
static int occurs_any(const void *text, int kind, Py_ssize_t length, const tk_needle *needles, size_t n) {
    tk_group groups[TK_PASS_GROUPS];
    size_t n_groups = 0;
    for (size_t i = 0, end; i < n; i = end) {
        const tk_needle *head = &needles[i];
        int single = head->m == 1;
        for (end = i + 1; !single && end < n && needles[end].m >= 2 && needle_char(&needles[end], 0) == needle_char(head, 0) &&
                          needle_char(&needles[end], 1) == needle_char(head, 1);
             end++) {
        }
        groups[n_groups++] = (tk_group){head, end - i, needle_char(head, 0), single ? 0 : needle_char(head, 1), single};
        if (n_groups == TK_PASS_GROUPS || end == n) {
            int found = kind == PyUnicode_1BYTE_KIND   ? occurs_Py_UCS1(text, length, groups, n_groups)
                        : kind == PyUnicode_2BYTE_KIND ? occurs_Py_UCS2(text, length, groups, n_groups)
                                                       : occurs_Py_UCS4(text, length, groups, n_groups);
            if (found) return 1;
            n_groups = 0;
        }
    }
    return 0;
}

/* Needles longer than this (the callers' are a few characters) go to CPython's search. */
#define TK_SHORT_NEEDLE 64

/* Needles kept on the stack; more take the heap. */
#define TK_STACK_NEEDLES 64

static PyObject *contains_any(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "contains_any(text, strings) takes 2 arguments, got %zd", nargs);
    if (!PyUnicode_Check(args[0]))
        return PyErr_Format(PyExc_TypeError, "expected the text as a str, got %.100s", Py_TYPE(args[0])->tp_name);
    if (!PyTuple_Check(args[1]))
        return PyErr_Format(PyExc_TypeError, "contains_any: strings must be a tuple of str, got %.100s",
                            Py_TYPE(args[1])->tp_name);
    PyObject *text = args[0], *strings = args[1];
    Py_ssize_t n_strings = PyTuple_GET_SIZE(strings);
    for (Py_ssize_t i = 0; i < n_strings; i++) /* all checked first: no answer depends on order */
        if (!PyUnicode_Check(PyTuple_GET_ITEM(strings, i)))
            return PyErr_Format(PyExc_TypeError, "contains_any: strings must be str, got %.100s",
                                Py_TYPE(PyTuple_GET_ITEM(strings, i))->tp_name);
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) return NULL; /* a legacy string made by the old C API */
#endif
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    /* the short needles that may occur, in the given order: a run of needles that share their first two
     * characters is one group, TK_PASS_GROUPS groups one pass over the text (occurs_any; the callers pass them
     * sorted, so each pair's needles are one run; in any other order the answer is the same, in more groups) */
    tk_needle on_stack[TK_STACK_NEEDLES];
    tk_needle *needles = n_strings <= TK_STACK_NEEDLES ? on_stack : PyMem_Malloc((size_t)n_strings * sizeof *needles);
    if (!needles) return PyErr_NoMemory();
    int found = 0;
    size_t n = 0;
    for (Py_ssize_t i = 0; i < n_strings && !found; i++) {
        PyObject *needle = PyTuple_GET_ITEM(strings, i);
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(needle) < 0) {
            found = -1;
            break;
        }
#endif
        Py_ssize_t m = PyUnicode_GET_LENGTH(needle);
        if (m == 0) {
            found = 1;
            break;
        }
        if (m > length) continue;
        int needle_kind = PyUnicode_KIND(needle);
        if (needle_kind > kind) continue; /* it holds a character wider than any the text has */
        if (m > TK_SHORT_NEEDLE) {
            Py_ssize_t at = PyUnicode_Find(text, needle, 0, length, 1);
            found = at == -2 ? -1 : at >= 0;
            continue;
        }
        needles[n++] = (tk_needle){PyUnicode_DATA(needle), needle_kind, m};
    }
    if (!found && n) found = occurs_any(PyUnicode_DATA(text), kind, length, needles, n);
    if (needles != on_stack) PyMem_Free(needles);
    if (found < 0) return NULL;
    return PyBool_FromLong(found);
}

/* ---- in UTF-8 ------------------------------------------------------------------------------------ */

int tk_utf8_contains_any(const uint8_t *text, size_t len, const uint8_t *const *strings, const size_t *lens, size_t n) {
    tk_needle needles[TK_STACK_NEEDLES];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        needles[k++] = (tk_needle){strings[i], PyUnicode_1BYTE_KIND, (Py_ssize_t)lens[i]};
        if (k == TK_STACK_NEEDLES || i + 1 == n) {
            if (occurs_any(text, PyUnicode_1BYTE_KIND, (Py_ssize_t)len, needles, k)) return 1;
            k = 0;
        }
    }
    return 0;
}

static PyMethodDef text_find_functions[] = {
    {"contains_any", (PyCFunction)(void (*)(void))contains_any, METH_FASTCALL,
     "contains_any(text, strings) -> whether any of the strings (a tuple of str) occurs in text"},
    {NULL, NULL, 0, NULL},
};

int tk_text_find_add(PyObject *module) { return PyModule_AddFunctions(module, text_find_functions); }
