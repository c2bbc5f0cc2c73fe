/* sentencepiece's Normalizer (src/normalizer.cc), in C: the reference is tokend/engine/sentencepiece/normalizer.py.
 *
 * At each input position the normalizer takes the longest user-defined piece verbatim, else the longest rule of
 * the precompiled charsmap, else one UTF-8 character (a malformed byte becomes U+FFFD); then it applies the
 * whitespace options (dummy prefix, extra-whitespace removal, escaping spaces as U+2581).
 *
 * The charsmap is a darts-clone double array over the input bytes whose leaves point into a block of
 * NUL-terminated replacement strings (see charsmap.py for the unit layout). It comes from a model file, so every
 * index is checked against the array and the string block: a corrupted map gives wrong rules, never a read out
 * of bounds. Identity models have no charsmap and skip the walk. */
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sp_native.h"

static const uint8_t REPLACEMENT[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */
static const uint8_t MARK[3] = {0xE2, 0x96, 0x81};         /* U+2581 ▁ */

int sp_bytes_grow(sp_bytes *buffer, size_t more) {
    size_t cap = buffer->cap ? buffer->cap : 256;
    while (cap < buffer->len + more) cap *= 2;
    uint8_t *data = realloc(buffer->data, cap);
    if (!data) return -1;
    buffer->data = data;
    buffer->cap = cap;
    return 0;
}

void sp_bytes_free(sp_bytes *buffer) {
    free(buffer->data);
    memset(buffer, 0, sizeof *buffer);
}

static inline int is_trail(uint8_t byte) { return (byte & 0xC0) == 0x80; }

size_t sp_valid_char_len(const uint8_t *text, size_t len) {
    uint8_t lead = text[0];
    if (lead < 0x80) return 1;
    if (len >= 2 && (lead & 0xE0) == 0xC0) {
        uint32_t cp = ((uint32_t)(lead & 0x1F) << 6) | (text[1] & 0x3F);
        return is_trail(text[1]) && cp >= 0x80 ? 2 : 0;
    }
    if (len >= 3 && (lead & 0xF0) == 0xE0) {
        uint32_t cp = ((uint32_t)(lead & 0x0F) << 12) | ((uint32_t)(text[1] & 0x3F) << 6) | (text[2] & 0x3F);
        return is_trail(text[1]) && is_trail(text[2]) && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000) ? 3 : 0;
    }
    if (len >= 4 && (lead & 0xF8) == 0xF0) {
        uint32_t cp = ((uint32_t)(lead & 0x07) << 18) | ((uint32_t)(text[1] & 0x3F) << 12) |
                      ((uint32_t)(text[2] & 0x3F) << 6) | (text[3] & 0x3F);
        return is_trail(text[1]) && is_trail(text[2]) && is_trail(text[3]) && cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
    }
    return 0;
}

/* ---- user-defined pieces --------------------------------------------------------------------------- */

void sp_trie_init(sp_trie *trie, uint64_t seed) {
    memset(trie, 0, sizeof *trie);
    trie->seed = seed;
    for (int b = 0; b < 256; b++) trie->root[b] = SP_NONE;
}

static uint32_t new_node(sp_trie *trie) {
    if (trie->n_nodes == trie->cap) {
        size_t cap = trie->cap ? 2 * trie->cap : 64;
        uint32_t *piece_ids = realloc(trie->piece_ids, cap * sizeof *piece_ids);
        if (!piece_ids) return SP_NONE;
        trie->piece_ids = piece_ids;
        trie->cap = cap;
    }
    trie->piece_ids[trie->n_nodes] = SP_NONE;
    return (uint32_t)trie->n_nodes++;
}

static inline size_t edge_slot(const sp_trie *trie, uint64_t key) {
    size_t slot = sp_mix(key ^ trie->seed) & trie->edge_mask;
    while (trie->edges[slot].key != UINT64_MAX && trie->edges[slot].key != key) slot = (slot + 1) & trie->edge_mask;
    return slot;
}

static inline uint32_t find_child(const sp_trie *trie, uint32_t parent, uint8_t label) {
    if (!trie->edges) return SP_NONE;
    const sp_trie_edge *edge = &trie->edges[edge_slot(trie, (uint64_t)parent << 8 | label)];
    return edge->key == UINT64_MAX ? SP_NONE : edge->child;
}

static int grow_edges(sp_trie *trie) {
    size_t slots = trie->edges ? 2 * (trie->edge_mask + 1) : 64;
    sp_trie_edge *old = trie->edges, *edges = malloc(slots * sizeof *edges);
    if (!edges) return -1;
    for (size_t i = 0; i < slots; i++) edges[i] = (sp_trie_edge){UINT64_MAX, SP_NONE, 0};
    size_t old_slots = old ? trie->edge_mask + 1 : 0;
    trie->edges = edges;
    trie->edge_mask = slots - 1;
    for (size_t i = 0; i < old_slots; i++)
        if (old[i].key != UINT64_MAX) trie->edges[edge_slot(trie, old[i].key)] = old[i];
    free(old);
    return 0;
}

/* The child of `parent` labelled `label` (parent SP_NONE: the root), created when missing; SP_NONE: out of memory. */
static uint32_t add_child(sp_trie *trie, uint32_t parent, uint8_t label) {
    if (parent == SP_NONE) {
        if (trie->root[label] == SP_NONE) trie->root[label] = new_node(trie);
        return trie->root[label];
    }
    uint32_t node = find_child(trie, parent, label);
    if (node != SP_NONE) return node;
    if ((!trie->edges || 2 * (trie->n_edges + 1) > trie->edge_mask + 1) && grow_edges(trie) < 0) return SP_NONE;
    node = new_node(trie);
    if (node == SP_NONE) return SP_NONE;
    uint64_t key = (uint64_t)parent << 8 | label;
    trie->edges[edge_slot(trie, key)] = (sp_trie_edge){key, node, 0};
    trie->n_edges++;
    return node;
}

int sp_trie_add(sp_trie *trie, const uint8_t *piece, size_t len, uint32_t piece_id) {
    uint32_t node = SP_NONE;
    for (size_t i = 0; i < len; i++) {
        node = add_child(trie, node, piece[i]);
        if (node == SP_NONE) return -1;
    }
    if (node != SP_NONE) trie->piece_ids[node] = piece_id;
    if (len > trie->depth) trie->depth = len;
    return 0;
}

size_t sp_trie_longest(const sp_trie *trie, const uint8_t *text, size_t len, uint32_t *piece_id) {
    size_t best = 0, found = 0;
    uint32_t node = trie->root[text[0]];
    for (size_t i = 0; node != SP_NONE && found < 64;) { /* PrefixMatcher counts the first 64 matches */
        if (trie->piece_ids[node] != SP_NONE) {
            found++;
            best = i + 1;
            *piece_id = trie->piece_ids[node];
        }
        if (++i >= len) break;
        node = find_child(trie, node, text[i]);
    }
    return best;
}

void sp_trie_free(sp_trie *trie) {
    free(trie->piece_ids);
    free(trie->edges);
    sp_trie_init(trie, trie->seed);
}

/* ---- charsmap ------------------------------------------------------------------------------------- */

int sp_normalizer_init(sp_normalizer *normalizer, const uint8_t *charsmap, size_t len) {
    memset(normalizer, 0, sizeof *normalizer);
    if (len == 0) return 0;
    if (len <= 4) return -2;
    uint32_t trie_size = (uint32_t)charsmap[0] | (uint32_t)charsmap[1] << 8 | (uint32_t)charsmap[2] << 16 |
                         (uint32_t)charsmap[3] << 24;
    if (trie_size >= len - 4 + 1 || trie_size % 4 || trie_size == 0) return -2;
    normalizer->n_units = trie_size / 4;
    normalizer->units = malloc(trie_size);
    normalizer->n_strings = len - 4 - trie_size;
    normalizer->strings = malloc(normalizer->n_strings + 1);
    if (!normalizer->units || !normalizer->strings) {
        sp_normalizer_free(normalizer);
        return -1;
    }
    for (size_t i = 0; i < normalizer->n_units; i++) {
        const uint8_t *unit = charsmap + 4 + 4 * i;
        normalizer->units[i] = (uint32_t)unit[0] | (uint32_t)unit[1] << 8 | (uint32_t)unit[2] << 16 | (uint32_t)unit[3] << 24;
    }
    memcpy(normalizer->strings, charsmap + 4 + trie_size, normalizer->n_strings);
    normalizer->strings[normalizer->n_strings] = 0; /* so every replacement ends inside the block */
    return 0;
}

void sp_normalizer_free(sp_normalizer *normalizer) {
    free(normalizer->units);
    free(normalizer->strings);
    normalizer->units = NULL;
    normalizer->strings = NULL;
}

static inline uint32_t unit_offset(uint32_t unit) { return (unit >> 10) << ((unit & 0x200) >> 6); }

/* The longest charsmap key at text[0:len]: its length (0: none) and replacement. As sentencepiece 0.2.3: only the
 * first 32 keys found count (Normalizer::kMaxTrieResultsSize), and a key whose replacement lies outside the
 * string block counts as no rule at all (the character is copied). */
static size_t charsmap_match(const sp_normalizer *normalizer, const uint8_t *text, size_t len,
                             const uint8_t **replacement, size_t *replacement_len) {
    const uint32_t *units = normalizer->units;
    size_t n_units = normalizer->n_units, best = 0, value = 0, found = 0;
    size_t node = unit_offset(units[0]);
    if (len > SP_MAX_CHARSMAP_KEY) len = SP_MAX_CHARSMAP_KEY;
    for (size_t i = 0; i < len && found < 32; i++) {
        node ^= text[i];
        if (node >= n_units) break;
        uint32_t unit = units[node];
        if ((unit & 0x800000FFu) != text[i]) break; /* label */
        node ^= unit_offset(unit);
        if (unit & 0x100) { /* has_leaf */
            if (node >= n_units) break;
            found++;
            best = i + 1;
            value = units[node] & 0x7FFFFFFFu;
        }
    }
    if (!best || value >= normalizer->n_strings) return 0;
    *replacement = normalizer->strings + value;
    *replacement_len = strlen((const char *)*replacement);
    return best;
}

/* sentencepiece's NormalizePrefix: the output for the input at text[0:len] and how many bytes it consumes. */
static size_t normalize_prefix(const sp_normalizer *normalizer, const uint8_t *text, size_t len,
                               const uint8_t **out, size_t *out_len) {
    const sp_trie *user_defined = normalizer->user_defined;
    if (user_defined && user_defined->root[text[0]] != SP_NONE) {
        uint32_t ignored;
        size_t matched = sp_trie_longest(user_defined, text, len, &ignored);
        if (matched) {
            *out = text;
            *out_len = matched;
            return matched;
        }
    }
    if (normalizer->units) {
        size_t matched = charsmap_match(normalizer, text, len, out, out_len);
        if (matched) return matched;
    }
    size_t valid = sp_valid_char_len(text, len);
    if (!valid) {
        *out = REPLACEMENT;
        *out_len = sizeof REPLACEMENT;
        return 1;
    }
    *out = text;
    *out_len = valid;
    return valid;
}

static int append(sp_bytes *out, const uint8_t *data, size_t len) {
    if (sp_bytes_reserve(out, len) < 0) return -1;
    memcpy(out->data + out->len, data, len);
    out->len += len;
    return 0;
}

/* Appends `chunk` with each space escaped as ▁ when asked. */
static int append_escaped(sp_bytes *out, const uint8_t *chunk, size_t len, int escape) {
    if (!escape || !memchr(chunk, ' ', len)) return append(out, chunk, len);
    if (sp_bytes_reserve(out, 3 * len) < 0) return -1;
    for (size_t i = 0; i < len; i++) {
        if (chunk[i] == ' ') {
            memcpy(out->data + out->len, MARK, 3);
            out->len += 3;
        } else {
            out->data[out->len++] = chunk[i];
        }
    }
    return 0;
}

/* The trie node reached from `node` by `byte` (SIZE_MAX when none), and whether that node ends a key. */
static size_t trie_step(const sp_normalizer *normalizer, size_t node, uint8_t byte, int *is_leaf) {
    node ^= byte;
    if (node >= normalizer->n_units) return SIZE_MAX;
    uint32_t unit = normalizer->units[node];
    if ((unit & 0x800000FFu) != byte) return SIZE_MAX;
    *is_leaf = (unit & 0x100) != 0;
    return node ^ unit_offset(unit);
}

/* The most steps a walk from `node` (at `level` steps from the root) can take, counted from the root, at most
 * SP_MAX_CHARSMAP_KEY. `memo`: node -> 1 + the steps below it (0: not known yet), so a node that darts-clone
 * shares between keys is expanded once; a value cut by the bound only ever belongs to a trie whose answer is
 * the bound anyway. *budget: expansions left, past which the answer is the bound (never fewer steps than a
 * walk may take; a crafted cycle ends there or at the bound). */
static size_t deepest_below(const sp_normalizer *normalizer, size_t node, size_t level, uint16_t *memo,
                            size_t *budget) {
    if (level >= SP_MAX_CHARSMAP_KEY) return SP_MAX_CHARSMAP_KEY;
    if (memo[node]) return level + memo[node] - 1 > SP_MAX_CHARSMAP_KEY ? SP_MAX_CHARSMAP_KEY : level + memo[node] - 1;
    if (*budget == 0) return SP_MAX_CHARSMAP_KEY;
    --*budget;
    size_t deepest = level;
    for (int c = 0; c < 256 && deepest < SP_MAX_CHARSMAP_KEY; c++) {
        int leaf = 0;
        size_t child = trie_step(normalizer, node, (uint8_t)c, &leaf);
        if (child == SIZE_MAX) continue;
        size_t below = child < normalizer->n_units ? deepest_below(normalizer, child, level + 1, memo, budget) : level + 1;
        if (below > deepest) deepest = below;
    }
    memo[node] = (uint16_t)(deepest - level + 1);
    return deepest;
}

void sp_normalizer_prepare(sp_normalizer *normalizer) {
    normalizer->longest_key = 0;
    if (normalizer->units) {
        /* Real charsmaps (nmt_nfkc): a few thousand nodes, keys of a few bytes; a crafted one past the budget
         * is taken at the bound. */
        size_t budget = 1 << 16;
        uint16_t *memo = calloc(normalizer->n_units, sizeof *memo);
        size_t root = unit_offset(normalizer->units[0]);
        normalizer->longest_key = memo && root < normalizer->n_units
                                      ? deepest_below(normalizer, root, 0, memo, &budget)
                                      : SP_MAX_CHARSMAP_KEY;
        free(memo);
    }
    memset(normalizer->rule_prefix2, 0, sizeof normalizer->rule_prefix2);
    for (int b = 0; b < 256; b++) {
        uint8_t rules = normalizer->user_defined && normalizer->user_defined->root[b] != SP_NONE ? SP_RULE_USER_DEFINED : 0;
        if (normalizer->units) {
            int leaf = 0, leaf2 = 0;
            size_t node = trie_step(normalizer, unit_offset(normalizer->units[0]), (uint8_t)b, &leaf);
            if (node != SIZE_MAX) {
                if (leaf) rules |= SP_RULE_ONE_BYTE_KEY;
                for (int c = 0; c < 256; c++) {
                    if (trie_step(normalizer, node, (uint8_t)c, &leaf2) != SIZE_MAX) {
                        rules |= SP_RULE_LONGER_KEY;
                        normalizer->rule_prefix2[(b << 8 | c) >> 6] |= 1ull << (c & 63);
                    }
                }
            }
        }
        normalizer->rule_start[b] = rules;
    }
    normalizer->plain_ascii = normalizer->plain = 1;
    for (int b = 0; b < 256; b++) {
        if (b == ' ' || !normalizer->rule_start[b]) continue;
        normalizer->plain = 0;
        if (b < 0x80) normalizer->plain_ascii = 0;
    }
}

/* Whether a user-defined piece or a charsmap rule may match at text[0:len] (else the character is copied). */
static inline int may_have_rule(const sp_normalizer *normalizer, const uint8_t *text, size_t len) {
    uint8_t rules = normalizer->rule_start[text[0]];
    if (!rules) return 0;
    if (rules & (SP_RULE_USER_DEFINED | SP_RULE_ONE_BYTE_KEY)) return 1;
    if (len < 2) return 0;
    unsigned bit = (unsigned)text[0] << 8 | text[1];
    return (normalizer->rule_prefix2[bit >> 6] >> (bit & 63)) & 1;
}

#if defined(__SSE2__)
/* Copies text[*pos..] up to the first space (and, `ascii_only`, the first byte >= 0x80), 16 bytes a step: each
 * step stores all 16 and keeps those before the stop (a word is one or two steps, no loop per byte, no call to
 * copy it). For runs no rule may touch: ASCII where no rule starts with an ASCII byte (plain_ascii), any
 * character of a valid text where no rule starts anywhere (plain). 0, or -1 when out of memory. */
static int copy_run(sp_bytes *out, const uint8_t *text, size_t len, size_t *at, int ascii_only) {
    size_t pos = *at;
    if (sp_bytes_reserve(out, len - pos + 16) < 0) return -1;
    const __m128i spaces = _mm_set1_epi8(' '), high = _mm_set1_epi8(ascii_only ? (char)0x80 : 0);
    for (;;) {
        if (len - pos < 16) {
            size_t end = pos;
            while (end < len && text[end] != ' ' && !(ascii_only && text[end] >= 0x80)) end++;
            memcpy(out->data + out->len, text + pos, end - pos);
            out->len += end - pos;
            pos = end;
            break;
        }
        __m128i v = _mm_loadu_si128((const __m128i *)(text + pos));
        _mm_storeu_si128((__m128i *)(out->data + out->len), v);
        unsigned stops = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, spaces), _mm_and_si128(v, high)));
        size_t n = stops ? (size_t)__builtin_ctz(stops) : 16;
        pos += n;
        out->len += n;
        if (stops) break;
    }
    *at = pos;
    return 0;
}
#endif

int sp_normalize(const sp_normalizer *normalizer, const uint8_t *text, size_t len, int valid_utf8, sp_bytes *out,
                 const sp_stop *stop, size_t cap) {
    const int remove_extra = normalizer->remove_extra_whitespaces, escape = normalizer->escape_whitespaces;
    const uint8_t *space = escape ? MARK : (const uint8_t *)" ";
    const size_t space_len = escape ? 3 : 1;
    const uint8_t *chunk;
    size_t chunk_len, pos = 0;
    if (remove_extra) { /* leading input that normalizes to exactly " " */
        while (pos < len) {
            size_t consumed = normalize_prefix(normalizer, text + pos, len - pos, &chunk, &chunk_len);
            if (chunk_len != 1 || chunk[0] != ' ') break;
            pos += consumed;
        }
    }
    if (pos == len) return 0;
    size_t start = out->len;
    const size_t expansion_limit = SP_MAX_EXPANSION * len + SP_EXPANSION_SLACK;
    /* Every input byte becomes at most 3 output bytes except through a charsmap rule (append() grows for those). */
    if (sp_bytes_reserve(out, 3 * (len - pos) + 16) < 0) return -1;
    if (!normalizer->treat_whitespace_as_suffix && normalizer->add_dummy_prefix) {
        memcpy(out->data + out->len, space, space_len);
        out->len += space_len;
    }
    int is_prev_space = remove_extra;
    size_t next_check = stop || cap != SIZE_MAX ? SP_STOP_CHECK_BYTES : SIZE_MAX;
    while (pos < len) {
        if (pos >= next_check) { /* at most SP_STOP_CHECK_BYTES x SP_MAX_CHARSMAP_KEY steps between checks */
            if (sp_stop_due(stop)) return -4;
            if (out->len - start > cap) return -5;
            next_check = pos + SP_STOP_CHECK_BYTES;
        }
        uint8_t byte = text[pos];
        size_t consumed;
        if (normalizer->rule_start[byte] == 0 && byte < 0x80) {
            /* A run of ASCII characters that no rule may start with: copied as it is (or, spaces, escaped). */
            size_t end = pos + 1;
            if (byte == ' ') {
                while (end < len && text[end] == ' ') end++;
                size_t n = is_prev_space ? 0 : remove_extra ? 1 : end - pos;
                if (sp_bytes_reserve(out, n * space_len) < 0) return -1;
                for (size_t i = 0; i < n; i++, out->len += space_len) memcpy(out->data + out->len, space, space_len);
                is_prev_space = remove_extra;
            } else {
#if defined(__SSE2__)
                if (normalizer->plain_ascii) {
                    if (copy_run(out, text, len, &pos, !(valid_utf8 && normalizer->plain)) < 0) return -1;
                    is_prev_space = 0;
                    continue;
                }
#endif
                while (end < len && text[end] < 0x80 && text[end] != ' ' && normalizer->rule_start[text[end]] == 0) end++;
                if (append(out, text + pos, end - pos) < 0) return -1;
                is_prev_space = 0;
            }
            pos = end;
            continue;
        }
#if defined(__SSE2__)
        if (byte >= 0x80 && valid_utf8 && normalizer->plain) { /* a run of characters no rule touches */
            if (copy_run(out, text, len, &pos, 0) < 0) return -1;
            is_prev_space = 0;
            continue;
        }
#endif
        /* NormalizePrefix, inlined: the longest user-defined piece, else the longest charsmap rule, else one
         * character. rule_start says whether the first two can match at all. */
        if (may_have_rule(normalizer, text + pos, len - pos)) {
            uint32_t ignored;
            const sp_trie *user_defined = normalizer->user_defined;
            if (user_defined && user_defined->root[byte] != SP_NONE &&
                (consumed = sp_trie_longest(user_defined, text + pos, len - pos, &ignored))) {
                chunk = text + pos;
                chunk_len = consumed;
                goto general;
            }
            if (normalizer->units && (consumed = charsmap_match(normalizer, text + pos, len - pos, &chunk, &chunk_len)))
                goto general;
        }
        if (byte >= 0x80 && !valid_utf8 && !sp_valid_char_len(text + pos, len - pos)) {
            chunk = REPLACEMENT;
            chunk_len = sizeof REPLACEMENT;
            consumed = 1;
            goto general;
        }
        /* The character itself: the general step below would copy it (escaping a space). */
        if (byte == ' ') {
            if (!is_prev_space) {
                if (sp_bytes_reserve(out, 3) < 0) return -1;
                memcpy(out->data + out->len, space, space_len);
                out->len += space_len;
            }
            is_prev_space = remove_extra;
            pos++;
            continue;
        }
        consumed = sp_one_char_len(byte);
        if (consumed > len - pos) consumed = len - pos;
        if (sp_bytes_reserve(out, 4) < 0) return -1;
        memcpy(out->data + out->len, text + pos, 4 <= len - pos ? 4 : consumed); /* fixed-size copy, then trim */
        out->len += consumed;
        is_prev_space = 0;
        pos += consumed;
        continue;
    general:
        while (is_prev_space && chunk_len && chunk[0] == ' ') {
            chunk++;
            chunk_len--;
        }
        if (chunk_len) {
            if (append_escaped(out, chunk, chunk_len, escape) < 0) return -1;
            is_prev_space = chunk[chunk_len - 1] == ' ';
            if (out->len - start > expansion_limit) return -3;
            if (out->len - start > cap) return -5;
        }
        pos += consumed;
        if (!remove_extra) is_prev_space = 0;
    }
    if (remove_extra) {
        while (out->len - start >= space_len && memcmp(out->data + out->len - space_len, space, space_len) == 0)
            out->len -= space_len;
    }
    if (normalizer->treat_whitespace_as_suffix && normalizer->add_dummy_prefix && append(out, space, space_len) < 0)
        return -1;
    return 0;
}
