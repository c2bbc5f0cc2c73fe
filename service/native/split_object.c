/* Python types of the general splitter (built by tokend.engine.splitting, never by hand):
 *
 *   program = SplitProgram(code, classes, dialect="python-regex", n_slots=3, n_memo=4)
 *       code, classes: buffers of native uint32 words from the compiler; validated here, so a malformed
 *       program is a ValueError, never a crash
 *   splitter = PieceSplitter([(program, "findall")])            stages: (SplitProgram or built-in scanner
 *   splitter = PieceSplitter([("cl100k", "isolated"), ...])      name, "findall" or "isolated"), in order
 *   splitter.split("text") -> list of str pieces
 *   splitter.count("text") -> number of pieces (no str objects: the benchmark of the split alone)
 *
 * BpeCore (module.c) takes a PieceSplitter as its pattern. Both types are immutable, so one instance is
 * shared by every thread; each call has its own matcher scratch. */
#include "split_object.h"

#include "ascii_runs.h"
#include "unicode_props.h"

typedef struct {
    PyObject_HEAD
    tk_program program;
    int ready;
} SplitProgramObject;

typedef struct {
    PyObject_HEAD
    tk_splitter splitter;
    PyObject *programs[TK_MAX_STAGES]; /* owned references behind splitter.stages[].program */
} PieceSplitterObject;

static const struct {
    const char *name;
    tk_pattern pattern;
} builtin_patterns[] = {
    {"gpt2", TK_PATTERN_GPT2},
    {"cl100k", TK_PATTERN_CL100K},
    {"o200k", TK_PATTERN_O200K},
    {"llama3", TK_PATTERN_LLAMA3},
    {"qwen2", TK_PATTERN_QWEN2},
    {"llama3-ascii", TK_PATTERN_LLAMA3_ASCII},
    {"qwen2-ascii", TK_PATTERN_QWEN2_ASCII},
    {"tekken", TK_PATTERN_TEKKEN},
    {"deepseek-v3", TK_PATTERN_DEEPSEEK_V3},
    {"numbers3", TK_PATTERN_NUMBERS3},
    {"deepseek-cjk", TK_PATTERN_DEEPSEEK_CJK},
};
#define N_BUILTIN_PATTERNS (sizeof builtin_patterns / sizeof builtin_patterns[0])

static PyTypeObject SplitProgramType;
static PyTypeObject PieceSplitterType;

/* ---- SplitProgram ------------------------------------------------------------------------------------ */

static int word_buffer(PyObject *object, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(object, view, PyBUF_SIMPLE) < 0) return -1;
    if (view->len % 4) {
        PyErr_Format(PyExc_ValueError, "%s must hold whole 32-bit words", what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int SplitProgram_init(SplitProgramObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"code", "classes", "dialect", "n_slots", "n_memo", "start_class", NULL};
    PyObject *code_object, *classes_object;
    const char *dialect_name;
    unsigned int n_slots, n_memo, start_class = TK_NO_CLASS;
    if (self->ready) {
        PyErr_SetString(PyExc_TypeError, "SplitProgram is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$sIII", keywords, &code_object, &classes_object, &dialect_name,
                                     &n_slots, &n_memo, &start_class))
        return -1;
    tk_dialect dialect;
    if (strcmp(dialect_name, "python-regex") == 0) {
        dialect = TK_DIALECT_PYTHON;
    } else if (strcmp(dialect_name, "oniguruma") == 0) {
        dialect = TK_DIALECT_ONIGURUMA;
    } else {
        PyErr_SetString(PyExc_ValueError, "dialect must be 'python-regex' or 'oniguruma'");
        return -1;
    }
    Py_buffer code, classes;
    if (word_buffer(code_object, &code, "code") < 0) return -1;
    if (word_buffer(classes_object, &classes, "classes") < 0) {
        PyBuffer_Release(&code);
        return -1;
    }
    const char *error = NULL;
    int status = tk_program_init(&self->program, code.buf, (size_t)code.len / 4, classes.buf, (size_t)classes.len / 4,
                                 n_slots, n_memo, start_class, dialect, &error);
    PyBuffer_Release(&code);
    PyBuffer_Release(&classes);
    if (status < 0) {
        if (strcmp(error, "out of memory") == 0)
            PyErr_NoMemory();
        else
            PyErr_Format(PyExc_ValueError, "SplitProgram: %s", error);
        return -1;
    }
    self->ready = 1;
    return 0;
}

static void SplitProgram_dealloc(SplitProgramObject *self) {
    if (self->ready) tk_program_free(&self->program);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *SplitProgram_sizeof(SplitProgramObject *self, PyObject *Py_UNUSED(ignored)) {
    size_t size = sizeof *self + self->program.n_code * 4 + self->program.n_classes * sizeof(tk_char_class);
    return PyLong_FromSize_t(size);
}

static PyMethodDef SplitProgram_methods[] = {
    {"__sizeof__", (PyCFunction)SplitProgram_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SplitProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokend.engine._native.SplitProgram",
    .tp_doc = "A compiled split pattern (see split_object.c); built by tokend.engine.splitting.",
    .tp_basicsize = sizeof(SplitProgramObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)SplitProgram_init,
    .tp_dealloc = (destructor)SplitProgram_dealloc,
    .tp_methods = SplitProgram_methods,
};

/* ---- PieceSplitter ----------------------------------------------------------------------------------- */

static int PieceSplitter_init(PieceSplitterObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"stages", NULL};
    PyObject *stages_object;
    if (self->splitter.n_stages) {
        PyErr_SetString(PyExc_TypeError, "PieceSplitter is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O", keywords, &stages_object)) return -1;
    PyObject *stages = PySequence_Fast(stages_object, "stages must be a sequence of (program, mode) pairs");
    if (!stages) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(stages);
    if (n < 1 || n > TK_MAX_STAGES) {
        PyErr_Format(PyExc_ValueError, "a PieceSplitter has 1 to %d stages, got %zd", TK_MAX_STAGES, n);
        Py_DECREF(stages);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(stages, i), *program;
        const char *mode;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "Os", &program, &mode)) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "stages[%zd] must be a (program, mode) tuple", i);
            }
            Py_DECREF(stages);
            return -1;
        }
        tk_split_stage *stage = &self->splitter.stages[i];
        if (strcmp(mode, "findall") == 0) {
            stage->mode = TK_SPLIT_FINDALL;
        } else if (strcmp(mode, "isolated") == 0) {
            stage->mode = TK_SPLIT_ISOLATED;
        } else {
            PyErr_Format(PyExc_ValueError, "stages[%zd]: mode must be 'findall' or 'isolated'", i);
            Py_DECREF(stages);
            return -1;
        }
        if (PyObject_TypeCheck(program, &SplitProgramType) && ((SplitProgramObject *)program)->ready) {
            stage->program = &((SplitProgramObject *)program)->program;
            Py_INCREF(program);
            self->programs[i] = program;
        } else if (PyUnicode_Check(program)) {
            size_t k = 0;
            while (k < N_BUILTIN_PATTERNS && PyUnicode_CompareWithASCIIString(program, builtin_patterns[k].name) != 0) k++;
            if (k == N_BUILTIN_PATTERNS) {
                PyErr_Format(PyExc_ValueError, "stages[%zd]: no built-in scanner named %R", i, program);
                Py_DECREF(stages);
                return -1;
            }
            stage->builtin = builtin_patterns[k].pattern;
        } else {
            PyErr_Format(PyExc_TypeError, "stages[%zd]: expected a SplitProgram or a built-in scanner name", i);
            Py_DECREF(stages);
            return -1;
        }
    }
    Py_DECREF(stages);
    self->splitter.n_stages = (int)n;
    return 0;
}

static void PieceSplitter_dealloc(PieceSplitterObject *self) {
    for (int i = 0; i < TK_MAX_STAGES; i++) Py_XDECREF(self->programs[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *run_split(PieceSplitterObject *self, PyObject *arg, int counting) {
    if (!PyUnicode_Check(arg)) return PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(arg)->tp_name);
    if (!self->splitter.n_stages) {
        PyErr_SetString(PyExc_ValueError, "PieceSplitter is not initialised");
        return NULL;
    }
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!text) return NULL;
    tk_split_iter iter;
    if (tk_split_iter_init(&iter, &self->splitter, (const uint8_t *)text, (size_t)len) < 0) return PyErr_NoMemory();
    PyObject *pieces = counting ? NULL : PyList_New(0);
    size_t count = 0, start, end;
    int status;
    while ((status = tk_split_iter_next(&iter, &start, &end)) == 1) {
        count++;
        if (counting) continue;
        PyObject *piece = PyUnicode_DecodeUTF8(text + start, (Py_ssize_t)(end - start), "strict");
        if (!piece || PyList_Append(pieces, piece) < 0) {
            Py_XDECREF(piece);
            status = -2;
            break;
        }
        Py_DECREF(piece);
    }
    tk_split_iter_free(&iter);
    if (status < 0) {
        if (status == -1) PyErr_NoMemory();
        Py_XDECREF(pieces);
        return NULL;
    }
    return counting ? PyLong_FromSize_t(count) : pieces;
}

static PyObject *PieceSplitter_split(PieceSplitterObject *self, PyObject *arg) { return run_split(self, arg, 0); }
static PyObject *PieceSplitter_count(PieceSplitterObject *self, PyObject *arg) { return run_split(self, arg, 1); }

static PyMethodDef PieceSplitter_methods[] = {
    {"split", (PyCFunction)PieceSplitter_split, METH_O, "split(text) -> list of pieces"},
    {"count", (PyCFunction)PieceSplitter_count, METH_O, "count(text) -> number of pieces"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PieceSplitterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tokend.engine._native.PieceSplitter",
    .tp_doc = "Stages of split programs or built-in scanners (see split_object.c).",
    .tp_basicsize = sizeof(PieceSplitterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)PieceSplitter_init,
    .tp_dealloc = (destructor)PieceSplitter_dealloc,
    .tp_methods = PieceSplitter_methods,
};

/* ---- for module.c ------------------------------------------------------------------------------------ */

PyObject *tk_piece_splitter_coerce(PyObject *spec) {
    if (spec == Py_None || PyObject_TypeCheck(spec, &PieceSplitterType)) {
        Py_INCREF(spec);
        return spec;
    }
    if (PyUnicode_Check(spec)) {
        size_t k = 0;
        while (k < N_BUILTIN_PATTERNS && PyUnicode_CompareWithASCIIString(spec, builtin_patterns[k].name) != 0) k++;
        if (k == N_BUILTIN_PATTERNS) {
            PyErr_Format(PyExc_ValueError, "pattern %R is not a built-in scanner (see BUILTIN_SCANNERS); compile "
                         "other patterns with tokend.engine.splitting", spec);
            return NULL;
        }
        PyObject *stages = Py_BuildValue("((Os))", spec, "findall");
        if (!stages) return NULL;
        PyObject *splitter = PyObject_CallOneArg((PyObject *)&PieceSplitterType, stages);
        Py_DECREF(stages);
        return splitter;
    }
    PyErr_Format(PyExc_TypeError, "pattern must be None, a built-in scanner name or a PieceSplitter, got %.100s",
                 Py_TYPE(spec)->tp_name);
    return NULL;
}

const tk_splitter *tk_piece_splitter_get(PyObject *splitter) {
    if (!splitter || !PyObject_TypeCheck(splitter, &PieceSplitterType)) return NULL;
    return &((PieceSplitterObject *)splitter)->splitter;
}

static PyObject *unicode_property(PyObject *Py_UNUSED(module), PyObject *arg) {
    unsigned long cp = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) return NULL;
    if (cp > 0x10ffff) return PyErr_Format(PyExc_ValueError, "not a code point: %lu", cp);
    return PyLong_FromLong(tk_props((uint32_t)cp));
}

static PyObject *case_variants(PyObject *Py_UNUSED(module), PyObject *arg) {
    unsigned long cp = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) return NULL;
    size_t low = 0, high = TK_CASE_KEYS;
    while (low < high) {
        size_t middle = (low + high) / 2;
        if (tk_case_keys[middle] < cp)
            low = middle + 1;
        else
            high = middle;
    }
    if (low == TK_CASE_KEYS || tk_case_keys[low] != cp) return Py_BuildValue("(k)", cp);
    uint32_t first = tk_case_offsets[low], end = tk_case_offsets[low + 1];
    PyObject *variants = PyTuple_New((Py_ssize_t)(end - first));
    if (!variants) return NULL;
    for (uint32_t i = first; i < end; i++) {
        PyObject *value = PyLong_FromUnsignedLong(tk_case_members[i]);
        if (!value) {
            Py_DECREF(variants);
            return NULL;
        }
        PyTuple_SET_ITEM(variants, (Py_ssize_t)(i - first), value);
    }
    return variants;
}

/* ascii_run_end(data, pos, run, step) -> the end of the run (ascii_runs.h) from pos in the bytes `data`:
 * run 0-5 = letters, lower, upper, digits, spaces, punct; step 0-2 = 16 bytes (SSE2 where compiled), 8, 1.
 * For the tests, which hold every step to the others on the same bytes. */
static PyObject *ascii_run_end(PyObject *module, PyObject *args) {
    Py_buffer data;
    Py_ssize_t pos;
    int run, step;
    if (!PyArg_ParseTuple(args, "y*nii", &data, &pos, &run, &step)) return NULL;
    if (pos < 0 || pos > data.len || run < TK_RUN_LETTERS || run > TK_RUN_PUNCT || step < TK_STEP_SSE2 ||
        step > TK_STEP_BYTES) {
        PyBuffer_Release(&data);
        return PyErr_Format(PyExc_ValueError, "ascii_run_end: pos in [0, len], run in 0..5, step in 0..2");
    }
    size_t end = tk_ascii_run_end_by((const uint8_t *)data.buf, (size_t)data.len, (size_t)pos, (tk_ascii_run)run,
                                     (tk_ascii_step)step);
    PyBuffer_Release(&data);
    return PyLong_FromSize_t(end);
}

static PyMethodDef split_functions[] = {
    {"ascii_run_end", ascii_run_end, METH_VARARGS, "ascii_run_end(data, pos, run, step) -> end (ascii_runs.h; tests)"},
    {"unicode_property", unicode_property, METH_O, "unicode_property(cp) -> the property byte (unicode_props.h)"},
    {"case_variants", case_variants, METH_O, "case_variants(cp) -> sorted code points (?i:cp) matches in regex"},
    {NULL, NULL, 0, NULL},
};

int tk_split_types_add(PyObject *module) {
    if (PyModule_AddFunctions(module, split_functions) < 0) return -1;
    if (PyType_Ready(&SplitProgramType) < 0 || PyType_Ready(&PieceSplitterType) < 0) return -1;
    Py_INCREF(&SplitProgramType);
    if (PyModule_AddObject(module, "SplitProgram", (PyObject *)&SplitProgramType) < 0) {
        Py_DECREF(&SplitProgramType);
        return -1;
    }
    Py_INCREF(&PieceSplitterType);
    if (PyModule_AddObject(module, "PieceSplitter", (PyObject *)&PieceSplitterType) < 0) {
        Py_DECREF(&PieceSplitterType);
        return -1;
    }
    PyObject *names = PyTuple_New((Py_ssize_t)N_BUILTIN_PATTERNS);
    if (!names) return -1;
    for (size_t k = 0; k < N_BUILTIN_PATTERNS; k++) {
        PyObject *name = PyUnicode_FromString(builtin_patterns[k].name);
        if (!name) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)k, name);
    }
    if (PyModule_AddObject(module, "BUILTIN_SCANNERS", names) < 0) {
        Py_DECREF(names);
        return -1;
    }
    if (PyModule_AddIntConstant(module, "ASCII_RUNS_SSE2", TK_ASCII_RUNS_SSE2) < 0 ||
        PyModule_AddStringConstant(module, "SPLIT_OPCODES", TK_OPCODE_TABLE) < 0 ||
        PyModule_AddStringConstant(module, "SPLIT_ASSERTIONS", TK_ASSERTION_TABLE) < 0 ||
        PyModule_AddStringConstant(module, "UNICODE_PROPS_LAYOUT", TK_PROPS_LAYOUT) < 0 ||
        PyModule_AddStringConstant(module, "ASCII_MULTI_CHARACTER_FOLDS", TK_ASCII_MULTI_CHARACTER_FOLDS) < 0 ||
        PyModule_AddIntConstant(module, "SPLIT_MAX_STAGES", TK_MAX_STAGES) < 0)
        return -1;
    return 0;
}
