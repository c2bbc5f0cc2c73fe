/* Whether any of a few strings occurs in a str (text_find.c): of a str, for module.c's module init; of UTF-8, for
 * the core. */
#ifndef TOKEND_TEXT_FIND_H
#define TOKEND_TEXT_FIND_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>

/* Whether any of n strings (each non-empty) occurs in text[0, len):
 * a search of bytes, so for UTF-8 text and strings the same answer as a search of characters (a string's
 * first byte is a lead byte, which matches only at a character's start). No Python object: the native core
 * calls it on a text's UTF-8 (BpeCore.count_unless, module.c). */
int tk_utf8_contains_any(const uint8_t *text, size_t len, const uint8_t *const *strings, const size_t *lens, size_t n);

/* Adds contains_any to the module: 0, or -1 with an exception. */
int tk_text_find_add(PyObject *module);

#endif
