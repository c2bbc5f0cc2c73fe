/* A tree of minima over 64-bit keys: the lowest of n keys after each change of a few, without a heap.
 *
 *     tk_min_tree tree;
 *     uint64_t *memory = malloc(tk_min_tree_size(&tree, n) * sizeof(uint64_t));
 *     tk_min_tree_place(&tree, memory);   // tree.level[0][0 .. tree.sizes[0]): the keys, set by the caller
 *     ...                                  // (the entries past n too: at or above every real key)
 *     tk_min_tree_build(&tree);
 *     tk_min_tree_set(&tree, k, key);      // key k changed
 *     uint64_t lowest = tk_min_tree_lowest(&tree);
 *
 * Level 0 holds the keys, each level above the lowest of each 8 entries of the one below (padded to a multiple
 * of 8 with UINT64_MAX), up to a level of at most 8. A change rescans its 8-entry blocks up the levels, two steps
 * of 4 and no branch on the values a level; the lowest is a scan of the top 8. A merge of a piece changes three
 * keys, so this is the heap's O(log n) without its sifts, whose branches on random text are as good as random to
 * the predictor (bpe_medium_merge.c, sp_bpe.c). Keys made unique by a position in their low bits give the
 * leftmost of the lowest. */
#ifndef TOKEND_MIN_TREE_H
#define TOKEND_MIN_TREE_H

#include <stddef.h>
#include <stdint.h>

#define TK_MIN_TREE_FANOUT 8
#define TK_MIN_TREE_LEVELS 11 /* 8^11 keys: more than any size_t piece a merge allocates for */

typedef struct {
    uint64_t *level[TK_MIN_TREE_LEVELS];
    size_t sizes[TK_MIN_TREE_LEVELS]; /* entries of each level, a multiple of 8 */
    size_t n_levels;
} tk_min_tree;

static inline uint64_t tk_min_of(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The lowest of 8 entries: two steps of 4. */
static inline uint64_t tk_min_of_block(const uint64_t *e) {
    return tk_min_of(tk_min_of(tk_min_of(e[0], e[1]), tk_min_of(e[2], e[3])),
                     tk_min_of(tk_min_of(e[4], e[5]), tk_min_of(e[6], e[7])));
}

/* Lays out a tree of n >= 1 keys; the number of 8-byte entries it needs. */
static inline size_t tk_min_tree_size(tk_min_tree *t, size_t n) {
    size_t entries = 0;
    t->n_levels = 0;
    for (;; n = (n + TK_MIN_TREE_FANOUT - 1) / TK_MIN_TREE_FANOUT) {
        t->sizes[t->n_levels] = (n + TK_MIN_TREE_FANOUT - 1) / TK_MIN_TREE_FANOUT * TK_MIN_TREE_FANOUT;
        entries += t->sizes[t->n_levels++];
        if (n <= TK_MIN_TREE_FANOUT) return entries;
    }
}

static inline void tk_min_tree_place(tk_min_tree *t, uint64_t *memory) {
    for (size_t l = 0, at = 0; l < t->n_levels; at += t->sizes[l++]) t->level[l] = memory + at;
}

/* The levels above the keys, from the keys (all t->sizes[0] of them set). */
static inline void tk_min_tree_build(tk_min_tree *t) {
    for (size_t l = 0; l + 1 < t->n_levels; l++) {
        size_t blocks = t->sizes[l] / TK_MIN_TREE_FANOUT;
        for (size_t b = 0; b < blocks; b++) t->level[l + 1][b] = tk_min_of_block(t->level[l] + b * TK_MIN_TREE_FANOUT);
        for (size_t b = blocks; b < t->sizes[l + 1]; b++) t->level[l + 1][b] = UINT64_MAX;
    }
}

/* Sets key k and the minima above it. */
static inline void tk_min_tree_set(tk_min_tree *t, size_t k, uint64_t key) {
    t->level[0][k] = key;
    for (size_t l = 0; l + 1 < t->n_levels; l++) {
        k /= TK_MIN_TREE_FANOUT;
        t->level[l + 1][k] = tk_min_of_block(t->level[l] + k * TK_MIN_TREE_FANOUT);
    }
}

static inline uint64_t tk_min_tree_lowest(const tk_min_tree *t) { return tk_min_of_block(t->level[t->n_levels - 1]); }

#endif
