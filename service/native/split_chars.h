/* Characters for the general splitter: UTF-8 decoding with the property byte, and class membership
 * (shared by split_program.c, which precomputes classes, and split_matcher.c, which tests them). */
#ifndef TOKEND_SPLIT_CHARS_H
#define TOKEND_SPLIT_CHARS_H

#include "split_program.h"
#include "unicode_props.h"

typedef struct {
    uint32_t cp;
    uint8_t props;
    uint8_t width; /* 0 past the end */
} tk_decoded;

static inline tk_decoded decode(const uint8_t *s, size_t len, size_t pos) {
    tk_decoded c;
    if (pos >= len) {
        c.cp = 0xffffffffu;
        c.props = 0;
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
    c.props = c.cp < 0x80 ? 0 : tk_props(c.cp); /* ASCII is decided by the class's bitmap */
    return c;
}

static inline int ranges_contain(const uint32_t *ranges, uint32_t n, uint32_t cp) {
    uint32_t low = 0, high = n; /* binary search over the pairs */
    while (low < high) {
        uint32_t middle = (low + high) / 2;
        if (cp < ranges[2 * middle])
            high = middle;
        else if (cp > ranges[2 * middle + 1])
            low = middle + 1;
        else
            return 1;
    }
    return 0;
}

static inline int class_has_props(const tk_char_class *k, uint32_t cp, uint8_t props) {
    int inside = (int)((k->signatures[props >> 6] >> (props & 63)) & 1);
    if (!inside && k->n_ranges) inside = ranges_contain(k->ranges, k->n_ranges, cp);
    return inside ^ (int)k->negated;
}

static inline int class_has(const tk_char_class *k, tk_decoded c) {
    if (c.cp < 0x80) return (int)((k->ascii[c.cp >> 6] >> (c.cp & 63)) & 1);
    return class_has_props(k, c.cp, c.props);
}

#endif
