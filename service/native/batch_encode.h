/* The batch encoder: many texts encoded (or counted) by worker threads, without the GIL.
 *
 * module.c converts the texts to UTF-8 with the GIL held, hands this file plain byte ranges, releases the
 * GIL for the whole of `tk_batch_run`, then builds the Python results from the workers' buffers. Nothing
 * here touches a Python object or the core's shared piece cache: each worker reads the immutable tables
 * (rank table, pair table, splitter) and writes only its own buffer and its own piece cache, checked out of
 * the core's pool of worker caches (taken and given back with the GIL held, so the pool needs no lock).
 *
 *   tk_batch_model model = {&table, NULL, NULL, 1, splitter, seed, n_ranks};
 *   tk_batch_item items[2] = {{text0, len0}, {text1, len1}};
 *   tk_batch_run(&model, items, 2, 2, 0, caches, workers);   then items[i].{status, worker, offset, n_ids}
 */
#ifndef TOKEND_BATCH_ENCODE_H
#define TOKEND_BATCH_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "split_program.h"
#include "tokend_native.h"

/* Worker threads of one batch at most (the Python caller also caps them at the CPUs it may use). */
#define TK_BATCH_MAX_THREADS 64
/* Below this many bytes per thread a thread costs more to start than it saves. */
#define TK_BATCH_BYTES_PER_THREAD 16384

enum { TK_BATCH_OK = 0, TK_BATCH_NO_MEMORY = 1, TK_BATCH_PIECE_TOO_LONG = 2, TK_BATCH_NOT_RUN = 3 };

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
} tk_batch_model;

typedef struct {
    const uint8_t *text;  /* in: valid UTF-8, immutable while the batch runs */
    size_t len;
    int status;           /* out: TK_BATCH_* (TK_BATCH_NOT_RUN when the batch stopped at another item's error) */
    uint32_t worker;      /* out: whose buffer holds the ids */
    size_t offset;        /* out: where they start in it */
    size_t n_ids;         /* out: how many (the count, when counting) */
} tk_batch_item;

/* A cache line: what one worker writes all the time (its buffer's length, its cache's counters) gets a line
 * of its own, or the other workers' cores keep taking that line away (false sharing: with the buffers
 * side by side, 2 threads of encode_ordinary_batch spent ~30% more CPU than one). */
#define TK_CACHE_LINE 64

/* One worker's output: the ids of its items back to back (malloc'd; free with tk_batch_buffer_free). */
typedef struct {
    _Alignas(TK_CACHE_LINE) uint32_t *ids;
    size_t len, cap;
} tk_batch_buffer;

void tk_batch_buffer_free(tk_batch_buffer *buffer);

/* How many threads a batch of `n_items` texts of `total_bytes` gets when `wanted` are asked for: at least 1. */
size_t tk_batch_threads(size_t wanted, size_t n_items, size_t total_bytes);

/* Encodes (counting: only counts) every item with `n_threads` threads, the calling one included; the others
 * are started here and joined before it returns (if one cannot be started, the rest do its share). Items are
 * taken longest first. `caches[w]` is worker w's piece cache (NULL: none), `buffers[w]` its output (zeroed by
 * the caller, n_threads of each). Returns 0 when every item is TK_BATCH_OK, else -1. Call without the GIL. */
int tk_batch_run(const tk_batch_model *model, tk_batch_item *items, size_t n_items, size_t n_threads, int counting,
                 tk_piece_cache *const *caches, tk_batch_buffer *buffers);

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
void tk_cache_pool_give(tk_cache_pool *pool, tk_piece_cache *cache);
void tk_cache_pool_free(tk_cache_pool *pool);

#endif
