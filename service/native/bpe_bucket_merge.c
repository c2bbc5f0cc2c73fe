/* tiktoken's merge rule for one huge piece, in rank order: a bucket per rank instead of a heap.
 *
 * The rule (bpe_merge.c) merges the adjacent pair whose concatenation has the lowest rank, the leftmost on
 * ties. Every pair a merge creates contains the token just made, so it is longer than that token and can
 * never have the same rank; in every real vocabulary it also ranks higher (a token is learnt after its
 * parts). So the merges can run one rank at a time, in ascending order, and within a rank from left to
 * right: the order of a heap keyed (rank, left), without the heap.
 *   - The pairs of the first round are the piece's byte pairs: one counting sort by pair (stable, so each
 *     rank's positions come out ascending), 4 bytes a pair; a piece of TK_ROWS_PIECE bytes or more sorts them by
 *     first byte, then second (scatter_by_rows).
 *   - A pair created later is appended to a list of its rank (room taken from one pool for the piece, not a
 *     malloc'd array each; rooms given back are reused by size); a list is the concatenation of ascending
 *     runs (one per rank that fed it), sorted when its turn comes. The ranks with a list are found through
 *     a bitmap (`pending`), and a rank names its list through 4 bytes (`list_of`): the few thousand ranks a
 *     piece uses, not the vocabulary's 100,000-200,000, are visited and take a list's 12 bytes.
 *   - A rank's merges are done a window at a time before the pairs they created are looked up: the
 *     lookups (random probes of the rank table, which outgrows the core's cache) are then independent of
 *     each other, hashed and prefetched a window ahead of their use (push_created_pairs).
 *   - Parts are a bitmap of their start offsets (1 bit a byte): a pair (left, length) is still current iff
 *     a part starts at left, one at left + length, and exactly one in between. The length is the token's,
 *     so an entry is its left offset alone.
 *   - Encoding, each merge making a part of 3 bytes or more writes its rank at by_thirds[left / 3]: the ids
 *     come from there (parts of 1-2 bytes: the direct tables) at the end, without a lookup of the final
 *     parts (part_id). The first-round pairs are then kept in `out`, which is free until the ids.
 * When a created pair ranks *below* the rank being merged (a vocabulary whose ranks are not in merge
 * order, e.g. a hand-made one), the order above no longer holds: the caller falls back to the heap (counted:
 * tk_merge_counters, for the tests; never seen on cl100k_base or o200k_base, docs/decisions.md). That
 * includes a pair that existed only between two adjacent merges of one rank (push_created_pairs).
 * `out` is scratch over all of its `len` entries while the merge runs, not only the first n.
 *
 * Cost for a piece of n bytes: O(n + number of ranks / 64) time, plus the sort of lists fed by several ranks
 * (radix, linear); memory n/8 (bitmap) + 4n (first-round pairs; encoding, 4n/3 for the ranks of merges
 * instead, the pairs in `out`) + 4-8 bytes per pending pair (a list's room doubles in the pool; a done
 * list's room and a grown list's old one go to the next list of that room) + 12 bytes per rank with a list
 * (a list each of 16 bytes for every rank, 3.2 MB for o200k_base, was 8-14 % of a fresh process's 1 MB of
 * random lowercase letters: docs/decisions.md). The 4 bytes and a bit per rank of the vocabulary (`list_of`,
 * `pending`) are lent zeroed (rank_marks.h) and zeroed again as each rank's turn comes: a piece of a few KiB,
 * which touches a few hundred ranks, no longer clears 0.8 MB (o200k_base) for them.
 * Measured against the heap: see bpe_merge.c.
 *
 * A merge list whose order is the merged ids' (tk_list_rule, merge_index.c) runs here as well, the merged id as
 * the rank: a trained list's pairs are only the merged token's one split (is_merge, at each push), and an
 * every-split list's tie between two splits of one token declines (tie_after). 1 MB of random lowercase
 * letters: Llama 3 0.35 -> 0.021 s, Qwen 3 0.33 -> 0.024 s, against the heap of merge_index.c. */
#define _DEFAULT_SOURCE /* madvise under -std=c11 (scratch_pages.h) */
#include <stdlib.h>
#include <string.h>

#include "rank_marks.h"
#include "scratch_pages.h"
#include "tokend_native.h"

typedef struct {
    uint32_t at;          /* where in the pool (merge_state) the left offsets of the pairs created with this rank
                           * start, in the order they were made */
    uint32_t size;        /* room for max(8, size rounded up to a power of two) entries (push_pair) */
    uint32_t what;        /* 0: nothing here; a 2-byte token in the piece: its byte pair + 1; a token of 3+
                           * bytes with created pairs: its length | TK_CREATED_RANK */
} pair_list;

typedef struct {
    const tk_rank_table *table;
    const uint8_t *piece;
    size_t len;
    uint64_t *bits;       /* bit i set: a part starts at offset i (i < len) */
    uint32_t *list_of;    /* rank -> 1 + its list's index in `lists`; 0: none yet */
    pair_list *lists;     /* the ranks' lists, in the order they were made (n_lists of room_lists) */
    uint32_t n_lists, room_lists;
    uint64_t *pending;    /* bit r: rank r has a list not merged yet (first-round pairs or created ones) */
    uint32_t *pool;       /* the lists' entries, each list's room taken from the end (pool_used of pool_room) */
    size_t pool_used, pool_room;
    uint32_t free_rooms[32]; /* rooms of 8 << c entries given back (a done list's, a grown list's old one): 1 + the
                              * pool index of one, whose first entry names the next the same way; 0: none */
    int prefetch;         /* the piece has many distinct byte pairs (TK_PREFETCH_PAIRS): its lookups miss */
    uint32_t *ids;        /* NULL (counting), or ids[left / 3] = the rank of the last merge at left that made a
                           * part of 3+ bytes (by_thirds) */
    const uint16_t *lens; /* a list's rule (tk_list_rule): token -> its one split's left length; NULL: every split */
    int ties_by_split;    /* a list's rule: decline a merge whose tie with another split could matter (tie_after) */
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

/* Starts loading the bitmap's word of offset x, for a merge a few merges later (a rank's pairs lie anywhere
 * in the piece, and its 1 bit a byte outgrows the core's first-level cache). */
static inline void prefetch_bits(const merge_state *s, size_t x) { __builtin_prefetch(&s->bits[x >> 6], 1, 3); }

static inline int starts_part(const merge_state *s, size_t x) { return (s->bits[x >> 6] >> (x & 63)) & 1; }

#define TK_CREATED_RANK 0x80000000u

/* A new, empty list for `rank` (`what` as pair_list's), marked pending; its index + 1, or 0 when out of memory. */
static uint32_t new_list(merge_state *s, uint32_t rank, uint32_t what) {
    if (s->n_lists == s->room_lists) {
        uint32_t room = s->room_lists ? 2 * s->room_lists : 1024;
        pair_list *grown = realloc(s->lists, (size_t)room * sizeof *grown);
        if (!grown) return 0;
        s->lists = grown;
        s->room_lists = room;
    }
    s->lists[s->n_lists] = (pair_list){0, 0, what};
    s->list_of[rank] = ++s->n_lists;
    s->pending[rank >> 6] |= 1ull << (rank & 63);
    return s->n_lists;
}

/* Gives back a room of `room` entries (8 << c) at pool index `at`, for a later list of that room. */
static inline void give_room(merge_state *s, uint32_t at, size_t room) {
    unsigned c = (unsigned)__builtin_ctzll(room) - 3;
    s->pool[at] = s->free_rooms[c];
    s->free_rooms[c] = at + 1;
}

/* The room of a list of `size` entries: 8, or size rounded up to a power of two. */
static inline size_t list_room(uint32_t size) { return size <= 8 ? 8 : (size_t)1 << (32 - __builtin_clz(size - 1)); }

/* Appends the pair at `left` (`length` bytes, token `rank`) to its rank's list; -1 when out of memory. */
static int push_pair(merge_state *s, uint32_t rank, size_t left, size_t length) {
    uint32_t at = s->list_of[rank];
    if (!at && !(at = new_list(s, rank, (uint32_t)length | TK_CREATED_RANK))) return -1;
    pair_list *list = &s->lists[at - 1];
    uint32_t size = list->size;
    if (size == 0 || (size >= 8 && (size & (size - 1)) == 0)) { /* full: the room doubles from 8 */
        size_t room = size ? 2 * (size_t)size : 8;
        unsigned c = (unsigned)__builtin_ctzll(room) - 3;
        uint32_t moved;
        if (s->free_rooms[c]) { /* a room given back: memory this piece has touched already */
            moved = s->free_rooms[c] - 1;
            s->free_rooms[c] = s->pool[moved];
        } else {
            if (s->pool_used + room > s->pool_room) {
                size_t pool_room = 2 * s->pool_room > s->pool_used + room ? 2 * s->pool_room : s->pool_used + room;
                if (pool_room > UINT32_MAX) return -1; /* entries named with 32 bits */
                uint32_t *grown = realloc(s->pool, pool_room * sizeof *grown);
                if (!grown) return -1;
                s->pool = grown;
                s->pool_room = pool_room;
            }
            moved = (uint32_t)s->pool_used;
            s->pool_used += room;
        }
        if (size) {
            memcpy(s->pool + moved, s->pool + list->at, size * sizeof *s->pool);
            give_room(s, list->at, size);
        }
        list->at = moved;
    }
    s->pool[list->at + list->size++] = (uint32_t)left;
    return 0;
}

/* A rank's merges are done a window at a time; then the pairs they created are hashed, their filter words
 * prefetched, the filter asked, the rank-table slots of those it lets through prefetched, and only then
 * looked up, one window later: on a piece of random letters nearly every lookup misses the caches (the 4 MiB
 * slot table), and one at a time, inside the merge loop, those misses were most of the merge's time; looked
 * up right after their prefetches, the first of a window's still waited for theirs (docs/decisions.md,
 * "A window's lookups one window later"). Buffers on the stack, no memory that grows with the piece; two
 * windows' up to 2 * 64 prefetched slots each stay well within the core's second-level cache. */
#define TK_MERGE_WINDOW 64
_Static_assert(2 * TK_MERGE_WINDOW <= 256, "push_created_pairs names a window's created pairs with 8 bits");
/* Bitmap words of a rank's merges prefetched this many merges ahead. */
#define TK_CREATED_LEAD 16

/* Bytes of the piece (a created pair) hashed ahead of their lookup. */
typedef struct {
    uint32_t left, length;
    uint32_t left_len;     /* bytes of its left part: a list's rule (merge_state.lens) takes only one split */
    uint64_t prefix, hash; /* prefix: of 3-8 bytes; hash: as tk_rank_of_piece's */
} created_pair;

/* Distinct byte pairs from which a piece's lookups are prefetched. A piece of few (one emoji repeated: 4)
 * makes few distinct tokens, whose slots stay in the cache: there the prefetches were pure cost (count of
 * 1 MB of one emoji 16.5 -> 20.4 ms), where random letters (676 pairs) gained 10-18 %. */
#define TK_PREFETCH_PAIRS 256

/* Hashes piece[left, left + length) and starts loading its filter word (s->prefetch; without a filter, its
 * slot: with one, only the pairs the filter lets through (~13 % of a window's at 8 bits a token, fewer at
 * 16) have theirs loaded, after it, in push_created_pairs: a slot loaded for every pair cost 3-4 % of 1 MB
 * of random letters). Not
 * tk_prepare_piece: that one stops at TK_MAX_HASHED_PIECE bytes (the piece cache's concern), where a part
 * here may be any token up to the vocabulary's longest. */
static inline void prepare_created(const merge_state *s, size_t left, size_t middle, size_t length, created_pair *c) {
    const tk_rank_table *table = s->table;
    c->left = (uint32_t)left;
    c->length = (uint32_t)length;
    c->left_len = (uint32_t)(middle - left);
    c->hash = 0;
    if (length <= 2 || length > table->max_len) return; /* direct tables; longer than any token: none */
    if (length <= 8) {
        c->prefix = tk_token_prefix_readable(s->piece + left, length, s->len - left);
        c->hash = tk_short_token_hash(table, c->prefix, length);
    } else {
        c->hash = tk_hash(s->piece + left, length, table->seed);
    }
    if (!s->prefetch) return;
    if (table->filter) __builtin_prefetch(&table->filter[((c->hash >> 32) & table->filter_mask) >> 6], 0, 3);
    else __builtin_prefetch(&table->slots[c->hash & table->mask], 0, 3);
}

/* 1 when a pair that makes token `rank` with a left part of `left_len` bytes is a merge of the rule: any split under
 * tiktoken's rule, the token's one split under a list's (merge_state.lens). */
static inline int is_merge(const merge_state *s, uint32_t rank, uint32_t left_len) {
    return !s->lens || rank == TK_NO_RANK || s->lens[rank] == left_len;
}

/* The rank of prepared bytes (tk_rank_of's answer). */
static inline uint32_t prepared_rank(const merge_state *s, const created_pair *c) {
    const tk_rank_table *table = s->table;
    size_t length = c->length;
    if (length <= 2) return tk_rank_of(table, s->piece + c->left, length);
    if (length > table->max_len) return TK_NO_RANK;
    if (length <= 8) return tk_rank_of_short_hashed(table, c->prefix, length, c->hash);
    return tk_rank_filter_passes(table, c->hash) ? tk_rank_of_long_hashed(table, s->piece + c->left, length, c->hash)
                                                 : TK_NO_RANK;
}

/* A window of one rank's merges (push_created_pairs): `merged` left offsets, ascending, their `middles` and
 * their `ends`; and the created pairs of the rank's window before that the filter let through, hashed, their
 * slots loading, not yet looked up (`deferred`: empty between ranks). */
typedef struct {
    uint32_t merged[TK_MERGE_WINDOW];
    uint32_t middles[TK_MERGE_WINDOW];
    uint32_t ends[TK_MERGE_WINDOW];
    size_t n;
    created_pair deferred[2 * TK_MERGE_WINDOW];
    size_t n_deferred;
} merge_window;

/* Looks up created pairs of `rank`'s merges that the filter let through and appends the tokens to their
 * ranks' lists, in order: 0; -2 when one ranks at or below `rank`; -1 when out of memory. */
static int push_passing(merge_state *s, uint32_t rank, const created_pair *pairs, size_t n) {
    /* All looked up first, each token's list_of entry prefetched, then pushed: push_pair's read of
     * list_of[rank] (4 bytes a rank of the vocabulary, 800 KiB for o200k_base, a few thousand lines of it
     * touched at random) was where a quarter of this function's samples waited, one push at a time. */
    const tk_rank_table *table = s->table;
    uint32_t ranks[2 * TK_MERGE_WINDOW];
    for (size_t j = 0; j < n; j++) {
        const created_pair *c = &pairs[j];
        size_t length = c->length;
        uint32_t created = length <= 2   ? tk_rank_of(table, s->piece + c->left, length)
                           : length <= 8 ? tk_rank_of_short_probed(table, c->prefix, length, c->hash)
                                         : tk_rank_of_long_hashed(table, s->piece + c->left, length, c->hash);
        if (!is_merge(s, created, c->left_len)) created = TK_NO_RANK; /* not this token's split (tk_list_rule) */
        if (created <= rank) return -2; /* TK_NO_RANK is above every rank */
        ranks[j] = created;
        __builtin_prefetch(&s->list_of[created == TK_NO_RANK ? 0 : created], 1, 3);
    }
    int status = 0;
    for (size_t j = 0; j < n && status == 0; j++)
        if (ranks[j] != TK_NO_RANK) status = push_pair(s, ranks[j], pairs[j].left, pairs[j].length);
    return status;
}

/* The pairs that merges of `rank` created (their parts' left offsets `merged`, ascending, the offsets
 * between their two halves `middles`, and their ends `ends`; those merges done),
 * appended to their ranks' lists after the next window's merges (`flush`: the rank's last window, now, with
 * the window before's): for each merged part, the pair with the part before it, then the pair
 * with the part after it — unless that part is the next one in `merged`, whose pair with the part before
 * it is the same pair. Called for a window of the rank's merges at a time (TK_MERGE_WINDOW): a merge of the
 * rank after the window may start at the end of the window's last part, which leaves that part's pair with
 * the part after it stale, as a pair can always become (merge_at skips it); the merge that did it pushes the
 * current pair. Pushes come in ascending left order, so each list still grows as ascending runs. Held back a
 * window, the pushes change nothing the rank's next merges read: they go to higher ranks' lists (or the merge
 * stops at -2), and the rank's last call flushes them, so every one is in its list before the next rank
 * starts. 0; -2 when a created pair ranks at or below `rank` (ranks not in merge order); -1 when out of
 * memory.
 *
 * When the next merge starts where a merged part ends, the pair the part had with the next merge's left
 * half, between the two merges, is gone by now and never pushed; but the rule would have merged it first
 * had it ranked below `rank` (a vocabulary whose ranks are not in merge order: a token ranked below its
 * parts), so it is looked up too, and -2 returned if it does. */
static int push_created_pairs(merge_state *s, merge_window *w, uint32_t rank, size_t n_merged, int flush) {
    const uint32_t *merged = w->merged, *middles = w->middles, *ends = w->ends;
    created_pair pairs[2 * TK_MERGE_WINDOW], gone[TK_MERGE_WINDOW];
    size_t n_pairs = 0, n_gone = 0;
    /* The part each merge made is token `rank` until a later merge at the same left grows it. Parts of two
     * bytes (the first round's, most merges of most pieces) are not written: the 2-byte table gives their
     * ids at the end, without a write to a random place of by_thirds now. */
    if (s->ids && n_merged && ends[0] - merged[0] > 2) /* one rank: all its parts have one length */
        for (size_t i = 0; i < n_merged; i++) s->ids[merged[i] / 3] = rank;
    for (size_t i = 0; i < n_merged && s->prefetch; i++) { /* the bytes the pairs hash: anywhere in the piece */
        const uint8_t *part = s->piece + merged[i];
        __builtin_prefetch(part - (merged[i] >= 8 ? 8 : 0), 0, 3);
        __builtin_prefetch(part + 8, 0, 3);
    }
    for (size_t i = 0; i < n_merged; i++) {
        size_t left = merged[i], end = ends[i];
        if (left > 0) {
            size_t before = previous_start(s, left);
            prepare_created(s, before, left, end - before, &pairs[n_pairs++]);
        }
        if (i + 1 < n_merged && merged[i + 1] == end) /* the next merge's pair with this part: pushed there */
            prepare_created(s, left, end, middles[i + 1] - left, &gone[n_gone++]);
        else if (end < s->len)
            prepare_created(s, left, end, next_start(s, end) - left, &pairs[n_pairs++]);
    }
    for (size_t k = 0; k < n_gone; k++) {
        uint32_t gone_rank = prepared_rank(s, &gone[k]);
        if (gone_rank <= rank && is_merge(s, gone_rank, gone[k].left_len)) return -2; /* TK_NO_RANK is above every rank */
    }
    /* The pairs the filter lets through, found without a branch on each one's answer: ~87 % of a piece of
     * random letters' created pairs are no token and most stop at the filter, an outcome as good as random to
     * the branch predictor; only the rest probe the slots. */
    const tk_rank_table *table = s->table;
    uint8_t passing[2 * TK_MERGE_WINDOW];
    size_t n_passing = 0;
    for (size_t k = 0; k < n_pairs; k++) {
        const created_pair *c = &pairs[k];
        uint64_t bit = (c->hash >> 32) & table->filter_mask;
        size_t through = table->filter ? (size_t)((table->filter[bit >> 6] >> (bit & 63)) & 1) : 1;
        passing[n_passing] = (uint8_t)k;
        n_passing += (c->length <= 2) | ((c->length <= table->max_len) & through);
    }
    if (s->prefetch && table->filter) /* their slots, now that the filter has stopped the rest (prepare_created) */
        for (size_t j = 0; j < n_passing; j++)
            __builtin_prefetch(&table->slots[pairs[passing[j]].hash & table->mask], 0, 3);
    /* The window before's pairs now, their slots loaded during this window's merges; this window's held for
     * the next call (or, the rank's last, pushed now). */
    int status = push_passing(s, rank, w->deferred, w->n_deferred);
    w->n_deferred = 0;
    if (status) return status;
    for (size_t j = 0; j < n_passing; j++) w->deferred[j] = pairs[passing[j]];
    w->n_deferred = n_passing;
    if (flush) {
        status = push_passing(s, rank, w->deferred, w->n_deferred);
        w->n_deferred = 0;
    }
    return status;
}

/* Records a merge of `rank` at [left, end) if it was done (`middle`: where its halves met; 0: not done); a
 * full window's created pairs are pushed (0, -2 or -1 as push_created_pairs). */
static inline int note_merge(merge_state *s, merge_window *w, uint32_t rank, size_t left, size_t end, size_t middle) {
    w->merged[w->n] = (uint32_t)left; /* written whether or not it counts: no branch on whether it was done */
    w->middles[w->n] = (uint32_t)middle;
    w->ends[w->n] = (uint32_t)end;
    w->n += (size_t)(middle != 0);
    if (w->n < TK_MERGE_WINDOW) return 0;
    w->n = 0;
    return push_created_pairs(s, w, rank, TK_MERGE_WINDOW, 0);
}

/* Merges the pair at `left` (`length` bytes) if it is still current — parts start at left and at
 * left + length, and exactly one in between — and returns where its halves met (> 0), or 0 when it did
 * not. A later merge of the same rank starts at or after the end of this one, so the part made here keeps
 * its end until the rank is done. */
static size_t merge_at(merge_state *s, size_t left, size_t length) {
    size_t end = left + length;
    if (!starts_part(s, left) || (end < s->len && !starts_part(s, end))) return 0;
    size_t middle = next_start(s, left);
    if (middle >= end || next_start(s, middle) < end) return 0; /* not two parts exactly: stale */
    s->bits[middle >> 6] &= ~(1ull << (middle & 63));
    return middle;
}

/* merge_at for a pair of two bytes (the first round's): current iff parts start at left, left + 1 and
 * left + 2 (or the piece ends there), three bit tests instead of two scans for the next part. */
static inline size_t merge_byte_pair_at(merge_state *s, size_t left) {
    /* Without a branch on the outcome, which random text makes as good as random to the predictor (a miss at
     * most of the ~1,000,000 first-round pairs of 1 MB of random letters); bit len, read when the pair ends
     * the piece, is in the zero word past the bitmap's end. */
    size_t middle = left + 1;
    uint64_t current = (uint64_t)(starts_part(s, left) & starts_part(s, middle) &
                                  ((left + 2 >= s->len) | starts_part(s, left + 2)));
    s->bits[middle >> 6] &= ~(current << (middle & 63));
    return middle & (size_t)-current;
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

/* The rank of a byte pair as the first round takes it: its 2-byte token's, when that token is a merge of the rule. */
static inline uint32_t byte_pair_rank(const merge_state *s, uint32_t pair) {
    uint32_t rank = s->table->pair_rank[pair];
    return is_merge(s, rank, 1) ? rank : TK_NO_RANK;
}

/* A list's rule with ties by split (merge_state.ties_by_split): 1 when the merge just done at [left, end), its
 * halves meeting at `middle`, had a pair of the same token on its right — its right part followed by the next
 * part, the same bytes split elsewhere. The list would have taken the one of the two whose left part has the
 * lower id, this merge the leftmost: the caller declines. (On its left such a pair was current when this rank
 * reached it, and declined there.) Equal splits tie by position under both rules. */
static int tie_after(const merge_state *s, size_t left, size_t middle, size_t end) {
    if (end >= s->len) return 0;
    size_t next = next_start(s, end), length = end - left;
    return next - middle == length && end - middle != middle - left &&
           memcmp(s->piece + middle, s->piece + left, length) == 0;
}

/* End of the run of byte pairs equal to the one at i (i + 1 < len): pairs i .. end-1 are all equal. */
static inline size_t pair_run_end(const uint8_t *piece, size_t len, size_t i) {
    /* Two equal pairs in a row are one byte three times: most pieces have none, and one compare says so. */
    if (piece[i] != piece[i + 1]) return i + 1;
    size_t end = i + 1;
    while (end + 1 < len && piece[end] == piece[i] && piece[end + 1] == piece[i + 1]) end++;
    return end;
}

/* The id of the final part [part, end): a byte's or a byte pair's from their direct tables, a longer one's
 * where its last merge left it (push_created_pairs, at by_thirds[part / 3]).
 * A third of an entry a byte is enough: two parts of 3+ bytes start 3 or more bytes apart, so no two share
 * an entry while they both exist, and a final part's entry is written last by the merge that made it (a part
 * made later whose start shares the entry would lie inside it, or end before it and be at most 2 bytes:
 * not written). */
static inline uint32_t part_id(const tk_rank_table *table, const uint8_t *piece, size_t part, size_t end,
                               const uint32_t *by_thirds) {
    size_t length = end - part;
    /* All three read, one chosen by selects: the lengths of consecutive parts are as good as random to
     * the branch predictor. The second byte read is the part's own or, for a last part of one byte, its
     * first again (never past the piece); by_thirds[part / 3] is within it even where no merge wrote it. */
    uint32_t one = table->byte_rank[piece[part]];
    uint32_t two = table->pair_rank[(piece[part] << 8) | piece[part + (length > 1)]];
    uint32_t longer = by_thirds[part / 3];
    /* Masks, not ?: — GCC 12 made the first of two such selects a branch (on length == 2, about every other
     * part), which mispredicted at ~40 % of the ~520,000 parts of 1 MB of random lowercase letters. */
    uint32_t is_one = -(uint32_t)(length == 1), is_two = -(uint32_t)(length == 2);
    return (one & is_one) | (two & is_two) | (longer & ~(is_one | is_two));
}

/* Pending ranks looked ahead for (prefetch_ranks_ahead), and the bitmap words scanned to find them: a bound, so
 * that the sparse high ranks do not make each turn scan thousands of empty words. */
#define TK_RANKS_AHEAD 3
#define TK_AHEAD_WORDS 4

/* Starts loading what the next pending ranks' turns read first, each a step further along its chain: the
 * list_of entry of the third rank ahead, the pair_list of the second (its list_of entry loaded a turn ago),
 * and the first entries of the next one's list (its pair_list loaded a turn ago), or its byte pair's place in
 * `first`. A rank's turn began with those three loads one after the other, each a miss (list_of is 4 bytes
 * a rank of the vocabulary, lists and the pool in the order they were made, not by rank): ~12 % of this
 * file's samples on 1 MB of random lowercase letters (o200k_base: 9,459 turns, 8,812 of them for created
 * pairs, 18 pairs each on average). With push_passing's prefetch, 1.05-1.10x on those cells (docs/decisions.md,
 * "The bucket merge's misses at a rank's turn"). Ranks made pending later (a created pair's) are missed, and a
 * guess gone stale costs a wasted prefetch only. */
static inline void prefetch_ranks_ahead(const merge_state *s, size_t w, size_t n_words, const uint32_t *pair_count,
                                        const uint32_t *pair_at, const uint32_t *first) {
    size_t ahead[TK_RANKS_AHEAD], found = 0;
    uint64_t word = s->pending[w];
    for (size_t last = w + TK_AHEAD_WORDS < n_words ? w + TK_AHEAD_WORDS : n_words;;) {
        for (; word && found < TK_RANKS_AHEAD; word &= word - 1) ahead[found++] = (w << 6) + (size_t)__builtin_ctzll(word);
        if (found == TK_RANKS_AHEAD || ++w >= last) break;
        word = s->pending[w];
    }
    if (found > 2) __builtin_prefetch(&s->list_of[ahead[2]], 0, 3);
    if (found > 1 && s->list_of[ahead[1]]) __builtin_prefetch(&s->lists[s->list_of[ahead[1]] - 1], 0, 3);
    if (found > 0 && s->list_of[ahead[0]]) {
        pair_list list = s->lists[s->list_of[ahead[0]] - 1];
        if (list.size) {
            __builtin_prefetch(s->pool + list.at, 0, 3);
            __builtin_prefetch(s->pool + list.at + 16, 0, 3);
        } else if (!(list.what & TK_CREATED_RANK)) {
            uint32_t pair = list.what - 1;
            __builtin_prefetch(first + (pair_at[pair] - pair_count[pair]), 0, 3);
        }
    }
}

/* The first round's scatter in two passes when a piece of TK_ROWS_PIECE bytes or more has many distinct byte pairs
 * (TK_PREFETCH_PAIRS): each offset straight to its pair's place wrote to as many places at once as there are pairs
 * (676 for random lowercase letters) in an array past the second-level cache, each store a miss of the first-level
 * cache and its TLB: ~17 % of a count of 1 MB of them (perf; shorter pieces' arrays stay in that cache). By
 * first byte, then within each row by second byte, each pass writes to at most 256 places (26 for lowercase). An
 * entry of the first pass is its offset and second byte (offset << 8 | byte: pieces up to TK_PACKED_PIECE bytes),
 * so the second pass reads its row alone, not the piece at random; a row is sorted into `row` (longest_row
 * entries, at most n_first / TK_ROW_SHARE: a piece whose rows are lopsided has few pairs, and one pass is cheap for
 * it) and copied back. Stable, as the one pass: offsets ascend within each pair. */
#define TK_PACKED_PIECE ((size_t)1 << 24)
#define TK_ROW_SHARE 8
static void scatter_by_rows(const uint8_t *piece, size_t len, uint32_t *row_at, uint32_t *pair_at, uint32_t *first,
                            uint32_t *row) {
    uint32_t row_start[256];
    memcpy(row_start, row_at, sizeof row_start);
    for (size_t i = 0; i + 1 < len; i++) first[row_at[piece[i]]++] = (uint32_t)(i << 8) | piece[i + 1];
    for (size_t b = 0; b < 256; b++) {
        uint32_t start = row_start[b], end = row_at[b];
        if (start == end) continue;
        uint32_t *place = pair_at + (b << 8);
        for (uint32_t k = start; k < end; k++) row[place[first[k] & 0xff]++ - start] = first[k] >> 8;
        memcpy(first + start, row, (end - start) * sizeof *first);
    }
}

/* The byte pairs of a piece of TK_TWO_COUNTERS_PIECE bytes or more counted into two zeroed tables, the pairs at even
 * offsets into `counts` and those at odd offsets into `odd`, then summed into `counts`, each word of `present` set
 * from the sums. merge_buckets' one-table loop (a run of equal pairs found by compare, a pair's first sight by its
 * bit in `present`, then the counter) took ~1.6 ns a byte of 1 MB of random lowercase letters, ~6 % of an encode:
 * two branches and two read-modify-writes a byte. Here a byte is one increment, and two tables keep a run ("aaaa",
 * "abab") from chaining every step through one counter in memory: ~0.7 ns a byte, the two tables' clearing and
 * the 65,536 sums included, which a piece under ~128 KiB does not repay (docs/decisions.md, "Two counters"). */
static void count_pairs_in_two(const uint8_t *piece, size_t len, uint32_t *counts, uint32_t *odd, uint64_t *present) {
    size_t i = 0;
    for (; i + 2 < len; i += 2) {
        counts[(piece[i] << 8) | piece[i + 1]]++;
        odd[(piece[i + 1] << 8) | piece[i + 2]]++;
    }
    if (i + 1 < len) counts[(piece[i] << 8) | piece[i + 1]]++; /* an odd number of pairs: the last one */
    for (size_t w = 0; w < 65536 / 64; w++) {
        uint64_t word = 0;
        for (size_t b = 0; b < 64; b++) {
            uint32_t count = counts[(w << 6) + b] + odd[(w << 6) + b];
            counts[(w << 6) + b] = count;
            word |= (uint64_t)(count != 0) << b;
        }
        present[w] = word;
    }
}

/* tokend_native.h; process-wide, so a batch's workers add to the same counters. */
static tk_merge_counters merge_counters;

void tk_merge_counters_read(tk_merge_counters *counters) {
    counters->bucket_merges = __atomic_load_n(&merge_counters.bucket_merges, __ATOMIC_RELAXED);
    counters->bucket_fallbacks = __atomic_load_n(&merge_counters.bucket_fallbacks, __ATOMIC_RELAXED);
    counters->run_merges = __atomic_load_n(&merge_counters.run_merges, __ATOMIC_RELAXED);
    counters->medium_merges = __atomic_load_n(&merge_counters.medium_merges, __ATOMIC_RELAXED);
}

void tk_merge_counters_add_run_merge(void) { __atomic_fetch_add(&merge_counters.run_merges, 1, __ATOMIC_RELAXED); }

void tk_merge_counters_add_medium_merge(void) {
    __atomic_fetch_add(&merge_counters.medium_merges, 1, __ATOMIC_RELAXED);
}

static ptrdiff_t merge_buckets(const tk_rank_table *table, const tk_list_rule *rule, const uint8_t *piece, size_t len,
                               size_t n_ranks, uint32_t *out);

ptrdiff_t tk_bpe_merge_buckets(const tk_rank_table *table, const tk_list_rule *rule, const uint8_t *piece, size_t len,
                               size_t n_ranks, uint32_t *out) {
    __atomic_fetch_add(&merge_counters.bucket_merges, 1, __ATOMIC_RELAXED);
    ptrdiff_t n = merge_buckets(table, rule, piece, len, n_ranks, out);
    if (n == -2) __atomic_fetch_add(&merge_counters.bucket_fallbacks, 1, __ATOMIC_RELAXED);
    return n;
}

static ptrdiff_t merge_buckets(const tk_rank_table *table, const tk_list_rule *rule, const uint8_t *piece, size_t len,
                               size_t n_ranks, uint32_t *out) {
    merge_state s = {table, piece, len, NULL, NULL, NULL, 0, 0, NULL, NULL, 0, 0, {0}, 0, NULL,
                     rule ? rule->left_len_by_id : NULL, rule && rule->ties_by_split};
    size_t n_words = (len + 63) >> 6;
    uint32_t *first = NULL;    /* first-round pairs: left offsets grouped by rank, ascending within a rank */
    /* The first round's counting sort is keyed by the byte pair itself (65,536 keys), not by its rank: one
     * random access a byte instead of two (the pair's rank, then the rank's counter); the ranks order the
     * few distinct pairs afterwards. */
    int two_counters = len >= TK_TWO_COUNTERS_PIECE; /* count_pairs_in_two, which takes both tables zeroed */
    uint32_t *pair_count = two_counters ? calloc(65536, sizeof *pair_count)
                                        : malloc(65536 * sizeof *pair_count); /* byte pair -> how many times it occurs;
                                                                                * set for the pairs of the piece only
                                                                                * (and 0 for the rest, two_counters) */
    /* The byte pairs of the piece: the loops over pairs visit these, not all 65,536 (twice 65,536 steps and a
     * 256 KiB table cleared were most of a call's ~70 us of set-up, which pieces of 1-16 KiB now pay). */
    uint64_t present[65536 / 64] = {0};
    uint32_t *pair_at = two_counters ? calloc(65536, sizeof *pair_at)
                                     : malloc(65536 * sizeof *pair_at); /* byte pair -> its next slot in first (then its
                                                                         * end); set for the pairs of the piece only */
    uint32_t *spare = NULL;    /* room to sort the longest list */
    merge_window window; /* the rank's merges not yet followed by their created pairs */
    window.n_deferred = 0; /* and no created pairs held back */
    size_t spare_capacity = 0;
    ptrdiff_t result = -1;
    s.bits = malloc((n_words + 1) * sizeof *s.bits); /* a zero word past the end: merge_byte_pair_at reads bit len */
    /* Zeroed, lent (rank_marks.h); each rank's turn clears its entry and bit, so a merge that ends leaves them all
     * 0 again, and one that stops early clears the pending ones. */
    tk_rank_marks *marks = tk_rank_marks_take(n_ranks);
    if (marks) {
        s.list_of = marks->list_of;
        s.pending = marks->pending;
    }
    if (!pair_count || !pair_at || !s.bits || !marks) goto done;
    memset(s.bits, 0xff, n_words * sizeof *s.bits);
    if (len & 63) s.bits[n_words - 1] = (1ull << (len & 63)) - 1;
    s.bits[n_words] = 0;

    if (two_counters) {
        count_pairs_in_two(piece, len, pair_count, pair_at, present);
    } else {
        /* A run of equal pairs ("aaaa...") would make every step wait for the previous increment of the same
         * counter in memory: runs are counted in a register and added once. */
        for (size_t i = 0, run; i + 1 < len; i = run) {
            run = pair_run_end(piece, len, i);
            uint32_t pair = (piece[i] << 8) | piece[i + 1];
            uint64_t bit = 1ull << (pair & 63);
            if (!(present[pair >> 6] & bit)) { /* first seen: after a few hundred bytes of most pieces, never */
                present[pair >> 6] |= bit;
                pair_count[pair] = 0;
            }
            pair_count[pair] += (uint32_t)(run - i);
        }
    }
    for (size_t w = 0; w < 65536 / 64; w++)
        for (uint64_t word = present[w]; word; word &= word - 1) {
            uint32_t pair = (uint32_t)(w << 6) + (uint32_t)__builtin_ctzll(word);
            uint32_t rank = byte_pair_rank(&s, pair);
            if (rank != TK_NO_RANK && !new_list(&s, rank, pair + 1)) goto done;
            s.prefetch++;
        }
    s.prefetch = s.prefetch >= TK_PREFETCH_PAIRS;
    /* Every byte pair gets its place in the order of the pairs' values (so a first byte's pairs are one row), tokens
     * or not: the scatter then has no branch on whether a pair is a token, which random text makes as good as
     * random to the predictor (the scatter was ~20 % of counting 1 MB of random letters); a rank's turn finds its
     * pairs through pair_at whatever the order. */
    size_t n_first = 0, longest_row = 0;
    uint32_t row_at[256]; /* first byte -> where its row starts in `first` */
    for (size_t b = 0; b < 256; b++) {
        row_at[b] = (uint32_t)n_first;
        for (size_t w = b * 4; w < b * 4 + 4; w++)
            for (uint64_t word = present[w]; word; word &= word - 1) {
                uint32_t pair = (uint32_t)(w << 6) + (uint32_t)__builtin_ctzll(word);
                pair_at[pair] = (uint32_t)n_first;
                n_first += pair_count[pair];
            }
        if (n_first - row_at[b] > longest_row) longest_row = n_first - row_at[b];
    }
    /* Encoding, the first-round pairs go in `out` (len entries of scratch; the ids are written at the end),
     * and the ranks of merges a third of that: 4/3 bytes a byte of fresh memory where `first` and `out`
     * were 8, whose first touches (page faults, pages cleared) were ~10 % of a first call on 1 MB. */
    if (out) {
        first = out;
        s.ids = malloc((len / 3 + 1) * sizeof *s.ids);
        if (!s.ids) goto done;
    } else {
        first = malloc((n_first ? n_first : 1) * sizeof *first); /* n_first == len - 1 */
        if (!first) goto done;
    }
    tk_populate_scratch(first, n_first * sizeof *first); /* the scatter writes it whole, a page of it at random */
    if (s.prefetch && len >= TK_ROWS_PIECE && len <= TK_PACKED_PIECE && longest_row <= n_first / TK_ROW_SHARE) {
        uint32_t *row = malloc(longest_row * sizeof *row);
        if (!row) goto done;
        scatter_by_rows(piece, len, row_at, pair_at, first, row);
        free(row); /* not kept for sort_lefts: held through the merge, it raised the peak (n / 26 x 4 bytes) */
    } else {
        for (size_t i = 0; i + 1 < len; i++) first[pair_at[(piece[i] << 8) | piece[i + 1]]++] = (uint32_t)i;
    }

    /* The pending ranks in ascending order: a rank's merges only make lists of higher ranks (or stop), so a
     * word is read again after each of its ranks. Ranks without pairs here (most of the vocabulary) are not
     * visited, and their lists take no memory: 4 bytes a rank, where a list each was 16. */
    for (size_t w = 0; w <= n_ranks / 64;) {
        uint64_t word = s.pending[w];
        if (!word) {
            w++;
            continue;
        }
        s.pending[w] = word & (word - 1);
        size_t r = (w << 6) + (size_t)__builtin_ctzll(word);
        prefetch_ranks_ahead(&s, w, n_ranks / 64 + 1, pair_count, pair_at, first);
        uint32_t at = s.list_of[r] - 1;
        s.list_of[r] = 0; /* read no more: nothing is pushed to this rank or below from here on */
        int status = 0;
        window.n = 0;
        /* The rank's merges a window at a time, then the pairs that window created (each ranks higher). A
         * rank has first-round pairs (2-byte tokens) or created pairs (3 bytes and more), never both. */
        pair_list list = s.lists[at];
        if (!(list.what & TK_CREATED_RANK)) {
            uint32_t pair = list.what - 1, end = pair_at[pair]; /* the scatter left pair_at at the end */
            for (size_t k = end - pair_count[pair]; k < end && status == 0; k++) {
                if (k + TK_CREATED_LEAD < end) prefetch_bits(&s, first[k + TK_CREATED_LEAD]);
                status = note_merge(&s, &window, (uint32_t)r, first[k], first[k] + 2, merge_byte_pair_at(&s, first[k]));
            }
        }
        if (list.size && status == 0) {
            /* Nothing is pushed to this rank while it is merged (a created pair ranks higher or stops us); its
             * entries stay where they are, but the pool holding them may move. */
            s.lists[at] = (pair_list){0, 0, list.what};
            uint32_t *lefts = s.pool + list.at; /* until the first push: a push may move the pool */
            size_t sorted = 1;
            for (uint32_t k = 1; k < list.size && sorted; k++) sorted = lefts[k - 1] <= lefts[k];
            if (!sorted && list.size >= 64 && spare_capacity < list.size) {
                free(spare);
                spare_capacity = list.size;
                spare = malloc(spare_capacity * sizeof *spare);
                if (!spare) status = -1;
            }
            if (!sorted && status == 0) sort_lefts(lefts, spare, list.size);
            for (uint32_t k = 0; k < list.size && status == 0; k++) {
                lefts = s.pool + list.at; /* read again: a full window's pushes (note_merge) may have moved it */
                if (k + TK_CREATED_LEAD < list.size) prefetch_bits(&s, lefts[k + TK_CREATED_LEAD]);
                size_t left = lefts[k], length = list.what & ~TK_CREATED_RANK;
                size_t middle = merge_at(&s, left, length);
                if (s.ties_by_split && middle && tie_after(&s, left, middle, left + length)) status = -2;
                else status = note_merge(&s, &window, (uint32_t)r, left, left + length, middle);
            }
            give_room(&s, list.at, list_room(list.size)); /* for a later list: nothing reads it after this */
        }
        if (status == 0 && (window.n || window.n_deferred)) /* the rank's last window, and the one held back */
            status = push_created_pairs(&s, &window, (uint32_t)r, window.n, 1);
        if (status < 0) {
            result = status;
            goto done;
        }
    }
    if (!out) free(first); /* the ids need only the bitmap: release the rest first (peak memory) */
    first = NULL;
    size_t n = 0;
    if (!out) {
        /* A count is the number of part starts: a popcount a word, where a walk part by part mispredicts
         * a branch at every part. */
        for (size_t w = 0; w < n_words; w++) n += (size_t)__builtin_popcountll(s.bits[w]);
    } else {
        /* The parts in order (the bitmap word by word, the lowest set bit, then cleared), each one's id
         * written over `out` from the front (part_id). The writes trail the reads (the k-th part starts at
         * k or later), and the rank table is not probed (1 MB of random letters ends in ~650,000 parts). */
        size_t part = 0; /* a part starts at 0 */
        for (size_t w = 0; w < n_words; w++)
            for (uint64_t word = s.bits[w] & (w ? ~0ull : ~1ull); word; word &= word - 1) {
                size_t next = (w << 6) + (size_t)__builtin_ctzll(word);
                out[n++] = part_id(table, piece, part, next, s.ids);
                part = next;
            }
        out[n++] = part_id(table, piece, part, len, s.ids);
    }
    result = (ptrdiff_t)n;
done:
    free(s.pool);
    if (first != out) free(first);
    free(s.ids);
    free(pair_count);
    free(pair_at);
    if (marks && result < 0) tk_rank_marks_clear(marks, n_ranks);
    tk_rank_marks_give(marks);
    free(spare);
    free(s.bits);
    free(s.lists);
    return result;
}
