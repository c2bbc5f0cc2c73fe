/* The short-piece table (short_table.h): its build from the rank table, inserts. */
#include "short_table.h"

#include <stdlib.h>
#include <string.h>

/* Masks keeping the first min(len, 8) bytes in the low word and the next max(len - 8, 0) in the high one. */
#define LOW(n) ((n) >= 8 ? ~0ull : (1ull << (8 * (n))) - 1)
#define HIGH(n) ((n) <= 8 ? 0ull : (1ull << (8 * ((n) - 8))) - 1)
const uint64_t tk_short_low_mask[TK_SHORT_MAX_LEN + 1] = {
    LOW(0), LOW(1), LOW(2), LOW(3), LOW(4), LOW(5), LOW(6), LOW(7),
    LOW(8), LOW(9), LOW(10), LOW(11), LOW(12), LOW(13), LOW(14), LOW(15)};
const uint64_t tk_short_high_mask[TK_SHORT_MAX_LEN + 1] = {
    HIGH(0), HIGH(1), HIGH(2), HIGH(3), HIGH(4), HIGH(5), HIGH(6), HIGH(7),
    HIGH(8), HIGH(9), HIGH(10), HIGH(11), HIGH(12), HIGH(13), HIGH(14), HIGH(15)};

void tk_short_table_free(tk_short_table *table) {
    tk_table_memory_free(&table->memory);
    free(table->more);
    free(table->built);
    memset(table, 0, sizeof *table);
}

void tk_short_table_refill(tk_short_table *table) {
    if (!table->entries) return;
    /* One pass over the slots in order: the empty ones between two built tokens zeroed, each token written
     * whole (the build's put: ids[1..2] zero, n 1). A slot a home move or a merged piece took is either. */
    uint64_t next = 0;
    for (size_t k = 0; k < table->n_built; k++) {
        const tk_short_built *b = &table->built[k];
        memset(table->entries + next, 0, (size_t)(b->slot - next) * sizeof *table->entries);
        table->entries[b->slot] = (tk_short_entry){b->key, {b->id, 0, 0}, 1};
        next = (uint64_t)b->slot + 1;
    }
    memset(table->entries + next, 0, (size_t)(table->mask + 1 - next) * sizeof *table->entries);
    __atomic_store_n(&table->n_added, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&table->more_used, 0, __ATOMIC_RELAXED);
    table->refills++;
}

/* Room for n ids in `more`, taken with a compare-and-swap when other writers may add at once (`alone`: none
 * can, a plain add): where they start, or SIZE_MAX when there is no room. */
static size_t take_more(tk_short_table *table, uint32_t n, int alone) {
    size_t used = __atomic_load_n(&table->more_used, __ATOMIC_RELAXED);
    if (alone) {
        if (used + n > table->more_cap) return SIZE_MAX;
        __atomic_store_n(&table->more_used, used + n, __ATOMIC_RELAXED);
        return used;
    }
    do {
        if (used + n > table->more_cap) return SIZE_MAX;
    } while (!__atomic_compare_exchange_n(&table->more_used, &used, used + n, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return used;
}

/* The entry's ids, n and key, key.hi last (readers see the entry whole); `at`: where its ids start in `more`
 * when there are more than TK_SHORT_INLINE_IDS. */
static inline void fill(tk_short_table *table, tk_short_entry *e, const tk_short_key *key, const uint32_t *ids,
                        uint32_t n, uint32_t flags, size_t at) {
    if (n <= TK_SHORT_INLINE_IDS) {
        e->ids[0] = ids[0]; /* one at a time: a memcpy of n * 4 bytes was a `rep movs` */
        if (n > 1) e->ids[1] = ids[1];
        if (n > 2) e->ids[2] = ids[2];
    } else {
        memcpy(table->more + at, ids, n * sizeof *ids);
        e->ids[0] = (uint32_t)at;
    }
    e->n = n | flags;
    e->key.lo = key->lo;
    __atomic_store_n(&e->key.hi, key->hi, __ATOMIC_RELEASE);
    /* not a locked add: two writers at once may count one (n_added only paces the adding; `more` and the slots
     * hold their own bounds), and a lone writer, the common case, pays no bus lock */
    if (flags & TK_SHORT_ADDED)
        __atomic_store_n(&table->n_added, __atomic_load_n(&table->n_added, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

int tk_short_table_put(tk_short_table *table, const tk_short_key *key, uint64_t hash, const uint32_t *ids, uint32_t n,
                       uint32_t flags, int alone) {
    if (!table->entries || n == 0 || n > TK_SHORT_MAX_LEN) return 0;
    uint64_t i = tk_short_home(table, hash);
    tk_short_entry *home = &table->entries[i];
    for (int probe = 0; probe < TK_SHORT_MAX_PROBES; probe++) {
        tk_short_entry *e = &table->entries[i];
        uint64_t hi = __atomic_load_n(&e->key.hi, __ATOMIC_ACQUIRE);
        if (hi == key->hi && e->key.lo == key->lo) return 2;
        if (!hi && alone) {
            size_t at = n > TK_SHORT_INLINE_IDS ? take_more(table, n, 1) : 0;
            if (at == SIZE_MAX) return 0;
            if (e != home && tk_short_reaches(table, home, e)) { /* the new piece at its home, the home's entry
                                                                  * moved here (Home slots) */
                *e = *home;
                e = home;
            }
            fill(table, e, key, ids, n, flags, at);
            return 1;
        }
        uint64_t empty = 0;
        if (!hi && __atomic_compare_exchange_n(&e->key.hi, &empty, TK_SHORT_CLAIMED_HI, 0, __ATOMIC_RELAXED,
                                               __ATOMIC_RELAXED)) { /* the slot is this writer's */
            size_t at = n > TK_SHORT_INLINE_IDS ? take_more(table, n, 0) : 0;
            if (at == SIZE_MAX) { /* no room: the slot given back, nothing written */
                __atomic_store_n(&e->key.hi, 0, __ATOMIC_RELAXED);
                return 0;
            }
            fill(table, e, key, ids, n, flags, at);
            return 1;
        }
        /* taken, or being filled by another writer (maybe with this very key: then it is held twice, the
         * same ids in both, the first one found) */
        i = (i + 1) & table->mask;
    }
    return 0;
}

/* Calls `visit(ctx, bytes, len, rank)` for every token of at most TK_SHORT_MAX_LEN bytes in `rank_table`
 * (with `merges_to_itself`: only the ranks it marks), its bytes rebuilt from the slot's prefix and, past 8
 * bytes, the record's last 8 (rank_table.c); 16 bytes may be read from `bytes`. */
static void each_short_token(const tk_rank_table *rank_table, const uint8_t *merges_to_itself, void *ctx,
                             void (*visit)(void *, const uint8_t *, size_t, uint32_t)) {
    uint8_t bytes[24] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t rank = rank_table->byte_rank[b];
        if (rank == TK_NO_RANK || (merges_to_itself && !merges_to_itself[rank])) continue;
        bytes[0] = (uint8_t)b;
        visit(ctx, bytes, 1, rank);
    }
    for (int pair = 0; pair < 65536; pair++) {
        uint32_t rank = rank_table->pair_rank[pair];
        if (rank == TK_NO_RANK || (merges_to_itself && !merges_to_itself[rank])) continue;
        bytes[0] = (uint8_t)(pair >> 8);
        bytes[1] = (uint8_t)pair;
        visit(ctx, bytes, 2, rank);
    }
    for (uint64_t i = 0; i <= rank_table->mask; i++) {
        const tk_rank_slot *slot = &rank_table->slots[i];
        size_t len = slot->len;
        if (len < 3 || len > TK_SHORT_MAX_LEN) continue;
        memset(bytes, 0, sizeof bytes);
        memcpy(bytes, &slot->prefix, 8);
        uint32_t rank = slot->rank;
        if (len > 8) { /* the slot names the record: the rank, then the token's last 8 bytes (it has < 16) */
            const uint8_t *record = rank_table->bytes + slot->rank;
            memcpy(&rank, record, 4);
            memcpy(bytes + len - 8, record + 4, 8);
        }
        if (merges_to_itself && !merges_to_itself[rank]) continue;
        visit(ctx, bytes, len, rank);
    }
}

typedef struct {
    size_t n_tokens;
    size_t n_ranks;        /* highest rank + 1 */
    tk_short_key *by_rank; /* the keys of the tokens by rank (hi 0: no such token) */
} token_listing;

static void count_token(void *ctx, const uint8_t *bytes, size_t len, uint32_t rank) {
    token_listing *listing = ctx;
    (void)bytes, (void)len;
    listing->n_tokens++;
    if (rank >= listing->n_ranks) listing->n_ranks = (size_t)rank + 1;
}

static void list_token(void *ctx, const uint8_t *bytes, size_t len, uint32_t rank) {
    token_listing *listing = ctx;
    listing->by_rank[rank] = tk_short_key_of(bytes, len, 16);
}

/* The table's memory for n_tokens tokens and max_added merged pieces, empty; 0, or -1 (then freed). */
static size_t slots_for(size_t n_tokens, size_t max_added) {
    size_t want = n_tokens + max_added, slots = 1024;
    /* Load <= 1/2. A piece past its home slot costs a mispredicted compare and a probe, and merged pieces,
     * added after every token, are the ones that land there: on multilingual text already seen (cl100k_base,
     * 99,226 tokens, ~39,000 merged pieces) 32 % of the pieces looked up were past their home at 2^18 slots
     * (load <= 2/3), 17 % at 2^19 (docs/decisions.md, "Short pieces past their home slot"). */
    while (slots < 2 * want) slots <<= 1;
    return slots;
}

static int allocate(tk_short_table *table, size_t n_tokens, size_t max_added, uint64_t seed) {
    memset(table, 0, sizeof *table);
    size_t slots = slots_for(n_tokens, max_added);
    table->n_tokens = n_tokens;
    /* 4 ids each if every merged piece had more than 3; and room for one of 15 (has_room) when max_added > 0 */
    table->more_cap = max_added ? 4 * max_added + TK_SHORT_MAX_LEN : 0;
    table->more = table->more_cap ? malloc(table->more_cap * sizeof *table->more) : NULL;
    table->entries = tk_table_memory_alloc(&table->memory, slots * sizeof *table->entries);
    if (!table->entries || (table->more_cap && !table->more)) {
        tk_short_table_free(table);
        return -1;
    }
    table->mask = slots - 1;
    table->shift = 64 - (unsigned)__builtin_ctzll(slots);
    table->seed = tk_mix(seed ^ 0x2545f4914f6cdd1dull); /* not the rank table's hash */
    table->seed_hi = tk_mix(table->seed + 0x94d049bb133111ebull);
    table->max_added = max_added;
    return 0;
}

int tk_short_table_build(tk_short_table *table, const tk_rank_table *rank_table, const uint8_t *merges_to_itself,
                         size_t max_added, int fill_room, uint64_t seed) {
    token_listing listing = {0, 0, NULL};
    each_short_token(rank_table, merges_to_itself, &listing, count_token);
    if (fill_room && max_added) { /* the slots the power of two gives anyway, up to load 1/2: merged pieces */
        size_t room = slots_for(listing.n_tokens, max_added) / 2 - listing.n_tokens;
        if (room > max_added) max_added = room;
    }
    if (allocate(table, listing.n_tokens, max_added, seed) < 0) return -1;
    listing.by_rank = calloc(listing.n_ranks ? listing.n_ranks : 1, sizeof *listing.by_rank);
    if (!listing.by_rank) {
        tk_short_table_free(table);
        return -1;
    }
    /* Inserted by rank, lowest first: BPE's first merges are its most frequent tokens, which then sit in
     * their home slot (one line read) and leave the longer probes to rare ones (measured: docs/decisions.md). */
    each_short_token(rank_table, merges_to_itself, &listing, list_token);
    size_t refused = 0;
    for (size_t rank = 0; rank < listing.n_ranks; rank++) {
        const tk_short_key *key = &listing.by_rank[rank];
        if (!key->hi) continue;
        uint32_t id = (uint32_t)rank;
        refused += !tk_short_table_put(table, key, tk_short_hash(table, key), &id, 1, 0, 0); /* in rank order: the frequent tokens at home */
    }
    free(listing.by_rank);
    table->all_tokens = refused == 0;
    /* Where each token went, by slot, for tk_short_table_refill (nothing but tokens is in yet). */
    size_t taken = 0;
    for (uint64_t i = 0; i <= table->mask; i++) taken += table->entries[i].key.hi != 0;
    table->built = malloc((taken ? taken : 1) * sizeof *table->built);
    if (!table->built) {
        tk_short_table_free(table);
        return -1;
    }
    for (uint64_t i = 0; i <= table->mask; i++) {
        const tk_short_entry *e = &table->entries[i];
        if (e->key.hi) table->built[table->n_built++] = (tk_short_built){e->key, (uint32_t)i, e->ids[0]};
    }
    return 0;
}

int tk_short_table_init_empty(tk_short_table *table, size_t max_added, uint64_t seed) {
    if (allocate(table, 0, max_added, seed) < 0) return -1;
    table->all_tokens = 1; /* every token it was asked for (none) is in */
    return 0;
}
