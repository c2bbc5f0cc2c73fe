/* sentencepiece's merge rule over a very long segment as passes over an array, one score level a pass: what a
 * segment of mostly a few pairs needs ("a" * n, a line of spaces or of "=", "ab" * n: 1 MB without a space).
 *
 * The rule (sp_bpe.c) merges the adjacent pair with the highest score, the leftmost on ties. While no pair
 * scores above level L (sp_vocab's score_levels: 0 is the highest score), the merges of level L go leftmost
 * first, and a pair a merge creates at level L lies left of every L pair not merged yet (its right symbol is
 * the one just merged), so it goes next. That is a stack: push the symbols left to right; whenever the top two
 * form a pair of level L, merge them (the result may pair with the symbol below at level L again: Llama 2's
 * runs of ▁ all score -1e9, and a line of spaces builds ▁▁, ▁▁▁, ... ▁×16 that way). The stack lives in the
 * front of the arrays it reads (the ids and the pair levels), so a pass is one sweep in place, with a lookup
 * only where a merge made a new pair: a pair no merge touched keeps its level.
 *
 * A pass starts at the level's first pair and stops once it has read the level's last one (and the merges
 * there are done): a level of a few pairs near the start (the segment's ▁a, then ▁aa, before the aa of
 * "a" * n) costs those pairs, not the segment. What the pass has not read stays where it is, behind a gap the
 * next pass reads across and closes (the symbols between the gap and that pass's first pair move once).
 *
 * Every pair a merge creates (with the symbol below it and with the next one to read) is checked to score at
 * or below L; one that scores higher would be merged first by sentencepiece, and the passes stop right there:
 * the arrays then hold exactly sentencepiece's symbols at that moment, and the heap (sp_bpe.c) finishes from
 * them. The passes are for segments where one level has a large share of the pairs (at entry: one level holds
 * 1/SP_PASS_SHARE of them or more) and stop after reading SP_PASS_BUDGET times the segment; else the level
 * lists (sp_bpe.c) take the symbols as they are, which cost per merge instead of per symbol and pass. */
#include <stdlib.h>
#include <string.h>

#include "sp_native.h"

#define NO_LEVEL UINT32_MAX
#define SP_PASS_SHARE 4
#define SP_PASS_BUDGET 8

/* The last pairs looked up, direct-mapped: a segment of a few pairs asks about the same ones over and over. */
#define MEMO_SLOTS 64

typedef struct {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty */
    uint32_t merged, level;
} memo_slot;

typedef struct {
    memo_slot memo[MEMO_SLOTS];
    const sp_vocab *vocab;
    uint32_t *ids, *levels;        /* levels[i]: the level of the pair (previous symbol, i), NO_LEVEL: none */
    size_t n;                      /* used length, gap included */
    size_t gap_start, gap_end;     /* [gap_start, gap_end) holds no symbol (equal: no gap) */
} passes;

/* The pair (left, right): its merged piece (SP_NONE: none) and level (NO_LEVEL: none). */
static inline const memo_slot *pair_of(passes *p, uint32_t left, uint32_t right) {
    uint64_t key = (uint64_t)left << 32 | right;
    memo_slot *slot = &p->memo[((left * 0x9E3779B1u + right) * 0x85EBCA6Bu) >> 26];
    if (slot->key != key) {
        uint32_t merged = sp_pair(p->vocab, left, right);
        *slot = (memo_slot){key, merged, merged == SP_NONE ? NO_LEVEL : p->vocab->score_levels[merged]};
    }
    return slot;
}

/* Moves [from, to) of both arrays down to `at`. */
static void move_down(passes *p, size_t at, size_t from, size_t to) {
    if (at == from || from == to) return;
    memmove(p->ids + at, p->ids + from, (to - from) * sizeof *p->ids);
    memmove(p->levels + at, p->levels + from, (to - from) * sizeof *p->levels);
}

static void close_gap(passes *p) {
    move_down(p, p->gap_start, p->gap_end, p->n);
    p->n -= p->gap_end - p->gap_start;
    p->gap_start = p->gap_end = 0;
}

/* The lowest level among the pairs, how many pairs have it and where the first one is (its right symbol). */
static uint32_t lowest_level(const passes *p, size_t *count, size_t *first) {
    uint32_t lowest = NO_LEVEL;
    size_t same = 0, at = 0;
    for (int part = 0; part < 2; part++) {
        size_t from = part ? p->gap_end : 0, to = part ? p->n : p->gap_start == p->gap_end ? p->n : p->gap_start;
        for (size_t i = from; i < to; i++) {
            uint32_t level = p->levels[i];
            if (level < lowest) {
                lowest = level;
                same = 0;
                at = i;
            }
            same += level == lowest;
        }
        if (p->gap_start == p->gap_end) break;
    }
    *count = same;
    *first = at;
    return lowest;
}

/* One pass of `level`, whose `count` pairs start at `first` (see the top of the file). Returns 0, or 1 when a
 * created pair scores above `level` (the arrays are then closed up: sentencepiece's symbols of that moment).
 * Adds the symbols it read or moved to *work. */
static int pass(passes *p, uint32_t level, size_t count, size_t first, size_t *work) {
    uint32_t *ids = p->ids, *levels = p->levels;
    size_t top, r = first; /* the stack is [0, top); r reads */
    if (p->gap_start != p->gap_end && first >= p->gap_end) {
        size_t between = first - p->gap_end; /* the symbols from the gap to the first pair join the stack */
        move_down(p, p->gap_start, p->gap_end, first);
        *work += between;
        top = p->gap_start + between;
        p->gap_start = p->gap_end = 0;
    } else {
        top = first;
    }
    int untouched = 1;             /* the stack's top is the symbol read last, not merged: levels[r] is its pair with r */
    uint32_t with_next = NO_LEVEL; /* else: the level of the top's pair with the next symbol, from the last merge, */
    uint32_t next_merged = SP_NONE; /* and its piece */
    size_t read_from = r;
    while (r < p->n) {
        uint32_t read_level = levels[r];
        count -= read_level == level;
        uint32_t below = top == 0 ? NO_LEVEL : untouched ? read_level : with_next;
        uint32_t top_merged = untouched ? SP_NONE : next_merged; /* the piece of the top pair when known */
        ids[top] = ids[r];
        levels[top] = below;
        top++;
        untouched = 1;
        size_t next = r + 1;
        if (next == p->gap_start && p->gap_start != p->gap_end) { /* read on across the gap: levels[gap_end] is */
            next = p->gap_end;                                    /* the level of the pair across it */
            p->gap_start = p->gap_end = 0;
        }
        while (levels[top - 1] == level) { /* levels[0] is NO_LEVEL: at least two symbols here */
            uint32_t merged = top_merged != SP_NONE ? top_merged : pair_of(p, ids[top - 2], ids[top - 1])->merged;
            top--;
            ids[top - 1] = merged;
            uint32_t left = NO_LEVEL;
            top_merged = SP_NONE;
            if (top >= 2) {
                const memo_slot *pair = pair_of(p, ids[top - 2], merged);
                left = pair->level;
                top_merged = pair->merged;
            }
            with_next = NO_LEVEL;
            if (next < p->n) {
                const memo_slot *pair = pair_of(p, merged, ids[next]);
                with_next = pair->level;
                next_merged = pair->merged;
            }
            levels[top - 1] = left;
            untouched = 0;
            if (left < level || with_next < level) { /* sentencepiece merges that pair first: the heap goes on */
                *work += next - read_from;
                if (p->gap_start != p->gap_end && next < p->gap_start) { /* the unread symbols before the old gap */
                    move_down(p, top, next, p->gap_start);
                    top += p->gap_start - next;
                    next = p->gap_end;
                }
                p->gap_start = top;
                p->gap_end = next;
                close_gap(p);
                return 1;
            }
        }
        r = next;
        if (count == 0 && (untouched || with_next != level) && p->gap_start == p->gap_end) {
            break; /* no pair of this level is left ahead */
        }
    }
    *work += r - read_from;
    if (r < p->n && !untouched) levels[r] = with_next;
    p->gap_start = top;
    p->gap_end = r;
    if (r == p->n) { /* read to the end: no gap */
        p->n = top;
        p->gap_start = p->gap_end = 0;
    }
    return 0;
}

ptrdiff_t sp_bpe_passes(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *levels, int *state) {
    passes p = {.vocab = vocab, .ids = ids, .levels = levels, .n = n};
    memset(p.memo, 0xFF, sizeof p.memo);
    /* The pairs' levels, and whether one level holds a large share of them (entry). */
    uint32_t *counts = calloc(vocab->n_levels ? vocab->n_levels : 1, sizeof *counts);
    if (!counts) return -1;
    size_t most = 0;
    levels[0] = NO_LEVEL;
    for (size_t i = 1; i < n; i++) {
        uint32_t level = i >= 3 && ids[i - 1] == ids[i - 3] && ids[i] == ids[i - 2] ? levels[i - 2] /* "abab" */
                                                                                   : pair_of(&p, ids[i - 1], ids[i])->level;
        levels[i] = level;
        if (level != NO_LEVEL && ++counts[level] > most) most = counts[level];
    }
    free(counts);
    *state = SP_PASSES_LEVELS;
    if (most * SP_PASS_SHARE < n) return (ptrdiff_t)n;
    size_t work = 0;
    for (;;) {
        size_t count, first;
        uint32_t level = lowest_level(&p, &count, &first);
        if (level == NO_LEVEL) {
            *state = SP_PASSES_DONE;
            break;
        }
        if (work > SP_PASS_BUDGET * n) break; /* SP_PASSES_LEVELS */
        if (pass(&p, level, count, first, &work)) {
            *state = SP_PASSES_HEAP;
            break;
        }
    }
    close_gap(&p);
    return (ptrdiff_t)p.n;
}
