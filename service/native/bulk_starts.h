/* Piece starts of cl100k_base's, o200k_base's and GPT-2's patterns (and DeepSeek-V3's chain) found 64 bytes at a time (bulk_starts.c: the rules and why they
 * hold), for the split iterator's fast path (split_program.h, tk_split_iter_next):
 *
 *     size_t retry;
 *     uint64_t starts = tk_bulk_starts(TK_PATTERN_CL100K, text, pos, &retry);  // needs pos + TK_BULK_WINDOW_READ <= len
 *     // starts == 0: the scanner takes the next piece; no bulk call again before `retry`.
 *     // else bit 0 (pos) and every later set bit start pieces: [pos + a, pos + b) for consecutive bits a < b;
 *     // the highest bit is where the next piece starts, the first not given here.
 *
 * Text made of ASCII letters, digits, spaces, \n and printable ASCII punctuation is taken, and (but for
 * GPT-2's pattern and DeepSeek-V3's chain) tabs and (with BMI2) other scripts' letters and punctuation as the
 * rules can take them (bulk_starts.c, wide_starts); anything else ends the window (\r, other digits and
 * whitespace, ...) and goes to the scanner (pretokenize.c), which is what both are held to `regex`
 * against. Pure computation, no state. */
#ifndef TOKEND_BULK_STARTS_H
#define TOKEND_BULK_STARTS_H

#include <stddef.h>
#include <stdint.h>

#include "tokend_native.h"

/* Bytes a call reads from pos: the window and the byte after it (what follows byte 63). */
#define TK_BULK_WINDOW_READ 65

/* 1 when `pattern` has bulk starts: cl100k_base's and o200k_base's, and the patterns that are the same in
 * such text (Llama 3, Qwen 2 and their ASCII-contraction variants like cl100k, with one digit a piece for
 * Qwen 2; Tekken like o200k without suffixes, one digit a piece); and GPT-2's (r50k_base, p50k_base), by
 * rules of its own. */
int tk_bulk_split_supports(tk_pattern pattern);
uint64_t tk_bulk_starts(tk_pattern pattern, const uint8_t *s, size_t pos, size_t *retry);
/* The same for DeepSeek-V3's chain of three stages (split_program.h: iter->deepseek_v3), whose last stage alone
 * has no bulk starts (digits there join letters as their prefix). */
int tk_bulk_split_deepseek_v3_supported(void);
uint64_t tk_bulk_starts_deepseek_v3(const uint8_t *s, size_t pos, size_t *retry);

#endif
