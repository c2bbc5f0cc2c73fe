/* Memory for the tables probed at random per piece that a model writes whole when it loads (the rank table's
 * slots, filter, 2-byte table and records; the pair table; the merge index), on transparent huge pages where
 * the kernel gives them.
 *
 *   tk_table_memory memory;
 *   uint8_t *base = tk_table_memory_alloc(&memory, size);   // zeroed; NULL when out of memory
 *   ...                                                     // carve several tables out of `base`
 *   tk_table_memory_free(&memory);
 *
 * Why: these tables are megabytes probed at random (a cl100k_base piece lands on any of 4 MiB of slots), so
 * on 4 KiB pages nearly every probe misses the TLB as well as the cache and pays a page walk on top. On
 * 2 MiB pages the whole table is a few TLB entries. The kernel's usual THP policy ("madvise") gives huge
 * pages only to memory advised MADV_HUGEPAGE *before its first touch*, and only in 2 MiB-aligned 2 MiB
 * ranges: so a block of at least TK_HUGE_PAGE bytes is a fresh anonymous mapping of its own, trimmed to a
 * 2 MiB boundary and advised before anything writes it. (Memory from malloc/calloc may be carved from a
 * range already faulted in as 4 KiB pages; the advice then changes nothing.)
 * A smaller block, a platform without MADV_HUGEPAGE, or a failed mapping: the C heap (same contents; only the
 * page size differs, and a kernel with THP off just gives 4 KiB pages to the mapping).
 * Several small tables used together belong in one block (rank_table.c: slots + filter + 2-byte table +
 * records), so that together they reach a huge page. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, madvise under -std=c11 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "tokend_native.h"

#define TK_HUGE_PAGE ((size_t)2 << 20)

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

#if defined(__linux__) && defined(MADV_HUGEPAGE)
/* A fresh mapping of `size` (a multiple of TK_HUGE_PAGE) bytes at a TK_HUGE_PAGE boundary, advised for
 * huge pages and not yet touched; NULL when the mapping fails. */
static void *map_huge(size_t size) {
    size_t span = size + TK_HUGE_PAGE; /* room to slide to a boundary */
    uint8_t *base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return NULL;
    uint8_t *start = (uint8_t *)round_up((uintptr_t)base, TK_HUGE_PAGE);
    if (start > base) munmap(base, (size_t)(start - base));
    if (base + span > start + size) munmap(start + size, (size_t)(base + span - (start + size)));
    madvise(start, size, MADV_HUGEPAGE); /* a refusal only costs the huge pages */
    return start;
}
#else
static void *map_huge(size_t size) {
    (void)size;
    return NULL;
}
#endif

void *tk_table_memory_alloc(tk_table_memory *memory, size_t size) {
    memset(memory, 0, sizeof *memory);
    if (size >= TK_HUGE_PAGE) {
        size_t mapped = round_up(size, TK_HUGE_PAGE);
        void *base = map_huge(mapped);
        if (base) {
            memory->base = base;
            memory->mapped_bytes = mapped;
            return base; /* a fresh anonymous mapping reads as zeros */
        }
    }
    size_t bytes = round_up(size ? size : 1, 64);
    memory->base = aligned_alloc(64, bytes);
    if (memory->base) memset(memory->base, 0, bytes);
    return memory->base;
}

void tk_table_memory_free(tk_table_memory *memory) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (memory->mapped_bytes) munmap(memory->base, memory->mapped_bytes);
    else
#endif
        free(memory->base);
    memset(memory, 0, sizeof *memory);
}
