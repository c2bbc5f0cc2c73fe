/* tokend.engine._alignment.SurfaceTable: an encoding's per-token surfaces (id -> the bytes the token adds to
 * decoded text away from the start of a sequence, or none) in one flat block, so the alignment walk
 * (token_alignment.c) reads them without the GIL. Built once per encoding (engine/offsets.py caches it).
 *
 *     const uint8_t *bytes; size_t len;
 *     if (tk_surface_of(table, id, &bytes, &len)) ... id has a surface ...
 *
 * Layout: offsets[n_ids + 1] (uint32; id i spells bytes[offsets[i] .. offsets[i + 1])), a bit per id for ids
 * without a surface, then the bytes: 1.06 MB for cl100k_base (`nbytes`), against 4.8 MB for the list of 100,256
 * bytes objects it replaces. */
#ifndef TOKEND_TOKEN_SURFACES_H
#define TOKEND_TOKEN_SURFACES_H

#include <Python.h>
#include <stdint.h>

typedef struct {
    PyObject_HEAD
    Py_ssize_t n_ids;
    uint32_t *offsets; /* n_ids + 1; the block's start (one allocation: offsets, missing bits, bytes) */
    uint8_t *missing;  /* bit (id & 7) of missing[id >> 3]: the id has no surface */
    uint8_t *bytes;
    size_t n_bytes;    /* of the whole block */
} TkSurfaceTable;

extern PyTypeObject TkSurfaceTable_Type;

/* 1 with the id's surface; 0 when the id has none (out of range included). No GIL needed. */
static inline int tk_surface_of(const TkSurfaceTable *table, uint32_t id, const uint8_t **bytes, size_t *len) {
    if ((Py_ssize_t)id >= table->n_ids || (table->missing[id >> 3] >> (id & 7)) & 1) return 0;
    *bytes = table->bytes + table->offsets[id];
    *len = (size_t)(table->offsets[id + 1] - table->offsets[id]);
    return 1;
}

#endif
