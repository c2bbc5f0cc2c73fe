/* The runs of text that NFC may change (nfc_runs.c), for module.c's module init. */
#ifndef TOKEND_NFC_RUNS_H
#define TOKEND_NFC_RUNS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Adds nfc_runs to the module: 0, or -1 with an exception. */
int tk_nfc_runs_add(PyObject *module);

#endif
