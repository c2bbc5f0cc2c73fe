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
 * pre-check in C"). Here the text is scanned 16 bytes a step (16, 8 or 4 characters by CPython's kind of
 * the str) for a string's first two characters at once (SSE2, part of every x86-64; one character at a
 * time elsewhere, by memchr in one-byte text), whatever their density; strings that share their first two
 * characters in the same pass, each compared where those occur (an added token's whole text is looked for,
 * not only its first two characters, which code holds often: "</", "<t"). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "text_find.h"

/* The strings looked for, grouped: a group is the strings that share their first two characters (each
 * string of one character is a group of its own), found in one pass over the text. */
typedef struct {
    const void *data; /* m characters of CPython's `kind` (the str's own buffer) */
    int kind;
    Py_ssize_t m;
} tk_needle;

static inline Py_UCS4 needle_char(const tk_needle *needle, Py_ssize_t j) { return PyUnicode_READ(needle->kind, needle->data, j); }

/* Whether one of the group's n needles (all >= `shortest` characters, sharing their first min(2, m)
 * characters; each character fitting the text's kind) occurs in text (length characters of type T, LANES of
 * them in 16 bytes). SSE2: at 16 bytes of starts a step, a start's first two characters compared at once
 * (so the step costs the same however often the first character occurs), each needle's rest where both
 * match; one start at a time after that and without SSE2 (kind 1: memchr to the next first character). */
#if defined(__SSE2__)
#define TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)                                                                    \
    if (shortest >= 2) {                                                                                       \
        const __m128i first = SET1(needle_char(group, 0)), second = SET1(needle_char(group, 1));               \
        /* at + LANES <= last + 1 keeps both loads (starts at..at+LANES-1, plus one) inside the text */        \
        for (; at + LANES <= last + 1; at += LANES) {                                                          \
            __m128i here = _mm_loadu_si128((const __m128i *)(text + at));                                      \
            __m128i next = _mm_loadu_si128((const __m128i *)(text + at + 1));                                  \
            unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(CMPEQ(here, first), CMPEQ(next, second))); \
            while (mask) {                                                                                     \
                unsigned lane = (unsigned)__builtin_ctz(mask) / sizeof(T);                                     \
                if (one_matches_##T(text, length, at + lane, group, n)) return 1;                              \
                mask &= ~(((1u << sizeof(T)) - 1) << (lane * sizeof(T))); /* the lane's sizeof(T) bits */      \
            }                                                                                                  \
        }                                                                                                      \
    }
#else
#define TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)
#endif

#define TK_OCCURS(T, LANES, SET1, CMPEQ)                                                                        \
    /* whether one of the needles starts at text[at] */                                                        \
    static inline int one_matches_##T(const T *text, Py_ssize_t length, Py_ssize_t at, const tk_needle *group,  \
                                      size_t n) {                                                              \
        for (size_t k = 0; k < n; k++) {                                                                       \
            Py_ssize_t m = group[k].m, j = 0;                                                                  \
            if (m > length - at) continue;                                                                     \
            while (j < m && text[at + j] == needle_char(&group[k], j)) j++;                                    \
            if (j == m) return 1;                                                                              \
        }                                                                                                      \
        return 0;                                                                                              \
    }                                                                                                          \
    static int occurs_##T(const T *text, Py_ssize_t length, const tk_needle *group, size_t n, Py_ssize_t shortest) { \
        Py_ssize_t last = length - shortest, at = 0; /* last: the last place a needle can start */             \
        const Py_UCS4 lead = needle_char(group, 0);                                                            \
        TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)                                                                   \
        for (; at <= last; at++) {                                                                             \
            if (sizeof(T) == 1) { /* memchr to the next first character */                                     \
                const void *hit = memchr(text + at, (int)lead, (size_t)(last - at + 1));                       \
                if (!hit) return 0;                                                                            \
                at = (const T *)hit - text;                                                                    \
            } else if (text[at] != lead) {                                                                     \
                continue;                                                                                      \
            }                                                                                                  \
            if (one_matches_##T(text, length, at, group, n)) return 1;                                         \
        }                                                                                                      \
        return 0;                                                                                              \
    }

#define TK_SET1_8(c) _mm_set1_epi8((char)(c))
#define TK_SET1_16(c) _mm_set1_epi16((short)(c))
#define TK_SET1_32(c) _mm_set1_epi32((int)(c))
TK_OCCURS(Py_UCS1, 16, TK_SET1_8, _mm_cmpeq_epi8)
TK_OCCURS(Py_UCS2, 8, TK_SET1_16, _mm_cmpeq_epi16)
TK_OCCURS(Py_UCS4, 4, TK_SET1_32, _mm_cmpeq_epi32)

/* Needles longer than this (the callers' are a few characters) go to CPython's search. */
#define TK_SHORT_NEEDLE 64

/* Whether two needles of the text's kind share their first two characters (a needle of one character is a
 * group of its own). */
static int same_group(const tk_needle *x, const tk_needle *y) {
    return x->m >= 2 && y->m >= 2 && needle_char(x, 0) == needle_char(y, 0) && needle_char(x, 1) == needle_char(y, 1);
}

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
     * characters is one group, one pass over the text (the callers pass them sorted, so each pair's needles
     * are one run; in any other order the answer is the same, in more passes) */
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
    const void *data = PyUnicode_DATA(text);
    for (size_t g = 0, end; g < n && !found; g = end) {
        Py_ssize_t shortest = needles[g].m;
        for (end = g + 1; end < n && same_group(&needles[g], &needles[end]); end++)
            if (needles[end].m < shortest) shortest = needles[end].m;
        found = kind == PyUnicode_1BYTE_KIND   ? occurs_Py_UCS1(data, length, needles + g, end - g, shortest)
                : kind == PyUnicode_2BYTE_KIND ? occurs_Py_UCS2(data, length, needles + g, end - g, shortest)
                                               : occurs_Py_UCS4(data, length, needles + g, end - g, shortest);
    }
    if (needles != on_stack) PyMem_Free(needles);
    if (found < 0) return NULL;
    return PyBool_FromLong(found);
}

/* ---- in UTF-8 ------------------------------------------------------------------------------------ */

/* Whether one of the n strings that begin with `head` (their first two bytes) occurs at text[at]. */
static inline int utf8_one_matches(const uint8_t *text, size_t len, size_t at, const uint8_t *const *strings,
                                   const size_t *lens, size_t n, const uint8_t *head) {
    for (size_t k = 0; k < n; k++)
        if (lens[k] >= 2 && strings[k][0] == head[0] && strings[k][1] == head[1] && lens[k] <= len - at &&
            memcmp(text + at, strings[k], lens[k]) == 0)
            return 1;
    return 0;
}

/* Whether one of the strings that begin with strings[g]'s first two bytes (lens[g] >= 2) occurs: 16 starts a
 * step compared in their first two bytes at once (as occurs_Py_UCS1 above), the rest where both match. */
static int utf8_group_occurs(const uint8_t *text, size_t len, const uint8_t *const *strings, const size_t *lens,
                             size_t n, size_t g) {
    const uint8_t *head = strings[g];
    size_t at = 0;
    if (len < 2) return 0;
    size_t last = len - 2; /* the last place a string of two or more bytes can start */
#if defined(__SSE2__)
    const __m128i first = _mm_set1_epi8((char)head[0]), second = _mm_set1_epi8((char)head[1]);
    for (; at + 16 <= last + 1; at += 16) { /* loads at..at+15 and at+1..at+16 <= last + 1 < len */
        __m128i here = _mm_loadu_si128((const __m128i *)(text + at));
        __m128i next = _mm_loadu_si128((const __m128i *)(text + at + 1));
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(here, first), _mm_cmpeq_epi8(next, second)));
        while (mask) {
            if (utf8_one_matches(text, len, at + (unsigned)__builtin_ctz(mask), strings, lens, n, head)) return 1;
            mask &= mask - 1;
        }
    }
#endif
    for (; at <= last; at++)
        if (text[at] == head[0] && text[at + 1] == head[1] && utf8_one_matches(text, len, at, strings, lens, n, head))
            return 1;
    return 0;
}

int tk_utf8_contains_any(const uint8_t *text, size_t len, const uint8_t *const *strings, const size_t *lens, size_t n) {
    for (size_t g = 0; g < n; g++) {
        if (lens[g] == 1) {
            if (memchr(text, strings[g][0], len)) return 1;
            continue;
        }
        int scanned = 0; /* an earlier string began with the same two bytes: its pass compared this one too */
        for (size_t k = 0; k < g && !scanned; k++)
            scanned = lens[k] >= 2 && strings[k][0] == strings[g][0] && strings[k][1] == strings[g][1];
        if (!scanned && utf8_group_occurs(text, len, strings, lens, n, g)) return 1;
    }
    return 0;
}

static PyMethodDef text_find_functions[] = {
    {"contains_any", (PyCFunction)(void (*)(void))contains_any, METH_FASTCALL,
     "contains_any(text, strings) -> whether any of the strings (a tuple of str) occurs in text"},
    {NULL, NULL, 0, NULL},
};

int tk_text_find_add(PyObject *module) { return PyModule_AddFunctions(module, text_find_functions); }
