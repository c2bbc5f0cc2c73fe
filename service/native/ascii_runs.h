/* Bulk classification of ASCII bytes for the hand-written scanners (pretokenize.c): one table gives a
 * byte's class, and the run functions find where a run of bytes of one class ends, 16 bytes a step with
 * SSE2 (part of every x86-64, so no CPU check and no -march flag) or 8 a step with 64-bit words on other
 * machines, then a byte at a time near the end of the text. A scanner then pays one test per piece instead
 * of a decoded character, a two-level table lookup and a mispredicted branch per byte.
 *
 *     size_t end = tk_ascii_run_end(s, len, pos, TK_RUN_LETTERS);  // first byte from pos not A-Z / a-z
 *     if (tk_ascii_class[s[pos]] & TK_A_PUNCT) ...                  // ASCII [^\s\p{L}\p{N}]
 *
 * Every run stops at a byte >= 0x80: the scanners decode that character and decide with the Unicode class
 * tables (unicode_classes.h), so these functions only ever answer for ASCII. The classes are those of the
 * `regex` module: \s in ASCII is \t \n \v \f \r and space (not \x1c-\x1f, which str.isspace counts);
 * test_split_patterns.py and test_native_split.py hold the scanners to `regex` on every code point, and
 * test_split_bulk_runs.py every way of stepping (tk_ascii_run_end_by) on any bytes. */
#ifndef TOKEND_ASCII_RUNS_H
#define TOKEND_ASCII_RUNS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define TK_A_UPPER 0x01   /* A-Z */
#define TK_A_LOWER 0x02   /* a-z */
#define TK_A_DIGIT 0x04   /* 0-9 */
#define TK_A_SPACE 0x08   /* \s: \t \n \v \f \r and space */
#define TK_A_NEWLINE 0x10 /* \r \n (also TK_A_SPACE) */
#define TK_A_PUNCT 0x20   /* [^\s\p{L}\p{N}]: punctuation, symbols and the controls that are not \s */
#define TK_A_HIGH 0x40    /* >= 0x80: part of a longer character, decided by the Unicode tables */
#define TK_A_LETTER (TK_A_UPPER | TK_A_LOWER)

#define TK_A_CLASS_OF(b)                                                                                       \
    ((b) >= 0x80                     ? TK_A_HIGH                                                               \
     : (b) >= 'A' && (b) <= 'Z'      ? TK_A_UPPER                                                              \
     : (b) >= 'a' && (b) <= 'z'      ? TK_A_LOWER                                                              \
     : (b) >= '0' && (b) <= '9'      ? TK_A_DIGIT                                                              \
     : (b) == '\r' || (b) == '\n'    ? TK_A_SPACE | TK_A_NEWLINE                                               \
     : (b) == ' ' || ((b) >= 9 && (b) <= 13) ? TK_A_SPACE                                                      \
                                     : TK_A_PUNCT)
#define TK_A_4(b) TK_A_CLASS_OF(b), TK_A_CLASS_OF((b) + 1), TK_A_CLASS_OF((b) + 2), TK_A_CLASS_OF((b) + 3)
#define TK_A_16(b) TK_A_4(b), TK_A_4((b) + 4), TK_A_4((b) + 8), TK_A_4((b) + 12)
#define TK_A_64(b) TK_A_16(b), TK_A_16((b) + 16), TK_A_16((b) + 32), TK_A_16((b) + 48)

/* byte -> TK_A_* bits */
static const uint8_t tk_ascii_class[256] = {TK_A_64(0), TK_A_64(64), TK_A_64(128), TK_A_64(192)};

/* Which bytes a run takes (each is one of the tests below). */
typedef enum { TK_RUN_LETTERS, TK_RUN_LOWER, TK_RUN_UPPER, TK_RUN_DIGITS, TK_RUN_SPACES, TK_RUN_PUNCT } tk_ascii_run;

static inline uint8_t tk_ascii_run_bits(tk_ascii_run run) {
    switch (run) {
    case TK_RUN_LETTERS: return TK_A_LETTER;
    case TK_RUN_LOWER: return TK_A_LOWER;
    case TK_RUN_UPPER: return TK_A_UPPER;
    case TK_RUN_DIGITS: return TK_A_DIGIT;
    case TK_RUN_SPACES: return 0; /* the space character alone: tested directly */
    default: return TK_A_PUNCT;
    }
}

static inline int tk_ascii_in_run(uint8_t b, tk_ascii_run run) {
    return run == TK_RUN_SPACES ? b == ' ' : (tk_ascii_class[b] & tk_ascii_run_bits(run)) != 0;
}

/* Bytes of the 8 at p, as high bits of a word: in [low, low + count), count <= 32 (7-bit sums stay in
 * their byte; a byte >= 0x80 is never in). Compiled everywhere: the fallback where SSE2 is missing, and
 * what tests compare the SSE2 steps with (tk_ascii_run_end_by). */
static inline uint64_t tk_swar_in_range(uint64_t x, uint8_t low, uint8_t count) {
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t y = x & ~high;
    uint64_t at_least = y + (uint64_t)(0x80 - low) * ones;
    uint64_t past = y + (uint64_t)(0x80 - low - count) * ones;
    return at_least & ~past & ~x & high;
}

static inline uint64_t tk_swar_run_mask(const uint8_t *p, tk_ascii_run run) {
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t x;
    memcpy(&x, p, 8);
    switch (run) {
    case TK_RUN_LETTERS: return tk_swar_in_range(x | 0x20 * ones, 'a', 26);
    case TK_RUN_LOWER: return tk_swar_in_range(x, 'a', 26);
    case TK_RUN_UPPER: return tk_swar_in_range(x, 'A', 26);
    case TK_RUN_DIGITS: return tk_swar_in_range(x, '0', 10);
    case TK_RUN_SPACES: return tk_swar_in_range(x, ' ', 1);
    default: {
        uint64_t other = tk_swar_in_range(x | 0x20 * ones, 'a', 26) | tk_swar_in_range(x, '0', 10) |
                         tk_swar_in_range(x, 9, 5) | tk_swar_in_range(x, ' ', 1);
        return ~x & ~other & high;
    }
    }
}

#if defined(__SSE2__)
#define TK_ASCII_RUNS_SSE2 1
/* Bytes of x in [low, low + count) (unsigned): shift the range to the bottom of the signed order. */
static inline __m128i tk_sse2_in_range(__m128i x, uint8_t low, uint8_t count) {
    __m128i shifted = _mm_add_epi8(x, _mm_set1_epi8((char)(0x80 - low)));
    return _mm_cmplt_epi8(shifted, _mm_set1_epi8((char)(-128 + count)));
}

/* Bit i set: byte i of the 16 at p is in the run. */
static inline unsigned tk_sse2_run_mask(const uint8_t *p, tk_ascii_run run) {
    __m128i x = _mm_loadu_si128((const __m128i *)p), in;
    switch (run) {
    case TK_RUN_LETTERS: in = tk_sse2_in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 26); break;
    case TK_RUN_LOWER: in = tk_sse2_in_range(x, 'a', 26); break;
    case TK_RUN_UPPER: in = tk_sse2_in_range(x, 'A', 26); break;
    case TK_RUN_DIGITS: in = tk_sse2_in_range(x, '0', 10); break;
    case TK_RUN_SPACES: in = _mm_cmpeq_epi8(x, _mm_set1_epi8(' ')); break;
    default: {
        /* ASCII (sign bit clear) and none of letter, digit, \s */
        __m128i other = _mm_or_si128(tk_sse2_in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), 'a', 26),
                                     tk_sse2_in_range(x, '0', 10));
        other = _mm_or_si128(other, _mm_or_si128(tk_sse2_in_range(x, 9, 5), _mm_cmpeq_epi8(x, _mm_set1_epi8(' '))));
        in = _mm_andnot_si128(other, _mm_cmpgt_epi8(x, _mm_set1_epi8(-1)));
    }
    }
    return (unsigned)_mm_movemask_epi8(in);
}
#else
#define TK_ASCII_RUNS_SSE2 0
#endif

/* How tk_ascii_run_end_by steps: 16 bytes (SSE2, where compiled), 8 (64-bit words), or 1. */
typedef enum { TK_STEP_SSE2, TK_STEP_WORDS, TK_STEP_BYTES } tk_ascii_step;

/* The first offset from pos whose byte is not in the run (len at the end), with the given steps (SSE2
 * falls back to words where it is not compiled). */
static inline size_t tk_ascii_run_end_by(const uint8_t *s, size_t len, size_t pos, tk_ascii_run run, tk_ascii_step step) {
#if TK_ASCII_RUNS_SSE2
    if (step == TK_STEP_SSE2) {
        while (pos + 16 <= len) {
            unsigned out = ~tk_sse2_run_mask(s + pos, run) & 0xffffu;
            if (out) return pos + (size_t)__builtin_ctz(out);
            pos += 16;
        }
    }
#endif
    if (step != TK_STEP_BYTES) {
        while (pos + 8 <= len) {
            uint64_t out = ~tk_swar_run_mask(s + pos, run) & 0x8080808080808080ull;
            if (out) return pos + (size_t)(__builtin_ctzll(out) >> 3);
            pos += 8;
        }
    }
    while (pos < len && tk_ascii_in_run(s[pos], run)) pos++;
    return pos;
}

/* The first offset from pos whose byte is not in the run (len at the end): the fastest steps compiled. */
static inline size_t tk_ascii_run_end(const uint8_t *s, size_t len, size_t pos, tk_ascii_run run) {
    return tk_ascii_run_end_by(s, len, pos, run, TK_STEP_SSE2);
}

#endif
