/* Where the pieces of cl100k_base's pattern, and of those that cut ASCII text the same way, start: 64 bytes
 * at a time (bulk_starts.h says what and when); GPT-2's pattern by rules of its own, at the end.
 *
 * In text made only of ASCII letters (L), digits (D), spaces (SP), \n (NL) and the printable ASCII that is
 * neither (P, the apostrophe included), every alternative of cl100k's pattern
 *
 *   '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s
 *
 * decides a cut from a byte and the one or two before it, so the starts of a whole window are a few
 * shifts and masks instead of a scanner's branch per piece (what the branch predictor cannot learn: the
 * kind of the next piece). Matching from a start `pos` (a piece start, so nothing before it belongs to the
 * piece there), a byte starts a piece when it is:
 *
 * - the first letter of a run of L, unless the byte before it joins the run as the prefix X of X?L+: a
 *   space (the last of its run of whitespace always starts a piece: see below), or a P that starts a piece
 *   itself, i.e. has neither a P nor a space before it (after a P it is inside a P run; after a space the
 *   space takes it as " ?P+"). An apostrophe that joins a run tries the contractions first: "'s" ("'t",
 *   "'d", "'m", either case) or "'ll" ("'ve", "'re") is a piece of its own and the rest of the run starts
 *   one more piece.
 * - a digit starting a run of D, or the 4th or 7th digit of one (\p{N}{1,3}); a run of 10 or more ends the
 *   window before its 10th digit (rare; the scanner takes it).
 * - the first P of a run of P, unless a space is before it (" ?P+" then starts at the space).
 * - whitespace: only runs of the form NL* SP* are taken here (at a \n after a space the window ends, and
 *   the open run before it keeps only its first start: \s*[\r\n] reaches back over the spaces). The \n part
 *   starts a piece unless a P run is right before it ([\r\n]*+ takes it); the first space of the space part
 *   starts a piece (\s+(?!\S) after the \n piece, or the run's own start), and so does the last one (what
 *   \s+(?!\S) gives back: the start of " word", " !", or " " before a digit).
 *
 * Llama 3 and Qwen 2 (either contraction rule) are the same in such text (their other differences are at
 * the end of the text or outside ASCII), Qwen 2 with one digit a piece. o200k_base differs in three
 * places: a word is [UP]*[LO]+ or [UP]+[LO]* (a lower-case letter then an upper-case one also starts a
 * piece), the contractions are a word's suffix (?i:'s|'t|'re|'ve|'m|'ll|'d)? (an apostrophe after a word's
 * letter starts nothing when one follows, and the rest of the letter run starts a piece; after a suffix's
 * own letter it is an ordinary P), and its P runs take [\r\n/]* (a / after a \n ends the window). Tekken is
 * o200k without the suffixes and with one digit a piece.
 *
 * DeepSeek-V3's chain of three Isolated Splits (\p{N}{1,3}; a CJK class; then
 * [P][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+) cuts such text as
 * cl100k does but in two places. It has no contractions: an apostrophe is a P like any other ("'s" before
 * letters is P + letters, one piece with them). And the digits are cut off first, so the main stage sees
 * the text between two numbers as a whole text: a run of whitespace right before a digit ends that text,
 * where \s+(?!\S) takes it whole ("a  1": cl100k "a", " ", " ", "1", its last space given back and a piece
 * of its own, since no prefix joins digits; here "a", "  ", "1").
 * The digits themselves are \p{N}{1,3} from the start of their run, as cl100k's. The CJK stage cuts nothing
 * in ASCII.
 *
 * A tab (indented code: one every ~170 bytes of the benchmark's code) is taken as whitespace of the space
 * part (NL* then spaces and tabs; its first and its last start a piece, as spaces do), and it joins a letter
 * run as X of X?L+ ("\tfoo" is one piece), but never a P run: only a space is " ?" there ("\t{" is "\t",
 * "{"). Not in DeepSeek-V3's chain, nor in GPT-2's rules or the windows of other scripts, where a tab ends
 * the window as before.
 * The window stops before the first byte of any other kind (\r, another control; a byte >= 0x80 but
 * where a window of other scripts is taken in characters: see wide_starts below).
 * Starts are kept only where every byte that decides them was in the window: a run of whitespace still open
 * at its end (it could go on with more \n, or reach the end of the text, where \s++$ takes it whole) keeps
 * only its first start, and an o200k suffix must have both its letters in it (ſ is s under (?i)).
 * tests/engine/test_bulk_starts.py holds the split to each pattern's reference on text made to hit every
 * rule and every window edge. */
#include "bulk_starts.h"

#include "ascii_runs.h"

#if TK_ASCII_RUNS_SSE2

/* Windows of other scripts (wide_starts): pext and pdep, x86-64's BMI2 (not on 32-bit x86). */
#if defined(__x86_64__)
#define TK_BULK_WIDE 1
#include <immintrin.h>
#else
#define TK_BULK_WIDE 0
#endif

#define TK_BULK_INLINE inline __attribute__((always_inline))

/* Byte classes of 64 bytes as bit masks (bit i: byte i). */
typedef struct {
    uint64_t letter, lower, digit, space, newline, apostrophe, slash, valid;
    uint64_t tab; /* \t, outside `valid`: only bulk_starts' windows take it (0 where the rules have no tabs) */
} window_classes;

static inline uint64_t movemask64(__m128i a, __m128i b, __m128i c, __m128i d) {
    return (uint64_t)(unsigned)_mm_movemask_epi8(a) | (uint64_t)(unsigned)_mm_movemask_epi8(b) << 16 |
           (uint64_t)(unsigned)_mm_movemask_epi8(c) << 32 | (uint64_t)(unsigned)_mm_movemask_epi8(d) << 48;
}

static inline window_classes classify(const uint8_t *p) {
    __m128i x[4], letter[4], lower[4], digit[4], space[4], newline[4], apostrophe[4], slash[4], valid[4];
    for (int k = 0; k < 4; k++) {
        x[k] = _mm_loadu_si128((const __m128i *)(p + 16 * k));
        letter[k] = tk_sse2_in_range(_mm_or_si128(x[k], _mm_set1_epi8(0x20)), 'a', 26);
        lower[k] = tk_sse2_in_range(x[k], 'a', 26);
        digit[k] = tk_sse2_in_range(x[k], '0', 10);
        space[k] = _mm_cmpeq_epi8(x[k], _mm_set1_epi8(' '));
        newline[k] = _mm_cmpeq_epi8(x[k], _mm_set1_epi8('\n'));
        apostrophe[k] = _mm_cmpeq_epi8(x[k], _mm_set1_epi8('\''));
        slash[k] = _mm_cmpeq_epi8(x[k], _mm_set1_epi8('/'));
        valid[k] = _mm_or_si128(tk_sse2_in_range(x[k], ' ', 95), newline[k]); /* space..~ and \n */
    }
    window_classes c;
    c.letter = movemask64(letter[0], letter[1], letter[2], letter[3]);
    c.lower = movemask64(lower[0], lower[1], lower[2], lower[3]);
    c.digit = movemask64(digit[0], digit[1], digit[2], digit[3]);
    c.space = movemask64(space[0], space[1], space[2], space[3]);
    c.newline = movemask64(newline[0], newline[1], newline[2], newline[3]);
    c.apostrophe = movemask64(apostrophe[0], apostrophe[1], apostrophe[2], apostrophe[3]);
    c.slash = movemask64(slash[0], slash[1], slash[2], slash[3]);
    c.valid = movemask64(valid[0], valid[1], valid[2], valid[3]);
    c.tab = 0; /* found by bulk_starts when a tab ends the window (tab_mask) */
    return c;
}

/* Bit i: byte i of the 64 at p is a tab. */
static inline uint64_t tab_mask(const uint8_t *p) {
    __m128i tab = _mm_set1_epi8('\t');
    return movemask64(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), tab),
                      _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), tab),
                      _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), tab),
                      _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), tab));
}

static inline int is_window_byte(uint8_t b) { return (b >= ' ' && b <= '~') || b == '\n'; }

#if TK_BULK_WIDE
/* The byte where the window's character k starts (64: it has fewer), by one pdep: a wide window's only. */
static inline __attribute__((target("bmi2"))) unsigned wide_char_byte(uint64_t first, unsigned k) {
    uint64_t at = k < 64 ? _pdep_u64(1ull << k, first) : 0;
    return at ? (unsigned)__builtin_ctzll(at) : 64;
}
#endif

/* Bit k of a window's masks is its byte k, or its character k in a wide window (below), whose characters'
 * first bytes are the bits of `first` (~0 in an ASCII window): where character k starts. Read at an
 * apostrophe (contractions, suffixes) and where a wide window ends (its retry): a loop over the bits there
 * was 3 % of a multilingual split's instructions. */
static inline unsigned char_byte(uint64_t first, unsigned k) {
    if (first == ~0ull) return k;
#if TK_BULK_WIDE
    return wide_char_byte(first, k); /* first != ~0 only in wide windows, which only run with BMI2 */
#else
    for (unsigned i = 0; i < k && first; i++) first &= first - 1;
    return first ? (unsigned)__builtin_ctzll(first) : 64;
#endif
}

/* cl100k: the contractions an apostrophe that joins a letter run at character i tries first (`at`: that
 * letter's bytes): the start of the rest of the run (i + 1 or i + 2), or 0 when none matches or nothing of
 * the run is left. A contraction's letters are ASCII, one byte a character. */
static inline uint64_t contraction_rest(const uint8_t *at, unsigned i, uint64_t letter) {
    uint8_t first = at[0] | 0x20, second = at[1] | 0x20; /* at[1]: at most byte 64, which exists */
    unsigned rest;
    if (first == 's' || first == 'd' || first == 'm' || first == 't')
        rest = i + 1;
    else if ((first == 'l' && second == 'l') || (first == 'v' && second == 'e') || (first == 'r' && second == 'e'))
        rest = i + 2;
    else
        return 0;
    return rest < 64 && (letter >> rest & 1) ? 1ull << rest : 0;
}

/* o200k: bytes of the suffix (?i:'s|'t|'re|'ve|'m|'ll|'d) at an apostrophe at p[0] (3, 2, or 0: none). */
static inline unsigned suffix_length(const uint8_t *p) {
    uint8_t first = p[1] | 0x20, second = p[2] | 0x20;
    if (first == 's' || first == 't' || first == 'm' || first == 'd') return 2;
    if ((first == 'r' || first == 'v') && second == 'e') return 3;
    return first == 'l' && second == 'l' ? 3 : 0;
}

/* The starts a window's valid bytes decide (bits below `valid`; a whitespace run still open at the window's
 * edge keeps only its first start), or 0 with *retry moved on when no piece ends in the window (a long word,
 * a long run: one from the scanner). */
static TK_BULK_INLINE uint64_t decided_starts(uint64_t starts, uint64_t whitespace, unsigned valid, uint8_t after,
                                              size_t pos, size_t *retry) {
    /* `after` is a tab only where the window takes tabs (valid 65 needs a byte of the window's kind) */
    uint64_t kept = valid >= 64 ? ~0ull : (1ull << valid) - 1;
    unsigned last = valid >= 64 ? 63 : valid - 1;
    int open = (whitespace >> last & 1) && (valid < 65 || after == ' ' || after == '\n' || after == '\t');
    if (open) {
        uint64_t before = ~whitespace & (last == 63 ? ~0ull : (2ull << last) - 1);
        unsigned run_start = before ? 64 - (unsigned)__builtin_clzll(before) : 0;
        kept &= run_start == 63 ? ~0ull : (2ull << run_start) - 1;
    }
    starts &= kept;
    if (!(starts & (starts - 1))) {
        if (*retry == pos) *retry = pos + 1;
        return 0;
    }
    return starts;
}

/* The rules of the pattern on a window's classes `c` (bit k: byte or character k, `first` as char_byte has
 * it), of which `valid` may be read (65: all 64 and `after`, what follows the window); `real_end`: the window
 * ends at a character of another kind (not at its own end), after which the scanner takes over. `o200k`:
 * o200k's words ([UP]*[LO]+ and [UP]+[LO]*, cut where a lower-case letter meets an upper-case one) and P tail
 * [\r\n/]*, else cl100k's (\p{L}+, [\r\n]*); `suffixes`: o200k's contraction suffixes; `contractions`:
 * cl100k's (a prefix); `max_digits`: 3 (\p{N}{1,3}) or 1 (\p{N}); `digits_end_text`: DeepSeek-V3's chain,
 * where the whitespace before a digit is at the end of its text. */
static TK_BULK_INLINE uint64_t window_starts(const uint8_t *p, const window_classes *c, uint64_t first, unsigned valid,
                                             int real_end, uint8_t after, size_t pos, size_t *retry, int o200k,
                                             int with_suffixes, int contractions, int max_digits,
                                             int digits_end_text) {
    uint64_t space = c->space, newline = c->newline, letter = c->letter, digit = c->digit, tab = c->tab;
    uint64_t whitespace = space | newline | tab;
    uint64_t horizontal = space | tab; /* a run's spaces and tabs: \s+(?!\S) gives its last one back */
    /* A run of 10+ digits: the window ends before its 10th (\p{N}{1,3} needs a 4th cut the masks don't make). */
    uint64_t ten = max_digits == 3 ? digit : 0;
    for (int k = 1; k < 10 && ten; k++) ten &= digit << k;
    if (ten && (unsigned)__builtin_ctzll(ten) < valid) {
        valid = (unsigned)__builtin_ctzll(ten);
        real_end = 1;
    }
    /* After a character of another kind the scanner takes the piece that holds it; when it came at once, the
     * text is likely more of it (another script): the scanner goes on for a window's length. */
    *retry = !real_end ? pos : valid >= 2 ? pos + char_byte(first, valid) + 1 : pos + 64;
    if (valid < 2) return 0;

    uint64_t punct = c->valid & ~(letter | digit | whitespace);
    uint64_t starts = 1; /* pos is a piece start */
    uint64_t letter_starts = letter & ~(letter << 1);
    uint64_t covered = 0; /* o200k: the suffixes' bytes after their apostrophe (no piece starts there) */
    uint64_t suffixes = 0; /* o200k: apostrophes that end a word as (?i:'s|...) */
    if (o200k) {
        uint64_t candidates = with_suffixes ? c->apostrophe & (letter << 1) : 0;
        while (candidates) {
            unsigned j = (unsigned)__builtin_ctzll(candidates);
            candidates &= candidates - 1;
            if (j + 3 > valid) { /* the suffix's letters are not all known (ſ is s under (?i)) */
                if (j < valid) valid = j;
                break;
            }
            if (covered >> (j - 1) & 1) continue; /* after a suffix: a match starts at this apostrophe */
            unsigned n = suffix_length(p + char_byte(first, j)); /* its letters: ASCII, a byte a character */
            if (!n) continue;
            suffixes |= 1ull << j;
            covered |= ((1ull << (n - 1)) - 1) << (j + 1); /* j <= 62 here (j + 3 <= valid <= 65) */
            if (j + n < 64 && (letter >> (j + n) & 1)) starts |= 1ull << (j + n); /* the rest of the run */
        }
        if (valid < 2) {
            if (*retry == pos) *retry = pos + 1;
            return 0;
        }
        /* a lower-case letter then an upper-case one: [UP]*[LO]+ ended, the next word starts */
        starts |= (letter & ~c->lower) & (c->lower << 1);
    }
    /* letters: a run starts a piece unless the byte before joins it as X (a space, or a P that starts a
     * piece itself: no P or space before it, and not an o200k suffix) */
    uint64_t lone_punct = punct & ~((punct | space) << 1) & ~suffixes;
    /* a tab joins letters as X does ([^\r\n\p{L}\p{N}]?), but not a P run (only a space is " ?") */
    uint64_t joined = letter_starts & ((horizontal << 1) | (lone_punct << 1) | (suffixes << 1));
    starts |= letter_starts & ~joined;
    if (!o200k && contractions) {
        uint64_t after_apostrophe = letter_starts & ((c->apostrophe & lone_punct) << 1);
        while (after_apostrophe) {
            unsigned i = (unsigned)__builtin_ctzll(after_apostrophe);
            after_apostrophe &= after_apostrophe - 1;
            starts |= contraction_rest(p + char_byte(first, i), i, letter);
        }
    }

    /* digits: each one, or a run's 1st, 4th and 7th */
    if (max_digits == 1) {
        starts |= digit;
    } else {
        uint64_t d1 = digit << 1, d2 = digit << 2, d3 = digit << 3;
        uint64_t run3 = digit & d1 & d2 & d3; /* a digit with three before it */
        uint64_t run6 = run3 & (digit << 4) & (digit << 5) & (digit << 6);
        starts |= (digit & ~d1) | (run3 & ~(digit << 4)) | (run6 & ~(digit << 7));
    }

    /* punctuation */
    starts |= punct & ~(punct << 1) & ~(space << 1) & ~suffixes;

    /* whitespace: NL* SP* runs; the last space gives itself back to what follows (\s+(?!\S)), unless that is
     * the end of the text (DeepSeek-V3: a digit) */
    uint64_t next_is_horizontal = (horizontal >> 1) | ((uint64_t)(after == ' ' || after == '\t') << 63);
    uint64_t gives_back = horizontal & ~next_is_horizontal;
    if (digits_end_text) gives_back &= ~((digit >> 1) | ((uint64_t)(after >= '0' && after <= '9') << 63));
    starts |= (newline & ~(newline << 1) & ~(punct << 1)) | (horizontal & ~(horizontal << 1)) | gives_back;
    starts &= ~covered;
    return decided_starts(starts, whitespace, valid, after, pos, retry);
}

/* ---- windows with other scripts ------------------------------------------------------------------
 * The rules decide a start from the characters before it, so they hold for any characters as long as each
 * one is a letter, a digit, whitespace or P as it is in ASCII. Under cl100k's rules a character of \p{L} is a
 * letter whatever its script, and every character of none of \p{L}, \p{N} and \s (marks, other punctuation,
 * symbols, format characters) is P. Under o200k's a letter is also upper- or lower-case-ish ([UP], [LO]):
 * Lu and Lt are upper-case, Ll lower-case, and a letter of both (Lm, Lo, and marks, M: CJK, Arabic, Thai,
 * Devanagari) is taken as a lower-case letter. That is exact as long as none is right before an upper-case
 * letter: [UP]*[LO]+ backtracks then ("中A中" is one piece, "中A " two, where a lower-case letter would cut
 * before the A). From a start, the run of [UP] (upper-case and both) then either meets a lower-case letter,
 * and [LO]+ takes the run of lower-case and both after it, or ends, and [UP]*[LO]+ gives back to its last
 * letter of both cases, or [UP]+[LO]* takes it whole: with no letter of both cases before an upper-case one,
 * the run of [UP] is upper-case letters then letters of both, and each way ends where it would for a
 * lower-case letter in their place. A mark is no \p{L}: it is also the X of X?[UP]*[LO]+ (a piece that starts
 * at it goes on into the letters after it, as a letter would), and a P of " ?P+" right after a P, where a
 * letter would start a piece: the window ends at a mark after P too. A window holding
 * other scripts is taken in characters: each byte mask compressed to one bit a character (pext over the
 * characters' first bytes), the same rules, the starts spread back to bytes (pdep). What ends such a
 * window: other digits (\p{N} outside 0-9: the {1,3} count is kept for ASCII digits), other whitespace
 * (\s outside space and \n), ſ (s under (?i): "'ſ" is a contraction, and a suffix), a character cut by
 * the window's end, under o200k a letter of both cases before an upper-case one and a mark after P, and what
 * ends an ASCII window (\t, \r, controls).
 * Not for DeepSeek-V3's chain (a CJK stage of its own). Needs x86-64 with a fast BMI2 (x86-64-v3; not AMD's
 * families 15h and 17h, Bulldozer to Zen 2, whose pext and pdep are microcode, slower the more bits the
 * mask has); elsewhere such windows end at their first non-ASCII byte. */

static inline unsigned bit_index(uint64_t x) { return (unsigned)__builtin_ctzll(x); }

#if TK_BULK_WIDE

/* Bit i: byte i of the 64 at `bytes` has the bit `flag` (one bit). */
static inline uint64_t class_bits(const uint8_t *bytes, uint8_t flag) {
    unsigned shift = 7 - (unsigned)__builtin_ctz(flag);
    __m128i x[4];
    for (int k = 0; k < 4; k++) x[k] = _mm_sll_epi16(_mm_load_si128((const __m128i *)(bytes + 16 * k)), _mm_cvtsi32_si128((int)shift));
    return movemask64(x[0], x[1], x[2], x[3]);
}

static TK_BULK_INLINE __attribute__((target("bmi2,popcnt"))) uint64_t wide_starts(const uint8_t *p, size_t pos, size_t *retry,
                                                                         const window_classes *c, int o200k,
                                                                         int with_suffixes, int contractions,
                                                                         int max_digits) {
    uint64_t cont = 0; /* UTF-8 continuation bytes: every other byte starts a character */
    for (int k = 0; k < 4; k++)
        cont |= (uint64_t)(unsigned)_mm_movemask_epi8(tk_sse2_in_range(_mm_loadu_si128((const __m128i *)(p + 16 * k)),
                                                                       0x80, 64)) << (16 * k);
    uint64_t first = ~cont;
    uint64_t letter = c->letter, lower = c->lower;
    uint64_t punct = c->valid & ~(c->letter | c->digit | c->space | c->newline);
    uint64_t stop = ~c->valid & first; /* a character of another kind, ASCII or not: found below */
    /* The masks are read only through pext over `first` below, so a character's class is its first byte's bit
     * alone (its continuation bytes' bits are never read), and the characters the loop takes are the bits of
     * `stop` before the one it ended at. A character costs its decode, its look-up, and under cl100k's rules a
     * shift-or (one mask: letters); under o200k's, with four masks to make, the store of its class byte at its
     * first byte's place, the masks taken from those bytes after the loop, 16 at a time (a shift-or a
     * character for each mask cost 13 instructions a character more; the bytes' fixed cost lost cl100k's
     * split of Latin text, a few such characters a window, 4 %). */
    uint8_t classes_at[64] __attribute__((aligned(16))); /* o200k: byte i: the classes of the character at byte i */
    uint64_t letters = 0; /* cl100k: bit i: the character at byte i is a letter (\p{L}) */
    if (o200k)
        for (int k = 0; k < 4; k++) _mm_store_si128((__m128i *)(classes_at + 16 * k), _mm_setzero_si128());
    unsigned end = 64; /* where the loop stopped: the character of another kind, if any */
    /* o200k: a window with no ASCII but letters after its first byte, where letters of both cases come (Thai,
     * CJK, Lao: text without spaces), most likely lies inside one piece longer than itself and decides
     * nothing: it ends at its first letter of both cases instead (the scanner takes such text) */
    int both_end = o200k && !(c->valid & ~c->letter & ~1ull);
    const uint8_t both_cases = TK_UC_UPPERISH | TK_UC_LOWERISH;
    for (uint64_t others = stop; others;) { /* the non-ASCII characters up to the first ASCII stop */
        unsigned i = bit_index(others);
        others &= others - 1;
        uint8_t b = p[i];
        unsigned width = b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
        /* an ASCII byte of another kind, or a character cut by the window's end: the window ends there */
        if (b < 0x80 || i + width > 64) {
            end = i;
            break;
        }
        /* decoded here, not by pretokenize.c's char_at behind a call: that cost the split 7 % */
        uint32_t cp = width == 2 ? (uint32_t)(b & 0x1f) << 6 | (p[i + 1] & 0x3f)
                      : width == 3 ? (uint32_t)(b & 0x0f) << 12 | (uint32_t)(p[i + 1] & 0x3f) << 6 | (p[i + 2] & 0x3f)
                                   : (uint32_t)(b & 0x07) << 18 | (uint32_t)(p[i + 1] & 0x3f) << 12 |
                                         (uint32_t)(p[i + 2] & 0x3f) << 6 | (p[i + 3] & 0x3f);
        uint8_t classes = tk_unicode_classes(cp);
        if ((classes & (TK_UC_NUMBER | TK_UC_SPACE)) || cp == 0x17f || (both_end && (classes & both_cases) == both_cases)) {
            end = i;
            break;
        }
        if (o200k)
            classes_at[i] = classes;
        else /* without a branch: in scripts with combining marks (Devanagari, Thai, Malayalam) a letter and a
              * mark (P under cl100k) alternate as good as at random */
            letters |= (uint64_t)((classes & TK_UC_LETTER) != 0) << i;
    }
    uint64_t taken = stop & ((end < 64 ? 1ull << end : 0) - 1); /* end 64: every bit of `stop` */
    stop &= ~taken;
    uint64_t both = 0, marks = 0; /* o200k: letters of both cases (Lm, Lo, M), marks (M) */
    if (o200k) { /* bit i: the character at byte i is a letter, upper-ish, ... (0 where none was taken) */
        letters = class_bits(classes_at, TK_UC_LETTER);
        uint64_t uppers = class_bits(classes_at, TK_UC_UPPERISH), lowerishes = class_bits(classes_at, TK_UC_LOWERISH);
        both = uppers & lowerishes;
        marks = class_bits(classes_at, TK_UC_MARK);
        letters |= marks;   /* a letter of the rules, as the letters of both cases */
        lower |= lowerishes; /* Ll, Lm, Lo, M: all letters of the rules now */
    }
    letter |= letters;
    punct |= taken & ~letters;
    /* in characters from here: bit k is the window's character k */
    window_classes w;
    w.letter = _pext_u64(letter, first);
    w.lower = _pext_u64(lower, first);
    w.digit = _pext_u64(c->digit, first);
    w.space = _pext_u64(c->space, first);
    w.newline = _pext_u64(c->newline, first);
    w.apostrophe = _pext_u64(c->apostrophe, first);
    w.slash = _pext_u64(c->slash, first);
    w.tab = 0; /* a tab is outside c->valid here: it ends the window */
    uint64_t w_punct = _pext_u64(punct, first);
    w.valid = w.letter | w.digit | w.space | w.newline | w_punct;
    unsigned n_chars = (unsigned)__builtin_popcountll(first); /* 64 only when its one wide character is cut */
    uint64_t ends = _pext_u64(stop, first) | (w.newline & (w.space << 1));
    if (o200k) {
        ends |= w.slash & (w.newline << 1);
        /* Letters of both cases are lower-case letters to the rules (see above) but where one is right before
         * an upper-case letter, and a mark right after P (its run's, or the X before a word): the window ends
         * at that letter, at that mark. */
        uint64_t upper_only = w.letter & ~w.lower;
        ends |= (_pext_u64(both, first) & (upper_only >> 1)) | (_pext_u64(marks, first) & (w_punct << 1));
    }
    /* what follows the last character is not known: the window ends there too (its last whitespace run is
     * left open: decided_starts), but that end is no character of another kind */
    unsigned valid = ends ? bit_index(ends) : n_chars; /* ends' bits are characters of the window: < n_chars */
    int real_end = valid < n_chars;
    uint64_t starts = window_starts(p, &w, first, valid, real_end, 0, pos, retry, o200k, with_suffixes, contractions,
                                    max_digits, 0);
    return starts ? _pdep_u64(starts, first) : 0;
}

/* wide_starts for each set of rules, its own copy (the loop over characters without the others' tests) */
#define TK_WIDE_STARTS(name, o200k, with_suffixes, contractions, max_digits)                                      \
    __attribute__((target("bmi2,popcnt"), noinline)) static uint64_t name(const uint8_t *p, size_t pos, size_t *retry,     \
                                                                  const window_classes *c) {                     \
        return wide_starts(p, pos, retry, c, o200k, with_suffixes, contractions, max_digits);                     \
    }
TK_WIDE_STARTS(wide_cl100k, 0, 0, 1, 3)
TK_WIDE_STARTS(wide_qwen2, 0, 0, 1, 1)
TK_WIDE_STARTS(wide_o200k, 1, 1, 0, 3)
TK_WIDE_STARTS(wide_tekken, 1, 0, 0, 1)

/* BMI2 with pext and pdep in hardware (not microcode), and POPCNT (the windows count their characters with it;
 * every BMI2 processor has it): read once (a racing first read computes the same). */
static int fast_bmi2(void) {
    static int known = -1;
    int fast = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (fast < 0) {
        __builtin_cpu_init();
        fast = __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt") && !__builtin_cpu_is("amdfam15h") &&
               !__builtin_cpu_is("amdfam17h");
        __atomic_store_n(&known, fast, __ATOMIC_RELAXED);
    }
    return fast;
}
#endif

static TK_BULK_INLINE uint64_t bulk_starts(const uint8_t *s, size_t pos, size_t *retry, int o200k, int with_suffixes,
                                           int contractions, int max_digits, int digits_end_text, int wide) {
    const uint8_t *p = s + pos;
    window_classes c = classify(p);
    uint8_t after = p[64]; /* decides whether a space at byte 63 is the last of its run */
    /* Tabs (indented code): whitespace like a space, but one that joins letters only, as X of X?L+. Not in
     * DeepSeek-V3's chain (its \s+ last alternative and the digits' cut are not held to tabs here). */
    int tabs = !digits_end_text;
    /* Looked for only when the window would end at one (most windows of prose hold none): the rules read
     * no byte past the window's first stop, so tabs after another stop change nothing. */
    if (tabs && ~c.valid && p[bit_index(~c.valid)] == '\t') {
        c.tab = tab_mask(p);
        c.valid |= c.tab;
    }
    /* How many bytes the rules may read: up to the first byte of another kind, the \n of a space-\n or
     * tab-\n pair, or (o200k) a / after a \n (a P run's tail [\r\n/]* would take it). */
    uint64_t stop = ~c.valid | (c.newline & ((c.space | c.tab) << 1));
    if (o200k) stop |= c.slash & (c.newline << 1);
    /* `wide`: a window of other scripts is taken in characters (wide_starts) */
#if TK_BULK_WIDE
    if (wide && stop && p[bit_index(stop)] >= 0x80 && fast_bmi2()) {
        c.valid &= ~c.tab; /* the wide windows have no tabs: one ends there */
        if (o200k) return with_suffixes ? wide_o200k(p, pos, retry, &c) : wide_tekken(p, pos, retry, &c);
        return max_digits == 3 ? wide_cl100k(p, pos, retry, &c) : wide_qwen2(p, pos, retry, &c);
    }
#else
    (void)wide;
#endif
    unsigned valid;
    if (stop)
        valid = (unsigned)__builtin_ctzll(stop);
    else if (!(is_window_byte(after) || (tabs && after == '\t')) || (after == '\n' && (c.space | c.tab) >> 63) ||
             (o200k && after == '/' && c.newline >> 63))
        valid = 64;
    else
        valid = 65; /* all 64 bytes, and byte 64 may be read as what follows byte 63 */
    return window_starts(p, &c, ~0ull, valid, valid < 64, after, pos, retry, o200k, with_suffixes, contractions,
                         max_digits, digits_end_text);
}

/* GPT-2's pattern (r50k_base, p50k_base, gpt2, and Hugging Face's ByteLevel pre-tokenizer in tokenizer.json
 * files: its scanner is the same), possessive as tokend spells it:
 *
 *   '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
 *
 * In the same text as above, with fewer rules than cl100k's: a run of letters, of digits (any length) or of
 * P starts a piece unless a space is right before it (" ?X++": the space takes it; only a space, never a P,
 * joins what follows). A run of whitespace starts a piece at its first byte and at its last (\s+(?!\S)
 * gives the last back before \S: a space then takes the run after it, a \n is a piece of its own), and a \n
 * anywhere else in it starts nothing. The contractions are lower-case and hold only where a match starts: at
 * an apostrophe that starts a piece (a P run's first byte with no space before it) followed by s, t, m, d or
 * ll, ve, re; the rest of the letter run after them starts another piece. */
static uint64_t gpt2_bulk_starts(const uint8_t *s, size_t pos, size_t *retry) {
    const uint8_t *p = s + pos;
    window_classes c = classify(p);
    uint8_t after = p[64];
    uint64_t space = c.space, letter = c.letter, digit = c.digit;
    uint64_t whitespace = space | c.newline;
    uint64_t stop = ~c.valid;
    unsigned valid = stop ? (unsigned)__builtin_ctzll(stop) : is_window_byte(after) ? 65 : 64;
    *retry = valid >= 64 ? pos : valid >= 2 ? pos + valid + 1 : pos + 64;
    if (valid < 2) return 0;

    uint64_t punct = c.valid & ~(letter | digit | whitespace);
    uint64_t unjoined = ~(space << 1); /* not right after a space */
    uint64_t starts = 1;
    starts |= ((letter & ~(letter << 1)) | (digit & ~(digit << 1)) | (punct & ~(punct << 1))) & unjoined;
    uint64_t next_is_whitespace = (whitespace >> 1) | ((uint64_t)(after == ' ' || after == '\n') << 63);
    starts |= (whitespace & ~(whitespace << 1)) | (whitespace & ~next_is_whitespace);

    uint64_t covered = 0; /* a contraction's letters */
    uint64_t candidates = c.apostrophe & starts & (letter >> 1);
    while (candidates) {
        unsigned j = (unsigned)__builtin_ctzll(candidates);
        candidates &= candidates - 1;
        if (j + 3 > valid) { /* the letters that decide it are not all known */
            if (j < valid) valid = j;
            break;
        }
        uint8_t first = p[j + 1], second = p[j + 2];
        unsigned n = first == 's' || first == 't' || first == 'm' || first == 'd' ? 2
                     : (first == 'l' && second == 'l') || ((first == 'v' || first == 'r') && second == 'e') ? 3
                                                                                                            : 0;
        if (!n) continue;
        covered |= ((1ull << (n - 1)) - 1) << (j + 1);
        if (j + n < 64 && (letter >> (j + n) & 1)) starts |= 1ull << (j + n); /* the rest of the run */
    }
    if (valid < 2) {
        if (*retry == pos) *retry = pos + 1;
        return 0;
    }
    starts &= ~covered;
    return decided_starts(starts, whitespace, valid, after, pos, retry);
}

int tk_bulk_split_supports(tk_pattern pattern) {
    switch (pattern) {
    case TK_PATTERN_GPT2:
    case TK_PATTERN_CL100K:
    case TK_PATTERN_LLAMA3: /* cl100k's alternatives but for the whitespace at the end of the text: never decided here */
    case TK_PATTERN_LLAMA3_ASCII: /* ASCII-only contractions: the same in ASCII */
    case TK_PATTERN_QWEN2:
    case TK_PATTERN_QWEN2_ASCII:
    case TK_PATTERN_O200K:
    case TK_PATTERN_TEKKEN:
        return 1;
    default:
        return 0;
    }
}

uint64_t tk_bulk_starts(tk_pattern pattern, const uint8_t *s, size_t pos, size_t *retry) {
    switch (pattern) {
    case TK_PATTERN_GPT2:
        return gpt2_bulk_starts(s, pos, retry);
    case TK_PATTERN_CL100K:
    case TK_PATTERN_LLAMA3:
    case TK_PATTERN_LLAMA3_ASCII:
        return bulk_starts(s, pos, retry, 0, 0, 1, 3, 0, 1);
    case TK_PATTERN_QWEN2:
    case TK_PATTERN_QWEN2_ASCII:
        return bulk_starts(s, pos, retry, 0, 0, 1, 1, 0, 1);
    case TK_PATTERN_O200K:
        return bulk_starts(s, pos, retry, 1, 1, 0, 3, 0, 1);
    case TK_PATTERN_TEKKEN:
        return bulk_starts(s, pos, retry, 1, 0, 0, 1, 0, 1);
    default:
        *retry = (size_t)-1;
        return 0;
    }
}

int tk_bulk_split_deepseek_v3_supported(void) { return 1; }

uint64_t tk_bulk_starts_deepseek_v3(const uint8_t *s, size_t pos, size_t *retry) {
    return bulk_starts(s, pos, retry, 0, 0, 0, 3, 1, 0);
}

#else

int tk_bulk_split_deepseek_v3_supported(void) { return 0; }

uint64_t tk_bulk_starts_deepseek_v3(const uint8_t *s, size_t pos, size_t *retry) {
    (void)s, (void)pos;
    *retry = (size_t)-1;
    return 0;
}

int tk_bulk_split_supports(tk_pattern pattern) {
    (void)pattern;
    return 0; /* the scanners do every piece */
}

uint64_t tk_bulk_starts(tk_pattern pattern, const uint8_t *s, size_t pos, size_t *retry) {
    (void)pattern, (void)s, (void)pos;
    *retry = (size_t)-1;
    return 0;
}

#endif
