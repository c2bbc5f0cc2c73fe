/* The C fast path of tiktoken rank files (rank_file.c), for module.c's module init. */
#ifndef TOKEND_RANK_FILE_H
#define TOKEND_RANK_FILE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Adds parse_canonical_ranks to the module: 0, or -1 with an exception. */
int tk_rank_file_add(PyObject *module);

#endif
