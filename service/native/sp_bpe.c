/* sentencepiece's merge rule (bpe_model.cc, SampleEncode without dropout) over one segment of symbols:
 * repeatedly merge the adjacent pair whose concatenation is the piece with the highest score, the leftmost
 * such pair on ties (sentencepiece's agenda orders equal scores by the smaller left index); stop when no
 * adjacent pair forms a piece. Scores are compared as sentencepiece 0.2.3 compares them: by their 32-bit
 * patterns, which is the float order with -0.0 below +0.0 (sp_vocab.c's score keys).
 *
 * Five implementations of the same rule, as in bpe_merge.c / bpe_bucket_merge.c:
 * - short segments (nearly all: a word and its leading ▁): an array scan per merge, O(n^2), no allocation;
 * - long segments: a tree of minima over the pairs' keys (score, position), rewritten at each merge
 *   (merge_medium, min_tree.h); whole sentences and what the levels decline: a heap of candidate pairs over a
 *   linked list with lazy deletion, O(n log n). An entry is current iff both symbols are still adjacent and
 *   still carry the ids they had when it was pushed (sentencepiece checks the sizes);
 * - very long segments (SP_LEVEL_SEGMENT symbols and more, e.g. 1 MB of text with no space) where one score
 *   level holds a large share of the pairs ("a" * n, spaces, "ab" * n): one pass over an array per level
 *   (sp_bpe_passes.c), which hands what is left to the next two when the levels stop paying for a pass;
 * - other very long segments: the same candidates one score level at a time, highest first, each level's in
 *   ascending position, which is the heap's order without the heap. A pair a merge creates usually scores
 *   below the level being merged (a trained vocabulary learns a piece after its parts) and waits in its
 *   level's list; one that scores the same (Llama 2 gives every run of ▁ the same score) lies left of every
 *   pair not merged yet, so a small heap of those goes first; one that scores higher breaks the order, and
 *   the heap merges the symbols the lists started from. O(n + levels) plus sorting the lists that several
 *   levels fed.
 * The heap version pushes candidates in sentencepiece's order (every bigram left to right, then after each
 * merge the pair with the left neighbour, then with the right one), so for a whole sentence it also reproduces
 * which pair was last offered for each UNUSED piece (sp_bpe_merge_sentence). The Python reference
 * (tokend/engine/sentencepiece/reference.py) is sentencepiece's heap loop itself; the tests hold this file to
 * it and to sentencepiece. */
#include <stdlib.h>
#include <string.h>

#include "binary_heap.h"
#include "min_tree.h"
#include "sp_native.h"

/* Up to this many symbols the array scan; past it the tree (merge_medium). 1 MB of words of frequent letters
 * ("etaoinshr", every two of them joinable: a word is a segment), Mistral v1, CPU s at load ~9, two runs each:
 * the scan at 17 / 21 / 31 / 46 / 64 symbols 0.067-0.072 / 0.074-0.079 / 0.089-0.095 / 0.110-0.116 /
 * 0.132-0.134, the tree 0.050-0.065 / 0.054 / 0.049-0.052 / 0.047-0.050 / 0.052-0.061; 13 symbols 0.063-0.066
 * either way. It was 64, with the heap above (0.11-0.21 s a MB for words of 64-8,000 such letters). */
#ifndef SP_SHORT_SEGMENT
#define SP_SHORT_SEGMENT 16
#endif

/* The pair at k as (merged piece, its score key); no pair: SP_NONE with key 0, never chosen. */
static inline void set_pair(const sp_vocab *vocab, const uint32_t *ids, size_t k, uint32_t *pair, uint32_t *score) {
    uint32_t merged = sp_pair(vocab, ids[k], ids[k + 1]);
    pair[k] = merged;
    score[k] = merged == SP_NONE ? 0 : vocab->score_keys[merged];
}

static ptrdiff_t merge_short(const sp_vocab *vocab, uint32_t *ids, size_t n) {
    if (n == 2) { /* a third of the segments of text with no space (random letters: half of them) */
        uint32_t merged = sp_pair(vocab, ids[0], ids[1]);
        if (merged == SP_NONE) return 2;
        ids[0] = merged;
        return 1;
    }
    uint32_t pair[SP_SHORT_SEGMENT];
    uint32_t score[SP_SHORT_SEGMENT];
    size_t m = n;
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
        for (size_t k = at + 1; k + 1 < m; k++) { /* the symbols after the absorbed one, a few: no memmove calls */
            ids[k] = ids[k + 1];
            pair[k] = pair[k + 1];
            score[k] = score[k + 1];
        }
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

TK_BINARY_HEAP(agenda, candidate, before)

/* Pushes the pair (left, right) when it forms a piece, as sentencepiece's MaybeAddNewSymbolPair; with `rev`,
 * also records it as the last pair offered for an UNUSED piece (sentencepiece's rev_merge). */
static int offer(const sp_vocab *vocab, agenda *h, const uint32_t *ids, uint32_t left, uint32_t right, uint64_t *rev) {
    uint32_t merged = sp_pair(vocab, ids[left], ids[right]);
    if (merged == SP_NONE) return 0;
    if (rev && vocab->types[merged] == SP_UNUSED) rev[vocab->unused_slot[merged]] = (uint64_t)ids[left] << 32 | ids[right];
    return agenda_push(h, (candidate){vocab->score_keys[merged], left, right, ids[left], ids[right], merged});
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
        candidate top = agenda_pop(&h);
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
    for (uint32_t i = 0; i != DEAD; i = next[i], m++) {
        ids[m] = ids[i];
        if (keep) keep[m] = i;
    }
    result = (ptrdiff_t)m;
done:
    free(next);
    free(prev);
    free(h.entries);
    return result;
}

/* The heap's order (the highest score, then the leftmost pair) for a segment of SP_SHORT_SEGMENT + 1 to
 * SP_LEVEL_SEGMENT - 1 symbols, through a tree of minima (min_tree.h) over the pairs' keys: ~score << 32 |
 * position of the pair's left symbol (NONE: no pair). The keys are rewritten as merges change them, so nothing
 * goes stale. The heap's sifts were most of the cost of text of such segments (1 MB of random lowercase words of
 * 300 letters, Mistral v1: 0.115 s, the worst shape of SentencePiece BPE: docs/decisions.md, "Pieces of 129
 * bytes to 4 KiB"). Not for whole sentences (sp_bpe_merge_sentence): those also need the heap's order of offers
 * for UNUSED pieces. */
#define NONE UINT64_MAX

static inline uint64_t medium_key(const sp_vocab *vocab, const uint32_t *ids, uint32_t left, uint32_t right) {
    uint32_t merged = sp_pair(vocab, ids[left], ids[right]);
    return merged == SP_NONE ? NONE : (uint64_t)(~vocab->score_keys[merged]) << 32 | left;
}

static ptrdiff_t merge_medium(const sp_vocab *vocab, uint32_t *ids, size_t n) {
    tk_min_tree t;
    size_t entries = tk_min_tree_size(&t, n);
    uint64_t *memory = malloc(entries * sizeof(uint64_t) + 2 * n * sizeof(uint32_t));
    if (!memory) return -1;
    tk_min_tree_place(&t, memory);
    uint32_t *next = (uint32_t *)(memory + entries), *prev = next + n; /* DEAD: none / absorbed */
    uint64_t *key = t.level[0]; /* key[i]: the pair (i, next[i]) */
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (uint32_t)(i + 1) : DEAD;
        prev[i] = i ? (uint32_t)(i - 1) : DEAD;
        key[i] = i + 1 < n ? medium_key(vocab, ids, (uint32_t)i, (uint32_t)(i + 1)) : NONE;
    }
    for (size_t i = n; i < t.sizes[0]; i++) key[i] = NONE;
    tk_min_tree_build(&t);
    for (uint64_t best; (best = tk_min_tree_lowest(&t)) != NONE;) {
        uint32_t left = (uint32_t)best, right = next[left];
        ids[left] = sp_pair(vocab, ids[left], ids[right]);
        next[left] = next[right];
        if (next[right] != DEAD) prev[next[right]] = left;
        tk_min_tree_set(&t, right, NONE); /* absorbed */
        if (prev[left] != DEAD) tk_min_tree_set(&t, prev[left], medium_key(vocab, ids, prev[left], left));
        tk_min_tree_set(&t, left, next[left] != DEAD ? medium_key(vocab, ids, left, next[left]) : NONE);
    }
    size_t m = 0;
    for (uint32_t i = 0; i != DEAD; i = next[i]) ids[m++] = ids[i];
    free(memory);
    return (ptrdiff_t)m;
}

#define SP_LEVEL_SEGMENT 8192

typedef struct {
    uint32_t left, left_id, right_id; /* symbol position; the ids both symbols had when the pair was made */
} level_pair;

typedef struct {
    level_pair *pairs; /* made by merges of earlier levels, not merged yet */
    uint32_t size, capacity;
    int unsorted;      /* some pair was appended left of the one before it */
} level_list;

static int by_left(const void *a, const void *b) {
    uint32_t x = ((const level_pair *)a)->left, y = ((const level_pair *)b)->left;
    return (x > y) - (x < y);
}

static inline int left_before(const level_pair *a, const level_pair *b) { return a->left < b->left; }

TK_BINARY_HEAP(position_heap, level_pair, left_before)

typedef struct {
    const sp_vocab *vocab;
    uint32_t *ids, *next, *prev;
    level_list *lists;
    uint32_t level;   /* being merged */
    position_heap same; /* pairs made at the level being merged, by position */
} level_state;

/* Files the pair (left, right) under its level when it forms a piece: 0, -1 out of memory, -2 when its level
 * is above the one being merged (the level order does not hold for this vocabulary). */
static int file_pair(level_state *s, uint32_t left, uint32_t right) {
    uint32_t merged = sp_pair(s->vocab, s->ids[left], s->ids[right]);
    if (merged == SP_NONE) return 0;
    uint32_t level = s->vocab->score_levels[merged];
    if (level < s->level) return -2;
    if (level == s->level) return position_heap_push(&s->same, (level_pair){left, s->ids[left], s->ids[right]});
    level_list *list = &s->lists[level];
    if (list->size == list->capacity) {
        uint32_t capacity = list->capacity ? 2 * list->capacity : 16;
        level_pair *grown = realloc(list->pairs, (size_t)capacity * sizeof *grown);
        if (!grown) return -1;
        list->pairs = grown;
        list->capacity = capacity;
    }
    if (list->size && list->pairs[list->size - 1].left > left) list->unsorted = 1;
    list->pairs[list->size++] = (level_pair){left, s->ids[left], s->ids[right]};
    return 0;
}

/* Merges the current pair (left, right): 0, or file_pair's -1 / -2 for the pairs it makes. */
static int apply_pair(level_state *s, uint32_t left, uint32_t right) {
    uint32_t *ids = s->ids, *next = s->next, *prev = s->prev;
    ids[left] = sp_pair(s->vocab, ids[left], ids[right]);
    next[left] = next[right];
    if (next[right] != DEAD) prev[next[right]] = left;
    prev[right] = next[right] = DEAD; /* absorbed */
    int status = 0;
    if (prev[left] != DEAD) status = file_pair(s, prev[left], left);
    if (status == 0 && next[left] != DEAD) status = file_pair(s, left, next[left]);
    return status;
}

/* Merges the pair if it is still current (both symbols still carry the ids they had when it was filed). */
static int merge_pair(level_state *s, level_pair pair) {
    uint32_t left = pair.left, right = s->next[left];
    if (right == DEAD || s->ids[left] != pair.left_id || s->ids[right] != pair.right_id) return 0; /* stale */
    return apply_pair(s, left, right);
}

/* merge_pair for one of the segment's own pairs (symbols left, left + 1 as they came): still current iff
 * neither symbol has merged yet. A merge changes the left symbol's next (it absorbs its neighbour), and an
 * absorbed symbol's next becomes DEAD, so: left's next is still left + 1, and left + 1's next is still
 * left + 2 (or it is the last symbol). 4 bytes a pair instead of a level_pair's 12. */
static int merge_own_pair(level_state *s, uint32_t left, uint32_t n) {
    uint32_t right = left + 1;
    if (s->next[left] != right || (right + 1 < n && s->next[right] != right + 1)) return 0; /* stale */
    return apply_pair(s, left, right);
}

/* The merge of a very long segment by score level (see the top of the file), given levels[i] = the level of
 * the pair (i - 1, i) (NO_LEVEL: none) for i >= 1: m, -1 out of memory, -2 when the vocabulary's levels are not
 * in merge order (ids are then unspecified). */
static ptrdiff_t merge_levels(const sp_vocab *vocab, uint32_t *ids, size_t n, const uint32_t *levels) {
    uint32_t n_levels = vocab->n_levels;
    level_state s = {vocab, ids, malloc(n * sizeof(uint32_t)), malloc(n * sizeof(uint32_t)),
                     calloc(n_levels ? n_levels : 1, sizeof(level_list)), 0, {0}};
    uint32_t *starts = calloc((size_t)n_levels + 1, sizeof *starts);
    uint32_t *first = malloc(n * sizeof *first); /* the segment's own pairs (left positions), by level then position */
    ptrdiff_t result = -1;
    if (!s.next || !s.prev || !s.lists || !starts || !first) goto done;
    /* A counting sort of the initial pairs by level (stable: positions ascend within a level). */
    for (size_t i = 1; i < n; i++)
        if (levels[i] != DEAD) starts[levels[i] + 1]++;
    for (uint32_t level = 0; level < n_levels; level++) starts[level + 1] += starts[level];
    uint32_t *fill = malloc((n_levels ? n_levels : 1) * sizeof *fill); /* level -> its next free slot in first */
    if (!fill) goto done;
    memcpy(fill, starts, n_levels * sizeof *fill);
    for (size_t i = 1; i < n; i++)
        if (levels[i] != DEAD) first[fill[levels[i]]++] = (uint32_t)(i - 1);
    free(fill);
    for (size_t i = 0; i < n; i++) {
        s.next[i] = i + 1 < n ? (uint32_t)(i + 1) : DEAD;
        s.prev[i] = i ? (uint32_t)(i - 1) : DEAD;
    }
    for (uint32_t level = 0; level < n_levels; level++) {
        s.level = level;
        level_list *later = &s.lists[level];
        if (later->unsorted) qsort(later->pairs, later->size, sizeof *later->pairs, by_left);
        /* Both runs ascend: merge them by position. A pair made at this level lies left of both runs' next. */
        const uint32_t *a = first + starts[level], *a_end = first + starts[level + 1];
        const level_pair *b = later->pairs, *b_end = later->pairs + later->size;
        while (s.same.size || a < a_end || b < b_end) {
            int status = s.same.size                              ? merge_pair(&s, position_heap_pop(&s.same))
                         : (b == b_end || (a < a_end && *a < b->left)) ? merge_own_pair(&s, *a++, (uint32_t)n)
                                                                       : merge_pair(&s, *b++);
            if (status < 0) {
                result = status;
                goto done;
            }
        }
        free(later->pairs);
        later->pairs = NULL;
        later->size = later->capacity = 0;
    }
    size_t m = 0;
    for (uint32_t i = 0; i != DEAD; i = s.next[i]) ids[m++] = ids[i];
    result = (ptrdiff_t)m;
done:
    if (s.lists)
        for (uint32_t level = 0; level < n_levels; level++) free(s.lists[level].pairs);
    free(s.lists);
    free(s.same.entries);
    free(s.next);
    free(s.prev);
    free(starts);
    free(first);
    return result;
}

ptrdiff_t sp_bpe_merge(const sp_vocab *vocab, uint32_t *ids, size_t n) {
    if (n == 0) return 0;
    if (n <= SP_SHORT_SEGMENT) return merge_short(vocab, ids, n);
    if (n < SP_LEVEL_SEGMENT) return merge_medium(vocab, ids, n);
    /* Passes while they pay, then the level lists, or the heap when the levels are out of merge order
     * (sp_bpe_passes.c). */
    uint32_t *levels = malloc(n * sizeof *levels);
    if (!levels) return -1;
    int state = SP_PASSES_DONE;
    ptrdiff_t m = sp_bpe_passes(vocab, ids, n, levels, &state);
    if (m >= 0 && state == SP_PASSES_LEVELS) {
        uint32_t *before = malloc((size_t)m * sizeof *before);
        if (!before) {
            free(levels);
            return -1;
        }
        memcpy(before, ids, (size_t)m * sizeof *ids);
        ptrdiff_t merged = merge_levels(vocab, ids, (size_t)m, levels);
        if (merged == -2) { /* levels out of merge order: the heap decides, from the symbols the lists started with */
            memcpy(ids, before, (size_t)m * sizeof *ids);
            state = SP_PASSES_HEAP;
        } else {
            m = merged;
        }
        free(before);
    }
    free(levels);
    if (m >= 0 && state == SP_PASSES_HEAP) m = merge_long(vocab, ids, (size_t)m, NULL, NULL);
    return m;
}

ptrdiff_t sp_bpe_merge_sentence(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *keep, uint64_t *rev) {
    if (n == 0) return 0;
    return merge_long(vocab, ids, n, keep, rev);
}
