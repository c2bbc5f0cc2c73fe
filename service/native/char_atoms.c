/* Characters merged before their piece's merge starts ("atoms"), where that provably gives the same ids.
 *
 *     tk_char_atoms atoms;
 *     tk_char_atoms_build(&atoms, &table, &rule, n_ids, token_bytes, token_len);   // at load; 0 or -1 (no memory)
 *     uint32_t entry = tk_char_atom_at(&atoms, buf, k, len);   // the character at buf[k]: its token, or 0
 *
 * Why: a character of 2-4 bytes costs its piece 1-3 merges (each a scan of the keys and two look-ups) before
 * it can join anything; on the multilingual corpus 42 % of the merges of Qwen 3's unseen pieces join the bytes
 * of one character. fastokens pre-forms such characters ("atoms"); this is the same idea with a condition
 * that is checked at load, per character and per kind of neighbouring byte.
 *
 * When it is exact. Merging takes the lowest key among adjacent pairs (leftmost on ties); a key orders pairs by
 * their merged id (the rank under tiktoken's rule, the list's place under a merge list in merged-id order).
 * Take a character c whose bytes alone merge to c's token, the highest merged id on that way being R. A pair
 * that joins a proper part of c with bytes outside it first makes a token T that ends with a proper prefix of
 * c after at least one byte (the byte before c) or starts with a proper suffix of c before at least one byte
 * (the byte after c): if every such token has an id above R, c's own merges, whose ids are <= R, always come
 * first, so no pair ever crosses into a part of c. A pair (X, c) with c whole exists only once c is formed;
 * formed up front, it may come earlier, which changes nothing if its id (a token holding c whole and more) is
 * above R too. Under those two bounds the merges outside c happen in the same order with c formed first or
 * formed on the way, so the ids are the same. The bound on crossing tokens is kept apart for each kind of
 * neighbour, a byte of 0x80 or more (another character of 2-4 bytes) or an ASCII byte, and none at the piece's
 * ends: space-led tokens such as " \xe0" (" " and the first byte of every Devanagari, Bengali, Malayalam, Thai
 * letter: Qwen 3's id 27,982) cross into the first letter of a word, never into the letters after it.
 *
 * Who starts from them: a merge list's group merge and short merges (bpe_merge_group.c, merge_index.c), and
 * tiktoken's rule's merge of pieces of 5-128 bytes (bpe_merge.c; the rank is the merged token's, so the proof
 * holds): o200k_base keeps a Thai, Devanagari or Malayalam word one such piece. Not tiktoken's group merge: its
 * unseen short pieces hold few characters of 2-4 bytes (o200k_base multilingual: ~9,400 in 49,757 pieces), and
 * starting them cost more than the ~4 % of merges it saved (docs/decisions.md, "Characters as atoms for
 * tiktoken's rule").
 *
 * What counts as a character: a lead byte C2-F4 and its continuation bytes, the shortest form of a code point
 * up to U+10FFFF (an overlong form is not the token of the same code point). Not handled: characters whose
 * token the merges do not reach alone (they stay bytes). */
#include <stdlib.h>
#include <string.h>

#include "short_merge.h"
#include "tokend_native.h"

#define NO_ID UINT32_MAX

/* A proper prefix of a character (its lead byte and j = 0-2 continuation bytes, fewer than the lead byte
 * announces): 1-2 bytes index [0, SHORT_PREFIXES) of a table kept by the byte before it (a row of LEFT_KINDS
 * bounds a prefix: a character's bounds for every kind are then a minimum over a few whole rows), 3 bytes (only
 * 4-byte characters have them) [0, LONG_PREFIXES) of one for any byte before it. */
#define SHORT_PREFIXES 2304
#define LONG_PREFIXES 65536
static size_t prefix_index(const uint8_t *p, size_t j) {
    if (j == 0) return p[0];
    if (j == 1) return 256 + (size_t)(p[0] & 0x1F) * 64 + (p[1] & 63);
    return ((size_t)(p[0] & 0x0F) * 64 + (p[1] & 63)) * 64 + (p[2] & 63);
}

/* 1-3 continuation bytes (a proper suffix of a character): 1-2 bytes by the byte after them (a row of
 * RIGHT_KINDS a suffix), 3 for any. */
#define SHORT_SUFFIXES (64 + 4096)
#define LONG_SUFFIXES 262144
static size_t suffix_index(const uint8_t *s, size_t j) {
    if (j == 1) return s[0] & 63;
    if (j == 2) return 64 + (size_t)(s[0] & 63) * 64 + (s[1] & 63);
    return ((size_t)(s[0] & 63) * 64 + (s[1] & 63)) * 64 + (s[2] & 63);
}

/* The kinds of byte beside a character that the bounds are kept for: before it, a continuation byte (0-63, by its
 * low bits), a space (64) or another ASCII byte (65); after it, a lead byte (0-63) or an ASCII byte (64). -1: a
 * byte no valid text has there (the atom is then not taken). */
#define LEFT_KINDS 66
#define RIGHT_KINDS 65
static int left_kind(uint8_t byte) { return byte < 0x80 ? 64 + (byte != ' ') : byte < 0xC0 ? byte & 63 : -1; }
static int right_kind(uint8_t byte) { return byte < 0x80 ? 64 : byte >= 0xC0 ? byte & 63 : -1; }

static inline void lower_to(uint32_t *slot, uint32_t id) {
    if (id < *slot) *slot = id;
}

/* The highest merged id on the way the character's bytes (2-4) merge alone, by `rule` as the group merge applies
 * it; NO_ID unless they end as the one token `id`. */
static uint32_t highest_merge(const tk_rank_table *table, const tk_list_rule *rule, size_t n_ids, const uint8_t *bytes,
                              size_t n, uint32_t id) {
    const int then_left = rule && rule->ties_by_split;
    const uint16_t *left_len_by_id = rule ? rule->left_len_by_id : NULL;
    size_t start[5], m = n; /* part k is bytes[start[k], start[k + 1]) */
    uint32_t part[4];
    for (size_t k = 0; k <= n; k++) start[k] = k;
    for (size_t k = 0; k < n; k++) part[k] = table->byte_rank[bytes[k]];
    uint32_t highest = 0;
    while (m > 1) {
        uint64_t best = UINT64_MAX;
        size_t at = 0;
        for (size_t k = 0; k + 1 < m; k++) {
            uint32_t merged = tk_rank_of(table, bytes + start[k], start[k + 2] - start[k]);
            uint64_t key = tk_pair_key(merged, part[k], then_left, left_len_by_id, n_ids, start[k], start[k + 1]);
            if (key < best) {
                best = key;
                at = k;
            }
        }
        if (best >= tk_no_key(then_left)) break;
        uint32_t merged = (uint32_t)(best >> tk_merged_shift(then_left));
        if (merged > highest) highest = merged;
        part[at] = merged;
        for (size_t k = at + 1; k + 1 < m; k++) part[k] = part[k + 1];
        for (size_t k = at + 1; k < m; k++) start[k] = start[k + 1];
        m--;
    }
    return m == 1 && part[0] == id ? highest : NO_ID;
}

/* The entry place of code point `code` among the blocks (made when `make`); SIZE_MAX when it has none (or no room). */
static size_t place_of(tk_char_atoms *atoms, uint32_t code, int make, size_t *capacity) {
    uint16_t *block = &atoms->block_of[code >> 6];
    if (!*block) {
        if (!make) return SIZE_MAX;
        if (atoms->n_blocks == *capacity) {
            size_t more = *capacity ? 2 * *capacity : 64;
            if (more >= UINT16_MAX) return SIZE_MAX;
            tk_char_atom *grown = realloc(atoms->places, more * 64 * sizeof *grown);
            if (!grown) return SIZE_MAX;
            atoms->places = grown;
            *capacity = more;
        }
        memset(atoms->places + atoms->n_blocks * 64, 0, 64 * sizeof *atoms->places);
        *block = (uint16_t)++atoms->n_blocks;
    }
    return (size_t)(*block - 1) * 64 + (code & 63);
}

int tk_char_atoms_build(tk_char_atoms *atoms, const tk_rank_table *table, const tk_list_rule *rule, size_t n_ids,
                        const uint8_t *const *token_bytes, const uint32_t *token_len, size_t n_tokens) {
    memset(atoms, 0, sizeof *atoms);
    if (n_tokens >= (1u << 24) - 1) return 0; /* an entry holds 1 + the id in 24 bits: no atoms */
    int status = -1;
    uint32_t *prefixes = NULL, *suffixes = NULL, *whole = NULL;
    atoms->block_of = calloc(TK_CHAR_ATOM_CODES >> 6, sizeof *atoms->block_of);
    if (!atoms->block_of) goto done;
    /* the characters that are tokens: their places, each entry 1 + the id for now */
    size_t capacity = 0;
    for (size_t id = 0; id < n_tokens; id++) {
        const uint8_t *t = token_bytes[id];
        size_t len = t ? token_len[id] : 0;
        uint32_t code;
        if (len < 2 || tk_utf8_char_at(t, 0, len, &code) != len) continue;
        size_t place = place_of(atoms, code, 1, &capacity);
        if (place == SIZE_MAX) goto done;
        atoms->places[place].entry = (uint32_t)id + 1;
    }
    size_t places = atoms->n_blocks * 64;
    /* The lowest id of a token that crosses into a character: one that ends with the character's proper prefix
     * after a byte of a kind (prefixes: [kind][short prefix], then [long prefix] for any byte), or starts with its
     * proper suffix before one (suffixes, alike), or holds it whole after or before a byte (whole: [side][ASCII or
     * not][place], side 0 left). */
    size_t n_prefixes = LEFT_KINDS * SHORT_PREFIXES + LONG_PREFIXES, n_suffixes = RIGHT_KINDS * SHORT_SUFFIXES + LONG_SUFFIXES;
    prefixes = malloc(n_prefixes * sizeof *prefixes);
    suffixes = malloc(n_suffixes * sizeof *suffixes);
    whole = malloc((4 * places + 1) * sizeof *whole);
    if (!prefixes || !suffixes || !whole) goto done;
    memset(prefixes, 0xFF, n_prefixes * sizeof *prefixes);
    memset(suffixes, 0xFF, n_suffixes * sizeof *suffixes);
    memset(whole, 0xFF, (4 * places + 1) * sizeof *whole);
    uint32_t *long_prefixes = prefixes + LEFT_KINDS * SHORT_PREFIXES, *long_suffixes = suffixes + RIGHT_KINDS * SHORT_SUFFIXES;
    for (size_t id = 0; id < n_tokens; id++) {
        const uint8_t *t = token_bytes[id];
        size_t len = t ? token_len[id] : 0;
        if (len < 2) continue;
        size_t j = 0;
        while (j < 3 && j + 1 < len && tk_utf8_lead_len(t[len - 1 - j]) == 0) j++;
        size_t lead = len - 1 - j, need = tk_utf8_lead_len(t[lead]);
        int kind;
        if (lead > 0 && need >= 2 && j + 1 < need && (kind = left_kind(t[lead - 1])) >= 0)
            lower_to(j < 2 ? &prefixes[prefix_index(t + lead, j) * LEFT_KINDS + (size_t)kind]
                           : &long_prefixes[prefix_index(t + lead, j)], (uint32_t)id);
        for (size_t i = 1; i <= 3 && i < len && tk_utf8_lead_len(t[i - 1]) == 0; i++)
            if ((kind = right_kind(t[i])) >= 0)
                lower_to(i < 3 ? &suffixes[suffix_index(t, i) * RIGHT_KINDS + (size_t)kind]
                               : &long_suffixes[suffix_index(t, i)], (uint32_t)id);
        uint32_t code;
        size_t n = tk_utf8_char_at(t, 0, len, &code), place;
        if (n >= 2 && n < len && (place = place_of(atoms, code, 0, NULL)) != SIZE_MAX)
            lower_to(&whole[(2 + (t[n] < 0x80)) * places + place], (uint32_t)id); /* c then more: c's right */
        for (size_t k = len > 4 ? len - 4 : 1; k + 1 < len; k++) {
            if (tk_utf8_char_at(t, k, len, &code) == len - k && (place = place_of(atoms, code, 0, NULL)) != SIZE_MAX)
                lower_to(&whole[(t[k - 1] < 0x80) * places + place], (uint32_t)id); /* more then c: c's left */
        }
    }
    for (size_t id = 0; id < n_tokens; id++) {
        const uint8_t *t = token_bytes[id];
        size_t len = t ? token_len[id] : 0;
        uint32_t code;
        if (len < 2 || tk_utf8_char_at(t, 0, len, &code) != len) continue;
        tk_char_atom *atom = &atoms->places[place_of(atoms, code, 0, NULL)];
        size_t place = (size_t)(atom - atoms->places);
        uint32_t highest = highest_merge(table, rule, n_ids, t, len, (uint32_t)id);
        if (highest == NO_ID) {
            atom->entry = 0;
            continue;
        }
        uint32_t left[LEFT_KINDS], right[RIGHT_KINDS]; /* the lowest id crossing in from each kind of byte */
        for (int kind = 0; kind < LEFT_KINDS; kind++) left[kind] = whole[(kind >= 64) * places + place];
        for (int kind = 0; kind < RIGHT_KINDS; kind++) right[kind] = whole[(2 + (kind == 64)) * places + place];
        for (size_t k = 1; k < len; k++) { /* the proper prefixes of k bytes, suffixes of len - k bytes */
            if (k < 3) {
                const uint32_t *row = prefixes + prefix_index(t, k - 1) * LEFT_KINDS;
                for (int kind = 0; kind < LEFT_KINDS; kind++) lower_to(&left[kind], row[kind]);
            } else {
                uint32_t any = long_prefixes[prefix_index(t, k - 1)];
                for (int kind = 0; kind < LEFT_KINDS; kind++) lower_to(&left[kind], any);
            }
            if (len - k < 3) {
                const uint32_t *row = suffixes + suffix_index(t + k, len - k) * RIGHT_KINDS;
                for (int kind = 0; kind < RIGHT_KINDS; kind++) lower_to(&right[kind], row[kind]);
            } else {
                uint32_t any = long_suffixes[suffix_index(t + k, len - k)];
                for (int kind = 0; kind < RIGHT_KINDS; kind++) lower_to(&right[kind], any);
            }
        }
        for (int kind = 0; kind < LEFT_KINDS; kind++) {
            if (highest >= left[kind]) continue;
            if (kind < 64) atom->left |= 1ull << kind;
            else atom->entry |= kind == 64 ? TK_ATOM_LEFT_SPACE : TK_ATOM_LEFT_ASCII;
        }
        for (int kind = 0; kind < RIGHT_KINDS; kind++) {
            if (highest >= right[kind]) continue;
            if (kind < 64) atom->right |= 1ull << kind;
            else atom->entry |= TK_ATOM_RIGHT_ASCII;
        }
        atoms->n_atoms++;
    }
    status = 0;
done:
    free(prefixes);
    free(suffixes);
    free(whole);
    if (status < 0 || !atoms->n_atoms) tk_char_atoms_free(atoms);
    return status;
}

void tk_char_atoms_free(tk_char_atoms *atoms) {
    free(atoms->block_of);
    free(atoms->places);
    memset(atoms, 0, sizeof *atoms);
}
