/* Per-rank arrays for the bucket merge (bpe_bucket_merge.c), kept zeroed between merges and lent out, so that a
 * piece pays for the ranks it touches, not for the vocabulary.
 *
 *     tk_rank_marks *marks = tk_rank_marks_take(n_ranks);   // NULL when out of memory
 *     ... marks->list_of[rank], marks->pending[rank >> 6]: all 0 here; the merge sets some ...
 *     ... and clears every one it set (or tk_rank_marks_clear) ...
 *     tk_rank_marks_give(marks);                            // all 0 again: kept for the next merge, or freed
 *
 * The bucket merge calloc'd both for every piece: 4 bytes and a bit a rank of the vocabulary (0.8 MB for
 * o200k_base), cleared whole for a piece that touches a few hundred ranks, most of the cost of pieces of 4-16 KiB
 * (docs/decisions.md, "The bucket merge's rank arrays lent zeroed"). A few sets are kept process-wide
 * (TK_RANK_MARKS_KEPT, taken and given back by atomic exchange: batch workers merge without the GIL); a merge that
 * finds none allocates its own, and one given back when every place is taken is freed. So the memory kept is at
 * most TK_RANK_MARKS_KEPT sets of the largest vocabulary merged so far. */
#ifndef TOKEND_RANK_MARKS_H
#define TOKEND_RANK_MARKS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n_ranks;    /* ranks below this have a place */
    uint32_t *list_of; /* rank -> the merge's own use (bpe_bucket_merge.c: 1 + its list's index); 0 when lent */
    uint64_t *pending; /* bit r: rank r has something pending (n_ranks / 64 + 1 words); 0 when lent */
} tk_rank_marks;

/* Sets kept between merges: a batch of up to this many threads merging huge pieces at once finds one each. */
#define TK_RANK_MARKS_KEPT 4

tk_rank_marks *tk_rank_marks_take(size_t n_ranks);
/* Clears list_of[r] for every rank r whose pending bit is set, and those bits: for a merge that stopped with
 * ranks still pending. */
void tk_rank_marks_clear(tk_rank_marks *marks, size_t n_ranks);
void tk_rank_marks_give(tk_rank_marks *marks);
/* Entries left set in the kept sets (list_of entries and pending bits that are not 0): 0 between merges. For the
 * tests (module.c's `_rank_marks_left`), while no merge runs. */
size_t tk_rank_marks_left(void);

#endif
