/* A text given as parts, walked in one native call (text_parts.c). See engine/text_parts.py for the Python face.
 *
 * `parts` is a list of str: an exact str is ordinary text, encoded on its own; an instance of a str subclass
 * (tokend.engine.text_parts.SpecialText) is one special token, whose id `special_ids` (str -> int) gives.
 * `ends` cuts the parts into runs: run i is parts[ends[i-1]:ends[i]], and ends[-1] == len(parts). The walk
 * reports the tokens of each run, so a caller (the chat formats) learns what each message cost without a
 * Python call per part. */
#ifndef TOKEND_TEXT_PARTS_H
#define TOKEND_TEXT_PARTS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

/* What the walk needs of the core that owns the vocabulary (module.c gives it). */
typedef struct {
    void *core;
    void *sink;                /* where the ids go, or where they are counted */
    const size_t *position;    /* tokens in the sink so far */
    /* adds the tokens of ordinary UTF-8 text; 0, or -1 with an exception set */
    int (*text)(void *core, void *sink, const uint8_t *text, size_t len);
    /* adds one special token */
    int (*special)(void *sink, uint32_t id);
} tk_parts_ops;

/* The token count of each run (a new list), or NULL with an exception: TypeError / ValueError for malformed
 * arguments, KeyError for a special token `special_ids` lacks (only when `special_ids` is not NULL; without
 * it a special part counts one token), UnicodeEncodeError for text that is not valid UTF-8. */
PyObject *tk_walk_parts(const tk_parts_ops *ops, PyObject *parts, PyObject *ends, PyObject *special_ids);

/* ids as a list of int, reusing `objects[id]` (owned elsewhere) where it exists. */
PyObject *tk_ids_to_list(const uint32_t *ids, size_t n, PyObject *const *objects, size_t n_objects);

#endif
