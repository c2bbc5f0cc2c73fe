/* tiktoken's merge rule for one piece: start from single bytes; repeatedly merge the adjacent pair whose
 * concatenation has the lowest rank (the leftmost on ties); stop when no adjacent pair is a token.
 *
 * Three implementations of the same rule:
 * - short pieces (the common case): the parts linked in arrays on the stack, each merge a scan of every
 *   position for the lowest (rank, position) (short_merge.h), O(n^2) but a few instructions a position;
 * - long pieces: a heap of (rank, start) over a linked list of parts with lazy deletion, O(n log n);
 * - pieces past TK_SHORT_PIECE made of a few long runs of one byte ("a" * n): the parts kept as runs
 *   of equal tokens (bpe_run_merge.c), a few lookups per run and round;
 * - other pieces of TK_BUCKET_PIECE (512 bytes) and more: the same order without the heap, one rank at a time
 *   (bpe_bucket_merge.c), O(n + ranks) and 1 bit + ~4 bytes a byte; it hands back to the heap when the
 *   vocabulary's ranks are not in merge order. One 1 MB piece of cl100k_base on this machine: "a" * n
 *   0.24 s with the heap -> 0.035 s, random letters 0.19 -> 0.055 s; peak RSS of counting an 8 MiB
 *   piece of random letters 137 -> 17 MiB.
 * The Python reference (tokend/engine/bpe.py) implements the heap version; the tests hold all of them
 * (and tiktoken) to the same ids. */
#include <stdlib.h>
#include <string.h>

#include "binary_heap.h"
#include "short_merge.h"
#include "tokend_native.h"

/* Below this the scan's O(n^2) (short_merge.h) is at most ~16k cheap steps on a stack buffer; above it the
 * heap bounds adversarial input. Pieces past 128 bytes are rare in text (25 of 98,449 cache misses of o200k
 * multilingual), so the exact point hardly matters; the crossover itself was not measured. */
#define TK_SHORT_PIECE TK_SHORT_MERGE_PIECE

/* The rank of piece[start, end) inside a piece of `len` bytes, which bounds what may be read
 * (tk_rank_of_readable). */
static inline uint32_t pair_rank_in(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t start,
                                    size_t end) {
    return tk_rank_of_readable(table, piece + start, end - start, len - start);
}

/* Pieces of 5-128 bytes start their characters whole where the table's atoms allow (char_atoms.c): o200k_base keeps
 * a Thai, Devanagari or Malayalam word one piece of 16-128 bytes, whose merges joined its characters' bytes one by
 * one first. */
static ptrdiff_t merge_short(const tk_rank_table *table, const uint8_t *piece, size_t len, uint32_t *out) {
    if (len <= TK_TINY_PIECE) return tk_tiny_merge(table, piece, len, out);
    return tk_short_merge(table, NULL, 0, 0, table->atoms, piece, len, out);
}

/* merge_short with a merge list's order among pairs that join into the same token: a list of every split
 * of every token sorted by (merged id, left id) (merge_index.c checks that) runs tiktoken's rule, except
 * that two different splits of one token may be candidates at once ("ab"+"a" and "a"+"ba" both make "aba"):
 * the list takes the one whose left part has the lower id, tiktoken the leftmost. Equal pairs: leftmost.
 * (No input was found where the two choices end in different ids; unproven, so the list's choice is made.)
 * Ids below TK_SHORT_MERGE_MAX_IDS only (short_merge.h keeps a left id in 24 bits). */
ptrdiff_t tk_bpe_merge_list_order(const tk_rank_table *table, const uint8_t *piece, size_t len, uint32_t *out) {
    if (len == 0) return 0;
    if (len > TK_SHORT_PIECE) return -2;
    return tk_short_merge(table, NULL, 0, 1, NULL, piece, len, out);
}

typedef struct {
    uint32_t rank;
    uint32_t left;  /* start of the pair's left part */
    uint32_t end;   /* end of its right part: the entry is current iff the pair still ends there */
} heap_entry;

static inline int entry_before(const heap_entry *a, const heap_entry *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

TK_BINARY_HEAP(heap, heap_entry, entry_before)

#define DEAD UINT32_MAX

static ptrdiff_t merge_long(const tk_rank_table *table, const uint8_t *piece, size_t len, uint32_t *out) {
    /* Parts are named by their start offset. next[i]: start of the part after part i (len at the end),
     * DEAD once part i has been merged into its left neighbour. prev[i]: start of the part before (DEAD
     * for the first). The heap starts with one entry per adjacent pair and every merge pushes at most two,
     * so it never exceeds 3 * len entries; it grows on demand (most pieces need far fewer: stale entries
     * are dropped as they surface). Memory for a piece of n bytes: 8n for the links, 12-36n for the heap. */
    uint32_t *next = malloc(len * sizeof *next);
    uint32_t *prev = malloc(len * sizeof *prev);
    heap h = {malloc(len * sizeof(heap_entry)), 0, len};
    ptrdiff_t n = -1;
    if (!next || !prev || !h.entries) goto done;
    for (size_t i = 0; i < len; i++) {
        next[i] = (uint32_t)(i + 1);
        prev[i] = i ? (uint32_t)(i - 1) : DEAD;
    }
    for (size_t i = 0; i + 1 < len; i++) {
        uint32_t rank = pair_rank_in(table, piece, len, i, i + 2);
        if (rank != TK_NO_RANK && heap_push(&h, (heap_entry){rank, (uint32_t)i, (uint32_t)(i + 2)}) < 0) goto done;
    }
    while (h.size) {
        heap_entry top = heap_pop(&h);
        uint32_t left = top.left, end = top.end;
        uint32_t right = next[left];
        if (right == DEAD || right >= len || next[right] != end) continue; /* stale */
        next[left] = end;
        next[right] = DEAD;
        if (end < len) {
            prev[end] = left;
            uint32_t after = next[end];
            uint32_t rank = pair_rank_in(table, piece, len, left, after);
            if (rank != TK_NO_RANK && heap_push(&h, (heap_entry){rank, left, after}) < 0) goto done;
        }
        uint32_t before = prev[left];
        if (before != DEAD) {
            uint32_t rank = pair_rank_in(table, piece, len, before, end);
            if (rank != TK_NO_RANK && heap_push(&h, (heap_entry){rank, before, end}) < 0) goto done;
        }
    }
    n = 0;
    for (uint32_t start = 0; start < len; start = next[start], n++)
        if (out) out[n] = pair_rank_in(table, piece, len, start, next[start]);
done:
    free(next);
    free(prev);
    free(h.entries);
    return n;
}

/* The ids of a piece by tiktoken's rule, uncut: by its length, the short merge, the runs of a piece of a few
 * long byte runs, the heap, or the buckets of a huge piece. The runs from the short merge's end on: a line of
 * 129-16,383 spaces or "=" took the heap at ~130-200 ns a byte (5,000 spaces: 0.9 ms; the runs: microseconds),
 * and a piece of shorter runs is declined after a few bytes (at most len / 64 runs). */
static ptrdiff_t merge_uncut(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t n_ranks,
                             uint32_t *out) {
    if (len <= TK_SHORT_PIECE) return merge_short(table, piece, len, out); /* out NULL: only counted */
    ptrdiff_t n = tk_bpe_merge_without_heap(table, NULL, piece, len, n_ranks, out);
    return n != -2 ? n : merge_long(table, piece, len, out);
}

/* The ids of piece[start, end), one segment of a piece cut where no token spans (merge_cut): its merge, or its
 * token when it is one that merged to itself before. Not the token on sight: a segment, unlike a whole piece,
 * gets tiktoken's merge of its bytes, which for a token no merge reaches is not that token (a vocabulary with
 * "\xe4\xb8\xad" but none of its two-byte halves: a cut "\xe4\xb8\xad\xe4\xb8\xad" is six bytes). Every token of
 * cl100k_base and o200k_base merges to itself; the bit spares each one's merges after its first. */
static ptrdiff_t merge_segment(const tk_rank_table *table, const uint8_t *piece, size_t start, size_t end,
                               size_t n_ranks, uint32_t *out) {
    uint32_t rank = pair_rank_in(table, piece, end, start, end);
    uint64_t *word = rank < table->n_merged_bits ? &table->merges_to_itself[rank >> 6] : NULL;
    uint64_t bit = 1ull << (rank & 63);
    if (word && (__atomic_load_n(word, __ATOMIC_RELAXED) & bit)) {
        if (out) out[0] = rank;
        return 1;
    }
    ptrdiff_t n = merge_uncut(table, piece + start, end - start, n_ranks, out);
    if (word && n == 1) __atomic_fetch_or(word, bit, __ATOMIC_RELAXED); /* one part of all its bytes: the token */
    return n;
}

/* merge_uncut of a piece cut at every boundary between two characters of 2-4 bytes that no token spans
 * (tk_cut_between): no merge joins parts across such a boundary, so the merges either side of it are those
 * of each side alone, in the same order among themselves, and the ids are each side's in turn. A segment
 * that is a token is found whole, without its merges; in a piece longer than TK_SHORT_PIECE a segment equal
 * to the one before takes its ids (one emoji repeated over 1 MB: 262,144 segments, merged once). A segment
 * longer than TK_SHORT_PIECE sends the whole piece to merge_uncut instead (the ids written so far are written
 * over): the heap and the buckets are bounded for the whole piece, and a bucket merge per segment would pay
 * its set-up (16 bytes a rank) per segment. In
 * multilingual text under cl100k_base most boundaries between CJK, Devanagari or Thai characters are cut
 * (few of its tokens hold two of them): the merges of the first-pass pieces of the benchmark's multilingual
 * text fall from 52,660 to 37,452, under o200k_base (many such tokens) by ~11 % (docs/decisions.md, "Pieces
 * cut where no token spans"). A character that is not a lead byte and its continuation bytes whole inside
 * the piece is never cut at. */
static ptrdiff_t merge_cut(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t n_ranks,
                           uint32_t *out) {
    size_t start = 0, n = 0;
    size_t last = 0, last_len = 0; /* the character before the one at p, when it is 2-4 bytes (else last_len 0) */
    /* the segment before the current one (pieces past TK_SHORT_PIECE): its bytes and where its ids went */
    size_t before_start = 0, before_len = 0, before_ids = 0, before_n = 0;
    const int repeats = len > TK_SHORT_PIECE;
    for (size_t p = 0; p < len;) {
        size_t k = tk_utf8_lead_len(piece[p]);
        int whole = k >= 2 && p + k <= len;
        for (size_t j = p + 1; whole && j < p + k; j++) whole = tk_utf8_lead_len(piece[j]) == 0;
        if (!whole) {
            last_len = 0;
            p += 1;
            continue;
        }
        if (last_len && tk_cut_between(table, piece + last, last_len, piece + p, k)) {
            size_t seg_len = p - start;
            if (seg_len > TK_SHORT_PIECE) return merge_uncut(table, piece, len, n_ranks, out); /* see above */
            ptrdiff_t m;
            if (repeats && seg_len == before_len && memcmp(piece + start, piece + before_start, seg_len) == 0) {
                if (out) memmove(out + n, out + before_ids, before_n * sizeof *out);
                m = (ptrdiff_t)before_n;
            } else {
                m = merge_segment(table, piece, start, p, n_ranks, out ? out + n : NULL);
                if (m < 0) return m;
            }
            before_start = start, before_len = seg_len, before_ids = n, before_n = (size_t)m;
            n += (size_t)m;
            start = p;
        }
        last = p;
        last_len = k;
        p += k;
    }
    if (start == 0 || len - start > TK_SHORT_PIECE) return merge_uncut(table, piece, len, n_ranks, out);
    ptrdiff_t m = merge_segment(table, piece, start, len, n_ranks, out ? out + n : NULL);
    return m < 0 ? m : (ptrdiff_t)n + m;
}

/* Whether a piece holds a byte of C0-FF (a lead byte of 2-4), which merge_cut needs to cut anywhere. */
static inline int has_lead_byte(const uint8_t *piece, size_t len) {
    size_t k = 0;
    for (uint64_t word; k + 8 <= len; k += 8) { /* the top two bits of each byte */
        memcpy(&word, piece + k, 8);
        if (word & (word << 1) & 0x8080808080808080ull) return 1;
    }
    for (; k < len; k++)
        if (piece[k] >= 0xC0) return 1;
    return 0;
}

ptrdiff_t tk_bpe_merge(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t n_ranks, uint32_t *out) {
    if (len == 0) return 0;
    if (len <= TK_TINY_PIECE) return tk_tiny_merge(table, piece, len, out); /* a cut would give the same ids */
    if (table->cut_pairs && has_lead_byte(piece, len)) return merge_cut(table, piece, len, n_ranks, out);
    return merge_uncut(table, piece, len, n_ranks, out);
}
