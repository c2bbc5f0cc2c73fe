/* The merge rule of pair-priority BPE (Hugging Face tokenizers' `Word::merge_all`, GPT-2's encoder.py,
 * llama.cpp): start from the ids of the single bytes; repeatedly merge the adjacent pair of parts with
 * the lowest merge priority, the leftmost one on ties (only equal pairs tie); stop when no adjacent pair
 * is a merge. A byte without an id is dropped (Hugging Face's BPE without an unk token skips a character
 * it cannot find; byte-level vocabularies lack at most bytes that never occur in UTF-8).
 *
 * How this differs from tiktoken's rule (bpe_merge.c): there the candidate is every adjacent pair whose
 * *concatenation* is a token, ranked by that token's id; here only pairs the merge list names, ranked by
 * their place in it, and the merged id comes from the list. A vocabulary converted from tiktoken ranks
 * (Llama 3's) lists every split of every token, so the two rules agree there except where the
 * list's order does.
 *
 * Both implementations mirror bpe_merge.c: parts in an array scanned for the minimum (short pieces,
 * O(n^2) but cache-friendly) and a heap over a linked list with lazy deletion (long pieces, O(n log n)).
 * The Python reference (tokend/engine/pair_bpe.py) and Hugging Face `tokenizers` hold both to the same ids. */
#include <stdlib.h>
#include <string.h>

#include "binary_heap.h"
#include "tokend_native.h"

#define TK_SHORT_PIECE 128

static ptrdiff_t merge_short(const tk_pair_table *pairs, const uint32_t *initial, size_t m, uint32_t *out) {
    /* id[k]: part k; priority[k] / merged[k]: the merge of parts k and k+1 (TK_NO_RANK: none). */
    uint32_t id[TK_SHORT_PIECE], priority[TK_SHORT_PIECE], merged[TK_SHORT_PIECE];
    memcpy(id, initial, m * sizeof id[0]);
    for (size_t k = 0; k + 1 < m; k++) {
        const tk_pair_slot *slot = tk_pair_lookup(pairs, id[k], id[k + 1]);
        priority[k] = slot ? slot->priority : TK_NO_RANK;
        merged[k] = slot ? slot->merged : 0;
    }
    while (m > 1) {
        uint32_t best = TK_NO_RANK;
        size_t at = 0;
        for (size_t k = 0; k + 1 < m; k++) {
            if (priority[k] < best) {
                best = priority[k];
                at = k;
            }
        }
        if (best == TK_NO_RANK) break;
        id[at] = merged[at];
        memmove(&id[at + 1], &id[at + 2], (m - at - 2) * sizeof id[0]);
        memmove(&priority[at + 1], &priority[at + 2], (m - at - 2) * sizeof priority[0]);
        memmove(&merged[at + 1], &merged[at + 2], (m - at - 2) * sizeof merged[0]);
        m--;
        /* the pairs around the new part: (at-1, at) and (at, at+1) */
        for (size_t k = at ? at - 1 : 0; k <= at && k + 1 < m; k++) {
            const tk_pair_slot *slot = tk_pair_lookup(pairs, id[k], id[k + 1]);
            priority[k] = slot ? slot->priority : TK_NO_RANK;
            merged[k] = slot ? slot->merged : 0;
        }
        if (at + 1 == m) priority[at] = TK_NO_RANK; /* the new part is the last one */
    }
    memcpy(out, id, m * sizeof id[0]);
    return (ptrdiff_t)m;
}

typedef struct {
    uint32_t priority;
    uint32_t left;   /* index of the pair's left part */
    uint32_t end;    /* index just past its right part: the entry is current iff the pair still ends there */
    uint32_t merged;
} heap_entry;

static inline int entry_before(const heap_entry *a, const heap_entry *b) {
    return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

TK_BINARY_HEAP(heap, heap_entry, entry_before)

#define DEAD UINT32_MAX

static int push_pair(heap *h, const tk_pair_table *pairs, const uint32_t *id, uint32_t left, uint32_t right,
                     uint32_t end) {
    const tk_pair_slot *slot = tk_pair_lookup(pairs, id[left], id[right]);
    if (!slot) return 0;
    return heap_push(h, (heap_entry){slot->priority, left, end, slot->merged});
}

static ptrdiff_t merge_long(const tk_pair_table *pairs, const uint32_t *initial, size_t m, uint32_t *out) {
    /* Parts are named by the index of their first initial symbol. next[i]: the part after part i (m at the
     * end), DEAD once part i was merged into its left neighbour; prev[i]: the part before (DEAD for the
     * first); id[i]: part i's token. Memory for m symbols: 12m for the arrays, 16m and up for the heap. */
    uint32_t *next = malloc(m * sizeof *next);
    uint32_t *prev = malloc(m * sizeof *prev);
    uint32_t *id = malloc(m * sizeof *id);
    heap h = {malloc(m * sizeof(heap_entry)), 0, m};
    ptrdiff_t n = -1;
    if (!next || !prev || !id || !h.entries) goto done;
    memcpy(id, initial, m * sizeof *id);
    for (size_t i = 0; i < m; i++) {
        next[i] = (uint32_t)(i + 1);
        prev[i] = i ? (uint32_t)(i - 1) : DEAD;
    }
    for (size_t i = 0; i + 1 < m; i++)
        if (push_pair(&h, pairs, id, (uint32_t)i, (uint32_t)(i + 1), (uint32_t)(i + 2)) < 0) goto done;
    while (h.size) {
        heap_entry top = heap_pop(&h);
        uint32_t left = top.left, end = top.end;
        uint32_t right = next[left];
        if (right == DEAD || right >= m || next[right] != end) continue; /* stale */
        id[left] = top.merged;
        next[left] = end;
        next[right] = DEAD;
        if (end < m) {
            prev[end] = left;
            if (push_pair(&h, pairs, id, left, end, next[end]) < 0) goto done;
        }
        uint32_t before = prev[left];
        if (before != DEAD && push_pair(&h, pairs, id, before, left, end) < 0) goto done;
    }
    n = 0;
    for (uint32_t part = 0; part < m; part = next[part]) out[n++] = id[part];
done:
    free(next);
    free(prev);
    free(id);
    free(h.entries);
    return n;
}

ptrdiff_t tk_pair_merge(const tk_pair_table *pairs, const tk_rank_table *table, const uint8_t *piece, size_t len,
                        uint32_t *out) {
    /* The single-byte ids go into `out` first (room for len ids), then the merge reads them from there. */
    size_t m = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t byte_id = table->byte_rank[piece[i]];
        if (byte_id != TK_NO_RANK) out[m++] = byte_id;
    }
    if (m <= 1) return (ptrdiff_t)m;
    if (m <= TK_SHORT_PIECE) return merge_short(pairs, out, m, out);
    uint32_t *initial = malloc(m * sizeof *initial);
    if (!initial) return -1;
    memcpy(initial, out, m * sizeof *initial);
    ptrdiff_t n = merge_long(pairs, initial, m, out);
    free(initial);
    return n;
}
