/* The batch encoder's workers (see batch_encode.h): no Python, no GIL; shared writes: four counters, and the
 * merged short pieces they add to the core's short table (short_table.h: Threads).
 *
 * Work is shared by an atomic counter over the items sorted longest first, so a thread that drew a long
 * text is not left finishing it alone while the others idle. A finished item is queued for the caller (a
 * place in `finished` taken from a counter, the index stored with release order: the caller reads places
 * in order and stops at one not written yet). A worker that fails (out of memory, a piece of 4 GiB) sets a
 * flag the others check between items; the items nobody reached stay TK_BATCH_NOT_RUN. A thread that has
 * taken its last item counts itself done (`workers_done`) and touches the job no more: tk_batch_finish then
 * detaches it, when every thread is done by then, instead of waiting for its exit. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "batch_encode.h"
#include "piece_batch.h"
#include "short_merge.h"

struct tk_batch_worker {
    tk_batch_job *job;
    tk_piece_cache *cache;
    tk_batch_buffer *buffer;
};
typedef struct tk_batch_worker batch_worker;

void tk_batch_buffer_free(tk_batch_buffer *buffer) {
    free(buffer->ids);
    memset(buffer, 0, sizeof *buffer);
}

static int reserve(tk_batch_buffer *buffer, size_t more) {
    if (buffer->len + more <= buffer->cap) return 0;
    size_t cap = buffer->cap ? buffer->cap : 1024;
    while (cap < buffer->len + more) cap *= 2;
    uint32_t *ids = realloc(buffer->ids, cap * sizeof *ids);
    if (!ids) return -1;
    buffer->ids = ids;
    buffer->cap = cap;
    return 0;
}

/* The model's merge rule (see module.c's merge_piece). */
static inline ptrdiff_t merge(const tk_batch_model *model, const uint8_t *piece, size_t len, uint32_t *out) {
    if (model->merge_index) return tk_indexed_pair_merge(model->merge_index, model->table, piece, len, out);
    if (model->pairs) return tk_pair_merge(model->pairs, model->table, piece, len, out);
    if (len <= TK_TINY_PIECE) return tk_tiny_merge(model->table, piece, len, out); /* inlined: many a text's pieces */
    return tk_bpe_merge(model->table, piece, len, model->n_ranks, out);
}

/* The ids of one piece into `out` (room for len ids, or NULL to count only), its whole-piece lookup done
 * (`rank`, `hash`: as tk_rank_of_piece gives them); how many, or -1 when out of memory. The same steps as
 * emit_ranked_piece in module.c (whole-token shortcut, short pieces merged without the cache, piece cache,
 * merge rule) with the worker's own cache. */
static ptrdiff_t piece_ids(const tk_batch_model *model, tk_piece_cache *cache, const uint8_t *piece, size_t len,
                           uint32_t rank, uint64_t hash, uint32_t *out) {
    if (rank != TK_NO_RANK &&
        (__builtin_expect(model->whole_piece_shortcut, 1) || (model->merges_to_itself && model->merges_to_itself[rank]))) {
        if (out) out[0] = rank;
        return 1;
    }
    if (!model->pairs && (!out || len <= TK_UNCACHED_PIECE_BYTES)) {
        if (!out && cache) cache->misses++; /* counted without ids: too long to cache, booked as a miss (emit_merged_piece) */
        return merge(model, piece, len, out);
    }
    if (cache && tk_piece_cache_skips(cache, len)) {
        cache->misses++;
        return merge(model, piece, len, out);
    }
    if (cache) {
        if (len <= 2) hash = tk_piece_hash(model->table, piece, len); /* see tk_rank_of_piece */
        ptrdiff_t n = tk_piece_cache_get(cache, piece, len, hash, out);
        tk_piece_cache_saw(cache, len, n >= 0);
        if (n >= 0) return n;
    }
    ptrdiff_t n = merge(model, piece, len, out);
    if (n >= 0 && cache) tk_piece_cache_put(cache, piece, len, hash, out, (size_t)n);
    return n;
}

/* A short piece that is no token and not in the short table (TK_SHORT_MERGE) merged into the worker's
 * buffer (or counted in *count), and added to the table while it has room, as module.c's emit_short does:
 * the other workers and the core's other callers find it from then on. A TK_BATCH_* status. */
static int merge_and_add(batch_worker *worker, const tk_batch_item *item, const tk_short_pending *s, size_t *count) {
    const tk_batch_model *model = worker->job->model;
    tk_batch_buffer *buffer = worker->buffer;
    if (s->p.len > TK_UNCACHED_PIECE_BYTES && worker->cache) worker->cache->misses++; /* as module.c counts it */
    if (reserve(buffer, s->p.len) < 0) return TK_BATCH_NO_MEMORY;
    uint32_t *out = buffer->ids + buffer->len; /* a count too writes the ids there, unadvanced */
    ptrdiff_t n = merge(model, item->text + s->p.start, s->p.len, out);
    if (n < 0) return TK_BATCH_NO_MEMORY;
    if (worker->job->counting)
        *count += (size_t)n;
    else
        buffer->len += (size_t)n;
    if (s->has_key && tk_short_table_has_room(model->shorts))
        tk_short_table_put(model->shorts, &s->key, s->short_hash, out, (uint32_t)n, TK_SHORT_ADDED, 0);
    return TK_BATCH_OK;
}

/* A prepared piece of the item's text (tk_short_pending) into the worker's buffer, or counted in *count: a
 * TK_BATCH_* status. */
static int encode_pending_piece(batch_worker *worker, const tk_batch_item *item, const tk_short_pending *s,
                                size_t *count) {
    const tk_batch_model *model = worker->job->model;
    tk_batch_buffer *buffer = worker->buffer;
    int counting = worker->job->counting;
    if (s->n_short == TK_SHORT_MERGE) return merge_and_add(worker, item, s, count);
    const tk_pending_piece *p = &s->p;
    size_t len = p->len;
    if (len >= UINT32_MAX) return TK_BATCH_PIECE_TOO_LONG; /* the merge names positions with 32 bits */
    /* Counted, a piece too long to cache needs no room for its ids (the merge counts them). */
    int count_only = counting && !model->pairs && (!worker->cache || len > worker->cache->max_key_len);
    if (!count_only && reserve(buffer, len) < 0) return TK_BATCH_NO_MEMORY;
    ptrdiff_t n = piece_ids(model, worker->cache, item->text + p->start, len, p->rank, p->hash,
                            count_only ? NULL : buffer->ids + buffer->len);
    if (n < 0) return TK_BATCH_NO_MEMORY;
    if (counting)
        *count += (size_t)n; /* the ids were scratch */
    else
        buffer->len += (size_t)n;
    return TK_BATCH_OK;
}

/* The pieces of one item into the worker's buffer, or counted (piece_batch.h); `counting` is a constant of
 * each copy (encode_item). A TK_BATCH_* status; a count is added to *count. */
static inline __attribute__((always_inline)) int encode_pieces(batch_worker *worker, const tk_batch_item *item,
                                                               tk_split_iter *iter, size_t *count, int *found,
                                                               const int counting) {
    const tk_batch_model *model = worker->job->model;
    tk_batch_buffer *buffer = worker->buffer;
    const tk_short_table *shorts = model->shorts;
    /* Fixed for the item, as module.c's emit_pieces fixes it for a text: a piece marked for merging after the
     * table filled up is merged and not added (merge_and_add checks the room again), exact either way. */
    size_t add_up_to = shorts && tk_short_table_has_room(shorts) ? model->short_add_len : 0;
    tk_piece_batch batches[2]; /* the one handed out, and the next one, looked up meanwhile (module.c's loop) */
    tk_piece_batch *batch = &batches[0], *next = &batches[1];
    uint64_t hits = 0; /* merged pieces found in the table count as the cache's hits, as module.c counts them */
    size_t n_ids = 0;
    int status = TK_BATCH_OK;
    size_t stop_check_at = TK_BATCH_STOP_CHECK_BYTES; /* the text's offset past which the stop is looked at next */
    *found = tk_piece_batch_take(batch, iter, shorts, model->table, worker->cache, item->text, item->len, add_up_to);
    for (;;) {
        int more = *found == 1;
        int found_next = more ? tk_piece_batch_take(next, iter, shorts, model->table, worker->cache, item->text,
                                                    item->len, add_up_to)
                              : 0;
        uint64_t sum = 0; /* the hits' n (tk_short_sum_ids) */
        for (size_t i = 0; i < batch->n && status == TK_BATCH_OK; i++) {
            const tk_short_entry *e =
                tk_piece_batch_entry(batch, i, shorts, model->table, worker->cache, item->text, item->len, add_up_to, NULL);
            if (__builtin_expect(e != NULL, 1)) {
                sum += e->n;
                if (counting) continue;
                if (reserve(buffer, TK_SHORT_MAX_LEN) < 0) {
                    status = TK_BATCH_NO_MEMORY;
                    break;
                }
                buffer->len += tk_short_copy_ids(shorts, e, buffer->ids + buffer->len);
                continue;
            }
            status = encode_pending_piece(worker, item, &batch->pending[i], count);
        }
        hits += tk_short_sum_added(sum);
        if (counting) n_ids += tk_short_sum_ids(sum);
        if (status != TK_BATCH_OK || !more) break;
        /* Between batches of pieces: a single piece's merge is not cut (the run and bucket merges take a long one
         * at ~0.02-0.03 s a MB; the heap, slower, only pieces of 511 bytes or less). */
        if (__builtin_expect(model->stop != NULL, 0) && batch->n && batch->ends[batch->n - 1] >= stop_check_at) {
            if (tk_call_stop_due(model->stop)) {
                status = TK_BATCH_STOPPED;
                break;
            }
            stop_check_at = batch->ends[batch->n - 1] + TK_BATCH_STOP_CHECK_BYTES;
        }
        tk_piece_batch *handed = batch;
        batch = next;
        next = handed;
        *found = found_next;
    }
    *count += n_ids;
    if (worker->cache) worker->cache->hits += hits;
    return status;
}

static int encode_item(batch_worker *worker, tk_batch_item *item) {
    int counting = worker->job->counting;
    tk_batch_buffer *buffer = worker->buffer;
    size_t count = 0;
    buffer->len = 0;
    if (worker->cache) { /* each text decides by its own pieces whether short ones skip the cache */
        worker->cache->cheap_looked = worker->cache->cheap_found = 0;
        worker->cache->cheap_skipped = 0;
    }
    int status, found;
    tk_split_iter iter;
    if (reserve(buffer, counting ? 64 : item->len / 3 + 16) < 0 ||
        tk_split_iter_init(&iter, worker->job->model->split, item->text, item->len) < 0)
        return TK_BATCH_NO_MEMORY;
    status = counting ? encode_pieces(worker, item, &iter, &count, &found, 1)
                      : encode_pieces(worker, item, &iter, &count, &found, 0);
    if (found < 0) status = TK_BATCH_NO_MEMORY;
    tk_split_iter_free(&iter);
    item->n_ids = counting ? count : buffer->len;
    if (status == TK_BATCH_OK && !counting && buffer->len) {
        if (worker->job->n_items == 1) {
            /* The only item takes the buffer itself, cut to its ids (no second copy of a big text's ids; a
             * cut of an mmapped block is an mremap). The buffer starts empty if it is used again. */
            uint32_t *ids = realloc(buffer->ids, buffer->len * sizeof *ids);
            item->ids = ids ? ids : buffer->ids;
            buffer->ids = NULL;
            buffer->len = buffer->cap = 0;
        } else {
            /* An array of the item's own: the caller turns it into a list while this buffer takes the next item. */
            item->ids = malloc(buffer->len * sizeof *item->ids);
            if (!item->ids) return TK_BATCH_NO_MEMORY;
            memcpy(item->ids, buffer->ids, buffer->len * sizeof *item->ids);
        }
    }
    return status;
}

/* 1 when one of `needles` occurs in text[0..len): a memchr for each distinct first byte, the needles that
 * start with it compared where it is found. */
static int contains_needle(const tk_batch_needles *needles, const uint8_t *text, size_t len) {
    const uint8_t *end = text + len;
    for (size_t k = 0; k < needles->n; k++) {
        uint8_t first = needles->strings[k][0];
        int scanned = 0; /* an earlier needle had this first byte: its scan compared this one too */
        for (size_t j = 0; j < k && !scanned; j++) scanned = needles->strings[j][0] == first;
        if (scanned) continue;
        for (const uint8_t *at = text; (at = memchr(at, first, (size_t)(end - at))) != NULL; at++)
            for (size_t j = k; j < needles->n; j++)
                if (needles->strings[j][0] == first && needles->lens[j] <= (size_t)(end - at) &&
                    memcmp(at, needles->strings[j], needles->lens[j]) == 0)
                    return 1;
    }
    return 0;
}

/* Takes and encodes one item: 1 when it did, 0 when none is left or the batch failed. */
static int work_one(batch_worker *worker) {
    tk_batch_job *job = worker->job;
    if (__atomic_load_n(&job->failed, __ATOMIC_RELAXED)) return 0;
    size_t k = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
    if (k >= job->n_items) return 0;
    size_t index = job->order ? job->order[k] : k;
    tk_batch_item *item = &job->items[index];
    item->status = encode_item(worker, item);
    if (job->needles) item->flagged = contains_needle(job->needles, item->text, item->len);
    if (item->status != TK_BATCH_OK) __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED);
    size_t place = __atomic_fetch_add(&job->n_finished, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&job->finished[place], index, __ATOMIC_RELEASE); /* publishes the item's results */
    return 1;
}

static void *work(void *arg) {
    batch_worker *worker = arg;
    tk_batch_job *job = worker->job;
    while (work_one(worker)) {}
    __atomic_fetch_add(&job->workers_done, 1, __ATOMIC_RELEASE); /* its last use of the job (tk_batch_finish) */
    return NULL;
}

typedef struct {
    size_t len, index;
} sort_key;

static int longest_first(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The item indices, longest first; NULL when out of memory (then the items go as given). */
static size_t *longest_first_order(const tk_batch_item *items, size_t n_items) {
    sort_key *keys = malloc(n_items * sizeof *keys);
    size_t *order = malloc(n_items * sizeof *order);
    if (keys && order) {
        for (size_t i = 0; i < n_items; i++) keys[i] = (sort_key){items[i].len, i};
        qsort(keys, n_items, sizeof *keys, longest_first);
        for (size_t i = 0; i < n_items; i++) order[i] = keys[i].index;
    } else {
        free(order);
        order = NULL;
    }
    free(keys);
    return order;
}

size_t tk_batch_threads(size_t wanted, size_t n_items, size_t total_bytes) {
    size_t threads = wanted < TK_BATCH_MAX_THREADS ? wanted : TK_BATCH_MAX_THREADS;
    if (threads > n_items) threads = n_items;
    size_t by_size = total_bytes / TK_BATCH_BYTES_PER_THREAD + 1;
    if (threads > by_size) threads = by_size;
    return threads ? threads : 1;
}

typedef struct {
    pthread_t thread;
    int started;
} started_thread;

int tk_batch_start(tk_batch_job *job, const tk_batch_model *model, const tk_batch_needles *needles,
                   tk_batch_item *items, size_t n_items, size_t n_threads, int counting,
                   tk_piece_cache *const *caches, tk_batch_buffer *buffers) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > TK_BATCH_MAX_THREADS) n_threads = TK_BATCH_MAX_THREADS;
    memset(job, 0, sizeof *job);
    for (size_t i = 0; i < n_items; i++) {
        items[i].status = TK_BATCH_NOT_RUN;
        items[i].ids = NULL;
        items[i].n_ids = 0;
        items[i].flagged = 0;
    }
    job->model = model;
    job->needles = needles && needles->n ? needles : NULL;
    job->items = items;
    job->n_items = n_items;
    job->counting = counting;
    job->n_threads = n_threads;
    job->order = n_items > 1 ? longest_first_order(items, n_items) : NULL;
    job->finished = malloc((n_items ? n_items : 1) * sizeof *job->finished);
    /* Each worker's struct on lines of its own (it is read all the time; see TK_CACHE_LINE). */
    size_t worker_size = (sizeof(batch_worker) + TK_CACHE_LINE - 1) / TK_CACHE_LINE * TK_CACHE_LINE;
    job->workers = aligned_alloc(TK_CACHE_LINE, n_threads * worker_size);
    started_thread *threads = calloc(n_threads, sizeof *threads);
    job->threads = threads;
    if (!job->finished || !job->workers || !threads) {
        free(job->order);
        free(job->finished);
        free(job->workers);
        free(threads);
        return -1;
    }
    for (size_t i = 0; i < n_items; i++) job->finished[i] = SIZE_MAX;
    for (size_t w = 0; w < n_threads; w++) {
        batch_worker *worker = (batch_worker *)((char *)job->workers + w * worker_size);
        *worker = (batch_worker){job, caches[w], &buffers[w]};
        if (w) threads[w].started = pthread_create(&threads[w].thread, NULL, work, worker) == 0;
    }
    return 0;
}

int tk_batch_step(tk_batch_job *job) { return work_one(job->workers); /* worker 0: the caller */ }

ptrdiff_t tk_batch_next_finished(tk_batch_job *job) {
    if (job->read >= job->n_items) return -1;
    size_t index = __atomic_load_n(&job->finished[job->read], __ATOMIC_ACQUIRE);
    if (index == SIZE_MAX) return -1;
    job->read++;
    return (ptrdiff_t)index;
}

static int workers_done(tk_batch_job *job) {
    started_thread *threads = job->threads;
    size_t started = 0;
    for (size_t w = 1; w < job->n_threads; w++) started += (size_t)threads[w].started;
    return __atomic_load_n(&job->workers_done, __ATOMIC_ACQUIRE) == started;
}

void tk_batch_stop(tk_batch_job *job) { __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED); }

int tk_batch_finish(tk_batch_job *job) {
    started_thread *threads = job->threads;
    /* Threads already done with the job end on their own: joining one waits for its exit too (its stack
     * given back, this thread woken: 30-100 us on this project's VM, after which the caller still had the
     * last lists to make). Not waited for by spinning: on a busy machine the spin delayed the very thread it
     * waited for (docs/decisions.md, "Two threads of encode_ordinary_batch"). */
    int done = workers_done(job);
    for (size_t w = 1; w < job->n_threads; w++) {
        if (!threads[w].started) continue;
        if (done)
            pthread_detach(threads[w].thread);
        else
            pthread_join(threads[w].thread, NULL);
    }
    free(threads);
    free(job->workers);
    free(job->order);
    free(job->finished);
    int failed = 0;
    for (size_t i = 0; i < job->n_items; i++)
        if (job->items[i].status != TK_BATCH_OK) failed = 1;
    memset(job, 0, sizeof *job);
    return failed ? -1 : 0;
}

int tk_batch_run(const tk_batch_model *model, const tk_batch_needles *needles, tk_batch_item *items, size_t n_items,
                 size_t n_threads, int counting, tk_piece_cache *const *caches, tk_batch_buffer *buffers) {
    tk_batch_job job;
    if (tk_batch_start(&job, model, needles, items, n_items, n_threads, counting, caches, buffers) < 0) return -1;
    while (tk_batch_step(&job)) {}
    return tk_batch_finish(&job);
}

/* ---- the pool of worker caches ----------------------------------------------------------------- */

void tk_cache_pool_init(tk_cache_pool *pool, size_t capacity, size_t max_key_len, uint64_t seed) {
    memset(pool, 0, sizeof *pool);
    pool->capacity = capacity;
    pool->max_key_len = max_key_len;
    pool->seed = seed;
}

tk_piece_cache *tk_cache_pool_take(tk_cache_pool *pool) { return tk_cache_pool_take_within(pool, TK_BATCH_MAX_THREADS); }

tk_piece_cache *tk_cache_pool_take_within(tk_cache_pool *pool, size_t most) {
    for (size_t i = 0; i < pool->n; i++) {
        if (!pool->busy[i]) {
            pool->busy[i] = 1;
            return pool->caches[i];
        }
    }
    if (pool->n >= most || pool->n == TK_BATCH_MAX_THREADS) return NULL;
    /* A line of its own (batch_encode.h's TK_CACHE_LINE): the caches are made one after the other. */
    tk_piece_cache *cache = aligned_alloc(TK_CACHE_LINE, (sizeof *cache + TK_CACHE_LINE - 1) / TK_CACHE_LINE * TK_CACHE_LINE);
    if (!cache) return NULL;
    if (tk_piece_cache_init(cache, pool->capacity, pool->max_key_len, pool->seed) < 0) {
        free(cache);
        return NULL;
    }
    pool->caches[pool->n] = cache;
    pool->busy[pool->n++] = 1;
    return cache;
}

void tk_cache_pool_give(tk_cache_pool *pool, tk_piece_cache *cache) {
    for (size_t i = 0; i < pool->n; i++)
        if (pool->caches[i] == cache) pool->busy[i] = 0;
}

void tk_cache_pool_free(tk_cache_pool *pool) {
    for (size_t i = 0; i < pool->n; i++) {
        tk_piece_cache_free(pool->caches[i]);
        free(pool->caches[i]);
    }
    memset(pool, 0, sizeof *pool);
}
