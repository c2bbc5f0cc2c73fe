/* tokend's SentencePiece BPE core: shared declarations of its C parts.
 *
 * Scope: pure computation on byte strings handed in by sp_module.c, which owns every Python object.
 *   sp_normalizer.c  sentencepiece's Normalizer: precompiled charsmap (darts-clone double array), user-defined
 *                    pieces kept verbatim, dummy prefix, extra-whitespace removal, `▁` escaping
 *   sp_vocab.c       the vocabulary as lookup tables: characters -> symbol ids, (left id, right id) -> merged
 *                    piece, per-character flags that say where no piece can span
 *   sp_bpe.c         sentencepiece's merge rule over one segment of symbols (highest score, leftmost on ties)
 *   sp_unigram.c     sentencepiece's Viterbi for Unigram models
 * It reuses the byte-level core's hash, rank table (bytes -> id) and piece cache (tokend_native.h). */
#ifndef TOKEND_SP_NATIVE_H
#define TOKEND_SP_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "tokend_native.h"

#define SP_NONE UINT32_MAX

/* Piece types, sentencepiece's numbers (ModelProto.SentencePiece.Type). */
enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5, SP_BYTE = 6 };

/* ---- stopping a long encode ------------------------------------------------------------------------- */
/* What the caller asked to stop at, read without the GIL between bounded steps (sp_module.c fills it from the
 * engine's call_stop context variable). */
typedef struct {
    double deadline;             /* CLOCK_MONOTONIC seconds (Python's time.monotonic()); 0: none */
    const uint8_t *flag;         /* non-zero once the caller went away (set by another thread); NULL: none */
} sp_stop;

/* Whether the encode should give up now (stop NULL: never). A vDSO clock read and a byte: ~25 ns. */
int sp_stop_due(const sp_stop *stop);

/* ---- growable byte buffer ----------------------------------------------------------------------- */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} sp_bytes;

int sp_bytes_grow(sp_bytes *buffer, size_t more); /* 0, or -1 when out of memory */

static inline int sp_bytes_reserve(sp_bytes *buffer, size_t more) {
    return buffer->len + more <= buffer->cap ? 0 : sp_bytes_grow(buffer, more);
}
void sp_bytes_free(sp_bytes *buffer);

/* sentencepiece's OneCharLen: the length a lead byte announces (continuation bytes: 1). */
static inline size_t sp_one_char_len(uint8_t lead) {
    static const uint8_t table[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return table[lead >> 4];
}

/* sentencepiece's DecodeUTF8 + IsValidDecodeUTF8: the length of the valid character at text (1-4), or 0
 * when it is malformed (overlong, surrogate, past U+10FFFF, truncated). */
size_t sp_valid_char_len(const uint8_t *text, size_t len);

/* ---- user-defined pieces: longest match (sentencepiece's PrefixMatcher) ----------------------------- */
typedef struct {
    uint64_t key;         /* parent node << 8 | byte; UINT64_MAX: an empty slot */
    uint32_t child;
    uint32_t unused;
} sp_trie_edge;

/* The nodes' children in one hash table: a step costs one probe however many children a node has (a list of
 * siblings made a crafted file of 19,600 pieces, up to 93 children a node 200 deep, cost 79 us a byte of
 * "aaa..."). */
typedef struct {
    uint32_t *piece_ids;  /* node -> the piece ending there, SP_NONE when none */
    size_t n_nodes, cap;
    sp_trie_edge *edges;  /* open addressing, at most half full */
    size_t edge_mask, n_edges;
    uint64_t seed;
    size_t depth;         /* the longest piece, bytes: the most steps a walk takes */
    uint32_t root[256];   /* first byte -> node, SP_NONE when no piece starts with it */
} sp_trie;

void sp_trie_init(sp_trie *trie, uint64_t seed);
int sp_trie_add(sp_trie *trie, const uint8_t *piece, size_t len, uint32_t piece_id); /* -1 out of memory */
/* Length of the longest piece that prefixes text[0:len] (0 when none); its id in *piece_id. */
size_t sp_trie_longest(const sp_trie *trie, const uint8_t *text, size_t len, uint32_t *piece_id);
void sp_trie_free(sp_trie *trie);

/* ---- normalizer ------------------------------------------------------------------------------------ */
typedef struct {
    uint32_t *units;      /* darts-clone double array (copied out of the model), NULL: no charsmap */
    size_t n_units;
    uint8_t *strings;     /* replacements, NUL-terminated, followed by one extra NUL of ours */
    size_t n_strings;
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces, treat_whitespace_as_suffix;
    const sp_trie *user_defined; /* borrowed from the vocabulary; no node means no user-defined pieces */
    uint8_t rule_start[256];     /* SP_RULE_* bits: what may start with this byte */
    int plain_ascii;             /* no rule starts with an ASCII byte but maybe ' ': ASCII runs are copied in bulk */
    int plain;                   /* no rule starts with any byte but maybe ' ': runs of a valid text, likewise */
    uint64_t rule_prefix2[65536 / 64]; /* bit [b0 << 8 | b1]: a charsmap key of 2+ bytes starts with b0 b1 */
    size_t longest_key;          /* the longest charsmap key, bytes (at most SP_MAX_CHARSMAP_KEY) */
} sp_normalizer;

enum { SP_RULE_USER_DEFINED = 1, SP_RULE_ONE_BYTE_KEY = 2, SP_RULE_LONGER_KEY = 4 };

/* 0, -1 out of memory, -2 when the charsmap blob is inconsistent (its header does not fit). */
int sp_normalizer_init(sp_normalizer *normalizer, const uint8_t *charsmap, size_t len);
/* Call once the options and user_defined are set: fills rule_start. */
void sp_normalizer_prepare(sp_normalizer *normalizer);
void sp_normalizer_free(sp_normalizer *normalizer);
/* The normalized text may be at most this many times the input (plus SP_EXPANSION_SLACK bytes): past it
 * sp_normalize returns -3. nmt_nfkc's largest rule is 11x (U+FDFA, 3 bytes, becomes 33); a crafted
 * charsmap turning "a" into 100,000 bytes made a 2 KB request 2.5 GB. */
#define SP_MAX_EXPANSION 16
#define SP_EXPANSION_SLACK 1024
/* Charsmap keys longer than this are not looked for (real ones are a few characters; a crafted chain of
 * 20,000 nodes made every position's walk 20,000 steps). */
#define SP_MAX_CHARSMAP_KEY 256
/* Appends the normalized form of text[0:len] to *out. `valid_utf8`: the caller knows the text is valid UTF-8
 * (a str), so characters without a rule are copied without decoding them. 0, -1 out of memory, -3 when
 * the text grew past SP_MAX_EXPANSION times its length, -4 when `stop` came due (checked every
 * SP_STOP_CHECK_BYTES of text), or -5 when the output passed `cap` bytes (SIZE_MAX: no cap; checked as `stop`
 * is and after each rule's output: what is written past it is at most one run of rule-free characters, at most 3
 * bytes a byte of the text). */
#define SP_STOP_CHECK_BYTES 4096
int sp_normalize(const sp_normalizer *normalizer, const uint8_t *text, size_t len, int valid_utf8, sp_bytes *out,
                 const sp_stop *stop, size_t cap);
/* The most steps one position's rule lookups may take: the longest user-defined piece or charsmap key. */
static inline size_t sp_normalizer_walk(const sp_normalizer *normalizer) {
    size_t user = normalizer->user_defined ? normalizer->user_defined->depth : 0;
    return user > normalizer->longest_key ? user : normalizer->longest_key;
}

/* ---- vocabulary ----------------------------------------------------------------------------------- */
typedef struct {
    uint64_t key;   /* left << 32 | right; UINT64_MAX = empty */
    uint32_t value;
    uint32_t unused;
} sp_pair_slot;

/* Per symbol id: where the character can sit inside a piece of two or more characters. */
enum {
    SP_FLAG_LEFT = 1,      /* followed by another character in some piece */
    SP_FLAG_RIGHT = 2,     /* preceded by another character in some piece */
    SP_FLAG_BEFORE_WS = 4, /* followed by the whitespace mark in some piece */
    SP_FLAG_AFTER_WS = 8,  /* preceded by the whitespace mark in some piece */
};

typedef struct {
    uint32_t n_pieces;     /* ids 0..n_pieces-1 are the model's pieces */
    uint32_t n_symbols;    /* ids n_pieces.. are characters that occur inside pieces without being one */
    float *scores;         /* piece id -> score */
    uint32_t *score_keys;  /* piece id -> its score as an unsigned key in sentencepiece's order (see sp_vocab.c) */
    uint32_t *score_levels; /* piece id -> rank of its score key among the distinct keys, 0 = the highest */
    uint32_t n_levels;
    uint8_t *types;        /* piece id -> SP_NORMAL ... */
    uint8_t *flags;        /* symbol id -> SP_FLAG_* */
    tk_rank_table chars;   /* one character's bytes -> symbol id */
    uint32_t *three_byte_ids; /* the same for 3-byte sequences lead + 2 continuation bytes, direct (65,536) */
    uint64_t *pairs;       /* left | right << 21 | merged << 42; UINT64_MAX = empty (open addressing) */
    uint64_t pair_mask;
    uint64_t *pair_filter;   /* SP_FILTER_BITS bits: set for the hash of every (left, right) in `pairs` */
    uint64_t *bigram_filter; /* the same for every two characters adjacent inside some piece */
    uint8_t ascii_bigram[128 * 128 / 8]; /* two ASCII characters adjacent inside some piece, exact: [a << 7 | b] */
    uint8_t *ascii_of;     /* symbol id -> its character when that is one ASCII byte 1-127, else 0 */
    uint32_t *ascii_pairs; /* [a << 7 | b] -> the piece of those two characters, SP_NONE: none (sp_pair) */
    uint8_t ascii_joinable[128 * 128 / 8]; /* sp_adjacent_in_a_piece of ASCII characters 1-127: [a << 7 | b] */
    uint64_t seed;
    sp_trie user_defined;
    uint32_t byte_ids[256];
    int byte_fallback;
    uint32_t unk_id;
    uint32_t ws_id;        /* symbol id of the whitespace mark (▁, or " " without escaping), SP_NONE if unknown */
    int has_unused_merges; /* an UNUSED piece of two or more characters exists: see sp_module.c */
    uint32_t *unused_slot; /* piece id -> index among the UNUSED pieces (SP_NONE for other types) */
    uint32_t n_unused;
    uint32_t *piece_lens;  /* piece id -> its length in bytes */
    /* Unigram models only: every NORMAL, USER_DEFINED and UNUSED piece in a byte trie, as slots
     * (node << 8 | byte) | child << 34 (UINT64_MAX = empty), and node -> piece id (SP_NONE: none ends there). */
    int unigram;
    uint64_t *trie_slots;
    uint64_t trie_mask;
    uint32_t *trie_piece;
    size_t trie_depth;     /* the longest piece in the trie, bytes: the most steps a position's walk takes */
    float unk_score;       /* min(NORMAL scores) - 10, as float (unigram_model.cc) */
} sp_vocab;

/* pieces[i] (lens[i] bytes, valid UTF-8, unique, non-empty) with types[i] and scores[i]. 0, -1 out of memory,
 * -2 when pieces and the characters inside them number SP_MAX_SYMBOLS or more. */
int sp_vocab_init(sp_vocab *vocab, uint32_t n_pieces, const uint8_t *const *pieces, const size_t *lens,
                  const uint8_t *types, const float *scores, int byte_fallback, const uint8_t *ws, size_t ws_len,
                  uint64_t seed, int unigram);


void sp_vocab_free(sp_vocab *vocab);

static inline uint32_t sp_char_id(const sp_vocab *vocab, const uint8_t *symbol, size_t len) {
    if (len == 1) return vocab->chars.byte_rank[symbol[0]];
    if (len == 2) return vocab->chars.pair_rank[(symbol[0] << 8) | symbol[1]];
    if (len == 3 && (symbol[0] & 0xF0) == 0xE0 && (symbol[1] & 0xC0) == 0x80 && (symbol[2] & 0xC0) == 0x80)
        return vocab->three_byte_ids[(symbol[0] & 0x0F) << 12 | (symbol[1] & 0x3F) << 6 | (symbol[2] & 0x3F)];
    return tk_rank_of(&vocab->chars, symbol, len);
}

static inline uint64_t sp_mix(uint64_t x) {
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return x;
}

/* Filters in front of the hash tables: one bit per hash of a (left, right) pair, 256 KB each, so the common
 * "no such pair" answer costs one access to a table that stays in cache instead of a probe into megabytes
 * (measured: the probes were most of the merge time on multilingual text). A set bit may be a collision;
 * then the table decides. */
#define SP_FILTER_BITS (1u << 21)

static inline uint64_t sp_filter_bit(uint64_t key, uint64_t seed) {
    return (sp_mix(key ^ seed ^ 0x5851f42d4c957f2dull) * 0x9e3779b97f4a7c15ull) >> (64 - 21);
}

static inline int sp_filter_has(const uint64_t *filter, uint64_t key, uint64_t seed) {
    uint64_t bit = sp_filter_bit(key, seed);
    return (filter[bit >> 6] >> (bit & 63)) & 1;
}

/* Symbol ids fit in 21 bits, so a pair and its merged piece pack into one 8-byte slot: the table of Llama 2's
 * ~150,000 pairs is 2 MB, which mostly stays in this machine's L2 (16-byte slots at half load: 8 MB). */
#define SP_ID_BITS 21
#define SP_MAX_SYMBOLS ((1u << SP_ID_BITS) - 1)
#define SP_PAIR_KEY_MASK ((1ull << (2 * SP_ID_BITS)) - 1)

static inline uint32_t sp_lookup(const uint64_t *slots, uint64_t mask, uint64_t seed, uint32_t left, uint32_t right) {
    uint64_t key = (uint64_t)left | (uint64_t)right << SP_ID_BITS;
    for (uint64_t i = sp_mix(key ^ seed) & mask;; i = (i + 1) & mask) {
        uint64_t slot = slots[i];
        if ((slot & SP_PAIR_KEY_MASK) == key) return (uint32_t)(slot >> (2 * SP_ID_BITS));
        if (slot == UINT64_MAX) return SP_NONE;
    }
}

/* The piece that symbols `left` and `right` form together, SP_NONE when none. Two ASCII characters (the first
 * pairs of most text) by direct index: two small tables that stay in L1 instead of the filter and the 2 MB
 * table. */
static inline uint32_t sp_pair(const sp_vocab *vocab, uint32_t left, uint32_t right) {
    if (left == SP_NONE || right == SP_NONE) return SP_NONE;
    uint8_t a = vocab->ascii_of[left], b = vocab->ascii_of[right];
    if (a && b) return vocab->ascii_pairs[a << 7 | b];
    if (!sp_filter_has(vocab->pair_filter, (uint64_t)left << 32 | right, vocab->seed)) return SP_NONE;
    return sp_lookup(vocab->pairs, vocab->pair_mask, vocab->seed, left, right);
}

/* Whether characters `a` and `b` (symbol ids; a_byte/b_byte their byte when ASCII, else 0) may be adjacent
 * inside some piece: if not (0), no merge can join them. Exact next to the whitespace mark and for two ASCII
 * characters; elsewhere a filter collision may answer 1 for a pair that is not adjacent anywhere, which only
 * costs a longer segment. */
static inline int sp_adjacent_in_a_piece(const sp_vocab *vocab, uint32_t a, uint32_t b, uint8_t a_byte, uint8_t b_byte) {
    if (a == SP_NONE || b == SP_NONE) return 0;
    uint8_t fa = vocab->flags[a], fb = vocab->flags[b];
    if (b == vocab->ws_id) return (fa & SP_FLAG_BEFORE_WS) != 0; /* exact for the whitespace mark */
    if (a == vocab->ws_id) return (fb & SP_FLAG_AFTER_WS) != 0;
    if (!(fa & SP_FLAG_LEFT) || !(fb & SP_FLAG_RIGHT)) return 0;
    if (a_byte && b_byte) {
        unsigned bit = (unsigned)a_byte << 7 | b_byte;
        return (vocab->ascii_bigram[bit >> 3] >> (bit & 7)) & 1;
    }
    return sp_filter_has(vocab->bigram_filter, (uint64_t)a << 32 | b, vocab->seed ^ 0x2545f4914f6cdd1dull);
}

/* ---- BPE ------------------------------------------------------------------------------------------- */
/* Merges the n symbols ids[0..n) in place by sentencepiece's rule: ids[0..m) become the survivors in text
 * order (each covers its piece's bytes, or one character when it is not a piece); returns m, or -1 when out of
 * memory. */
ptrdiff_t sp_bpe_merge(const sp_vocab *vocab, uint32_t *ids, size_t n);

/* The passes of a very long segment (sp_bpe_passes.c), for sp_bpe_merge: merges ids[0..n) one score level per
 * pass while one level has a large share of the pairs, compacting ids in place; returns the symbols left (or
 * -1 out of memory) and sets *state: SP_PASSES_DONE (no pair left),
 * SP_PASSES_LEVELS (the rest for the level lists; levels[i] is then the level of the pair (i - 1, i),
 * UINT32_MAX: none) or SP_PASSES_HEAP (a created pair scores above the level being merged: the rest for the
 * heap). levels: room for n. */
enum { SP_PASSES_DONE, SP_PASSES_LEVELS, SP_PASSES_HEAP };
ptrdiff_t sp_bpe_passes(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *levels, int *state);

/* The same rule over a whole sentence, recording what sentencepiece needs to split UNUSED pieces again: for each
 * UNUSED piece, rev[unused_slot[piece]] = left id << 32 | right id of the pair *last offered* for it (the caller
 * fills rev with UINT64_MAX). Ids that must never pair (user-defined pieces) are passed as SP_NONE. */
ptrdiff_t sp_bpe_merge_sentence(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *keep, uint64_t *rev);

#define SP_TRIE_ROOT 0u
/* The trie node after `byte` from `node`, SP_NONE when there is none (Unigram models). */
static inline uint32_t sp_trie_child(const sp_vocab *vocab, uint32_t node, uint8_t byte) {
    uint64_t key = (uint64_t)node << 8 | byte;
    for (uint64_t i = sp_mix(key ^ vocab->seed) & vocab->trie_mask;; i = (i + 1) & vocab->trie_mask) {
        uint64_t slot = vocab->trie_slots[i];
        if (slot == UINT64_MAX) return SP_NONE;
        if ((slot & ((1ull << 34) - 1)) == key) return (uint32_t)(slot >> 34);
    }
}

/* ---- Unigram ------------------------------------------------------------------------------------------ */
/* sentencepiece's EncodeOptimized over text[0:len]: the best path as (start, piece id) pairs in text order
 * (id SP_NONE: an unknown character), written to starts/ids (room for len entries). Returns how many, -1
 * when out of memory, or -2 when `stop` came due (checked every SP_STOP_CHECK_BYTES of text). */
ptrdiff_t sp_unigram_encode(const sp_vocab *vocab, const uint8_t *text, size_t len, uint32_t *starts, uint32_t *ids,
                            const sp_stop *stop);

#endif
