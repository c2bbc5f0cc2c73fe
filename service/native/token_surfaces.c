/* SurfaceTable (token_surfaces.h): an encoding's surface table flattened for the GIL-free alignment walk.
 *
 *     table = SurfaceTable([b"a", None, b"bc"])     # from offsets.surface_table's list form
 *     len(table), table[2], table[1]                # 3, b'bc', None */
#define PY_SSIZE_T_CLEAN
#include "token_surfaces.h"

#include <string.h>

static PyObject *surface_table_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"surfaces", NULL};
    PyObject *surfaces;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!:SurfaceTable", keywords, &PyList_Type, &surfaces)) return NULL;
    Py_ssize_t n_ids = PyList_GET_SIZE(surfaces);
    if ((uint64_t)n_ids >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a surface table holds fewer than 2**32 - 1 ids");
        return NULL;
    }
    uint64_t total = 0;
    for (Py_ssize_t id = 0; id < n_ids; id++) {
        PyObject *surface = PyList_GET_ITEM(surfaces, id);
        if (surface == Py_None) continue;
        if (!PyBytes_Check(surface)) {
            PyErr_Format(PyExc_TypeError, "surfaces[%zd]: expected bytes or None, got %.100s", id, Py_TYPE(surface)->tp_name);
            return NULL;
        }
        total += (uint64_t)PyBytes_GET_SIZE(surface);
    }
    if (total >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a surface table's surfaces must total less than 4 GiB");
        return NULL;
    }
    size_t offsets_size = ((size_t)n_ids + 1) * sizeof(uint32_t), missing_size = ((size_t)n_ids + 7) / 8;
    TkSurfaceTable *table = (TkSurfaceTable *)type->tp_alloc(type, 0);
    if (!table) return NULL;
    table->n_bytes = offsets_size + missing_size + (size_t)total;
    table->offsets = (uint32_t *)PyMem_Malloc(table->n_bytes ? table->n_bytes : 1);
    if (!table->offsets) {
        Py_DECREF(table);
        return PyErr_NoMemory();
    }
    table->n_ids = n_ids;
    table->missing = (uint8_t *)table->offsets + offsets_size;
    table->bytes = table->missing + missing_size;
    memset(table->missing, 0, missing_size);
    uint32_t at = 0;
    for (Py_ssize_t id = 0; id < n_ids; id++) {
        PyObject *surface = PyList_GET_ITEM(surfaces, id);
        table->offsets[id] = at;
        if (surface == Py_None) {
            table->missing[id >> 3] |= (uint8_t)(1u << (id & 7));
            continue;
        }
        size_t len = (size_t)PyBytes_GET_SIZE(surface);
        memcpy(table->bytes + at, PyBytes_AS_STRING(surface), len);
        at += (uint32_t)len;
    }
    table->offsets[n_ids] = at;
    return (PyObject *)table;
}

static void surface_table_dealloc(TkSurfaceTable *table) {
    PyMem_Free(table->offsets);
    Py_TYPE(table)->tp_free((PyObject *)table);
}

static Py_ssize_t surface_table_length(TkSurfaceTable *table) { return table->n_ids; }

static PyObject *surface_table_item(TkSurfaceTable *table, Py_ssize_t id) {
    if (id < 0 || id >= table->n_ids) {
        PyErr_SetString(PyExc_IndexError, "SurfaceTable index out of range");
        return NULL;
    }
    const uint8_t *bytes;
    size_t len;
    if (!tk_surface_of(table, (uint32_t)id, &bytes, &len)) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)bytes, (Py_ssize_t)len);
}

static PyObject *surface_table_nbytes(TkSurfaceTable *table, void *closure) {
    (void)closure;
    return PyLong_FromSize_t(sizeof(TkSurfaceTable) + table->n_bytes);
}

static PySequenceMethods surface_table_sequence = {
    .sq_length = (lenfunc)surface_table_length,
    .sq_item = (ssizeargfunc)surface_table_item,
};

static PyGetSetDef surface_table_getset[] = {
    {"nbytes", (getter)surface_table_nbytes, NULL, "memory the table holds, in bytes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject TkSurfaceTable_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokend.engine._alignment.SurfaceTable",
    .tp_basicsize = sizeof(TkSurfaceTable),
    .tp_dealloc = (destructor)surface_table_dealloc,
    .tp_as_sequence = &surface_table_sequence,
    .tp_getset = surface_table_getset,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SurfaceTable(surfaces: list[bytes | None]): id -> surface, flat, read by align without the GIL",
    .tp_new = surface_table_new,
};
