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
 * The encoder cuts the normalized text where no piece can span (see sp_module.c). To know where, the table
 * records which characters are adjacent inside some piece of two or more characters: exactly for two ASCII
 * characters (a bit table) and next to the whitespace mark (per-character flags), as a filter elsewhere,
 * plus flags that answer most questions without a lookup (never followed / never preceded by another
 * character). Memory: the pair table at 8 bytes per slot, load factor <= 0.6 (Llama 2: 2 MB), two 256 KB
 * filters, a 256 KB table of 3-byte characters, the character table. */
#include <stdlib.h>
#include <string.h>

#include "sp_native.h"

/* uint64 -> uint32 open addressing over sp_pair_slot (key UINT64_MAX marks an empty slot), for the characters
 * that are not pieces while the tables are built. */
typedef struct {
    sp_pair_slot *slots;
    uint64_t mask;
    uint64_t seed;
} u64_map;

static int map_init(u64_map *map, size_t capacity, uint64_t seed) {
    size_t slots = 16;
    while (slots < 2 * capacity) slots <<= 1;
    map->slots = malloc(slots * sizeof *map->slots);
    map->mask = slots - 1;
    map->seed = seed;
    if (!map->slots) return -1;
    for (size_t i = 0; i < slots; i++) map->slots[i] = (sp_pair_slot){UINT64_MAX, SP_NONE, 0};
    return 0;
}

/* Inserts unless present; returns the value now stored. */
static uint32_t map_put(u64_map *map, uint64_t key, uint32_t value) {
    uint64_t i = sp_mix(key ^ map->seed) & map->mask;
    while (map->slots[i].key != UINT64_MAX) {
        if (map->slots[i].key == key) return map->slots[i].value;
        i = (i + 1) & map->mask;
    }
    map->slots[i].key = key;
    map->slots[i].value = value;
    return value;
}

/* Inserts (left, right) -> merged unless present (a pair names one string, so one piece). */
static void put_pair(uint64_t *slots, uint64_t mask, uint64_t seed, uint32_t left, uint32_t right, uint32_t merged) {
    uint64_t key = (uint64_t)left | (uint64_t)right << SP_ID_BITS;
    uint64_t i = sp_mix(key ^ seed) & mask;
    while (slots[i] != UINT64_MAX) {
        if ((slots[i] & SP_PAIR_KEY_MASK) == key) return;
        i = (i + 1) & mask;
    }
    slots[i] = key | (uint64_t)merged << (2 * SP_ID_BITS);
}

static int mergeable(uint8_t type);

/* The byte trie of the pieces a Unigram model matches (NORMAL, USER_DEFINED, UNUSED), and its unknown score. */
static int build_trie(sp_vocab *vocab, const uint8_t *const *pieces, const size_t *lens, const uint8_t *types,
                      size_t total_bytes) {
    size_t max_nodes = total_bytes + 1, slots = 16;
    while (slots < 2 * max_nodes) slots <<= 1;
    vocab->unigram = 1;
    vocab->trie_slots = malloc(slots * sizeof *vocab->trie_slots);
    vocab->trie_piece = malloc(max_nodes * sizeof *vocab->trie_piece);
    if (!vocab->trie_slots || !vocab->trie_piece) return -1;
    memset(vocab->trie_slots, 0xFF, slots * sizeof *vocab->trie_slots);
    vocab->trie_mask = slots - 1;
    vocab->trie_piece[SP_TRIE_ROOT] = SP_NONE;
    uint32_t n_nodes = 1;
    float min_score = 3.40282347e+38f; /* FLT_MAX, as unigram_model.cc starts it */
    for (uint32_t id = 0; id < vocab->n_pieces; id++) {
        if (types[id] == SP_NORMAL && vocab->scores[id] < min_score) min_score = vocab->scores[id];
        if (!mergeable(types[id])) continue;
        if (lens[id] > vocab->trie_depth) vocab->trie_depth = lens[id];
        uint32_t node = SP_TRIE_ROOT;
        for (size_t i = 0; i < lens[id]; i++) {
            uint64_t key = (uint64_t)node << 8 | pieces[id][i];
            uint64_t slot = sp_mix(key ^ vocab->seed) & vocab->trie_mask;
            while (vocab->trie_slots[slot] != UINT64_MAX && (vocab->trie_slots[slot] & ((1ull << 34) - 1)) != key)
                slot = (slot + 1) & vocab->trie_mask;
            if (vocab->trie_slots[slot] == UINT64_MAX) {
                vocab->trie_slots[slot] = key | (uint64_t)n_nodes << 34;
                vocab->trie_piece[n_nodes] = SP_NONE;
                n_nodes++;
            }
            node = (uint32_t)(vocab->trie_slots[slot] >> 34);
        }
        vocab->trie_piece[node] = id;
    }
    vocab->unk_score = min_score - 10.0f;
    return 0;
}

static void set_filter(uint64_t *filter, uint64_t key, uint64_t seed) {
    uint64_t bit = sp_filter_bit(key, seed);
    filter[bit >> 6] |= 1ull << (bit & 63);
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

static int descending_keys(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* score_levels: each piece's score key as its rank among the distinct keys, highest first (sp_bpe.c merges a
 * long segment one level at a time). */
static int score_levels(sp_vocab *vocab) {
    uint32_t n = vocab->n_pieces;
    uint32_t *sorted = malloc((n ? n : 1) * sizeof *sorted);
    vocab->score_levels = malloc((n ? n : 1) * sizeof *vocab->score_levels);
    if (!sorted || !vocab->score_levels) {
        free(sorted);
        return -1;
    }
    memcpy(sorted, vocab->score_keys, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, descending_keys);
    uint32_t distinct = 0;
    for (uint32_t i = 0; i < n; i++)
        if (i == 0 || sorted[i] != sorted[distinct - 1]) sorted[distinct++] = sorted[i];
    vocab->n_levels = distinct;
    for (uint32_t id = 0; id < n; id++) {
        uint32_t key = vocab->score_keys[id], low = 0, high = distinct; /* binary search in descending order */
        while (low < high) {
            uint32_t mid = low + (high - low) / 2;
            if (sorted[mid] > key) low = mid + 1;
            else high = mid;
        }
        vocab->score_levels[id] = low;
    }
    free(sorted);
    return 0;
}

int sp_vocab_init(sp_vocab *vocab, uint32_t n_pieces, const uint8_t *const *pieces, const size_t *lens,
                  const uint8_t *types, const float *scores, int byte_fallback, const uint8_t *ws, size_t ws_len,
                  uint64_t seed, int unigram) {
    memset(vocab, 0, sizeof *vocab);
    sp_trie_init(&vocab->user_defined, seed);
    vocab->n_pieces = n_pieces;
    vocab->byte_fallback = byte_fallback;
    vocab->seed = seed;
    vocab->unk_id = SP_NONE;
    vocab->ws_id = SP_NONE;
    for (int b = 0; b < 256; b++) vocab->byte_ids[b] = SP_NONE;
    vocab->scores = malloc((n_pieces ? n_pieces : 1) * sizeof *vocab->scores);
    vocab->types = malloc(n_pieces ? n_pieces : 1);
    vocab->score_keys = malloc((n_pieces ? n_pieces : 1) * sizeof *vocab->score_keys);
    vocab->unused_slot = malloc((n_pieces ? n_pieces : 1) * sizeof *vocab->unused_slot);
    vocab->piece_lens = malloc((n_pieces ? n_pieces : 1) * sizeof *vocab->piece_lens);
    if (!vocab->scores || !vocab->types || !vocab->score_keys || !vocab->unused_slot || !vocab->piece_lens) return -1;
    for (uint32_t id = 0; id < n_pieces; id++) {
        /* sentencepiece 0.2.3 orders its agenda by the score's bits read as an int32 (SymbolPairComparator):
         * the float order, except that -0.0 ranks below +0.0. Flipping the bits of negative scores and the sign
         * bit of the others gives unsigned keys in exactly that order. */
        uint32_t bits;
        memcpy(&bits, &scores[id], sizeof bits);
        vocab->score_keys[id] = bits & 0x80000000u ? ~bits : bits | 0x80000000u;
        vocab->unused_slot[id] = types[id] == SP_UNUSED ? vocab->n_unused++ : SP_NONE;
        vocab->piece_lens[id] = (uint32_t)lens[id];
    }
    memcpy(vocab->scores, scores, n_pieces * sizeof *scores);
    memcpy(vocab->types, types, n_pieces);
    if (score_levels(vocab) < 0) return -1;

    int status = -1;
    tk_rank_table by_piece; /* mergeable piece bytes -> id, for the halves of splits */
    u64_map pseudo = {0};   /* packed character -> symbol id, for characters that are not pieces */
    uint64_t *pair_slots = NULL;
    size_t n_splits = 0;
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
    if (!starts || tk_rank_table_init(&by_piece, n_mergeable, total_bytes, seed) < 0) goto done;
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
        n_splits += m - 1;
        for (size_t j = 0; j < m; j++) {
            const uint8_t *c = pieces[id] + starts[j];
            size_t c_len = starts[j + 1] - starts[j];
            if (tk_rank_of(&by_piece, c, c_len) != TK_NO_RANK) continue;
            if (map_put(&pseudo, pack_char(c, c_len), next_symbol) == next_symbol) next_symbol++;
        }
    }
    vocab->n_symbols = next_symbol;
    if (next_symbol >= SP_MAX_SYMBOLS) {
        status = -2;
        goto done;
    }
    size_t n_chars = n_single + (next_symbol - n_pieces);
    if (tk_rank_table_init(&vocab->chars, n_chars, 4 * n_chars, seed) < 0) goto done;
    for (uint32_t id = 0; id < n_pieces; id++)
        if (mergeable(types[id]) && split_chars(pieces[id], lens[id], starts) == 1)
            tk_rank_table_add(&vocab->chars, pieces[id], lens[id], id);
    for (uint64_t slot = 0; slot <= pseudo.mask; slot++) {
        uint64_t key = pseudo.slots[slot].key;
        if (key == UINT64_MAX) continue;
        uint8_t c[4];
        size_t c_len = (size_t)(key >> 32);
        for (size_t i = 0; i < c_len; i++) c[i] = (uint8_t)(key >> (8 * i));
        tk_rank_table_add(&vocab->chars, c, c_len, pseudo.slots[slot].value);
    }
    vocab->three_byte_ids = malloc(65536 * sizeof *vocab->three_byte_ids);
    if (!vocab->three_byte_ids) goto done;
    for (uint32_t index = 0; index < 65536; index++) {
        uint8_t c[3] = {(uint8_t)(0xE0 | index >> 12), (uint8_t)(0x80 | ((index >> 6) & 0x3F)), (uint8_t)(0x80 | (index & 0x3F))};
        vocab->three_byte_ids[index] = tk_rank_of(&vocab->chars, c, 3);
    }
    vocab->ws_id = ws_len ? sp_char_id(vocab, ws, ws_len) : SP_NONE;

    /* Pairs, adjacent characters and flags. */
    vocab->flags = calloc(next_symbol ? next_symbol : 1, 1);
    vocab->pair_filter = calloc(SP_FILTER_BITS / 64, sizeof(uint64_t));
    vocab->bigram_filter = calloc(SP_FILTER_BITS / 64, sizeof(uint64_t));
    size_t pair_slots_n = 16;
    while (pair_slots_n * 3 < n_splits * 5) pair_slots_n <<= 1; /* load factor <= 0.6 */
    pair_slots = malloc(pair_slots_n * sizeof *pair_slots);
    if (!vocab->flags || !vocab->pair_filter || !vocab->bigram_filter || !pair_slots) goto done;
    memset(pair_slots, 0xFF, pair_slots_n * sizeof *pair_slots);
    vocab->pair_mask = pair_slots_n - 1;
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
                set_filter(vocab->bigram_filter, (uint64_t)previous << 32 | c, seed ^ 0x2545f4914f6cdd1dull);
                uint8_t a = piece[starts[j - 1]], b = piece[starts[j]];
                if (starts[j] - starts[j - 1] == 1 && starts[j + 1] - starts[j] == 1 && a && a < 0x80 && b && b < 0x80) {
                    unsigned bit = (unsigned)a << 7 | b;
                    vocab->ascii_bigram[bit >> 3] |= (uint8_t)(1u << (bit & 7));
                }
            }
            previous = c;
        }
        for (size_t j = 1; j < m; j++) {
            uint32_t left = j == 1 ? sp_char_id(vocab, piece, starts[1]) : tk_rank_of(&by_piece, piece, starts[j]);
            uint32_t right = j == m - 1 ? sp_char_id(vocab, piece + starts[j], lens[id] - starts[j])
                                        : tk_rank_of(&by_piece, piece + starts[j], lens[id] - starts[j]);
            if (left != SP_NONE && right != SP_NONE) {
                put_pair(pair_slots, vocab->pair_mask, seed, left, right, id);
                set_filter(vocab->pair_filter, (uint64_t)left << 32 | right, seed);
            }
        }
    }
    vocab->pairs = pair_slots;
    pair_slots = NULL;
    /* Two ASCII characters: their piece by direct index (sp_pair asks these first). */
    vocab->ascii_of = calloc(next_symbol ? next_symbol : 1, 1);
    vocab->ascii_pairs = malloc(128 * 128 * sizeof *vocab->ascii_pairs);
    if (!vocab->ascii_of || !vocab->ascii_pairs) goto done;
    for (unsigned a = 1; a < 128; a++) {
        uint8_t c = (uint8_t)a;
        uint32_t id = sp_char_id(vocab, &c, 1);
        if (id != SP_NONE) vocab->ascii_of[id] = c;
    }
    for (unsigned a = 0; a < 128; a++) {
        for (unsigned b = 0; b < 128; b++) {
            uint8_t ca = (uint8_t)a, cb = (uint8_t)b;
            uint32_t left = sp_char_id(vocab, &ca, 1), right = sp_char_id(vocab, &cb, 1);
            vocab->ascii_pairs[a << 7 | b] = left == SP_NONE || right == SP_NONE || !sp_filter_has(vocab->pair_filter, (uint64_t)left << 32 | right, seed)
                                                 ? SP_NONE
                                                 : sp_lookup(vocab->pairs, vocab->pair_mask, seed, left, right);
            if (a && b && sp_adjacent_in_a_piece(vocab, left, right, ca, cb))
                vocab->ascii_joinable[(a << 7 | b) >> 3] |= (uint8_t)(1u << (b & 7));
        }
    }
    if (unigram && build_trie(vocab, pieces, lens, types, total_bytes) < 0) goto done;
    status = 0;
done:
    free(starts);
    free(pseudo.slots);
    free(pair_slots);
    if (have_by_piece) tk_rank_table_free(&by_piece);
    return status;
}

void sp_vocab_free(sp_vocab *vocab) {
    free(vocab->scores);
    free(vocab->score_keys);
    free(vocab->score_levels);
    free(vocab->types);
    free(vocab->flags);
    free(vocab->three_byte_ids);
    free(vocab->unused_slot);
    free(vocab->piece_lens);
    free(vocab->pairs);
    free(vocab->ascii_of);
    free(vocab->ascii_pairs);
    free(vocab->trie_slots);
    free(vocab->trie_piece);
    free(vocab->pair_filter);
    free(vocab->bigram_filter);
    if (vocab->chars.slots) tk_rank_table_free(&vocab->chars);
    sp_trie_free(&vocab->user_defined);
    memset(vocab, 0, sizeof *vocab);
}
