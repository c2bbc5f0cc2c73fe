/* A str's UTF-8 for one call of the core (str_utf8.h), made here instead of by PyUnicode_AsUTF8AndSize.
 *
 * Why: PyUnicode_AsUTF8AndSize makes the UTF-8 of a str that is not ASCII one character at a time and keeps it
 * in the str for as long as the str lives. A text is usually encoded or counted once, so the copy kept is only
 * memory, and the making costs: 187 us of the benchmark's English `count` part (680 KB, 33 of its 89 documents
 * not ASCII: a curly quote is enough), ~8 % of counting it. Here steps of ASCII characters are copied 16 or 4
 * at a time (SSE2, by CPython's kind of the str), the other steps of Latin-1 and BMP strs made 8 characters at a
 * time without a branch per character, and those of other strs a character at a time, into a buffer freed
 * after the call. A str whose UTF-8 is made already (ASCII, or encoded before) is read as it is. */
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

#if defined(__SSE2__)
static inline __m128i select_lanes(__m128i mask, __m128i if_set, __m128i if_clear) {
    return _mm_or_si128(_mm_and_si128(mask, if_set), _mm_andnot_si128(mask, if_clear));
}

/* The UTF-8 of 8 characters below U+10000, none a surrogate, as 16-bit lanes of v, at o: the bytes written.
 * Each lane's 1-3 bytes are made side by side (as a 4-byte word: the character's bytes, then ones the next
 * lane overwrites) and the words stored at the running sum of the lanes' lengths, so a block of any mix of
 * 1-, 2- and 3-byte characters costs the same ~40 instructions, without a branch on a character. Up to 3
 * bytes past the block's UTF-8 are written over (the caller's room: see utf8_of). */
static inline size_t put_block_of_8(uint8_t *o, __m128i v) {
    const __m128i zero = _mm_setzero_si128(), six_bits = _mm_set1_epi16(0x3F), high = _mm_set1_epi16(0x80);
    __m128i one_byte = _mm_cmpeq_epi16(_mm_and_si128(v, _mm_set1_epi16((short)0xFF80)), zero);
    __m128i up_to_two = _mm_cmpeq_epi16(_mm_and_si128(v, _mm_set1_epi16((short)0xF800)), zero);
    __m128i low = _mm_and_si128(v, six_bits), middle = _mm_and_si128(_mm_srli_epi16(v, 6), six_bits);
    __m128i lead = select_lanes(one_byte, v,
                                select_lanes(up_to_two, _mm_or_si128(_mm_srli_epi16(v, 6), _mm_set1_epi16(0xC0)),
                                             _mm_or_si128(_mm_srli_epi16(v, 12), _mm_set1_epi16(0xE0))));
    __m128i second = _mm_or_si128(select_lanes(up_to_two, low, middle), high);
    __m128i first_two = _mm_or_si128(lead, _mm_slli_epi16(second, 8));
    __m128i third = _mm_or_si128(low, high);
    uint32_t words[8];
    _mm_storeu_si128((__m128i *)words, _mm_unpacklo_epi16(first_two, third));
    _mm_storeu_si128((__m128i *)(words + 4), _mm_unpackhi_epi16(first_two, third));
    /* lengths 3 + (-1 if <= 2 bytes) + (-1 if 1 byte), a byte each; times 0x0101...: the running sums */
    __m128i lengths = _mm_add_epi16(_mm_set1_epi16(3), _mm_add_epi16(one_byte, up_to_two));
    uint64_t ends; /* (a store, not _mm_cvtsi128_si64: that one exists on x86-64 only) */
    _mm_storel_epi64((__m128i *)&ends, _mm_packus_epi16(lengths, lengths));
    ends *= 0x0101010101010101ull;
    uint64_t starts = ends << 8;
    for (unsigned k = 0; k < 8; k++) memcpy(o + (starts >> (8 * k) & 0xFF), &words[k], 4);
    return (size_t)(ends >> 56);
}
#endif

/* The UTF-8 of n characters of kind 1, 2 or 4 at data into out (room for n * (kind == 1 ? 2 : kind == 2 ? 3 :
 * 4) + 4 bytes): its length, or -1 at a surrogate. Kinds 1 and 2: 16 bytes of characters a step, copied at once
 * when all are ASCII, else made 8 characters at a time (put_block_of_8; a step with a surrogate a character at
 * a time, to find it). Kind 4: the ASCII ones up to the first other character copied at once (a step writes its
 * whole block's low bytes, then moves on only past the ASCII ones: the room left is at least a byte a
 * character, so the writes past them stay inside), then the run of other characters after them one at a time.
 * The tail a character at a time. The buffer is sized for the worst case; a large one is mapped memory, whose
 * pages past the bytes written are never touched. Why blocks for kinds 1 and 2 (most text that is not ASCII):
 * a character at a time cost ~1.2 ns a character of the benchmark's multilingual `count` part, with the blocks
 * ~0.4 ns (docs/decisions.md, "A str's UTF-8 8 characters at a time"). */
static Py_ssize_t utf8_of(int kind, const void *data, size_t n, uint8_t *out) {
    uint8_t *o = out;
    size_t i = 0;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *s = data;
#if defined(__SSE2__)
        const __m128i zero = _mm_setzero_si128();
        for (; i + 16 <= n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            if (!_mm_movemask_epi8(v)) {
                _mm_storeu_si128((__m128i *)o, v);
                o += 16;
                continue;
            }
            o += put_block_of_8(o, _mm_unpacklo_epi8(v, zero));
            o += put_block_of_8(o, _mm_unpackhi_epi8(v, zero));
        }
#endif
        put_chars_Py_UCS1(s, i, n, &o);
    } else if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *s = data;
#if defined(__SSE2__)
        const __m128i high = _mm_set1_epi16((short)0xFF80), zero = _mm_setzero_si128();
        const __m128i f800 = _mm_set1_epi16((short)0xF800), d800 = _mm_set1_epi16((short)0xD800);
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + i)), b = _mm_loadu_si128((const __m128i *)(s + i + 8));
            if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(_mm_or_si128(a, b), high), zero)) == 0xFFFF) {
                _mm_storeu_si128((__m128i *)o, _mm_packus_epi16(a, b));
                o += 16;
                continue;
            }
            __m128i surrogates = _mm_or_si128(_mm_cmpeq_epi16(_mm_and_si128(a, f800), d800),
                                              _mm_cmpeq_epi16(_mm_and_si128(b, f800), d800));
            if (_mm_movemask_epi8(surrogates)) return -1; /* a surrogate in a str is a lone one */
            o += put_block_of_8(o, a);
            o += put_block_of_8(o, b);
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
    if (n > (size_t)PY_SSIZE_T_MAX / per_char - 4) {
        PyErr_NoMemory();
        return -1;
    }
    char *buffer = malloc(n * per_char + 4); /* + 3: put_block_of_8's writes past the end; + 1: the NUL */
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
