/* Protobuf varint sizes of token ids, shared by the Encode answer's writer (encode_answer.c) and the service's
 * answer-size check (varint_sizes.c): one definition, so the size bounded before an answer is built is the
 * size the writer then writes. */
#ifndef TOKEND_VARINT_H
#define TOKEND_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Ids counted into a 32-bit sum before it is added to the total: at most 4 extra bytes an id, so a block of
 * 2^20 ids cannot overflow it. */
#define TK_VARINT_BLOCK (1u << 20)

/* Bytes of `n` uint32 ids written as varints (branch-free: one compare per extra byte). The extra bytes of a
 * block are summed in 32 bits, so the compiler keeps four ids to a vector register; summed into a size_t
 * per id it widened every compare to 64 bits (8 M ids: 15 ms, the nice-0 part of refusing 8 MiB of "\x01"
 * on the handler thread; docs/decisions.md, "Varint sizes summed in 32 bits"). */
static inline size_t tk_packed_varint_size(const uint32_t *ids, size_t n) {
    size_t size = n;
    for (size_t start = 0; start < n; start += TK_VARINT_BLOCK) {
        size_t end = n - start < TK_VARINT_BLOCK ? n : start + TK_VARINT_BLOCK;
        uint32_t extra = 0;
        for (size_t i = start; i < end; i++)
            extra += (uint32_t)(ids[i] >= (1u << 7)) + (uint32_t)(ids[i] >= (1u << 14)) +
                     (uint32_t)(ids[i] >= (1u << 21)) + (uint32_t)(ids[i] >= (1u << 28));
        size += extra;
    }
    return size;
}

#endif
