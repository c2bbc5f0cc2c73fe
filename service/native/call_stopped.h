/* Raising tokend.engine.call_stop.CallStopped from a core, GIL held: the byte-level core (module.c) and the
 * SentencePiece core (sp_module.c) give up a stopped encode with the same exception and message.
 *
 *     if (stopped) { tk_raise_call_stopped(); return NULL; }
 */
#ifndef TOKEND_CALL_STOPPED_H
#define TOKEND_CALL_STOPPED_H

#include <Python.h>

static inline void tk_raise_call_stopped(void) {
    PyObject *module = PyImport_ImportModule("tokend.engine.call_stop");
    PyObject *kind = module ? PyObject_GetAttrString(module, "CallStopped") : NULL;
    Py_XDECREF(module);
    if (!kind) return;
    PyErr_SetString(kind, "the encode was stopped: the call's deadline passed or its caller went away");
    Py_DECREF(kind);
}

#endif
