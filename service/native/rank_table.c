/* The vocabulary as lookup tables: token bytes -> rank.
 *
 * BPE asks for ranks of short byte strings far more often than anything else (every candidate pair), so
 * the layout is built for them: single bytes and pairs of bytes are direct array lookups; longer tokens
 * live in an open-addressing table (linear probing, load factor <= 2/3) whose 16-byte slots hold the
 * token's first 8 bytes inline, so a lookup of a token up to 8 bytes touches one slot and nothing else.
 * Measured against the first layout (every token in one table whose slots pointed into separate arrays
 * of entries and bytes: 3-4 cache misses per lookup), cache disabled: count on multilingual text went
 * from 17.3 to 24.2 MB/s (o200k_base) and from 23.7 to 37.2 MB/s (cl100k_base).
 * The arrays (slots, 2-byte table, filter, trigram bits and counts, records) are one block from
 * table_memory.c: on transparent huge pages (a fresh 2 MiB-aligned mapping advised before its first touch)
 * when it reaches 2 MiB, so the lookups' random probes miss no TLB (docs/decisions.md, "The engine's tables on
 * huge pages").
 * Rejected: a second, cache-sized table (512 KiB) of the 16,384 lowest-ranked tokens of 3-8 bytes probed
 * before the big one (low ranks are the frequent tokens): encode/count fell 10-25 % in every cl100k/o200k
 * cell (min of 5 rounds, same run) — the extra probe costs more than the misses it saves.
 * Load factor 2/3 rather than 1/2: of the vocabularies served, it only changes Qwen's (151,643 tokens:
 * 262,144 slots, 4 MiB, instead of 524,288, 8 MiB); Qwen 3's MB/s over cl100k_base's went from 0.76-0.83
 * to 0.78-0.95 (6 rounds, peers' order rotated, same run). At load ~0.76 (slots >= 1.25 tokens) cl100k_base
 * and o200k_base moved by up to +-10 % per cell with no direction, so denser still is no general win.
 * The filter (16-32 bits per token of 3+ bytes, 256-512 KiB) is what helps: most failed lookups of the merge
 * (candidate pairs that are no token) stop at one bit; multilingual text +13-23 % (at 8-16 bits per token).
 * Doubled since: ~4.5 % of non-tokens get through instead of ~9 % (cl100k_base 2^21 bits for 96,170 tokens
 * of 3+ bytes, o200k_base 2^22 for 195,089), each one a probe of the slots saved; 1 MB of random letters
 * (a merge or two lookups a byte) 2-8 % faster in a fresh process, the corpora unchanged; two bits a token in
 * one word instead cost the corpora's count 1-4 % (docs/decisions.md, "The rank table's filter doubled").
 * The hash is seeded per process (module.c) so nobody can precompute inputs whose lookups all collide.
 * Tokens of exactly three ASCII letters, digits or spaces are also held in trigram tables (tk_trigram_rank):
 * a bit for each of the 63^3 such strings (2^18 bits, 32 KiB: one word names 64 of them), the set bits before
 * each word counted (16 KiB), and their ranks in bit order (4 bytes each: 6,818 of cl100k_base, 8,637 of
 * o200k_base). The merges of short pieces look up their 3-byte candidates there: the answer, token or not,
 * comes from ~75-85 KiB that stay in the core's caches instead of the filter (256-512 KiB) and, for a token, a
 * slot of the 4-8 MiB table, each lookup waiting for the one before it (a merge decides the next candidates).
 * A candidate of four symbols is no token when its first three start no 4-byte token of symbols or its last
 * three end none (a bit each at their trigram index, 2 x 32 KiB: tk_quad_absent); the rest take the filter.
 * 1 MB of random letters under o200k_base (~250,000 pieces, ~4 look-ups a piece of 5+ bytes): 3-byte answers
 * 1.12-1.18x, the 4-byte bits 1.04-1.06x more. The bucket merge (a huge piece) does not ask them: its
 * lookups are prefetched a window ahead, and a branch on the created pair's length made it 0.83-0.86x
 * (docs/decisions.md, "Trigram tables"). */
#include <stdlib.h>
#include <string.h>

#include "tokend_native.h"


uint64_t tk_hash(const uint8_t *data, size_t len, uint64_t seed) {
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ull * (len + 1));
    uint64_t word;
    if (len >= 8) {
        /* Whole words, then the last 8 bytes (overlapping the word before when len is no multiple of 8):
         * no zero-padded tail, whose branches on len % 8 mispredicted on pieces of random length. */
        const uint8_t *last = data + len - 8;
        for (; data < last; data += 8) {
            memcpy(&word, data, 8);
            h = (h ^ word) * 0xbf58476d1ce4e5b9ull;
            h ^= h >> 31;
        }
        memcpy(&word, last, 8);
    } else {
        word = tk_token_prefix(data, len); /* 0-7 bytes, zero-padded */
    }
    h = (h ^ word) * 0x94d049bb133111ebull;
    return tk_mix(h);
}

/* Bytes of a long token (len > 8) its record holds after the rank: the bytes after the first 8 (which the
 * slot holds), but at least 8 — the token's last 8, overlapping the slot's — so that comparing them is whole
 * words (tk_bytes_equal of 8+ bytes), never a tail of 1-7 bytes whose branches mispredict. */
static inline size_t record_tail(size_t len) { return len - 8 < 8 ? 8 : len - 8; }

static inline uint64_t slot_hash(const tk_rank_table *table, const uint8_t *token, size_t len, uint64_t prefix) {
    if (len <= 8) return tk_short_token_hash(table, prefix, len);
    return tk_hash(token, len, table->seed);
}

/* The trigram symbols' codes: a-z 0-25, A-Z 26-51, 0-9 52-61, space 62; 64 for every other byte. */
const uint8_t tk_trigram_code[256] = {
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* 00-0F */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* 10-1F */
    62, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* 20-2F */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64, /* 30-3F */
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, /* 40-4F */
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64, /* 50-5F */
    64,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, /* 60-6F */
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 64, /* 70-7F */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* 80-8F */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* 90-9F */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* A0-AF */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* B0-BF */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* C0-CF */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* D0-DF */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* E0-EF */
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, /* F0-FF */
};

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

int tk_rank_table_init(tk_rank_table *table, size_t capacity, size_t total_bytes, uint64_t seed) {
    memset(table, 0, sizeof *table);
    size_t slots = 16;
    while (2 * slots < 3 * capacity) slots <<= 1; /* load factor <= 2/3 */
    /* a record per long token: its rank, then its bytes after the first 8 (which its slot holds) */
    size_t record_bytes = total_bytes + 4 * capacity;
    if (record_bytes > UINT32_MAX) return -1; /* slots name records with 32 bits (a 4 GiB vocabulary) */
    size_t filter_bits = 64;
    while (filter_bits < 16 * capacity) filter_bits <<= 1;
    /* One block for the four arrays a piece's lookups touch, so that together they fill huge pages (the
     * slots alone are 4 MiB for cl100k_base; the 2-byte table, filter and records add ~1.5 MiB). */
    size_t slots_size = align64(slots * sizeof *table->slots);
    size_t pair_size = align64(65536 * sizeof *table->pair_rank);
    size_t filter_size = align64(filter_bits / 8);
    size_t trigram_size = TK_TRIGRAM_BITS / 8 + TK_TRIGRAM_BITS / 64 * sizeof(uint32_t) + 2 * (TK_TRIGRAM_BITS / 8);
    uint8_t *block = tk_table_memory_alloc(&table->memory,
                                           slots_size + pair_size + filter_size + trigram_size + record_bytes);
    if (!block) return -1;
    table->slots = (tk_rank_slot *)block;
    table->pair_rank = (uint32_t *)(block + slots_size);
    table->filter = (uint64_t *)(block + slots_size + pair_size);
    table->trigrams = (uint64_t *)(block + slots_size + pair_size + filter_size);
    table->trigrams_before = (uint32_t *)(table->trigrams + TK_TRIGRAM_BITS / 64);
    table->quad_heads = (uint64_t *)(table->trigrams_before + TK_TRIGRAM_BITS / 64);
    table->quad_tails = table->quad_heads + TK_TRIGRAM_BITS / 64;
    table->bytes = block + slots_size + pair_size + filter_size + trigram_size;
    table->filter_mask = filter_bits - 1;
    table->mask = slots - 1;
    table->seed = seed;
    for (int b = 0; b < 256; b++) table->byte_rank[b] = TK_NO_RANK;
    for (int p = 0; p < 65536; p++) table->pair_rank[p] = TK_NO_RANK;
    return 0;
}

int tk_rank_table_init_cuts(tk_rank_table *table, size_t n_ranks) {
    size_t merged_words = (n_ranks + 63) / 64;
    table->cut_pairs = calloc((TK_CUT_PAIR_BITS + TK_CUT_CHAR_BITS) / 64 + merged_words, sizeof(uint64_t));
    if (!table->cut_pairs) return -1;
    table->cut_chars = table->cut_pairs + TK_CUT_PAIR_BITS / 64;
    table->merges_to_itself = table->cut_chars + TK_CUT_CHAR_BITS / 64;
    table->n_merged_bits = n_ranks;
    return 0;
}

/* Records where `token` crosses a boundary between two characters of 2-4 bytes: at every m with a
 * continuation byte at m - 1 and a lead byte (C0-FF) at m. When the token holds both characters whole (the
 * one ending at m from its lead byte, the one starting at m to its last byte), their pair goes into the
 * character filter; otherwise the byte pair (token[m - 1], token[m]). tk_cut_between then proves, from the
 * two characters either side of a boundary in a text, that no token spans it: a token spanning it at offset m
 * has the text's continuation byte at m - 1 and lead byte at m, and holds each character whole exactly when
 * it reaches that character's first (last) byte, so it recorded the same character pair or byte pair. */
void tk_rank_table_add_cuts(tk_rank_table *table, const uint8_t *token, size_t len) {
    for (size_t m = 1; m < len; m++) {
        if (token[m] < 0xC0 || tk_utf8_lead_len(token[m - 1]) != 0) continue;
        size_t lead = m - 1;
        while (lead > 0 && tk_utf8_lead_len(token[lead]) == 0) lead--;
        size_t n1 = m - lead, n2 = tk_utf8_lead_len(token[m]);
        int first_whole = tk_utf8_lead_len(token[lead]) == n1 && n1 >= 2;
        int second_whole = m + n2 <= len;
        for (size_t j = m + 1; second_whole && j < m + n2; j++) second_whole = tk_utf8_lead_len(token[j]) == 0;
        if (first_whole && second_whole) {
            uint64_t bit = tk_cut_char_bit(tk_utf8_char_word(token + lead, n1), tk_utf8_char_word(token + m, n2));
            table->cut_chars[bit >> 6] |= 1ull << (bit & 63);
        } else {
            unsigned pair = (unsigned)token[m - 1] << 8 | token[m];
            table->cut_pairs[pair >> 6] |= 1ull << (pair & 63);
        }
    }
}

static inline void set_trigram_bit(uint64_t *bits, unsigned index) { bits[index >> 6] |= 1ull << (index & 63); }

void tk_rank_table_add(tk_rank_table *table, const uint8_t *token, size_t len, uint32_t rank) {
    if (len > table->max_len) table->max_len = len;
    if (len == 1) {
        table->byte_rank[token[0]] = rank;
        return;
    }
    if (len == 2) {
        table->pair_rank[(token[0] << 8) | token[1]] = rank;
        return;
    }
    unsigned index, tail;
    if (len == 3 && tk_trigram_index(token, &index) < 64) set_trigram_bit(table->trigrams, index);
    if (len == 4 && (tk_trigram_index(token, &index) | tk_trigram_index(token + 1, &tail)) < 64) {
        set_trigram_bit(table->quad_heads, index);
        set_trigram_bit(table->quad_tails, tail);
    }
    uint32_t value = rank;
    if (len > 8) {
        value = (uint32_t)table->bytes_used; /* the slot names the token's record */
        memcpy(table->bytes + table->bytes_used, &rank, 4);
        size_t tail = record_tail(len); /* < len: within the 4 + len bytes init budgets per token */
        memcpy(table->bytes + table->bytes_used + 4, token + len - tail, tail);
        table->bytes_used += 4 + tail;
    }
    uint64_t prefix = tk_token_prefix(token, len);
    uint64_t hash = slot_hash(table, token, len, prefix);
    uint64_t bit = (hash >> 32) & table->filter_mask;
    table->filter[bit >> 6] |= 1ull << (bit & 63);
    uint64_t i = hash & table->mask;
    while (table->slots[i].len) i = (i + 1) & table->mask;
    table->slots[i] = (tk_rank_slot){prefix, value, (uint32_t)len};
}

/* The trigram counts, then the 3-byte tokens' ranks in bit order: each slot's token of three trigram symbols at
 * its bit's place among the set bits (tk_trigram_rank's index). The slots, not the adds, since a bit's place is
 * known only once every bit is set. */
int tk_rank_table_finish(tk_rank_table *table) {
    uint32_t n = 0;
    for (size_t w = 0; w < TK_TRIGRAM_BITS / 64; w++) {
        table->trigrams_before[w] = n;
        n += tk_popcount64(table->trigrams[w]);
    }
    uint32_t *ranks = malloc((n + 1) * sizeof *ranks);
    if (!ranks) return -1;
    for (size_t i = 0; i <= table->mask; i++) {
        const tk_rank_slot *slot = &table->slots[i];
        if (slot->len != 3) continue;
        const uint8_t token[3] = {(uint8_t)slot->prefix, (uint8_t)(slot->prefix >> 8), (uint8_t)(slot->prefix >> 16)};
        unsigned index;
        if (tk_trigram_index(token, &index) < 64)
            ranks[tk_trigram_place(table, index, table->trigrams[index >> 6])] = slot->rank;
    }
    table->trigram_ranks = ranks;
    return 0;
}

void tk_rank_table_free(tk_rank_table *table) {
    free(table->trigram_ranks);
    free(table->cut_pairs);
    tk_table_memory_free(&table->memory);
    memset(table, 0, sizeof *table);
}

uint32_t tk_rank_of_long(const tk_rank_table *table, const uint8_t *token, size_t len, uint64_t prefix) {
    if (len > table->max_len) return TK_NO_RANK;
    uint64_t hash = tk_hash(token, len, table->seed);
    if (!tk_rank_filter_passes(table, hash)) return TK_NO_RANK;
    return tk_rank_of_long_hashed(table, token, len, hash);
}

/* The rank of a token longer than 8 bytes whose hash (tk_hash with the table's seed) is known. */
uint32_t tk_rank_of_long_hashed(const tk_rank_table *table, const uint8_t *token, size_t len, uint64_t hash) {
    uint64_t prefix = tk_token_prefix(token, len);
    uint64_t i = hash & table->mask;
    for (;;) {
        const tk_rank_slot *slot = &table->slots[i];
        if (!slot->len) return TK_NO_RANK;
        if (slot->prefix == prefix && slot->len == len) {
            const uint8_t *record = table->bytes + slot->rank; /* a long token's slot names its record */
            size_t tail = record_tail(len);
            if (tk_bytes_equal(record + 4, token + len - tail, tail)) {
                uint32_t rank;
                memcpy(&rank, record, 4);
                return rank;
            }
        }
        i = (i + 1) & table->mask;
    }
}
