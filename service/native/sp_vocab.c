/* The SentencePiece vocabulary as lookup tables, built once per model.
 *
 * sentencepiece's BPE asks "is the concatenation of these two symbols a piece?" by hashing the concatenated
 * string. Every symbol is either a piece or a single character, so the question can be asked of ids instead:
 * each character gets a symbol id (its piece id, or a new id past the vocabulary when it occurs inside pieces
 * without being one), and each piece is entered under every split into two known symbols as
 * (left id, right id) -> piece id. A pair of ids then names one concatenation, and the table answers exactly
 * what the string lookup would (a piece whose halves are not both symbols can never be formed by a merge).
 *
 * Pieces BPE may form are sentencepiece's `pieces_`: NORMAL, USER_DEFINED and UNUSED; CONTROL, UNKNOWN and
 * BYTE pieces are never produced from text.
 *
 * Flags per character record where it occurs inside pieces of two or more characters; the encoder uses them
 * to cut the normalized text where no piece can span (see sp_module.c). Memory: ~16 bytes per character
 * entry, ~24 bytes per (piece, split) pair at load factor <= 1/2 (Llama 2: ~6 MB). */
#include <stdlib.h>
#include <string.h>

#include "sp_native.h"

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 32;
    return x;
}

/* uint64 -> uint32 open addressing (UINT64_MAX marks an empty slot). */
typedef struct {
    uint64_t *keys;
    uint32_t *values;
    uint64_t mask;
    uint64_t seed;
} u64_map;

static int map_init(u64_map *map, size_t capacity, uint64_t seed) {
    size_t slots = 16;
    while (slots < 2 * capacity) slots <<= 1;
    map->keys = malloc(slots * sizeof *map->keys);
    map->values = malloc(slots * sizeof *map->values);
    map->mask = slots - 1;
    map->seed = seed;
    if (!map->keys || !map->values) return -1;
    memset(map->keys, 0xFF, slots * sizeof *map->keys);
    return 0;
}

static uint32_t map_get(const uint64_t *keys, const uint32_t *values, uint64_t mask, uint64_t seed, uint64_t key) {
    uint64_t i = mix64(key ^ seed) & mask;
    for (;;) {
        uint64_t found = keys[i];
        if (found == key) return values[i];
        if (found == UINT64_MAX) return SP_NONE;
        i = (i + 1) & mask;
    }
}

/* Inserts unless present; returns the value now stored. */
static uint32_t map_put(u64_map *map, uint64_t key, uint32_t value) {
    uint64_t i = mix64(key ^ map->seed) & map->mask;
    while (map->keys[i] != UINT64_MAX) {
        if (map->keys[i] == key) return map->values[i];
        i = (i + 1) & map->mask;
    }
    map->keys[i] = key;
    map->values[i] = value;
    return value;
}

uint32_t sp_pair(const sp_vocab *vocab, uint32_t left, uint32_t right) {
    if (left == SP_NONE || right == SP_NONE) return SP_NONE;
    return map_get(vocab->pair_keys, vocab->pair_values, vocab->pair_mask, vocab->seed, (uint64_t)left << 32 | right);
}

static int mergeable(uint8_t type) { return type == SP_NORMAL || type == SP_USER_DEFINED || type == SP_UNUSED; }

/* Character boundaries of a piece: starts[0] = 0 < starts[1] < ... < starts[m] = len; returns m. */
static size_t split_chars(const uint8_t *piece, size_t len, size_t *starts) {
    size_t m = 0, pos = 0;
    while (pos < len) {
        starts[m++] = pos;
        size_t step = sp_one_char_len(piece[pos]);
        pos += step < len - pos ? step : len - pos;
    }
    starts[m] = len;
    return m;
}

static uint64_t pack_char(const uint8_t *data, size_t len) {
    uint64_t key = (uint64_t)len << 32;
    for (size_t i = 0; i < len; i++) key |= (uint64_t)data[i] << (8 * i);
    return key;
}

static int parse_byte_piece(const uint8_t *piece, size_t len) {
    if (len != 6 || memcmp(piece, "<0x", 3) != 0 || piece[5] != '>') return -1;
    int value = 0;
    for (int i = 3; i < 5; i++) {
        uint8_t c = piece[i];
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    return value;
}

int sp_vocab_init(sp_vocab *vocab, uint32_t n_pieces, const uint8_t *const *pieces, const size_t *lens,
                  const uint8_t *types, const float *scores, int byte_fallback, const uint8_t *ws, size_t ws_len,
                  uint64_t seed) {
    memset(vocab, 0, sizeof *vocab);
    sp_trie_init(&vocab->user_defined);
    vocab->n_pieces = n_pieces;
    vocab->byte_fallback = byte_fallback;
    vocab->seed = seed;
    vocab->unk_id = SP_NONE;
    vocab->ws_id = SP_NONE;
    for (int b = 0; b < 256; b++) vocab->byte_ids[b] = SP_NONE;
    vocab->scores = malloc((n_pieces ? n_pieces : 1) * sizeof *vocab->scores);
    vocab->types = malloc(n_pieces ? n_pieces : 1);
    if (!vocab->scores || !vocab->types) return -1;
    memcpy(vocab->scores, scores, n_pieces * sizeof *scores);
    memcpy(vocab->types, types, n_pieces);

    int status = -1;
    tk_rank_table by_piece; /* mergeable piece bytes -> id, for the halves of splits */
    u64_map pseudo = {0};   /* packed character -> symbol id, for characters that are not pieces */
    size_t *starts = NULL;
    int have_by_piece = 0;
    size_t n_mergeable = 0, total_bytes = 0, total_chars = 0, max_len = 0, n_single = 0;
    for (uint32_t id = 0; id < n_pieces; id++) {
        if (types[id] == SP_UNKNOWN && vocab->unk_id == SP_NONE) vocab->unk_id = id;
        if (types[id] == SP_BYTE) {
            int byte = parse_byte_piece(pieces[id], lens[id]);
            if (byte >= 0) vocab->byte_ids[byte] = id;
        }
        if (types[id] == SP_USER_DEFINED && sp_trie_add(&vocab->user_defined, pieces[id], lens[id], id) < 0) goto done;
        if (!mergeable(types[id])) continue;
        n_mergeable++;
        total_bytes += lens[id];
        total_chars += lens[id]; /* an upper bound on its characters */
        if (lens[id] > max_len) max_len = lens[id];
    }
    starts = malloc((max_len + 1) * sizeof *starts);
    if (!starts || tk_rank_table_init(&by_piece, n_mergeable, total_bytes, n_pieces ? n_pieces - 1 : 0, seed) < 0) goto done;
    have_by_piece = 1;
    for (uint32_t id = 0; id < n_pieces; id++)
        if (mergeable(types[id])) tk_rank_table_add(&by_piece, pieces[id], lens[id], id);

    /* Characters inside pieces that are not pieces themselves get ids n_pieces, n_pieces + 1, ... */
    if (map_init(&pseudo, total_chars, seed) < 0) goto done;
    uint32_t next_symbol = n_pieces;
    for (uint32_t id = 0; id < n_pieces; id++) {
        if (!mergeable(types[id])) continue;
        size_t m = split_chars(pieces[id], lens[id], starts);
        if (m == 1) {
            n_single++;
            continue;
        }
        if (types[id] == SP_UNUSED) vocab->has_unused_merges = 1;
        for (size_t j = 0; j < m; j++) {
            const uint8_t *c = pieces[id] + starts[j];
            size_t c_len = starts[j + 1] - starts[j];
            if (tk_rank_of(&by_piece, c, c_len) != TK_NO_RANK) continue;
            if (map_put(&pseudo, pack_char(c, c_len), next_symbol) == next_symbol) next_symbol++;
        }
    }
    vocab->n_symbols = next_symbol;
    size_t n_chars = n_single + (next_symbol - n_pieces);
    if (tk_rank_table_init(&vocab->chars, n_chars, 4 * n_chars, next_symbol ? next_symbol - 1 : 0, seed) < 0) goto done;
    for (uint32_t id = 0; id < n_pieces; id++)
        if (mergeable(types[id]) && split_chars(pieces[id], lens[id], starts) == 1)
            tk_rank_table_add(&vocab->chars, pieces[id], lens[id], id);
    for (uint64_t slot = 0; slot <= pseudo.mask; slot++) {
        uint64_t key = pseudo.keys[slot];
        if (key == UINT64_MAX) continue;
        uint8_t c[4];
        size_t c_len = (size_t)(key >> 32);
        for (size_t i = 0; i < c_len; i++) c[i] = (uint8_t)(key >> (8 * i));
        tk_rank_table_add(&vocab->chars, c, c_len, pseudo.values[slot]);
    }
    vocab->ws_id = ws_len ? sp_char_id(vocab, ws, ws_len) : SP_NONE;

    /* Pairs and flags. */
    vocab->flags = calloc(next_symbol ? next_symbol : 1, 1);
    u64_map pairs = {0};
    if (!vocab->flags || map_init(&pairs, total_chars, seed) < 0) {
        free(pairs.keys);
        free(pairs.values);
        goto done;
    }
    vocab->pair_keys = pairs.keys;
    vocab->pair_values = pairs.values;
    vocab->pair_mask = pairs.mask;
    for (uint32_t id = 0; id < n_pieces; id++) {
        if (!mergeable(types[id])) continue;
        const uint8_t *piece = pieces[id];
        size_t m = split_chars(piece, lens[id], starts);
        if (m == 1) continue;
        uint32_t previous = SP_NONE;
        for (size_t j = 0; j < m; j++) {
            uint32_t c = sp_char_id(vocab, piece + starts[j], starts[j + 1] - starts[j]);
            if (j + 1 < m) vocab->flags[c] |= SP_FLAG_LEFT;
            if (j > 0) {
                vocab->flags[c] |= SP_FLAG_RIGHT;
                if (previous == vocab->ws_id) vocab->flags[c] |= SP_FLAG_AFTER_WS;
                if (c == vocab->ws_id) vocab->flags[previous] |= SP_FLAG_BEFORE_WS;
            }
            previous = c;
        }
        for (size_t j = 1; j < m; j++) {
            uint32_t left = j == 1 ? sp_char_id(vocab, piece, starts[1]) : tk_rank_of(&by_piece, piece, starts[j]);
            uint32_t right = j == m - 1 ? sp_char_id(vocab, piece + starts[j], lens[id] - starts[j])
                                        : tk_rank_of(&by_piece, piece + starts[j], lens[id] - starts[j]);
            if (left != SP_NONE && right != SP_NONE) map_put(&pairs, (uint64_t)left << 32 | right, id);
        }
    }
    status = 0;
done:
    free(starts);
    free(pseudo.keys);
    free(pseudo.values);
    if (have_by_piece) tk_rank_table_free(&by_piece);
    return status;
}

void sp_vocab_free(sp_vocab *vocab) {
    free(vocab->scores);
    free(vocab->types);
    free(vocab->flags);
    free(vocab->pair_keys);
    free(vocab->pair_values);
    if (vocab->chars.slots) tk_rank_table_free(&vocab->chars);
    sp_trie_free(&vocab->user_defined);
    memset(vocab, 0, sizeof *vocab);
}
