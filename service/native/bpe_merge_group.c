/* Short pieces merged side by side by tiktoken's rule, or by one of the two merge lists short_merge.h takes: the
 * merges of up to TK_MERGE_GROUP pieces, one step of each in turn (module.c's loop over a text's pieces, for the
 * pieces of a batch the short table lacks).
 *
 *     const uint8_t *pieces[TK_MERGE_GROUP]; uint8_t lens[TK_MERGE_GROUP];       // m pieces of 1-15 bytes
 *     uint32_t ids[TK_MERGE_GROUP][TK_GROUP_PIECE]; uint8_t n_ids[TK_MERGE_GROUP];
 *     tk_bpe_merge_group(&table, NULL, 0, pieces, lens, m, ids, n_ids);          // piece g: n_ids[g] ids
 *     tk_bpe_merge_group(&table, &rule, n_vocabulary_ids, pieces, ...);          // a list's rule (tk_list_rule)
 *
 * Why: a merge step of one piece (short_merge.h) waits for the look-ups of the two pairs its merge made (the
 * rank table's filter word and slot, which miss the core's caches: most of merge_short's time, perf) before
 * it can choose the next merge. The pieces of a text are independent, so here a step chooses a merge and only
 * fetches its two look-ups' lines; the other pieces' steps run meanwhile, and the look-ups are read when the
 * piece's turn comes again. The rule is short_merge.h's (links, the lowest key | position, leftmost on
 * ties; a key as tk_pair_key makes it), for pieces that fit one 16-key scan.
 * The lists' rules too: tokenizer.json models (Llama 3's every-split list, Qwen's trained one) merged their
 * unseen short pieces one at a time, each step waiting for its look-ups, and counted first-pass code and
 * multilingual text at 0.90-0.97x fastokens where cl100k_base, grouped, was at 1.15-1.23x
 * (docs/decisions.md, "Unseen short pieces of the merge lists grouped"). A list's piece starts its characters as
 * atoms where they may be (char_atoms.c): their own merges skipped, a pair holding one looked up at the first turn.
 * tiktoken's rule's pieces do not (module.c passes no atoms): few of them hold such characters, and for those the
 * start cost more than the merges saved (char_atoms.c). */
#include <string.h>

#include "short_merge.h"
#include "tokend_native.h"

typedef struct {
    uint64_t prefix, hash; /* a candidate of <= 8 bytes: its prefix word; any: its slot hash */
    uint8_t pos;           /* the key it sets: key[pos] */
    uint8_t start, n;      /* its bytes buf[start, start + n); n 0: longer than any token (no look-up) */
    uint8_t left_n;        /* bytes of its left part (a trained list's check) */
} group_look;

typedef struct {
    uint8_t buf[TK_GROUP_PIECE + 9];     /* the piece zero-padded to 24 bytes: 8 readable from any position */
    uint64_t key[TK_GROUP_PIECE + 1];    /* tk_pair_key of the pair (part k, the part after it); no key: none */
    uint8_t next[TK_GROUP_PIECE], prev[TK_GROUP_PIECE];
    uint32_t id[TK_GROUP_PIECE];
    uint8_t len, scan, n_look;           /* scan: the keys a scan reads, len rounded up to 4 */
    group_look look[TK_GROUP_PIECE];     /* the look-ups made since the piece's last turn, read at its next */
} group_piece;

_Static_assert(TK_GROUP_PIECE + 1 == 16, "a piece's keys are scanned 4 at a time from one array of 16");

/* The merge rule, constant in each of the group merge's copies (merge_group is always inlined): tiktoken's
 * (left_len_by_id NULL, then_left 0), a trained list's (left_len_by_id) or an every-split list's (then_left). */
typedef struct {
    const uint16_t *left_len_by_id;
    size_t n_ids;
    int then_left;
} group_rule;

/* The pair [start, mid) + [mid, end) (>= 3 bytes) that sets key[pos]: its hash made and its filter word and slot
 * fetched. */
static inline void prepare_look(const tk_rank_table *table, group_piece *g, size_t pos, size_t start, size_t mid,
                                size_t end) {
    group_look *l = &g->look[g->n_look++];
    size_t n = end - start;
    l->pos = (uint8_t)pos;
    l->start = (uint8_t)start;
    l->left_n = (uint8_t)(mid - start);
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

static inline __attribute__((always_inline)) void resolve_looks(const tk_rank_table *table, const group_rule rule,
                                                                group_piece *g) {
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
        /* the left part's id: part l->pos has not merged since the look was made (its piece waited for it) */
        g->key[l->pos] = tk_pair_key(rank, g->id[l->pos], rule.then_left, rule.left_len_by_id, rule.n_ids, 0, l->left_n);
    }
    g->n_look = 0;
}

static inline uint64_t lower(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The piece's next merge, made, its two new pairs' look-ups started; 0 when no pair is a token (done). */
static inline __attribute__((always_inline)) int merge_step(const tk_rank_table *table, const group_rule rule,
                                                            group_piece *g) {
    const uint64_t *key = g->key, no_key = tk_no_key(rule.then_left);
    uint64_t best = UINT64_MAX;
    for (size_t k = 0; k < g->scan; k += 4) /* the keys up to len, rounded up to 4 (no key past len - 1) */
        best = lower(best, lower(lower(key[k] | k, key[k + 1] | (k + 1)), lower(key[k + 2] | (k + 2), key[k + 3] | (k + 3))));
    if (best >= no_key) return 0;
    size_t at = (size_t)(best & 0xFF), right = g->next[at], end = g->next[right]; /* at + right = [at, end) */
    g->id[at] = (uint32_t)(best >> tk_merged_shift(rule.then_left));
    g->key[right] = no_key;
    g->next[at] = (uint8_t)end;
    if (at > 0) prepare_look(table, g, g->prev[at], g->prev[at], at, end);
    if (end < g->len) {
        g->prev[end] = (uint8_t)at;
        prepare_look(table, g, at, at, end, g->next[end]);
    } else {
        g->key[at] = no_key;
    }
    return 1;
}

/* The piece's parts, characters of it as atoms where they may be (tk_atom_parts): its keys and links over the parts,
 * each key of a pair holding an atom looked up at the piece's first turn. */
static inline __attribute__((always_inline)) void start_with_atoms(const tk_rank_table *table, const group_rule rule,
                                                                  const tk_char_atoms *atoms, group_piece *g) {
    const uint64_t no_key = tk_no_key(rule.then_left);
    size_t start[TK_GROUP_PIECE + 1], m = tk_atom_parts(table, atoms, g->buf, g->len, g->id, start);
    for (size_t k = 0; k < 16; k++) g->key[k] = no_key;
    for (size_t p = 0; p < m; p++) {
        size_t k = start[p], end = start[p + 1];
        g->next[k] = (uint8_t)end;
        if (p > 0) g->prev[k] = (uint8_t)start[p - 1];
        if (p + 1 == m) break;
        if (end - k == 1 && start[p + 2] - end == 1)
            g->key[k] = tk_pair_key(table->pair_rank[(g->buf[k] << 8) | g->buf[end]], g->id[k], rule.then_left,
                                    rule.left_len_by_id, rule.n_ids, k, end);
        else
            prepare_look(table, g, k, k, end, start[p + 2]);
    }
}

static inline __attribute__((always_inline)) void merge_group(const tk_rank_table *table, const group_rule rule,
                                                              const tk_char_atoms *atoms, const uint8_t *const *pieces,
                                                              const uint8_t *lens, size_t m,
                                                              uint32_t (*ids)[TK_GROUP_PIECE], uint8_t *n_ids) {
    const uint64_t no_key = tk_no_key(rule.then_left);
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
        if (atoms && ((low | high) & 0x8080808080808080ull)) {
            start_with_atoms(table, rule, atoms, g);
            continue;
        }
        for (size_t k = 0; k < len; k++) {
            g->id[k] = table->byte_rank[g->buf[k]];
            g->key[k] = tk_pair_key(table->pair_rank[(g->buf[k] << 8) | g->buf[k + 1]], g->id[k], rule.then_left,
                                    rule.left_len_by_id, rule.n_ids, k, k + 1);
            g->next[k] = (uint8_t)(k + 1);
            g->prev[k] = (uint8_t)(k - 1); /* prev[0] is never read */
        }
        for (size_t k = len - 1; k < 16; k++) g->key[k] = no_key; /* the last byte's pair with the padding too */
    }
    for (size_t i = 0; i < m; i++) live[n_live++] = (uint8_t)i;
    while (n_live) {
        size_t kept = 0;
        for (size_t j = 0; j < n_live; j++) {
            group_piece *g = &group[live[j]];
            resolve_looks(table, rule, g);
            if (merge_step(table, rule, g)) live[kept++] = live[j];
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

void tk_bpe_merge_group(const tk_rank_table *table, const tk_list_rule *list, size_t n_ids, const tk_char_atoms *atoms,
                        const uint8_t *const *pieces, const uint8_t *lens, size_t m, uint32_t (*ids)[TK_GROUP_PIECE],
                        uint8_t *n_ids_out) {
    atoms = atoms && atoms->block_of ? atoms : NULL;
    if (!list)
        merge_group(table, (group_rule){NULL, 0, 0}, atoms, pieces, lens, m, ids, n_ids_out);
    else if (list->ties_by_split)
        merge_group(table, (group_rule){NULL, 0, 1}, atoms, pieces, lens, m, ids, n_ids_out);
    else
        merge_group(table, (group_rule){list->left_len_by_id, n_ids, 0}, atoms, pieces, lens, m, ids, n_ids_out);
}
