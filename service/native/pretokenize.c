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

#include "ascii_runs.h"
#include "tokend_native.h"
#include "unicode_classes.h"

/* The scanners are inlined into the loop of each pattern (tk_next_piece) and of the DeepSeek-V3 chain, so a
 * piece costs no call and no switch on the pattern: the split alone 1.03-1.12x (same-run medians of 3). */
#define TK_ALWAYS_INLINE inline __attribute__((always_inline))

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

/* End of the run of characters having any of the `classes` bits, from pos. ASCII goes in bulk
 * (ascii_runs.h) for the classes whose ASCII members are a range: TK_LETTER (with or without TK_MARK:
 * ASCII has no marks) is A-Z a-z, TK_LOWERISH a-z, TK_UPPERISH A-Z; words are most of the pieces of text,
 * and a byte-at-a-time loop pays a mispredicted exit per word. The byte that ends a bulk run is tested
 * with the full tables, so a class with more ASCII members is still right, a byte at a time. */
static size_t run_of(const uint8_t *s, size_t len, size_t pos, uint8_t classes) {
    for (;;) {
        if (classes & TK_LETTER)
            pos = tk_ascii_run_end(s, len, pos, TK_RUN_LETTERS);
        else if (classes & TK_LOWERISH)
            pos = tk_ascii_run_end(s, len, pos, TK_RUN_LOWER);
        else if (classes & TK_UPPERISH)
            pos = tk_ascii_run_end(s, len, pos, TK_RUN_UPPER);
        while (pos < len && s[pos] >= 0x80) { /* other scripts: a character at a time, without going back to bulk */
            tk_char c = char_at(s, len, pos);
            if (!(c.cls & classes)) return pos;
            pos += c.width;
        }
        if (pos >= len || !(tk_classes(s[pos]) & classes)) return pos;
        pos++;
    }
}

/* End of the run of P characters from pos: ASCII in bulk, other characters decoded. */
static size_t run_of_punctuation(const uint8_t *s, size_t len, size_t pos) {
    for (;;) {
        pos = tk_ascii_run_end(s, len, pos, TK_RUN_PUNCT);
        if (pos >= len || s[pos] < 0x80) return pos; /* the ASCII byte that ended the run is not P */
        while (pos < len && s[pos] >= 0x80) {
            tk_char c = char_at(s, len, pos);
            if (!IS_P(c)) return pos;
            pos += c.width;
        }
    }
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
        if (s[pos] < 0x80) { /* ASCII: only 0-9 are \p{N} */
            if (!(tk_ascii_class[s[pos]] & TK_A_DIGIT)) break;
            pos++;
            continue;
        }
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
        uint8_t b = s[pos];
        if (b == ' ') { /* runs of spaces (indentation) in bulk */
            size_t end = tk_ascii_run_end(s, len, pos + 1, TK_RUN_SPACES);
            count += end - pos;
            run.last_start = end - 1;
            pos = end;
            continue;
        }
        if (b < 0x80) {
            uint8_t k = tk_ascii_class[b];
            if (!(k & TK_A_SPACE)) break;
            run.last_start = pos++;
            if (k & TK_A_NEWLINE) run.after_newline = pos;
            count++;
            continue;
        }
        tk_char c = char_at(s, len, pos);
        if (!IS_S(c)) break;
        run.last_start = pos;
        pos += c.width;
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
static TK_ALWAYS_INLINE size_t gpt2_piece_end(const uint8_t *s, size_t len, size_t pos) {
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

/* cl100k's whitespace alternatives \s++$|\s*[\r\n]|\s+(?!\S)|\s at pos (which holds S of `width` bytes). */
static size_t cl100k_whitespace_end(const uint8_t *s, size_t len, size_t pos, size_t width) {
    space_run run = scan_space(s, len, pos);
    if (run.end == len) return len;                 /* \s++$ */
    if (run.after_newline) return run.after_newline; /* \s*[\r\n]: greedy, backs off to the last newline */
    if (run.many) return run.last_start;            /* \s+(?!\S) */
    return pos + width;                             /* \s */
}

/* The P run from `start` and its tail [\r\n]* (cl100k, Llama 3). */
static size_t punctuation_newlines_end(const uint8_t *s, size_t len, size_t start) {
    size_t end = run_of_punctuation(s, len, start);
    while (end < len && (s[end] == '\r' || s[end] == '\n')) end++;
    return end;
}

/* The contraction alternatives of cl100k and its variants. */
typedef enum { CONTRACTIONS_IGNORING_CASE, CONTRACTIONS_ASCII_IGNORING_CASE } contraction_kind;

/* Pieces of cl100k and of Llama 3 / Qwen 2 (the same alternatives up to the contractions, the digits and
 * the whitespace tail) that start with an ASCII byte a table decides: 0 when a character that is not ASCII
 * decides (then the general code does). An apostrophe tries the contractions first (the first
 * alternative). A letter is L and not X: the letter run. Any other byte b that is not a digit is X or
 * \r \n; X?L+ needs a letter at b (none in ASCII) or, with X, right after it: when the next byte is ASCII
 * and no letter (or there is none), only " ?P+[\r\n]*", then the whitespace alternatives, are left. */
static TK_ALWAYS_INLINE size_t cl100k_like_ascii_piece_end(const uint8_t *s, size_t len, size_t pos, contraction_kind contractions,
                                          int max_digits, int cl100k_whitespace) {
    uint8_t b = s[pos], k = tk_ascii_class[b];
    if (k & TK_A_LETTER) return run_of(s, len, pos + 1, TK_LETTER);
    if (k & TK_A_DIGIT) return up_to_numbers(s, len, pos, max_digits);
    if (b == '\'') {
        size_t end = contractions == CONTRACTIONS_ASCII_IGNORING_CASE ? contraction_ascii_ignoring_case(s, len, pos)
                                                                      : contraction_ignoring_case(s, len, pos);
        if (end > pos) return end;
    }
    if (!(k & TK_A_NEWLINE)) { /* b is X */
        uint8_t next = pos + 1 < len ? tk_ascii_class[s[pos + 1]] : 0;
        if (next & TK_A_LETTER) return run_of(s, len, pos + 2, TK_LETTER);
        if (next & TK_A_HIGH) return 0;
        if (k & TK_A_PUNCT) return punctuation_newlines_end(s, len, pos);
        if (b == ' ' && (next & TK_A_PUNCT)) return punctuation_newlines_end(s, len, pos + 1);
    }
    return cl100k_whitespace ? cl100k_whitespace_end(s, len, pos, 1) : whitespace_tail_end(s, len, pos);
}

/* GPT4_PATTERN (cl100k_base):
 * '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|
 * \s+(?!\S)|\s
 * X?+ is possessive: the prefix is kept; without it the run would start at X, not a letter. */
static TK_ALWAYS_INLINE size_t cl100k_piece_end(const uint8_t *s, size_t len, size_t pos) {
    size_t end;
    if (s[pos] < 0x80 && (end = cl100k_like_ascii_piece_end(s, len, pos, CONTRACTIONS_IGNORING_CASE, 3, 1))) return end;
    tk_char c = char_at(s, len, pos); /* not ASCII, or ASCII before a character that is not */
    end = contraction_ignoring_case(s, len, pos);
    if (end > pos) return end;
    if (IS_X(c)) {
        if (IS_L(char_at(s, len, pos + c.width))) return run_of(s, len, pos + c.width, TK_LETTER);
    } else if (IS_L(c)) {
        return run_of(s, len, pos, TK_LETTER);
    }
    if (IS_N(c)) return up_to_numbers(s, len, pos, 3);
    size_t start = c.cp == ' ' ? pos + 1 : pos;
    if (IS_P(start == pos ? c : char_at(s, len, start))) return punctuation_newlines_end(s, len, start);
    if (!IS_S(c)) return pos;
    return cl100k_whitespace_end(s, len, pos, c.width);
}

/* Llama 3 / Qwen 2 (tokenizer.json) and llama.cpp's rewrites of them: cl100k's alternatives with
 * `contraction` ('s... under (?i), or ASCII-only), `max_digits` digits, and the whitespace tail
 * \s*[\r\n]+|\s+(?!\S)|\s+ (no \s++$):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * X?\p{L}+ without possession is the same: when \p{L}+ fails after X, it fails at X too (X is not a letter).
 * P+ without possession likewise: [\r\n]* cannot use what P+ gives back (P holds no \r \n). */
static TK_ALWAYS_INLINE size_t llama3_piece_end(const uint8_t *s, size_t len, size_t pos, int ascii_contractions, int max_digits) {
    size_t end;
    if (s[pos] < 0x80 &&
        (end = cl100k_like_ascii_piece_end(s, len, pos, ascii_contractions ? CONTRACTIONS_ASCII_IGNORING_CASE
                                                                           : CONTRACTIONS_IGNORING_CASE,
                                           max_digits, 0)))
        return end;
    tk_char c = char_at(s, len, pos);
    end = ascii_contractions ? contraction_ascii_ignoring_case(s, len, pos) : contraction_ignoring_case(s, len, pos);
    if (end > pos) return end;
    if (IS_X(c)) {
        if (IS_L(char_at(s, len, pos + c.width))) return run_of(s, len, pos + c.width, TK_LETTER);
    } else if (IS_L(c)) {
        return run_of(s, len, pos, TK_LETTER);
    }
    if (IS_N(c)) return up_to_numbers(s, len, pos, max_digits);
    size_t start = c.cp == ' ' ? pos + 1 : pos;
    if (IS_P(start == pos ? c : char_at(s, len, start))) return punctuation_newlines_end(s, len, start);
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
/* o200k's letter alternatives for ASCII words, "word", " word", "Word", " WORDs", "HTTP" (X? then letters
 * from `start`): 0 when a character that is not ASCII decides (then the general code does).
 * An ASCII upper-case run followed by an ASCII lower-case letter: the run is all of UP* in the first
 * alternative (the lower-case letter is not UP), so LO+ starts right after it and nothing backtracks.
 * Followed by ASCII that is not a letter, or by the end: the first alternative fails (no letter of the run
 * is LO, and without the prefix the match would start at X, which is not a letter), so the second one
 * matches, UP+ being the run and LO* empty. */
static size_t o200k_ascii_word_end(const uint8_t *s, size_t len, size_t start, int contractions) {
    size_t end = tk_ascii_run_end(s, len, start, TK_RUN_UPPER);
    if (end < len && is_ascii_lower(s[end]))
        end = run_of(s, len, end + 1, TK_LOWERISH);
    else if (end == start || (end < len && s[end] >= 0x80))
        return 0;
    return contractions ? contraction_ignoring_case(s, len, end) : end;
}

/* o200k's ASCII P run from `start` and its tail [\r\n/]*. */
static size_t o200k_punctuation_end(const uint8_t *s, size_t len, size_t start) {
    size_t end = run_of_punctuation(s, len, start);
    while (end < len && (s[end] == '\r' || s[end] == '\n' || s[end] == '/')) end++;
    return end;
}

/* o200k's pieces that start with an ASCII byte that a table decides: 0 when a character that is not ASCII
 * decides (then the general code does). Letters and digits go to their alternatives. Any other byte b is X
 * or \r \n (\s); the letter alternatives need a letter or a mark at b (not in ASCII) or, with X, right
 * after it: when the next byte is ASCII and no letter (or there is none), only " ?P+", then the
 * whitespace alternatives, are left. */
static TK_ALWAYS_INLINE size_t o200k_ascii_piece_end(const uint8_t *s, size_t len, size_t pos, int contractions, int max_digits) {
    uint8_t b = s[pos], k = tk_ascii_class[b];
    if (k & TK_A_LETTER) return o200k_ascii_word_end(s, len, pos, contractions);
    if (k & TK_A_DIGIT) return up_to_numbers(s, len, pos, max_digits);
    if (k & TK_A_NEWLINE) return whitespace_tail_end(s, len, pos); /* not X, not P */
    uint8_t next = pos + 1 < len ? tk_ascii_class[s[pos + 1]] : 0;
    if (next & TK_A_LETTER) return o200k_ascii_word_end(s, len, pos + 1, contractions);
    if (next & TK_A_HIGH) return 0;
    if (k & TK_A_PUNCT) return o200k_punctuation_end(s, len, pos);
    if (b == ' ' && (next & TK_A_PUNCT)) return o200k_punctuation_end(s, len, pos + 1);
    return whitespace_tail_end(s, len, pos);
}

static TK_ALWAYS_INLINE size_t o200k_piece_end(const uint8_t *s, size_t len, size_t pos, int contractions, int max_digits) {
    size_t end;
    if (s[pos] < 0x80 && (end = o200k_ascii_piece_end(s, len, pos, contractions, max_digits))) return end;
    tk_char c = char_at(s, len, pos);
    if (IS_X(c) && (end = o200k_lower_end(s, len, pos + c.width, contractions))) return end;
    if ((end = o200k_lower_end(s, len, pos, contractions))) return end;
    if (IS_X(c) && (end = o200k_upper_end(s, len, pos + c.width, contractions))) return end;
    if ((end = o200k_upper_end(s, len, pos, contractions))) return end;
    if (IS_N(c)) return up_to_numbers(s, len, pos, max_digits);
    size_t start = c.cp == ' ' ? pos + 1 : pos;
    if (IS_P(start == pos ? c : char_at(s, len, start))) return o200k_punctuation_end(s, len, start);
    if (!IS_S(c)) return pos;
    return whitespace_tail_end(s, len, pos);
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
static TK_ALWAYS_INLINE size_t deepseek_v3_piece_end(const uint8_t *s, size_t len, size_t pos) {
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

/* Where a \p{N} character may start, for the digit stage's skip over text between numbers: a byte at a
 * time with one table load (instead of a decoded character and two table loads), decoding only the
 * candidates. number_lead[b]: b is 0-9, or the lead byte of a longer character whose range holds a number
 * (Unicode 15: C2, D9, DB, DF, E0..E3, EA, EF, F0; never a continuation byte). number_second[b] for such a
 * lead: bit k set when some number starts with b and a second byte whose low 6 bits are k (exact for two
 * bytes; a block of 64 code points for three, e.g. Japanese kana share E3 with the ideographic numbers).
 * Derived from unicode_classes.h by tk_pretokenize_init. */
static uint8_t number_lead[256];
static uint64_t number_second[256];

_Static_assert(TK_UC_LETTER == TK_LETTER && TK_UC_NUMBER == TK_NUMBER && TK_UC_SPACE == TK_SPACE &&
                   TK_UC_UPPERISH == TK_UPPERISH && TK_UC_LOWERISH == TK_LOWERISH,
               "tk_unicode_classes' bits are unicode_classes.h's");

void tk_pretokenize_init(void) {
    /* per block of 256 code points of the class tables: does it hold a number? (152 blocks; then only the
     * pages that map to such a block are walked) */
    enum { BLOCKS = sizeof tk_class_stage2 / 256, PAGES = sizeof tk_class_stage1 / sizeof tk_class_stage1[0] };
    uint8_t block_has_number[BLOCKS];
    for (uint32_t block = 0; block < BLOCKS; block++) {
        block_has_number[block] = 0;
        for (uint32_t i = 0; i < 256; i++)
            if (tk_class_stage2[block << 8 | i] & TK_NUMBER) block_has_number[block] = 1;
    }
    for (uint32_t page = 0; page < PAGES; page++) {
        if (!block_has_number[tk_class_stage1[page]]) continue;
        for (uint32_t cp = page << 8; cp < (page + 1) << 8; cp++) {
            if ((cp >= 0xd800 && cp < 0xe000) || !(tk_classes(cp) & TK_NUMBER)) continue;
            uint8_t lead;
            unsigned second;
            if (cp < 0x80) {
                number_lead[cp] = 1;
                continue;
            } else if (cp < 0x800) {
                lead = (uint8_t)(0xc0 | cp >> 6), second = cp & 0x3f;
            } else if (cp < 0x10000) {
                lead = (uint8_t)(0xe0 | cp >> 12), second = (cp >> 6) & 0x3f;
            } else {
                lead = (uint8_t)(0xf0 | cp >> 18), second = (cp >> 12) & 0x3f;
            }
            number_lead[lead] = 1;
            number_second[lead] |= 1ull << second;
        }
    }
}

/* The first offset from pos where a \p{N} character may start (len when none). */
static inline size_t next_number_candidate(const uint8_t *s, size_t len, size_t pos) {
    for (; pos < len; pos++) {
        uint8_t b = s[pos];
        if (number_lead[b] && (b < 0x80 || ((number_second[b] >> (s[pos + 1] & 0x3f)) & 1))) return pos;
    }
    return len;
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
static TK_ALWAYS_INLINE size_t piece_end(tk_pattern pattern, const uint8_t *s, size_t len, size_t pos) {
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
static TK_ALWAYS_INLINE size_t isolated_piece_end(tk_pattern pattern, const uint8_t *s, size_t len, size_t pos) {
    size_t end = piece_end(pattern, s, len, pos);
    if (end > pos) return end;
    end = pos + char_at(s, len, pos).width;
    if (pattern == TK_PATTERN_NUMBERS3) { /* only the candidates can start a match: skip the rest bytewise */
        for (;;) {
            end = next_number_candidate(s, len, end);
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
                p = next_number_candidate(s, len, p);
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
    /* One loop per pattern, each with its scanner inlined (piece_end's switch folds on the constant). */
#define NEXT_PIECE_OF(constant_pattern)                                                                      \
    while (*pos < len) {                                                                                     \
        size_t at = *pos, end = piece_end(constant_pattern, s, len, at);                                     \
        if (end > at) {                                                                                      \
            *start = at;                                                                                     \
            *pos = end;                                                                                      \
            return 1;                                                                                        \
        }                                                                                                    \
        *pos += char_at(s, len, at).width; /* unmatched: findall skips the character */                     \
    }                                                                                                        \
    return 0
    switch (pattern) {
    case TK_PATTERN_GPT2: NEXT_PIECE_OF(TK_PATTERN_GPT2);
    case TK_PATTERN_CL100K: NEXT_PIECE_OF(TK_PATTERN_CL100K);
    case TK_PATTERN_O200K: NEXT_PIECE_OF(TK_PATTERN_O200K);
    case TK_PATTERN_TEKKEN: NEXT_PIECE_OF(TK_PATTERN_TEKKEN);
    case TK_PATTERN_LLAMA3: NEXT_PIECE_OF(TK_PATTERN_LLAMA3);
    case TK_PATTERN_QWEN2: NEXT_PIECE_OF(TK_PATTERN_QWEN2);
    case TK_PATTERN_LLAMA3_ASCII: NEXT_PIECE_OF(TK_PATTERN_LLAMA3_ASCII);
    case TK_PATTERN_QWEN2_ASCII: NEXT_PIECE_OF(TK_PATTERN_QWEN2_ASCII);
    case TK_PATTERN_DEEPSEEK_V3: NEXT_PIECE_OF(TK_PATTERN_DEEPSEEK_V3);
    default: NEXT_PIECE_OF(pattern);
    }
#undef NEXT_PIECE_OF
}
