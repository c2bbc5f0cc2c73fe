/* tokend.engine._native: the Python face of the native core, one type, `BpeCore`.
 *
 *   core = BpeCore(ranks, "cl100k", cache_capacity=65536, max_cached_piece_bytes=128, hash_seed=seed)
 *       the pattern: a built-in scanner's name, a PieceSplitter (split_object.c: any compiled pattern,
 *       chains of them) or None (then only the *_pieces methods work)
 *   core = BpeCore(vocabulary, splitter, merges=array("I", [left, right, merged, ...]), ignore_merges=False)
 *                                 pair-priority BPE (Hugging Face, GPT-2's encoder.py): `merges` lists
 *                                 (left id, right id, merged id) in priority order; `ignore_merges` turns
 *                                 on the whole-piece vocabulary shortcut (tiktoken's rule always has it);
 *                                 merge_index=False keeps the pair table even where merge_index.c applies
 *   core.merge_path              -> "rank" | "pairs-all-splits" / "pairs-by-id" / "pairs-by-token" (merge_index.c) | "pairs-table"
 *                                 (pair_table.c)
 *   core.encode("hello world")   -> [15339, 1917]     pre-split + BPE, ordinary text
 *   core.count("hello world")    -> 2                  the same without building a list
 *   core.encode_buffer("hello world") -> bytes of native-endian uint32 ids (for numpy.frombuffer)
 *   core.split("hello world")    -> ["hello", " world"]
 *   core.encode_pieces(["hello", " world"]) / core.count_pieces(...)   pieces split elsewhere (any regex)
 *   core.encode_piece(b"...")    -> ids of one byte string (whole-token shortcut, then BPE)
 *   core.merge(b"...")           -> the merge rule alone, without the shortcut (for tests)
 *   core.cache_stats()           -> (hits, misses, size, capacity)
 *   core.encode_batch(["a", "b"], 2)  -> [[64], [65]]   threads, the GIL released (count=True: counts)
 *   core.count_parts(parts, ends) / core.encode_parts(parts, ends, special_ids)   text given as parts (text_parts.c)
 *   core.count_messages(roles, first_roles, forbidden, strip, overhead, normalized, system_prompt, messages, per_message[, shape])   a plain chat
 *                                (message_counts.c)
 *   plain_message_bytes(messages) -> request bytes of a plain chat, or None    (module function, message_counts.c)
 *   _merge_counters()            -> {"bucket_merges": n, "bucket_fallbacks": n, "run_merges": n, "medium_merges": n}
 *                                 private, for tests (module function: huge pieces the bucket merge took in this
 *                                 process, those it handed to the heap, and pieces the run and medium merges took)
 *   _rank_marks_left()           -> entries left set in the bucket merge's kept per-rank arrays (0 between
 *                                 merges; private, for tests)
 *
 * Everything touching the shared piece cache runs with the GIL held and never calls back into Python code
 * while it holds pointers into shared state, so one core is safe to share between threads. Two exceptions
 * keep one big text from stalling every other thread of the process (a server worker's other calls): the
 * merge of a piece of at least TK_RELEASE_GIL_BYTES runs without the GIL (it reads only the immutable rank
 * table, the immutable str and its own buffers), and a text of at least TK_UNLOCKED_TEXT_BYTES is split and
 * merged without the GIL from start to end, with a worker cache of its own (emit_unlocked_text). Only str
 * input gets this (immutable); buffers and piece lists do not. encode_batch releases the GIL for a whole
 * batch: its workers never touch the shared cache either (see there).
 * Stopping: a text of at least TK_UNLOCKED_TEXT_BYTES looks at the caller's call stop (tokend.engine.call_stop:
 * its deadline, its cancel flag) every TK_BATCH_STOP_CHECK_BYTES of pieces and raises call_stop.CallStopped once
 * it is due; smaller texts (~10 ms at most) and the batch encoder (the service checks a call between chunks of
 * its texts) do not look.
 * Text that is not valid UTF-8 (lone surrogates) raises UnicodeEncodeError; the Encoding handles that.
 * The type is private but reachable: a core whose __init__ was skipped (BpeCore.__new__) or failed raises
 * RuntimeError from every method, and __init__ validates everything the tables rely on itself (byte coverage,
 * distinct ranks, density) instead of trusting the Python caller's checks. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "batch_encode.h"
#include "call_stop.h"
#include "call_stopped.h"
#include "nfc_runs.h"
#include "rank_file.h"
#include "rank_marks.h"
#include "varint_sizes.h"
#include "length_sums.h"
#include "text_find.h"
#include "str_utf8.h"
#include "split_object.h"
#include "tokend_native.h"
#include "short_table.h"
#include "piece_batch.h"
#include "text_parts.h"
#include "message_counts.h"

/* ~1-2 ms of merging: big enough that releasing the GIL costs nothing measurable, small enough that a
 * 1 MB piece (0.2 s of merging) no longer holds up the other calls of its worker. */
#define TK_RELEASE_GIL_BYTES 16384
/* A text of at least this many bytes is encoded with the GIL released throughout (emit_unlocked_text):
 * ~1 ms of work, where releasing and taking back the GIL and a worker cache cost nothing measurable. */
#define TK_UNLOCKED_TEXT_BYTES 65536
/* Worker caches emit_unlocked_text may add to the core's pool (beyond them, a big text with every cache
 * busy is encoded without one: exact, slower only on pieces it repeats). */
#define TK_UNLOCKED_TEXT_CACHES 4
#define TK_MAX_CACHE_CAPACITY (1 << 24)

typedef struct {
    PyObject_HEAD
    /* 1 once __init__ succeeded. The type is reachable from Python (BpeCore.__new__ skips __init__, and a
     * failed __init__ leaves the object behind), so every method checks it before touching the tables. */
    int ready;
    int initialising; /* 1 while __init__ runs (it releases the GIL midway): a second one is refused */
    tk_rank_table table;
    tk_piece_cache cache;
    PyObject *splitter;          /* PieceSplitter or None (owned) */
    const tk_splitter *split;    /* inside `splitter`; NULL for None */
    uint64_t seed;
    PyObject **rank_objects; /* rank -> the int object from the ranks dict (owned references) */
    size_t n_rank_objects;
    int pair_rule;           /* merges by pair priority (pairs) instead of tiktoken's rank rule */
    int whole_piece_shortcut; /* a piece that is a token is that token (tiktoken; HF's ignore_merges) */
    tk_pair_table pairs;         /* the pair rule's merges, when merge_index could not be built */
    tk_merge_index merge_index;  /* the pair rule through the vocabulary (merge_index.c); tokens NULL: none */
    tk_char_atoms rank_atoms;    /* tiktoken's rule: characters its merges start from whole (table.atoms) */
    /* Without the shortcut (the pair rule, ignore_merges=False): rank -> 1 when merging the token's own bytes
     * gives that token alone, so a piece equal to it may skip the merge and the cache (NULL: none computed). */
    uint8_t *merges_to_itself;
    tk_cache_pool worker_caches; /* the batch workers' own piece caches (encode_batch; batch_encode.h) */
    /* Pieces of <= 15 bytes -> ids, tokens and merged pieces (short_table.h), for the loops over pieces.
     * Built once the core has encoded `shorts_after` bytes in texts under TK_UNLOCKED_TEXT_BYTES (see
     * build_short_table). */
    tk_short_table shorts;
    int shorts_state;            /* SHORTS_* (SHORTS_NONE from the start when told never to build it) */
    size_t shorts_bytes_seen;    /* bytes of those texts while SHORTS_WAITING */
    size_t shorts_after;
    /* Bytes of text that found `shorts` full (counted at each text's or batch's start), and how many it
     * serves full before it is refilled (refill_full_short_table). */
    size_t shorts_full_bytes, shorts_refill_after;
    /* 1 once the table is due a refill while calls without the GIL used it: calls starting meanwhile go without
     * it (batch_model), so the users drain and a GIL holder at a call's start refills it. */
    int shorts_refill_due;
    /* Calls using `shorts` without the GIL (emit_unlocked_text, encode_batch's workers) now running: changed
     * only with the GIL held, so a holder of the GIL that reads 0 is the table's one user until it lets the
     * GIL go. */
    size_t unlocked_users;
    /* Short pieces merged in groups (merge_grouped) so far: short_table_stats()["grouped"], for tests. */
    size_t grouped;
} BpeCore;

/* The ids of `piece` by this core's merge rule (without the whole-piece shortcut). */
static inline ptrdiff_t merge_piece(const BpeCore *self, const uint8_t *piece, size_t len, uint32_t *out) {
    if (__builtin_expect(self->pair_rule, 0)) {
        if (self->merge_index.tokens) return tk_indexed_pair_merge(&self->merge_index, &self->table, piece, len, out);
        return tk_pair_merge(&self->pairs, &self->table, piece, len, out);
    }
    return tk_bpe_merge(&self->table, piece, len, self->n_rank_objects, out);
}

/* The merge reads only the rank table (tiktoken's rule, or the pair rule through merge_index): short pieces
 * may skip the cache and a count may skip writing ids. The pair table's merge needs room for the ids. */
static inline int merges_by_lookup(const BpeCore *self) { return !self->pair_rule || self->merge_index.tokens; }

/* Where ids go: appended to a growable array (malloc's, so a big text's array from emit_unlocked_text can
 * be taken over), or only counted. */
typedef struct {
    uint32_t *ids;
    size_t len, cap;
    size_t count;
    int counting;
} Sink;

/* Copies of ids of at least this many bytes run without the GIL. */
#define TK_UNLOCKED_COPY_BYTES (1u << 20)

/* The ids' array at `cap`; an empty one is replaced, not copied: once glibc has freed a block of many MiB
 * it serves blocks up to 32 MiB from its heap, where realloc copies the whole old block (an unwritten
 * reserve, faulted in page by page: one 8 MiB piece held the GIL 9-11 ms there before big texts left the
 * GIL altogether). */
static uint32_t *resized_ids(uint32_t *ids, size_t len, size_t cap) {
    if (len) return realloc(ids, cap * sizeof *ids);
    free(ids);
    return malloc(cap * sizeof *ids);
}

static int sink_reserve(Sink *sink, size_t more) {
    if (sink->len + more <= sink->cap) return 0;
    size_t cap = sink->cap ? sink->cap : 64;
    while (cap < sink->len + more) cap *= 2;
    uint32_t *ids = resized_ids(sink->ids, sink->len, cap);
    if (!ids) {
        if (!sink->len) { /* resized_ids freed the old array */
            sink->ids = NULL;
            sink->cap = 0;
        }
        PyErr_NoMemory();
        return -1;
    }
    sink->ids = ids;
    sink->cap = cap;
    return 0;
}

/* merge_piece, without the GIL when the piece is long and its bytes cannot change meanwhile (they belong
 * to a str); -1 with MemoryError set when out of memory. */
static ptrdiff_t merge_long_piece(BpeCore *self, const uint8_t *piece, size_t len, uint32_t *out,
                                  int piece_is_immutable) {
    ptrdiff_t n;
    if (piece_is_immutable && len >= TK_RELEASE_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        n = merge_piece(self, piece, len, out);
        Py_END_ALLOW_THREADS
    } else {
        n = merge_piece(self, piece, len, out);
    }
    if (n < 0) PyErr_NoMemory();
    return n;
}

/* emit_piece past the whole-token shortcut: a piece that is no token (or whose token the merge rule does
 * not give alone), with its `hash` from tk_rank_of_piece. Out of line, so that the shortcut,
 * taken by most pieces of text, is inlined into the loops over pieces without the merge's registers. */
static __attribute__((noinline)) int emit_merged_piece(BpeCore *self, Sink *sink, const uint8_t *piece, size_t len,
                                                       int piece_is_immutable, uint64_t hash) {
    if (len >= UINT32_MAX) { /* the merge names positions with 32 bits */
        PyErr_SetString(PyExc_ValueError, "a single piece of 4 GiB or more cannot be encoded");
        return -1;
    }
    if (sink->counting && merges_by_lookup(self) && len > self->cache.max_key_len) {
        /* A piece too long to cache, counted: the merge counts its ids without writing them, so counting
         * one huge piece needs no room for its ids (the cache still books it as a miss). */
        self->cache.misses++;
        ptrdiff_t n = merge_long_piece(self, piece, len, NULL, piece_is_immutable);
        if (n < 0) return -1;
        sink->count += (size_t)n;
        return 0;
    }
    if (sink_reserve(sink, len) < 0) return -1;
    uint32_t *out = sink->ids + sink->len;
    if (len <= TK_UNCACHED_PIECE_BYTES && merges_by_lookup(self)) {
        ptrdiff_t n = merge_piece(self, piece, len, out);
        if (sink->counting)
            sink->count += (size_t)n;
        else
            sink->len += (size_t)n;
        return 0;
    }
    if (len <= 2) hash = tk_piece_hash(&self->table, piece, len); /* see tk_rank_of_piece */
    ptrdiff_t n = tk_piece_cache_get(&self->cache, piece, len, hash, out);
    if (n < 0) {
        n = merge_long_piece(self, piece, len, out, piece_is_immutable);
        if (n < 0) return -1;
        tk_piece_cache_put(&self->cache, piece, len, hash, out, (size_t)n);
    }
    if (sink->counting)
        sink->count += (size_t)n;
    else
        sink->len += (size_t)n;
    return 0;
}

/* The ids of one piece into the sink, its whole-piece lookup done: `rank` and `hash` as tk_rank_of_piece gives
 * them. `piece_is_immutable`: the bytes cannot change while the GIL is released (they belong to a str). A
 * piece that is a token is that token (tiktoken's shortcut; the pair rule's only for tokens that merge to
 * themselves); the rest is merged. */
static inline int emit_ranked_piece(BpeCore *self, Sink *sink, const uint8_t *piece, size_t len,
                                    int piece_is_immutable, uint32_t rank, uint64_t hash) {
    if (rank != TK_NO_RANK && (__builtin_expect(self->whole_piece_shortcut, 1) ||
                               (self->merges_to_itself && self->merges_to_itself[rank]))) {
        if (sink->counting) {
            sink->count++;
            return 0;
        }
        if (__builtin_expect(sink->len == sink->cap, 0) && sink_reserve(sink, 1) < 0) return -1;
        sink->ids[sink->len++] = rank;
        return 0;
    }
    return emit_merged_piece(self, sink, piece, len, piece_is_immutable, hash);
}

/* emit_ranked_piece after the lookup. `readable`: bytes that may be read from `piece` on (>= len; the rest of
 * the text when the piece is part of one: see tk_rank_of_piece). */
static inline int emit_piece(BpeCore *self, Sink *sink, const uint8_t *piece, size_t len, int piece_is_immutable,
                             size_t readable) {
    uint64_t hash;
    uint32_t rank = tk_rank_of_piece(&self->table, piece, len, readable, &hash); /* none for 4 GiB pieces */
    return emit_ranked_piece(self, sink, piece, len, piece_is_immutable, rank, hash);
}

/* A prepared piece of a str's `text` into the sink (see tk_pending_piece). */
static inline int emit_pending_piece(BpeCore *self, Sink *sink, const uint8_t *text, const tk_pending_piece *p) {
    return emit_ranked_piece(self, sink, text + p->start, p->len, 1, p->rank, p->hash);
}

/* The short table of this core when built (NULL before: the rank table's way). */
static inline tk_short_table *ready_shorts(BpeCore *self) {
    return self->shorts.entries ? &self->shorts : NULL;
}

/* The short table back to its tokens alone once merged pieces filled it and it has served
 * `shorts_refill_after` bytes of text full (short_table.h: why), when this caller, holding the GIL, is its one
 * user: no call runs without the GIL (unlocked_users), and no GIL holder keeps an entry across a release
 * (emit_pieces' batches keep slots' addresses, read again at hand-out, and keys). Called before a text's loop
 * and a batch's start with its `len` (bytes); with the GIL held throughout (~2 ms for 16 MiB): a refill without
 * it would leave the table half written for the next GIL holder.
 * Why not at once when full: traffic whose pieces outnumber the table's room (the multilingual corpus) would
 * refill it every few MB and merge its pieces in use again after each (cl100k_base multilingual count 0.87x ->
 * 0.66x fastokens, replay 133 -> 65 MB/s, refilled at once); TK_SHORT_REFILL_AFTER_BYTES of text between refills
 * makes that a re-merge of its pieces (32-57 ms of CPU) per GiB, and bounds how long one client's junk keeps
 * it full. A GiB, not 128 MiB: 128 MiB cost such traffic 3-6 % of its CPU (a GiB ~0.5 %, by the same
 * figures), and the junk's slowdown (1.07-1.40x) lasts a GiB of text, seconds of a busy worker, whose CPU is
 * the one that matters (docs/decisions.md, "The short table refills" and after). */
static inline void refill_full_short_table(BpeCore *self, size_t len) {
    if (__builtin_expect(!tk_short_table_full(&self->shorts), 1)) return;
    self->shorts_full_bytes += len;
    if (self->shorts_full_bytes < self->shorts_refill_after) return;
    if (__atomic_load_n(&self->unlocked_users, __ATOMIC_ACQUIRE) == 0) {
        tk_short_table_refill(&self->shorts);
        self->shorts_full_bytes = 0;
        self->shorts_refill_due = 0;
    } else {
        /* Why not wait for a moment with none: two big texts or batches overlapping back to back (a worker's
         * two bulk-lane threads kept busy) left none, and the table was never refilled (845 MB of small texts
         * at 1 MB refill_after: 0 refills; issue 13, hostile21). Calls that start now go without the table
         * (exact either way), so the ones using it end within one call's time. */
        self->shorts_refill_due = 1;
    }
}

/* This core's tables as the batch encoder reads them (batch_encode.h); its workers add merged short pieces
 * as this thread does (add_short: up to the piece cache's longest key). */
static tk_batch_model batch_model(BpeCore *self) {
    return (tk_batch_model){&self->table, self->pair_rule && !self->merge_index.tokens ? &self->pairs : NULL,
                            self->merge_index.tokens ? &self->merge_index : NULL, self->merges_to_itself,
                            self->whole_piece_shortcut, self->split, self->seed, self->n_rank_objects,
                            self->shorts_refill_due ? NULL : ready_shorts(self), self->cache.max_key_len,
                            NULL /* no call stop: emit_unlocked_text sets the caller's */};
}

/* A worker cache back to the pool; its hits and misses go to the shared counters (cache_stats). */
static void give_worker_cache(BpeCore *self, tk_piece_cache *cache) {
    if (!cache) return;
    self->cache.hits += cache->hits;
    self->cache.misses += cache->misses;
    cache->hits = cache->misses = 0;
    tk_cache_pool_give(&self->worker_caches, cache);
}

/* Reads the caller's stop (GIL held, tk_read_call_stop): 1 with `stop` set and `flag` a view the caller releases
 * after the encode, 0 when the call has none, -1 with an exception. */
static int take_call_stop(tk_call_stop *stop, Py_buffer *flag) {
    int status = tk_read_call_stop(&stop->deadline, flag);
    if (status == 1) stop->flag = flag->buf;
    return status;
}

/* A big text, split and merged with the GIL released from start to end: one item of the batch encoder run
 * on this thread, with a worker cache of the pool instead of the shared one (which only GIL holders touch).
 * Why not windows (found without the GIL, emitted with it): the emitting held the GIL ~2-4 ms per 64 KiB
 * of short words, a C loop no switch interval interrupts; in a server worker, the bulk lane's low-priority
 * thread held it that way while the small calls of the same worker waited (docs/decisions.md). The ids
 * are appended to the sink (taken whole when the sink is empty). The text must stay unchanged meanwhile:
 * a str's UTF-8, which the caller holds. Under a call stop (take_call_stop) it gives up once the stop is due,
 * looked at every TK_BATCH_STOP_CHECK_BYTES of pieces, and raises CallStopped. */
static int emit_unlocked_text(BpeCore *self, Sink *sink, const uint8_t *text, size_t len) {
    tk_batch_item item = {text, len, TK_BATCH_NOT_RUN, NULL, 0, 0};
    tk_batch_buffer buffer = {0};
    tk_call_stop stop;
    Py_buffer stop_flag;
    int has_stop = take_call_stop(&stop, &stop_flag);
    if (has_stop < 0) return -1;
    /* NULL: no cache, still exact. At most TK_UNLOCKED_TEXT_CACHES are made for this path: each stays in the
     * pool for the core's life (a quarter of the shared cache), and a server worker may encode as many big
     * texts at once as it has handler threads. */
    tk_piece_cache *cache = tk_cache_pool_take_within(&self->worker_caches, TK_UNLOCKED_TEXT_CACHES);
    refill_full_short_table(self, len);
    tk_batch_model model = batch_model(self);
    if (has_stop) model.stop = &stop;
    int failed;
    /* Counted only when it uses the table: one going without it (a refill due) does not hold the refill off. */
    size_t user = model.shorts != NULL;
    __atomic_fetch_add(&self->unlocked_users, user, __ATOMIC_RELEASE);
    Py_BEGIN_ALLOW_THREADS
    failed = tk_batch_run(&model, NULL, &item, 1, 1, sink->counting, &cache, &buffer);
    tk_batch_buffer_free(&buffer);
    Py_END_ALLOW_THREADS
    __atomic_fetch_sub(&self->unlocked_users, user, __ATOMIC_RELEASE); /* its workers are done with the table */
    give_worker_cache(self, cache);
    if (has_stop) PyBuffer_Release(&stop_flag);
    if (failed) {
        free(item.ids);
        if (item.status == TK_BATCH_STOPPED)
            tk_raise_call_stopped();
        else if (item.status == TK_BATCH_PIECE_TOO_LONG)
            PyErr_SetString(PyExc_ValueError, "a single piece of 4 GiB or more cannot be encoded");
        else
            PyErr_NoMemory();
        return -1;
    }
    if (sink->counting) {
        sink->count += item.n_ids;
        return 0;
    }
    if (sink->len == 0) {
        free(sink->ids);
        sink->ids = item.ids;
        sink->len = sink->cap = item.n_ids;
        return 0;
    }
    int status = sink_reserve(sink, item.n_ids);
    if (status == 0) {
        size_t bytes = item.n_ids * sizeof *item.ids;
        if (bytes >= TK_UNLOCKED_COPY_BYTES) { /* both arrays are this call's own */
            Py_BEGIN_ALLOW_THREADS
            memcpy(sink->ids + sink->len, item.ids, bytes);
            Py_END_ALLOW_THREADS
        } else {
            memcpy(sink->ids + sink->len, item.ids, bytes);
        }
        sink->len += item.n_ids;
    }
    free(item.ids);
    return status;
}

/* The short-piece table is built once a core has encoded this much text in texts under
 * TK_UNLOCKED_TEXT_BYTES (one at a time or in batches): 9-22 MiB (short_table.h) is paid by the models a
 * process uses that way, not by every model of a registry it loads, nor by one big text (its pieces are
 * few and long; the build would be a fifth of a 1 MB piece's time and double its memory). */
#define TK_SHORT_TABLE_AFTER_BYTES (256 * 1024)
/* Bytes of text a full short table serves before it is refilled (refill_full_short_table). */
#define TK_SHORT_REFILL_AFTER_BYTES ((Py_ssize_t)1 << 30)
/* Merged pieces the table holds at most (fewer when the piece cache is smaller): the rest go to the piece
 * cache, so a cache_capacity of millions does not size this table too. */
#define TK_SHORT_MAX_ADDED 65536
enum { SHORTS_WAITING = 0, SHORTS_BUILDING, SHORTS_READY, SHORTS_NONE };

/* The short-piece table, once enough text has come (called with the GIL held, before a text's loop). The
 * build (~5-20 ms: every short token into a table of 9-22 MiB) runs without the GIL; meanwhile the core's
 * other callers encode without the table, which `shorts.entries` stays NULL for until it is ready (no
 * caller can see it half built: it is assigned with the GIL held). Out of memory: the core goes on
 * without it (exact either way: the table only shortcuts the lookups and merges). */
static void build_short_table(BpeCore *self, size_t len) {
    if (__builtin_expect(self->shorts_state != SHORTS_WAITING, 1)) return;
    self->shorts_bytes_seen += len;
    if (self->shorts_bytes_seen < self->shorts_after) return;
    self->shorts_state = SHORTS_BUILDING;
    const uint8_t *only = self->whole_piece_shortcut ? NULL : self->merges_to_itself;
    if (!self->whole_piece_shortcut && !only) { /* which tokens are their own pieces is not known */
        self->shorts_state = SHORTS_NONE;
        return;
    }
    tk_short_table table;
    int built;
    Py_BEGIN_ALLOW_THREADS
    size_t max_added = self->cache.capacity < TK_SHORT_MAX_ADDED ? self->cache.capacity : TK_SHORT_MAX_ADDED;
    /* at the default cap, the room the table's slots have anyway: English and code text filled cl100k_base's
     * 65,536 before a multilingual text's pieces were in, and its count ran 0.89x fastokens, not 1.2x
     * (docs/decisions.md, "The short table takes the room its slots have") */
    built = tk_short_table_build(&table, &self->table, only, max_added, max_added == TK_SHORT_MAX_ADDED,
                                 self->seed) == 0;
    Py_END_ALLOW_THREADS
    if (!built) {
        self->shorts_state = SHORTS_NONE;
        return;
    }
    self->shorts = table;
    self->shorts_state = SHORTS_READY;
}

/* A merged short piece's ids (at `ids`) into the table, while it has room. */
static inline void add_short(BpeCore *self, const tk_short_pending *s, const uint32_t *ids, size_t n) {
    if (!s->has_key || s->p.len > self->cache.max_key_len || !tk_short_table_has_room(&self->shorts)) return;
    int alone = __atomic_load_n(&self->unlocked_users, __ATOMIC_ACQUIRE) == 0;
    tk_short_table_put(&self->shorts, &s->key, s->short_hash, ids, (uint32_t)n, TK_SHORT_ADDED, alone); /* counts it */
}

/* Merged pieces up to this length may be added to the short table now (0: none). */
static inline size_t short_add_up_to(const BpeCore *self) {
    return tk_short_table_has_room(&self->shorts) ? self->cache.max_key_len : 0;
}

/* A piece of a batch that the short table does not hold (piece_batch.h): its ids into the sink. */
static inline int emit_short(BpeCore *self, Sink *sink, const uint8_t *text, tk_short_pending *s) {
    if (s->n_short == TK_SHORT_MERGE) {
        /* Looked up just now (tk_piece_batch_entry resolves a short piece as it is handed out), so an earlier
         * copy of the piece in the same batch has been added already and found. */
        if (s->p.len > TK_UNCACHED_PIECE_BYTES) self->cache.misses++; /* as the piece cache would have */
        if (sink_reserve(sink, s->p.len) < 0) return -1;
        uint32_t *out = sink->ids + sink->len; /* a count too writes the ids there, unadvanced */
        ptrdiff_t got = merge_piece(self, text + s->p.start, s->p.len, out);
        if (got < 0) {
            PyErr_NoMemory();
            return -1;
        }
        if (sink->counting)
            sink->count += (size_t)got;
        else
            sink->len += (size_t)got;
        add_short(self, s, out, (size_t)got);
        return 0;
    }
    size_t before = sink->len;
    if (emit_pending_piece(self, sink, text, &s->p) < 0) return -1;
    /* A merged piece, its ids at the sink's end, goes into the table too; not from a count, which may not
     * write them (emit_merged_piece), nor a token that merges (not the table's to hold). */
    if (s->p.rank == TK_NO_RANK && !sink->counting) add_short(self, s, sink->ids + before, sink->len - before);
    return 0;
}

/* Whether merge_cut could cut this piece: a continuation byte followed by a lead byte of 2-4 (the only
 * boundaries tk_cut_between may cut), when the table has cuts. Such pieces keep tk_bpe_merge, whose cut
 * segments skip the merges of a token they equal; the others merge as one piece there too. */
static inline int may_be_cut(const tk_rank_table *table, const uint8_t *piece, size_t len) {
    if (!table->cut_pairs) return 0;
    int found = 0;
    for (size_t k = 0; k + 1 < len; k++) found |= (piece[k] & 0xC0) == 0x80 && piece[k + 1] >= 0xC0;
    return found;
}

/* Whether the pair rule's merge list is one tk_bpe_merge_group takes: merge_index.c's two kinds in merged-id order
 * (an every-split list, a trained one), whose short pieces tk_indexed_pair_merge gives to short_merge.h. */
static inline int groups_by_list(const BpeCore *self) {
    return self->merge_index.tokens && (self->merge_index.all_splits || self->merge_index.left_len_by_id);
}

/* Short pieces the table lacks, merged side by side (tk_bpe_merge_group) and added to the table as emit_short
 * adds one: grouped[g] for g < m, the same piece as grouped[same[g]] (an earlier one, or itself: only those are
 * merged). A count: how many ids they have. An encode: each piece's ids go to the room its bytes took in the sink
 * (holes[g], as many ids as bytes), and the ids after it move down behind them; 0. */
static size_t merge_grouped(BpeCore *self, Sink *sink, const uint8_t *text, const tk_short_pending *grouped,
                            const uint8_t *same, const size_t *holes, size_t m, const int counting) {
    const uint8_t *pieces[TK_MERGE_GROUP] = {0}; /* all set (same[0] is 0); zeroed for the compiler's sake */
    uint8_t lens[TK_MERGE_GROUP] = {0}, n_ids[TK_MERGE_GROUP], merged[TK_GROUP_SPAN] = {0};
    uint32_t ids[TK_MERGE_GROUP][TK_GROUP_PIECE];
    size_t n_merged = 0;
    for (size_t g = 0; g < m; g++) {
        if (same[g] != g) {
            merged[g] = merged[same[g]];
            continue;
        }
        merged[g] = (uint8_t)n_merged;
        pieces[n_merged] = text + grouped[g].p.start;
        lens[n_merged++] = (uint8_t)grouped[g].p.len;
    }
    const tk_list_rule list = {self->merge_index.left_len_by_id, self->merge_index.all_splits};
    /* a list's atoms; tiktoken's rule has none there (its own, rank_atoms, serve longer pieces: char_atoms.c) */
    tk_bpe_merge_group(&self->table, self->pair_rule ? &list : NULL, self->merge_index.n_ids, &self->merge_index.atoms,
                       pieces, lens, n_merged, ids, n_ids);
    self->grouped += n_merged;
    size_t count = 0, write = counting ? 0 : holes[0];
    for (size_t g = 0; g < m; g++) {
        size_t k = merged[g], len = grouped[g].p.len;
        count += n_ids[k];
        if (same[g] != g) {
            self->cache.hits++; /* as the table would have found it, added after the first */
        } else {
            if (len > TK_UNCACHED_PIECE_BYTES) self->cache.misses++; /* as the piece cache would have */
            add_short(self, &grouped[g], ids[k], n_ids[k]);
        }
        if (counting) continue;
        memcpy(sink->ids + write, ids[k], n_ids[k] * sizeof *sink->ids);
        write += n_ids[k];
        size_t from = holes[g] + len, to = g + 1 < m ? holes[g + 1] : sink->len;
        memmove(sink->ids + write, sink->ids + from, (to - from) * sizeof *sink->ids);
        write += to - from;
    }
    if (counting) return count;
    sink->len = write;
    return 0;
}

/* The ids of a text's pieces into the sink (piece_batch.h): a short piece the table holds here, every other
 * through emit_short. `counting` is a constant of each copy (emit_text): the count stays in a register. */
static inline __attribute__((always_inline)) int emit_pieces(BpeCore *self, Sink *sink, const uint8_t *text,
                                                             size_t len, const int counting) {
    tk_split_iter iter;
    if (tk_split_iter_init(&iter, self->split, text, len) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    const tk_short_table *shorts = ready_shorts(self); /* fixed for this text: its pieces take one way */
    /* Also fixed for the text: a piece marked for merging after the table filled up is merged without the
     * piece cache and not added (add_short checks the room again), exact either way. */
    size_t add_up_to = short_add_up_to(self);
    tk_piece_batch batches[2]; /* the one handed out, and the next one, looked up meanwhile (piece_batch.h) */
    tk_piece_batch *batch = &batches[0], *next = &batches[1];
    uint64_t hits = 0; /* merged pieces found in the table count as the piece cache's hits */
    size_t count = 0;
    int failed = 0;
    /* Short pieces to merge under tiktoken's rule or a list's (groups_by_list), merged TK_MERGE_GROUP different ones
     * at a time (merge_grouped); an encode leaves room for their ids at holes[g]. A group waits across batches until it
     * is full (or TK_GROUP_SPAN pieces with repeats wait, or the text ends): English and code have ~1 unseen
     * piece a batch, which merged alone waited for each look-up in turn (first pass `count` 1.03-1.06x, in
     * docs/decisions.md). A piece that comes again while it waits is merged once (the table does not hold it
     * yet): code repeats its new identifiers. */
    const int grouping = shorts && (!self->pair_rule || groups_by_list(self));
    tk_short_pending grouped[TK_GROUP_SPAN];
    size_t holes[TK_GROUP_SPAN];
    uint8_t same[TK_GROUP_SPAN];
    size_t n_grouped = 0, n_distinct = 0;
    int found = tk_piece_batch_take(batch, &iter, shorts, &self->table, &self->cache, text, len, add_up_to);
    for (;;) {
        int more = found == 1;
        int found_next = more ? tk_piece_batch_take(next, &iter, shorts, &self->table, &self->cache, text, len,
                                                    add_up_to)
                              : 0;
        uint64_t sum = 0; /* the hits' n (tk_short_sum_ids) */
        for (size_t i = 0; i < batch->n; i++) {
            const tk_short_entry *e = tk_piece_batch_entry(batch, i, shorts, &self->table, &self->cache, text, len,
                                                           add_up_to, &self->unlocked_users);
            if (__builtin_expect(e != NULL, 1)) {
                sum += e->n;
                if (counting) continue;
                if (__builtin_expect(sink->len + TK_SHORT_MAX_LEN > sink->cap, 0) &&
                    sink_reserve(sink, TK_SHORT_MAX_LEN) < 0) {
                    failed = 1;
                    break;
                }
                sink->len += tk_short_copy_ids(shorts, e, sink->ids + sink->len);
                continue;
            }
            tk_short_pending *s = &batch->pending[i];
            if (grouping && s->n_short == TK_SHORT_MERGE && !may_be_cut(&self->table, text + s->p.start, s->p.len)) {
                if (!counting) {
                    if (sink_reserve(sink, s->p.len) < 0) {
                        failed = 1;
                        break;
                    }
                    holes[n_grouped] = sink->len;
                    sink->len += s->p.len;
                }
                size_t first = n_grouped;
                for (size_t g = 0; g < n_grouped && first == n_grouped; g++)
                    if (grouped[g].key.lo == s->key.lo && grouped[g].key.hi == s->key.hi) first = g;
                same[n_grouped] = (uint8_t)first;
                n_distinct += first == n_grouped;
                grouped[n_grouped++] = *s;
                if (n_distinct == TK_MERGE_GROUP || n_grouped == TK_GROUP_SPAN) {
                    count += merge_grouped(self, sink, text, grouped, same, holes, n_grouped, counting);
                    n_grouped = n_distinct = 0;
                }
                continue;
            }
            if (emit_short(self, sink, text, s) < 0) {
                failed = 1;
                break;
            }
        }
        hits += tk_short_sum_added(sum);
        if (counting) count += tk_short_sum_ids(sum);
        if (failed || !more) break;
        tk_piece_batch *handed = batch;
        batch = next;
        next = handed;
        found = found_next;
    }
    if (n_grouped && !failed) count += merge_grouped(self, sink, text, grouped, same, holes, n_grouped, counting);
    self->cache.hits += hits;
    sink->count += count;
    tk_split_iter_free(&iter);
    if (found < 0) PyErr_NoMemory();
    return found == 0 && !failed ? 0 : -1;
}

/* The ids of a text into the sink. Big texts (TK_UNLOCKED_TEXT_BYTES) go without the GIL (above); small
 * ones are split and emitted with it, through the short-piece table and the shared piece cache (releasing
 * the GIL would cost more than their whole encode). */
static int emit_text(BpeCore *self, Sink *sink, const uint8_t *text, size_t len) {
    if (len >= TK_UNLOCKED_TEXT_BYTES) return emit_unlocked_text(self, sink, text, len);
    build_short_table(self, len);
    refill_full_short_table(self, len);
    return sink->counting ? emit_pieces(self, sink, text, len, 1) : emit_pieces(self, sink, text, len, 0);
}

/* A sink of more ids than this gives them back to the allocator as the list takes them (see ids_to_list). */
#define TK_SHRINK_SINK_IDS (1u << 18)

/* The sink's ids as a list of the model's int objects (made at load: the list costs 8 bytes an id and no
 * objects). A big sink is read from the end and cut down every TK_SHRINK_SINK_IDS ids (realloc of a block
 * that size is an mremap: the pages go back at once), so the ids and the list are not both held whole: one
 * 8 MiB piece of random letters peaked at 63 MiB (list 42 + ids 21) before, ~44 MiB after. */
static PyObject *ids_to_list(BpeCore *self, Sink *sink) {
    PyObject *list = PyList_New((Py_ssize_t)sink->len);
    if (!list) return NULL;
    size_t i = sink->len;
    while (i > 0) {
        size_t low = i > TK_SHRINK_SINK_IDS ? i - TK_SHRINK_SINK_IDS : 0;
        for (size_t k = i; k-- > low;) {
            /* the object of the id 32 on, for writing; the slot naming the object of the id 128 on, so that the
             * first prefetch does not wait for its pointer (tokend_native.h, TK_LIST_PREFETCH) */
            if (k >= low + TK_LIST_PREFETCH_SLOT)
                __builtin_prefetch(&self->rank_objects[sink->ids[k - TK_LIST_PREFETCH_SLOT]], 0, 3);
            if (k >= low + TK_LIST_PREFETCH) __builtin_prefetch(self->rank_objects[sink->ids[k - TK_LIST_PREFETCH]], 1, 3);
            PyObject *item = self->rank_objects[sink->ids[k]];
            Py_INCREF(item);
            PyList_SET_ITEM(list, (Py_ssize_t)k, item);
        }
        i = low;
        if (i && sink->cap > TK_SHRINK_SINK_IDS) {
            uint32_t *ids = realloc(sink->ids, i * sizeof *ids); /* shrinking: may fail, then keeps */
            if (ids) {
                sink->ids = ids;
                sink->cap = i;
            }
        }
    }
    return list;
}

/* The ids as bytes of native uint32; a big copy runs without the GIL (the new bytes object is not shared
 * yet), so a multi-megabyte answer does not stop the process's other threads. */
static PyObject *ids_to_bytes(const Sink *sink) {
    size_t size = sink->len * sizeof *sink->ids;
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!bytes) return NULL;
    if (size >= TK_RELEASE_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        memcpy(PyBytes_AS_STRING(bytes), sink->ids, size);
        Py_END_ALLOW_THREADS
    } else {
        memcpy(PyBytes_AS_STRING(bytes), sink->ids, size);
    }
    return bytes;
}

static int require_ready(BpeCore *self) {
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "BpeCore is not initialised: build it with BpeCore(ranks, pattern) "
                                            "(its __init__ was skipped or failed)");
        return -1;
    }
    return 0;
}

static int require_pattern(BpeCore *self) {
    if (require_ready(self) < 0) return -1;
    if (!self->split) {
        PyErr_SetString(PyExc_ValueError, "this BpeCore has no built-in pattern: split the text and use encode_pieces");
        return -1;
    }
    return 0;
}

enum { AS_LIST = 0, AS_COUNT = 1, AS_BUFFER = 2 };

/* The ids of a text's UTF-8 as `output` asks. */
static PyObject *run_utf8(BpeCore *self, const char *text, Py_ssize_t len, int output) {
    int counting = output == AS_COUNT;
    Sink sink = {0};
    sink.counting = counting;
    PyObject *result = NULL;
    /* Room for a small text's ids up front; a big one's come whole from emit_unlocked_text. */
    if (counting || (size_t)len >= TK_UNLOCKED_TEXT_BYTES || sink_reserve(&sink, (size_t)len / 3 + 16) == 0) {
        if (emit_text(self, &sink, (const uint8_t *)text, (size_t)len) == 0)
            result = counting ? PyLong_FromSize_t(sink.count)
                     : output == AS_BUFFER ? ids_to_bytes(&sink)
                                           : ids_to_list(self, &sink);
    }
    free(sink.ids);
    return result;
}

static PyObject *run_text(BpeCore *self, PyObject *arg, int output) {
    if (!PyUnicode_Check(arg)) return PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(arg)->tp_name);
    if (require_pattern(self) < 0) return NULL;
    const char *text;
    Py_ssize_t len;
    char *owned;
    int status = tk_str_utf8(arg, &text, &len, &owned);
    if (status == 1) { /* a lone surrogate: CPython's error, as before */
        PyUnicode_AsUTF8AndSize(arg, &len);
        return NULL;
    }
    if (status < 0) return NULL;
    PyObject *result = run_utf8(self, text, len, output);
    free(owned);
    return result;
}

/* A tuple of at most TK_BATCH_MAX_NEEDLES non-empty str (their UTF-8 lives as long as the tuple) into
 * `needles`; `what` names the argument in errors (encode_batch's flag=, count_unless's strings). */
static int needles_of(PyObject *tuple, const char *what, tk_batch_needles *needles) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) > TK_BATCH_MAX_NEEDLES) {
        PyErr_Format(PyExc_ValueError, "%s: expected a tuple of at most %d non-empty str", what, TK_BATCH_MAX_NEEDLES);
        return -1;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(tuple); k++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, k);
        Py_ssize_t len;
        const char *utf8 = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &len) : NULL;
        if (!utf8 || len == 0) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "%s[%zd]: expected a non-empty str", what, k);
            return -1;
        }
        needles->strings[needles->n] = (const uint8_t *)utf8;
        needles->lens[needles->n++] = (size_t)len;
    }
    return 0;
}

/* count_unless(text, strings) / encode_unless(text, strings): count(text) / encode(text), or None when one of
 * the strings (a tuple of at most TK_BATCH_MAX_NEEDLES non-empty str) occurs in the text, or the text is no
 * str or has no UTF-8 (a lone surrogate). Encoding.count / encode under the default policy, in one call:
 * the special tokens' prefixes looked for in the UTF-8 the core reads next (which the search brings into
 * the core's cache), where a Python pre-check and three Python calls cost ~5 % of a count of a few KB of
 * text not seen before (docs/decisions.md, "The default policy's pre-check in the core's call"). None
 * sends the caller to its general path, which gives the text's exact answer or error. */
static PyObject *run_text_unless(BpeCore *self, PyObject *const *args, Py_ssize_t nargs, int output) {
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "expected 2 arguments (text, strings), got %zd", nargs);
    if (require_pattern(self) < 0) return NULL;
    tk_batch_needles needles = {{0}, {0}, 0};
    if (needles_of(args[1], "strings", &needles) < 0) return NULL;
    if (!PyUnicode_Check(args[0])) Py_RETURN_NONE;
    const char *text;
    Py_ssize_t len;
    char *owned;
    int status = tk_str_utf8(args[0], &text, &len, &owned); /* 1: a lone surrogate */
    if (status < 0) return NULL;
    if (status == 1) Py_RETURN_NONE;
    PyObject *result;
    if (tk_utf8_contains_any((const uint8_t *)text, (size_t)len, needles.strings, needles.lens, needles.n)) {
        result = Py_None;
        Py_INCREF(result);
    } else {
        result = run_utf8(self, text, len, output);
    }
    free(owned);
    return result;
}

static PyObject *BpeCore_encode(BpeCore *self, PyObject *arg) { return run_text(self, arg, AS_LIST); }
static PyObject *BpeCore_count(BpeCore *self, PyObject *arg) { return run_text(self, arg, AS_COUNT); }
static PyObject *BpeCore_encode_buffer(BpeCore *self, PyObject *arg) { return run_text(self, arg, AS_BUFFER); }
static PyObject *BpeCore_count_unless(BpeCore *self, PyObject *const *args, Py_ssize_t nargs) {
    return run_text_unless(self, args, nargs, AS_COUNT);
}
static PyObject *BpeCore_encode_unless(BpeCore *self, PyObject *const *args, Py_ssize_t nargs) {
    return run_text_unless(self, args, nargs, AS_LIST);
}

static PyObject *BpeCore_split(BpeCore *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) return PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(arg)->tp_name);
    if (require_pattern(self) < 0) return NULL;
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!text) return NULL;
    return PyObject_CallMethod(self->splitter, "split", "O", arg);
}

static PyObject *run_pieces(BpeCore *self, PyObject *arg, int counting) {
    if (require_ready(self) < 0) return NULL;
    PyObject *seq = PySequence_Fast(arg, "expected a sequence of str pieces");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Sink sink = {0};
    sink.counting = counting;
    PyObject *result = NULL;
    /* Convert every piece first: nothing below may run Python code while ids are being written. */
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "pieces[%zd]: expected str, got %.100s", i, Py_TYPE(items[i])->tp_name);
            goto done;
        }
        if (!PyUnicode_AsUTF8AndSize(items[i], NULL)) goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        const char *piece = PyUnicode_AsUTF8AndSize(items[i], &len);
        if (len && emit_piece(self, &sink, (const uint8_t *)piece, (size_t)len, 0, (size_t)len) < 0) goto done;
    }
    result = counting ? PyLong_FromSize_t(sink.count) : ids_to_list(self, &sink);
done:
    free(sink.ids);
    Py_DECREF(seq);
    return result;
}

static PyObject *BpeCore_encode_pieces(BpeCore *self, PyObject *arg) { return run_pieces(self, arg, 0); }
static PyObject *BpeCore_count_pieces(BpeCore *self, PyObject *arg) { return run_pieces(self, arg, 1); }

static PyObject *bytes_call(BpeCore *self, PyObject *arg, int shortcut) {
    if (require_ready(self) < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Sink sink = {0};
    PyObject *result = NULL;
    const uint8_t *piece = view.buf;
    size_t len = (size_t)view.len;
    if (len == 0) {
        result = PyList_New(0);
    } else if (shortcut) {
        if (emit_piece(self, &sink, piece, len, 0, len) == 0) result = ids_to_list(self, &sink);
    } else if (sink_reserve(&sink, len) == 0) {
        ptrdiff_t n = merge_piece(self, piece, len, sink.ids);
        if (n < 0) {
            PyErr_NoMemory();
        } else {
            sink.len = (size_t)n;
            result = ids_to_list(self, &sink);
        }
    }
    free(sink.ids);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *BpeCore_encode_piece(BpeCore *self, PyObject *arg) { return bytes_call(self, arg, 1); }
static PyObject *BpeCore_merge(BpeCore *self, PyObject *arg) { return bytes_call(self, arg, 0); }

/* The list of ids of a finished item into result[i] (its ids array freed); -1 with an exception set. */
static int batch_item_list(BpeCore *self, tk_batch_item *item, PyObject *result, Py_ssize_t i) {
    PyObject *list = tk_ids_to_list(item->ids, item->n_ids, self->rank_objects, self->n_rank_objects);
    if (!list) return -1;
    free(item->ids);
    item->ids = NULL;
    PyList_SET_ITEM(result, i, list);
    return 0;
}

/* The lists of the finished items items[waiting[0..n)] into result (the GIL held); -1 with the exception set. */
static int batch_waiting_lists(BpeCore *self, tk_batch_item *items, const size_t *waiting, size_t n, PyObject *result) {
    for (size_t k = 0; k < n; k++)
        if (items[waiting[k]].status == TK_BATCH_OK &&
            batch_item_list(self, &items[waiting[k]], result, (Py_ssize_t)waiting[k]) < 0)
            return -1;
    return 0;
}

/* Between its own items the calling thread turns finished items into lists once this many ids wait: taking
 * the GIL back costs about a microsecond, so a batch of tiny texts is not charged one per text. */
#define TK_BATCH_LIST_IDS 2048

/* encode_batch(texts, num_threads, count=False): encode (or count) every text, the GIL released for all of the
 * native work. The texts' UTF-8 is taken with the GIL held (a str's is immutable, and `seq` keeps them
 * alive), the workers (batch_encode.c) split and merge with their own piece caches, and the lists are built
 * with the GIL by this thread between the items it encodes itself, while the other workers go on (building
 * them after the batch left ~20% of the work to one core). Errors name the item: "texts[3]: ...". Memory:
 * ids of the whole batch, plus up to one worker cache per thread ever running at once (each a quarter of the
 * shared cache's bound). With flag=(str, ...) (at most TK_BATCH_MAX_NEEDLES, none empty) the workers also
 * look for those strings in each text, and the call returns (results, [indices of the texts that contain
 * one], ascending). */
static PyObject *BpeCore_encode_batch(BpeCore *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"texts", "num_threads", "count", "flag", NULL};
    PyObject *texts, *flag = Py_None;
    Py_ssize_t num_threads = 1;
    int counting = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "On|pO", keywords, &texts, &num_threads, &counting, &flag))
        return NULL;
    if (require_pattern(self) < 0) return NULL;
    tk_batch_needles needles = {{0}, {0}, 0};
    if (flag != Py_None && needles_of(flag, "flag", &needles) < 0) return NULL;
    /* A tuple of our own: a list's items could be replaced (and freed) by another thread while the GIL is out. */
    PyObject *seq = PySequence_Tuple(texts);
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyObject **objects = &PyTuple_GET_ITEM(seq, 0);
    PyObject *result = NULL;
    tk_batch_item *items = PyMem_Calloc(n ? (size_t)n : 1, sizeof *items);
    tk_batch_buffer buffers[TK_BATCH_MAX_THREADS] = {{0}};
    tk_piece_cache *caches[TK_BATCH_MAX_THREADS] = {0};
    size_t threads = 0, total = 0, small = 0;
    if (!items) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(objects[i])) {
            PyErr_Format(PyExc_TypeError, "texts[%zd]: expected str, got %.100s", i, Py_TYPE(objects[i])->tp_name);
            goto done;
        }
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(objects[i], &len); /* UnicodeEncodeError: a lone surrogate */
        if (!text) goto done;
        items[i].text = (const uint8_t *)text;
        items[i].len = (size_t)len;
        total += (size_t)len;
        if ((size_t)len < TK_UNLOCKED_TEXT_BYTES) small += (size_t)len;
    }
    build_short_table(self, small); /* may release the GIL: the texts are the tuple's, their UTF-8 cached */
    refill_full_short_table(self, total);
    result = PyList_New(n); /* slots NULL until filled */
    if (!result) goto done;
    threads = tk_batch_threads(num_threads > 0 ? (size_t)num_threads : 1, (size_t)n, total);
    for (size_t w = 0; w < threads; w++) caches[w] = tk_cache_pool_take(&self->worker_caches);
    tk_batch_model model = batch_model(self);
    tk_batch_job job;
    int started, failed = 0, list_failed = 0;
    /* Finished items waiting for their lists (indices), filled from the job's queue by this thread alone. */
    size_t *waiting = counting ? NULL : PyMem_Malloc((n ? (size_t)n : 1) * sizeof *waiting);
    if (!counting && !waiting) {
        Py_CLEAR(result);
        PyErr_NoMemory();
        goto done;
    }
    size_t user = model.shorts != NULL; /* as emit_unlocked_text's */
    __atomic_fetch_add(&self->unlocked_users, user, __ATOMIC_RELEASE);
    Py_BEGIN_ALLOW_THREADS
    started = tk_batch_start(&job, &model, &needles, items, (size_t)n, threads, counting, caches, buffers) == 0;
    if (started) {
        size_t n_waiting = 0, waiting_ids = 0;
        ptrdiff_t i;
        while (tk_batch_step(&job)) {
            if (counting) continue;
            while ((i = tk_batch_next_finished(&job)) >= 0) {
                waiting[n_waiting++] = (size_t)i;
                waiting_ids += items[i].n_ids + 1;
            }
            if (waiting_ids < TK_BATCH_LIST_IDS) continue;
            Py_BLOCK_THREADS
            list_failed = batch_waiting_lists(self, items, waiting, n_waiting, result) < 0;
            Py_UNBLOCK_THREADS
            n_waiting = waiting_ids = 0;
            if (list_failed) {
                tk_batch_stop(&job);
                break;
            }
        }
        /* No item is left to take: the lists of the items finished so far are made now, while the other
         * workers end their last ones (after the join, they were a serial tail of every batch). */
        while (!counting && !list_failed) {
            while ((i = tk_batch_next_finished(&job)) >= 0) waiting[n_waiting++] = (size_t)i;
            if (!n_waiting) break;
            Py_BLOCK_THREADS
            list_failed = batch_waiting_lists(self, items, waiting, n_waiting, result) < 0;
            Py_UNBLOCK_THREADS
            n_waiting = 0;
        }
        failed = tk_batch_finish(&job);
    }
    Py_END_ALLOW_THREADS
    __atomic_fetch_sub(&self->unlocked_users, user, __ATOMIC_RELEASE); /* tk_batch_finish: no worker uses it now */
    PyMem_Free(waiting);
    if (!started || list_failed || failed) Py_CLEAR(result);
    if (!started) {
        PyErr_NoMemory();
        goto done;
    }
    if (list_failed) goto done; /* the exception of the list that could not be made */
    if (failed) {
        for (Py_ssize_t i = 0; i < n; i++) {
            if (items[i].status == TK_BATCH_NO_MEMORY) {
                PyErr_Format(PyExc_MemoryError, "texts[%zd]: out of memory while encoding it", i);
                goto done;
            }
            if (items[i].status == TK_BATCH_PIECE_TOO_LONG) {
                PyErr_Format(PyExc_ValueError, "texts[%zd]: a single piece of 4 GiB or more cannot be encoded", i);
                goto done;
            }
        }
        PyErr_NoMemory(); /* not reached: a failed batch has an item that failed */
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyList_GET_ITEM(result, i)) continue; /* made while the batch ran */
        PyObject *count = counting ? PyLong_FromSize_t(items[i].n_ids) : NULL;
        if (counting ? count == NULL : batch_item_list(self, &items[i], result, i) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        if (counting) PyList_SET_ITEM(result, i, count);
    }
    if (flag != Py_None) { /* (results, flagged indices) */
        PyObject *flagged = PyList_New(0);
        for (Py_ssize_t i = 0; flagged && i < n; i++) {
            if (!items[i].flagged) continue;
            PyObject *index = PyLong_FromSsize_t(i);
            if (!index || PyList_Append(flagged, index) < 0) Py_CLEAR(flagged);
            Py_XDECREF(index);
        }
        PyObject *pair = flagged ? PyTuple_Pack(2, result, flagged) : NULL;
        Py_XDECREF(flagged);
        Py_SETREF(result, pair);
    }
done:
    if (items)
        for (Py_ssize_t i = 0; i < n; i++) free(items[i].ids); /* the items whose lists were not made */
    for (size_t w = 0; w < threads; w++) {
        tk_batch_buffer_free(&buffers[w]);
        give_worker_cache(self, caches[w]); /* the shared counters report the batch's cache work too */
    }
    PyMem_Free(items);
    Py_DECREF(seq);
    return result;
}

static PyObject *BpeCore_cache_stats(BpeCore *self, PyObject *Py_UNUSED(ignored)) {
    if (require_ready(self) < 0) return NULL;
    tk_piece_cache *cache = &self->cache;
    return Py_BuildValue("(KKnn)", (unsigned long long)cache->hits, (unsigned long long)cache->misses,
                         (Py_ssize_t)(cache->generations[0].n_entries + cache->generations[1].n_entries),
                         (Py_ssize_t)(2 * cache->capacity));
}

static PyObject *BpeCore_short_table_stats(BpeCore *self, PyObject *Py_UNUSED(ignored)) {
    if (require_ready(self) < 0) return NULL;
    static const char *const states[] = {"waiting", "building", "ready", "none"};
    const tk_short_table *t = &self->shorts;
    size_t added = __atomic_load_n(&t->n_added, __ATOMIC_RELAXED); /* a batch's workers may be adding */
    size_t bytes = t->entries ? (t->mask + 1) * sizeof *t->entries + t->more_cap * sizeof *t->more +
                                    t->n_built * sizeof *t->built
                              : 0;
    return Py_BuildValue("{s:s,s:n,s:n,s:n,s:O,s:n,s:n,s:n}", "state", states[self->shorts_state], "tokens",
                         (Py_ssize_t)t->n_tokens, "added", (Py_ssize_t)added, "max_added", (Py_ssize_t)t->max_added,
                         "all_tokens", t->all_tokens ? Py_True : Py_False, "bytes", (Py_ssize_t)bytes, "refills",
                         (Py_ssize_t)t->refills, "grouped", (Py_ssize_t)self->grouped);
}

/* For tests: where each piece (bytes of 1-TK_SHORT_MAX_LEN) sits in the short table, as probes past its home
 * slot (0: in it), -1 when the table does not hold it. */
static PyObject *BpeCore_short_table_places(BpeCore *self, PyObject *pieces) {
    if (require_ready(self) < 0) return NULL;
    PyObject *seq = PySequence_Fast(pieces, "short_table_places() takes a sequence of bytes");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = PyList_New(n);
    for (Py_ssize_t i = 0; result && i < n; i++) {
        PyObject *piece = PySequence_Fast_GET_ITEM(seq, i);
        char *bytes;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(piece, &bytes, &len) < 0 || len < 1 || len > TK_SHORT_MAX_LEN) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a piece of 1-15 bytes");
            Py_CLEAR(result);
            break;
        }
        long place = -1;
        const tk_short_table *t = &self->shorts;
        if (t->entries) {
            tk_short_key key = tk_short_key_of((const uint8_t *)bytes, (size_t)len, (size_t)len);
            uint64_t hash = tk_short_hash(t, &key);
            const tk_short_entry *e = tk_short_find(t, &key, hash);
            if (e) place = (long)(((uint64_t)(e - t->entries) - tk_short_home(t, hash)) & t->mask);
        }
        PyObject *value = PyLong_FromLong(place);
        if (!value) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, value);
    }
    Py_DECREF(seq);
    return result;
}

/* Text given as parts, walked by native/text_parts.c with this core's text path. */
static int parts_text(void *core, void *sink, const uint8_t *text, size_t len) {
    return emit_text((BpeCore *)core, (Sink *)sink, text, len);
}

static int parts_special(void *sink, uint32_t id) {
    Sink *ids = sink;
    if (ids->counting) {
        ids->count++;
        return 0;
    }
    if (sink_reserve(ids, 1) < 0) return -1;
    ids->ids[ids->len++] = id;
    return 0;
}

static PyObject *run_parts(BpeCore *self, PyObject *args, int counting) {
    PyObject *parts, *ends, *special_ids = NULL;
    if (!PyArg_ParseTuple(args, counting ? "OO" : "OOO!", &parts, &ends, &PyDict_Type, &special_ids)) return NULL;
    if (require_pattern(self) < 0) return NULL;
    Sink sink = {0};
    sink.counting = counting;
    tk_parts_ops ops = {self, &sink, counting ? &sink.count : &sink.len, parts_text, parts_special};
    PyObject *result = tk_walk_parts(&ops, parts, ends, special_ids);
    if (result && !counting) {
        PyObject *ids = tk_ids_to_list(sink.ids, sink.len, self->rank_objects, self->n_rank_objects);
        PyObject *pair = ids ? PyTuple_Pack(2, ids, result) : NULL;
        Py_XDECREF(ids);
        Py_SETREF(result, pair);
    }
    free(sink.ids);
    return result;
}

static PyObject *BpeCore_count_parts(BpeCore *self, PyObject *args) { return run_parts(self, args, 1); }

static PyObject *BpeCore_count_messages(BpeCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (require_pattern(self) < 0) return NULL;
    Sink sink = {0};
    sink.counting = 1;
    tk_parts_ops ops = {self, &sink, &sink.count, parts_text, parts_special};
    PyObject *result = tk_count_messages_call(&ops, args, nargs);
    free(sink.ids); /* a count's scratch: merges write their ids there */
    return result;
}

static PyObject *BpeCore_encode_parts(BpeCore *self, PyObject *args) { return run_parts(self, args, 0); }

/* Back to the state BpeCore.__new__ leaves: nothing allocated, not ready (after a failed __init__ too). */
static void release_tables(BpeCore *self) {
    self->ready = 0;
    tk_rank_table_free(&self->table);
    tk_char_atoms_free(&self->rank_atoms);
    tk_piece_cache_free(&self->cache);
    tk_short_table_free(&self->shorts);
    self->shorts_state = SHORTS_WAITING;
    self->shorts_bytes_seen = 0;
    tk_cache_pool_free(&self->worker_caches);
    tk_pair_table_free(&self->pairs);
    tk_merge_index_free(&self->merge_index);
    self->pair_rule = 0;
    self->whole_piece_shortcut = 0;
    PyMem_Free(self->merges_to_itself);
    self->merges_to_itself = NULL;
    Py_CLEAR(self->splitter);
    self->split = NULL;
    if (self->rank_objects) {
        for (size_t i = 0; i < self->n_rank_objects; i++) Py_XDECREF(self->rank_objects[i]);
        PyMem_Free(self->rank_objects);
    }
    self->rank_objects = NULL;
    self->n_rank_objects = 0;
}

static void BpeCore_dealloc(BpeCore *self) {
    release_tables(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The vocabulary's tokens as init_tables lists them: held references to the bytes (the dict it came from may
 * change once the GIL has been released), and their ranks, checked distinct and below n_rank_objects. */
typedef struct {
    PyObject **keys;
    uint32_t *ranks;
    size_t n;
} listed_tokens;

/* The listed tokens' bytes by id (id -> bytes, NULL for an id no token has, or one of more than `max_len` bytes)
 * and lengths, n_rank_objects of each, pointing into the held bytes objects; 0, or -1 with MemoryError set. */
static int token_bytes_by_id(const BpeCore *self, const listed_tokens *tokens, size_t max_len,
                             const uint8_t ***token_bytes, uint32_t **token_len) {
    *token_bytes = PyMem_Calloc(self->n_rank_objects, sizeof **token_bytes);
    *token_len = PyMem_Calloc(self->n_rank_objects, sizeof **token_len);
    if (!*token_bytes || !*token_len) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < tokens->n; i++) {
        size_t len = (size_t)PyBytes_GET_SIZE(tokens->keys[i]);
        if (len > max_len) continue;
        (*token_bytes)[tokens->ranks[i]] = (const uint8_t *)PyBytes_AS_STRING(tokens->keys[i]);
        (*token_len)[tokens->ranks[i]] = (uint32_t)len;
    }
    return 0;
}

/* tiktoken's rule: the characters its merges start from whole (char_atoms.c), built without the GIL (the bytes
 * objects are held and immutable) and handed to the table; 0, or -1 with MemoryError set. */
static int build_rank_atoms(BpeCore *self, const listed_tokens *tokens) {
    const uint8_t **token_bytes = NULL;
    uint32_t *token_len = NULL;
    int status = token_bytes_by_id(self, tokens, UINT32_MAX, &token_bytes, &token_len);
    if (status == 0) {
        Py_BEGIN_ALLOW_THREADS
        status = tk_char_atoms_build(&self->rank_atoms, &self->table, NULL, 0, token_bytes, token_len,
                                     self->n_rank_objects);
        Py_END_ALLOW_THREADS
        if (status < 0) PyErr_NoMemory();
        self->table.atoms = self->rank_atoms.block_of ? &self->rank_atoms : NULL;
    }
    PyMem_Free(token_bytes);
    PyMem_Free(token_len);
    return status;
}

/* merge_index over the merge list when every merge joins bytes and every byte has a token: 0 built, 1 not
 * (then the pair table), -1 with an exception set. */
static int build_merge_index(BpeCore *self, const listed_tokens *tokens, const uint32_t *triples, size_t n) {
    for (int b = 0; b < 256; b++)
        if (self->table.byte_rank[b] == TK_NO_RANK) return 1; /* the pair rule drops it; the index cannot */
    const uint8_t **token_bytes = NULL;
    uint32_t *token_len = NULL;
    /* a merge yielding a token of more than UINT16_MAX bytes leaves the index unbuilt */
    int status = token_bytes_by_id(self, tokens, UINT16_MAX, &token_bytes, &token_len);
    if (status < 0) goto done;
    status = tk_merge_index_build(&self->merge_index, &self->table, triples, n, token_bytes, token_len,
                                  self->n_rank_objects);
    if (status == 0 && groups_by_list(self)) { /* the lists' group merge starts from characters where it may */
        const tk_list_rule list = {self->merge_index.left_len_by_id, self->merge_index.all_splits};
        status = tk_char_atoms_build(&self->merge_index.atoms, &self->table, &list, self->merge_index.n_ids, token_bytes,
                                     token_len, self->n_rank_objects);
    }
    if (status < 0) PyErr_NoMemory();
done:
    PyMem_Free(token_bytes);
    PyMem_Free(token_len);
    return status;
}

/* The merge list: a buffer of native uint32 (left id, right id, merged id) triples in priority order. Every
 * merged id must be a token of the vocabulary (the caller drops merges whose parts are no tokens).
 * `use_index`: look pairs up through the vocabulary where the list allows (merge_index.c); else, and when it
 * does not, in the pair table. */
static int add_merges(BpeCore *self, PyObject *merges, const listed_tokens *tokens, int use_index) {
    Py_buffer view;
    if (PyObject_GetBuffer(merges, &view, PyBUF_FORMAT) < 0) return -1;
    int status = -1;
    const char *format = view.format ? view.format : "B";
    if ((strcmp(format, "I") != 0 && strcmp(format, "=I") != 0) || view.itemsize != 4 || view.len % 12 != 0) {
        PyErr_SetString(PyExc_TypeError, "merges must be an array('I') of (left, right, merged) id triples");
        goto done;
    }
    size_t n = (size_t)view.len / 12;
    if (n >= TK_NO_RANK) {
        PyErr_SetString(PyExc_ValueError, "too many merges (at most 2**32 - 2)");
        goto done;
    }
    const uint32_t *triples = view.buf;
    for (size_t i = 0; i < n; i++) {
        uint32_t merged = triples[3 * i + 2];
        if (merged >= self->n_rank_objects || !self->rank_objects[merged]) {
            PyErr_Format(PyExc_ValueError, "merge %zu yields id %u, which is not a token of the vocabulary", i, merged);
            goto done;
        }
    }
    if (use_index) {
        int built = build_merge_index(self, tokens, triples, n);
        if (built < 0) goto done;
        if (built == 0) {
            status = 0;
            goto done;
        }
    }
    if (tk_pair_table_init(&self->pairs, n, self->seed) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        tk_pair_table_add(&self->pairs, triples[3 * i], triples[3 * i + 1], (uint32_t)i, triples[3 * i + 2]);
    status = 0;
done:
    PyBuffer_Release(&view);
    return status;
}

/* merges_to_itself for every listed token (after the merges are in). Costs one merge per token at load
 * (0.045 s for Qwen 3's 151,643 tokens) and saves a piece-cache lookup per piece that is a token: on English
 * text most pieces are, and Qwen 3 encoded it 1.3x faster with it (40 -> 52 MB/s, cl100k_base 79). */
static int find_tokens_merging_to_themselves(BpeCore *self, const listed_tokens *tokens) {
    self->merges_to_itself = PyMem_Calloc(self->n_rank_objects, 1);
    uint32_t *out = NULL;
    size_t out_capacity = 0;
    if (!self->merges_to_itself) goto out_of_memory;
    for (size_t i = 0; i < tokens->n; i++) {
        PyObject *key = tokens->keys[i];
        size_t len = (size_t)PyBytes_GET_SIZE(key);
        if (len > out_capacity) {
            uint32_t *grown = PyMem_Realloc(out, len * sizeof *out);
            if (!grown) goto out_of_memory;
            out = grown;
            out_capacity = len;
        }
        uint32_t rank = tokens->ranks[i];
        ptrdiff_t n = merge_piece(self, (const uint8_t *)PyBytes_AS_STRING(key), len, out);
        if (n < 0) goto out_of_memory;
        self->merges_to_itself[rank] = n == 1 && out[0] == rank;
    }
    PyMem_Free(out);
    return 0;
out_of_memory:
    PyMem_Free(out);
    PyErr_NoMemory();
    return -1;
}

static int init_tables(BpeCore *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"ranks", "pattern", "cache_capacity", "max_cached_piece_bytes", "hash_seed", "merges",
                               "ignore_merges", "merge_index", "short_table_after", "short_table_refill_after",
                               NULL};
    PyObject *ranks, *pattern_name, *merges = Py_None;
    int ignore_merges = 1, use_merge_index = 1;
    Py_ssize_t cache_capacity = 65536, max_key_len = 128, short_table_after = TK_SHORT_TABLE_AFTER_BYTES,
               short_table_refill_after = TK_SHORT_REFILL_AFTER_BYTES;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O|$nnKOppnn", keywords, &PyDict_Type, &ranks, &pattern_name,
                                     &cache_capacity, &max_key_len, &seed, &merges, &ignore_merges, &use_merge_index,
                                     &short_table_after, &short_table_refill_after))
        return -1;
    if (short_table_after < -1) {
        PyErr_SetString(PyExc_ValueError, "short_table_after must be -1 (never), 0 (at the first text) or more bytes");
        return -1;
    }
    if (short_table_refill_after < 0) {
        PyErr_SetString(PyExc_ValueError, "short_table_refill_after must be 0 (at the first text that finds it full) or more bytes");
        return -1;
    }
    self->shorts_refill_after = (size_t)short_table_refill_after;
    self->shorts_state = short_table_after < 0 ? SHORTS_NONE : SHORTS_WAITING;
    self->shorts_after = short_table_after < 0 ? 0 : (size_t)short_table_after;
    self->pair_rule = merges != Py_None;
    self->whole_piece_shortcut = !self->pair_rule || ignore_merges;
    /* The cache's arena offsets are 32-bit: at 64 bytes per entry the capacity must stay below 2**26. */
    if (cache_capacity < 0 || cache_capacity > TK_MAX_CACHE_CAPACITY || max_key_len < 0 || max_key_len > 1024) {
        PyErr_Format(PyExc_ValueError, "cache_capacity must be in 0..%d and max_cached_piece_bytes in 0..1024",
                     TK_MAX_CACHE_CAPACITY);
        return -1;
    }
    Py_XSETREF(self->splitter, tk_piece_splitter_coerce(pattern_name));
    if (!self->splitter) return -1;
    self->split = tk_piece_splitter_get(self->splitter);
    self->seed = seed;
    /* One pass over the dict, with the GIL: each entry checked and its token listed with its rank and its
     * int, both held. From there on only the list is read, never the dict: another thread may change it once
     * the GIL is released below (Encoding passes a model's vocabulary as given). The rank table is then
     * filled without the GIL: its inserts (random writes over a 4 MiB table) were ~20 ms of o200k_base's
     * load, which a server worker reloading a model does while it serves, every other call of the worker
     * waiting. The pass is one walk over the dict's entries, each key and int touched once. */
    size_t n_tokens = (size_t)PyDict_GET_SIZE(ranks);
    listed_tokens tokens = {PyMem_Malloc((n_tokens ? n_tokens : 1) * sizeof *tokens.keys),
                            PyMem_Malloc((n_tokens ? n_tokens : 1) * sizeof *tokens.ranks), 0};
    PyObject **values = PyMem_Calloc(n_tokens ? n_tokens : 1, sizeof *values); /* held; moved to rank_objects */
    int failed = !tokens.keys || !tokens.ranks || !values;
    if (failed) PyErr_NoMemory();
    size_t total_bytes = 0;
    unsigned long long max_rank = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (!failed && tokens.n < n_tokens && PyDict_Next(ranks, &pos, &key, &value)) {
        if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) == 0 || !PyLong_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "ranks must map non-empty bytes to int");
            failed = 1;
            break;
        }
        unsigned long long rank = PyLong_AsUnsignedLongLong(value);
        if (PyErr_Occurred() || rank >= TK_NO_RANK) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "ranks must be ints in 0..2**32-2");
            failed = 1;
            break;
        }
        if (rank > max_rank) max_rank = rank;
        total_bytes += (size_t)PyBytes_GET_SIZE(key);
        Py_INCREF(key);
        Py_INCREF(value);
        tokens.keys[tokens.n] = key;
        values[tokens.n] = value;
        tokens.ranks[tokens.n++] = (uint32_t)rank;
    }
    /* Tables indexed by rank are allocated up to the largest rank: refuse ids so sparse that a crafted
     * model file would make them huge (real vocabularies number their tokens 0..n-1, give or take). */
    if (!failed && max_rank >= 4 * (unsigned long long)tokens.n + 65536) {
        PyErr_Format(PyExc_ValueError, "ranks are too sparse: the largest is %llu for %zu tokens (expected ids "
                     "below %llu)", max_rank, tokens.n, 4 * (unsigned long long)tokens.n + 65536);
        failed = 1;
    }
    if (!failed && tk_rank_table_init(&self->table, tokens.n, total_bytes, seed) < 0) {
        PyErr_NoMemory();
        failed = 1;
    }
    if (!failed) {
        self->n_rank_objects = (size_t)max_rank + 1;
        self->rank_objects = PyMem_Calloc(self->n_rank_objects, sizeof *self->rank_objects);
        if (!self->rank_objects) {
            PyErr_NoMemory();
            failed = 1;
        }
    }
    for (size_t i = 0; i < tokens.n && !failed; i++) {
        uint32_t rank = tokens.ranks[i];
        /* Checked here, not only by the Python caller: the table keeps one byte offset per rank for tokens
         * longer than 8 bytes, so a shared rank would make one token's lookup compare the other's bytes. */
        if (self->rank_objects[rank]) {
            PyErr_Format(PyExc_ValueError, "ranks must be distinct: rank %u is given to more than one token", rank);
            failed = 1;
            break;
        }
        self->rank_objects[rank] = values[i]; /* the reference moves */
        values[i] = NULL;
    }
    for (size_t i = 0; values && i < tokens.n; i++) Py_XDECREF(values[i]); /* the ints a failure left unmoved */
    PyMem_Free(values);
    /* tiktoken's rule cuts pieces where no token spans (bpe_merge.c) */
    int cuts = !failed && !self->pair_rule;
    if (cuts && tk_rank_table_init_cuts(&self->table, (size_t)max_rank + 1) < 0) {
        PyErr_NoMemory();
        failed = 1;
    }
    if (!failed) {
        Py_BEGIN_ALLOW_THREADS
        for (size_t i = 0; i < tokens.n; i++) {
            const uint8_t *token = (const uint8_t *)PyBytes_AS_STRING(tokens.keys[i]);
            size_t len = (size_t)PyBytes_GET_SIZE(tokens.keys[i]);
            tk_rank_table_add(&self->table, token, len, tokens.ranks[i]);
            if (cuts && tk_has_inner_lead(token, len)) tk_rank_table_add_cuts(&self->table, token, len);
        }
        Py_END_ALLOW_THREADS
        if (tk_rank_table_finish(&self->table) < 0) {
            PyErr_NoMemory();
            failed = 1;
        }
    }
    if (!failed && self->pair_rule) failed = add_merges(self, merges, &tokens, use_merge_index) < 0;
    if (!failed && !self->pair_rule) failed = build_rank_atoms(self, &tokens) < 0;
    if (!failed && !self->whole_piece_shortcut) failed = find_tokens_merging_to_themselves(self, &tokens) < 0;
    for (size_t i = 0; i < tokens.n; i++) Py_DECREF(tokens.keys[i]);
    PyMem_Free(tokens.keys);
    PyMem_Free(tokens.ranks);
    if (failed) return -1;
    for (int b = 0; b < 256 && !self->pair_rule; b++) { /* the pair rule drops a byte without an id */
        if (self->table.byte_rank[b] == TK_NO_RANK) {
            PyErr_Format(PyExc_ValueError, "ranks lacks the single byte 0x%02x: byte-level BPE needs all 256", b);
            return -1;
        }
    }
    if (tk_piece_cache_init(&self->cache, (size_t)cache_capacity, (size_t)max_key_len, seed) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    /* A quarter of the shared cache each: a batch's unseen text fills far fewer entries than a server's
     * lifetime of traffic, and each worker of a batch keeps one (memory bound: see encode_batch). */
    tk_cache_pool_init(&self->worker_caches, (size_t)cache_capacity / 4, (size_t)max_key_len, seed);
    return 0;
}

/* A failed init releases whatever it built, so the core is as new: methods refuse, __init__ may be retried. */
static int BpeCore_init(BpeCore *self, PyObject *args, PyObject *kwargs) {
    if (self->ready) {
        PyErr_SetString(PyExc_TypeError, "BpeCore is already initialised");
        return -1;
    }
    /* init_tables releases the GIL while it fills the rank table: a second __init__ of the same core from
     * another thread meanwhile would free that table under it. */
    if (self->initialising) {
        PyErr_SetString(PyExc_TypeError, "BpeCore is being initialised by another thread");
        return -1;
    }
    self->initialising = 1;
    release_tables(self);
    int status = init_tables(self, args, kwargs);
    if (status < 0) release_tables(self);
    self->initialising = 0;
    if (status < 0) return -1;
    self->ready = 1;
    return 0;
}

static PyMethodDef BpeCore_methods[] = {
    {"encode", (PyCFunction)BpeCore_encode, METH_O, "encode(text) -> ids, with the core's pattern"},
    {"count", (PyCFunction)BpeCore_count, METH_O, "count(text) -> number of ids, with the core's pattern"},
    {"count_unless", (PyCFunction)(void (*)(void))BpeCore_count_unless, METH_FASTCALL,
     "count_unless(text, strings) -> count(text), or None when one of the strings (a tuple of str) occurs in text"},
    {"encode_unless", (PyCFunction)(void (*)(void))BpeCore_encode_unless, METH_FASTCALL,
     "encode_unless(text, strings) -> encode(text), or None when one of the strings (a tuple of str) occurs in text"},
    {"encode_buffer", (PyCFunction)BpeCore_encode_buffer, METH_O, "encode_buffer(text) -> bytes of native uint32 ids"},
    {"split", (PyCFunction)BpeCore_split, METH_O, "split(text) -> pieces, with the core's pattern"},
    {"encode_pieces", (PyCFunction)BpeCore_encode_pieces, METH_O, "encode_pieces(pieces) -> ids"},
    {"count_pieces", (PyCFunction)BpeCore_count_pieces, METH_O, "count_pieces(pieces) -> number of ids"},
    {"encode_piece", (PyCFunction)BpeCore_encode_piece, METH_O, "encode_piece(bytes) -> ids (token shortcut, then BPE)"},
    {"merge", (PyCFunction)BpeCore_merge, METH_O, "merge(bytes) -> ids by the merge rule alone"},
    {"encode_batch", (PyCFunction)(void (*)(void))BpeCore_encode_batch, METH_VARARGS | METH_KEYWORDS,
     "encode_batch(texts, num_threads, count=False, flag=None) -> ids (or counts) of each text, without the GIL; "
     "with flag=(str, ...): (ids or counts, indices of the texts containing one of them)"},
    {"cache_stats", (PyCFunction)BpeCore_cache_stats, METH_NOARGS, "cache_stats() -> (hits, misses, size, capacity)"},
    {"short_table_stats", (PyCFunction)BpeCore_short_table_stats, METH_NOARGS,
     "short_table_stats() -> {state, tokens, added, max_added, all_tokens, bytes, refills, grouped} (short_table.h; "
     "grouped: the table's misses merged side by side, bpe_merge_group.c)"},
    {"short_table_places", (PyCFunction)BpeCore_short_table_places, METH_O,
     "short_table_places(pieces) -> each piece's probes past its home slot in the short table (0: home; -1: not held)"},
    {"count_parts", (PyCFunction)BpeCore_count_parts, METH_VARARGS, "count_parts(parts, ends) -> tokens per run (text_parts.h)"},
    {"count_messages", (PyCFunction)(void (*)(void))BpeCore_count_messages, METH_FASTCALL,
     "count_messages(roles, first_roles, forbidden, strip, overhead, normalized, system_prompt, messages, per_message[, shape]) -> None or (total, counts) "
     "(message_counts.h)"},
    {"encode_parts", (PyCFunction)BpeCore_encode_parts, METH_VARARGS,
     "encode_parts(parts, ends, special_ids) -> (ids, tokens per run) (text_parts.h)"},
    {NULL, NULL, 0, NULL},
};

static PyObject *BpeCore_merge_path(BpeCore *self, void *Py_UNUSED(closure)) {
    if (require_ready(self) < 0) return NULL;
    return PyUnicode_FromString(!self->pair_rule              ? "rank"
                                : self->merge_index.all_splits ? "pairs-all-splits"
                                : self->merge_index.left_len_by_id ? "pairs-by-id"
                                : self->merge_index.tokens     ? "pairs-by-token"
                                                               : "pairs-table");
}

/* The rank table's longest token (kept as tokens are added): what a Decode's size bound needs, with no pass
 * over the vocabulary (sorting o200k_base's tokens to find it held a worker's GIL ~70 ms). */
static PyObject *BpeCore_longest_token(BpeCore *self, void *Py_UNUSED(closure)) {
    if (require_ready(self) < 0) return NULL;
    return PyLong_FromSize_t(self->table.max_len);
}

/* How many characters the merges may start from as one part (char_atoms.c): 0 when none. */
static PyObject *BpeCore_char_atoms(BpeCore *self, void *Py_UNUSED(closure)) {
    if (require_ready(self) < 0) return NULL;
    return PyLong_FromSize_t(self->pair_rule ? self->merge_index.atoms.n_atoms : self->rank_atoms.n_atoms);
}

static PyGetSetDef BpeCore_getset[] = {
    {"char_atoms", (getter)BpeCore_char_atoms, NULL, "characters the merges may start from whole", NULL},
    {"merge_path", (getter)BpeCore_merge_path, NULL, "how the merge rule looks pairs up (see module.c)", NULL},
    {"longest_token", (getter)BpeCore_longest_token, NULL, "bytes of the longest mergeable token", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BpeCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokend.engine._native.BpeCore",
    .tp_doc = "Native pre-split + byte-level BPE + piece cache over one vocabulary (see module.c).",
    .tp_basicsize = sizeof(BpeCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)BpeCore_init,
    .tp_dealloc = (destructor)BpeCore_dealloc,
    .tp_methods = BpeCore_methods,
    .tp_getset = BpeCore_getset,
};

/* _merge_counters(): tk_merge_counters as a dict. Private, for tests: a bucket merge that falls back to the
 * heap is exact, so only this shows it (tests/engine/test_bucket_merge_fallbacks.py). */
static PyObject *merge_counters(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    tk_merge_counters counters;
    tk_merge_counters_read(&counters);
    return Py_BuildValue("{s:K,s:K,s:K,s:K}", "bucket_merges", (unsigned long long)counters.bucket_merges,
                         "bucket_fallbacks", (unsigned long long)counters.bucket_fallbacks, "run_merges",
                         (unsigned long long)counters.run_merges, "medium_merges",
                         (unsigned long long)counters.medium_merges);
}

/* _rank_marks_left(): tk_rank_marks_left. Private, for tests: a bucket merge that stopped early and left a rank
 * marked would misread that rank in a later merge (rank_marks.h). */
static PyObject *rank_marks_left(PyObject *module, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSize_t(tk_rank_marks_left());
}

static PyMethodDef native_functions[] = {
    {"_merge_counters", merge_counters, METH_NOARGS,
     "_merge_counters() -> {bucket_merges, bucket_fallbacks, run_merges, medium_merges}: huge pieces given to the "
     "bucket merge in this process, those it handed back to the heap, and pieces the run and medium merges took "
     "(private, for tests)"},
    {"_rank_marks_left", rank_marks_left, METH_NOARGS,
     "_rank_marks_left() -> entries the bucket merge left set in its kept per-rank arrays: 0 between merges "
     "(private, for tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tokend.engine._native",
    .m_doc = "tokend's native core: pre-split, byte-level BPE and piece cache in C (see service/native/).",
    .m_size = -1,
    .m_methods = native_functions,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&BpeCoreType) < 0) return NULL;
    tk_pretokenize_init();
    PyObject *module = PyModule_Create(&native_module);
    if (!module) return NULL;
    if (tk_split_types_add(module) < 0 || tk_rank_file_add(module) < 0 || tk_message_counts_add(module) < 0 ||
        tk_nfc_runs_add(module) < 0 || tk_varint_sizes_add(module) < 0 ||
        tk_length_sums_add(module) < 0 || tk_text_find_add(module) < 0 || tk_str_utf8_add(module) < 0 ||
        /* pieces a text's loop takes at a time (piece_batch.h): the tests place pieces around its edges */
        PyModule_AddIntConstant(module, "PIECE_BATCH", TK_PIECE_BATCH) < 0 ||
        /* pieces from this many bytes take the bucket merge, shorter ones past 128 the medium merge: the tests'
         * pieces lie about it */
        PyModule_AddIntConstant(module, "BUCKET_PIECE", TK_BUCKET_PIECE) < 0 ||
        /* from this many bytes the bucket merge's first round may take two passes (bpe_bucket_merge.c) */
        PyModule_AddIntConstant(module, "ROWS_PIECE", (long)TK_ROWS_PIECE) < 0 ||
        /* from this many bytes the bucket merge counts its byte pairs into two tables (bpe_bucket_merge.c) */
        PyModule_AddIntConstant(module, "TWO_COUNTERS_PIECE", (long)TK_TWO_COUNTERS_PIECE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&BpeCoreType);
    if (PyModule_AddObject(module, "BpeCore", (PyObject *)&BpeCoreType) < 0) {
        Py_DECREF(&BpeCoreType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
