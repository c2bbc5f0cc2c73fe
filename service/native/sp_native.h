/* tokend's SentencePiece BPE core: shared declarations of its C parts.
 *
 * Scope: pure computation on byte strings handed in by sp_module.c, which owns every Python object.
 *   sp_normalizer.c  sentencepiece's Normalizer: precompiled charsmap (darts-clone double array), user-defined
 *                    pieces kept verbatim, dummy prefix, extra-whitespace removal, `▁` escaping
 *   sp_vocab.c       the vocabulary as lookup tables: characters -> symbol ids, (left id, right id) -> merged
 *                    piece, per-character flags that say where no piece can span
 *   sp_bpe.c         sentencepiece's merge rule over one segment of symbols (highest score, leftmost on ties)
 * It reuses the byte-level core's hash, rank table (bytes -> id) and piece cache (tokend_native.h). */
#ifndef TOKEND_SP_NATIVE_H
#define TOKEND_SP_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "tokend_native.h"

#define SP_NONE UINT32_MAX

/* Piece types, sentencepiece's numbers (ModelProto.SentencePiece.Type). */
enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5, SP_BYTE = 6 };

/* ---- growable byte buffer ----------------------------------------------------------------------- */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} sp_bytes;

int sp_bytes_reserve(sp_bytes *buffer, size_t more); /* 0, or -1 when out of memory */
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
    uint32_t first_child; /* node index, SP_NONE when none */
    uint32_t next_sibling;
    uint32_t piece_id;    /* SP_NONE unless a piece ends here */
    uint8_t label;
} sp_trie_node;

typedef struct {
    sp_trie_node *nodes;
    size_t n_nodes, cap;
    uint32_t root[256];   /* first byte -> node, SP_NONE when no piece starts with it */
} sp_trie;

void sp_trie_init(sp_trie *trie);
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
} sp_normalizer;

/* 0, -1 out of memory, -2 when the charsmap blob is inconsistent (its header does not fit). */
int sp_normalizer_init(sp_normalizer *normalizer, const uint8_t *charsmap, size_t len);
void sp_normalizer_free(sp_normalizer *normalizer);
/* Appends the normalized form of text[0:len] to *out. 0, or -1 when out of memory. */
int sp_normalize(const sp_normalizer *normalizer, const uint8_t *text, size_t len, sp_bytes *out);

/* ---- vocabulary ----------------------------------------------------------------------------------- */
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
    uint8_t *types;        /* piece id -> SP_NORMAL ... */
    uint8_t *flags;        /* symbol id -> SP_FLAG_* */
    tk_rank_table chars;   /* one character's bytes -> symbol id */
    uint64_t *pair_keys;   /* (left << 32 | right); UINT64_MAX = empty slot */
    uint32_t *pair_values; /* -> merged piece id */
    uint64_t pair_mask;
    uint64_t seed;
    sp_trie user_defined;
    uint32_t byte_ids[256];
    int byte_fallback;
    uint32_t unk_id;
    uint32_t ws_id;        /* symbol id of the whitespace mark (▁, or " " without escaping), SP_NONE if unknown */
    int has_unused_merges; /* an UNUSED piece of two or more characters exists: see sp_module.c */
} sp_vocab;

/* pieces[i] (lens[i] bytes, valid UTF-8, unique, non-empty) with types[i] and scores[i]. 0, -1 out of memory. */
int sp_vocab_init(sp_vocab *vocab, uint32_t n_pieces, const uint8_t *const *pieces, const size_t *lens,
                  const uint8_t *types, const float *scores, int byte_fallback, const uint8_t *ws, size_t ws_len,
                  uint64_t seed);
void sp_vocab_free(sp_vocab *vocab);

static inline uint32_t sp_char_id(const sp_vocab *vocab, const uint8_t *symbol, size_t len) {
    return tk_rank_of(&vocab->chars, symbol, len);
}

uint32_t sp_pair(const sp_vocab *vocab, uint32_t left, uint32_t right);

/* ---- BPE ------------------------------------------------------------------------------------------- */
/* Merges the n symbols ids[0..n) in place by sentencepiece's rule and writes the surviving symbols' initial
 * indices to keep[] (so a symbol that was never merged can be found in the text again); returns how many
 * survive, or -1 when out of memory. ids[k] becomes the id of the symbol that starts at initial index k. */
ptrdiff_t sp_bpe_merge(const sp_vocab *vocab, uint32_t *ids, size_t n, uint32_t *keep);

#endif
