/* Whether any of a few strings occurs in a str (text_find.c), for module.c's module init. */
#ifndef TOKEND_TEXT_FIND_H
#define TOKEND_TEXT_FIND_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Adds contains_any to the module: 0, or -1 with an exception. */
int tk_text_find_add(PyObject *module);

#endif
