/* The batch encoder: many texts encoded (or counted) by worker threads, without the GIL.
 *
 * module.c converts the texts to UTF-8 with the GIL held, hands this file plain byte ranges and releases
 * the GIL for the whole batch. Nothing here touches a Python object or the core's shared piece cache: each
 * worker reads the immutable tables (rank table, pair table, splitter), the short-piece table (which a
 * thread holding the GIL may add to meanwhile: short_table.h says how readers see whole entries only),
 * and writes only its own scratch
 * buffer, its own piece cache (checked out of the core's pool of worker caches, taken and given back with
 * the GIL held, so the pool needs no lock) and the items it took.
 *
 * Building the Python lists needs the GIL, so one thread at a time: done after the batch it was ~20% of
 * encode_ordinary_batch's work, and kept 2 threads at ~1.7x. So every finished item's ids are moved to an
 * array of its own and the item is queued; the calling thread, between the items it encodes itself, takes
 * the GIL back and turns the queued items into lists while the other workers go on encoding.
 *
 *   tk_batch_model model = {&table, NULL, NULL, NULL, 1, splitter, seed, n_ranks, NULL};
 *   tk_batch_item items[2] = {{text0, len0}, {text1, len1}};
 *   tk_batch_job job;
 *   tk_batch_start(&job, &model, NULL, items, 2, 2, 0, caches, buffers);   starts the other thread
 *   while (tk_batch_step(&job)) for (ptrdiff_t i; (i = tk_batch_next_finished(&job)) >= 0;) use items[i];
 *   tk_batch_finish(&job);                          waits until the other thread is done with the job
 *   then every items[i].{status, ids, n_ids} not used yet
 */
#ifndef TOKEND_BATCH_ENCODE_H
#define TOKEND_BATCH_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "call_stop.h"
#include "short_table.h"
#include "split_program.h"
#include "tokend_native.h"

/* Worker threads of one batch at most (the Python caller also caps them at the CPUs it may use). */
#define TK_BATCH_MAX_THREADS 64
/* Below this many bytes per thread a thread costs more to start than it saves. */
#define TK_BATCH_BYTES_PER_THREAD 16384

enum { TK_BATCH_OK = 0, TK_BATCH_NO_MEMORY = 1, TK_BATCH_PIECE_TOO_LONG = 2, TK_BATCH_NOT_RUN = 3, TK_BATCH_STOPPED = 4 };
/* An item's pieces between two looks at the model's `stop`: ~5-20 ms of the worst merges (pieces of 129-511 bytes
 * through the heap, ~0.1-0.16 s a MB), and a clock read per 64 KiB costs nothing measurable. */
#define TK_BATCH_STOP_CHECK_BYTES 65536

/* What the workers read: the core's immutable tables (see module.c's BpeCore). */
typedef struct {
    const tk_rank_table *table;
    const tk_pair_table *pairs;        /* pair-priority BPE through the pair table (else NULL) */
    const tk_merge_index *merge_index; /* pair-priority BPE through the vocabulary (else NULL); both NULL: rank rule */
    const uint8_t *merges_to_itself;   /* rank -> 1 when the token's bytes merge back to it alone (or NULL) */
    int whole_piece_shortcut;          /* a piece that is a token is that token */
    const tk_splitter *split;
    uint64_t seed;
    size_t n_ranks;                    /* ranks 0..n_ranks-1 (tk_bpe_merge's bucket merge sizes by it) */
    tk_short_table *shorts;            /* the core's short-piece table (NULL: none yet); workers add to it */
    size_t short_add_len;              /* merged pieces up to this length go into `shorts` while it has room */
    const tk_call_stop *stop;          /* give up (TK_BATCH_STOPPED) once due, checked between pieces; NULL: never */
} tk_batch_model;

typedef struct {
    const uint8_t *text;  /* in: valid UTF-8, immutable while the batch runs */
    size_t len;
    int status;           /* out: TK_BATCH_* (TK_BATCH_NOT_RUN when the batch stopped at another item's error) */
    uint32_t *ids;        /* out (encoding, TK_BATCH_OK): the ids, malloc'd (NULL when none); the caller frees */
    size_t n_ids;         /* out: how many (the count, when counting) */
    int flagged;          /* out: one of the batch's needles occurs in the text (tk_batch_needles) */
} tk_batch_item;

/* Strings every item is searched for while it is encoded (count_batch: the special tokens' prefixes), so the
 * caller checks only the flagged texts afterwards instead of every text before the batch with the GIL held
 * (a serial part that capped 2 threads). At most TK_BATCH_MAX_NEEDLES, none empty: the search costs at
 * most len * needles * needle length per text, and is one memchr per distinct first byte in practice. */
#define TK_BATCH_MAX_NEEDLES 16
typedef struct {
    const uint8_t *strings[TK_BATCH_MAX_NEEDLES];
    size_t lens[TK_BATCH_MAX_NEEDLES];
    size_t n;
} tk_batch_needles;

/* A cache line: what one worker writes all the time (its buffer's length, its cache's counters) gets a line
 * of its own, or the other workers' cores keep taking that line away (false sharing: with the buffers
 * side by side, 2 threads of encode_ordinary_batch spent ~30% more CPU than one). */
#define TK_CACHE_LINE 64

/* One worker's scratch: the ids of the item it is encoding (malloc'd; free with tk_batch_buffer_free). */
typedef struct {
    _Alignas(TK_CACHE_LINE) uint32_t *ids;
    size_t len, cap;
} tk_batch_buffer;

void tk_batch_buffer_free(tk_batch_buffer *buffer);

/* How many threads a batch of `n_items` texts of `total_bytes` gets when `wanted` are asked for: at least 1. */
size_t tk_batch_threads(size_t wanted, size_t n_items, size_t total_bytes);

/* A batch under way (tk_batch_start .. tk_batch_finish); its fields are batch_encode.c's. */
typedef struct {
    const tk_batch_model *model;
    const tk_batch_needles *needles; /* NULL: none */
    tk_batch_item *items;
    size_t *order;        /* longest first (NULL: as given) */
    size_t n_items;
    int counting;
    size_t n_threads;
    size_t *finished;     /* item indices in the order they finished; SIZE_MAX: not yet written */
    size_t read;          /* the caller's place in `finished` */
    _Alignas(TK_CACHE_LINE) size_t next; /* atomic: the next place in `order` to take */
    size_t n_finished;    /* atomic: places of `finished` handed out */
    int failed;           /* atomic: an item failed (or tk_batch_stop), stop taking more */
    size_t workers_done;  /* atomic: the other threads past their last use of the job (tk_batch_finish) */
    _Alignas(TK_CACHE_LINE) struct tk_batch_worker *workers;
    void *threads;        /* pthread_t[n_threads] and their started flags */
} tk_batch_job;

/* Starts encoding (counting: only counting) every item with `n_threads` threads, the calling one included,
 * which works by calling tk_batch_step; the others start here (if one cannot be started, the rest do its
 * share). Items are taken longest first. `caches[w]` is worker w's piece cache (NULL: none), `buffers[w]`
 * its scratch (zeroed by the caller, n_threads of each). Returns 0, or -1 when out of memory (nothing
 * started, nothing to finish). None of these functions touches Python (module.c calls them without the GIL). */
int tk_batch_start(tk_batch_job *job, const tk_batch_model *model, const tk_batch_needles *needles,
                   tk_batch_item *items, size_t n_items, size_t n_threads, int counting,
                   tk_piece_cache *const *caches, tk_batch_buffer *buffers);
/* The calling thread encodes one more item: 1 when it did, 0 when none is left (or the batch failed). */
int tk_batch_step(tk_batch_job *job);
/* The index of the next item that finished (any status), in finishing order; -1 when no other has yet. */
ptrdiff_t tk_batch_next_finished(tk_batch_job *job);
/* Makes the workers stop after their current item (the caller cannot use the results). */
void tk_batch_stop(tk_batch_job *job);
/* Waits for the other threads to be done with the job, and frees it; 0 when every item is TK_BATCH_OK, else
 * -1. The items keep their results (the caller frees their ids). When every other thread is done with the
 * job already, they are detached, not joined: their exit (each gives its stack back) is no part of the call. */
int tk_batch_finish(tk_batch_job *job);

/* The whole batch in one call (tk_batch_start, steps, tk_batch_finish); 0 when every item is TK_BATCH_OK. */
int tk_batch_run(const tk_batch_model *model, const tk_batch_needles *needles, tk_batch_item *items, size_t n_items,
                 size_t n_threads, int counting, tk_piece_cache *const *caches, tk_batch_buffer *buffers);

/* ---- the core's pool of worker caches (used with the GIL held) ---------------------------------- */
typedef struct {
    tk_piece_cache *caches[TK_BATCH_MAX_THREADS];
    uint8_t busy[TK_BATCH_MAX_THREADS];
    size_t n;               /* caches made so far */
    size_t capacity;        /* entries per generation of each */
    size_t max_key_len;
    uint64_t seed;
} tk_cache_pool;

void tk_cache_pool_init(tk_cache_pool *pool, size_t capacity, size_t max_key_len, uint64_t seed);
/* An idle cache (made on first need); NULL when the pool is exhausted or out of memory (then no cache). */
tk_piece_cache *tk_cache_pool_take(tk_cache_pool *pool);
/* The same, but a new cache is made only while the pool holds fewer than `most` (else NULL when none is idle). */
tk_piece_cache *tk_cache_pool_take_within(tk_cache_pool *pool, size_t most);
void tk_cache_pool_give(tk_cache_pool *pool, tk_piece_cache *cache);
void tk_cache_pool_free(tk_cache_pool *pool);

#endif
