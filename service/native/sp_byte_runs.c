/* tokend.engine.sentencepiece._native.decode_surfaces: a SentencePiece model's decoded text from its
 * tokens' surfaces, by sentencepiece's rule for runs of byte pieces.
 *
 *   decode_surfaces(surfaces, strict) -> str, or (position, run, index) for strict decoding's first error
 *   decode_run(run, strict) -> str, or the index of strict decoding's first error: one run's bytes
 *
 * `surfaces`: a list of bytes, each token's contribution at its position (surface.py's SurfaceDecoder has
 * applied the leading-whitespace rule). A surface of one byte >= 0x80 can only be a byte piece's (every
 * other surface is UTF-8 text: a piece's text with ▁ as a space, " ⁇ " for an unknown piece, or empty for
 * a control piece), and consecutive ones are a *run*: sentencepiece decodes each run with its own UTF-8
 * decoder, which replaces each byte of a malformed sequence by U+FFFD and starts again at the next byte;
 * any other token (a control piece's empty surface too) ends the run. The text pieces are copied as they
 * are. Not strict: the text, each malformed byte a U+FFFD. Strict: the text when nothing is malformed,
 * else the first malformed byte's position in b"".join(surfaces), its run's bytes and its index in the run
 * (surface.py raises the UnicodeDecodeError it always raised).
 *
 * Why C: the same rule in Python (surface.py `decode_text`) walks a hostile Decode of 2 M random byte
 * pieces a byte at a time: 2.2 s of CPU holding the GIL, against ~20 ms here.
 * The GIL is held (the list is read in place); it is the caller's list, not changed while this runs. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "sp_native.h"

static const uint8_t REPLACEMENT[3] = {0xEF, 0xBF, 0xBD};

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Text;

static int text_reserve(Text *text, size_t more) {
    if (text->cap - text->len >= more) return 0;
    size_t cap = text->cap ? text->cap : 256;
    while (cap - text->len < more) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    uint8_t *grown = PyMem_Realloc(text->data, cap);
    if (!grown) return -1;
    text->data = grown;
    text->cap = cap;
    return 0;
}

static inline int high_byte(PyObject *surface) {
    return PyBytes_GET_SIZE(surface) == 1 && (uint8_t)PyBytes_AS_STRING(surface)[0] >= 0x80;
}

/* Appends run[0:n] decoded by sentencepiece's rule; -1 out of memory, or, strict, 1 with *bad the index of
 * the run's first malformed byte. */
static int append_run(Text *text, const uint8_t *run, Py_ssize_t n, int strict, Py_ssize_t *bad) {
    if (text_reserve(text, (size_t)n * sizeof REPLACEMENT) < 0) return -1;
    Py_ssize_t pos = 0;
    while (pos < n) {
        size_t valid = sp_valid_char_len(run + pos, (size_t)(n - pos));
        if (valid) {
            memcpy(text->data + text->len, run + pos, valid);
            text->len += valid;
            pos += (Py_ssize_t)valid;
            continue;
        }
        if (strict) {
            *bad = pos;
            return 1;
        }
        memcpy(text->data + text->len, REPLACEMENT, sizeof REPLACEMENT);
        text->len += sizeof REPLACEMENT;
        pos++;
    }
    return 0;
}

PyObject *sp_decode_surfaces(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_surfaces(surfaces: list[bytes], strict: bool)");
        return NULL;
    }
    int strict = PyObject_IsTrue(args[1]);
    if (strict < 0) return NULL;
    PyObject **surfaces = PySequence_Fast_ITEMS(args[0]);
    Py_ssize_t n = PyList_GET_SIZE(args[0]);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_CheckExact(surfaces[i])) {
            PyErr_Format(PyExc_TypeError, "surfaces[%zd] must be bytes, not %.100s", i, Py_TYPE(surfaces[i])->tp_name);
            return NULL;
        }
    }
    Text text = {0};
    uint8_t *scratch = NULL;
    PyObject *result = NULL;
    size_t before = 0;  /* bytes of surface before token i (a strict error's position) */
    Py_ssize_t i = 0;
    while (i < n) {
        PyObject *surface = surfaces[i];
        if (!high_byte(surface)) {
            Py_ssize_t size = PyBytes_GET_SIZE(surface);
            if (text_reserve(&text, (size_t)size) < 0) goto out_of_memory;
            memcpy(text.data + text.len, PyBytes_AS_STRING(surface), (size_t)size);
            text.len += (size_t)size;
            before += (size_t)size;
            i++;
            continue;
        }
        Py_ssize_t end = i + 1;
        while (end < n && high_byte(surfaces[end])) end++;
        uint8_t *grown = PyMem_Realloc(scratch, (size_t)(end - i));
        if (!grown) goto out_of_memory;
        scratch = grown;
        for (Py_ssize_t k = i; k < end; k++) scratch[k - i] = (uint8_t)PyBytes_AS_STRING(surfaces[k])[0];
        Py_ssize_t bad = 0;
        int status = append_run(&text, scratch, end - i, strict, &bad);
        if (status < 0) goto out_of_memory;
        if (status > 0) {
            result = Py_BuildValue("(ny#n)", (Py_ssize_t)before + bad, (const char *)scratch, end - i, bad);
            goto done;
        }
        before += (size_t)(end - i);
        i = end;
    }
    result = PyUnicode_DecodeUTF8(text.data ? (const char *)text.data : "", (Py_ssize_t)text.len, "strict");
    goto done;
out_of_memory:
    PyErr_NoMemory();
done:
    PyMem_Free(scratch);
    PyMem_Free(text.data);
    return result;
}

PyObject *sp_decode_run(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "decode_run(run: bytes, strict: bool)");
        return NULL;
    }
    int strict = PyObject_IsTrue(args[1]);
    if (strict < 0) return NULL;
    Text text = {0};
    Py_ssize_t bad = 0;
    PyObject *result = NULL;
    int status = append_run(&text, (const uint8_t *)PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), strict, &bad);
    if (status < 0)
        PyErr_NoMemory();
    else if (status > 0)
        result = PyLong_FromSsize_t(bad);
    else
        result = PyUnicode_DecodeUTF8(text.data ? (const char *)text.data : "", (Py_ssize_t)text.len, "strict");
    PyMem_Free(text.data);
    return result;
}
