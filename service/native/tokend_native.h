/* tokend's native core: shared declarations of the C parts of the engine.
 *
 * Scope: pure computation on byte strings handed in by module.c. No Python objects outside module.c, and
 * no locks: module.c releases the GIL only around code that reads immutable data (the rank table, the
 * text) and its own buffers (the merge of a long piece, finding the pieces of a big text); the piece
 * cache is only used with the GIL held (batch workers use caches of their own: batch_encode.h).
 *   rank_table.c   bytes -> rank hash table (the vocabulary)
 *   bpe_merge.c    tiktoken's merge rule for one piece: short pieces O(n^2), long pieces heap O(n log n)
 *   short_merge.h  the short pieces' merge over linked parts, for tiktoken's rule and merged-id-ordered lists
 *   bpe_bucket_merge.c  the same rule for huge pieces, rank by rank: O(n + ranks), 1 bit + 4 bytes a byte
 *   rank_marks.c   its per-rank arrays, kept zeroed between merges and lent out (rank_marks.h)
 *   bpe_run_merge.c  the same rule for huge pieces of a few long byte runs, on runs of equal tokens
 *   pair_table.c   (left id, right id) -> (priority, merged id): the merge list of pair-priority BPE
 *   pair_merge.c   the pair-priority merge rule (Hugging Face tokenizers, GPT-2's encoder.py, llama.cpp)
 *   merge_index.c  the same rule looked up through the vocabulary (merged token -> its merges), when every
 *                  merge joins bytes (byte-level lists do): the rank rule's cheap lookups
 *   piece_cache.c  bounded two-generation cache piece -> ids
 *   short_table.c  pieces of <= 15 bytes -> ids, tokens and merged pieces in one table (short_table.h)
 *   piece_batch.h  the loop over a text's pieces, 64 at a time: found, looked up, handed out in order
 *   table_memory.c memory for the tables probed at random, on transparent huge pages when >= 2 MiB
 *   pretokenize.c  hand-written scanners for the hottest split patterns (GPT-2, cl100k, o200k, Llama 3,
 *                  Qwen 2, Tekken, DeepSeek-V3); split_program.h has the general matcher for any other;
 *                  ascii_runs.h their byte-class table and runs of ASCII 16 bytes a step (SSE2)
 */
#ifndef TOKEND_NATIVE_H
#define TOKEND_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#define TK_NO_RANK UINT32_MAX

/* For a function whose only effect is __builtin_prefetch: GCC (12, -O3) takes a prefetch for no side effect,
 * finds such a function pure and then drops each call it did not inline early, as a pure call whose result
 * is unused. tk_prefetch_cached had compiled to nothing in module.c that way; inlined always, its prefetches
 * land in the caller, where they stay (tests/engine/test_prefetches_compiled.py checks the object code). */
#define TK_PREFETCHING __attribute__((always_inline))

/* ---- memory for tables probed at random (table_memory.c) --------------------------------------- */
typedef struct {
    void *base;
    size_t mapped_bytes;  /* 0: from the C heap */
} tk_table_memory;

/* `size` zeroed bytes, 64-byte aligned, on huge pages when size >= 2 MiB and the kernel gives them; NULL when
 * out of memory. tk_table_memory_free (also on a zeroed or failed `memory`) gives them back. For tables
 * written whole when a model loads (the rank table, pair table, merge index); not for the piece cache, which
 * fills as text comes and on huge pages paid a 2 MiB clear per first touch of a range (table_memory.c). */
void *tk_table_memory_alloc(tk_table_memory *memory, size_t size);
void tk_table_memory_free(tk_table_memory *memory);

/* ---- hashing ---------------------------------------------------------------------------------- */
uint64_t tk_hash(const uint8_t *data, size_t len, uint64_t seed);

/* ---- rank table: the vocabulary, bytes -> rank ---------------------------------------------- */
typedef struct {
    uint64_t prefix;      /* the token's first (up to) 8 bytes, zero-padded; 0 with len 0 = empty slot */
    uint32_t rank;        /* tokens longer than 8 bytes: offset of the token's record in `bytes` instead */
    uint32_t len;
} tk_rank_slot;

typedef struct {
    uint32_t byte_rank[256];   /* 1-byte tokens, direct */
    uint32_t *pair_rank;       /* 2-byte tokens, direct: [first << 8 | second] (65,536 entries) */
    tk_rank_slot *slots;       /* 3+ byte tokens: open addressing, load factor <= 2/3 */
    uint64_t mask;
    /* Tokens longer than 8 bytes, back to back: a record per token, its rank (4 bytes, unaligned) then its
     * bytes after the first 8, or its last 8 when it has fewer than 16 (rank_table.c: record_tail). The slot
     * names the record, so a hit reads the slot's line and the record's, nothing indexed by rank between. */
    uint8_t *bytes;
    size_t bytes_used;
    uint64_t seed;
    /* Filter in front of `slots`: bit (hash >> 32) & filter_mask is set for every token of 3+ bytes, so a
     * clear bit proves a byte string is no token with one read of a small array (16-32 bits per token:
     * ~1 in 20 of the misses gets through; rank_table.c) instead of a probe of the big one. NULL: no filter. */
    uint64_t *filter;
    uint64_t filter_mask;
    /* Tokens of exactly 3 bytes drawn from the trigram symbols (ASCII letters, digits and space; see
     * tk_trigram_rank): a bit each in `trigrams` (2^18 bits, 32 KiB), the set bits before each word counted in
     * `trigrams_before` (4096 entries), their ranks in bit order in `trigram_ranks` (NULL until
     * tk_rank_table_finish). */
    uint64_t *trigrams;
    uint32_t *trigrams_before;
    uint32_t *trigram_ranks;
    /* Tokens of exactly 4 trigram symbols: a bit at the trigram index of their first three (`quad_heads`) and
     * of their last three (`quad_tails`); a 4-byte string of symbols with either bit clear is no token. */
    uint64_t *quad_heads, *quad_tails;
    size_t max_len;            /* bytes of the longest token: a longer byte string is no token, unhashed */
    /* Where no token can cross a boundary between two characters of 2-4 bytes (tk_cut_between): bits of the
     * byte pairs (last byte of the first character, first byte of the second) at such a boundary inside a
     * token that holds only part of either character (TK_CUT_PAIR_BITS), and a one-hash filter of the
     * character pairs at such a boundary inside a token that holds both whole (TK_CUT_CHAR_BITS); one calloc,
     * NULL until tk_rank_table_init_cuts. */
    uint64_t *cut_pairs;
    uint64_t *cut_chars;
    /* A bit per rank, set once merging the token's own bytes gave that token alone (bpe_merge.c's
     * merge_segment: a cut segment equal to a token may then skip its merge; one that does not merge to
     * itself never does). Set by any thread, with atomic ORs; n_merged_bits ranks. */
    uint64_t *merges_to_itself;
    size_t n_merged_bits;
    /* Characters tiktoken's rule starts from whole (char_atoms.c), for tk_bpe_merge's short pieces; owned by the
     * table's user (module.c's core builds them after tk_rank_table_finish, frees them before the table); NULL:
     * none (a list's rule keeps its own in tk_merge_index). */
    const struct tk_char_atoms *atoms;
    tk_table_memory memory;    /* one block holding slots, pair_rank, filter, trigrams and bytes (table_memory.c) */
} tk_rank_table;

#define TK_CUT_PAIR_BITS 65536
#define TK_CUT_CHAR_BITS (1u << 18)

/* Bytes of the UTF-8 character a byte starts, by the byte alone (0: a continuation byte; 4 for F0-FF). The
 * cut tables are built and read with this one definition, valid text or not. */
static inline size_t tk_utf8_lead_len(uint8_t byte) {
    return byte < 0x80 ? 1 : byte < 0xC0 ? 0 : byte < 0xE0 ? 2 : byte < 0xF0 ? 3 : 4;
}

/* The bytes of a character of 2-4 bytes as a word (zero-padded): the key of tk_cut_chars' filter. */
static inline uint32_t tk_utf8_char_word(const uint8_t *bytes, size_t n) {
    uint32_t word = 0;
    for (size_t k = 0; k < n; k++) word |= (uint32_t)bytes[k] << (8 * k);
    return word;
}

static inline uint64_t tk_cut_char_bit(uint32_t first, uint32_t second) {
    return (((uint64_t)first << 32 | second) * 0x9e3779b97f4a7c15ull) >> (64 - 18);
}

/* 1 when no token of `table` can cross the boundary between the characters first[0, n1) and second[0, n2)
 * (each a lead byte of its length and continuation bytes, 2-4 bytes): then no merge of tiktoken's rule ever
 * joins parts across it, and a piece merges as the pieces either side of it (bpe_merge.c). */
static inline int tk_cut_between(const tk_rank_table *table, const uint8_t *first, size_t n1, const uint8_t *second,
                                 size_t n2) {
    unsigned pair = (unsigned)first[n1 - 1] << 8 | second[0];
    if ((table->cut_pairs[pair >> 6] >> (pair & 63)) & 1) return 0;
    uint64_t bit = tk_cut_char_bit(tk_utf8_char_word(first, n1), tk_utf8_char_word(second, n2));
    return !((table->cut_chars[bit >> 6] >> (bit & 63)) & 1);
}

/* add() may be called `capacity` times after init (the tokens' bytes adding up to at most total_bytes);
 * init returns 0, or -1 on allocation failure. */
int tk_rank_table_init(tk_rank_table *table, size_t capacity, size_t total_bytes, uint64_t seed);
void tk_rank_table_add(tk_rank_table *table, const uint8_t *token, size_t len, uint32_t rank);
/* After the last add: the trigram tables' counts and ranks (tk_trigram_rank answers from then on). 0, or -1
 * when out of memory (then lookups go without them). */
int tk_rank_table_finish(tk_rank_table *table);
/* The cut tables (tk_cut_between) of tiktoken's rule: init_cuts once for ranks below n_ranks (0, or -1 when
 * out of memory), then
 * add_cuts for every token. A table without them (cut_pairs NULL) is never cut. In a loop of their own
 * after the adds: inside tk_rank_table_add, the branches of add_cuts cost o200k_base's load 12.7 -> 17.4 ms,
 * the slots' cache misses no longer overlapping; apart, ~1 ms. */
int tk_rank_table_init_cuts(tk_rank_table *table, size_t n_ranks);
void tk_rank_table_add_cuts(tk_rank_table *table, const uint8_t *token, size_t len);

/* Whether a token has a lead byte of 2-4 after its first byte: only those add cuts (most have none). */
static inline int tk_has_inner_lead(const uint8_t *token, size_t len) {
    for (size_t k = 1; k < len; k++)
        if (token[k] >= 0xC0) return 1;
    return 0;
}
void tk_rank_table_free(tk_rank_table *table);
/* The rank of a token longer than 8 bytes (out of line: rare); `prefix` = tk_token_prefix(token, len). */
uint32_t tk_rank_of_long(const tk_rank_table *table, const uint8_t *token, size_t len, uint64_t prefix);

static inline uint64_t tk_mix(uint64_t x) {
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    return x;
}

/* The first min(len, 8) bytes of `token` as a word, zero-padded (the byte at offset k in bits 8k..8k+7 on
 * little-endian machines). BPE looks up short byte strings more than anything else, so this avoids a
 * variable-length copy: 4-7 bytes are two overlapping 4-byte loads, 3 a 2-byte load and a byte; nothing is
 * read past the token. */
static inline uint64_t tk_token_prefix(const uint8_t *token, size_t len) {
    uint64_t word = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (len >= 8) {
        __builtin_memcpy(&word, token, 8);
        return word;
    }
    if (len >= 4) {
        uint32_t low, high;
        __builtin_memcpy(&low, token, 4);
        __builtin_memcpy(&high, token + len - 4, 4);
        return (uint64_t)low | ((uint64_t)high << (8 * (len - 4))); /* the overlap ORs equal bytes */
    }
    if (len == 3) {
        uint16_t low;
        __builtin_memcpy(&low, token, 2);
        return (uint64_t)low | ((uint64_t)token[2] << 16);
    }
#endif
    __builtin_memcpy(&word, token, len < 8 ? len : 8);
    return word;
}

/* a[0..n) == b[0..n), inline: the lookups compare short keys, where a call to memcmp costs more than the
 * comparison. */
static inline int tk_bytes_equal(const uint8_t *a, const uint8_t *b, size_t n) {
    if (n < 8) return tk_token_prefix(a, n) == tk_token_prefix(b, n);
    uint64_t x, y;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        __builtin_memcpy(&x, a + i, 8);
        __builtin_memcpy(&y, b + i, 8);
        if (x != y) return 0;
    }
    __builtin_memcpy(&x, a + n - 8, 8); /* the last 8 bytes (overlapping the loop's, if n is not a multiple) */
    __builtin_memcpy(&y, b + n - 8, 8);
    return x == y;
}

static inline uint64_t tk_short_token_hash(const tk_rank_table *table, uint64_t prefix, size_t len) {
    return tk_mix((prefix ^ table->seed) * 0xbf58476d1ce4e5b9ull + len);
}

/* The rank of `token`, TK_NO_RANK when it is not one. Inline: the merge loops and the piece loop call it
 * for every candidate pair and every piece. */
/* 0 when the filter proves that no token has the slot hash `hash`. */
static inline int tk_rank_filter_passes(const tk_rank_table *table, uint64_t hash) {
    if (!table->filter) return 1;
    uint64_t bit = (hash >> 32) & table->filter_mask;
    return (table->filter[bit >> 6] >> (bit & 63)) & 1;
}

/* A byte's 6-bit symbol in a trigram index (ASCII letters, digits and space), or 64 for any other byte. */
extern const uint8_t tk_trigram_code[256];
#define TK_TRIGRAM_BITS (1u << 18)

static inline unsigned tk_popcount64(uint64_t x) { /* no -mpopcnt: a few ALU steps, not libgcc's call */
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* The place of token[0..3) among the 2^18 bits of a trigram bitmap (`trigrams`, `quad_heads`, `quad_tails`), the
 * symbols' codes a << 12 | b << 6 | c, in *index; returns the three codes ORed, below 64 exactly when all three
 * bytes are symbols (else *index is no place). An OR rather than a flag, so that a 4-byte string's two indexes
 * are checked with one compare, as the code written out in each place did. The one definition of the index,
 * for the tables' builders (rank_table.c) and readers alike:
 *     unsigned index;
 *     if (tk_trigram_index(token, &index) < 64 && tk_trigram_bit(table->trigrams, index)) ...   // a 3-byte token */
static inline unsigned tk_trigram_index(const uint8_t *token, unsigned *index) {
    unsigned a = tk_trigram_code[token[0]], b = tk_trigram_code[token[1]], c = tk_trigram_code[token[2]];
    *index = a << 12 | b << 6 | c;
    return a | b | c;
}

/* Bit `index` (tk_trigram_index) of a trigram bitmap. */
static inline uint64_t tk_trigram_bit(const uint64_t *bits, unsigned index) { return (bits[index >> 6] >> (index & 63)) & 1; }

/* Where the rank of the set bit `index` of `trigrams` sits in trigram_ranks: the set bits before it. `word` is
 * trigrams[index >> 6], which the caller has read to test the bit. */
static inline uint32_t tk_trigram_place(const tk_rank_table *table, unsigned index, uint64_t word) {
    return table->trigrams_before[index >> 6] + tk_popcount64(word & ((1ull << (index & 63)) - 1));
}

/* 1 when token[0..3) is three trigram symbols, with *rank its rank (TK_NO_RANK: none) from the trigram tables
 * (32 KiB of bits, 16 KiB of counts and 4 bytes a 3-byte token: they stay in the core's caches, where the
 * filter and slots of the rank table do not; rank_table.c); 0 otherwise (then *rank is unset), and before
 * tk_rank_table_finish. The merges' look-ups of 3-byte candidates ask it first:
 *     uint32_t rank;
 *     if (len == 3 && tk_trigram_rank(table, token, &rank)) return rank;   // else the filter and slots */
static inline int tk_trigram_rank(const tk_rank_table *table, const uint8_t *token, uint32_t *rank) {
    unsigned index;
    if (tk_trigram_index(token, &index) >= 64 || !table->trigram_ranks) return 0;
    /* The word read and tested here, not through tk_trigram_bit: so the merges compile to the instructions the
     * code written out did; through it, GCC kept one more register live in tk_rank_of_readable (a push and a
     * pop a call, +0.17 % instructions on o200k random letters, callgrind). */
    unsigned shift = index & 63;
    uint64_t word = table->trigrams[index >> 6];
    if (!((word >> shift) & 1)) {
        *rank = TK_NO_RANK;
        return 1;
    }
    *rank = table->trigram_ranks[tk_trigram_place(table, index, word)];
    return 1;
}

/* 1 when the quad bits prove token[0..4) is no token: four trigram symbols whose first or last three start or
 * end no 4-byte token. */
static inline int tk_quad_absent(const tk_rank_table *table, const uint8_t *token) {
    unsigned head, tail;
    if ((tk_trigram_index(token, &head) | tk_trigram_index(token + 1, &tail)) >= 64 || !table->trigram_ranks) return 0;
    return !(tk_trigram_bit(table->quad_heads, head) & tk_trigram_bit(table->quad_tails, tail));
}

static inline uint32_t tk_rank_of(const tk_rank_table *table, const uint8_t *token, size_t len) {
    if (len <= 2) return len == 2 ? table->pair_rank[(token[0] << 8) | token[1]] : len ? table->byte_rank[token[0]] : TK_NO_RANK;
    uint64_t prefix = tk_token_prefix(token, len);
    if (len > 8) return tk_rank_of_long(table, token, len, prefix);
    uint64_t hash = tk_short_token_hash(table, prefix, len);
    if (!tk_rank_filter_passes(table, hash)) return TK_NO_RANK;
    uint64_t i = hash & table->mask;
    for (;;) {
        const tk_rank_slot *slot = &table->slots[i];
        if (slot->prefix == prefix && slot->len == len) return slot->rank;
        if (!slot->len) return TK_NO_RANK; /* len 0 (empty) never matches: len >= 3 here */
        i = (i + 1) & table->mask;
    }
}

/* The hash a piece of text is known by, in the rank table and in the piece cache alike: one hash per piece
 * serves the whole-piece lookup and the cache (tk_rank_of_piece computes it). */
static inline uint64_t tk_piece_hash(const tk_rank_table *table, const uint8_t *piece, size_t len) {
    return len <= 8 ? tk_short_token_hash(table, tk_token_prefix(piece, len), len) : tk_hash(piece, len, table->seed);
}

uint32_t tk_rank_of_long_hashed(const tk_rank_table *table, const uint8_t *token, size_t len, uint64_t hash);

/* tk_rank_of_short_hashed past its filter: the slots' probe alone. */
static inline uint32_t tk_rank_of_short_probed(const tk_rank_table *table, uint64_t prefix, size_t len, uint64_t hash) {
    for (uint64_t i = hash & table->mask;; i = (i + 1) & table->mask) {
        const tk_rank_slot *slot = &table->slots[i];
        if (slot->prefix == prefix && slot->len == len) return slot->rank;
        if (!slot->len) return TK_NO_RANK;
    }
}

/* The rank of a token of 3-8 bytes given as its prefix word and tk_short_token_hash. */
static inline uint32_t tk_rank_of_short_hashed(const tk_rank_table *table, uint64_t prefix, size_t len, uint64_t hash) {
    if (!tk_rank_filter_passes(table, hash)) return TK_NO_RANK;
    return tk_rank_of_short_probed(table, prefix, len, hash);
}

/* tk_token_prefix of a token of 1-8 bytes when `readable` bytes (8 or more: the common case) may be read
 * from `token` on: one unaligned load and a mask, without tk_token_prefix's branches on the length, which
 * the lengths of consecutive pieces (or of a merge's candidate pairs) make as good as random to the branch
 * predictor. */
static inline uint64_t tk_token_prefix_readable(const uint8_t *token, size_t len, size_t readable) {
    if (readable < 8) return tk_token_prefix(token, len);
    uint64_t word;
    __builtin_memcpy(&word, token, 8);
    return word & (~0ull >> (64 - 8 * len));
}

/* tk_rank_of, with `readable` (>= len) bytes that may be read from `token` on: the rest of the piece or text. */
static inline uint32_t tk_rank_of_readable(const tk_rank_table *table, const uint8_t *token, size_t len,
                                           size_t readable) {
    if (len <= 2 || len > 8) return tk_rank_of(table, token, len);
    uint32_t rank;
    if (len == 3 && tk_trigram_rank(table, token, &rank)) return rank;
    if (len == 4 && tk_quad_absent(table, token)) return TK_NO_RANK;
    uint64_t prefix = tk_token_prefix_readable(token, len, readable);
    return tk_rank_of_short_hashed(table, prefix, len, tk_short_token_hash(table, prefix, len));
}

/* tk_rank_of for a whole piece of text (tk_rank_of_readable), and the piece's hash for the piece cache: one
 * hash serves both. Sets *hash to tk_piece_hash of the piece, except for pieces of 1-2 bytes (0: the
 * caller hashes the few it caches: the pair rule's) and pieces longer than TK_MAX_HASHED_PIECE (0: longer
 * than the cache's longest key and than any token, so no reason to read them twice). */
#define TK_MAX_HASHED_PIECE 1024
static inline uint32_t tk_rank_of_piece(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t readable,
                                        uint64_t *hash) {
    if (len <= 2) {
        *hash = 0;
        return len == 2 ? table->pair_rank[(piece[0] << 8) | piece[1]] : table->byte_rank[piece[0]];
    }
    if (len <= 8) {
        uint64_t prefix = tk_token_prefix_readable(piece, len, readable);
        *hash = tk_short_token_hash(table, prefix, len);
        return tk_rank_of_short_hashed(table, prefix, len, *hash);
    }
    if (len > TK_MAX_HASHED_PIECE) {
        *hash = 0;
        return TK_NO_RANK;
    }
    *hash = tk_hash(piece, len, table->seed);
    if (len > table->max_len || !tk_rank_filter_passes(table, *hash)) return TK_NO_RANK;
    return tk_rank_of_long_hashed(table, piece, len, *hash);
}

/* A piece of a text on its way through the loop over pieces (piece_batch.h), in steps a batch apart so that
 * each step's memory reads are in cache when the next needs them:
 * - found: tk_prepare_piece hashes it and prefetches its rank-table slot and filter word;
 * - once its batch is found: tk_resolve_piece looks it up (p->rank) and, when it is no token and may be
 *   cached, prefetches its piece-cache slots;
 * - once its batch is looked up: its ids are emitted (the token, or the cache's ids, or a merge).
 * The slot loads were the hottest instructions of the piece loop (neither the 4 MiB rank slots nor the cache
 * fit a core's cache); the out-of-order core overlaps a few of those loads, steps a batch apart more
 * (docs/decisions.md, "Whole-piece lookups started ahead" and "The piece cache's slots fetched before use"). */
typedef struct {
    size_t start, len;    /* the piece: text[start, start + len) */
    uint64_t prefix, hash; /* hash: as tk_rank_of_piece sets it; prefix: of a piece of 3-8 bytes */
    uint32_t rank;        /* set by tk_resolve_piece: the piece's rank, TK_NO_RANK when it is no token */
} tk_pending_piece;

static inline void tk_prepare_piece(const tk_rank_table *table, const uint8_t *text, size_t text_len, size_t start,
                                    size_t len, tk_pending_piece *p) {
    p->start = start;
    p->len = len;
    if (len <= 2 || len > TK_MAX_HASHED_PIECE) {
        p->hash = 0;
        return;
    }
    if (len <= 8) {
        p->prefix = tk_token_prefix_readable(text + start, len, text_len - start);
        p->hash = tk_short_token_hash(table, p->prefix, len);
    } else {
        p->hash = tk_hash(text + start, len, table->seed);
    }
    if (table->filter) __builtin_prefetch(&table->filter[((p->hash >> 32) & table->filter_mask) >> 6], 0, 3);
    __builtin_prefetch(&table->slots[p->hash & table->mask], 0, 3);
}

/* tk_rank_of_piece of a prepared piece of `text` (its hash is p->hash). */
static inline uint32_t tk_rank_of_prepared(const tk_rank_table *table, const uint8_t *text, const tk_pending_piece *p) {
    const uint8_t *piece = text + p->start;
    size_t len = p->len;
    if (len <= 2) return len == 2 ? table->pair_rank[(piece[0] << 8) | piece[1]] : table->byte_rank[piece[0]];
    if (len <= 8) return tk_rank_of_short_hashed(table, p->prefix, len, p->hash);
    if (len > TK_MAX_HASHED_PIECE || len > table->max_len || !tk_rank_filter_passes(table, p->hash)) return TK_NO_RANK;
    return tk_rank_of_long_hashed(table, piece, len, p->hash);
}

/* Lists of ids are built with the int object of the id TK_LIST_PREFETCH places ahead prefetched for writing
 * (its reference count): for ids spread over the vocabulary, the objects' cache misses were the cost of
 * building the list (encode of 1 MB of random letters 22.9 -> 21.9 ms, a replay of English documents
 * 6.3 -> 5.8 ms: docs/decisions.md). Both list builders (module.c, text_parts.c) also fetch the slot of the
 * objects' array naming the object TK_LIST_PREFETCH_SLOT places ahead: that prefetch's own load of the pointer
 * (a 1.6 MiB array for o200k_base) was where 28 % of ids_to_list's samples waited. The slot is a miss to memory
 * and an item a few ns, so the slot's distance is the one that counts: 32 -> 128 (object 16 -> 32), first-pass
 * encode 1.05-1.07x English and code, 1.02-1.03x multilingual; 128-256 all alike (docs/decisions.md, "The list
 * prefetch distances, swept"). Overridable (-D) so that a sweep builds each pair from the same tree. */
#ifndef TK_LIST_PREFETCH
#define TK_LIST_PREFETCH 32
#endif
#ifndef TK_LIST_PREFETCH_SLOT
#define TK_LIST_PREFETCH_SLOT 128
#endif

/* Pieces up to this length that are not tokens skip the piece cache: their merge is a few lookups in the
 * 2-byte table and the rank table, cheaper than the cache's hash, probes and copy. One 1 MB piece of random
 * letters (o200k_base, so ~250,000 pieces of mostly 2-6 bytes, each unseen): 0.106 -> 0.077 s at 6 bytes,
 * 0.085 s at 4; ordinary text did not move (within the machine's noise). 5 keeps every word of 5+ letters
 * after a space in the cache. */
#define TK_UNCACHED_PIECE_BYTES 5

/* ---- BPE merge ---------------------------------------------------------------------------------- */
/* A merge list's pair rule as the huge-piece merges (tk_bpe_merge_runs, tk_bpe_merge_buckets) take it: tiktoken's
 * rule (rank = the merged token's id) with the list's difference from it, for the two kinds of list whose order
 * is the merged ids' (merge_index.c); NULL for tiktoken's rule itself.
 * - left_len_by_id (a trained list, one merge per token): a pair is a candidate only when it is the merged
 *   token's one split (its left part that many bytes);
 * - ties_by_split (every split of every token, by (merged id, left id)): every split is a candidate, but two
 *   splits of one token tie differently (the lower left id, not the leftmost, goes first); the merges decline
 *   (-2) where that could change the outcome: a merge whose right part is also the left part of a pair of the
 *   same token split elsewhere. A guard, never seen to act: tiktoken's rule made no such three parts in 90,000
 *   random pieces of 5-40 bytes over 3,000 random vocabularies of one to three letters (docs/decisions.md). */
typedef struct {
    const uint16_t *left_len_by_id;
    int ties_by_split;
} tk_list_rule;

/* ---- characters formed before the merge (char_atoms.c) ------------------------------------------ */
/* The characters of 2-4 bytes whose token a piece's merge may start from (an "atom"), by the byte beside them in
 * the piece (none, at the piece's ends: always): `entry` is 1 + the token's id in its low 24 bits (0: no atom)
 * and TK_ATOM_* bits for ASCII neighbours; `left` has bit i set when the byte before it may be the continuation
 * byte 0x80 + i, `right` when the byte after it may be the lead byte 0xC0 + i. Blocks of 64 code points, only
 * those holding characters that are tokens. */
#define TK_CHAR_ATOM_CODES 0x110000
#define TK_ATOM_LEFT_SPACE (1u << 24)  /* the byte before it is a space */
#define TK_ATOM_LEFT_ASCII (1u << 25)  /* ... another ASCII byte */
#define TK_ATOM_RIGHT_ASCII (1u << 26) /* the byte after it is ASCII */
typedef struct {
    uint32_t entry;
    uint64_t left, right;
} tk_char_atom;

typedef struct tk_char_atoms {
    uint16_t *block_of;   /* code point >> 6 -> 1 + its block's index in `places` (0: none there); NULL: no atoms */
    tk_char_atom *places; /* 64 a block */
    size_t n_blocks, n_atoms;
} tk_char_atoms;

/* The atoms of a vocabulary (token_bytes / token_len: id -> bytes, NULL for none, ids below n_tokens) under `rule`
 * (NULL: tiktoken's; n_ids as tk_bpe_merge_group takes it), as the group merge applies it; 0, or -1 when out of
 * memory. No atoms: block_of NULL. */
int tk_char_atoms_build(tk_char_atoms *atoms, const tk_rank_table *table, const tk_list_rule *rule, size_t n_ids,
                        const uint8_t *const *token_bytes, const uint32_t *token_len, size_t n_tokens);
void tk_char_atoms_free(tk_char_atoms *atoms);

/* The bytes of the character starting at t[k] (2-4) when t[k, len) starts with one in its shortest form, up
 * to U+10FFFF (surrogates included: byte-level vocabularies may hold them), its code point in *code; 0
 * otherwise (ASCII, a continuation byte, a cut, overlong or invalid sequence). */
static inline size_t tk_utf8_char_at(const uint8_t *t, size_t k, size_t len, uint32_t *code) {
    uint8_t lead = t[k];
    size_t n = lead < 0xC2 ? 0 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF5 ? 4 : 0;
    if (!n || k + n > len) return 0;
    uint32_t c = lead & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((t[k + i] & 0xC0) != 0x80) return 0;
        c = c << 6 | (t[k + i] & 0x3F);
    }
    if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF))) return 0; /* overlong, too high */
    *code = c;
    return n;
}

/* The token id + 1 of the character at buf[k] of a piece of `len` bytes when it may start as an atom there, given
 * the bytes beside it; 0 when it stays bytes. *n: its bytes (0: no character of 2-4 bytes). */
static inline uint32_t tk_char_atom_at(const tk_char_atoms *atoms, const uint8_t *buf, size_t k, size_t len,
                                       size_t *n) {
    uint32_t code;
    *n = tk_utf8_char_at(buf, k, len, &code);
    if (!*n) return 0;
    uint16_t block = atoms->block_of[code >> 6];
    if (!block) return 0;
    const tk_char_atom *atom = &atoms->places[(size_t)(block - 1) * 64 + (code & 63)];
    uint32_t entry = atom->entry;
    if (k > 0) {
        uint8_t before = buf[k - 1];
        int ok = before < 0x80 ? (entry & (before == ' ' ? TK_ATOM_LEFT_SPACE : TK_ATOM_LEFT_ASCII)) != 0
                 : before < 0xC0 ? (int)((atom->left >> (before & 63)) & 1)
                                 : 0;
        if (!ok) return 0;
    }
    if (k + *n < len) {
        uint8_t after = buf[k + *n];
        int ok = after < 0x80 ? (entry & TK_ATOM_RIGHT_ASCII) != 0 : after >= 0xC0 ? (int)((atom->right >> (after & 63)) & 1) : 0;
        if (!ok) return 0;
    }
    return entry & 0xFFFFFF;
}

/* Ids of `piece` by tiktoken's rule, written to `out` (room for len ids, all of which it may use as
 * scratch; NULL: only count them); returns how many, or -1 when out of memory. Every single byte must
 * have a rank (checked by the caller when the table is built); every rank is below `n_ranks`. */
ptrdiff_t tk_bpe_merge(const tk_rank_table *table, const uint8_t *piece, size_t len, size_t n_ranks, uint32_t *out);
/* From here on the rank-ordered buckets (bpe_bucket_merge.c) replace the medium merge (bpe_medium_merge.c, from
 * TK_SHORT_MERGE_PIECE + 1 bytes); their set-up (the piece's distinct byte pairs; until they were lent zeroed,
 * rank_marks.h, also 4 bytes and a bit a rank of the vocabulary cleared) and their per-rank steps (a rank of a
 * piece of a few KiB has one or two merges, whose lookups then miss one after the other) are what a piece must be
 * long enough to pay for. 1 MB of random lowercase words of one length, cl100k_base / Llama 3 (CPU s, load ~4, two
 * runs each): the buckets at 511 0.121-0.148 / 0.118-0.145, 2,000 0.068-0.071 / 0.072-0.084, 4,000 0.051-0.067 /
 * 0.054-0.061, 8,000 0.041-0.045 / 0.046-0.054, 16,000 0.034-0.036 / 0.037-0.041; the medium merge at 511 0.035 /
 * 0.037-0.045, 2,000 0.040-0.053 / 0.050-0.053, 4,000 0.042-0.043 / 0.047-0.055, 8,000 0.050-0.053 / 0.062-0.066,
 * 16,000 0.060-0.063 / 0.061-0.068. It was 512 with the heap below (0.09-0.15 s a MB from 129 to 2,000 bytes), and
 * 16 KiB before the buckets' set-up was cut. With the arrays lent (min of 15 calls, load ~10, cl100k_base / o200k_base
 * / Llama 3): 4,096 letters even (buckets 0.046-0.062 / 0.053-0.060 / 0.051-0.074, medium 0.048-0.049 / 0.052-0.070 /
 * 0.050-0.051); the medium merge 1.0-1.15x slower at 6,000, 1.05-1.3x at 8,000, 1.2-1.6x at 16,000, 1.6-2.2x at
 * 30,000 (0.052-0.064 against 0.030-0.031 on cl100k_base): the medium merge up to 32 KiB, which its 15 position
 * bits would allow, was measured and not taken. */
#ifndef TK_BUCKET_PIECE
#define TK_BUCKET_PIECE 4096
#endif
/* Pieces from this many bytes (and up to 16 MiB) sort their first round's byte pairs in two passes, by first byte and
 * then by second (bpe_bucket_merge.c, scatter_by_rows), when they have many distinct pairs: there the one pass's
 * array (4 bytes a byte) outgrows the second-level cache. Two passes against one, paired in-process (count,
 * cl100k_base, words of random lowercase letters, 20 calls a side, load 6-7): 4-16 KiB 0.975-0.997x, 256 KiB
 * 1.01x, 512 KiB 1.10x, 1 MB 1.08-1.20x (docs/decisions.md, "the first round's scatter by rows"). */
#define TK_ROWS_PIECE ((size_t)1 << 19)
/* Pieces from this many bytes count their byte pairs into two tables at once (bpe_bucket_merge.c, count_pairs_in_two),
 * both cleared first; shorter ones count a pair at a time into one table, whose entries are set as pairs are first
 * seen. C probe, 26 random letters, one table ÷ two: 32 KiB 0.52x, 64 KiB 0.89x, 128 KiB 1.34x, 256 KiB 1.70x, 1 MB
 * 2.17x (docs/decisions.md, "Two counters"). */
#define TK_TWO_COUNTERS_PIECE ((size_t)1 << 18)
/* The same for a long piece by rank-ordered buckets (bpe_bucket_merge.c), by tiktoken's rule (`rule` NULL) or a
 * list's (tk_list_rule); -2 when the vocabulary's ranks are not in merge order for this piece, or a list's tie
 * could matter (then the heap gives the ids). */
ptrdiff_t tk_bpe_merge_buckets(const tk_rank_table *table, const tk_list_rule *rule, const uint8_t *piece, size_t len,
                               size_t n_ranks, uint32_t *out);
/* How many huge pieces tk_bpe_merge and tk_indexed_pair_merge gave to the bucket merge in this process, and how
 * many of those it handed back to the heap (-2). A fallback is exact, only slower, so nothing else shows one: a bucket merge
 * that decides wrongly and then falls back passes every test of ids. Read by tests through
 * `_native._merge_counters()` (private), with the pieces the run merge took. Relaxed atomic adds, one or two per huge piece (batch workers run
 * without the GIL): nothing on the merge's own path. */
typedef struct {
    uint64_t bucket_merges, bucket_fallbacks;
    uint64_t run_merges;    /* pieces the run merge (tk_bpe_merge_runs) took, by either rule */
    uint64_t medium_merges; /* pieces the medium merge (tk_medium_merge) took, by any of its rules */
} tk_merge_counters;
void tk_merge_counters_read(tk_merge_counters *counters);
void tk_merge_counters_add_run_merge(void);
void tk_merge_counters_add_medium_merge(void);

/* The same for a piece of a few long runs of one byte ("a" * n; bpe_run_merge.c), by tiktoken's rule (`rule`
 * NULL) or a list's; -2 when the piece has too many runs for it, the vocabulary's ranks are not in merge order
 * for it, or a list's tie could matter (then the other merges give the ids). */
ptrdiff_t tk_bpe_merge_runs(const tk_rank_table *table, const tk_list_rule *rule, const uint8_t *piece, size_t len,
                            uint32_t *out);

/* tiktoken's rule, a trained list's (left_len_by_id, n_ids) or an every-split list's (then_left) on a piece of
 * TK_SHORT_MERGE_PIECE + 1 to TK_BUCKET_PIECE - 1 bytes (bpe_medium_merge.c: short_merge.h's links, the lowest key
 * through a tree of minima); the same ids as tk_short_merge would give; -1 when out of memory. */
ptrdiff_t tk_medium_merge(const tk_rank_table *table, const uint16_t *left_len_by_id, size_t n_ids, int then_left,
                          const uint8_t *piece, size_t len, uint32_t *out);

/* The merges of a piece past TK_SHORT_PIECE that do without the heap, as tk_bpe_merge and tk_indexed_pair_merge
 * both try them: the runs, then below TK_BUCKET_PIECE bytes the medium merge, from there the buckets; -2 when the
 * runs and the buckets decline (the heap's turn). */
static inline ptrdiff_t tk_bpe_merge_without_heap(const tk_rank_table *table, const tk_list_rule *rule,
                                                  const uint8_t *piece, size_t len, size_t n_ranks, uint32_t *out) {
    ptrdiff_t n = tk_bpe_merge_runs(table, rule, piece, len, out);
    if (n != -2) return n;
    if (len < TK_BUCKET_PIECE)
        return tk_medium_merge(table, rule ? rule->left_len_by_id : NULL, n_ranks, rule && rule->ties_by_split, piece,
                               len, out);
    return tk_bpe_merge_buckets(table, rule, piece, len, n_ranks, out);
}

/* tiktoken's rule with a merge list's tie-break (bpe_merge.c): the pair rule of a list of every split of
 * every token sorted by (merged id, left id); pieces up to 128 bytes, -2 for longer ones; ids below 2^24
 * (TK_SHORT_MERGE_MAX_IDS). */
ptrdiff_t tk_bpe_merge_list_order(const tk_rank_table *table, const uint8_t *piece, size_t len, uint32_t *out);

/* tiktoken's rule (`list` NULL) or a list's (tk_list_rule: an every-split list's ties, or a trained list's left
 * lengths by merged id, below `n_ids`) for up to TK_MERGE_GROUP pieces of 1-TK_GROUP_PIECE bytes at once, their
 * steps taken in turn so that one piece's look-ups are fetched while the others merge (bpe_merge_group.c): piece
 * g's n_ids_out[g] ids in ids[g]. The same ids as tk_bpe_merge, or tk_indexed_pair_merge for the list (every
 * single byte must have a rank). */
#define TK_MERGE_GROUP 8 /* 4 and 16 measured 0.98 and 0.91-1.01x 8 on multilingual count */
#define TK_GROUP_PIECE 15
#define TK_GROUP_SPAN 16 /* module.c: pieces waiting for a group, repeats included */
void tk_bpe_merge_group(const tk_rank_table *table, const tk_list_rule *list, size_t n_ids, const tk_char_atoms *atoms,
                        const uint8_t *const *pieces, const uint8_t *lens, size_t m, uint32_t (*ids)[TK_GROUP_PIECE],
                        uint8_t *n_ids_out);

/* ---- pair-priority BPE -------------------------------------------------------------------------- */
typedef struct {
    uint64_t key;         /* left id << 32 | right id */
    uint32_t priority;    /* place in the merge list (lower merges first); TK_NO_RANK = empty slot */
    uint32_t merged;      /* id of the merged token */
} tk_pair_slot;

typedef struct {
    tk_pair_slot *slots;  /* open addressing, load factor <= 3/4 */
    uint64_t mask;
    uint64_t seed;
    size_t size;
    tk_table_memory memory; /* holds `slots` (table_memory.c) */
} tk_pair_table;

/* init returns 0, or -1 on allocation failure; add() may be called `capacity` times (a pair added twice
 * keeps the later priority and merged id). */
int tk_pair_table_init(tk_pair_table *table, size_t capacity, uint64_t seed);
void tk_pair_table_add(tk_pair_table *table, uint32_t left, uint32_t right, uint32_t priority, uint32_t merged);
void tk_pair_table_free(tk_pair_table *table);
const tk_pair_slot *tk_pair_lookup(const tk_pair_table *table, uint32_t left, uint32_t right);

/* Ids of `piece` by the pair-priority rule, starting from the single-byte ids in `table` (bytes without
 * one are dropped), written to `out` (room for len ids); returns how many, or -1 when out of memory. */
ptrdiff_t tk_pair_merge(const tk_pair_table *pairs, const tk_rank_table *table, const uint8_t *piece, size_t len,
                        uint32_t *out);

/* ---- pair-priority BPE through the vocabulary (merge_index.c) ----------------------------------- */
/* A token's merges (the merges that yield it): one inline (left_len != 0), or a run of `more`. */
typedef struct {
    uint32_t priority;    /* inline: the merge's place in the list; a run: index of its first entry in `more` */
    uint16_t left_len;    /* inline: bytes of the merge's left part; 0: a run (or no merge, count 0) */
    uint16_t count;       /* merges that yield the token (a token has fewer than its length: < 65,536) */
} tk_token_merges;

typedef struct {
    uint32_t left_len;
    uint32_t priority;
} tk_split_merge;

typedef struct {
    tk_token_merges *tokens; /* by merged id; NULL: no index (the pair table is used) */
    tk_split_merge *more;
    size_t n_ids;
    /* The list is every split of every token into two tokens, sorted by (merged id, left id) (Llama 3's,
     * converted from tiktoken ranks): then the pair rule is tiktoken's rule with a tie-break
     * (tk_bpe_merge_list_order), with no lookup of this index at all. */
    int all_splits;
    /* By merged id: the left part's length of the token's one merge (0: none). Set when every token has at
     * most one merge and the list is in merged-id order (a trained list, Qwen's: token ids in merge order):
     * then the merged id orders pairs as the list's place does, so it serves as the priority and as the
     * merged part's id, and this 2-byte array is the whole index a short piece reads. NULL otherwise. */
    uint16_t *left_len_by_id;
    tk_table_memory memory;  /* holds `tokens` and `more` (table_memory.c) */
    tk_char_atoms atoms;     /* characters the lists' short merges start from (char_atoms.c); none: block_of NULL */
} tk_merge_index;

/* 0 with the index built; 1 when the list does not join bytes (some merge's result is not its parts'
 * bytes, or names an id without bytes): then no index, use the pair table; -1 when out of memory.
 * token_bytes / token_len: id -> the token's bytes (NULL: no token), for ids 0..n_ids-1. */
int tk_merge_index_build(tk_merge_index *index, const tk_rank_table *table, const uint32_t *triples, size_t n_merges,
                         const uint8_t *const *token_bytes, const uint32_t *token_len, size_t n_ids);
void tk_merge_index_free(tk_merge_index *index);

/* The priority of the merge yielding token `merged` whose left part is `left_len` bytes; TK_NO_RANK: none. */
static inline uint32_t tk_merge_index_priority(const tk_merge_index *index, uint32_t merged, size_t left_len) {
    const tk_token_merges *token = &index->tokens[merged];
    if (token->left_len) return token->left_len == left_len ? token->priority : TK_NO_RANK;
    const tk_split_merge *run = index->more + token->priority;
    for (uint32_t k = 0; k < token->count; k++)
        if (run[k].left_len == left_len) return run[k].priority;
    return TK_NO_RANK;
}

/* The ids of `piece` by the pair-priority rule (as tk_pair_merge), written to `out` (room for len ids;
 * NULL: only count them); how many, or -1 when out of memory. Every byte must have a token. */
ptrdiff_t tk_indexed_pair_merge(const tk_merge_index *index, const tk_rank_table *table, const uint8_t *piece,
                                size_t len, uint32_t *out);

/* ---- piece cache -------------------------------------------------------------------------------- */
typedef struct {
    uint64_t hash;
    uint32_t offset;      /* into the generation's arena: key bytes, then ids (4-byte aligned) */
    uint16_t key_len;
    uint16_t n_ids;
} tk_cache_entry;

typedef struct {
    uint32_t *slots;      /* entry index + 1; 0 = empty */
    tk_cache_entry *entries;
    uint8_t *arena;
    size_t n_entries;
    size_t arena_used;
} tk_cache_generation;

typedef struct {
    tk_cache_generation generations[2]; /* [0] current, [1] previous */
    size_t capacity;      /* entries per generation; 0 = no cache */
    size_t arena_size;    /* bytes per generation */
    size_t slot_mask;
    size_t max_key_len;
    uint64_t seed;
    uint64_t hits, misses;
    /* Pieces of up to TK_CACHE_CHEAP_PIECE bytes, whose merge costs about what a miss and a put cost: how many
     * were looked up and found in this window, and how many more go past the cache (tk_piece_cache_skips). */
    uint32_t cheap_looked, cheap_found, cheap_skipped;
} tk_piece_cache;

/* A cache whose lookups of short pieces stop paying gives them up for a while: when fewer than 1 in
 * TK_CACHE_CHEAP_HITS of TK_CACHE_CHEAP_WINDOW lookups of pieces of TK_CACHE_CHEAP_PIECE bytes or fewer found
 * their ids, the next TK_CACHE_CHEAP_SKIP such pieces are merged without a lookup or a put (and counted as
 * misses), then it looks again. Text of unseen random letters: ~75,000 pieces of 6-15 bytes a MB under
 * o200k_base, none found twice, where the miss and the put were ~15 % of the call (docs/decisions.md, "Huge
 * pieces of random letters: filtered without a branch"); text whose pieces recur finds far more than 1 in 16. */
#define TK_CACHE_CHEAP_PIECE 15
#define TK_CACHE_CHEAP_WINDOW 1024
#define TK_CACHE_CHEAP_HITS 16
#define TK_CACHE_CHEAP_SKIP 16384

/* 1 when a piece of `len` bytes is to be merged without the cache now (see TK_CACHE_CHEAP_PIECE). */
static inline int tk_piece_cache_skips(tk_piece_cache *cache, size_t len) {
    if (len > TK_CACHE_CHEAP_PIECE || !cache->cheap_skipped) return 0;
    cache->cheap_skipped--;
    return 1;
}

/* A lookup of a piece of `len` bytes, found or not, in the window that decides whether to skip. */
static inline void tk_piece_cache_saw(tk_piece_cache *cache, size_t len, int found) {
    if (len > TK_CACHE_CHEAP_PIECE) return;
    cache->cheap_found += (uint32_t)found;
    if (++cache->cheap_looked < TK_CACHE_CHEAP_WINDOW) return;
    if (cache->cheap_found * TK_CACHE_CHEAP_HITS < cache->cheap_looked) cache->cheap_skipped = TK_CACHE_CHEAP_SKIP;
    cache->cheap_looked = cache->cheap_found = 0;
}

int tk_piece_cache_init(tk_piece_cache *cache, size_t capacity, size_t max_key_len, uint64_t seed);
void tk_piece_cache_free(tk_piece_cache *cache);
/* Copies the ids of `key` to `out` (room for `len` ids: a piece has at most one id per byte) and returns
 * how many, or -1 when `key` is not cached. */
ptrdiff_t tk_piece_cache_get(tk_piece_cache *cache, const uint8_t *key, size_t len, uint64_t hash, uint32_t *out);
void tk_piece_cache_put(tk_piece_cache *cache, const uint8_t *key, size_t len, uint64_t hash,
                        const uint32_t *ids, size_t n_ids);

/* The piece-cache slots of a piece that is no token (p->hash set), fetched ahead of tk_piece_cache_get: when
 * its length is one the cache holds and the rank rule does not merge without it (TK_UNCACHED_PIECE_BYTES). */
static inline TK_PREFETCHING void tk_prefetch_cached(const tk_piece_cache *cache, const tk_pending_piece *p) {
    if (p->len <= TK_UNCACHED_PIECE_BYTES || !p->hash || !cache || !cache->capacity || p->len > cache->max_key_len)
        return;
    size_t i = p->hash & cache->slot_mask;
    __builtin_prefetch(&cache->generations[0].slots[i], 0, 3);
    __builtin_prefetch(&cache->generations[1].slots[i], 0, 3);
}

/* The whole-piece lookup of a prepared piece (tk_prepare_piece), into p->rank. A piece that is no token, of
 * more than TK_UNCACHED_PIECE_BYTES (the rank rule merges shorter ones without the cache) and at most the
 * cache's longest key, has the slot of its hash prefetched in both generations of `cache` (NULL: none),
 * which tk_piece_cache_get reads when the piece's ids are emitted. The pair rule also reads the cache for
 * shorter pieces and for tokens that do not merge to themselves; those go without the prefetch. */
static inline void tk_resolve_piece(const tk_rank_table *table, const tk_piece_cache *cache, const uint8_t *text,
                                    tk_pending_piece *p) {
    p->rank = tk_rank_of_prepared(table, text, p);
    if (p->rank == TK_NO_RANK) tk_prefetch_cached(cache, p);
}

/* ---- pre-splitting ------------------------------------------------------------------------------ */
typedef enum {
    TK_PATTERN_NONE = 0,
    TK_PATTERN_GPT2 = 1,
    TK_PATTERN_CL100K = 2,
    TK_PATTERN_O200K = 3,
    TK_PATTERN_LLAMA3 = 4,
    TK_PATTERN_QWEN2 = 5,
    TK_PATTERN_LLAMA3_ASCII = 6,
    TK_PATTERN_QWEN2_ASCII = 7,
    TK_PATTERN_TEKKEN = 8,
    TK_PATTERN_DEEPSEEK_V3 = 9,
    TK_PATTERN_NUMBERS3 = 10,
    TK_PATTERN_DEEPSEEK_CJK = 11
} tk_pattern;

/* The next piece of the valid UTF-8 `text` at or after byte offset *pos, as findall finds it: returns 1
 * with the piece at [*start, *pos) (*pos moves to its end), or 0 when the text is exhausted. Characters
 * where no alternative matches are skipped, as findall skips them. */
int tk_next_piece(tk_pattern pattern, const uint8_t *text, size_t len, size_t *pos, size_t *start);
/* DeepSeek-V3's pre-tokenizer, a Sequence of three Isolated Splits run by scanners (numbers3, deepseek-cjk,
 * deepseek-v3), in one pass: the same pieces as the stage iterator (split_pieces.c) gives for that chain,
 * without its per-stage bookkeeping. State zeroed before the first call; returns 1 with [*start, *end), or 0. */
typedef struct {
    size_t pos;
    size_t digits_end;    /* end of the first stage's current piece (digits, or the text between them) */
    size_t cjk_end;       /* end of the second stage's current piece inside it */
} tk_deepseek_v3_state;
int tk_deepseek_v3_next(const uint8_t *s, size_t len, tk_deepseek_v3_state *state, size_t *start, size_t *end);

/* Tables the scanners derive from the Unicode class tables: once, before the first split (module init). */
void tk_pretokenize_init(void);

/* The class bits of code point `cp` (unicode_classes.h, whose tables live in pretokenize.c alone), of which
 * these (the same bits there): \p{L}, \p{N}, \s, [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], [\p{Ll}\p{Lm}\p{Lo}\p{M}].
 * Inline, through pointers to those tables: the bulk scanner's windows of other scripts look up every
 * character, and a call each was 5-6 % of a `count` of multilingual text already seen (docs/decisions.md). */
#define TK_UC_LETTER 0x01
#define TK_UC_NUMBER 0x02
#define TK_UC_SPACE 0x04
#define TK_UC_UPPERISH 0x08
#define TK_UC_LOWERISH 0x10
#define TK_UC_MARK 0x20
#define TK_UC_CODE_POINTS 0x110000 /* the tables' reach: code points past it have no class */
extern const uint16_t tk_class_stage1[TK_UC_CODE_POINTS >> 8]; /* unicode_classes.h: a block per 256 code points */
extern const uint8_t tk_class_stage2[];                         /* the blocks' class bits */
static inline uint8_t tk_unicode_classes(uint32_t cp) {
    return cp < TK_UC_CODE_POINTS ? tk_class_stage2[(uint32_t)tk_class_stage1[cp >> 8] << 8 | (cp & 0xff)] : 0;
}

/* 1 when a piece starts at every character (findall skips nothing): then Hugging Face's Split(Isolated),
 * matches and the gaps between them, is findall (no gaps), and the splitter calls the scanner directly. */
int tk_pattern_matches_everywhere(tk_pattern pattern);

#endif
