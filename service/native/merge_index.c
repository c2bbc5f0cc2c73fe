/* Pair-priority BPE (pair_merge.c's rule, exactly) looked up through the vocabulary instead of a pair table.
 *
 * In a byte-level merge list every merge (left, right) -> merged joins bytes: merged's bytes are left's
 * followed by right's. Then every part of a piece is the token of its own bytes, and the pair of parts
 * (x, y) is a merge exactly when the token z of their joined bytes has a merge whose left part is |x|
 * bytes long. So the pair's priority is: z = rank_of(joined bytes) (rank_table.c: 1- and 2-byte tokens by
 * direct index, a filter in front of the rest), then z's merges by left length (this index: most tokens
 * have one merge, Llama 3's tiktoken-converted list has ~2.2). The pair table (pair_table.c) answers the
 * same question with a probe of an 8 MiB table for every candidate pair, which the 1- and 2-byte lookups
 * and the filter mostly avoid: this is the rank rule's merge loop (bpe_merge.c) with the merge list's
 * priority in place of the rank.
 *
 * Built only when every merge joins bytes (merged = left + right, all three tokens of the vocabulary) and
 * every byte has a token; otherwise (a byte without one is dropped by the pair rule; a list naming a merge
 * whose result is some other token) module.c keeps the pair table. A merge listed twice keeps its later
 * place, as in the pair table. The tests hold both paths, and the Python reference, to the same ids.
 * A list in merged-id order with one merge per token (trained lists: Qwen's, GPT-2's) needs less: the
 * merged id is the priority, and a 2-byte left length per id the whole index (merge_short_by_id).
 * Those two kinds of list (the merged ids' order) take tiktoken's merges of huge pieces too, the run merge and
 * the buckets (tk_list_rule); the heap here is left for pieces of 129-511 bytes, other lists, and the
 * pieces those two decline. */
#include <stdlib.h>
#include <string.h>

#include "binary_heap.h"
#include "short_merge.h"
#include "tokend_native.h"

void tk_merge_index_free(tk_merge_index *index) {
    tk_table_memory_free(&index->memory);
    free(index->left_len_by_id);
    tk_char_atoms_free(&index->atoms);
    memset(index, 0, sizeof *index);
}

/* 1 when the list is sorted by (merged id, left id) without repeats and has as many merges as the vocabulary
 * has splits of a token into two tokens. Every merge of an indexed list is such a split and a sorted list
 * has no repeats, so then the list is exactly every split: the candidates of tiktoken's rule, in an order
 * that only its tie-break (tk_bpe_merge_list_order) needs. */
static int is_every_split_in_order(const tk_rank_table *table, const uint32_t *triples, size_t n_merges,
                                   const uint8_t *const *token_bytes, const uint32_t *token_len, size_t n_ids) {
    for (size_t i = 1; i < n_merges; i++) {
        uint32_t merged = triples[3 * i + 2], previous = triples[3 * i - 1];
        if (merged < previous || (merged == previous && triples[3 * i] <= triples[3 * i - 3])) return 0;
    }
    size_t splits = 0;
    for (size_t id = 0; id < n_ids; id++) {
        const uint8_t *bytes = token_bytes[id];
        size_t len = bytes ? token_len[id] : 0;
        for (size_t at = 1; at < len; at++) {
            if (tk_rank_of(table, bytes, at) != TK_NO_RANK && tk_rank_of(table, bytes + at, len - at) != TK_NO_RANK &&
                ++splits > n_merges)
                return 0;
        }
    }
    return splits == n_merges;
}

/* 1 when the merged ids rise strictly along the list (so no token has two merges and the list's order is
 * the merged ids' order) and every left part has bytes (0 marks "no merge" in left_len_by_id). Called on a
 * list that joins bytes, so every length fits in 16 bits. */
static int is_in_merged_order(const uint32_t *triples, size_t n_merges, const uint32_t *token_len) {
    for (size_t i = 0; i < n_merges; i++) {
        if (token_len[triples[3 * i]] == 0 || (i && triples[3 * i + 2] <= triples[3 * i - 1])) return 0;
    }
    return 1;
}

int tk_merge_index_build(tk_merge_index *index, const tk_rank_table *table, const uint32_t *triples, size_t n_merges,
                         const uint8_t *const *token_bytes, const uint32_t *token_len, size_t n_ids) {
    memset(index, 0, sizeof *index);
    /* First pass: every merge joins bytes, and how many merges yield each token (an upper bound on its
     * entries: a merge listed twice takes one). */
    uint32_t *count = calloc(n_ids ? n_ids : 1, sizeof *count);
    if (!count) return -1;
    int status = 1;
    size_t n_more = 0;
    for (size_t i = 0; i < n_merges; i++) {
        uint32_t left = triples[3 * i], right = triples[3 * i + 1], merged = triples[3 * i + 2];
        if (left >= n_ids || right >= n_ids || merged >= n_ids || !token_bytes[left] || !token_bytes[right] ||
            !token_bytes[merged])
            goto done;
        size_t left_len = token_len[left], right_len = token_len[right];
        if (left_len + right_len != token_len[merged] || token_len[merged] > UINT16_MAX ||
            memcmp(token_bytes[merged], token_bytes[left], left_len) != 0 ||
            memcmp(token_bytes[merged] + left_len, token_bytes[right], right_len) != 0)
            goto done;
        if (++count[merged] == 2) n_more += 2;
        else if (count[merged] > 2) n_more++;
    }
    status = -1;
    /* One block for both arrays a lookup reads (table_memory.c: huge pages once it reaches 2 MiB). */
    size_t tokens_size = ((n_ids ? n_ids : 1) * sizeof *index->tokens + 63) & ~(size_t)63;
    uint8_t *block = tk_table_memory_alloc(&index->memory, tokens_size + (n_more ? n_more : 1) * sizeof *index->more);
    if (!block) goto done;
    index->tokens = (tk_token_merges *)block;
    index->more = (tk_split_merge *)(block + tokens_size);
    index->n_ids = n_ids;
    /* Tokens with several merges get a run of `more`, in id order. */
    size_t next = 0;
    for (size_t id = 0; id < n_ids; id++) {
        if (count[id] > 1) {
            index->tokens[id].priority = (uint32_t)next;
            next += count[id];
        }
    }
    for (size_t i = 0; i < n_merges; i++) {
        uint32_t left = triples[3 * i], merged = triples[3 * i + 2];
        uint16_t left_len = (uint16_t)token_len[left];
        tk_token_merges *token = &index->tokens[merged];
        if (count[merged] == 1) { /* inline */
            token->priority = (uint32_t)i;
            token->left_len = left_len;
            token->count = 1;
            continue;
        }
        /* a run (left_len stays 0) */
        tk_split_merge *run = &index->more[token->priority];
        uint16_t k = 0;
        while (k < token->count && run[k].left_len != left_len) k++;
        run[k] = (tk_split_merge){left_len, (uint32_t)i}; /* listed again: the later place */
        if (k == token->count) token->count++;
    }
    /* tk_bpe_merge_list_order keeps a left id in 24 bits (short_merge.h) */
    index->all_splits = n_ids <= TK_SHORT_MERGE_MAX_IDS &&
                        is_every_split_in_order(table, triples, n_merges, token_bytes, token_len, n_ids);
    if (!index->all_splits && is_in_merged_order(triples, n_merges, token_len)) {
        index->left_len_by_id = calloc(n_ids ? n_ids : 1, sizeof *index->left_len_by_id);
        if (!index->left_len_by_id) goto done;
        for (size_t i = 0; i < n_merges; i++)
            index->left_len_by_id[triples[3 * i + 2]] = (uint16_t)token_len[triples[3 * i]];
    }
    status = 0;
done:
    free(count);
    if (status != 0) tk_merge_index_free(index);
    return status;
}

/* The priority of the pair of parts [start, mid) + [mid, end) of `piece`; TK_NO_RANK: no merge. */
static inline uint32_t pair_priority(const tk_merge_index *index, const tk_rank_table *table, const uint8_t *piece,
                                     size_t start, size_t mid, size_t end) {
    uint32_t merged = tk_rank_of(table, piece + start, end - start);
    if (merged == TK_NO_RANK) return TK_NO_RANK;
    return tk_merge_index_priority(index, merged, mid - start);
}

#define TK_SHORT_PIECE TK_SHORT_MERGE_PIECE /* merge_short_by_id and tk_bpe_merge_list_order: short_merge.h */

/* The list's atoms for short_merge.h, NULL when it has none. */
static inline const tk_char_atoms *atoms_of(const tk_merge_index *index) {
    return index->atoms.block_of ? &index->atoms : NULL;
}

static ptrdiff_t merge_short(const tk_merge_index *index, const tk_rank_table *table, const uint8_t *piece, size_t len,
                             uint32_t *out) {
    /* parts k = 0..m-2 start at start[k]; start[m-1] == len is a sentinel. priority[k]: the pair (part k,
     * part k+1), TK_NO_RANK when it is no merge. tiktoken's array loop: short_merge.h's links take only
     * rules whose priority is the merged id. */
    uint32_t start[TK_SHORT_PIECE + 1];
    uint32_t priority[TK_SHORT_PIECE + 1];
    size_t m = len + 1;
    for (size_t k = 0; k < m; k++) start[k] = (uint32_t)k;
    for (size_t k = 0; k + 2 < m; k++) priority[k] = pair_priority(index, table, piece, k, k + 1, k + 2);
    priority[m - 2] = TK_NO_RANK;
    priority[m - 1] = TK_NO_RANK;
    for (;;) {
        uint32_t best = TK_NO_RANK;
        size_t at = 0;
        for (size_t k = 0; k + 1 < m; k++) { /* branch-free: which pair wins is as good as random */
            uint32_t p = priority[k];
            int lower = p < best;
            best = lower ? p : best;
            at = lower ? k : at;
        }
        if (best == TK_NO_RANK) break;
        /* merge parts at and at+1: the new part spans start[at] .. start[at+2] */
        if (at > 0) priority[at - 1] = pair_priority(index, table, piece, start[at - 1], start[at], start[at + 2]);
        priority[at] = at + 3 < m ? pair_priority(index, table, piece, start[at], start[at + 2], start[at + 3]) : TK_NO_RANK;
        memmove(&start[at + 1], &start[at + 2], (m - at - 2) * sizeof start[0]);
        memmove(&priority[at + 1], &priority[at + 2], (m - at - 2) * sizeof priority[0]);
        m--;
    }
    if (out)
        for (size_t k = 0; k + 1 < m; k++) out[k] = tk_rank_of(table, piece + start[k], start[k + 1] - start[k]);
    return (ptrdiff_t)(m - 1);
}

/* merge_short with merged ids as priorities: the same pairs, in the same order (the list's order is the
 * merged ids' order, one merge per token), so tiktoken's loop (short_merge.h) with the list's left length
 * as the only extra check; a merged part's id is its pair's priority. */
static ptrdiff_t merge_short_by_id(const tk_merge_index *index, const tk_rank_table *table, const uint8_t *piece,
                                   size_t len, uint32_t *out) {
    /* The caller's bound (tk_indexed_pair_merge), said to the compiler: without it GCC 12 warns that the
     * inlined merge's loops may write past its arrays of TK_SHORT_MERGE_PIECE (-Wstringop-overflow). */
    if (len == 0 || len > TK_SHORT_PIECE) __builtin_unreachable();
    return tk_short_merge(table, index->left_len_by_id, index->n_ids, 0, atoms_of(index), piece, len, out);
}

/* tk_bpe_merge_list_order (an every-split list's short pieces), with the list's atoms. */
static ptrdiff_t merge_short_every_split(const tk_merge_index *index, const tk_rank_table *table, const uint8_t *piece,
                                         size_t len, uint32_t *out) {
    if (len == 0 || len > TK_SHORT_PIECE) __builtin_unreachable();
    return tk_short_merge(table, NULL, 0, 1, atoms_of(index), piece, len, out);
}

typedef struct {
    uint32_t priority;
    uint32_t left;  /* start of the pair's left part */
    uint32_t end;   /* end of its right part: the entry is current iff the pair still ends there */
} heap_entry;

static inline int entry_before(const heap_entry *a, const heap_entry *b) {
    return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

TK_BINARY_HEAP(heap, heap_entry, entry_before)

#define DEAD UINT32_MAX

static int push_pair(heap *h, const tk_merge_index *index, const tk_rank_table *table, const uint8_t *piece,
                     uint32_t left, uint32_t mid, uint32_t end) {
    uint32_t priority = pair_priority(index, table, piece, left, mid, end);
    if (priority == TK_NO_RANK) return 0;
    return heap_push(h, (heap_entry){priority, left, end});
}

static ptrdiff_t merge_long(const tk_merge_index *index, const tk_rank_table *table, const uint8_t *piece, size_t len,
                            uint32_t *out) {
    /* bpe_merge.c's merge_long with priorities: parts named by their start, next[i] / prev[i] the
     * neighbours (DEAD once merged away), a heap with lazy deletion. A current entry's middle is still
     * next[left]: parts only join, so the one boundary left inside [left, end) is the one it was pushed with. */
    uint32_t *next = malloc(len * sizeof *next);
    uint32_t *prev = malloc(len * sizeof *prev);
    heap h = {malloc(len * sizeof(heap_entry)), 0, len};
    ptrdiff_t n = -1;
    if (!next || !prev || !h.entries) goto done;
    for (size_t i = 0; i < len; i++) {
        next[i] = (uint32_t)(i + 1);
        prev[i] = i ? (uint32_t)(i - 1) : DEAD;
    }
    for (size_t i = 0; i + 1 < len; i++)
        if (push_pair(&h, index, table, piece, (uint32_t)i, (uint32_t)(i + 1), (uint32_t)(i + 2)) < 0) goto done;
    while (h.size) {
        heap_entry top = heap_pop(&h);
        uint32_t left = top.left, end = top.end;
        uint32_t right = next[left];
        if (right == DEAD || right >= len || next[right] != end) continue; /* stale */
        next[left] = end;
        next[right] = DEAD;
        if (end < len) {
            prev[end] = left;
            if (push_pair(&h, index, table, piece, left, end, next[end]) < 0) goto done;
        }
        uint32_t before = prev[left];
        if (before != DEAD && push_pair(&h, index, table, piece, before, left, end) < 0) goto done;
    }
    n = 0;
    for (uint32_t start = 0; start < len; start = next[start], n++)
        if (out) out[n] = tk_rank_of(table, piece + start, next[start] - start);
done:
    free(next);
    free(prev);
    free(h.entries);
    return n;
}

ptrdiff_t tk_indexed_pair_merge(const tk_merge_index *index, const tk_rank_table *table, const uint8_t *piece, size_t len,
                                uint32_t *out) {
    if (len == 0) return 0;
    if (index->all_splits && len <= TK_SHORT_PIECE) return len ? merge_short_every_split(index, table, piece, len, out) : 0;
    if (index->left_len_by_id && len <= TK_SHORT_PIECE) return merge_short_by_id(index, table, piece, len, out);
    if (len <= TK_SHORT_PIECE) return merge_short(index, table, piece, len, out);
    if (index->all_splits || index->left_len_by_id) { /* the list's order is the merged ids': tk_list_rule */
        tk_list_rule rule = {index->left_len_by_id, index->all_splits};
        ptrdiff_t n = tk_bpe_merge_without_heap(table, &rule, piece, len, index->n_ids, out);
        if (n != -2) return n;
    }
    return merge_long(index, table, piece, len, out);
}
