/* sentencepiece's merge rule (bpe_model.cc, SampleEncode without dropout) over one segment of symbols:
 * repeatedly merge the adjacent pair whose concatenation is the piece with the highest score, the leftmost
 * such pair on ties (sentencepiece's agenda orders equal scores by the smaller left index); stop when no
 * adjacent pair forms a piece. Scores are compared as sentencepiece 0.2.3 compares them: by their 32-bit
 * patterns, which is the float order with -0.0 below +0.0 (sp_vocab.c's score keys).
 *
 * Two implementations of the same rule, as in bpe_merge.c:
 * - short segments (nearly all: a word and its leading ▁): an array scan per merge, O(n^2), no allocation;
 * - long segments: a heap of candidate pairs over a linked list with lazy deletion, O(n log n), so a 1 MB
 *   run of text with no boundary costs a fraction of a second. An entry is current iff both symbols are
 *   still adjacent and still carry the ids they had when it was pushed (sentencepiece checks the sizes).
 * The heap version pushes candidates in sentencepiece's order (every bigram left to right, then after each
 * merge the pair with the left neighbour, then with the right one), so for a whole sentence it also reproduces
 * which pair was last offered for each UNUSED piece (sp_bpe_merge_sentence). The Python reference
 * (tokend/engine/sentencepiece/reference.py) is sentencepiece's heap loop itself; the tests hold this file to
 * it and to sentencepiece. */
#include <stdlib.h>
#include <string.h>

#include "sp_native.h"

#define SP_SHORT_SEGMENT 64

/* The pair at k as (merged piece, its score key); no pair: SP_NONE with key 0, never chosen. */
static inline void set_pair(const sp_vocab *vocab, const uint32_t *ids, size_t k, uint32_t *pair, uint32_t *score) {
    uint32_t merged = sp_pair(vocab, ids[k], ids[k + 1]);
    pair[k] = merged;
    score[k] = merged == SP_NONE ? 0 : vocab->score_keys[merged];
}

static ptrdiff_t merge_short(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *keep) {
    uint32_t pair[SP_SHORT_SEGMENT];
    uint32_t score[SP_SHORT_SEGMENT];
    size_t m = n;
    for (size_t k = 0; k < m; k++) keep[k] = (uint32_t)k;
    for (size_t k = 0; k + 1 < m; k++) set_pair(vocab, ids, k, pair, score);
    for (;;) {
        /* The leftmost pair with the highest score. A real pair may have key 0 too (the score -NaN, refused at
         * load; kept exact anyway by comparing real pairs only). */
        size_t at = SIZE_MAX;
        uint32_t best = 0;
        for (size_t k = 0; k + 1 < m; k++) {
            if (pair[k] != SP_NONE && (at == SIZE_MAX || score[k] > best)) {
                best = score[k];
                at = k;
            }
        }
        if (at == SIZE_MAX) break;
        ids[at] = pair[at];
        size_t tail = m - at - 2; /* symbols after the absorbed one */
        memmove(&ids[at + 1], &ids[at + 2], tail * sizeof *ids);
        memmove(&keep[at + 1], &keep[at + 2], tail * sizeof *keep);
        memmove(&pair[at + 1], &pair[at + 2], tail * sizeof *pair);
        memmove(&score[at + 1], &score[at + 2], tail * sizeof *score);
        m--;
        if (at > 0) set_pair(vocab, ids, at - 1, pair, score);
        if (at + 1 < m) set_pair(vocab, ids, at, pair, score);
        else pair[at] = SP_NONE;
    }
    return (ptrdiff_t)m;
}

typedef struct {
    uint32_t score;              /* score key (sp_vocab.score_keys) */
    uint32_t left, right;        /* symbol positions */
    uint32_t left_id, right_id;  /* their ids when pushed */
    uint32_t merged;
} candidate;

static inline int before(const candidate *a, const candidate *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    candidate *entries;
    size_t size, cap;
} agenda;

static int push(agenda *h, candidate entry) {
    if (h->size == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        candidate *entries = realloc(h->entries, cap * sizeof *entries);
        if (!entries) return -1;
        h->entries = entries;
        h->cap = cap;
    }
    candidate *heap = h->entries;
    size_t i = h->size++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&entry, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = entry;
    return 0;
}

static candidate pop(agenda *h) {
    candidate *heap = h->entries;
    candidate top = heap[0], last = heap[--h->size];
    size_t n = h->size, i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && before(&heap[child + 1], &heap[child])) child++;
        if (!before(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (n) heap[i] = last;
    return top;
}

/* Pushes the pair (left, right) when it forms a piece, as sentencepiece's MaybeAddNewSymbolPair; with `rev`,
 * also records it as the last pair offered for an UNUSED piece (sentencepiece's rev_merge). */
static int offer(const sp_vocab *vocab, agenda *h, const uint32_t *ids, uint32_t left, uint32_t right, uint64_t *rev) {
    uint32_t merged = sp_pair(vocab, ids[left], ids[right]);
    if (merged == SP_NONE) return 0;
    if (rev && vocab->types[merged] == SP_UNUSED) rev[vocab->unused_slot[merged]] = (uint64_t)ids[left] << 32 | ids[right];
    return push(h, (candidate){vocab->score_keys[merged], left, right, ids[left], ids[right], merged});
}

#define DEAD UINT32_MAX

static ptrdiff_t merge_long(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *keep, uint64_t *rev) {
    uint32_t *next = malloc(n * sizeof *next), *prev = malloc(n * sizeof *prev);
    agenda h = {0};
    ptrdiff_t result = -1;
    if (!next || !prev) goto done;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (uint32_t)(i + 1) : DEAD;
        prev[i] = i ? (uint32_t)(i - 1) : DEAD;
    }
    for (size_t i = 0; i + 1 < n; i++)
        if (offer(vocab, &h, ids, (uint32_t)i, (uint32_t)(i + 1), rev) < 0) goto done;
    while (h.size) {
        candidate top = pop(&h);
        uint32_t left = top.left, right = top.right;
        if (next[left] != right || ids[left] != top.left_id || ids[right] != top.right_id || prev[right] != left)
            continue; /* stale */
        ids[left] = top.merged;
        next[left] = next[right];
        if (next[right] != DEAD) prev[next[right]] = left;
        prev[right] = DEAD; /* absorbed */
        next[right] = DEAD;
        if (prev[left] != DEAD && offer(vocab, &h, ids, prev[left], left, rev) < 0) goto done;
        if (next[left] != DEAD && offer(vocab, &h, ids, left, next[left], rev) < 0) goto done;
    }
    size_t m = 0;
    for (uint32_t i = 0; i != DEAD; i = next[i]) {
        ids[m] = ids[i];
        keep[m++] = i;
    }
    result = (ptrdiff_t)m;
done:
    free(next);
    free(prev);
    free(h.entries);
    return result;
}

ptrdiff_t sp_bpe_merge(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *keep) {
    if (n == 0) return 0;
    if (n <= SP_SHORT_SEGMENT) return merge_short(vocab, ids, n, keep);
    return merge_long(vocab, ids, n, keep, NULL);
}

ptrdiff_t sp_bpe_merge_sentence(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *keep, uint64_t *rev) {
    if (n == 0) return 0;
    return merge_long(vocab, ids, n, keep, rev);
}
