/* The general split-pattern matcher: programs compiled by tokend.engine.splitting (Python) from any pattern
 * in the supported subset, run by a backtracking matcher in C, and the iteration that turns matches into
 * pieces (findall or Hugging Face's Split "Isolated", either dialect, several stages in a chain).
 *
 *   split_program.c   program loading and validation (split_chars.h: decoding, class tests)
 *   split_matcher.c   the matcher (tk_match_at)
 *   split_pieces.c    pieces of a text: stages, dialect rules for empty matches, gaps, chains
 *   split_object.c    the Python types SplitProgram and PieceSplitter (used by module.c's BpeCore)
 *   bulk_starts.c     the scanners' fast path: piece starts of 64 bytes of ASCII text at once (cl100k_base,
 *                     o200k_base and the patterns that cut such text the same way)
 *
 * Like the rest of the core: pure computation on UTF-8 handed in (valid: it comes from a str), no Python
 * objects outside split_object.c, nothing shared is written (a tk_split_iter belongs to one call), so the
 * iteration may run without the GIL. */
#ifndef TOKEND_SPLIT_PROGRAM_H
#define TOKEND_SPLIT_PROGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "bulk_starts.h"
#include "tokend_native.h"

/* Opcodes and operand counts: must equal OPCODES in tokend/engine/splitting/compiler.py (checked there
 * against TK_OPCODE_TABLE when a splitter is built). */
enum {
    TK_OP_MATCH = 0,   /* success of the whole match (fails instead when an empty match is forbidden here) */
    TK_OP_SUCCEED,     /* end of a LOOK / ATOMIC body */
    TK_OP_CHAR,        /* cp */
    TK_OP_CLASS,       /* class */
    TK_OP_JMP,         /* target */
    TK_OP_SPLIT,       /* primary, secondary, guard class (TK_NO_CLASS: none), memo point */
    TK_OP_RUN,         /* class, min, max (TK_NO_MAX), mode, slot, memo point */
    TK_OP_ASSERT,      /* kind */
    TK_OP_PEEK,        /* class, negated: one-character lookahead */
    TK_OP_LOOK,        /* negated, end, slot; body follows */
    TK_OP_ATOMIC,      /* end, slot; body follows */
    TK_OP_DISPATCH,    /* 128 targets by ASCII character, then the target for anything else */
    TK_OP_COUNT
};
#define TK_OPCODE_TABLE "MATCH:0,SUCCEED:0,CHAR:1,CLASS:1,JMP:1,SPLIT:4,RUN:6,ASSERT:1,PEEK:2,LOOK:3,ATOMIC:2,DISPATCH:129"
#define TK_ASSERTION_TABLE "text_start,text_end,text_end_or_final_newline,line_start,line_end,word_boundary,not_word_boundary"

enum {
    TK_ASSERT_TEXT_START = 0,
    TK_ASSERT_TEXT_END,
    TK_ASSERT_TEXT_END_OR_FINAL_NEWLINE,
    TK_ASSERT_LINE_START,
    TK_ASSERT_LINE_END,
    TK_ASSERT_WORD_BOUNDARY,
    TK_ASSERT_NOT_WORD_BOUNDARY,
    TK_ASSERT_COUNT
};
enum { TK_RUN_GREEDY = 0, TK_RUN_LAZY = 1, TK_RUN_POSSESSIVE = 2 };
#define TK_NO_CLASS 0xffffffffu
#define TK_NO_MAX 0xffffffffu
#define TK_MAX_NESTING 32

typedef enum { TK_DIALECT_PYTHON = 0, TK_DIALECT_ONIGURUMA = 1 } tk_dialect;

/* A character class: negated XOR (code point in ranges OR property byte in signatures); ascii[] is the
 * same test precomputed for code points below 128. */
typedef struct {
    uint64_t ascii[2];
    uint64_t signatures[4];
    uint32_t negated;
    uint32_t n_ranges;
    const uint32_t *ranges; /* (low, high) inclusive pairs, sorted, disjoint */
} tk_char_class;

typedef struct {
    uint32_t *code;
    uint32_t n_code;
    tk_char_class *classes;
    uint32_t n_classes;
    uint32_t *range_words; /* storage behind classes[].ranges */
    uint32_t n_slots;      /* per-call caches of RUN / LOOK / ATOMIC instructions */
    uint32_t n_memo;       /* memo points (SPLIT, RUN) */
    uint32_t start_class;  /* every match starts with a character of this class (TK_NO_CLASS: unknown) */
    tk_dialect dialect;
} tk_program;

/* Copies and validates a compiled program (every operand in range, every jump onto an instruction, every
 * body closed): returns 0, or -1 with *error set (a static message; allocation failure says so). */
int tk_program_init(tk_program *program, const uint32_t *code, size_t n_code, const uint32_t *class_words,
                    size_t n_class_words, uint32_t n_slots, uint32_t n_memo, uint32_t start_class, tk_dialect dialect,
                    const char **error);
void tk_program_free(tk_program *program);
/* The first position from pos where a match can start (its character is in the program's start class),
 * or len; pos itself when the program has no start class. */
size_t tk_program_skip(const tk_program *program, const uint8_t *text, size_t len, size_t pos);

/* ---- the matcher: scratch for one text ---------------------------------------------------------------- */
typedef struct {
    uint32_t pc;
    uint32_t kind;
    size_t pos;
    size_t aux;
} tk_frame;

typedef struct {
    size_t run_start, run_end; /* RUN, unbounded: the class holds every character of [run_start, run_end) */
    size_t fail_lo, fail_hi;   /* RUN: the rest of the pattern fails from every char boundary in [lo, hi] */
    size_t sub_pos;            /* LOOK / ATOMIC: result of the body at sub_pos */
    ptrdiff_t sub_result;
    uint8_t run_valid, fail_valid, sub_valid;
} tk_slot;

typedef struct {
    const tk_program *program;
    const uint8_t *text;
    size_t len;
    tk_frame *frames;
    size_t n_frames, frames_capacity;
    tk_slot *slots;
    uint64_t *memo;            /* n_memo rows of len + 1 bits, once memoization is on */
    uint64_t steps, budget;    /* memoization turns on when steps pass the budget */
    size_t start;
    int forbid_empty;          /* this attempt may not end where it started (findall after an empty match) */
} tk_matcher;

#define TK_MATCH_NONE (-1)
#define TK_MATCH_NO_MEMORY (-2)

int tk_matcher_init(tk_matcher *matcher, const tk_program *program); /* 0, or -1: out of memory */
void tk_matcher_reset(tk_matcher *matcher, const uint8_t *text, size_t len);
void tk_matcher_free(tk_matcher *matcher);
/* End of the match the program finds starting exactly at `start` (leftmost-first), TK_MATCH_NONE, or
 * TK_MATCH_NO_MEMORY. */
ptrdiff_t tk_match_at(tk_matcher *matcher, size_t start, int forbid_empty);

/* ---- pieces ------------------------------------------------------------------------------------------- */
typedef enum { TK_SPLIT_FINDALL = 0, TK_SPLIT_ISOLATED = 1 } tk_split_mode;
#define TK_MAX_STAGES 8

typedef struct {
    const tk_program *program; /* NULL: the hand-written scanner `builtin` (pretokenize.c) */
    tk_pattern builtin;
    tk_split_mode mode;
} tk_split_stage;

/* Stage k + 1 splits every piece of stage k; the pieces of the last stage are the result. */
typedef struct {
    int n_stages;
    tk_split_stage stages[TK_MAX_STAGES];
} tk_splitter;

typedef struct {
    const uint8_t *text;       /* this stage's input: a piece of the stage before */
    size_t len;
    size_t pos;                /* where the next match is looked for */
    size_t last_match_end;     /* oniguruma: where the last accepted match ended */
    size_t emitted;            /* isolated: end of what has been returned */
    size_t match_start, match_end;
    uint8_t has_last_match, has_pending_match, forbid_empty;
    tk_matcher matcher;
} tk_stage_iter;

typedef struct {
    const tk_splitter *splitter;
    const uint8_t *root;
    size_t root_len;
    tk_pattern scanner;        /* one findall stage run by a scanner: the fast path (else TK_PATTERN_NONE) */
    /* bulk starts (bulk_starts.h): pieces found and not yet returned, as bits from bulk_base (the
     * lowest is the next piece's start, the highest where the scanner goes on); 0 when none are left.
     * bulk_retry: no bulk call before this offset. */
    uint64_t bulk;
    size_t bulk_base, bulk_retry;
    int deepseek_v3;           /* DeepSeek-V3's three scanner stages: tk_deepseek_v3_next does the chain */
    tk_deepseek_v3_state chain;
    int depth;                 /* stages that have an input */
    tk_stage_iter stages[TK_MAX_STAGES];
} tk_split_iter;

int tk_split_iter_init(tk_split_iter *iter, const tk_splitter *splitter, const uint8_t *text, size_t len);
int tk_split_iter_next_general(tk_split_iter *iter, size_t *start, size_t *end);
void tk_split_iter_free(tk_split_iter *iter);

/* The next piece of the bulk window (bulk_starts.h) pending, or of a new one taken at *pos: 1; 0 when there is
 * none, and the scanner (or DeepSeek-V3's chain) takes the next piece at *pos. After the window's last piece
 * *pos is its end: the window's last start, a start of the scanner's or the chain's pieces (the chain's
 * stages' ends still bound the pieces holding it, or are found again once it reaches them). */
static inline int tk_split_iter_bulk_next(tk_split_iter *iter, size_t *pos, size_t *start, size_t *end) {
    if (*pos < iter->bulk_retry && !iter->bulk) return 0; /* bulk_retry: SIZE_MAX where there are no bulk starts */
    if (!iter->bulk && *pos + TK_BULK_WINDOW_READ <= iter->root_len) {
        iter->bulk = iter->deepseek_v3 ? tk_bulk_starts_deepseek_v3(iter->root, *pos, &iter->bulk_retry)
                                       : tk_bulk_starts(iter->scanner, iter->root, *pos, &iter->bulk_retry);
        iter->bulk_base = *pos;
    }
    if (!iter->bulk) return 0;
    uint64_t rest = iter->bulk & (iter->bulk - 1);
    *start = iter->bulk_base + (size_t)__builtin_ctzll(iter->bulk);
    *end = iter->bulk_base + (size_t)__builtin_ctzll(rest);
    if (rest & (rest - 1)) {
        iter->bulk = rest;
    } else {
        iter->bulk = 0;
        *pos = *end;
    }
    return 1;
}

/* The next piece [*start, *end) (byte offsets into the text; may be empty: findall's empty matches):
 * 1, 0 when there are no more, -1 when out of memory. Inline so that the common case, one scanner in
 * findall mode, calls the scanner directly (a call chain per piece measurably slowed the scanners). */
static inline int tk_split_iter_next(tk_split_iter *iter, size_t *start, size_t *end) {
    if (iter->scanner != TK_PATTERN_NONE) {
        tk_stage_iter *st = &iter->stages[0];
        if (tk_split_iter_bulk_next(iter, &st->pos, start, end)) return 1;
        if (!tk_next_piece(iter->scanner, iter->root, iter->root_len, &st->pos, start)) return 0;
        *end = st->pos;
        return 1;
    }
    if (iter->deepseek_v3) {
        if (tk_split_iter_bulk_next(iter, &iter->chain.pos, start, end)) return 1;
        return tk_deepseek_v3_next(iter->root, iter->root_len, &iter->chain, start, end);
    }
    return tk_split_iter_next_general(iter, start, end);
}

/* Up to `max` pieces of the scanner's current bulk window (bulk_starts.h) into starts/ends: how many, 0 when
 * none is pending. For a loop that takes pieces in batches: the same pieces as tk_split_iter_next, without
 * its checks per piece. */
static inline size_t tk_split_iter_take_bulk(tk_split_iter *iter, size_t *starts, size_t *ends, size_t max) {
    uint64_t bulk = iter->bulk;
    if (!bulk) return 0;
    /* A pending window has 2+ bits, the last where the scanner goes on: one piece fewer than its bits. The
     * loop runs a known number of times, and each piece's end is the next one's start (one bit scan a piece,
     * no test for the window's last: ~17 -> ~9 instructions a piece of code, docs/decisions.md, "The open
     * families' first count of code"). */
    size_t left = tk_popcount64(bulk) - 1, n = left < max ? left : max;
    size_t base = iter->bulk_base, at = base + (size_t)__builtin_ctzll(bulk);
    for (size_t k = 0; k < n; k++) {
        bulk &= bulk - 1;
        size_t next = base + (size_t)__builtin_ctzll(bulk);
        starts[k] = at;
        ends[k] = next;
        at = next;
    }
    if (n == left) {
        bulk = 0;
        if (iter->deepseek_v3)
            iter->chain.pos = at;
        else
            iter->stages[0].pos = at;
    }
    iter->bulk = bulk;
    return n;
}

#endif
