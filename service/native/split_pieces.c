/* Pieces of a text: how matches become pieces, per stage, and how stages chain.
 *
 * Which matches (the references differ only where a match is empty):
 * - python-regex (regex.finditer): try every position in turn; after an empty match at p, try p once more
 *   with empty matches forbidden (the matcher then backtracks into longer alternatives), then move on.
 * - oniguruma (the `onig` crate's find_iter, what `tokenizers` iterates): search from the end of the last
 *   match; an empty match right where the last match ended is rejected and the search resumes one
 *   character later (so a non-empty match starting there is never seen).
 * Hand-written scanners (pretokenize.c) never match empty: both rules give the same pieces.
 *
 * Pieces of a stage: findall = the matches (empty ones included, as finditer gives them); isolated =
 * Hugging Face's Split(behavior="Isolated"): the matches and the gaps between them, in order, empty ones
 * dropped. A chain (Hugging Face's Sequence of Splits) hands every piece of stage k to stage k + 1 as its
 * whole text: anchors and lookaheads see only that piece, as in `tokenizers`. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "split_program.h"

static inline size_t char_width(uint8_t b) { return b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4; }

static void stage_reset(tk_stage_iter *st, const tk_split_stage *stage, const uint8_t *text, size_t len) {
    st->text = text;
    st->len = len;
    st->pos = 0;
    st->last_match_end = 0;
    st->emitted = 0;
    st->match_start = st->match_end = 0;
    st->has_last_match = st->has_pending_match = st->forbid_empty = 0;
    if (stage->program) tk_matcher_reset(&st->matcher, text, len);
}

/* Past characters where no match can start (the program's start class, known when no match is empty). */
static inline size_t skip_to_start(const tk_program *program, const tk_stage_iter *st, size_t pos) {
    return tk_program_skip(program, st->text, st->len, pos);
}

/* The next match of a program stage, python-regex rules: 1 with [*start, *end), 0, -1 (memory). */
static int next_match_python(tk_stage_iter *st, size_t *start, size_t *end) {
    const tk_program *program = st->matcher.program;
    while (st->pos <= st->len) {
        if (!st->forbid_empty) st->pos = skip_to_start(program, st, st->pos);
        ptrdiff_t result = tk_match_at(&st->matcher, st->pos, st->forbid_empty);
        if (result == TK_MATCH_NO_MEMORY) return -1;
        if (result >= 0) {
            *start = st->pos;
            *end = (size_t)result;
            st->forbid_empty = (size_t)result == st->pos;
            st->pos = (size_t)result;
            return 1;
        }
        st->forbid_empty = 0;
        st->pos += st->pos < st->len ? char_width(st->text[st->pos]) : 1;
    }
    return 0;
}

/* The same with the oniguruma (find_iter) rules. */
static int next_match_oniguruma(tk_stage_iter *st, size_t *start, size_t *end) {
    const tk_program *program = st->matcher.program;
    for (;;) {
        size_t at = st->pos;
        ptrdiff_t result = TK_MATCH_NONE;
        while (at <= st->len) {
            at = skip_to_start(program, st, at);
            result = tk_match_at(&st->matcher, at, 0);
            if (result != TK_MATCH_NONE) break;
            at += at < st->len ? char_width(st->text[at]) : 1;
        }
        if (result == TK_MATCH_NO_MEMORY) return -1;
        if (result < 0) {
            st->pos = st->len + 1;
            return 0;
        }
        if ((size_t)result == at && st->has_last_match && st->last_match_end == at) {
            st->pos = at + (at < st->len ? char_width(st->text[at]) : 1);
            continue;
        }
        *start = at;
        *end = (size_t)result;
        st->pos = st->last_match_end = (size_t)result;
        st->has_last_match = 1;
        return 1;
    }
}

static int next_match(const tk_split_stage *stage, tk_stage_iter *st, size_t *start, size_t *end) {
    if (!stage->program) {
        if (!tk_next_piece(stage->builtin, st->text, st->len, &st->pos, start)) return 0;
        *end = st->pos;
        return 1;
    }
    return stage->program->dialect == TK_DIALECT_ONIGURUMA ? next_match_oniguruma(st, start, end)
                                                           : next_match_python(st, start, end);
}

/* The next piece of one stage (offsets into its own text). */
static int stage_next(const tk_split_stage *stage, tk_stage_iter *st, size_t *start, size_t *end) {
    if (stage->mode == TK_SPLIT_FINDALL) return next_match(stage, st, start, end);
    for (;;) {
        if (st->has_pending_match) {
            st->has_pending_match = 0;
            if (st->match_end > st->match_start) {
                *start = st->match_start;
                *end = st->match_end;
                return 1;
            }
        }
        size_t match_start, match_end;
        int found = next_match(stage, st, &match_start, &match_end);
        if (found < 0) return -1;
        if (!found) {
            if (st->emitted < st->len) {
                *start = st->emitted;
                *end = st->emitted = st->len;
                return 1;
            }
            return 0;
        }
        st->match_start = match_start;
        st->match_end = match_end;
        st->has_pending_match = 1;
        if (match_start > st->emitted) { /* the gap before the match */
            *start = st->emitted;
            *end = match_start;
            st->emitted = match_end;
            return 1;
        }
        st->emitted = match_end;
    }
}

int tk_split_iter_init(tk_split_iter *iter, const tk_splitter *splitter, const uint8_t *text, size_t len) {
    memset(iter, 0, offsetof(tk_split_iter, stages));
    memset(iter->stages, 0, (size_t)splitter->n_stages * sizeof iter->stages[0]);
    iter->splitter = splitter;
    iter->root = text;
    iter->root_len = len;
    const tk_split_stage *stage = splitter->stages;
    iter->deepseek_v3 = splitter->n_stages == 3 && !stage[0].program && !stage[1].program && !stage[2].program &&
                        stage[0].builtin == TK_PATTERN_NUMBERS3 && stage[1].builtin == TK_PATTERN_DEEPSEEK_CJK &&
                        stage[2].builtin == TK_PATTERN_DEEPSEEK_V3 && stage[0].mode == TK_SPLIT_ISOLATED &&
                        stage[1].mode == TK_SPLIT_ISOLATED && stage[2].mode == TK_SPLIT_ISOLATED;
    if (splitter->n_stages == 1 && !splitter->stages[0].program &&
        (splitter->stages[0].mode == TK_SPLIT_FINDALL || tk_pattern_matches_everywhere(splitter->stages[0].builtin)))
        iter->scanner = splitter->stages[0].builtin;
    iter->bulk_retry = tk_bulk_split_supports(iter->scanner) || (iter->deepseek_v3 && tk_bulk_split_deepseek_v3_supported())
                           ? 0 : (size_t)-1;
    for (int i = 0; i < splitter->n_stages; i++) {
        if (splitter->stages[i].program && tk_matcher_init(&iter->stages[i].matcher, splitter->stages[i].program) < 0) {
            tk_split_iter_free(iter);
            return -1;
        }
    }
    if (splitter->n_stages > 0) {
        stage_reset(&iter->stages[0], &splitter->stages[0], text, len);
        iter->depth = 1;
    }
    return 0;
}

int tk_split_iter_next_general(tk_split_iter *iter, size_t *start, size_t *end) {
    const tk_splitter *splitter = iter->splitter;
    while (iter->depth > 0) {
        int level = iter->depth - 1;
        tk_stage_iter *st = &iter->stages[level];
        size_t s, e;
        int found = stage_next(&splitter->stages[level], st, &s, &e);
        if (found < 0) return -1;
        if (!found) {
            iter->depth--;
            continue;
        }
        if (iter->depth == splitter->n_stages) {
            size_t offset = (size_t)(st->text - iter->root);
            *start = offset + s;
            *end = offset + e;
            return 1;
        }
        if (e == s) continue; /* an empty piece has no pieces */
        stage_reset(&iter->stages[level + 1], &splitter->stages[level + 1], st->text + s, e - s);
        iter->depth++;
    }
    return 0;
}

void tk_split_iter_free(tk_split_iter *iter) {
    for (int i = 0; i < iter->splitter->n_stages; i++)
        if (iter->stages[i].matcher.program) tk_matcher_free(&iter->stages[i].matcher);
}
