/* The built-in split patterns as hand-written scanners: the same pieces as the `regex` module (and
 * tiktoken's fancy-regex) give for GPT2_PATTERN, GPT4_PATTERN (cl100k_base) and O200K_PATTERN, and for
 * the hottest open-model families, variants of those two (LLAMA3/QWEN2 and llama.cpp's rewrites of them,
 * TEKKEN; exact strings in tokend/engine/patterns.py BUILTIN_SCANNERS), at 2-3x the speed of the general
 * matcher (split_program.c), which runs every other pattern.
 *
 * Each function returns the end of the match that the pattern's alternation finds at `pos`, trying the
 * alternatives in order and backtracking exactly where the regex would; the derivation of each case is in
 * the comments. Character classes come from unicode_classes.h, generated from the `regex` module itself.
 * Text is valid UTF-8 (it comes from a Python str). The tests compare these scanners with `regex.findall`
 * on every code point in several contexts, on hypothesis-generated text and on the conformance corpus.
 *
 * Notation: L = \p{L}, N = \p{N}, S = \s (White_Space), P = [^\s\p{L}\p{N}], X = [^\r\n\p{L}\p{N}],
 * UP = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], LO = [\p{Ll}\p{Lm}\p{Lo}\p{M}], M = \p{M}, PS = [\p{P}\p{S}]. */
#include <string.h>

#include "tokend_native.h"
#include "unicode_classes.h"

typedef struct {
    uint32_t cp;    /* code point; NONE past the end */
    uint8_t cls;    /* TK_* bits */
    uint8_t width;  /* bytes; 0 past the end */
} tk_char;

#define NONE 0xffffffffu
#define IS_L(c) ((c).cls & TK_LETTER)
#define IS_N(c) ((c).cls & TK_NUMBER)
#define IS_S(c) ((c).cls & TK_SPACE)
#define IS_UP(c) ((c).cls & TK_UPPERISH)
#define IS_LO(c) ((c).cls & TK_LOWERISH)
#define IS_P(c) ((c).width && !((c).cls & (TK_LETTER | TK_NUMBER | TK_SPACE)))
#define IS_X(c) ((c).width && (c).cp != '\r' && (c).cp != '\n' && !((c).cls & (TK_LETTER | TK_NUMBER)))
#define IS_LM(c) ((c).cls & (TK_LETTER | TK_MARK))
#define IS_PS(c) ((c).cls & TK_PUNCT_SYMBOL)
/* DeepSeek-V3's prefix class [^\r\n\p{L}\p{P}\p{S}] */
#define IS_Y(c) ((c).width && (c).cp != '\r' && (c).cp != '\n' && !((c).cls & (TK_LETTER | TK_PUNCT_SYMBOL)))

static inline int is_ascii_letter(uint8_t b) { return (uint8_t)((b | 0x20) - 'a') < 26; }
static inline int is_ascii_lower(uint8_t b) { return (uint8_t)(b - 'a') < 26; }
static inline int is_ascii_upper(uint8_t b) { return (uint8_t)(b - 'A') < 26; }

static inline tk_char char_at(const uint8_t *s, size_t len, size_t pos) {
    tk_char c;
    if (pos >= len) {
        c.cp = NONE;
        c.cls = 0;
        c.width = 0;
        return c;
    }
    uint8_t b = s[pos];
    if (b < 0x80) {
        c.cp = b;
        c.width = 1;
    } else if (b < 0xe0) {
        c.cp = ((uint32_t)(b & 0x1f) << 6) | (s[pos + 1] & 0x3f);
        c.width = 2;
    } else if (b < 0xf0) {
        c.cp = ((uint32_t)(b & 0x0f) << 12) | ((uint32_t)(s[pos + 1] & 0x3f) << 6) | (s[pos + 2] & 0x3f);
        c.width = 3;
    } else {
        c.cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[pos + 1] & 0x3f) << 12) |
               ((uint32_t)(s[pos + 2] & 0x3f) << 6) | (s[pos + 3] & 0x3f);
        c.width = 4;
    }
    c.cls = tk_classes(c.cp);
    return c;
}

/* The first offset from pos whose byte is not an ASCII letter (lower_only: not a-z), or a point where fewer
 * than 8 bytes are left: 8 bytes a step. Words are most of the pieces of text, and a byte-at-a-time loop
 * pays a mispredicted exit per word; here a word of up to 7 letters costs one word-wide test. */
static inline size_t ascii_letters_end(const uint8_t *s, size_t len, size_t pos, int lower_only) {
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    while (pos + 8 <= len) {
        uint64_t x;
        memcpy(&x, s + pos, 8);
        uint64_t y = (x & ~high) | (lower_only ? 0 : 0x20 * ones); /* 7 bits a byte: the sums below stay in the byte */
        uint64_t at_least_a = y + (0x80 - 'a') * ones;          /* high bit: y >= 'a' */
        uint64_t past_z = y + (0x80 - 'z' - 1) * ones;          /* high bit: y > 'z' */
        uint64_t not_letter = ~(at_least_a & ~past_z & ~x) & high;
        if (not_letter) return pos + (size_t)(__builtin_ctzll(not_letter) >> 3);
        pos += 8;
    }
    return pos;
}

/* End of the run of characters having any of the `classes` bits, from pos. */
static size_t run_of(const uint8_t *s, size_t len, size_t pos, uint8_t classes) {
    /* ASCII letters first (every ASCII letter has TK_LETTER, a-z TK_LOWERISH): the loop below goes on from
     * the first byte that is not one */
    if (classes & TK_LETTER)
        pos = ascii_letters_end(s, len, pos, 0);
    else if (classes & TK_LOWERISH)
        pos = ascii_letters_end(s, len, pos, 1);
    while (pos < len) {
        if (s[pos] < 0x80) { /* ASCII: no decoding, one class lookup */
            if (!(tk_classes(s[pos]) & classes)) break;
            pos++;
            continue;
        }
        tk_char c = char_at(s, len, pos);
        if (!(c.cls & classes)) break;
        pos += c.width;
    }
    return pos;
}

/* End of the run of P characters from pos. */
static size_t run_of_punctuation(const uint8_t *s, size_t len, size_t pos) {
    while (pos < len) {
        tk_char c = char_at(s, len, pos);
        if (!IS_P(c)) break;
        pos += c.width;
    }
    return pos;
}

/* (?i:'s|'t|'m|'d|'re|'ve|'ll) at pos (= cl100k's '(?i:[sdmt]|ll|ve|re)): its end, or pos. */
static size_t contraction_ignoring_case(const uint8_t *s, size_t len, size_t pos) {
    if (pos >= len || s[pos] != '\'') return pos;
    tk_char first = char_at(s, len, pos + 1);
    if (!first.width) return pos;
    uint32_t a = first.cp;
    if (tk_matches_ignoring_case(a, 's') || tk_matches_ignoring_case(a, 't') || tk_matches_ignoring_case(a, 'm') ||
        tk_matches_ignoring_case(a, 'd'))
        return pos + 1 + first.width;
    tk_char second = char_at(s, len, pos + 1 + first.width);
    if (!second.width) return pos;
    uint32_t b = second.cp;
    if ((tk_matches_ignoring_case(a, 'r') && tk_matches_ignoring_case(b, 'e')) ||
        (tk_matches_ignoring_case(a, 'v') && tk_matches_ignoring_case(b, 'e')) ||
        (tk_matches_ignoring_case(a, 'l') && tk_matches_ignoring_case(b, 'l')))
        return pos + 1 + first.width + second.width;
    return pos;
}

/* GPT-2's case-sensitive '(?:[sdmt]|ll|ve|re) at pos: its end, or pos. */
static size_t contraction_ascii(const uint8_t *s, size_t len, size_t pos) {
    if (pos + 1 >= len || s[pos] != '\'') return pos;
    uint8_t a = s[pos + 1];
    if (a == 's' || a == 'd' || a == 'm' || a == 't') return pos + 2;
    if (pos + 2 >= len) return pos;
    uint8_t b = s[pos + 2];
    if ((a == 'l' && b == 'l') || (a == 'v' && b == 'e') || (a == 'r' && b == 'e')) return pos + 3;
    return pos;
}

/* llama.cpp's rewrite (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]) at pos: its end, or pos. */
static size_t contraction_ascii_ignoring_case(const uint8_t *s, size_t len, size_t pos) {
    if (pos + 1 >= len || s[pos] != '\'') return pos;
    uint8_t a = s[pos + 1] | 0x20; /* ASCII letters only: 0x20 lower-cases them, and maps no other byte to one */
    if (s[pos + 1] >= 0x80) return pos;
    if (a == 's' || a == 'd' || a == 'm' || a == 't') return pos + 2;
    if (pos + 2 >= len || s[pos + 2] >= 0x80) return pos;
    uint8_t b = s[pos + 2] | 0x20;
    if ((a == 'l' && b == 'l') || (a == 'v' && b == 'e') || (a == 'r' && b == 'e')) return pos + 3;
    return pos;
}

/* \p{N}{1,max}: at most `max` digits (pos holds one). */
static size_t up_to_numbers(const uint8_t *s, size_t len, size_t pos, int max) {
    for (int k = 0; k < max && pos < len; k++) {
        tk_char c = char_at(s, len, pos);
        if (!IS_N(c)) break;
        pos += c.width;
    }
    return pos;
}

/* The whitespace run starting at pos (which holds S). */
typedef struct {
    size_t end;            /* end of the run */
    size_t last_start;     /* start of its last character */
    size_t after_newline;  /* just after its last \r or \n; 0 when it has none */
    int many;              /* it has at least two characters */
} space_run;

static space_run scan_space(const uint8_t *s, size_t len, size_t pos) {
    space_run run = {pos, pos, 0, 0};
    size_t count = 0;
    while (pos < len) {
        tk_char c = char_at(s, len, pos);
        if (!IS_S(c)) break;
        run.last_start = pos;
        pos += c.width;
        if (c.cp == '\r' || c.cp == '\n') run.after_newline = pos;
        count++;
    }
    run.end = pos;
    run.many = count >= 2;
    return run;
}

/* The whitespace alternatives \s*[\r\n]+|\s+(?!\S)|\s+ at pos (which holds S). */
static size_t whitespace_tail_end(const uint8_t *s, size_t len, size_t pos) {
    space_run run = scan_space(s, len, pos);
    if (run.after_newline) return run.after_newline; /* \s*[\r\n]+ backs off to the last newline */
    if (run.end == len) return len;                 /* \s+(?!\S) at the end of the text */
    if (run.many) return run.last_start;            /* \s+(?!\S) gives back the last space */
    return run.end;                                 /* \s+ (a single space before \S) */
}

/* GPT2_PATTERN: '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s */
static size_t gpt2_piece_end(const uint8_t *s, size_t len, size_t pos) {
    tk_char c = char_at(s, len, pos);
    size_t end = contraction_ascii(s, len, pos);
    if (end > pos) return end;
    /* " ?X++": the optional space, then a run of X. Without the space the run would have to start with
     * " ", which is neither L, N nor P: only the with-space attempt can succeed. */
    size_t start = c.cp == ' ' ? pos + 1 : pos;
    tk_char first = start == pos ? c : char_at(s, len, start);
    if (IS_L(first)) return run_of(s, len, start, TK_LETTER);
    if (IS_N(first)) return run_of(s, len, start, TK_NUMBER);
    if (IS_P(first)) return run_of_punctuation(s, len, start);
    if (!IS_S(c)) return pos;
    space_run run = scan_space(s, len, pos);
    if (run.end == len) return len;        /* \s++$ (the possessive run reaches the end) */
    if (run.many) return run.last_start;   /* \s+(?!\S): gives back the last space before \S */
    return pos + c.width;                  /* \s */
}

/* GPT4_PATTERN (cl100k_base):
 * '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|
 * \s+(?!\S)|\s */
static size_t cl100k_piece_end(const uint8_t *s, size_t len, size_t pos) {
    /* The commonest pieces first, with the matches the alternatives below give them: no contraction starts
     * with a letter or a space, an ASCII letter is L (and not X), a space is X, so "word" and " word" are
     * \p{L}++ and X?+\p{L}++ from their first letter. */
    if (is_ascii_letter(s[pos])) return run_of(s, len, pos + 1, TK_LETTER);
    if (s[pos] == ' ' && pos + 1 < len && is_ascii_letter(s[pos + 1])) return run_of(s, len, pos + 2, TK_LETTER);
    tk_char c = char_at(s, len, pos);
    size_t end = contraction_ignoring_case(s, len, pos);
    if (end > pos) return end;
    if (IS_X(c)) {
        /* X?+ is possessive: the prefix is kept; without it the run would start at X, not a letter. */
        if (IS_L(char_at(s, len, pos + c.width))) return run_of(s, len, pos + c.width, TK_LETTER);
    } else if (IS_L(c)) {
        return run_of(s, len, pos, TK_LETTER);
    }
    if (IS_N(c)) return up_to_numbers(s, len, pos, 3);
    size_t start = c.cp == ' ' ? pos + 1 : pos;
    if (IS_P(start == pos ? c : char_at(s, len, start))) {
        end = run_of_punctuation(s, len, start);
        while (end < len && (s[end] == '\r' || s[end] == '\n')) end++;
        return end;
    }
    if (!IS_S(c)) return pos;
    space_run run = scan_space(s, len, pos);
    if (run.end == len) return len;                 /* \s++$ */
    if (run.after_newline) return run.after_newline; /* \s*[\r\n]: greedy, backs off to the last newline */
    if (run.many) return run.last_start;            /* \s+(?!\S) */
    return pos + c.width;                           /* \s */
}

/* Llama 3 / Qwen 2 (tokenizer.json) and llama.cpp's rewrites of them: cl100k's alternatives with
 * `contraction` ('s... under (?i), or ASCII-only), `max_digits` digits, and the whitespace tail
 * \s*[\r\n]+|\s+(?!\S)|\s+ (no \s++$):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * X?\p{L}+ without possession is the same: when \p{L}+ fails after X, it fails at X too (X is not a letter).
 * P+ without possession likewise: [\r\n]* cannot use what P+ gives back (P holds no \r \n). */
static size_t llama3_piece_end(const uint8_t *s, size_t len, size_t pos, int ascii_contractions, int max_digits) {
    /* ASCII words first, as in cl100k_piece_end (the same reasoning: no contraction starts with a letter or
     * a space, an ASCII letter is L and not X, a space is X), so "word" and " word" are X?\p{L}+ from
     * their first letter. */
    if (is_ascii_letter(s[pos])) return run_of(s, len, pos + 1, TK_LETTER);
    if (s[pos] == ' ' && pos + 1 < len && is_ascii_letter(s[pos + 1])) return run_of(s, len, pos + 2, TK_LETTER);
    tk_char c = char_at(s, len, pos);
    size_t end = ascii_contractions ? contraction_ascii_ignoring_case(s, len, pos) : contraction_ignoring_case(s, len, pos);
    if (end > pos) return end;
    if (IS_X(c)) {
        if (IS_L(char_at(s, len, pos + c.width))) return run_of(s, len, pos + c.width, TK_LETTER);
    } else if (IS_L(c)) {
        return run_of(s, len, pos, TK_LETTER);
    }
    if (IS_N(c)) return up_to_numbers(s, len, pos, max_digits);
    size_t start = c.cp == ' ' ? pos + 1 : pos;
    if (IS_P(start == pos ? c : char_at(s, len, start))) {
        end = run_of_punctuation(s, len, start);
        while (end < len && (s[end] == '\r' || s[end] == '\n')) end++;
        return end;
    }
    if (!IS_S(c)) return pos;
    return whitespace_tail_end(s, len, pos);
}

/* o200k's letter alternatives after the optional prefix, from `start`: its end, or 0 when it fails.
 * First: [UP]*[LO]+(?i:'s|...)?  UP* is greedy; when LO+ cannot follow the run, UP* gives characters back
 * one at a time until LO+ can start, i.e. at the last character of the run that is also LO (Lm, Lo, M are
 * both), and LO+ then ends right after it (the rest of the run is not LO). */
static size_t o200k_lower_end(const uint8_t *s, size_t len, size_t start, int contractions) {
    size_t end = start, last_lower_end = 0;
    while (end < len) {
        tk_char c = char_at(s, len, end);
        if (!IS_UP(c)) break;
        end += c.width;
        if (IS_LO(c)) last_lower_end = end;
    }
    if (IS_LO(char_at(s, len, end))) {
        end = run_of(s, len, end, TK_LOWERISH);
    } else if (last_lower_end) {
        end = last_lower_end;
    } else {
        return 0;
    }
    return contractions ? contraction_ignoring_case(s, len, end) : end;
}

/* Second: [UP]+[LO]*(?i:'s|...)?  nothing after UP+ is required, so no backtracking. */
static size_t o200k_upper_end(const uint8_t *s, size_t len, size_t start, int contractions) {
    if (!IS_UP(char_at(s, len, start))) return 0;
    size_t end = run_of(s, len, start, TK_UPPERISH);
    end = run_of(s, len, end, TK_LOWERISH);
    return contractions ? contraction_ignoring_case(s, len, end) : end;
}

/* O200K_PATTERN:
 * [^\r\n\p{L}\p{N}]?[UP]*[LO]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[UP]+[LO]*(?i:...)?|
 * \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * The prefix X? is greedy but not possessive: when the rest fails after it, it is retried without it
 * (which matters when X is a mark, M, which is also UP and LO).
 * TEKKEN_PATTERN is the same without the contraction suffixes and with \p{N} single digits. */
/* o200k's first alternative for ASCII words, "word", " word", "Word", " WORDs" (X? then [UP]*[LO]+): the
 * ASCII upper-case run is all of UP* there (the next character, an ASCII lower-case letter, is not UP),
 * so LO+ starts right after it and no backtracking can happen. 0 when the text at `start` is not such a
 * word (then the general code decides). */
static size_t o200k_ascii_word_end(const uint8_t *s, size_t len, size_t start, int contractions) {
    size_t end = start;
    while (end < len && is_ascii_upper(s[end])) end++;
    if (end >= len || !is_ascii_lower(s[end])) return 0;
    end = run_of(s, len, end + 1, TK_LOWERISH);
    return contractions ? contraction_ignoring_case(s, len, end) : end;
}

static size_t o200k_piece_end(const uint8_t *s, size_t len, size_t pos, int contractions, int max_digits) {
    size_t end;
    if (s[pos] < 0x80 && s[pos] != ' ' && (end = o200k_ascii_word_end(s, len, pos, contractions))) return end;
    if (s[pos] == ' ' && pos + 1 < len && (end = o200k_ascii_word_end(s, len, pos + 1, contractions))) return end;
    tk_char c = char_at(s, len, pos);
    if (IS_X(c) && (end = o200k_lower_end(s, len, pos + c.width, contractions))) return end;
    if ((end = o200k_lower_end(s, len, pos, contractions))) return end;
    if (IS_X(c) && (end = o200k_upper_end(s, len, pos + c.width, contractions))) return end;
    if ((end = o200k_upper_end(s, len, pos, contractions))) return end;
    if (IS_N(c)) return up_to_numbers(s, len, pos, max_digits);
    size_t start = c.cp == ' ' ? pos + 1 : pos;
    if (IS_P(start == pos ? c : char_at(s, len, start))) {
        end = run_of_punctuation(s, len, start);
        while (end < len && (s[end] == '\r' || s[end] == '\n' || s[end] == '/')) end++;
        return end;
    }
    if (!IS_S(c)) return pos;
    space_run run = scan_space(s, len, pos);
    if (run.after_newline) return run.after_newline; /* \s*[\r\n]+ backs off to the last newline */
    if (run.end == len) return len;                 /* \s+(?!\S) at the end of the text */
    if (run.many) return run.last_start;            /* \s+(?!\S) gives back the last space */
    return run.end;                                 /* \s+ (a single space before \S) */
}

static inline int is_ascii_punctuation(uint32_t cp) {
    return (cp >= '!' && cp <= '/') || (cp >= ':' && cp <= '@') || (cp >= '[' && cp <= '`') || (cp >= '{' && cp <= '~');
}

/* The main stage of DeepSeek-V3's Sequence (DEEPSEEK_V3_PATTERNS[2]; digits and CJK runs are split off
 * by the two stages before it, each piece of theirs is the whole text here):
 * [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+
 * Y? before (L|M)+: with Y the run starts after it; without, only a mark can start it (M is in Y too), and
 * then the run from the mark ends at the same place. PS+ without possession: [\r\n]* cannot use what it
 * gives back (\r \n are not P or S). */
static size_t deepseek_v3_piece_end(const uint8_t *s, size_t len, size_t pos) {
    /* ASCII words first: a letter is not punctuation (the first alternative) and not Y, so "word" is
     * [\p{L}\p{M}]+ from its first letter; a space is Y and not punctuation, so " word" is Y[\p{L}\p{M}]+. */
    if (is_ascii_letter(s[pos])) return run_of(s, len, pos + 1, TK_LETTER | TK_MARK);
    if (s[pos] == ' ' && pos + 1 < len && is_ascii_letter(s[pos + 1]))
        return run_of(s, len, pos + 2, TK_LETTER | TK_MARK);
    tk_char c = char_at(s, len, pos);
    if (c.cp < 0x80 && is_ascii_punctuation(c.cp) && pos + 1 < len && is_ascii_letter(s[pos + 1])) {
        size_t end = pos + 1;
        while (end < len && is_ascii_letter(s[end])) end++;
        return end;
    }
    if (IS_Y(c)) {
        tk_char next = char_at(s, len, pos + c.width);
        if (IS_LM(next)) return run_of(s, len, pos + c.width, TK_LETTER | TK_MARK);
    }
    if (IS_LM(c)) return run_of(s, len, pos, TK_LETTER | TK_MARK);
    size_t start = c.cp == ' ' ? pos + 1 : pos;
    if (IS_PS(start == pos ? c : char_at(s, len, start))) {
        size_t end = run_of(s, len, start, TK_PUNCT_SYMBOL);
        while (end < len && (s[end] == '\r' || s[end] == '\n')) end++;
        return end;
    }
    if (!IS_S(c)) return pos;
    return whitespace_tail_end(s, len, pos);
}

/* DeepSeek-V3's first two stages: \p{N}{1,3} and [\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+. Each matches
 * at pos exactly when the character there is in its class, so findall's leftmost search is the scan below. */
static inline int is_deepseek_cjk(uint32_t cp) {
    return (cp >= 0x4e00 && cp <= 0x9fa5) || (cp >= 0x3040 && cp <= 0x309f) || (cp >= 0x30a0 && cp <= 0x30ff);
}

static size_t deepseek_cjk_end(const uint8_t *s, size_t len, size_t pos) {
    while (pos < len && s[pos] >= 0xe3 && s[pos] <= 0xe9) { /* every code point of the class is 3 bytes, E3..E9 */
        tk_char c = char_at(s, len, pos);
        if (!is_deepseek_cjk(c.cp)) break;
        pos += 3;
    }
    return pos;
}

/* End of the piece that the pattern matches at `pos` (< len), or `pos` when nothing matches there. */
static size_t piece_end(tk_pattern pattern, const uint8_t *s, size_t len, size_t pos) {
    switch (pattern) {
    case TK_PATTERN_GPT2:
        return gpt2_piece_end(s, len, pos);
    case TK_PATTERN_CL100K:
        return cl100k_piece_end(s, len, pos);
    case TK_PATTERN_O200K:
        return o200k_piece_end(s, len, pos, 1, 3);
    case TK_PATTERN_TEKKEN:
        return o200k_piece_end(s, len, pos, 0, 1);
    case TK_PATTERN_LLAMA3:
        return llama3_piece_end(s, len, pos, 0, 3);
    case TK_PATTERN_QWEN2:
        return llama3_piece_end(s, len, pos, 0, 1);
    case TK_PATTERN_LLAMA3_ASCII:
        return llama3_piece_end(s, len, pos, 1, 3);
    case TK_PATTERN_QWEN2_ASCII:
        return llama3_piece_end(s, len, pos, 1, 1);
    case TK_PATTERN_DEEPSEEK_V3:
        return deepseek_v3_piece_end(s, len, pos);
    case TK_PATTERN_NUMBERS3:
        return s[pos] < 0x80 && !(tk_classes(s[pos]) & TK_NUMBER) ? pos : up_to_numbers(s, len, pos, 3);
    case TK_PATTERN_DEEPSEEK_CJK:
        return deepseek_cjk_end(s, len, pos);
    default:
        return pos;
    }
}

/* The end of the piece of an Isolated stage that starts at `pos` (< len) in the text [.., len): the match
 * there, or the gap up to where the next match starts (or len). */
static size_t isolated_piece_end(tk_pattern pattern, const uint8_t *s, size_t len, size_t pos) {
    size_t end = piece_end(pattern, s, len, pos);
    if (end > pos) return end;
    end = pos + char_at(s, len, pos).width;
    if (pattern == TK_PATTERN_NUMBERS3) { /* ASCII other than digits starts no match: skip it bytewise */
        for (;;) {
            while (end < len && s[end] < 0x80 && !(tk_classes(s[end]) & TK_NUMBER)) end++;
            if (end >= len || piece_end(pattern, s, len, end) > end) return end;
            end += char_at(s, len, end).width;
        }
    }
    if (pattern == TK_PATTERN_DEEPSEEK_CJK) { /* only the lead bytes E3..E9 can start a match */
        for (;;) {
            while (end < len && (s[end] < 0xe3 || s[end] > 0xe9)) end++;
            if (end >= len || piece_end(pattern, s, len, end) > end) return end;
            end += 3;
        }
    }
    while (end < len && piece_end(pattern, s, len, end) == end) end += char_at(s, len, end).width;
    return end;
}

int tk_deepseek_v3_next(const uint8_t *s, size_t len, tk_deepseek_v3_state *state, size_t *start, size_t *end) {
    size_t pos = state->pos;
    if (pos >= len) return 0;
    /* Each stage splits every piece of the one before, which is the whole text the next one sees: the
     * digits stage's piece bounds the CJK stage, whose piece bounds the main one. */
    if (pos >= state->cjk_end) {
        if (pos >= state->digits_end) state->digits_end = isolated_piece_end(TK_PATTERN_NUMBERS3, s, len, pos);
        state->cjk_end = isolated_piece_end(TK_PATTERN_DEEPSEEK_CJK, s, state->digits_end, pos);
    }
    *start = pos;
    *end = state->pos = isolated_piece_end(TK_PATTERN_DEEPSEEK_V3, s, state->cjk_end, pos);
    return 1;
}

int tk_pattern_matches_everywhere(tk_pattern pattern) {
    /* Each of these ends in catch-alls: letters (with what may precede them), digits, `[^\s\p{L}\p{N}]+`
     * and `\s+` between them take any character, so no character is ever skipped (test_split_patterns
     * checks every code point). llama.cpp's rewrites and DeepSeek-V3's stages are not in the list. */
    switch (pattern) {
    case TK_PATTERN_GPT2:
    case TK_PATTERN_CL100K:
    case TK_PATTERN_O200K:
    case TK_PATTERN_LLAMA3:
    case TK_PATTERN_QWEN2:
    case TK_PATTERN_TEKKEN:
        return 1;
    default:
        return 0;
    }
}

int tk_next_piece(tk_pattern pattern, const uint8_t *s, size_t len, size_t *pos, size_t *start) {
    /* DeepSeek-V3's first two stages see mostly text where they match nothing: skip it a byte at a time
     * (ASCII other than digits; bytes other than the CJK class's lead bytes E3..E9, which never occur
     * inside another character: continuation bytes are 80..BF) instead of a character and a switch at a time. */
    if (pattern == TK_PATTERN_NUMBERS3 || pattern == TK_PATTERN_DEEPSEEK_CJK) {
        size_t p = *pos;
        for (;;) {
            if (pattern == TK_PATTERN_NUMBERS3)
                while (p < len && s[p] < 0x80 && !(tk_classes(s[p]) & TK_NUMBER)) p++;
            else
                while (p < len && (s[p] < 0xe3 || s[p] > 0xe9)) p++;
            if (p >= len) {
                *pos = len;
                return 0;
            }
            size_t end = piece_end(pattern, s, len, p);
            if (end > p) {
                *start = p;
                *pos = end;
                return 1;
            }
            p += char_at(s, len, p).width;
        }
    }
    while (*pos < len) {
        size_t end = piece_end(pattern, s, len, *pos);
        if (end > *pos) {
            *start = *pos;
            *pos = end;
            return 1;
        }
        *pos += char_at(s, len, *pos).width; /* unmatched: findall skips the character */
    }
    return 0;
}
