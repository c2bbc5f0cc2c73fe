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
 * time elsewhere, by memchr in one-byte text), whatever their density. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "text_find.h"

/* Whether needle (m >= 1 characters, each fitting the text's kind) occurs in text (n >= m characters of type
 * T, LANES of them in 16 bytes). SSE2: at 16 bytes of starts a step, a start's first two characters compared
 * at once (so the step costs the same however often the first character occurs), the rest where both match;
 * one character at a time after that and without SSE2 (kind 1: memchr to the next first character). */
#if defined(__SSE2__)
#define TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)                                                                    \
    if (m >= 2) {                                                                                              \
        const __m128i first = SET1(needle[0]), second = SET1(needle[1]);                                       \
        /* at + LANES <= last + 1 keeps both loads (starts at..at+LANES-1, plus one) inside the text */        \
        for (; at + LANES <= last + 1; at += LANES) {                                                          \
            __m128i here = _mm_loadu_si128((const __m128i *)(text + at));                                      \
            __m128i next = _mm_loadu_si128((const __m128i *)(text + at + 1));                                  \
            unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(CMPEQ(here, first), CMPEQ(next, second))); \
            while (mask) {                                                                                     \
                unsigned lane = (unsigned)__builtin_ctz(mask) / sizeof(T);                                     \
                if (rest_matches_##T(text + at + lane, needle, m)) return 1;                                   \
                mask &= ~(((1u << sizeof(T)) - 1) << (lane * sizeof(T))); /* the lane's sizeof(T) bits */      \
            }                                                                                                  \
        }                                                                                                      \
    }
#else
#define TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)
#endif

#define TK_OCCURS(T, LANES, SET1, CMPEQ)                                                                        \
    static inline int rest_matches_##T(const T *at, const Py_UCS4 *needle, Py_ssize_t m) {                     \
        for (Py_ssize_t j = 0; j < m; j++)                                                                     \
            if (at[j] != needle[j]) return 0;                                                                  \
        return 1;                                                                                              \
    }                                                                                                          \
    static int occurs_##T(const T *text, Py_ssize_t n, const Py_UCS4 *needle, Py_ssize_t m) {                  \
        Py_ssize_t last = n - m, at = 0; /* last: the last place the needle can start */                       \
        TK_SCAN_STEPS(T, LANES, SET1, CMPEQ)                                                                   \
        for (; at <= last; at++) {                                                                             \
            if (sizeof(T) == 1) { /* memchr to the next first character */                                     \
                const void *hit = memchr(text + at, (int)needle[0], (size_t)(last - at + 1));                  \
                if (!hit) return 0;                                                                            \
                at = (const T *)hit - text;                                                                    \
            } else if (text[at] != needle[0]) {                                                                \
                continue;                                                                                      \
            }                                                                                                  \
            if (rest_matches_##T(text + at, needle, m)) return 1;                                              \
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

static PyObject *contains_any(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "contains_any(text, strings) takes 2 arguments, got %zd", nargs);
    if (!PyUnicode_Check(args[0]))
        return PyErr_Format(PyExc_TypeError, "expected the text as a str, got %.100s", Py_TYPE(args[0])->tp_name);
    if (!PyTuple_Check(args[1]))
        return PyErr_Format(PyExc_TypeError, "contains_any: strings must be a tuple of str, got %.100s",
                            Py_TYPE(args[1])->tp_name);
    PyObject *text = args[0], *strings = args[1];
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(strings); i++) /* all checked first: no answer depends on order */
        if (!PyUnicode_Check(PyTuple_GET_ITEM(strings, i)))
            return PyErr_Format(PyExc_TypeError, "contains_any: strings must be str, got %.100s",
                                Py_TYPE(PyTuple_GET_ITEM(strings, i))->tp_name);
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) return NULL; /* a legacy string made by the old C API */
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(strings); i++) {
        PyObject *needle = PyTuple_GET_ITEM(strings, i);
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(needle) < 0) return NULL;
#endif
        Py_ssize_t m = PyUnicode_GET_LENGTH(needle);
        if (m == 0) Py_RETURN_TRUE;
        if (m > n) continue;
        int needle_kind = PyUnicode_KIND(needle);
        if (needle_kind > kind) continue; /* it holds a character wider than any the text has */
        if (m > TK_SHORT_NEEDLE) {
            Py_ssize_t found = PyUnicode_Find(text, needle, 0, n, 1);
            if (found == -2) return NULL;
            if (found >= 0) Py_RETURN_TRUE;
            continue;
        }
        Py_UCS4 chars[TK_SHORT_NEEDLE];
        for (Py_ssize_t j = 0; j < m; j++) chars[j] = PyUnicode_READ(needle_kind, PyUnicode_DATA(needle), j);
        const void *data = PyUnicode_DATA(text);
        int found = kind == PyUnicode_1BYTE_KIND   ? occurs_Py_UCS1(data, n, chars, m)
                    : kind == PyUnicode_2BYTE_KIND ? occurs_Py_UCS2(data, n, chars, m)
                                                   : occurs_Py_UCS4(data, n, chars, m);
        if (found) Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}

static PyMethodDef text_find_functions[] = {
    {"contains_any", (PyCFunction)(void (*)(void))contains_any, METH_FASTCALL,
     "contains_any(text, strings) -> whether any of the strings (a tuple of str) occurs in text"},
    {NULL, NULL, 0, NULL},
};

int tk_text_find_add(PyObject *module) { return PyModule_AddFunctions(module, text_find_functions); }
