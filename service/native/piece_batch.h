/* A text's pieces a batch at a time: found, looked up, then handed out in order (module.c's emit_text and
 * batch_encode.c's encode_item, the one loop over pieces of both).
 *
 *   tk_piece_batch batches[2], *batch = &batches[0], *next = &batches[1];
 *   int found = tk_piece_batch_take(batch, &iter, shorts, table, cache, text, len, add_up_to); // fill + look_up
 *   for (;;) {
 *       int more = found == 1;                                      // 0: the text is done; -1: out of memory
 *       int found_next = more ? tk_piece_batch_take(next, &iter, ...) : 0;   // the next batch, looked up ahead
 *       for (size_t i = 0; i < batch->n; i++) {
 *           const tk_short_entry *e = tk_piece_batch_entry(batch, i, shorts, table, cache, text, len, add_up_to,
 *                                                          &unlocked_users);   // NULL: never move entries
 *           if (e) ...   // a piece of <= 15 bytes found in the table: e->n & 0xff ids (tk_short_copy_ids)
 *           else ...     // batch->pending[i], resolved (tk_short_pending): a short piece the table lacks,
 *       }                //   or the rank table's way (a longer piece, or no short table)
 *       if (!more) break;
 *       swap batch and next; found = found_next;
 *   }
 *
 * The next batch is found and looked up before the current one is handed out, so its lines arrive while
 * this one is handed out (a look-up only reads the tables and fetches lines; what a hand-out adds is found
 * by the next batch's hand-out, which reads its slots then).
 *
 * Why batches: each step runs over the whole batch before the next begins, so a piece's table line is
 * fetched (prefetch) a batch ahead of its compare, and the common piece (a short one in its home slot)
 * costs a few instructions in a tight loop: its key, hash and slot, then a compare and one add of its n
 * (tk_short_sum_ids), or a copy of its ids. Nothing of it is stored per piece beyond its key and slot, and
 * the callers keep their count in a register (docs/decisions.md, "Pieces in batches": a loop taking one
 * piece a turn through a ring of pending pieces ran 175 instructions a piece on a replay of English, this
 * one 115). Pieces of the scanner's bulk windows are taken a window at a time (tk_split_iter_take_bulk),
 * without the iterator's checks per piece.
 * Longer pieces (and every piece without a short table) are prepared for the rank table as the batch is
 * looked up and resolved once every piece of the batch is, so their rank-table and piece-cache lines too
 * are fetched ahead. */
#ifndef TOKEND_PIECE_BATCH_H
#define TOKEND_PIECE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "short_table.h"
#include "split_program.h"
#include "tokend_native.h"

/* 64: the batch's first compare waits for its line while the others arrive meanwhile, so the wait is paid
 * once a batch. Where the tables have left the core's caches (measured: the benchmark's turns with other
 * libraries) that wait is a trip to memory: English `count` 0.90-0.94x fastokens with 16, 1.06-1.18x with 64
 * (128: the same); with the tables hot, the same speed (docs/decisions.md, "64 pieces a batch"). */
#define TK_PIECE_BATCH 64

typedef struct {
    size_t n; /* pieces in this batch */
    size_t starts[TK_PIECE_BATCH], ends[TK_PIECE_BATCH];
    tk_short_key keys[TK_PIECE_BATCH];
    const tk_short_entry *homes[TK_PIECE_BATCH]; /* a short piece's home slot; NULL: pending[i] has the piece */
    tk_short_pending pending[TK_PIECE_BATCH];
} tk_piece_batch;

/* Up to TK_PIECE_BATCH non-empty pieces of the text (findall's empty matches have no ids): 1 when more
 * may follow, 0 when the text is done, -1 when out of memory (then `n` pieces are still valid). */
static inline int tk_piece_batch_fill(tk_piece_batch *batch, tk_split_iter *iter) {
    size_t n = 0, start, end;
    int found = 1;
    while (n < TK_PIECE_BATCH) {
        if (iter->bulk) {
            n += tk_split_iter_take_bulk(iter, batch->starts + n, batch->ends + n, TK_PIECE_BATCH - n);
            continue;
        }
        if ((found = tk_split_iter_next(iter, &start, &end)) != 1) break;
        if (end == start) continue;
        batch->starts[n] = start;
        batch->ends[n] = end;
        n++;
    }
    batch->n = n;
    return found;
}

/* Keys and home slots of the short pieces, their lines fetched; the rest prepared and then resolved for
 * the rank table (tk_short_prepare, tk_short_resolve: `cache` and `add_up_to` as there). `shorts` NULL:
 * every piece takes the rank table's way. */
static inline void tk_piece_batch_look_up(tk_piece_batch *batch, const tk_short_table *shorts,
                                          const tk_rank_table *table, const tk_piece_cache *cache,
                                          const uint8_t *text, size_t len, size_t add_up_to) {
    size_t n_other = 0, n_pieces = batch->n; /* in a local: the stores to the batch below may alias batch->n */
    if (!shorts) {
        for (size_t i = 0; i < n_pieces; i++) {
            batch->homes[i] = NULL;
            tk_short_prepare(table, text, len, batch->starts[i], batch->ends[i] - batch->starts[i], &batch->pending[i]);
        }
        for (size_t i = 0; i < n_pieces; i++) tk_short_resolve(shorts, table, cache, text, len, &batch->pending[i], add_up_to);
        return;
    }
    /* The fields a key's slot needs, in a copy no store to the batch can alias (so they stay in registers);
     * only those: a GIL holder may be adding to the table's other fields meanwhile. */
    tk_short_table held = {0};
    held.entries = shorts->entries;
    held.shift = shorts->shift;
    held.seed = shorts->seed;
    held.seed_hi = shorts->seed_hi;
    for (size_t i = 0; i < n_pieces; i++) {
        size_t start = batch->starts[i], n = batch->ends[i] - start;
        if (__builtin_expect(n <= TK_SHORT_MAX_LEN, 1)) {
            tk_short_key key = tk_short_key_of(text + start, n, len - start);
            batch->keys[i] = key;
            batch->homes[i] = tk_short_slot(&held, tk_short_hash(&held, &key));
            __builtin_prefetch(batch->homes[i], 0, 3);
        } else {
            batch->homes[i] = NULL;
            tk_short_prepare(table, text, len, start, n, &batch->pending[i]);
            n_other++;
        }
    }
    if (!n_other) return;
    for (size_t i = 0; i < n_pieces; i++)
        if (!batch->homes[i]) tk_short_resolve(shorts, table, cache, text, len, &batch->pending[i], add_up_to);
}

/* The next batch of the text's pieces, found and looked up (fill, then look_up): fill's answer. */
static inline int tk_piece_batch_take(tk_piece_batch *batch, tk_split_iter *iter, const tk_short_table *shorts,
                                      const tk_rank_table *table, const tk_piece_cache *cache, const uint8_t *text,
                                      size_t len, size_t add_up_to) {
    int found = tk_piece_batch_fill(batch, iter);
    tk_piece_batch_look_up(batch, shorts, table, cache, text, len, add_up_to);
    return found;
}

/* Piece i's entry when it is a short piece the table holds; else NULL, with pending[i] resolved (a short
 * piece not in the table, or a longer one: tk_short_resolve's answers). Read in order: an entry the caller
 * added for an earlier piece of the batch is found. */
static inline const tk_short_entry *tk_piece_batch_entry(tk_piece_batch *batch, size_t i, const tk_short_table *shorts,
                                                         const tk_rank_table *table, const tk_piece_cache *cache,
                                                         const uint8_t *text, size_t len, size_t add_up_to,
                                                         const size_t *unlocked_users) {
    const tk_short_entry *e = batch->homes[i];
    if (!e) return NULL;
    uint64_t hi = __atomic_load_n(&e->key.hi, __ATOMIC_ACQUIRE); /* see short_table.h: Threads */
    if (__builtin_expect(hi == batch->keys[i].hi && e->key.lo == batch->keys[i].lo, 1)) return e;
    /* Its home slot holds another key: the piece may be further on, and is then handed out as one in its
     * home slot is (merged pieces of multilingual text often are: their way through the pending piece, looked
     * up again, cost more than the probe; docs/decisions.md, "Short pieces past their home slot"). */
    const tk_short_entry *further = hi ? tk_short_find_after(shorts, e, &batch->keys[i]) : NULL;
    if (further) {
        /* Moved into its home slot, the entry there to where it was, when this caller is the table's one user
         * (`unlocked_users`: a count of calls using it without the GIL, read with the GIL held; NULL for a
         * batch's workers, which never move entries): short_table.h, "Home slots". */
        if (unlocked_users && __atomic_load_n(unlocked_users, __ATOMIC_ACQUIRE) == 0 &&
            tk_short_reaches(shorts, e, further)) {
            tk_short_entry *home = (tk_short_entry *)e, *found = (tk_short_entry *)further, held = *home;
            *home = *found;
            *found = held;
            return home;
        }
        return further;
    }
    tk_short_pending *s = &batch->pending[i];
    s->p.start = batch->starts[i];
    s->p.len = batch->ends[i] - batch->starts[i];
    s->key = batch->keys[i];
    s->short_hash = tk_short_hash(shorts, &s->key);
    s->n_short = TK_SHORT_ABSENT;
    s->has_key = 1;
    tk_short_resolve(shorts, table, cache, text, len, s, add_up_to);
    return NULL;
}

#endif
