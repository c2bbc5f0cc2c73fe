/* The general split-pattern matcher: a backtracking interpreter of the programs tokend.engine.splitting
 * compiles (instruction set in split_program.h), with the leftmost-first semantics of the references.
 *
 * Speed comes from doing whole runs at once: RUN scans a class run in one loop and, when backtracked into,
 * gives back one character at a time; SPLIT guards skip alternatives whose first character cannot match.
 *
 * Bound on the work (no catastrophic backtracking). Whether the rest of the pattern can match from a given
 * (instruction, position) does not depend on where the attempt started (no captures, backreferences or
 * lookbehind; the one exception, findall's "no empty match here" retry, records nothing), so a failure
 * learned once stays true for the whole text:
 * - each unbounded RUN caches the end of the run it last scanned, so every character is scanned at most
 *   once per RUN instruction and text;
 * - each backtracking RUN keeps the interval of positions from which the rest already failed, and skips
 *   over it: giving back a run of n characters costs O(n) once, O(1) on every later attempt;
 * - every SPLIT, RUN (plus the characters it scans) and backtrack counts as a step (what runs between
 *   them is bounded by the program's length); past 64 steps per byte of text (a split that backtracks
 *   little takes a few per piece), memoization turns on: a bit per (SPLIT or RUN memo point, position), set when
 *   everything from that state failed, tested before entering it again. From then on each state is
 *   explored to failure at most once, so the rest costs O(program size x text length) (plus, for
 *   lookaheads and atomic groups other than one-class ones, their successful sub-matches, cached per
 *   position only for the last one).
 * Memory: the backtrack stack holds one frame (24 bytes) per pending alternative: a few per piece for
 * the usual patterns (a repeated class is one frame, however long the run), but one per iteration for a
 * repeated group, so O(match length) there; memoization adds n_memo x (len + 1) bits, allocated zeroed
 * (untouched pages cost nothing). Both are plain malloc: the iteration runs without the GIL. */
#include <stdlib.h>
#include <string.h>

#include "split_chars.h"

enum { F_ALT = 0, F_MEMO = 1, F_RUN_GREEDY = 2, F_RUN_LAZY = 3 };
#define STEPS_PER_BYTE 64
#define STEPS_FLOOR 65536

/* ---- matcher --------------------------------------------------------------------------------------- */

int tk_matcher_init(tk_matcher *m, const tk_program *program) {
    memset(m, 0, sizeof *m);
    m->program = program;
    m->frames_capacity = 64;
    m->frames = malloc(m->frames_capacity * sizeof *m->frames);
    m->slots = calloc(program->n_slots ? program->n_slots : 1, sizeof *m->slots);
    if (!m->frames || !m->slots) {
        tk_matcher_free(m);
        return -1;
    }
    return 0;
}

void tk_matcher_reset(tk_matcher *m, const uint8_t *text, size_t len) {
    m->text = text;
    m->len = len;
    m->n_frames = 0;
    memset(m->slots, 0, (m->program->n_slots ? m->program->n_slots : 1) * sizeof *m->slots);
    free(m->memo);
    m->memo = NULL;
    m->steps = 0;
    m->budget = (uint64_t)len * STEPS_PER_BYTE + STEPS_FLOOR;
}

void tk_matcher_free(tk_matcher *m) {
    free(m->frames);
    free(m->slots);
    free(m->memo);
    memset(m, 0, sizeof *m);
}

static int push(tk_matcher *m, uint32_t kind, uint32_t pc, size_t pos, size_t aux) {
    if (m->n_frames == m->frames_capacity) {
        tk_frame *more = realloc(m->frames, 2 * m->frames_capacity * sizeof *m->frames);
        if (!more) return -1;
        m->frames = more;
        m->frames_capacity *= 2;
    }
    tk_frame *f = &m->frames[m->n_frames++];
    f->kind = kind;
    f->pc = pc;
    f->pos = pos;
    f->aux = aux;
    return 0;
}

/* Memoization: on once the steps pass the budget (and memory allows). */
static void start_memo(tk_matcher *m) {
    if (m->memo || !m->program->n_memo) {
        m->budget = UINT64_MAX;
        return;
    }
    size_t words_per_row = (m->len + 1 + 63) / 64;
    m->memo = calloc(words_per_row * m->program->n_memo, sizeof *m->memo);
    m->budget = UINT64_MAX; /* on, or impossible: do not try again for this text */
}

static inline size_t memo_bit(const tk_matcher *m, uint32_t point, size_t pos) {
    return (size_t)point * (((m->len + 1 + 63) / 64) * 64) + pos;
}

static inline int memo_failed(const tk_matcher *m, uint32_t point, size_t pos) {
    size_t bit = memo_bit(m, point, pos);
    return m->memo && (int)((m->memo[bit >> 6] >> (bit & 63)) & 1);
}

static inline void memo_set_failed(tk_matcher *m, uint32_t point, size_t pos) {
    size_t bit = memo_bit(m, point, pos);
    m->memo[bit >> 6] |= (uint64_t)1 << (bit & 63);
}

static inline size_t next_boundary(const tk_matcher *m, size_t pos) {
    uint8_t b = m->text[pos];
    return pos + (b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4);
}

static inline size_t previous_boundary(const tk_matcher *m, size_t pos) {
    do pos--;
    while ((m->text[pos] & 0xc0) == 0x80);
    return pos;
}

/* The rest of the pattern after RUN slot failed from `pos`: widen the slot's interval when contiguous. */
static void note_failed(tk_matcher *m, tk_slot *slot, size_t pos) {
    if (slot->fail_valid && slot->fail_lo <= pos && pos <= slot->fail_hi) return;
    if (slot->fail_valid && pos < slot->fail_lo && next_boundary(m, pos) == slot->fail_lo) {
        slot->fail_lo = pos;
    } else if (slot->fail_valid && pos > slot->fail_hi && next_boundary(m, slot->fail_hi) == pos) {
        slot->fail_hi = pos;
    } else {
        slot->fail_lo = slot->fail_hi = pos;
        slot->fail_valid = 1;
    }
}

static inline void maybe_start_memo(tk_matcher *m) {
    if (m->steps > m->budget) start_memo(m);
}

static inline int known_failed(const tk_matcher *m, const tk_slot *slot, uint32_t memo_point, size_t pos) {
    return (slot->fail_valid && slot->fail_lo <= pos && pos <= slot->fail_hi) || (m->memo && memo_failed(m, memo_point, pos));
}

/* Greedy RUN: the next candidate end below `pos` and not below `lo` not known to fail; 0 when none. */
static int greedy_next(const tk_matcher *m, const tk_slot *slot, uint32_t memo_point, size_t lo, size_t *pos) {
    size_t q = *pos;
    while (q > lo) {
        q = previous_boundary(m, q);
        if (slot->fail_valid && slot->fail_lo <= q && q <= slot->fail_hi) {
            q = slot->fail_lo; /* every boundary in [fail_lo, q] failed already */
            continue;
        }
        if (memo_failed(m, memo_point, q)) continue;
        *pos = q;
        return 1;
    }
    return 0;
}

/* Lazy RUN: the next candidate end above `pos` and not above `hi` not known to fail; 0 when none. */
static int lazy_next(const tk_matcher *m, const tk_slot *slot, uint32_t memo_point, size_t hi, size_t *pos) {
    size_t q = *pos;
    while (q < hi) {
        q = next_boundary(m, q);
        if (slot->fail_valid && slot->fail_lo <= q && q <= slot->fail_hi) {
            q = slot->fail_hi;
            continue;
        }
        if (memo_failed(m, memo_point, q)) continue;
        *pos = q;
        return 1;
    }
    return 0;
}

/* End of the run of class k from pos (unbounded), from the slot's cache where it covers pos. */
static size_t run_end(tk_matcher *m, tk_slot *slot, const tk_char_class *k, size_t pos) {
    if (slot->run_valid && slot->run_start <= pos && pos <= slot->run_end) return slot->run_end;
    const uint8_t *s = m->text;
    size_t len = m->len, q = pos;
    /* A scan that reaches the cached run continues to its known end. */
    size_t stop = slot->run_valid && slot->run_start > pos ? slot->run_start : len;
    while (q < stop) {
        uint8_t b = s[q];
        if (b < 0x80) {
            if (!((k->ascii[b >> 6] >> (b & 63)) & 1)) break;
            q++;
            continue;
        }
        tk_decoded c = decode(s, len, q);
        if (!class_has_props(k, c.cp, c.props)) break;
        q += c.width;
    }
    if (q == stop && stop < len) q = slot->run_end;
    m->steps += q - pos;
    slot->run_valid = 1;
    slot->run_start = pos;
    slot->run_end = q;
    return q;
}

static int is_word(const tk_matcher *m, size_t pos) {
    tk_decoded c = decode(m->text, m->len, pos);
    if (!c.width) return 0;
    uint8_t props = tk_props(c.cp);
    return (props & (m->program->dialect == TK_DIALECT_ONIGURUMA ? TK_PROP_ONIG_WORD : TK_PROP_WORD)) != 0;
}

static int assertion_holds(const tk_matcher *m, uint32_t kind, size_t pos) {
    const uint8_t *s = m->text;
    size_t len = m->len;
    switch (kind) {
    case TK_ASSERT_TEXT_START:
        return pos == 0;
    case TK_ASSERT_TEXT_END:
        return pos == len;
    case TK_ASSERT_TEXT_END_OR_FINAL_NEWLINE:
        return pos == len || (pos + 1 == len && s[pos] == '\n');
    case TK_ASSERT_LINE_START: /* Oniguruma's ^ (only that dialect has it): not after a final newline */
        return pos == 0 || (s[pos - 1] == '\n' && pos < len);
    case TK_ASSERT_LINE_END:
        return pos == len || s[pos] == '\n';
    case TK_ASSERT_WORD_BOUNDARY:
    case TK_ASSERT_NOT_WORD_BOUNDARY: {
        int before = pos > 0 && is_word(m, previous_boundary(m, pos));
        int boundary = before != is_word(m, pos);
        return kind == TK_ASSERT_WORD_BOUNDARY ? boundary : !boundary;
    }
    default:
        return 0;
    }
}

static ptrdiff_t run(tk_matcher *m, uint32_t pc, size_t pos, int depth);

static ptrdiff_t sub_match(tk_matcher *m, uint32_t body, size_t pos, uint32_t slot_index, int depth) {
    tk_slot *slot = &m->slots[slot_index];
    if (slot->sub_valid && slot->sub_pos == pos) return slot->sub_result;
    if (depth >= TK_MAX_NESTING) return TK_MATCH_NO_MEMORY; /* the compiler refuses deeper nesting */
    ptrdiff_t result = run(m, body, pos, depth + 1);
    if (result == TK_MATCH_NO_MEMORY) return result;
    slot = &m->slots[slot_index];
    slot->sub_valid = 1;
    slot->sub_pos = pos;
    slot->sub_result = result;
    return result;
}

/* Backtrack to the newest pending alternative above `base`: 1 with *pc / *pos set, 0 when none is left. */
static int backtrack(tk_matcher *m, size_t base, uint32_t *pc, size_t *pos) {
    const uint32_t *code = m->program->code;
    int record = !m->forbid_empty;
    while (m->n_frames > base) {
        tk_frame *f = &m->frames[m->n_frames - 1];
        switch (f->kind) {
        case F_ALT:
            m->n_frames--;
            m->steps++;
            *pc = f->pc;
            *pos = f->pos;
            return 1;
        case F_MEMO:
            m->n_frames--;
            if (record && m->memo) memo_set_failed(m, f->pc, f->pos);
            continue;
        default: { /* a RUN: the rest failed from f->pos; try the next candidate end */
            const uint32_t *op = code + f->pc + 1;
            tk_slot *slot = &m->slots[op[4]];
            if (record) {
                note_failed(m, slot, f->pos);
                if (m->memo) memo_set_failed(m, op[5], f->pos);
            }
            size_t q = f->pos;
            int more = f->kind == F_RUN_GREEDY ? greedy_next(m, slot, op[5], f->aux, &q)
                                               : lazy_next(m, slot, op[5], f->aux, &q);
            if (!more) {
                m->n_frames--;
                continue;
            }
            f->pos = q; /* the frame stays for the candidate after this one */
            m->steps++;
            *pc = f->pc + 7;
            *pos = q;
            return 1;
        }
        }
    }
    return 0;
}

/* The interpreter: threaded dispatch (GCC's labels as values; one indirect jump per instruction, each
 * predicted on its own), failure backtracks to the newest pending alternative above `base`. Steps are
 * counted where work can repeat (SPLIT, RUN, backtracking), which bounds the rest by the program size. */
static ptrdiff_t run(tk_matcher *m, uint32_t pc, size_t pos, int depth) {
    static const void *const handlers[TK_OP_COUNT] = {
        &&op_match, &&op_succeed, &&op_char, &&op_class, &&op_jmp, &&op_split,
        &&op_run,   &&op_assert,  &&op_peek, &&op_look,  &&op_atomic, &&op_dispatch,
    };
    const uint32_t *code = m->program->code;
    const tk_char_class *classes = m->program->classes;
    const uint8_t *text = m->text;
    size_t len = m->len;
    size_t base = m->n_frames;
    const uint32_t *op;
    tk_decoded c;
#define NEXT()                      \
    do {                            \
        op = code + pc + 1;         \
        goto *handlers[code[pc]];   \
    } while (0)
    NEXT();

op_match:
    if (m->forbid_empty && pos == m->start) goto fail;
    m->n_frames = base;
    return (ptrdiff_t)pos;
op_succeed:
    m->n_frames = base;
    return (ptrdiff_t)pos;
op_char:
    c = decode(text, len, pos);
    if (!c.width || c.cp != op[0]) goto fail;
    pos += c.width;
    pc += 2;
    NEXT();
op_class:
    c = decode(text, len, pos);
    if (!c.width || !class_has(&classes[op[0]], c)) goto fail;
    pos += c.width;
    pc += 2;
    NEXT();
op_jmp:
    pc = op[0];
    NEXT();
op_dispatch:
    pc = pos < len && text[pos] < 0x80 ? op[text[pos]] : op[128];
    NEXT();
op_split:
    if (op[2] != TK_NO_CLASS) {
        c = decode(text, len, pos);
        if (!c.width || !class_has(&classes[op[2]], c)) { /* the primary cannot start here */
            pc = op[1];
            NEXT();
        }
    }
    m->steps++;
    maybe_start_memo(m);
    if (m->memo) {
        if (memo_failed(m, op[3], pos)) goto fail;
        if (push(m, F_MEMO, op[3], pos, 0) < 0) return TK_MATCH_NO_MEMORY;
    }
    if (push(m, F_ALT, op[1], pos, 0) < 0) return TK_MATCH_NO_MEMORY;
    pc = op[0];
    NEXT();
op_run: {
    const tk_char_class *k = &classes[op[0]];
    tk_slot *slot = &m->slots[op[4]];
    uint32_t min = op[1], max = op[2], count = 0;
    size_t p = pos;
    while (count < min) {
        c = decode(text, len, p);
        if (!c.width || !class_has(k, c)) goto fail;
        p += c.width;
        count++;
    }
    size_t lo = p, hi;
    if (max == TK_NO_MAX) {
        hi = run_end(m, slot, k, p);
    } else {
        while (count < max) {
            c = decode(text, len, p);
            if (!c.width || !class_has(k, c)) break;
            p += c.width;
            count++;
        }
        hi = p;
    }
    m->steps += count + 1;
    uint32_t run_pc = pc;
    pc += 7;
    if (op[3] == TK_RUN_POSSESSIVE || hi == lo) {
        pos = hi;
        NEXT();
    }
    maybe_start_memo(m);
    size_t q;
    if (op[3] == TK_RUN_GREEDY) {
        q = hi;
        if (known_failed(m, slot, op[5], q) && !greedy_next(m, slot, op[5], lo, &q)) goto fail;
        if (push(m, F_RUN_GREEDY, run_pc, q, lo) < 0) return TK_MATCH_NO_MEMORY;
    } else {
        q = lo;
        if (known_failed(m, slot, op[5], q) && !lazy_next(m, slot, op[5], hi, &q)) goto fail;
        if (push(m, F_RUN_LAZY, run_pc, q, hi) < 0) return TK_MATCH_NO_MEMORY;
    }
    pos = q;
    NEXT();
}
op_assert:
    if (!assertion_holds(m, op[0], pos)) goto fail;
    pc += 2;
    NEXT();
op_peek: {
    c = decode(text, len, pos);
    int inside = c.width && class_has(&classes[op[0]], c);
    if (inside == (int)op[1]) goto fail;
    pc += 3;
    NEXT();
}
op_look: {
    ptrdiff_t result = sub_match(m, pc + 4, pos, op[2], depth);
    if (result == TK_MATCH_NO_MEMORY) return result;
    if ((result >= 0) == (int)op[0]) goto fail;
    pc = op[1];
    NEXT();
}
op_atomic: {
    ptrdiff_t result = sub_match(m, pc + 3, pos, op[1], depth);
    if (result == TK_MATCH_NO_MEMORY) return result;
    if (result < 0) goto fail;
    pos = (size_t)result;
    pc = op[0];
    NEXT();
}
fail:
    if (!backtrack(m, base, &pc, &pos)) return TK_MATCH_NONE;
    NEXT();
#undef NEXT
}

ptrdiff_t tk_match_at(tk_matcher *m, size_t start, int forbid_empty) {
    m->start = start;
    m->forbid_empty = forbid_empty;
    m->n_frames = 0;
    return run(m, 0, start, 0);
}
