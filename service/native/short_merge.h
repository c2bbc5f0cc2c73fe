/* The merge of a short piece (at most TK_SHORT_MERGE_PIECE bytes) over linked parts, for the two rules whose
 * merged part is the token of its joined bytes and whose priority is that token's id: tiktoken's rule
 * (bpe_merge.c: every adjacent pair whose bytes are a token, lowest id first) and a merge list in merged-id
 * order with one merge per token (merge_index.c's trained lists, Qwen's and GPT-2's: the same, but only
 * the pair whose left part has the length the list names), and a list of every split of every token in
 * (merged id, left id) order (Llama 3's, converted from tiktoken ranks: tiktoken's rule, but of two splits
 * of one token that are candidates at once the one with the lower left id first). Leftmost first on
 * remaining ties in all three.
 *
 *     ptrdiff_t n = tk_short_merge(table, NULL, 0, 0, NULL, piece, len, out);                // tiktoken's rule
 *     ptrdiff_t n = tk_short_merge(table, left_len_by_id, n_ids, 0, atoms, piece, len, out); // a trained list
 *     ptrdiff_t n = tk_short_merge(table, NULL, 0, 1, atoms, piece, len, out);               // every split
 *
 * `atoms` (char_atoms.c; NULL: none): characters that may start as one part, their merges skipped.
 *
 * Parts are named by the position k of their first byte: next[k] is where the part ends (the next one starts), prev[k] the
 * part before it, id[k] its token. key[k] = the merged id of the pair (part k, the part after it) << 8 (or
 * << 32 with the left part's id << 8: `then_left`), tk_no_key() when there is no such pair or k is no
 * longer a part's start. A merge is the lowest key with its position ORed in: the lowest merged id, then
 * (`then_left`) the lowest left id, then the leftmost pair.
 *
 * Why links and a scan: a merge moves nothing (an array of parts would be moved down after each one), the
 * final parts need no second look-up (a merge records its token), the scan takes 4 keys a step without a
 * branch, and nothing is read back wider than it was written (16-byte moves over fresh 4-byte stores stall
 * on store forwarding). On the first-pass pieces of multilingual text (~6 merges a piece) this is 1.10-1.20x
 * the array loop's speed (docs/decisions.md, "Short merges as links"). A piece of more than TK_BLOCKED_PIECE
 * bytes (o200k's runs of CJK letters) also keeps each block of 8 keys' lowest: a merge rescans the <= 3 blocks
 * whose keys it changed and then the block minima, not all n keys (pieces of 16-128 bytes of o200k
 * multilingual text: ~10 % less time a piece; docs/decisions.md, "Blocks of keys"). Always inlined: each caller's rule is
 * then a constant (the list's check is compiled out of tiktoken's). */
#ifndef TOKEND_SHORT_MERGE_H
#define TOKEND_SHORT_MERGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokend_native.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "tk_padded_rank masks an 8-byte load to a token's first bytes, which are its low bytes only on little-endian"
#endif

/* Positions are kept in bytes and in the low 8 bits of the keys. */
#define TK_SHORT_MERGE_PIECE 128
_Static_assert(TK_SHORT_MERGE_PIECE <= 255, "tk_short_merge keeps positions in 8 bits");
/* The scan takes this many keys a step (the key array has TK_KEY_BLOCK spare entries at the end). */
#define TK_SCAN_STEP 4
/* Pieces longer than this keep the lowest key of every TK_KEY_BLOCK positions: a merge changes at most three
 * keys, so it rescans their blocks and then the block minima, not every key (see tk_short_merge). */
#define TK_BLOCKED_PIECE 24
#define TK_KEY_BLOCK 8
_Static_assert(TK_SHORT_MERGE_PIECE % TK_KEY_BLOCK == 0 && TK_KEY_BLOCK % TK_SCAN_STEP == 0,
               "block[] holds TK_SHORT_MERGE_PIECE / TK_KEY_BLOCK blocks, each scanned TK_SCAN_STEP keys a step");
/* `then_left` keeps the left part's id in the 24 bits between the merged id and the position: a vocabulary
 * of more ids must not take that order here (merge_index.c checks). */
#define TK_SHORT_MERGE_MAX_IDS (1u << 24)

/* Keys of `position_bits` low bits for the position: 8 here, 15 in the medium merge (bpe_medium_merge.c), which
 * shares these three with a width of its own. */
#define TK_SHORT_POSITION_BITS 8

/* Where the merged id sits in a key: above the position (and the left part's id, 24 bits, for `then_left`). */
static inline unsigned tk_merged_shift_at(int then_left, unsigned position_bits) {
    return position_bits + (then_left ? 24 : 0);
}
static inline unsigned tk_merged_shift(int then_left) { return tk_merged_shift_at(then_left, TK_SHORT_POSITION_BITS); }

/* The key of a position that starts no pair: at or above every key of a pair, with its position. TK_NO_RANK
 * shifted as a merged id is: with 15 position bits and `then_left` (a shift of 39) its top bits fall off, and
 * what is left is still above every key of a pair (their merged ids are below 2^24 there) and at or below the
 * key of a pair whose merged id is TK_NO_RANK (shifted the same way). */
static inline uint64_t tk_no_key_at(int then_left, unsigned position_bits) {
    return (uint64_t)TK_NO_RANK << tk_merged_shift_at(then_left, position_bits);
}
static inline uint64_t tk_no_key(int then_left) { return tk_no_key_at(then_left, TK_SHORT_POSITION_BITS); }

/* The token of buf[start, end), 3 bytes or more, where 8 bytes may be read from buf + start (the piece's
 * padded copy): one load, no branch on how much of the piece is left. */
static inline uint32_t tk_padded_rank(const tk_rank_table *table, const uint8_t *buf, size_t start, size_t end) {
    size_t n = end - start;
    uint64_t prefix;
    __builtin_memcpy(&prefix, buf + start, 8);
    if (n > 8) return tk_rank_of_long(table, buf + start, n, prefix);
    uint32_t rank;
    if (n == 3 && tk_trigram_rank(table, buf + start, &rank)) return rank;
    if (n == 4 && tk_quad_absent(table, buf + start)) return TK_NO_RANK;
    prefix &= ~0ull >> (64 - 8 * n);
    return tk_rank_of_short_hashed(table, prefix, n, tk_short_token_hash(table, prefix, n));
}

/* The key of the pair [start, mid) + [mid, end) whose joined bytes are the token `merged` (TK_NO_RANK: none)
 * and whose left part is the token `left`: under a trained list (left_len_by_id), only when the list's merge
 * of `merged` has a left part of mid - start bytes. Its position (below 2^position_bits) not yet ORed in. */
static inline uint64_t tk_pair_key_at(uint32_t merged, uint32_t left, int then_left, const uint16_t *left_len_by_id,
                                      size_t n_ids, size_t start, size_t mid, unsigned position_bits) {
    if (left_len_by_id && (merged >= n_ids || left_len_by_id[merged] != mid - start))
        return tk_no_key_at(then_left, position_bits);
    /* merged == TK_NO_RANK gives a key at or above tk_no_key_at(...): no pair, whatever `left` adds */
    return (uint64_t)merged << tk_merged_shift_at(then_left, position_bits) |
           (then_left ? (uint64_t)left << position_bits : 0);
}
static inline uint64_t tk_pair_key(uint32_t merged, uint32_t left, int then_left, const uint16_t *left_len_by_id,
                                   size_t n_ids, size_t start, size_t mid) {
    return tk_pair_key_at(merged, left, then_left, left_len_by_id, n_ids, start, mid, TK_SHORT_POSITION_BITS);
}

static inline uint64_t tk_lower_key(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The lowest of key[k] | k over k in [from, from + n), n a multiple of TK_SCAN_STEP: 4 keys a step, no branch. */
static inline uint64_t tk_lowest_key(const uint64_t *key, size_t from, size_t n) {
    uint64_t best = UINT64_MAX;
    for (size_t k = from; k < from + n; k += TK_SCAN_STEP) {
        const uint64_t *step = key + k;
        uint64_t low = tk_lower_key(step[0] | k, step[1] | (k + 1));
        uint64_t high = tk_lower_key(step[2] | (k + 2), step[3] | (k + 3));
        best = tk_lower_key(best, tk_lower_key(low, high));
    }
    return best;
}

#define TK_TINY_PIECE 4
/* tiktoken's rule on a piece of 1-TK_TINY_PIECE bytes: at most three merges among at most three pairs, in a few
 * registers' worth of arrays. tk_short_merge's set-up (the piece's padded copy, 8 keys past its end, the links)
 * costs more than such a piece's merges: o200k_base splits 1 MB of random letters into ~250,000 pieces, ~110,000
 * of them 3-4 bytes and no token (docs/decisions.md, "Huge pieces of random letters: filtered without a branch").
 * A pair a merge makes holds a part of 2+ bytes, so it is 3-4 bytes: tk_rank_of_readable within the piece. */
static inline ptrdiff_t tk_tiny_merge(const tk_rank_table *table, const uint8_t *piece, size_t len, uint32_t *out) {
    size_t start[TK_TINY_PIECE + 1], m = len; /* part k is piece[start[k], start[k + 1]) */
    uint32_t id[TK_TINY_PIECE];       /* part k's token */
    uint32_t pair[TK_TINY_PIECE - 1]; /* the rank of parts k and k + 1 joined (TK_NO_RANK: none) */
    for (size_t k = 0; k < len; k++) {
        start[k] = k;
        id[k] = table->byte_rank[piece[k]];
    }
    start[len] = len;
    for (size_t k = 0; k + 1 < len; k++) pair[k] = table->pair_rank[(piece[k] << 8) | piece[k + 1]];
    for (;;) {
        size_t best = 0;
        for (size_t k = 1; k + 1 < m; k++) best = pair[k] < pair[best] ? k : best; /* leftmost of the lowest */
        if (m < 2 || pair[best] == TK_NO_RANK) break;
        id[best] = pair[best];
        for (size_t k = best + 1; k < m; k++) { /* part best + 1 joins part best */
            start[k] = start[k + 1];
            if (k + 1 < m) id[k] = id[k + 1];
            if (k + 1 < m - 1) pair[k] = pair[k + 1];
        }
        m--;
        if (best > 0)
            pair[best - 1] = tk_rank_of_readable(table, piece + start[best - 1], start[best + 1] - start[best - 1],
                                                 len - start[best - 1]);
        if (best + 1 < m)
            pair[best] = tk_rank_of_readable(table, piece + start[best], start[best + 2] - start[best],
                                             len - start[best]);
    }
    if (out)
        for (size_t k = 0; k < m; k++) out[k] = id[k];
    return (ptrdiff_t)m;
}

/* The parts of buf[0, len) with its characters started as atoms where they may be (char_atoms.c): the first
 * position of each part in start[0, m), start[m] = len, and the part's token in id[that position]; m. A character
 * that is no atom stays bytes, a part a byte. Shared by tk_short_start_atoms and bpe_merge_group.c's
 * start_with_atoms, which look their pairs up differently. */
static inline size_t tk_atom_parts(const tk_rank_table *table, const tk_char_atoms *atoms, const uint8_t *buf,
                                   size_t len, uint32_t *id, size_t *start) {
    size_t m = 0;
    for (size_t k = 0; k < len;) {
        size_t n = 1;
        uint32_t atom = buf[k] >= 0xC2 ? tk_char_atom_at(atoms, buf, k, len, &n) : 0; /* 1 + its id */
        start[m++] = k;
        if (atom) {
            id[k] = atom - 1;
        } else {
            id[k] = table->byte_rank[buf[k]];
            n = n ? n : 1;
            for (size_t i = k + 1; i < k + n; i++) { /* the character's other bytes: parts of their own */
                start[m++] = i;
                id[i] = table->byte_rank[buf[i]];
            }
        }
        k += n;
    }
    start[m] = len;
    return m;
}

/* The parts of buf[0, len) (padded) with its characters started as atoms where they may be (tk_atom_parts): ids,
 * links and keys of positions [0, len), no key inside an atom or at the last part, each look-up made at once. */
static inline void tk_short_start_atoms(const tk_rank_table *table, const tk_char_atoms *atoms,
                                        const uint16_t *left_len_by_id, size_t n_ids, int then_left,
                                        const uint8_t *buf, size_t len, uint32_t *id, uint64_t *key, uint8_t *next,
                                        uint8_t *prev) {
    const uint64_t no_key = tk_no_key(then_left);
    size_t start[TK_SHORT_MERGE_PIECE + 1];
    size_t m = tk_atom_parts(table, atoms, buf, len, id, start);
    for (size_t k = 0; k < len; k++) key[k] = no_key;
    for (size_t p = 0; p < m; p++) {
        size_t k = start[p], end = start[p + 1];
        next[k] = (uint8_t)end;
        if (p > 0) prev[k] = (uint8_t)start[p - 1];
        if (p + 1 == m) break;
        uint32_t merged = end - k == 1 && start[p + 2] - end == 1 ? table->pair_rank[(buf[k] << 8) | buf[end]]
                                                                   : tk_padded_rank(table, buf, k, start[p + 2]);
        key[k] = tk_pair_key(merged, id[k], then_left, left_len_by_id, n_ids, k, end);
    }
}

/* Whether buf[0, len) holds a byte of C0 or more (the lead byte of a character an atom may be, or C0/C1, which
 * tk_atom_parts leaves bytes), eight at a time: buf is zero-padded (8 bytes past len). A byte at a time this
 * was ~45,000 of cl100k_base code's 24.9 M instructions (its long identifiers). */
static inline int tk_has_high_lead(const uint8_t *buf, size_t len) {
    uint64_t any = 0;
    for (size_t k = 0; k < len; k += 8) {
        uint64_t word;
        memcpy(&word, buf + k, 8);
        any |= word & (word << 1); /* bit 7 of a byte: its top two bits set */
    }
    return (any & 0x8080808080808080ull) != 0;
}

/* The ids of piece[0, len), 1 <= len <= TK_SHORT_MERGE_PIECE, into out (NULL: only counted); their count. */
static inline __attribute__((always_inline)) ptrdiff_t
tk_short_merge(const tk_rank_table *table, const uint16_t *left_len_by_id, size_t n_ids, int then_left,
               const tk_char_atoms *atoms, const uint8_t *piece, size_t len, uint32_t *out) {
    const uint64_t no_key = tk_no_key(then_left);
    const unsigned shift = tk_merged_shift(then_left);
    uint8_t buf[TK_SHORT_MERGE_PIECE + 8];
    uint64_t key[TK_SHORT_MERGE_PIECE + TK_KEY_BLOCK];
    /* blocked pieces: block[b] the lowest key | position of positions [8b, 8b + 8); UINT64_MAX past the last */
    uint64_t block[TK_SHORT_MERGE_PIECE / TK_KEY_BLOCK + TK_SCAN_STEP];
    uint8_t next[TK_SHORT_MERGE_PIECE], prev[TK_SHORT_MERGE_PIECE];
    uint32_t id[TK_SHORT_MERGE_PIECE];
    memcpy(buf, piece, len);
    memset(buf + len, 0, 8);
    if (atoms && tk_has_high_lead(buf, len)) {
        tk_short_start_atoms(table, atoms, left_len_by_id, n_ids, then_left, buf, len, id, key, next, prev);
    } else {
        for (size_t k = 0; k < len; k++) {
            id[k] = table->byte_rank[buf[k]];
            /* k = len - 1 pairs the last byte with the padding: reset below */
            key[k] = tk_pair_key(table->pair_rank[(buf[k] << 8) | buf[k + 1]], id[k], then_left, left_len_by_id,
                                 n_ids, k, k + 1);
            next[k] = (uint8_t)(k + 1);
            prev[k] = (uint8_t)(k - 1); /* prev[0] is never read */
        }
    }
    for (size_t k = len - 1; k < len + TK_KEY_BLOCK; k++) key[k] = no_key;
    const int blocked = len > TK_BLOCKED_PIECE;
    const size_t n_blocks = (len + TK_KEY_BLOCK - 1) / TK_KEY_BLOCK;
    if (blocked) {
        for (size_t b = 0; b < n_blocks; b++) block[b] = tk_lowest_key(key, b * TK_KEY_BLOCK, TK_KEY_BLOCK);
        for (size_t b = n_blocks; b < n_blocks + TK_SCAN_STEP; b++) block[b] = UINT64_MAX;
    }
    for (;;) {
        uint64_t best = UINT64_MAX;
        if (blocked) {
            for (size_t b = 0; b < n_blocks; b += TK_SCAN_STEP)
                best = tk_lower_key(best, tk_lower_key(tk_lower_key(block[b], block[b + 1]),
                                                       tk_lower_key(block[b + 2], block[b + 3])));
        } else {
            best = tk_lowest_key(key, 0, (len + TK_SCAN_STEP - 1) & ~(size_t)(TK_SCAN_STEP - 1));
        }
        if (best >= no_key) break;
        size_t at = (size_t)(best & 0xFF), right = next[at], end = next[right]; /* at + right = [at, end) */
        id[at] = (uint32_t)(best >> shift);
        key[right] = no_key;
        next[at] = (uint8_t)end;
        if (at > 0) {
            size_t before = prev[at];
            key[before] = tk_pair_key(tk_padded_rank(table, buf, before, end), id[before], then_left, left_len_by_id,
                                      n_ids, before, at);
        }
        if (end < len) {
            prev[end] = (uint8_t)at;
            key[at] = tk_pair_key(tk_padded_rank(table, buf, at, next[end]), id[at], then_left, left_len_by_id, n_ids,
                                  at, end);
        } else {
            key[at] = no_key;
        }
        if (blocked) { /* keys changed at `right`, `at` and the part before `at`: their blocks, in any order */
            size_t a = at / TK_KEY_BLOCK, r = right / TK_KEY_BLOCK, p = at > 0 ? prev[at] / TK_KEY_BLOCK : a;
            block[a] = tk_lowest_key(key, a * TK_KEY_BLOCK, TK_KEY_BLOCK);
            if (r != a) block[r] = tk_lowest_key(key, r * TK_KEY_BLOCK, TK_KEY_BLOCK);
            if (p != a) block[p] = tk_lowest_key(key, p * TK_KEY_BLOCK, TK_KEY_BLOCK);
        }
    }
    size_t n = 0;
    for (size_t k = 0; k < len; k = next[k], n++)
        if (out) out[n] = id[k];
    return (ptrdiff_t)n;
}

#endif
