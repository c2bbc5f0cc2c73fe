/* Protobuf varint sizes of token ids, shared by the Encode answer's writer (encode_answer.c) and the service's
 * answer-size check (varint_sizes.c): one definition, so the size bounded before an answer is built is the
 * size the writer then writes. */
#ifndef TOKEND_VARINT_H
#define TOKEND_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of `n` uint32 ids written as varints (branch-free: one compare per extra byte). */
static inline size_t tk_packed_varint_size(const uint32_t *ids, size_t n) {
    size_t size = n;
    for (size_t i = 0; i < n; i++)
        size += (ids[i] >= (1u << 7)) + (ids[i] >= (1u << 14)) + (ids[i] >= (1u << 21)) + (ids[i] >= (1u << 28));
    return size;
}

#endif
