/* tiktoken's merge rule for one huge piece, in rank order: a bucket per rank instead of a heap.
 *
 * The rule (bpe_merge.c) merges the adjacent pair whose concatenation has the lowest rank, the leftmost on
 * ties. Every pair a merge creates contains the token just made, so it is longer than that token and can
 * never have the same rank; in every real vocabulary it also ranks higher (a token is learnt after its
 * parts). So the merges can run one rank at a time, in ascending order, and within a rank from left to
 * right: the order of a heap keyed (rank, left), without the heap.
 *   - The pairs of the first round are the piece's byte pairs: one counting sort by rank (stable, so each
 *     rank's positions come out ascending), 4 bytes a pair.
 *   - A pair created later is appended to an array of its rank (freed once the rank is done); an array is
 *     the concatenation of ascending runs (one per rank that fed it), sorted when its turn comes.
 *   - Parts are a bitmap of their start offsets (1 bit a byte): a pair (left, length) is still current iff
 *     a part starts at left, one at left + length, and exactly one in between. The length is the token's,
 *     so an entry is its left offset alone.
 * When a created pair ranks *below* the rank being merged (a vocabulary whose ranks are not in merge
 * order, e.g. a hand-made one), the order above no longer holds: the caller falls back to the heap.
 *
 * Cost for a piece of n bytes: O(n + number of ranks) time, plus the sort of lists fed by several ranks
 * (radix, linear); memory n/8 (bitmap) + 4n (first-round pairs) + 4-8 bytes per pending pair + 24 bytes
 * per rank of the vocabulary. Measured against the heap: see bpe_merge.c. */
#include <stdlib.h>
#include <string.h>

#include "tokend_native.h"

typedef struct {
    uint32_t *lefts;      /* left offsets of the pairs created with this rank, in the order they were made */
    uint32_t size, capacity;
} pair_list;

typedef struct {
    const tk_rank_table *table;
    const uint8_t *piece;
    size_t len;
    uint64_t *bits;       /* bit i set: a part starts at offset i (i < len) */
    pair_list *lists;     /* rank -> the pairs created with that rank, not merged yet */
    uint32_t *pair_len;   /* rank -> the token's length (set when its list is first used) */
} merge_state;

/* First part start after offset x, or len. */
static inline size_t next_start(const merge_state *s, size_t x) {
    size_t i = x + 1;
    if (i >= s->len) return s->len;
    size_t w = i >> 6, n_words = (s->len + 63) >> 6;
    uint64_t word = s->bits[w] & (~0ull << (i & 63));
    while (!word) {
        if (++w >= n_words) return s->len;
        word = s->bits[w];
    }
    return (w << 6) + (size_t)__builtin_ctzll(word); /* bits at len and beyond are never set */
}

/* Last part start before offset x (x >= 1; a part always starts at 0). */
static inline size_t previous_start(const merge_state *s, size_t x) {
    size_t i = x - 1, w = i >> 6;
    uint64_t word = s->bits[w] & (~0ull >> (63 - (i & 63)));
    while (!word) word = s->bits[--w];
    return (w << 6) + 63 - (size_t)__builtin_clzll(word);
}

static inline int starts_part(const merge_state *s, size_t x) { return (s->bits[x >> 6] >> (x & 63)) & 1; }

/* Appends the pair at `left` (`length` bytes, token `rank`) to its rank's list; -1 when out of memory. */
static int push_pair(merge_state *s, uint32_t rank, size_t left, size_t length) {
    pair_list *list = &s->lists[rank];
    if (list->size == list->capacity) {
        uint32_t capacity = list->capacity ? 2 * list->capacity : 8;
        uint32_t *grown = realloc(list->lefts, (size_t)capacity * sizeof *grown);
        if (!grown) return -1;
        list->lefts = grown;
        list->capacity = capacity;
        s->pair_len[rank] = (uint32_t)length;
    }
    list->lefts[list->size++] = (uint32_t)left;
    return 0;
}

/* Merges the current pair at `left` whose right part starts at `middle` and ends at `end`: 0, -2 when a pair
 * it creates ranks at or below `rank` (ranks not in merge order), -1 when out of memory. */
static int apply_merge(merge_state *s, uint32_t rank, size_t left, size_t middle, size_t end) {
    s->bits[middle >> 6] &= ~(1ull << (middle & 63));
    /* The pair before first, then the one after: each rank's list then grows in ascending left order
     * while one rank is merged (the before-pair of the next merge starts at or after this left). */
    if (left > 0) {
        size_t before = previous_start(s, left);
        uint32_t created = tk_rank_of_readable(s->table, s->piece + before, end - before, s->len - before);
        if (created != TK_NO_RANK) {
            if (created <= rank) return -2;
            if (push_pair(s, created, before, end - before) < 0) return -1;
        }
    }
    if (end < s->len) {
        size_t after = next_start(s, end);
        uint32_t created = tk_rank_of_readable(s->table, s->piece + left, after - left, s->len - left);
        if (created != TK_NO_RANK) {
            if (created <= rank) return -2;
            if (push_pair(s, created, left, after - left) < 0) return -1;
        }
    }
    return 0;
}

/* 0 after merging the pair at `left` if it is still current, else as apply_merge. */
static int merge_at(merge_state *s, uint32_t rank, size_t left, size_t length) {
    size_t end = left + length;
    if (!starts_part(s, left) || (end < s->len && !starts_part(s, end))) return 0;
    size_t middle = next_start(s, left);
    if (middle >= end || next_start(s, middle) < end) return 0; /* not two parts exactly: stale */
    return apply_merge(s, rank, left, middle, end);
}

/* merge_at for a pair of two bytes (the first round's): current iff parts start at left, left + 1 and
 * left + 2 (or the piece ends there), three bit tests instead of two scans for the next part. */
static inline int merge_byte_pair_at(merge_state *s, uint32_t rank, size_t left) {
    if (!starts_part(s, left) || !starts_part(s, left + 1) || (left + 2 < s->len && !starts_part(s, left + 2)))
        return 0;
    return apply_merge(s, rank, left, left + 1, left + 2);
}

/* Sorts `lefts` ascending: LSD radix, three 11-bit digits (32-bit offsets), through `spare` of the same size. */
static void sort_lefts(uint32_t *lefts, uint32_t *spare, size_t n) {
    if (n < 64) { /* insertion sort: cheaper than three passes over 2,048 counters */
        for (size_t i = 1; i < n; i++) {
            uint32_t value = lefts[i];
            size_t j = i;
            for (; j > 0 && lefts[j - 1] > value; j--) lefts[j] = lefts[j - 1];
            lefts[j] = value;
        }
        return;
    }
    for (int shift = 0; shift < 33; shift += 11) {
        size_t count[2049] = {0};
        for (size_t i = 0; i < n; i++) count[((lefts[i] >> shift) & 0x7ff) + 1]++;
        for (size_t d = 0; d < 2048; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) spare[count[(lefts[i] >> shift) & 0x7ff]++] = lefts[i];
        memcpy(lefts, spare, n * sizeof *lefts);
    }
}

/* End of the run of byte pairs equal to the one at i (i + 1 < len): pairs i .. end-1 are all equal. */
static inline size_t pair_run_end(const uint8_t *piece, size_t len, size_t i) {
    /* Two equal pairs in a row are one byte three times: most pieces have none, and one compare says so. */
    if (piece[i] != piece[i + 1]) return i + 1;
    size_t end = i + 1;
    while (end + 1 < len && piece[end] == piece[i] && piece[end + 1] == piece[i + 1]) end++;
    return end;
}

ptrdiff_t tk_bpe_merge_buckets(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t n_ranks,
                               uint32_t *out) {
    merge_state s = {table, piece, len, NULL, NULL, NULL};
    size_t n_words = (len + 63) >> 6;
    uint32_t *first = NULL;    /* first-round pairs: left offsets grouped by rank, ascending within a rank */
    /* The first round's counting sort is keyed by the byte pair itself (65,536 keys), not by its rank: one
     * random access a byte instead of two (the pair's rank, then the rank's counter); the ranks order the
     * few distinct pairs afterwards. */
    uint32_t *pair_count = calloc(65536, sizeof *pair_count); /* byte pair -> how many times it occurs */
    uint32_t *pair_at = malloc(65536 * sizeof *pair_at);      /* byte pair -> its next slot in first (then its end);
                                                               * set for the pairs of the piece only */
    uint32_t *pair_of_rank = calloc(n_ranks, sizeof *pair_of_rank); /* rank -> its byte pair + 1 (0: none here) */
    uint32_t *spare = NULL;    /* room to sort the longest list */
    size_t spare_capacity = 0;
    ptrdiff_t result = -1;
    s.bits = malloc(n_words * sizeof *s.bits);
    s.lists = calloc(n_ranks, sizeof *s.lists);
    s.pair_len = calloc(n_ranks, sizeof *s.pair_len);
    if (!pair_count || !pair_at || !pair_of_rank || !s.bits || !s.lists || !s.pair_len) goto done;
    memset(s.bits, 0xff, n_words * sizeof *s.bits);
    if (len & 63) s.bits[n_words - 1] = (1ull << (len & 63)) - 1;

    /* A run of equal pairs ("aaaa...") would make every step wait for the previous increment of the same
     * counter in memory: runs are counted in a register and added once. */
    for (size_t i = 0, run; i + 1 < len; i = run) {
        run = pair_run_end(piece, len, i);
        pair_count[(piece[i] << 8) | piece[i + 1]] += (uint32_t)(run - i);
    }
    for (uint32_t pair = 0; pair < 65536; pair++) {
        uint32_t rank = pair_count[pair] ? table->pair_rank[pair] : TK_NO_RANK;
        if (rank != TK_NO_RANK) pair_of_rank[rank] = pair + 1;
    }
    /* Every byte pair gets its place, tokens in rank order, then the pairs that are no token (never merged,
     * never read): the scatter then has no branch on whether a pair is a token, which random text makes as
     * good as random to the predictor (the scatter was ~20 % of counting 1 MB of random letters). */
    size_t n_first = 0;
    for (size_t r = 0; r < n_ranks; r++) {
        if (!pair_of_rank[r]) continue;
        uint32_t pair = pair_of_rank[r] - 1;
        pair_at[pair] = (uint32_t)n_first;
        n_first += pair_count[pair];
    }
    for (uint32_t pair = 0; pair < 65536; pair++) {
        if (pair_count[pair] && table->pair_rank[pair] == TK_NO_RANK) {
            pair_at[pair] = (uint32_t)n_first;
            n_first += pair_count[pair];
        }
    }
    first = malloc((n_first ? n_first : 1) * sizeof *first); /* n_first == len - 1 */
    if (!first) goto done;
    for (size_t i = 0; i + 1 < len; i++) first[pair_at[(piece[i] << 8) | piece[i + 1]]++] = (uint32_t)i;

    for (size_t r = 0; r < n_ranks; r++) {
        int status = 0;
        /* A rank has first-round pairs (2-byte tokens) or created pairs (3 bytes and more), never both. */
        if (pair_of_rank[r]) {
            uint32_t pair = pair_of_rank[r] - 1, end = pair_at[pair]; /* the scatter left pair_at at the end */
            for (size_t k = end - pair_count[pair]; k < end && status == 0; k++)
                status = merge_byte_pair_at(&s, (uint32_t)r, first[k]);
        }
        pair_list list = s.lists[r];
        if (list.size && status == 0) {
            /* Nothing is pushed to this rank while it is merged (a created pair ranks higher or stops us). */
            s.lists[r] = (pair_list){NULL, 0, 0};
            size_t sorted = 1;
            for (uint32_t k = 1; k < list.size && sorted; k++) sorted = list.lefts[k - 1] <= list.lefts[k];
            if (!sorted && list.size >= 64 && spare_capacity < list.size) {
                free(spare);
                spare_capacity = list.size;
                spare = malloc(spare_capacity * sizeof *spare);
                if (!spare) status = -1;
            }
            if (!sorted && status == 0) sort_lefts(list.lefts, spare, list.size);
            for (uint32_t k = 0; k < list.size && status == 0; k++)
                status = merge_at(&s, (uint32_t)r, list.lefts[k], s.pair_len[r]);
        }
        free(list.lefts);
        if (status < 0) {
            result = status;
            goto done;
        }
    }
    free(first); /* the ids need only the bitmap: release the rest first (peak memory) */
    first = NULL;
    size_t n = 0;
    if (!out) {
        /* A count is the number of part starts: a popcount a word, where a walk part by part mispredicts
         * a branch at every part. */
        for (size_t w = 0; w < n_words; w++) n += (size_t)__builtin_popcountll(s.bits[w]);
    } else {
        /* The parts' starts word by word (the lowest set bit, then cleared), each id the bytes from the
         * previous start to this one. */
        size_t start = 0;
        for (size_t w = 0; w < n_words; w++) {
            for (uint64_t word = s.bits[w] & (w ? ~0ull : ~1ull); word; word &= word - 1) {
                size_t next = (w << 6) + (size_t)__builtin_ctzll(word);
                out[n++] = tk_rank_of(table, piece + start, next - start);
                start = next;
            }
        }
        out[n++] = tk_rank_of(table, piece + start, len - start);
    }
    result = (ptrdiff_t)n;
done:
    if (s.lists)
        for (size_t r = 0; r < n_ranks; r++) free(s.lists[r].lefts);
    free(first);
    free(pair_count);
    free(pair_at);
    free(pair_of_rank);
    free(spare);
    free(s.bits);
    free(s.lists);
    free(s.pair_len);
    return result;
}
