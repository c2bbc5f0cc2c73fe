/* A call's stop (tokend.engine.call_stop) as the byte-level core reads it without the GIL: a deadline and the
 * caller's cancel flag, checked between bounded steps of a long encode (batch_encode.c, between batches of
 * pieces). No Python here: module.c fills it from the engine's context variable (take_call_stop).
 *
 *     if (tk_call_stop_due(model->stop)) give up;
 *
 * The SentencePiece core reads the same context variable into its own sp_stop (sp_module.c). */
#ifndef TOKEND_CALL_STOP_H
#define TOKEND_CALL_STOP_H

#include <stdint.h>
#include <time.h>

typedef struct {
    double deadline;     /* CLOCK_MONOTONIC seconds (Python's time.monotonic()); 0: none */
    const uint8_t *flag; /* non-zero once the caller went away (set by another thread) */
} tk_call_stop;

/* Whether the encode should give up now (stop NULL: never). A vDSO clock read and a byte: ~25 ns. */
static inline int tk_call_stop_due(const tk_call_stop *stop) {
    if (!stop) return 0;
    if (__atomic_load_n(stop->flag, __ATOMIC_RELAXED)) return 1;
    if (stop->deadline > 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)now.tv_sec + 1e-9 * (double)now.tv_nsec >= stop->deadline) return 1;
    }
    return 0;
}

#endif
