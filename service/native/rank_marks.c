/* Zeroed per-rank arrays lent to one bucket merge at a time (rank_marks.h). */
#include "rank_marks.h"

#include <stdlib.h>

static tk_rank_marks *kept[TK_RANK_MARKS_KEPT];

static tk_rank_marks *new_marks(size_t n_ranks) {
    size_t words = n_ranks / 64 + 1;
    /* One block: the header, the pending words (8-byte aligned after it), list_of. */
    tk_rank_marks *marks = calloc(1, sizeof *marks + words * sizeof(uint64_t) + n_ranks * sizeof(uint32_t));
    if (!marks) return NULL;
    marks->n_ranks = n_ranks;
    marks->pending = (uint64_t *)(marks + 1);
    marks->list_of = (uint32_t *)(marks->pending + words);
    return marks;
}

tk_rank_marks *tk_rank_marks_take(size_t n_ranks) {
    for (size_t k = 0; k < TK_RANK_MARKS_KEPT; k++) {
        if (!__atomic_load_n(&kept[k], __ATOMIC_RELAXED)) continue;
        tk_rank_marks *marks = __atomic_exchange_n(&kept[k], NULL, __ATOMIC_ACQUIRE);
        if (!marks) continue; /* another thread took it meanwhile */
        if (marks->n_ranks >= n_ranks) return marks;
        free(marks); /* a smaller vocabulary's: this one will be kept in its place */
    }
    return new_marks(n_ranks);
}

void tk_rank_marks_clear(tk_rank_marks *marks, size_t n_ranks) {
    for (size_t w = 0; w <= n_ranks / 64; w++) {
        for (uint64_t word = marks->pending[w]; word; word &= word - 1)
            marks->list_of[(w << 6) + (size_t)__builtin_ctzll(word)] = 0;
        marks->pending[w] = 0;
    }
}

void tk_rank_marks_give(tk_rank_marks *marks) {
    if (!marks) return;
    for (size_t k = 0; k < TK_RANK_MARKS_KEPT; k++) {
        tk_rank_marks *none = NULL;
        if (__atomic_compare_exchange_n(&kept[k], &none, marks, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) return;
    }
    free(marks);
}

size_t tk_rank_marks_left(void) {
    size_t left = 0;
    for (size_t k = 0; k < TK_RANK_MARKS_KEPT; k++) {
        const tk_rank_marks *marks = __atomic_load_n(&kept[k], __ATOMIC_ACQUIRE);
        if (!marks) continue;
        for (size_t r = 0; r < marks->n_ranks; r++) left += marks->list_of[r] != 0;
        for (size_t w = 0; w <= marks->n_ranks / 64; w++) left += (size_t)__builtin_popcountll(marks->pending[w]);
    }
    return left;
}
