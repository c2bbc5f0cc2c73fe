/* The merges of a pair-priority BPE (Hugging Face tokenizers, GPT-2's encoder.py, llama.cpp) as one
 * open-addressing table: (left id, right id) -> (priority, merged id).
 *
 * A merge list names pairs of tokens, not byte strings, and its order is the priority: the merge at index
 * i runs before the one at index i + 1. Looking the pair up by its two ids (one 64-bit key, one hash, one
 * 16-byte slot holding both answers) is what the fastest exact encoders do; the byte-string rank table
 * (rank_table.c) stays the vocabulary, for the whole-piece lookup and the single-byte ids a piece starts
 * from.
 *
 * Linear probing at load factor <= 3/4: Llama 3's 280,147 merges take 524,288 slots (8 MiB). The hash
 * is seeded per process (module.c), so nobody can precompute ids whose lookups all collide. Inserting a pair twice keeps the later entry, as Hugging Face's HashMap does when a
 * tokenizer.json lists a merge twice. */
#include <stdlib.h>
#include <string.h>

#include "tokend_native.h"

static inline uint64_t pair_key(uint32_t left, uint32_t right) { return ((uint64_t)left << 32) | right; }

static inline uint64_t pair_hash(const tk_pair_table *table, uint64_t key) {
    uint64_t x = (key ^ table->seed) * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 31;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 29;
    return x;
}

int tk_pair_table_init(tk_pair_table *table, size_t capacity, uint64_t seed) {
    memset(table, 0, sizeof *table);
    size_t slots = 16;
    while (slots * 3 < capacity * 4) slots <<= 1;
    table->slots = tk_table_memory_alloc(&table->memory, slots * sizeof *table->slots); /* huge pages: 8 MiB */
    if (!table->slots) return -1;
    for (size_t i = 0; i < slots; i++) table->slots[i].priority = TK_NO_RANK;
    table->mask = slots - 1;
    table->seed = seed;
    return 0;
}

void tk_pair_table_add(tk_pair_table *table, uint32_t left, uint32_t right, uint32_t priority, uint32_t merged) {
    uint64_t key = pair_key(left, right);
    uint64_t i = pair_hash(table, key) & table->mask;
    while (table->slots[i].priority != TK_NO_RANK && table->slots[i].key != key) i = (i + 1) & table->mask;
    if (table->slots[i].priority == TK_NO_RANK) table->size++;
    table->slots[i] = (tk_pair_slot){key, priority, merged};
}

void tk_pair_table_free(tk_pair_table *table) {
    tk_table_memory_free(&table->memory);
    memset(table, 0, sizeof *table);
}

const tk_pair_slot *tk_pair_lookup(const tk_pair_table *table, uint32_t left, uint32_t right) {
    uint64_t key = pair_key(left, right);
    uint64_t i = pair_hash(table, key) & table->mask;
    for (;;) {
        const tk_pair_slot *slot = &table->slots[i];
        if (slot->priority == TK_NO_RANK) return NULL;
        if (slot->key == key) return slot;
        i = (i + 1) & table->mask;
    }
}
