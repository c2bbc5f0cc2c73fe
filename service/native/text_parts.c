/* tk_walk_parts: the tokens of a text given as parts (ordinary text | special token), per run of parts, in
 * one call. The chat formats render a conversation to such parts (registry/chat/segments.py); walking them
 * here saves a Python call, a result object and a list append per part (~0.3 us each, a few per message).
 *
 * The parts list may be changed by another thread while the core releases the GIL inside a long text, so each
 * text part is held (a new reference) while it is encoded, and the list's length is read again every step. */
#include "text_parts.h"
#include "tokend_native.h"

static int read_ends(PyObject *ends, Py_ssize_t n_parts, Py_ssize_t **out, Py_ssize_t *n_runs) {
    if (!PyList_Check(ends)) {
        PyErr_Format(PyExc_TypeError, "ends must be a list of int, got %.100s", Py_TYPE(ends)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(ends);
    Py_ssize_t *values = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *values);
    if (!values) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t previous = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(ends, i);
        Py_ssize_t end = PyLong_Check(item) ? PyLong_AsSsize_t(item) : -1;
        if (end == -1 && PyErr_Occurred()) PyErr_Clear();
        if (end < previous || end > n_parts) {
            PyErr_Format(PyExc_ValueError, "ends[%zd]: expected ascending part indices up to %zd", i, n_parts);
            PyMem_Free(values);
            return -1;
        }
        values[i] = previous = end;
    }
    if (previous != n_parts) {
        PyErr_Format(PyExc_ValueError, "ends must finish at len(parts) = %zd, not %zd", n_parts, previous);
        PyMem_Free(values);
        return -1;
    }
    *out = values;
    *n_runs = n;
    return 0;
}

static int walk_part(const tk_parts_ops *ops, PyObject *part, PyObject *special_ids, Py_ssize_t index) {
    if (PyUnicode_CheckExact(part)) {
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(part, &len);
        if (!text) return -1;
        return len ? ops->text(ops->core, ops->sink, (const uint8_t *)text, (size_t)len) : 0;
    }
    if (!PyUnicode_Check(part)) {
        PyErr_Format(PyExc_TypeError, "parts[%zd]: expected str, got %.100s", index, Py_TYPE(part)->tp_name);
        return -1;
    }
    if (!special_ids) return ops->special(ops->sink, 0);
    PyObject *id = PyDict_GetItemWithError(special_ids, part); /* borrowed */
    if (!id) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, part);
        return -1;
    }
    unsigned long value = PyLong_Check(id) ? PyLong_AsUnsignedLong(id) : (unsigned long)-1;
    if ((value == (unsigned long)-1 && PyErr_Occurred()) || value > UINT32_MAX) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "parts[%zd]: the special token's id must be an int in 0..2**32-1", index);
        return -1;
    }
    return ops->special(ops->sink, (uint32_t)value);
}

PyObject *tk_walk_parts(const tk_parts_ops *ops, PyObject *parts, PyObject *ends, PyObject *special_ids) {
    if (!PyList_Check(parts)) return PyErr_Format(PyExc_TypeError, "parts must be a list of str, got %.100s", Py_TYPE(parts)->tp_name);
    if (special_ids && !PyDict_Check(special_ids)) return PyErr_Format(PyExc_TypeError, "special_ids must be a dict");
    Py_ssize_t *run_ends, n_runs;
    if (read_ends(ends, PyList_GET_SIZE(parts), &run_ends, &n_runs) < 0) return NULL;
    PyObject *counts = PyList_New(n_runs);
    if (!counts) {
        PyMem_Free(run_ends);
        return NULL;
    }
    Py_ssize_t index = 0;
    for (Py_ssize_t run = 0; run < n_runs; run++) {
        size_t start = *ops->position;
        for (; index < run_ends[run]; index++) {
            if (index >= PyList_GET_SIZE(parts)) { /* shortened by another thread meanwhile */
                PyErr_SetString(PyExc_RuntimeError, "parts changed size during the walk");
                goto fail;
            }
            PyObject *part = PyList_GET_ITEM(parts, index);
            Py_INCREF(part);
            int status = walk_part(ops, part, special_ids, index);
            Py_DECREF(part);
            if (status < 0) goto fail;
        }
        PyObject *count = PyLong_FromSize_t(*ops->position - start);
        if (!count) goto fail;
        PyList_SET_ITEM(counts, run, count);
    }
    PyMem_Free(run_ends);
    return counts;
fail:
    PyMem_Free(run_ends);
    Py_DECREF(counts);
    return NULL;
}

PyObject *tk_ids_to_list(const uint32_t *ids, size_t n, PyObject *const *objects, size_t n_objects) {
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list) return NULL;
    for (size_t i = 0; i < n; i++) {
        /* the object of the id 32 on, and the slot naming the object of the id 128 on (TK_LIST_PREFETCH) */
        if (i + TK_LIST_PREFETCH_SLOT < n && ids[i + TK_LIST_PREFETCH_SLOT] < n_objects)
            __builtin_prefetch(&objects[ids[i + TK_LIST_PREFETCH_SLOT]], 0, 3);
        if (i + TK_LIST_PREFETCH < n && ids[i + TK_LIST_PREFETCH] < n_objects)
            __builtin_prefetch(objects[ids[i + TK_LIST_PREFETCH]], 1, 3);
        PyObject *item = ids[i] < n_objects ? objects[ids[i]] : NULL;
        if (item) {
            Py_INCREF(item);
        } else if (!(item = PyLong_FromUnsignedLong(ids[i]))) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}
