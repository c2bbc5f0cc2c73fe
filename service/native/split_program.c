/* Loading a compiled split program (tokend.engine.splitting's output) into its native form: the class
 * table with ASCII bitmaps, and a validation pass, so that a malformed program is an error, never a crash
 * in the matcher (split_matcher.c). */
#include <stdlib.h>
#include <string.h>

#include "split_chars.h"

static const uint8_t operand_count[TK_OP_COUNT] = {0, 0, 1, 1, 1, 4, 6, 1, 2, 3, 2, 129};

static int load_classes(tk_program *program, const uint32_t *words, size_t n_words, const char **error) {
    size_t count = 0, n_ranges = 0;
    for (size_t at = 0; at < n_words; count++) { /* first pass: sizes */
        if (n_words - at < 10 || words[at + 9] > (n_words - at - 10) / 2) goto malformed;
        n_ranges += words[at + 9];
        at += 10 + 2 * (size_t)words[at + 9];
    }
    if (count > UINT32_MAX) goto malformed;
    program->classes = calloc(count ? count : 1, sizeof *program->classes);
    program->range_words = malloc((n_ranges ? 2 * n_ranges : 1) * sizeof *program->range_words);
    if (!program->classes || !program->range_words) {
        *error = "out of memory";
        return -1;
    }
    program->n_classes = (uint32_t)count;
    uint32_t *ranges = program->range_words;
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        tk_char_class *k = &program->classes[i];
        for (int half = 0; half < 4; half++)
            k->signatures[half] = (uint64_t)words[at + 2 * half] | ((uint64_t)words[at + 2 * half + 1] << 32);
        k->negated = words[at + 8] != 0;
        k->n_ranges = words[at + 9];
        k->ranges = ranges;
        for (uint32_t r = 0; r < k->n_ranges; r++) {
            uint32_t low = words[at + 10 + 2 * r], high = words[at + 11 + 2 * r];
            if (low > high || high > 0x10ffff || (r && low <= ranges[2 * r - 1])) goto malformed;
            ranges[2 * r] = low;
            ranges[2 * r + 1] = high;
        }
        ranges += 2 * (size_t)k->n_ranges;
        at += 10 + 2 * (size_t)k->n_ranges;
        for (uint32_t cp = 0; cp < 0x80; cp++) /* ASCII: the full test once, then a bitmap */
            if (class_has_props(k, cp, tk_props(cp))) k->ascii[cp >> 6] |= (uint64_t)1 << (cp & 63);
    }
    return 0;
malformed:
    *error = "malformed class table";
    return -1;
}

/* Every operand in range, every target the start of an instruction, every LOOK / ATOMIC body a
 * contiguous block that ends in SUCCEED right before its `end`. */
static int validate(const tk_program *p, const char **error) {
    const uint32_t *code = p->code;
    uint8_t *starts = calloc(p->n_code + 1, 1);
    if (!starts) {
        *error = "out of memory";
        return -1;
    }
    int ok = 1;
    for (uint32_t pc = 0; pc < p->n_code && ok;) {
        if (code[pc] >= TK_OP_COUNT || pc + operand_count[code[pc]] >= p->n_code) {
            ok = 0;
            break;
        }
        starts[pc] = 1;
        pc += 1 + operand_count[code[pc]];
    }
    starts[p->n_code] = 1;
    for (uint32_t pc = 0; pc < p->n_code && ok; pc += 1 + operand_count[code[pc]]) {
        const uint32_t *op = code + pc + 1;
        switch (code[pc]) {
        case TK_OP_CHAR:
            ok = op[0] <= 0x10ffff;
            break;
        case TK_OP_CLASS:
            ok = op[0] < p->n_classes;
            break;
        case TK_OP_JMP:
            ok = op[0] < p->n_code && starts[op[0]];
            break;
        case TK_OP_SPLIT:
            ok = op[0] < p->n_code && starts[op[0]] && op[1] < p->n_code && starts[op[1]] &&
                 (op[2] == TK_NO_CLASS || op[2] < p->n_classes) && op[3] < p->n_memo;
            break;
        case TK_OP_RUN:
            ok = op[0] < p->n_classes && op[1] <= op[2] && op[3] <= TK_RUN_POSSESSIVE && op[4] < p->n_slots &&
                 op[5] < p->n_memo;
            break;
        case TK_OP_ASSERT:
            ok = op[0] < TK_ASSERT_COUNT;
            break;
        case TK_OP_PEEK:
            ok = op[0] < p->n_classes && op[1] <= 1;
            break;
        case TK_OP_LOOK:
            ok = op[0] <= 1 && op[1] > pc + 4 && op[1] <= p->n_code && starts[op[1]] && starts[op[1] - 1] &&
                 code[op[1] - 1] == TK_OP_SUCCEED && op[2] < p->n_slots;
            break;
        case TK_OP_DISPATCH:
            for (int k = 0; k < 129 && ok; k++) ok = op[k] < p->n_code && starts[op[k]];
            break;
        case TK_OP_ATOMIC:
            ok = op[0] > pc + 3 && op[0] <= p->n_code && starts[op[0]] && starts[op[0] - 1] &&
                 code[op[0] - 1] == TK_OP_SUCCEED && op[1] < p->n_slots;
            break;
        default:
            break;
        }
    }
    /* The whole program must end in MATCH so that execution never runs off the end. */
    if (ok) ok = p->n_code > 0 && code[p->n_code - 1] == TK_OP_MATCH;
    if (ok) ok = p->start_class == TK_NO_CLASS || p->start_class < p->n_classes;
    free(starts);
    if (!ok) *error = "malformed program";
    return ok ? 0 : -1;
}

int tk_program_init(tk_program *program, const uint32_t *code, size_t n_code, const uint32_t *class_words,
                    size_t n_class_words, uint32_t n_slots, uint32_t n_memo, uint32_t start_class, tk_dialect dialect,
                    const char **error) {
    memset(program, 0, sizeof *program);
    if (n_code == 0 || n_code >= UINT32_MAX || (dialect != TK_DIALECT_PYTHON && dialect != TK_DIALECT_ONIGURUMA)) {
        *error = "malformed program";
        return -1;
    }
    program->code = malloc(n_code * sizeof *program->code);
    if (!program->code) {
        *error = "out of memory";
        return -1;
    }
    memcpy(program->code, code, n_code * sizeof *code);
    program->n_code = (uint32_t)n_code;
    program->n_slots = n_slots;
    program->n_memo = n_memo;
    program->dialect = dialect;
    program->start_class = start_class;
    if (load_classes(program, class_words, n_class_words, error) < 0 || validate(program, error) < 0) {
        tk_program_free(program);
        return -1;
    }
    return 0;
}

void tk_program_free(tk_program *program) {
    free(program->code);
    free(program->classes);
    free(program->range_words);
    memset(program, 0, sizeof *program);
}

size_t tk_program_skip(const tk_program *program, const uint8_t *text, size_t len, size_t pos) {
    if (program->start_class == TK_NO_CLASS) return pos;
    const tk_char_class *k = &program->classes[program->start_class];
    while (pos < len) {
        uint8_t b = text[pos];
        if (b < 0x80) {
            if ((k->ascii[b >> 6] >> (b & 63)) & 1) break;
            pos++;
            continue;
        }
        tk_decoded c = decode(text, len, pos);
        if (class_has_props(k, c.cp, c.props)) break;
        pos += c.width;
    }
    return pos;
}

