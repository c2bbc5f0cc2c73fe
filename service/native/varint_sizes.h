/* Sizes of token ids written as protobuf varints (varint_sizes.c), for module.c's module init. */
#ifndef TOKEND_VARINT_SIZES_H
#define TOKEND_VARINT_SIZES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Adds varint_bytes to the module: 0, or -1 with an exception. */
int tk_varint_sizes_add(PyObject *module);

#endif
