/* Decoded sizes of token id buffers summed from a table of token lengths (length_sums.c), for module.c's module init. */
#ifndef TOKEND_LENGTH_SUMS_H
#define TOKEND_LENGTH_SUMS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Adds summed_lengths to the module: 0, or -1 with an exception. */
int tk_length_sums_add(PyObject *module);

#endif
