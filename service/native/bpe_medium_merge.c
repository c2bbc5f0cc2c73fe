/* The merge of a piece of TK_SHORT_MERGE_PIECE + 1 to TK_BUCKET_PIECE - 1 bytes, for the three rules of
 * short_merge.h (tiktoken's; a trained list in merged-id order; a list of every split in (merged id, left id)
 * order): short_merge.h's links and keys, with the lowest key found through a tree of minima instead of a scan.
 *
 *     ptrdiff_t n = tk_medium_merge(table, NULL, 0, 0, piece, len, out);               // tiktoken's rule
 *     ptrdiff_t n = tk_medium_merge(table, left_len_by_id, n_ids, 0, piece, len, out); // a trained list
 *     ptrdiff_t n = tk_medium_merge(table, NULL, 0, 1, piece, len, out);               // every split
 *
 * These pieces took the heap (bpe_merge.c's merge_long, merge_index.c's) before: text of many of them (random
 * lowercase words of 129-511 letters) cost 0.09-0.14 s a MB on cl100k_base, o200k_base, Llama 3 and Qwen 3, most
 * of it the heap's sifts (their branches as good as random to the predictor), where the short merge's 128-byte
 * pieces cost 0.03. The bucket merge (bpe_bucket_merge.c) is no better there: its set-up is 4 bytes a rank of the
 * vocabulary, and a rank of a piece that size has one or two merges, too few to hide its lookups' misses behind
 * each other (docs/decisions.md, "Pieces of 129 bytes to 8 KiB").
 *
 * The tree (min_tree.h) holds each position's key with its position ORed in (the key of the pair the part at
 * * that position makes with the next part; tk_no_key_at when none); a merge changes three keys. A piece of 512 bytes
 * has 3 levels, one of 4 KiB 4. Exact for any vocabulary, in merge order or not: the
 * lowest key is the rule's next merge, as in short_merge.h. Keys (64 bits): the merged id << 15 | position
 * (tiktoken's rule, a trained list), or the merged id << 39 | the left part's id << 15 | position (every
 * split: ids below TK_SHORT_MERGE_MAX_IDS, as merge_index.c checks); positions below 2^15. */
#include <stdlib.h>
#include <string.h>

#include "min_tree.h"
#include "short_merge.h"
#include "tokend_native.h"

#define POSITION_BITS 15
_Static_assert(TK_BUCKET_PIECE <= (1 << POSITION_BITS), "keys hold a position in 15 bits");
_Static_assert(TK_SHORT_MERGE_MAX_IDS <= (1u << 24), "every split's keys hold two ids in 24 bits each");

/* short_merge.h's keys with 15 position bits. */
static inline uint64_t medium_key(uint32_t merged, uint32_t left, int then_left, const uint16_t *left_len_by_id,
                                  size_t n_ids, size_t start, size_t mid) {
    return tk_pair_key_at(merged, left, then_left, left_len_by_id, n_ids, start, mid, POSITION_BITS);
}

static inline __attribute__((always_inline)) ptrdiff_t
medium_merge(const tk_rank_table *table, const uint16_t *left_len_by_id, size_t n_ids, int then_left,
             const uint8_t *piece, size_t len, uint32_t *out) {
    /* One block: the tree (min_tree.h), the links, the ids, the padded copy of the piece. */
    tk_min_tree t;
    size_t entries = tk_min_tree_size(&t, len);
    uint64_t *memory = malloc(entries * sizeof(uint64_t) + 3 * len * sizeof(uint32_t) + (len + 8));
    if (!memory) return -1;
    tk_min_tree_place(&t, memory);
    uint32_t *next = (uint32_t *)(memory + entries); /* next[k]: where the part at k ends (the next one starts) */
    uint32_t *prev = next + len;                     /* prev[k]: where the part before it starts */
    uint32_t *id = prev + len;                       /* id[k]: the part's token */
    uint8_t *buf = (uint8_t *)(id + len);            /* the piece and 8 zero bytes (tk_padded_rank) */
    memcpy(buf, piece, len);
    memset(buf + len, 0, 8);

    const uint64_t none = tk_no_key_at(then_left, POSITION_BITS);
    uint64_t *key = t.level[0]; /* key | position of the pair the part at each position makes with the next */
    for (size_t k = 0; k < len; k++) {
        id[k] = table->byte_rank[buf[k]];
        next[k] = (uint32_t)(k + 1);
        prev[k] = (uint32_t)(k - 1); /* prev[0] is never read */
    }
    for (size_t k = 0; k + 1 < len; k++)
        key[k] = medium_key(table->pair_rank[(buf[k] << 8) | buf[k + 1]], id[k], then_left, left_len_by_id, n_ids, k,
                            k + 1) | k;
    for (size_t k = len - 1; k < t.sizes[0]; k++) key[k] = none | k;
    tk_min_tree_build(&t);
    const unsigned shift = tk_merged_shift_at(then_left, POSITION_BITS);
    for (;;) {
        uint64_t best = tk_min_tree_lowest(&t);
        if (best >= none) break;
        size_t at = (size_t)(best & ((1u << POSITION_BITS) - 1)), right = next[at], end = next[right];
        id[at] = (uint32_t)(best >> shift); /* the merged id: the key's top bits */
        next[at] = (uint32_t)end;
        tk_min_tree_set(&t, right, none | right);
        if (at > 0) {
            size_t before = prev[at];
            tk_min_tree_set(&t, before, medium_key(tk_padded_rank(table, buf, before, end), id[before], then_left,
                                            left_len_by_id, n_ids, before, at) | before);
        }
        uint64_t after = none;
        if (end < len) {
            prev[end] = (uint32_t)at;
            after = medium_key(tk_padded_rank(table, buf, at, next[end]), id[at], then_left, left_len_by_id, n_ids, at,
                               end);
        }
        tk_min_tree_set(&t, at, after | at);
    }
    size_t n = 0;
    for (size_t k = 0; k < len; k = next[k], n++)
        if (out) out[n] = id[k];
    free(memory);
    return (ptrdiff_t)n;
}

ptrdiff_t tk_medium_merge(const tk_rank_table *table, const uint16_t *left_len_by_id, size_t n_ids, int then_left,
                          const uint8_t *piece, size_t len, uint32_t *out) {
    if (len == 0) return 0;
    tk_merge_counters_add_medium_merge(); /* for the tests (tk_merge_counters): one relaxed add a piece */
    if (then_left) return medium_merge(table, NULL, 0, 1, piece, len, out);
    if (left_len_by_id) return medium_merge(table, left_len_by_id, n_ids, 0, piece, len, out);
    return medium_merge(table, NULL, 0, 0, piece, len, out);
}
