/* A binary min-heap of plain entries, generated per entry type: the merge loops' agendas (bpe_merge.c,
 * pair_merge.c, merge_index.c, sp_bpe.c) differ only in what an entry holds and which entry goes first.
 *
 *     typedef struct { uint32_t rank, left; } my_entry;
 *     static inline int my_before(const my_entry *a, const my_entry *b) { return a->rank < b->rank; }
 *     TK_BINARY_HEAP(my_heap, my_entry, my_before)
 *     my_heap h = {0};                      // or {malloc(n * sizeof(my_entry)), 0, n}: room for n up front
 *     if (my_heap_push(&h, (my_entry){7, 0}) < 0) ...   // -1: out of memory
 *     my_entry top = my_heap_pop(&h);       // h.size > 0; free(h.entries) when done
 *
 * `before(a, b)` is a strict order: the first entry popped is one no other entry goes before. */
#ifndef TOKEND_BINARY_HEAP_H
#define TOKEND_BINARY_HEAP_H

#include <stddef.h>
#include <stdlib.h>

#define TK_BINARY_HEAP(name, entry_type, before)                                                               \
    typedef struct {                                                                                           \
        entry_type *entries;                                                                                   \
        size_t size, capacity;                                                                                 \
    } name;                                                                                                    \
                                                                                                               \
    static inline int name##_push(name *heap, entry_type entry) {                                              \
        if (heap->size == heap->capacity) {                                                                    \
            size_t capacity = heap->capacity ? 2 * heap->capacity : 16;                                       \
            entry_type *grown = realloc(heap->entries, capacity * sizeof *grown);                              \
            if (!grown) return -1;                                                                             \
            heap->entries = grown;                                                                             \
            heap->capacity = capacity;                                                                         \
        }                                                                                                      \
        entry_type *items = heap->entries;                                                                     \
        size_t i = heap->size++;                                                                               \
        while (i > 0) {                                                                                        \
            size_t parent = (i - 1) / 2;                                                                       \
            if (!before(&entry, &items[parent])) break;                                                        \
            items[i] = items[parent];                                                                          \
            i = parent;                                                                                        \
        }                                                                                                      \
        items[i] = entry;                                                                                      \
        return 0;                                                                                              \
    }                                                                                                          \
                                                                                                               \
    static inline entry_type name##_pop(name *heap) {                                                          \
        entry_type *items = heap->entries;                                                                     \
        entry_type top = items[0], last = items[--heap->size];                                                 \
        size_t n = heap->size, i = 0;                                                                          \
        for (;;) {                                                                                             \
            size_t child = 2 * i + 1;                                                                          \
            if (child >= n) break;                                                                             \
            if (child + 1 < n && before(&items[child + 1], &items[child])) child++;                            \
            if (!before(&items[child], &last)) break;                                                          \
            items[i] = items[child];                                                                           \
            i = child;                                                                                         \
        }                                                                                                      \
        if (n) items[i] = last;                                                                                \
        return top;                                                                                            \
    }

#endif
