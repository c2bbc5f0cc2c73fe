/* Reading protobuf wire bytes without the GIL, for the gRPC server's request readers (decode_request.c,
 * text_request.c). Each returns -1 for bytes it does not read exactly as protobuf does (malformed, or a case
 * left to protobuf: groups, a varint over 10 bytes, a tag or length over 5); the readers then hand the message to
 * FromString. */
#ifndef TOKEND_WIRE_READER_H
#define TOKEND_WIRE_READER_H

#include <stddef.h>
#include <stdint.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_DELIMITED = 2, WIRE_START_GROUP = 3, WIRE_END_GROUP = 4, WIRE_FIXED32 = 5 };

/* A varint of at most 10 bytes (the 10th carrying only the 64th bit). */
static inline int tk_wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t value = 0;
    for (int i = 0; i < 10; i++) {
        if (*p >= end) return -1;
        uint8_t byte = *(*p)++;
        if (i == 9 && byte > 1) return -1;
        value |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *out = value;
            return 0;
        }
    }
    return -1;
}

/* protobuf (upb) reads a tag or a length in at most 5 bytes and refuses a longer one, even an overlong form of
 * a small value ("\x8a\x80\x80\x80\x80\x00" for field 1's tag): a value varint may take 10. */
#define TK_WIRE_MAX_TAG_OR_LENGTH_BYTES 5

/* A tag of any field number, 0 included: protobuf (upb) reads those inside an unknown group, where it skips
 * field number 0 as any other (b";\x00\x01<", field 7's group holding field 0's varint, parses). */
static inline int tk_wire_any_tag(const uint8_t **p, const uint8_t *end, uint32_t *field, int *wire) {
    uint64_t tag;
    const uint8_t *start = *p;
    if (tk_wire_varint(p, end, &tag) < 0 || *p - start > TK_WIRE_MAX_TAG_OR_LENGTH_BYTES || tag > UINT32_MAX)
        return -1;
    *field = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    return 0;
}

/* A message's tag: field number 0 is refused there. */
static inline int tk_wire_tag(const uint8_t **p, const uint8_t *end, uint32_t *field, int *wire) {
    return tk_wire_any_tag(p, end, field, wire) < 0 || *field == 0 ? -1 : 0;
}

/* A length-delimited value: *start = its first byte, *p = past its end. */
static inline int tk_wire_delimited(const uint8_t **p, const uint8_t *end, const uint8_t **start) {
    uint64_t len;
    const uint8_t *length_start = *p;
    if (tk_wire_varint(p, end, &len) < 0 || *p - length_start > TK_WIRE_MAX_TAG_OR_LENGTH_BYTES
        || len > (uint64_t)(end - *p))
        return -1;
    *start = *p;
    *p += len;
    return 0;
}

/* An unknown field's value; groups (wire types 3, 4) and invalid wire types are left to protobuf. */
static inline int tk_wire_skip(const uint8_t **p, const uint8_t *end, int wire) {
    uint64_t value;
    const uint8_t *start;
    switch (wire) {
    case WIRE_VARINT:
        return tk_wire_varint(p, end, &value);
    case WIRE_FIXED64:
        if (end - *p < 8) return -1;
        *p += 8;
        return 0;
    case WIRE_DELIMITED:
        return tk_wire_delimited(p, end, &start);
    case WIRE_FIXED32:
        if (end - *p < 4) return -1;
        *p += 4;
        return 0;
    default:
        return -1;
    }
}

/* The next field numbered 1..last_field, and its wire type; fields numbered after it are skipped (unknown to
 * the reader: protobuf skips unknown fields too). 1: a field, 0: the message's end, -1: bytes left to
 * protobuf. */
static inline int tk_wire_next_field(const uint8_t **p, const uint8_t *end, uint32_t last_field, uint32_t *field,
                                     int *wire) {
    while (*p < end) {
        if (tk_wire_tag(p, end, field, wire) < 0) return -1;
        if (*field <= last_field) return 1;
        if (tk_wire_skip(p, end, *wire) < 0) return -1;
    }
    return 0;
}

/* Groups tk_wire_skip_unknown may hold open at once (its stack). */
#define TK_WIRE_MAX_GROUPS 1024

/* The value of a field whose tag (`field`, `wire`) was just read, skipped as protobuf skips a field it does not
 * know or whose wire type is not the field's (chat_shape.c, batch_items.c): a varint of at most 10 bytes whose
 * bits past the 64th are dropped, not refused (tk_wire_skip refuses them); a group up to its matching end, nested
 * groups included, at most `max_groups` (<= TK_WIRE_MAX_GROUPS) open at once. -1: bytes protobuf refuses too (an
 * end without its start, an invalid wire type, a value past the end), or groups nested past `max_groups`. */
static inline int tk_wire_skip_unknown(const uint8_t **p, const uint8_t *end, uint32_t field, int wire,
                                       int max_groups) {
    uint32_t open[TK_WIRE_MAX_GROUPS]; /* the field number of each open group */
    int depth = 0;
    for (;;) {
        const uint8_t *start;
        switch (wire) {
        case WIRE_VARINT:
            for (int i = 0;; i++) {
                if (i == 10 || *p >= end) return -1;
                if (!(*(*p)++ & 0x80)) break;
            }
            break;
        case WIRE_FIXED64:
            if (end - *p < 8) return -1;
            *p += 8;
            break;
        case WIRE_DELIMITED:
            if (tk_wire_delimited(p, end, &start) < 0) return -1;
            break;
        case WIRE_FIXED32:
            if (end - *p < 4) return -1;
            *p += 4;
            break;
        case WIRE_START_GROUP:
            if (depth >= max_groups || depth == TK_WIRE_MAX_GROUPS) return -1;
            open[depth++] = field;
            break;
        case WIRE_END_GROUP:
            if (depth == 0 || open[--depth] != field) return -1;
            break;
        default:
            return -1;
        }
        if (depth == 0) return 0;
        if (tk_wire_any_tag(p, end, &field, &wire) < 0) return -1; /* inside a group: field 0 is skipped too */
    }
}

typedef struct {
    size_t code_points;
    uint32_t max_char;
} tk_utf8_shape;

/* Strict UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF), as protobuf checks every string
 * field it reads (a later record of the field does not excuse an earlier one): 1 if valid. With `shape`, also
 * its code points and largest one, for making the str (PyUnicode_New) before filling it. */
static inline int tk_wire_utf8(const uint8_t *p, const uint8_t *end, tk_utf8_shape *shape) {
    size_t count = 0;
    uint32_t max_char = 0;
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
            count++;
            continue;
        }
        size_t need;
        uint32_t code;
        uint8_t low = 0x80, high = 0xBF; /* the second byte's range */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            code = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            code = c & 0x0F;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            code = c & 0x07;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        } else
            return 0;
        if ((size_t)(end - p) <= need || p[1] < low || p[1] > high) return 0;
        code = (code << 6) | (p[1] & 0x3F);
        for (size_t i = 2; i <= need; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            code = (code << 6) | (p[i] & 0x3F);
        }
        if (code > max_char) max_char = code;
        p += need + 1;
        count++;
    }
    if (shape) {
        shape->code_points = count;
        shape->max_char = max_char;
    }
    return 1;
}

/* Decodes valid UTF-8 (tk_wire_utf8 said so) into a str's buffer of `kind` bytes per code point. */
static inline void tk_wire_utf8_fill(const uint8_t *p, const uint8_t *end, void *data, int kind) {
    size_t i = 0;
    while (p < end) {
        uint32_t code = *p;
        if (code < 0x80) {
            p++;
        } else if (code < 0xE0) {
            code = ((code & 0x1F) << 6) | (p[1] & 0x3F);
            p += 2;
        } else if (code < 0xF0) {
            code = ((code & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
            p += 3;
        } else {
            code = ((code & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) | ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
            p += 4;
        }
        if (kind == 1)
            ((uint8_t *)data)[i++] = (uint8_t)code;
        else if (kind == 2)
            ((uint16_t *)data)[i++] = (uint16_t)code;
        else
            ((uint32_t *)data)[i++] = code;
    }
}

#endif
