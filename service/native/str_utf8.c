/* A str's UTF-8 for one call of the core (str_utf8.h), made here instead of by PyUnicode_AsUTF8AndSize.
 *
 * Why: PyUnicode_AsUTF8AndSize makes the UTF-8 of a str that is not ASCII one character at a time and keeps it
 * in the str for as long as the str lives. A text is usually encoded or counted once, so the copy kept is only
 * memory, and the making costs: 187 us of the benchmark's English `count` part (680 KB, 33 of its 89 documents
 * not ASCII: a curly quote is enough), ~8 % of counting it. Here runs of ASCII characters are copied 16, 8 or 4
 * at a time (SSE2, by CPython's kind of the str) and the rest written one character at a time, into a buffer
 * freed after the call. A str whose UTF-8 is made already (ASCII, or encoded before) is read as it is. */
#include "str_utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* One code point (not a surrogate) as UTF-8 at o: the bytes written. */
static inline size_t put_char(uint8_t *o, uint32_t c) {
    if (c < 0x80) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (uint8_t)(0xC0 | c >> 6);
        o[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12);
        o[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18);
    o[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
    o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

static inline int is_surrogate(uint32_t c) { return c >= 0xD800 && c <= 0xDFFF; }

/* Characters [i, end) one at a time; 1 at a surrogate (*o left where it was), else 0 with *o moved on. */
#define TK_PUT_CHARS(T)                                                                                         \
    static inline int put_chars_##T(const T *s, size_t i, size_t end, uint8_t **o) {                           \
        uint8_t *out = *o;                                                                                     \
        for (; i < end; i++) {                                                                                 \
            uint32_t c = s[i];                                                                                 \
            if (sizeof(T) > 1 && is_surrogate(c)) return 1;                                                    \
            out += put_char(out, c);                                                                           \
        }                                                                                                      \
        *o = out;                                                                                              \
        return 0;                                                                                              \
    }                                                                                                          \
    /* The other (non-ASCII) character at *i and the run of others after it; 1 at a surrogate. */           \
    static inline int put_others_##T(const T *s, size_t *i, size_t end, uint8_t **o) {                         \
        size_t k = *i;                                                                                         \
        uint8_t *out = *o;                                                                                     \
        do {                                                                                                   \
            if (is_surrogate(s[k])) return 1;                                                                  \
            out += put_char(out, s[k++]);                                                                      \
        } while (k < end && s[k] >= 0x80);                                                                     \
        *i = k;                                                                                                \
        *o = out;                                                                                              \
        return 0;                                                                                              \
    }
TK_PUT_CHARS(Py_UCS1)
TK_PUT_CHARS(Py_UCS2)
TK_PUT_CHARS(Py_UCS4)

/* The UTF-8 of n characters of kind 1, 2 or 4 at data into out (room for n * (kind == 1 ? 2 : kind == 2 ? 3 :
 * 4) bytes): its length, or -1 at a surrogate. 16 bytes of characters a step: the ASCII ones up to the first
 * other character copied at once (a step writes its whole block's low bytes, then moves on only past the ASCII
 * ones: the room left is at least a byte a character, so the writes past them stay inside), then the run of
 * other characters after them one at a time (a script of its own is words of them between spaces); the tail a
 * character at a time. The buffer is sized for the worst case; a large one is mapped memory, whose pages past
 * the bytes written are never touched. */
static Py_ssize_t utf8_of(int kind, const void *data, size_t n, uint8_t *out) {
    uint8_t *o = out;
    size_t i = 0;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *s = data;
#if defined(__SSE2__)
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            unsigned other = (unsigned)_mm_movemask_epi8(v);
            _mm_storeu_si128((__m128i *)o, v); /* the ASCII before the first other character, at least */
            unsigned k = other ? (unsigned)__builtin_ctz(other) : 16;
            o += k;
            i += k;
            if (k == 16) continue;
            o += put_char(o, s[i++]);
            while (i < n && s[i] >= 0x80) o += put_char(o, s[i++]); /* a run of others, by themselves */
        }
#endif
        put_chars_Py_UCS1(s, i, n, &o);
    } else if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *s = data;
#if defined(__SSE2__)
        const __m128i high = _mm_set1_epi16((short)0xFF80), zero = _mm_setzero_si128();
        while (i + 8 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            unsigned other = ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(v, high), zero)) & 0xFFFF;
            _mm_storel_epi64((__m128i *)o, _mm_packus_epi16(v, v)); /* the ASCII before the first other one */
            unsigned k = other ? (unsigned)__builtin_ctz(other) / 2 : 8;
            o += k;
            i += k;
            if (other && put_others_Py_UCS2(s, &i, n, &o)) return -1;
        }
#endif
        if (put_chars_Py_UCS2(s, i, n, &o)) return -1;
    } else {
        const Py_UCS4 *s = data;
#if defined(__SSE2__)
        const __m128i high = _mm_set1_epi32((int)0xFFFFFF80u), zero = _mm_setzero_si128();
        while (i + 4 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            unsigned other = ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi32(_mm_and_si128(v, high), zero)) & 0xFFFF;
            /* the low bytes of the 4 (the ASCII ones: < 0x80, no saturation), before the first other one */
            __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(v, v), zero);
            uint32_t word = (uint32_t)_mm_cvtsi128_si32(bytes);
            memcpy(o, &word, 4);
            unsigned k = other ? (unsigned)__builtin_ctz(other) / 4 : 4;
            o += k;
            i += k;
            if (other && put_others_Py_UCS4(s, &i, n, &o)) return -1;
        }
#endif
        if (put_chars_Py_UCS4(s, i, n, &o)) return -1;
    }
    return (Py_ssize_t)(o - out);
}

int tk_str_utf8(PyObject *text, const char **utf8, Py_ssize_t *len, char **owned) {
    *owned = NULL;
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(text)->tp_name);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) return -1;
#endif
    int made = !PyUnicode_IS_COMPACT(text) || PyUnicode_IS_COMPACT_ASCII(text);
#if PY_VERSION_HEX < 0x030E0000
    made = made || ((PyCompactUnicodeObject *)text)->utf8 != NULL; /* made before: read as it is */
#else
    made = 1; /* the fields of a str are not read past the versions they were checked on */
#endif
    if (made) {
        *utf8 = PyUnicode_AsUTF8AndSize(text, len);
        if (*utf8) return 0;
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return 1;
    }
    int kind = PyUnicode_KIND(text);
    size_t n = (size_t)PyUnicode_GET_LENGTH(text);
    size_t per_char = kind == PyUnicode_1BYTE_KIND ? 2 : kind == PyUnicode_2BYTE_KIND ? 3 : 4;
    if (n > (size_t)PY_SSIZE_T_MAX / per_char - 1) {
        PyErr_NoMemory();
        return -1;
    }
    char *buffer = malloc(n * per_char + 1);
    if (!buffer) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t got = utf8_of(kind, PyUnicode_DATA(text), n, (uint8_t *)buffer);
    if (got < 0) {
        free(buffer);
        return 1;
    }
    buffer[got] = 0;
    *utf8 = buffer;
    *len = got;
    *owned = buffer;
    return 0;
}

static PyObject *str_utf8(PyObject *self, PyObject *text) {
    (void)self;
    const char *utf8;
    Py_ssize_t len;
    char *owned;
    int status = tk_str_utf8(text, &utf8, &len, &owned);
    if (status < 0) return NULL;
    if (status == 1) Py_RETURN_NONE;
    PyObject *bytes = PyBytes_FromStringAndSize(utf8, len);
    free(owned);
    return bytes;
}

static PyMethodDef str_utf8_functions[] = {
    {"_str_utf8", (PyCFunction)str_utf8, METH_O,
     "_str_utf8(text) -> the UTF-8 the core reads of a str (bytes), or None when it holds a lone surrogate (tests)"},
    {NULL, NULL, 0, NULL},
};

int tk_str_utf8_add(PyObject *module) { return PyModule_AddFunctions(module, str_utf8_functions); }
