/* A str's UTF-8 for one call of the core, not kept in the str (str_utf8.c):
 *
 *     const char *utf8; Py_ssize_t len; char *owned;
 *     int status = tk_str_utf8(text, &utf8, &len, &owned);   // 0: utf8[0, len); 1: a lone surrogate; -1: error
 *     ... encode or count utf8 ...
 *     free(owned);                                            // NULL when the str's own bytes were used
 *
 * The same bytes as PyUnicode_AsUTF8AndSize (its answer is used where the str has one already: ASCII, or its
 * UTF-8 made before). */
#ifndef TOKEND_STR_UTF8_H
#define TOKEND_STR_UTF8_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* 0 with *utf8 and *len set (*owned: a buffer of this call's to free, or NULL); 1 when the str holds a lone
 * surrogate (it has no UTF-8; no exception set); -1 with an exception (no memory, or not a str). */
int tk_str_utf8(PyObject *text, const char **utf8, Py_ssize_t *len, char **owned);

/* Adds _str_utf8(text) -> bytes (tests: the bytes the core reads) to the module: 0, or -1 with an exception. */
int tk_str_utf8_add(PyObject *module);

#endif
