/* A large scratch buffer about to be written through, its pages faulted in by one call instead of one fault a page.
 *
 *   uint32_t *first = malloc(n * sizeof *first);
 *   tk_populate_scratch(first, n * sizeof *first);   // a hint: nothing changes if the kernel refuses it
 *
 * Why: a fresh process's first huge piece writes megabytes the C heap has never touched (the first round's pairs,
 * 4 bytes a byte), and each 4 KiB page then costs a fault: ~1.5 us each on this VM, ~1.9 ms for 6 MiB touched a
 * page at a time against ~0.95 ms for the same pages populated by MADV_POPULATE_WRITE (Linux 5.14; a C probe,
 * docs/decisions.md "One 1 MB piece: the first round's scatter by rows"). Pages already present (a warm heap) cost
 * a walk of their page table entries, ~40 us for 4 MiB; so below TK_POPULATE_BYTES the call is not made: at 256 KiB, a 64 KiB piece's first
 * round (populated once a piece, its pages present but for the first) made 1 MB of 64 KiB words 4 % slower. Only
 * for memory that will be written whole (or nearly): populating reserves every page. Not for a Python list's
 * slots: ids_to_list gives the sink's pages back while it fills the list, and the list populated whole beforehand
 * raised an 8 MiB piece's peak from 45 to 66 MB. */
#ifndef TOKEND_SCRATCH_PAGES_H
#define TOKEND_SCRATCH_PAGES_H

#include <stddef.h>
#include <stdint.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#define TK_POPULATE_BYTES ((size_t)1 << 20)
#define TK_SCRATCH_PAGE ((uintptr_t)4096)

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23 /* Linux 5.14's value; an older kernel answers EINVAL and the pages fault as before */
#endif

static inline void tk_populate_scratch(void *buffer, size_t bytes) {
#if defined(__linux__)
    if (!buffer || bytes < TK_POPULATE_BYTES) return;
    /* the whole pages inside the buffer: the partial ones at its ends may be shared with other blocks */
    uintptr_t start = ((uintptr_t)buffer + TK_SCRATCH_PAGE - 1) & ~(TK_SCRATCH_PAGE - 1);
    uintptr_t end = ((uintptr_t)buffer + bytes) & ~(TK_SCRATCH_PAGE - 1);
    if (end > start) (void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
#else
    (void)buffer;
    (void)bytes;
#endif
}

#endif
