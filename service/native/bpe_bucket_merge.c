/* tiktoken's merge rule for one huge piece, in rank order: a bucket per rank instead of a heap.
 *
 * The rule (bpe_merge.c) merges the adjacent pair whose concatenation has the lowest rank, the leftmost on
 * ties. Every pair a merge creates contains the token just made, so it is longer than that token and can
 * never have the same rank; in every real vocabulary it also ranks higher (a token is learnt after its
 * parts). So the merges can run one rank at a time, in ascending order, and within a rank from left to
 * right: the order of a heap keyed (rank, left), without the heap.
 *   - The pairs of the first round are the piece's byte pairs: one counting sort by byte pair (stable, so
 *     each pair's positions come out ascending), 4 bytes a pair.
 *   - A pair created later is appended to an array of its rank (emptied once the rank is done); an array is
 *     the concatenation of ascending runs (one per rank that fed it), sorted when its turn comes.
 *   - The ranks that have pairs waiting are bits of a bitmap (1 bit a rank of the vocabulary), so a piece
 *     visits only its own ranks: a window of a piece (bpe_window_merge.c) costs its own size, not the
 *     vocabulary's.
 *   - Parts are a bitmap of their start offsets (1 bit a byte): a pair (left, length) is still current iff
 *     a part starts at left, one at left + length, and exactly one in between. The length is the token's,
 *     so an entry is its left offset alone.
 * When a created pair ranks *below* the rank being merged (a vocabulary whose ranks are not in merge
 * order, e.g. a hand-made one), the order above no longer holds: the caller falls back to the heap.
 *
 * A merger (tk_bucket_merger) keeps its arrays between pieces: the window merge runs one per window of a
 * huge piece. Cost for a piece of n bytes: O(n + ranks / 64) time, plus the sort of lists fed by several
 * ranks (radix, linear); memory n/8 (bitmap) + 4n (first-round pairs) + 4-8 bytes per pending pair + ~24
 * bytes per rank of the vocabulary (touched only where the piece has pairs). Measured against the heap: see
 * bpe_merge.c. */
#include <stdlib.h>
#include <string.h>

#include "tokend_native.h"

typedef struct {
    uint32_t *lefts;      /* left offsets of the pairs created with this rank, in the order they were made */
    uint32_t size, capacity;
} pair_list;

struct tk_bucket_merger {
    const tk_rank_table *table;
    size_t n_ranks;
    const uint8_t *piece; /* the piece of the last run */
    size_t len;
    uint64_t *bits;       /* bit i set: a part starts at offset i (i < len) */
    size_t bits_words;    /* room in bits */
    uint32_t *part_id;    /* offset -> id of the part starting there, once merged (single bytes: byte_rank) */
    size_t part_id_capacity;
    uint64_t *active;     /* bit r set: rank r has pairs to merge in this run */
    pair_list *lists;     /* rank -> the pairs created with that rank, not merged yet (buffers kept) */
    uint32_t *pair_len;   /* rank -> the token's length (set when its list is first given a buffer) */
    uint32_t *pair_of_rank; /* rank -> its byte pair + 1 while the run has that pair (0: none) */
    uint32_t *pair_count; /* byte pair -> how many times it occurs (zero between runs) */
    uint32_t *pair_at;    /* byte pair -> its next slot in first (then its end) */
    uint32_t *distinct;   /* the byte pairs of this run (65,536 at most) */
    uint32_t *first;      /* first-round pairs: left offsets grouped by byte pair, ascending within one */
    size_t first_capacity;
    uint32_t *spare;      /* room to sort the longest list */
    size_t spare_capacity;
};

tk_bucket_merger *tk_bucket_merger_new(const tk_rank_table *table, size_t n_ranks) {
    tk_bucket_merger *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->table = table;
    m->n_ranks = n_ranks;
    m->active = calloc((n_ranks + 63) / 64 + 1, sizeof *m->active);
    m->lists = calloc(n_ranks ? n_ranks : 1, sizeof *m->lists);
    m->pair_len = calloc(n_ranks ? n_ranks : 1, sizeof *m->pair_len);
    m->pair_of_rank = calloc(n_ranks ? n_ranks : 1, sizeof *m->pair_of_rank);
    m->pair_count = calloc(65536, sizeof *m->pair_count);
    m->pair_at = malloc(65536 * sizeof *m->pair_at);
    m->distinct = malloc(65536 * sizeof *m->distinct);
    if (!m->active || !m->lists || !m->pair_len || !m->pair_of_rank || !m->pair_count || !m->pair_at ||
        !m->distinct) {
        tk_bucket_merger_free(m);
        return NULL;
    }
    return m;
}

void tk_bucket_merger_free(tk_bucket_merger *m) {
    if (!m) return;
    free(m->bits);
    free(m->part_id);
    free(m->active);
    free(m->lists);
    free(m->pair_len);
    free(m->pair_of_rank);
    free(m->pair_count);
    free(m->pair_at);
    free(m->distinct);
    free(m->first);
    free(m->spare);
    free(m);
}

/* First part start after offset x, or len. */
static inline size_t next_start(const tk_bucket_merger *s, size_t x) {
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
static inline size_t previous_start(const tk_bucket_merger *s, size_t x) {
    size_t i = x - 1, w = i >> 6;
    uint64_t word = s->bits[w] & (~0ull >> (63 - (i & 63)));
    while (!word) word = s->bits[--w];
    return (w << 6) + 63 - (size_t)__builtin_clzll(word);
}

static inline int starts_part(const tk_bucket_merger *s, size_t x) { return (s->bits[x >> 6] >> (x & 63)) & 1; }

static inline void activate(tk_bucket_merger *s, uint32_t rank) { s->active[rank >> 6] |= 1ull << (rank & 63); }

/* The lowest rank >= r with pairs waiting, or n_ranks. */
static inline size_t next_active(const tk_bucket_merger *s, size_t r) {
    size_t w = r >> 6, n_words = (s->n_ranks + 63) >> 6;
    if (w >= n_words) return s->n_ranks;
    uint64_t word = s->active[w] & (~0ull << (r & 63));
    while (!word) {
        if (++w >= n_words) return s->n_ranks;
        word = s->active[w];
    }
    return (w << 6) + (size_t)__builtin_ctzll(word);
}

/* Appends the pair at `left` (`length` bytes, token `rank`) to its rank's list; -1 when out of memory. */
static int push_pair(tk_bucket_merger *s, uint32_t rank, size_t left, size_t length) {
    pair_list *list = &s->lists[rank];
    if (list->size == list->capacity) {
        if (!list->capacity) {
            s->pair_len[rank] = (uint32_t)length;
            activate(s, rank);
        }
        uint32_t capacity = list->capacity ? 2 * list->capacity : 8;
        uint32_t *grown = realloc(list->lefts, (size_t)capacity * sizeof *grown);
        if (!grown) return -1;
        list->lefts = grown;
        list->capacity = capacity;
    }
    list->lefts[list->size++] = (uint32_t)left;
    return 0;
}

/* Merges the current pair at `left` whose right part starts at `middle` and ends at `end`: 0, -2 when a pair
 * it creates ranks at or below `rank` (ranks not in merge order), -1 when out of memory. */
static int apply_merge(tk_bucket_merger *s, uint32_t rank, size_t left, size_t middle, size_t end) {
    s->bits[middle >> 6] &= ~(1ull << (middle & 63));
    s->part_id[left] = rank; /* the ids are then read back, not looked up again */
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
static int merge_at(tk_bucket_merger *s, uint32_t rank, size_t left, size_t length) {
    size_t end = left + length;
    if (!starts_part(s, left) || (end < s->len && !starts_part(s, end))) return 0;
    size_t middle = next_start(s, left);
    if (middle >= end || next_start(s, middle) < end) return 0; /* not two parts exactly: stale */
    return apply_merge(s, rank, left, middle, end);
}

/* merge_at for a pair of two bytes (the first round's): current iff parts start at left, left + 1 and
 * left + 2 (or the piece ends there), three bit tests instead of two scans for the next part. */
static inline int merge_byte_pair_at(tk_bucket_merger *s, uint32_t rank, size_t left) {
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

/* Merges the pairs of rank r (its byte pair's, or the list of created ones): 0, -1 or -2 as apply_merge. */
static int merge_rank(tk_bucket_merger *s, uint32_t r) {
    int status = 0;
    /* A rank has first-round pairs (2-byte tokens) or created pairs (3 bytes and more), never both. */
    if (s->pair_of_rank[r]) {
        uint32_t pair = s->pair_of_rank[r] - 1, end = s->pair_at[pair]; /* the scatter left pair_at at the end */
        s->pair_of_rank[r] = 0;
        for (size_t k = end - s->pair_count[pair]; k < end && status == 0; k++)
            status = merge_byte_pair_at(s, r, s->first[k]);
        return status;
    }
    /* Nothing is pushed to this rank while it is merged (a created pair ranks higher or stops us). Its
     * buffer is freed right after: malloc hands it to the next lists while it is still in cache. */
    pair_list taken = s->lists[r], *list = &taken;
    s->lists[r] = (pair_list){NULL, 0, 0};
    uint32_t size = list->size;
    size_t sorted = 1;
    for (uint32_t k = 1; k < size && sorted; k++) sorted = list->lefts[k - 1] <= list->lefts[k];
    if (!sorted && size >= 64 && s->spare_capacity < size) {
        free(s->spare);
        s->spare_capacity = size;
        s->spare = malloc(s->spare_capacity * sizeof *s->spare);
        if (!s->spare) {
            s->spare_capacity = 0;
            free(taken.lefts);
            return -1;
        }
    }
    if (!sorted) sort_lefts(list->lefts, s->spare, size);
    for (uint32_t k = 0; k < size && status == 0; k++) status = merge_at(s, r, list->lefts[k], s->pair_len[r]);
    free(taken.lefts);
    return status;
}

/* Clears what a run left behind after a failure (the run's ranks, lists and pair counts), so the merger can
 * be used again. */
static void reset_after_failure(tk_bucket_merger *s, size_t n_distinct) {
    for (size_t r = next_active(s, 0); r < s->n_ranks; r = next_active(s, r + 1)) {
        free(s->lists[r].lefts);
        s->lists[r] = (pair_list){NULL, 0, 0};
        s->pair_of_rank[r] = 0;
    }
    memset(s->active, 0, ((s->n_ranks + 63) / 64) * sizeof *s->active);
    for (size_t k = 0; k < n_distinct; k++) s->pair_count[s->distinct[k]] = 0;
}

int tk_bucket_merger_run(tk_bucket_merger *s, const uint8_t *piece, size_t len) {
    if (len == 0 || len >= UINT32_MAX) return -2;
    size_t n_words = (len + 63) >> 6;
    s->piece = piece;
    s->len = len;
    if (s->bits_words < n_words) {
        free(s->bits);
        s->bits = malloc(n_words * sizeof *s->bits);
        s->bits_words = s->bits ? n_words : 0;
        if (!s->bits) return -1;
    }
    if (s->part_id_capacity < len) {
        free(s->part_id);
        s->part_id = malloc(len * sizeof *s->part_id);
        s->part_id_capacity = s->part_id ? len : 0;
        if (!s->part_id) return -1;
    }
    memset(s->bits, 0xff, n_words * sizeof *s->bits);
    if (len & 63) s->bits[n_words - 1] = (1ull << (len & 63)) - 1;

    /* The first round's counting sort is keyed by the byte pair itself (65,536 keys), not by its rank: one
     * random access a byte instead of two (the pair's rank, then the rank's counter). A run of equal pairs
     * ("aaaa...") would make every step wait for the previous increment of the same counter in memory: runs
     * are counted in a register and added once. */
    size_t n_distinct = 0;
    for (size_t i = 0, run; i + 1 < len; i = run) {
        run = pair_run_end(piece, len, i);
        uint32_t pair = (piece[i] << 8) | piece[i + 1];
        if (!s->pair_count[pair]) s->distinct[n_distinct++] = pair;
        s->pair_count[pair] += (uint32_t)(run - i);
    }
    size_t n_first = 0;
    for (size_t k = 0; k < n_distinct; k++) {
        uint32_t pair = s->distinct[k], rank = s->table->pair_rank[pair];
        if (rank == TK_NO_RANK || rank >= s->n_ranks) {
            s->pair_at[pair] = UINT32_MAX; /* no token: never merged */
            continue;
        }
        s->pair_of_rank[rank] = pair + 1;
        activate(s, rank);
        s->pair_at[pair] = (uint32_t)n_first;
        n_first += s->pair_count[pair];
    }
    if (s->first_capacity < n_first) {
        free(s->first);
        s->first = malloc(n_first * sizeof *s->first);
        s->first_capacity = s->first ? n_first : 0;
        if (!s->first) {
            reset_after_failure(s, n_distinct);
            return -1;
        }
    }
    for (size_t i = 0, run; i + 1 < len; i = run) {
        run = pair_run_end(piece, len, i);
        uint32_t pair = (piece[i] << 8) | piece[i + 1];
        uint32_t at = s->pair_at[pair];
        if (at != UINT32_MAX) {
            for (size_t k = i; k < run; k++) s->first[at++] = (uint32_t)k;
            s->pair_at[pair] = at;
        }
    }

    for (size_t r = next_active(s, 0); r < s->n_ranks; r = next_active(s, r + 1)) {
        s->active[r >> 6] &= ~(1ull << (r & 63));
        int status = merge_rank(s, (uint32_t)r);
        if (status < 0) {
            reset_after_failure(s, n_distinct);
            return status;
        }
    }
    for (size_t k = 0; k < n_distinct; k++) s->pair_count[s->distinct[k]] = 0;
    return 0;
}

size_t tk_bucket_merger_next_start(const tk_bucket_merger *s, size_t x) { return next_start(s, x); }

size_t tk_bucket_merger_start_at_most(const tk_bucket_merger *s, size_t x) {
    return x + 1 >= s->len ? previous_start(s, s->len) : previous_start(s, x + 1);
}

size_t tk_bucket_merger_ids(const tk_bucket_merger *s, size_t cut, uint32_t *out) {
    size_t n = 0;
    for (size_t start = 0, end; start < cut; start = end, n++) {
        end = next_start(s, start);
        if (out) out[n] = end - start == 1 ? s->table->byte_rank[s->piece[start]] : s->part_id[start];
    }
    return n;
}

ptrdiff_t tk_bpe_merge_buckets(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t n_ranks,
                               uint32_t *out) {
    tk_bucket_merger *m = tk_bucket_merger_new(table, n_ranks);
    if (!m) return -1;
    int status = tk_bucket_merger_run(m, piece, len);
    ptrdiff_t result = status;
    if (status == 0) {
        /* the ids need only the bitmap: release the rest first (peak memory) */
        free(m->first);
        m->first = NULL;
        m->first_capacity = 0;
        result = (ptrdiff_t)tk_bucket_merger_ids(m, len, out);
    }
    tk_bucket_merger_free(m);
    return result;
}
