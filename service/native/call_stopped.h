/* The caller's call stop, on the Python side of a core (GIL held): the byte-level core (module.c) and the
 * SentencePiece core (sp_module.c) read tokend.engine.call_stop.CURRENT_STOP the same way and give up a stopped
 * encode with the same exception and message.
 *
 *     double deadline; Py_buffer flag;
 *     int has = tk_read_call_stop(&deadline, &flag);   // 1: flag.buf[0] is the flag (release the view after), 0, -1
 *     if (stopped) { tk_raise_call_stopped(); return NULL; }
 */
#ifndef TOKEND_CALL_STOPPED_H
#define TOKEND_CALL_STOPPED_H

#include <Python.h>

/* The stop in force: 1 with `deadline` set and `flag` a view of its one-byte flag that the caller releases after
 * the encode (the bytearray cannot be resized meanwhile), 0 when the call has none, -1 with an exception. */
static inline int tk_read_call_stop(double *deadline, Py_buffer *flag) {
    static PyObject *variable; /* CURRENT_STOP, looked up once per core */
    if (!variable) {
        PyObject *module = PyImport_ImportModule("tokend.engine.call_stop");
        if (!module) return -1;
        variable = PyObject_GetAttrString(module, "CURRENT_STOP");
        Py_DECREF(module);
        if (!variable) return -1;
    }
    PyObject *value, *flag_object;
    if (PyContextVar_Get(variable, Py_None, &value) < 0) return -1;
    int status = 0;
    if (value != Py_None) {
        status = -1;
        if (PyArg_ParseTuple(value, "dO;a call stop is (deadline, flag)", deadline, &flag_object) &&
            PyObject_GetBuffer(flag_object, flag, PyBUF_SIMPLE) == 0) {
            if (flag->len < 1) {
                PyBuffer_Release(flag);
                PyErr_SetString(PyExc_ValueError, "a call stop's flag must hold a byte");
            } else {
                status = 1;
            }
        }
    }
    Py_DECREF(value);
    return status;
}

static inline void tk_raise_call_stopped(void) {
    PyObject *module = PyImport_ImportModule("tokend.engine.call_stop");
    PyObject *kind = module ? PyObject_GetAttrString(module, "CallStopped") : NULL;
    Py_XDECREF(module);
    if (!kind) return;
    PyErr_SetString(kind, "the encode was stopped: the call's deadline passed or its caller went away");
    Py_DECREF(kind);
}

#endif
