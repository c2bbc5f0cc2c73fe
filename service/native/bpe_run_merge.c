/* tiktoken's merge rule for a piece made of a few long runs of one byte ("a" * n, a line of spaces or of
 * "=" signs): the parts kept as runs of equal tokens, so a merge round costs the number of runs, not of
 * parts.
 *
 * The rule (bpe_merge.c) merges the adjacent pair with the lowest rank, the leftmost on ties. When the
 * pairs a merge creates rank above it (every real vocabulary: a token is learnt after its parts), the
 * merges of one rank r happen left to right, each taking the leftmost pair of rank r that is left: one
 * sweep of the parts that merges a pair of rank r whenever its left part was not taken by the merge
 * before. On runs the sweep is arithmetic: a run of m tokens T whose pair TT ranks r becomes m/2 tokens
 * TT (and one T, waiting for the next run, when m is odd; one fewer when the run's first T went to a
 * merge with the part before it). A round is then: the lowest rank among the pairs inside runs and
 * across run boundaries, and one sweep, which checks every pair a merge creates (with the token before it
 * and the one after it at that moment, as bpe_bucket_merge.c does): one ranking at or below the round's
 * would be merged first by tiktoken, so the merge declines.
 *
 * A run is where its tokens start in the piece, its token's length and how many there are: its tokens
 * are contiguous, so any pair's bytes are a slice of the piece. For a piece of n bytes in R runs of bytes:
 * O(n) to find the runs (stopping as soon as there are too many), then O(R') per round (R' the runs at
 * that time, a few times R) for as many rounds as distinct ranks merge (4 for "a" * n in cl100k_base, whose
 * runs of "a" are tokens of 2, 3, 4 and 8 bytes).
 * The caller falls back to the other merges when this one declines (-2): too many runs, rounds that have
 * looked at more runs than the piece has bytes, or a created pair ranking at or below the round's rank
 * (ranks not in merge order).
 *
 * A merge list whose order is the merged ids' (tk_list_rule, from merge_index.c: Llama 3's, Qwen's, GPT-2's)
 * runs here too: its pair of two tokens is the candidate tiktoken's rule would take, ranked by the same merged
 * id, except that a trained list has one split per token (pair_rank answers TK_NO_RANK for the others) and an
 * every-split list breaks ties between two splits of one token by left id (sweep declines where that could
 * differ). A run of 1 MB of spaces under Llama 3's list: 0.29 s on the heap (merge_index.c) -> 0.001-0.004 s. */
#include <stdlib.h>
#include <string.h>

#include "tokend_native.h"

/* Above this many runs (of bytes at the start, of tokens later) the piece is not "a few runs": decline.
 * Nor when its byte runs average under RUN_BYTES bytes: each round looks up a pair or two per run, so
 * short runs would cost more lookups than the bucket merge's one or two per byte. */
#define MAX_RUNS 4096
#define RUN_BYTES 64

typedef struct {
    uint32_t start;   /* offset of the run's first token in the piece */
    uint32_t length;  /* bytes of each of its tokens */
    uint32_t count;   /* tokens in the run (>= 1) */
} token_run;

typedef struct {
    token_run *runs;
    size_t size;
} run_list;

static inline int same_token(const uint8_t *piece, const token_run *a, uint32_t start, uint32_t length) {
    return a->length == length && memcmp(piece + a->start, piece + start, length) == 0;
}

/* Appends `count` tokens of `length` bytes starting at `start` (contiguous with the list's last token),
 * joining the last run when they are the same token; -2 past MAX_RUNS. */
static int emit(const uint8_t *piece, run_list *list, uint32_t start, uint32_t length, uint32_t count) {
    if (!count) return 0;
    if (list->size && same_token(piece, &list->runs[list->size - 1], start, length)) {
        list->runs[list->size - 1].count += count;
        return 0;
    }
    if (list->size == MAX_RUNS) return -2;
    list->runs[list->size++] = (token_run){start, length, count};
    return 0;
}

/* Rank of the token that two adjacent tokens at `start` (of `left` and `right` bytes) make; TK_NO_RANK also when
 * a list's rule (`lens`: tk_list_rule's left_len_by_id) has no merge of that split. */
static inline uint32_t pair_rank(const tk_rank_table *table, const uint16_t *lens, const uint8_t *piece, size_t len,
                                 uint32_t start, uint32_t left, uint32_t right) {
    uint32_t rank = tk_rank_of_readable(table, piece + start, (size_t)left + right, len - start);
    return lens && rank != TK_NO_RANK && lens[rank] != left ? TK_NO_RANK : rank;
}

/* Lowest rank of any adjacent pair of `list`: inside runs (a token with itself) and across boundaries. */
static uint32_t lowest_pair_rank(const tk_rank_table *table, const uint16_t *lens, const uint8_t *piece, size_t len,
                                 const run_list *list) {
    uint32_t lowest = TK_NO_RANK;
    for (size_t i = 0; i < list->size; i++) {
        const token_run *run = &list->runs[i];
        if (run->count >= 2) {
            uint32_t rank = pair_rank(table, lens, piece, len, run->start, run->length, run->length);
            if (rank < lowest) lowest = rank;
        }
        if (i + 1 < list->size) {
            uint32_t last = run->start + (run->count - 1) * run->length;
            uint32_t rank = pair_rank(table, lens, piece, len, last, run->length, list->runs[i + 1].length);
            if (rank < lowest) lowest = rank;
        }
    }
    return lowest;
}

/* 1 when the pair at `start` (`left` + `right` bytes) that a merge of `rank` created is no token or ranks
 * above `rank`, as the rank order needs: else tiktoken would merge it before the rest of this rank. */
static inline int created_above(const tk_rank_table *table, const uint16_t *lens, const uint8_t *piece, size_t len,
                                uint32_t rank, uint32_t start, uint32_t left, uint32_t right) {
    uint32_t created = pair_rank(table, lens, piece, len, start, left, right);
    return created == TK_NO_RANK || created > rank;
}

/* Start of the last token of a non-empty list. */
static inline uint32_t last_start(const run_list *list) {
    const token_run *run = &list->runs[list->size - 1];
    return run->start + (run->count - 1) * run->length;
}

/* One sweep: every leftmost pair of rank `rank`, left to right, from `from` into `to`; 0, or -2 when a pair a
 * merge creates (with the token before it, or the one after it as it is at that moment) ranks at or below
 * `rank`, or past MAX_RUNS. */
static int sweep(const tk_rank_table *table, const tk_list_rule *rule, const uint8_t *piece, size_t len, uint32_t rank,
                 const run_list *from, run_list *to) {
    const uint16_t *lens = rule ? rule->left_len_by_id : NULL;
    int waiting = 0;               /* a token not merged yet, which the next run's first may join */
    uint32_t waiting_start = 0, waiting_length = 0;
    to->size = 0;
    for (size_t i = 0; i < from->size; i++) {
        token_run run = from->runs[i];
        uint32_t start = run.start, count = run.count, length = run.length;
        uint32_t next_length = i + 1 < from->size ? from->runs[i + 1].length : 0; /* 0: the piece ends */
        if (waiting) {
            waiting = 0;
            if (pair_rank(table, lens, piece, len, waiting_start, waiting_length, length) == rank) {
                /* A list's tie between two splits of one token: the waiting token + this run's one token W T, and
                 * T + the next run's first U, the same bytes split differently; the list merges the one with
                 * the lower left id first, this sweep the leftmost. (Inside a run, and with a run of two or
                 * more, the pairs beside a merged one are other tokens: the runs are maximal.) */
                if (rule && rule->ties_by_split && count == 1 && next_length == waiting_length &&
                    length != waiting_length &&
                    memcmp(piece + waiting_start, piece + start, (size_t)waiting_length + length) == 0)
                    return -2;
                uint32_t merged_length = waiting_length + length;
                uint32_t after = count >= 2 ? length : next_length;
                if (to->size && !created_above(table, lens, piece, len, rank, last_start(to), to->runs[to->size - 1].length,
                                               merged_length))
                    return -2;
                if (after && !created_above(table, lens, piece, len, rank, waiting_start, merged_length, after)) return -2;
                if (emit(piece, to, waiting_start, merged_length, 1) < 0) return -2;
                start += length;
                count--;
            } else if (emit(piece, to, waiting_start, waiting_length, 1) < 0) {
                return -2;
            }
        }
        if (!count) continue;
        uint32_t merged = 0;
        if (count >= 2 && pair_rank(table, lens, piece, len, start, length, length) == rank) merged = count / 2;
        /* the token left over (odd count, or a run whose pair is not of this rank) waits for the next run */
        uint32_t unpaired = count - 2 * merged;
        if (merged) {
            uint32_t pair_length = 2 * length;
            if (to->size && !created_above(table, lens, piece, len, rank, last_start(to), to->runs[to->size - 1].length,
                                           pair_length))
                return -2;
            if (merged >= 2 && !created_above(table, lens, piece, len, rank, start, pair_length, pair_length)) return -2;
            if ((merged >= 2 || unpaired) && !created_above(table, lens, piece, len, rank, start, pair_length, length))
                return -2;
            if (!unpaired && next_length &&
                !created_above(table, lens, piece, len, rank, start + (merged - 1) * pair_length, pair_length, next_length))
                return -2;
            if (emit(piece, to, start, pair_length, merged) < 0) return -2;
        } else if (emit(piece, to, start, length, unpaired - 1) < 0) {
            return -2;
        }
        if (unpaired) {
            waiting = 1;
            waiting_length = length;
            waiting_start = start + (count - 1) * length;
        }
    }
    if (waiting && emit(piece, to, waiting_start, waiting_length, 1) < 0) return -2;
    return 0;
}

ptrdiff_t tk_bpe_merge_runs(const tk_rank_table *table, const tk_list_rule *rule, const uint8_t *piece, size_t len,
                            uint32_t *out) {
    const uint16_t *lens = rule ? rule->left_len_by_id : NULL;
    if (len == 0) return 0;
    if (len >= UINT32_MAX) return -2;
    /* the byte runs, stopping at the first one past MAX_RUNS (most pieces: after a few thousand bytes) */
    size_t n_runs = 1, most_runs = len / RUN_BYTES < MAX_RUNS ? len / RUN_BYTES : MAX_RUNS;
    for (size_t i = 1; i < len && n_runs <= most_runs; i++) n_runs += piece[i] != piece[i - 1];
    if (n_runs > most_runs) return -2;
    run_list lists[2] = {{malloc(MAX_RUNS * sizeof(token_run)), 0}, {malloc(MAX_RUNS * sizeof(token_run)), 0}};
    ptrdiff_t result = -1;
    if (!lists[0].runs || !lists[1].runs) goto done;
    for (size_t i = 0; i < len; i++) {
        if (i && piece[i] == piece[i - 1])
            lists[0].runs[lists[0].size - 1].count++;
        else
            lists[0].runs[lists[0].size++] = (token_run){(uint32_t)i, 1, 1};
    }
    result = -2;
    int current = 0;
    size_t runs_seen = 0; /* runs swept so far, all rounds: the work, bounded by the piece's length */
    uint32_t rank = lowest_pair_rank(table, lens, piece, len, &lists[0]);
    while (rank != TK_NO_RANK) {
        runs_seen += lists[current].size;
        if (runs_seen > len || sweep(table, rule, piece, len, rank, &lists[current], &lists[!current]) < 0) goto done;
        current = !current;
        uint32_t next = lowest_pair_rank(table, lens, piece, len, &lists[current]);
        if (next != TK_NO_RANK && next <= rank) goto done; /* sweep checks this already: never taken */
        rank = next;
    }
    size_t n = 0;
    for (size_t i = 0; i < lists[current].size; i++) {
        const token_run *run = &lists[current].runs[i];
        if (out) {
            uint32_t id = tk_rank_of(table, piece + run->start, run->length);
            for (uint32_t k = 0; k < run->count; k++) out[n + k] = id;
        }
        n += run->count;
    }
    result = (ptrdiff_t)n;
    tk_merge_counters_add_run_merge();
done:
    free(lists[0].runs);
    free(lists[1].runs);
    return result;
}
