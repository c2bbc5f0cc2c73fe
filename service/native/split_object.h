/* The Python face of the general splitter (split_object.c), for module.c. */
#ifndef TOKEND_SPLIT_OBJECT_H
#define TOKEND_SPLIT_OBJECT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "split_program.h"

/* Adds SplitProgram, PieceSplitter and the tables the compiler checks to the module: 0 or -1. */
int tk_split_types_add(PyObject *module);
/* What BpeCore accepts as its pattern: None (new reference to None), a built-in scanner's name (a new
 * one-stage PieceSplitter) or a PieceSplitter (new reference); NULL with an exception otherwise. */
PyObject *tk_piece_splitter_coerce(PyObject *spec);
/* The splitter inside a PieceSplitter, or NULL for None. */
const tk_splitter *tk_piece_splitter_get(PyObject *splitter);

#endif
