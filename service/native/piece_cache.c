/* The piece cache: piece bytes -> ids for pieces that are not tokens themselves (BPE results).
 *
 * Two generations of `capacity` entries each. Lookups read the current generation, then the previous one
 * (a hit there is copied forward); inserts go to the current one; when it is full (entries or arena bytes)
 * the previous generation is dropped and the current one becomes the previous. That is an approximate LRU
 * with O(1) work per operation and no per-hit bookkeeping.
 *
 * Memory bound (fixed at construction, whatever the input): per generation 2 * capacity slots (4 B),
 * capacity entries (16 B) and an arena of capacity * 64 B for keys and ids: 176 B * capacity in all,
 * ~11.5 MB at the default 65,536. Keys longer than max_key_len are never stored.
 * Probe sequences are capped at TK_MAX_PROBES: an insert that would go further is dropped, so a lookup
 * never looks further either, even for keys crafted to collide. */
#include <stdlib.h>
#include <string.h>

#include "tokend_native.h"

#define TK_MAX_PROBES 32
#define TK_ARENA_BYTES_PER_ENTRY 64

static size_t align4(size_t n) { return (n + 3) & ~(size_t)3; }

static int generation_init(tk_cache_generation *gen, size_t capacity, size_t slots, size_t arena_size) {
    gen->slots = calloc(slots, sizeof *gen->slots);
    gen->entries = malloc(capacity * sizeof *gen->entries);
    gen->arena = malloc(arena_size);
    gen->n_entries = 0;
    gen->arena_used = 0;
    return gen->slots && gen->entries && gen->arena ? 0 : -1;
}

int tk_piece_cache_init(tk_piece_cache *cache, size_t capacity, size_t max_key_len, uint64_t seed) {
    memset(cache, 0, sizeof *cache);
    cache->seed = seed;
    if (capacity == 0) return 0;
    size_t slots = 16;
    while (slots < 2 * capacity) slots <<= 1;
    cache->capacity = capacity;
    cache->slot_mask = slots - 1;
    cache->max_key_len = max_key_len;
    cache->arena_size = capacity * TK_ARENA_BYTES_PER_ENTRY;
    for (int g = 0; g < 2; g++) {
        if (generation_init(&cache->generations[g], capacity, slots, cache->arena_size) < 0) {
            tk_piece_cache_free(cache);
            return -1;
        }
    }
    return 0;
}

void tk_piece_cache_free(tk_piece_cache *cache) {
    for (int g = 0; g < 2; g++) {
        free(cache->generations[g].slots);
        free(cache->generations[g].entries);
        free(cache->generations[g].arena);
    }
    memset(cache, 0, sizeof *cache);
}

static const tk_cache_entry *find(const tk_piece_cache *cache, const tk_cache_generation *gen,
                                  const uint8_t *key, size_t len, uint64_t hash) {
    size_t i = hash & cache->slot_mask;
    for (int probe = 0; probe < TK_MAX_PROBES; probe++) {
        uint32_t slot = gen->slots[i];
        if (!slot) return NULL;
        const tk_cache_entry *entry = &gen->entries[slot - 1];
        if (entry->hash == hash && entry->key_len == len && tk_bytes_equal(gen->arena + entry->offset, key, len))
            return entry;
        i = (i + 1) & cache->slot_mask;
    }
    return NULL;
}

static const uint32_t *entry_ids(const tk_cache_generation *gen, const tk_cache_entry *entry) {
    return (const uint32_t *)(gen->arena + entry->offset + align4(entry->key_len));
}

ptrdiff_t tk_piece_cache_get(tk_piece_cache *cache, const uint8_t *key, size_t len, uint64_t hash, uint32_t *out) {
    if (!cache->capacity || len > cache->max_key_len) {
        cache->misses++; /* a piece the cache cannot hold is still BPE work it did not save */
        return -1;
    }
    for (int g = 0; g < 2; g++) {
        tk_cache_generation *gen = &cache->generations[g];
        const tk_cache_entry *entry = find(cache, gen, key, len, hash);
        if (!entry) continue;
        cache->hits++;
        size_t n = entry->n_ids;
        memcpy(out, entry_ids(gen, entry), n * sizeof *out);
        if (g == 1) tk_piece_cache_put(cache, key, len, hash, out, n); /* copy forward (may rotate) */
        return (ptrdiff_t)n;
    }
    cache->misses++;
    return -1;
}

static void rotate(tk_piece_cache *cache) {
    tk_cache_generation dropped = cache->generations[1];
    cache->generations[1] = cache->generations[0];
    memset(dropped.slots, 0, (cache->slot_mask + 1) * sizeof *dropped.slots);
    dropped.n_entries = 0;
    dropped.arena_used = 0;
    cache->generations[0] = dropped;
}

void tk_piece_cache_put(tk_piece_cache *cache, const uint8_t *key, size_t len, uint64_t hash,
                        const uint32_t *ids, size_t n_ids) {
    if (!cache->capacity || len > cache->max_key_len || n_ids > UINT16_MAX) return;
    size_t need = align4(len) + n_ids * sizeof(uint32_t);
    if (need > cache->arena_size) return;
    tk_cache_generation *gen = &cache->generations[0];
    if (gen->n_entries >= cache->capacity || gen->arena_used + need > cache->arena_size) {
        rotate(cache);
        gen = &cache->generations[0];
    }
    size_t i = hash & cache->slot_mask;
    for (int probe = 0; probe < TK_MAX_PROBES; probe++) {
        uint32_t slot = gen->slots[i];
        if (!slot) {
            tk_cache_entry *entry = &gen->entries[gen->n_entries];
            entry->hash = hash;
            entry->offset = (uint32_t)gen->arena_used;
            entry->key_len = (uint16_t)len;
            entry->n_ids = (uint16_t)n_ids;
            memcpy(gen->arena + gen->arena_used, key, len);
            memcpy(gen->arena + gen->arena_used + align4(len), ids, n_ids * sizeof(uint32_t));
            gen->arena_used += need;
            gen->slots[i] = (uint32_t)(++gen->n_entries);
            return;
        }
        const tk_cache_entry *entry = &gen->entries[slot - 1];
        if (entry->hash == hash && entry->key_len == len && tk_bytes_equal(gen->arena + entry->offset, key, len))
            return; /* already there */
        i = (i + 1) & cache->slot_mask;
    }
}
