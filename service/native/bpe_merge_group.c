/* Short pieces merged side by side by tiktoken's rule: the merges of up to TK_MERGE_GROUP pieces, one step of
 * each in turn (module.c's loop over a text's pieces, for the pieces of a batch the short table lacks).
 *
 *     const uint8_t *pieces[TK_MERGE_GROUP]; uint8_t lens[TK_MERGE_GROUP];       // m pieces of 1-15 bytes
 *     uint32_t ids[TK_MERGE_GROUP][TK_GROUP_PIECE]; uint8_t n_ids[TK_MERGE_GROUP];
 *     tk_bpe_merge_group(&table, pieces, lens, m, ids, n_ids);                     // piece g: n_ids[g] ids
 *
 * Why: a merge step of one piece (short_merge.h) waits for the look-ups of the two pairs its merge made (the
 * rank table's filter word and slot, which miss the core's caches: most of merge_short's time, perf) before
 * it can choose the next merge. The pieces of a text are independent, so here a step chooses a merge and only
 * fetches its two look-ups' lines; the other pieces' steps run meanwhile, and the look-ups are read when the
 * piece's turn comes again. The rule is short_merge.h's (links, the lowest rank << 8 | position, leftmost on
 * ties), for pieces that fit one 16-key scan. */
#include <string.h>

#include "tokend_native.h"

typedef struct {
    uint64_t prefix, hash; /* a candidate of <= 8 bytes: its prefix word; any: its slot hash */
    uint8_t pos;           /* the key it sets: key[pos] */
    uint8_t start, n;      /* its bytes buf[start, start + n); n 0: longer than any token (no look-up) */
} group_look;

typedef struct {
    uint8_t buf[TK_GROUP_PIECE + 9];     /* the piece zero-padded to 24 bytes: 8 readable from any position */
    uint64_t key[TK_GROUP_PIECE + 1];    /* rank of the pair (part k, the part after it) << 8; NO_KEY: none */
    uint8_t next[TK_GROUP_PIECE], prev[TK_GROUP_PIECE];
    uint32_t id[TK_GROUP_PIECE];
    uint8_t len, scan, n_look;           /* scan: the keys a scan reads, len rounded up to 4 */
    group_look look[2];                  /* the look-ups the last merge made, read at the piece's next turn */
} group_piece;

_Static_assert(TK_GROUP_PIECE + 1 == 16, "a piece's keys are scanned 4 at a time from one array of 16");

#define NO_KEY ((uint64_t)TK_NO_RANK << 8)

/* The pair [start, end) (>= 3 bytes) that sets key[pos]: its hash made and its filter word and slot fetched. */
static inline void prepare_look(const tk_rank_table *table, group_piece *g, size_t pos, size_t start, size_t end) {
    group_look *l = &g->look[g->n_look++];
    size_t n = end - start;
    l->pos = (uint8_t)pos;
    l->start = (uint8_t)start;
    l->n = (uint8_t)n;
    if (n <= 8) {
        uint64_t prefix;
        memcpy(&prefix, g->buf + start, 8);
        l->prefix = prefix & (~0ull >> (64 - 8 * n));
        l->hash = tk_short_token_hash(table, l->prefix, n);
    } else if (n > table->max_len) {
        l->n = 0;
        return;
    } else {
        l->hash = tk_hash(g->buf + start, n, table->seed);
    }
    /* Both lines, though the filter rejects about half the pairs: reading the filter first and fetching only
     * the slots it lets through measured 0.94-0.97x this (in-process A/B, multilingual count and encode). */
    if (table->filter) __builtin_prefetch(&table->filter[((l->hash >> 32) & table->filter_mask) >> 6], 0, 3);
    __builtin_prefetch(&table->slots[l->hash & table->mask], 0, 3);
}

static inline void resolve_looks(const tk_rank_table *table, group_piece *g) {
    for (size_t j = 0; j < g->n_look; j++) {
        const group_look *l = &g->look[j];
        uint32_t rank;
        if (l->n == 0)
            rank = TK_NO_RANK;
        else if (l->n <= 8)
            rank = tk_rank_of_short_hashed(table, l->prefix, l->n, l->hash);
        else
            rank = tk_rank_filter_passes(table, l->hash) ? tk_rank_of_long_hashed(table, g->buf + l->start, l->n, l->hash)
                                                         : TK_NO_RANK;
        g->key[l->pos] = (uint64_t)rank << 8; /* TK_NO_RANK: NO_KEY */
    }
    g->n_look = 0;
}

static inline uint64_t lower(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The piece's next merge, made, its two new pairs' look-ups started; 0 when no pair is a token (done). */
static inline int merge_step(const tk_rank_table *table, group_piece *g) {
    const uint64_t *key = g->key;
    uint64_t best = UINT64_MAX;
    for (size_t k = 0; k < g->scan; k += 4) /* the keys up to len, rounded up to 4 (no key past len - 1) */
        best = lower(best, lower(lower(key[k] | k, key[k + 1] | (k + 1)), lower(key[k + 2] | (k + 2), key[k + 3] | (k + 3))));
    if (best >= NO_KEY) return 0;
    size_t at = (size_t)(best & 0xFF), right = g->next[at], end = g->next[right]; /* at + right = [at, end) */
    g->id[at] = (uint32_t)(best >> 8);
    g->key[right] = NO_KEY;
    g->next[at] = (uint8_t)end;
    if (at > 0) prepare_look(table, g, g->prev[at], g->prev[at], end);
    if (end < g->len) {
        g->prev[end] = (uint8_t)at;
        prepare_look(table, g, at, at, g->next[end]);
    } else {
        g->key[at] = NO_KEY;
    }
    return 1;
}

void tk_bpe_merge_group(const tk_rank_table *table, const uint8_t *const *pieces, const uint8_t *lens, size_t m,
                        uint32_t (*ids)[TK_GROUP_PIECE], uint8_t *n_ids) {
    group_piece group[TK_MERGE_GROUP];
    uint8_t live[TK_MERGE_GROUP];
    size_t n_live = 0;
    for (size_t i = 0; i < m; i++) {
        group_piece *g = &group[i];
        size_t len = lens[i];
        /* the piece's 1-15 bytes as two words, zero-padded (a copy of variable length was a `rep movs`) */
        const uint8_t *piece = pieces[i];
        uint64_t low = 0, high = 0, zero = 0;
        if (len >= 8) {
            memcpy(&low, piece, 8);
            memcpy(&high, piece + len - 8, 8); /* bytes len-8..len-1: the ones past 8 are its top len-8 */
            high = len > 8 ? high >> (8 * (16 - len)) : 0;
        } else {
            low = tk_token_prefix(piece, len);
        }
        memcpy(g->buf, &low, 8);
        memcpy(g->buf + 8, &high, 8);
        memcpy(g->buf + 16, &zero, 8);
        g->len = (uint8_t)len;
        g->scan = (uint8_t)((len + 3) & ~(size_t)3);
        g->n_look = 0;
        for (size_t k = 0; k < len; k++) {
            g->id[k] = table->byte_rank[g->buf[k]];
            g->key[k] = (uint64_t)table->pair_rank[(g->buf[k] << 8) | g->buf[k + 1]] << 8;
            g->next[k] = (uint8_t)(k + 1);
            g->prev[k] = (uint8_t)(k - 1); /* prev[0] is never read */
        }
        for (size_t k = len - 1; k < 16; k++) g->key[k] = NO_KEY; /* the last byte's pair with the padding too */
    }
    for (size_t i = 0; i < m; i++) live[n_live++] = (uint8_t)i;
    while (n_live) {
        size_t kept = 0;
        for (size_t j = 0; j < n_live; j++) {
            group_piece *g = &group[live[j]];
            resolve_looks(table, g);
            if (merge_step(table, g)) live[kept++] = live[j];
        }
        n_live = kept;
    }
    for (size_t i = 0; i < m; i++) {
        const group_piece *g = &group[i];
        size_t n = 0;
        for (size_t k = 0; k < g->len; k = g->next[k]) ids[i][n++] = g->id[k];
        n_ids[i] = (uint8_t)n;
    }
}
