/* The short-piece table: the ids of pieces of at most TK_SHORT_MAX_LEN bytes, tokens and merged pieces
 * alike, in one open-addressing table with the ids inline (module.c's loop over the pieces of a text).
 *
 *   tk_short_table t;
 *   tk_short_table_build(&t, &rank_table, NULL, 65536, seed);    every token, room for 65,536 merged pieces
 *   tk_short_key k = tk_short_key_of(piece, len, readable);
 *   uint64_t h = tk_short_hash(&t, &k);   __builtin_prefetch(tk_short_slot(&t, h));   ... a few pieces later:
 *   const tk_short_entry *e = tk_short_find(&t, &k, h);   e: tk_short_copy_ids(&t, e, out) ids; NULL: not held
 *   tk_short_table_put(&t, &k, h, ids, n, TK_SHORT_ADDED);  a merged piece's ids, while tk_short_table_has_room
 *
 * Why one table: the loop over pieces otherwise branches on a piece's length (1-2 bytes: direct arrays;
 * 3-8: the rank slots; 9+: a slot, then the token's record) and then on whether it is a token (if not: the
 * piece cache's slot, entry and arena, in two generations); the kind of the next piece is as good as
 * random to the branch predictor, and each of those reads is a cache miss of its own. Here a piece of up
 * to 15 bytes is a key of two words, one probe of a line fetched a few pieces earlier, one compare, and its
 * ids. (fastokens' per-thread "pretoken cache" is of this kind: docs/decisions.md.)
 *
 * A miss proves nothing by itself (an insert that would probe further than TK_SHORT_MAX_PROBES is dropped):
 * `all_tokens` says whether every token the build was asked for is in, so that a miss proves a piece is no
 * such token. Merged pieces are added until max_added of them (or the ids of those of more than
 * TK_SHORT_INLINE_IDS fill `more`); once it is full, the piece cache takes new ones until its one user (below)
 * refills it (module.c, once it has served 1 GiB of text full, calls without the GIL going without it
 * until then; the SentencePiece core never does):
 * tk_short_table_refill empties it back to the tokens alone, each in the slot the build gave it.
 * Why refill rather than keep the first pieces for good: one client's 1.5 MB of random words filled the table
 * for the life of the worker, and everyone's later English, code and multilingual text ran 1.06-1.27x slower
 * (its new pieces through the piece cache, tokens moved off their home slots by the junk: docs/decisions.md,
 * "The short table refills"). A refill writes the whole table (~2.3 ms for 16 MiB), and the pieces in use are
 * merged and added again after it. So the
 * memory is fixed when the table is built: 32 bytes a slot, slots the power of two >= 2 x (tokens of
 * <= 15 bytes + max_added), 16 bytes per max_added (+60) for `more`, and 24 bytes a token for where the build
 * put it (cl100k_base and o200k_base with 65,536: 16 MiB + 1 MiB + 2.3 / 4.5 MiB).
 *
 * Threads: any number of writers (module.c's callers with the GIL, batch_encode.c's workers without it)
 * and readers at once. A writer claims an empty slot by a compare-and-swap of its key.hi (0 ->
 * TK_SHORT_CLAIMED_HI, which no key has: readers go past it as past any other key), writes the ids, n and
 * key.lo, and key.hi last, with release order; a reader reads key.hi first, with acquire order, so it sees
 * an entry whole or not at all. Among several users a slot is written once and never changes after (but for
 * a claimed slot given back when `more` has no room). A miss proves nothing beyond `all_tokens`: every
 * token is in before the table is shared, and nothing is removed while it is (a refill runs for its one user
 * and puts every token back where the build put it), so no slot on a token's probe path is ever empty. Two
 * writers of one piece may each take a slot: it is then held twice, with the same ids.
 *
 * Home slots: a caller that knows it is the table's one user (module.c: the GIL held and no call without it
 * running, `alone`) puts a merged piece in its home slot and moves the entry there to the empty slot that
 * ended the probe, and moves a piece found past its home into it (piece_batch.h), the entry there going to
 * where the piece was. Linear probing keeps every key found: the entry moved out of a home slot only moves
 * further along a run of taken slots that already reached it from its own home, and only as far as its probe
 * from there reaches (TK_SHORT_MAX_PROBES, tk_short_reaches; else nothing moves). So the pieces of the text
 * being encoded sit in their home slot, where the loop's prefetched compare finds them: a piece past its home
 * costs a mispredicted compare and a probe of lines not fetched ahead (ml18 found 16 % of them there on
 * replayed multilingual text at half load, 32 % at two thirds; docs/decisions.md, "Pieces moved home"). */
#ifndef TOKEND_SHORT_TABLE_H
#define TOKEND_SHORT_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "tokend_native.h"

#define TK_SHORT_MAX_LEN 15
#define TK_SHORT_INLINE_IDS 3
#define TK_SHORT_MAX_PROBES 64 /* linear probing at load 0.4 over 2^18 slots makes runs of 20-40 */
#define TK_SHORT_ADDED 0x80000000u /* in tk_short_entry.n: a merged piece's entry, not a token's */
#define TK_SHORT_CLAIMED_HI 1ull /* key.hi of a slot a writer is filling: no key's (its length byte is 0), not empty */
/* Entries' n added up over a batch of pieces (piece_batch.h; at most 2^24 of them): one add a piece counts
 * both its ids (the low 31 bits: 15 at most each) and whether it was a merged piece (bit 31 and up). */
static inline uint64_t tk_short_sum_ids(uint64_t sum) { return sum & 0x7fffffffu; }
static inline uint64_t tk_short_sum_added(uint64_t sum) { return sum >> 31; }

/* A piece's bytes zero-padded to 16, its length in the last byte (so "a" and "a\0" differ); hi == 0: an
 * empty slot (every key has a length >= 1). */
typedef struct {
    uint64_t lo, hi;
} tk_short_key;

typedef struct {
    tk_short_key key;
    uint32_t ids[TK_SHORT_INLINE_IDS]; /* n <= 3: the ids; more: ids[0] is where they start in `more` */
    uint32_t n;                        /* how many ids (low byte), | TK_SHORT_ADDED for a merged piece */
} tk_short_entry;                      /* 32 bytes: two a cache line */

/* A token's entry as the build left it: its slot, key and id (24 bytes, not the entry's 32). */
typedef struct {
    tk_short_key key;
    uint32_t slot, id;
} tk_short_built;

typedef struct {
    tk_short_entry *entries; /* NULL: no table */
    uint64_t mask;           /* slots - 1 */
    unsigned shift;          /* 64 - log2(slots): a hash's top bits name its home slot */
    uint64_t seed, seed_hi;
    size_t n_tokens, max_added;
    uint32_t *more;          /* ids of the entries of more than TK_SHORT_INLINE_IDS, back to back */
    size_t more_cap;
    int all_tokens;          /* every token asked for is in: a miss proves a piece is none of them */
    tk_table_memory memory;
    tk_short_built *built;   /* the tokens as the build placed them, by slot (tk_short_table_refill) */
    size_t n_built;
    size_t refills;          /* tk_short_table_refill's so far */
    /* Written by every add (atomically), so a cache line away from the fields every look-up reads. */
    char apart_[64];
    size_t n_added, more_used;
} tk_short_table;

/* The table of the tokens of `rank_table` of at most TK_SHORT_MAX_LEN bytes (with `merges_to_itself`:
 * only the ranks it marks, the tokens a piece equal to encodes to alone under the pair rule; NULL: all),
 * their id their rank, with room for max_added merged pieces (`fill_room`: for more, as many as the slots hold at load
 * 1/2 beside the tokens; the slots are a power of two, so cl100k_base's 99,226 tokens and 65,536 asked for get
 * 2^19 slots, room for 162,918). 0, or -1 when out of memory (then the table
 * is empty: entries NULL). Touches no Python object: runs without the GIL. */
int tk_short_table_build(tk_short_table *table, const tk_rank_table *rank_table, const uint8_t *merges_to_itself,
                         size_t max_added, int fill_room, uint64_t seed);
/* A table of no tokens with room for max_added pieces (the SentencePiece core's segments: sp_module.c); 0, or -1
 * when out of memory (then entries NULL). */
int tk_short_table_init_empty(tk_short_table *table, size_t max_added, uint64_t seed);
void tk_short_table_free(tk_short_table *table);
/* Adds a piece's ids (1 <= n <= TK_SHORT_MAX_LEN; `flags`: 0 or TK_SHORT_ADDED): 1 when added, 2 when it
 * was there already, 0 when dropped (too many probes, or no room in `more`). Callers add merged pieces only
 * while tk_short_table_has_room; those added (TK_SHORT_ADDED) are counted in n_added. Safe beside other
 * writers and readers (Threads, above); `alone` (1): the caller is the table's one user, and the piece goes
 * to its home slot (Home slots, above), claimed without a compare-and-swap. */
int tk_short_table_put(tk_short_table *table, const tk_short_key *key, uint64_t hash, const uint32_t *ids, uint32_t n,
                       uint32_t flags, int alone);

/* Approximate while writers add at once (each may pass max_added by one, and n_added may miss an add made
 * beside another: `more` and the probe limit still hold their bounds). */
static inline int tk_short_table_has_room(const tk_short_table *table) {
    return __atomic_load_n(&table->n_added, __ATOMIC_RELAXED) < table->max_added &&
           __atomic_load_n(&table->more_used, __ATOMIC_RELAXED) + TK_SHORT_MAX_LEN <= table->more_cap;
}

/* Whether merged pieces filled the table (a table built with max_added 0 is never full: it takes none). */
static inline int tk_short_table_full(const tk_short_table *table) {
    return table->entries && table->max_added && !tk_short_table_has_room(table);
}

/* The table back to the state its build left: the tokens alone, each in its slot, no merged piece, `more`
 * empty (so all_tokens still holds). Only for the table's one user: no other thread may read or write it
 * meanwhile, nor hold an entry of it across the call (module.c: the GIL held and no call without it
 * running). Writes every slot once, in order. */
void tk_short_table_refill(tk_short_table *table);

extern const uint64_t tk_short_low_mask[TK_SHORT_MAX_LEN + 1], tk_short_high_mask[TK_SHORT_MAX_LEN + 1];

/* The key of piece[0, len) (1 <= len <= 15); `readable`: bytes that may be read from piece on (>= len). */
static inline tk_short_key tk_short_key_of(const uint8_t *piece, size_t len, size_t readable) {
    uint64_t w[2] = {0, 0};
    if (__builtin_expect(readable >= 16, 1))
        __builtin_memcpy(w, piece, 16);
    else
        __builtin_memcpy(w, piece, len);
    return (tk_short_key){w[0] & tk_short_low_mask[len], (w[1] & tk_short_high_mask[len]) | (uint64_t)len << 56};
}

/* Seeded per table (the core's secret seed). The slot is the hash's top bits (tk_short_slot): the top bit
 * of a product depends on every bit of its factor, so every bit of the key reaches the slot (the low bits
 * depend on the factor's low bits only: byte 14 and the length byte would never move a key). */
static inline uint64_t tk_short_hash(const tk_short_table *table, const tk_short_key *key) {
    return ((key->lo ^ table->seed) * 0x9e3779b97f4a7c15ull) ^ ((key->hi ^ table->seed_hi) * 0xbf58476d1ce4e5b9ull);
}

static inline uint64_t tk_short_home(const tk_short_table *table, uint64_t hash) { return hash >> table->shift; }

/* Whether `entry` (taken) may be moved to `to` and still be found: its probe from its own home reaches `to`
 * within TK_SHORT_MAX_PROBES (Home slots: a move further along the run would otherwise lose it past the probe
 * limit, and a token lost from a table holding `all_tokens` reads as no token: wrong ids). */
static inline int tk_short_reaches(const tk_short_table *table, const tk_short_entry *entry, const tk_short_entry *to) {
    uint64_t home = tk_short_home(table, tk_short_hash(table, &entry->key));
    return (((uint64_t)(to - table->entries) - home) & table->mask) < TK_SHORT_MAX_PROBES;
}

static inline const tk_short_entry *tk_short_slot(const tk_short_table *table, uint64_t hash) {
    return &table->entries[tk_short_home(table, hash)];
}

/* tk_short_find past the home slot `home`, which holds another key than `key`. */
static inline const tk_short_entry *tk_short_find_after(const tk_short_table *table, const tk_short_entry *home,
                                                        const tk_short_key *key) {
    uint64_t i = (uint64_t)(home - table->entries);
    for (int probe = 1; probe < TK_SHORT_MAX_PROBES; probe++) {
        i = (i + 1) & table->mask;
        const tk_short_entry *e = &table->entries[i];
        uint64_t hi = __atomic_load_n(&e->key.hi, __ATOMIC_ACQUIRE);
        if (hi == key->hi && e->key.lo == key->lo) return e;
        if (!hi) return NULL;
    }
    return NULL;
}

static inline const tk_short_entry *tk_short_find(const tk_short_table *table, const tk_short_key *key, uint64_t hash) {
    const tk_short_entry *home = tk_short_slot(table, hash);
    uint64_t hi = __atomic_load_n(&home->key.hi, __ATOMIC_ACQUIRE); /* a plain load on x86 and ARM64's ldar */
    if (hi == key->hi && home->key.lo == key->lo) return home;
    return hi ? tk_short_find_after(table, home, key) : NULL;
}

/* A found entry's ids to `out` (room for TK_SHORT_MAX_LEN: the inline ones are copied as 3); how many. */
static inline uint32_t tk_short_copy_ids(const tk_short_table *table, const tk_short_entry *e, uint32_t *out) {
    uint32_t n = e->n & 0xff;
    if (__builtin_expect(n <= TK_SHORT_INLINE_IDS, 1))
        __builtin_memcpy(out, e->ids, sizeof e->ids);
    else
        __builtin_memcpy(out, table->more + e->ids[0], n * sizeof *out);
    return n;
}

/* ---- a piece on its way through a loop over pieces ---------------------------------------------- */
/* A piece the short table does not hand out, in piece_batch.h's loop (module.c's emit_text and
 * batch_encode.c's encode_item): a short piece the table lacks (looked up as its batch is handed out), or a
 * longer one (prepared when its batch is found, resolved before the batch is handed out); a piece of <= 15
 * bytes takes the short table instead of the rank table when there is one. */
#define TK_SHORT_ABSENT UINT32_MAX      /* n_short: a key made, looked up, not held */
#define TK_SHORT_MERGE (UINT32_MAX - 1) /* n_short: no token, not held: merge it, then add it */
typedef struct {
    tk_pending_piece p;
    tk_short_key key;
    uint64_t short_hash;
    uint32_t n_short; /* TK_SHORT_ABSENT or TK_SHORT_MERGE, or 0: the rank table's way (p) */
    int has_key;      /* key and short_hash are set */
} tk_short_pending;

/* A piece that takes the rank table's way (longer than TK_SHORT_MAX_LEN, or no short table): prepared for
 * it (tk_prepare_piece). */
static inline void tk_short_prepare(const tk_rank_table *table, const uint8_t *text, size_t len, size_t start,
                                    size_t n, tk_short_pending *s) {
    s->n_short = 0;
    s->has_key = 0;
    tk_prepare_piece(table, text, len, start, n, &s->p);
}

/* Resolved: a short piece the table lacks (TK_SHORT_ABSENT) is no token when the table holds them all:
 * then, when the caller merges and adds such pieces (of at most `add_up_to` bytes; 0: it adds none), it is
 * marked TK_SHORT_MERGE (no rank table, no piece cache); else it is ranked none and its piece-cache slots
 * are fetched. Without all tokens in the table the piece takes the rank table's way, unprefetched (rare: a
 * token the build could not place). A piece prepared for the rank table is looked up there. */
static inline void tk_short_resolve(const tk_short_table *shorts, const tk_rank_table *table,
                                    const tk_piece_cache *cache, const uint8_t *text, size_t len, tk_short_pending *s,
                                    size_t add_up_to) {
    if (s->n_short == TK_SHORT_ABSENT) {
        if (shorts->all_tokens && s->p.len <= add_up_to) {
            s->n_short = TK_SHORT_MERGE;
            return;
        }
        s->n_short = 0;
        if (shorts->all_tokens) {
            s->p.rank = TK_NO_RANK;
            s->p.hash = tk_piece_hash(table, text + s->p.start, s->p.len);
            tk_prefetch_cached(cache, &s->p);
            return;
        }
        tk_prepare_piece(table, text, len, s->p.start, s->p.len, &s->p);
    }
    tk_resolve_piece(table, cache, text, &s->p);
}

#endif
