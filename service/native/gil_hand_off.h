/* Handing the GIL to a waiting thread from a long C loop that holds it (GIL held at every call).
 *
 *     TkGilHandOff hand_off = {0, 0};
 *     for (...) {
 *         if (i % CHECK_EVERY == CHECK_EVERY - 1) tk_gil_hand_off(&hand_off);   // ~0.1-1.5 ms of work apart
 *         ...
 *     }
 *
 * Why not a release and a re-take at every check (Py_BEGIN_ALLOW_THREADS; Py_END_ALLOW_THREADS): that is no
 * hand-off. A thread waiting for the GIL asks its holder to let go only when its timed wait of one switch
 * interval ends with no switch; each release wakes it before then, it finds the GIL taken again and starts a new
 * full wait. Releases more often than the interval starved it for the whole loop (the SentencePiece scan at
 * CPython's default 5 ms: 0.071 s of a 0.143 s call). So the loop lets go only once an interval and a quarter has
 * passed since it last took the GIL: by then a waiter's wait has run out and it has asked, and CPython's
 * drop_gil, asked, waits until the waiter holds the GIL (the hand-off the eval loop makes) before this thread
 * queues to take it back. A waiter gets the GIL within ~2.5 intervals; with none waiting, a release and re-take
 * is ~1 us per interval and a quarter.
 * The first check reads sys.getswitchinterval() (a Python call, so never on short loops that end before it) and
 * starts the clock; the loop has held the GIL since before then, so its first hold is a little longer. */
#ifndef TOKEND_GIL_HAND_OFF_H
#define TOKEND_GIL_HAND_OFF_H

#include <Python.h>
#include <stdint.h>
#include <time.h>

typedef struct {
    uint64_t release_at; /* monotonic ns */
    uint64_t every;      /* ns: the switch interval and a quarter; zero until the first check */
} TkGilHandOff;

static inline uint64_t tk_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* sys.getswitchinterval() in ns (GIL held; CPython's default 5 ms if it cannot be read). */
static inline uint64_t tk_switch_interval_ns(void) {
    PyObject *get = PySys_GetObject("getswitchinterval"); /* borrowed */
    PyObject *value = get ? PyObject_CallNoArgs(get) : NULL;
    double seconds = value ? PyFloat_AsDouble(value) : -1.0;
    Py_XDECREF(value);
    if (seconds <= 0) {
        PyErr_Clear();
        seconds = 0.005;
    }
    return (uint64_t)(seconds * 1e9);
}

/* Lets go of the GIL if it is time to; 1 when it did (what the loop read under the GIL may have changed). */
static inline int tk_gil_hand_off(TkGilHandOff *hand_off) {
    uint64_t now = tk_monotonic_ns();
    if (!hand_off->every) {
        hand_off->every = tk_switch_interval_ns() / 4 * 5;
        hand_off->release_at = now + hand_off->every;
        return 0;
    }
    if (now < hand_off->release_at) return 0;
    Py_BEGIN_ALLOW_THREADS
    Py_END_ALLOW_THREADS
    hand_off->release_at = tk_monotonic_ns() + hand_off->every;
    return 1;
}

#endif
