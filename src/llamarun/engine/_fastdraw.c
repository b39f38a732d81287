/* The whole-vocabulary draw of llamarun.engine.fastdist in C: one token from softmax(logits * scale).
 *
 * Same steps as fastdist.draw_rows: the weights e^((x - max) * scale) in float32, summed block by
 * block (256 tokens), running sums in float64; the draw finds its block by the running sums, then
 * its token inside the block.  Right after a decode, numpy's calls and views cost several times the
 * arithmetic (the weights have pushed them out of the caches); this does the draw in one call on
 * llama.cpp's logits buffer, in place, and keeps the GIL (it takes tens of microseconds).
 *
 * Optional: when it is not built, fastdist draws with numpy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* No fused multiply-adds: the weights must not depend on which instruction set runs the code. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("O3", "fp-contract=off")
#endif
/* Wider vectors where the CPU has them (GCC 11 names these levels; ifunc needs glibc). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) && defined(__GLIBC__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

#define BLOCK 256
#define STACK_BLOCKS 4096
#define MAX_TOKENS (1 << 24)

/* e^a for a <= 0 (0 below -87, and for NaN): e^r * 2^k with |r| <= ln2/2 (ln2 in two parts), degree-7 Taylor. */
static inline float exp_neg(float a) {
    float c = a >= -87.0f ? (a <= 0.0f ? a : 0.0f) : -87.0f;
    float k = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = c - k * 0.693145751953125f;
    r = r - k * 1.428606765330187e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { float f; int32_t i; } u = { p };
    u.i = (int32_t)((uint32_t)u.i + ((uint32_t)(int32_t)k << 23));
    return a >= -87.0f ? u.f : 0.0f;
}

/* The weight of logit x: e^((x - m) * scale) for the largest logit m. */
static inline float weight(float x, float m, float scale) { return exp_neg((x - m) * scale); }

/* The largest value (NaN is never larger; -INFINITY when all are NaN or -inf). */
CLONES static float max_of(const float *x, Py_ssize_t n) {
    float m[16];
    Py_ssize_t i = 0;
    for (int j = 0; j < 16; j++) m[j] = -INFINITY;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    float r = m[0];
    for (int j = 1; j < 16; j++) r = m[j] > r ? m[j] : r;
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

/* The sum of the weights of x[0..n), in 16 lanes (the same order on every instruction set). */
CLONES static float weight_sum(const float *x, Py_ssize_t n, float m, float scale) {
    float s[16] = {0};
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) s[j] += weight(x[i + j], m, scale);
    float r = 0.0f;
    for (int j = 0; j < 16; j++) r += s[j];
    for (; i < n; i++) r += weight(x[i], m, scale);
    return r;
}

/* The token drawn, or -1 when there is no finite largest logit (NaN, infinities). */
static Py_ssize_t draw_row(const float *x, Py_ssize_t n, float scale, double u, double *outer) {
    float m = max_of(x, n);
    if (!(m > -INFINITY && m < INFINITY))
        return -1;
    Py_ssize_t nb = (n + BLOCK - 1) / BLOCK, b = 0, i;
    double run = 0.0, target, rest, acc = 0.0;
    for (Py_ssize_t k = 0; k < nb; k++) {
        Py_ssize_t lo = k * BLOCK;
        run += weight_sum(x + lo, lo + BLOCK < n ? BLOCK : n - lo, m, scale);
        outer[k] = run;
    }
    target = u * run;
    while (b < nb - 1 && outer[b] <= target) b++;  /* the first block whose running sum passes the target */
    rest = target - (b ? outer[b - 1] : 0.0);
    Py_ssize_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
    for (i = lo; i < hi - 1; i++) {
        acc += weight(x[i], m, scale);
        if (acc > rest) break;
    }
    while (i > 0 && weight(x[i], m, scale) == 0.0f) i--;  /* never a token of zero weight */
    return i;
}

PyDoc_STRVAR(draw_doc,
"draw(address, n, scale, u) -> int\n\n"
"The token at fraction u of softmax(x * scale) over the n float32 logits at address.\n"
"ValueError when the logits have no finite largest value.");

static PyObject *draw(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "draw(address, n, scale, u) takes 4 arguments");
        return NULL;
    }
    void *address = PyLong_AsVoidPtr(args[0]);
    if (address == NULL && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyLong_AsSsize_t(args[1]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    double scale = PyFloat_AsDouble(args[2]);
    if (scale == -1.0 && PyErr_Occurred())
        return NULL;
    double u = PyFloat_AsDouble(args[3]);
    if (u == -1.0 && PyErr_Occurred())
        return NULL;
    if (address == NULL || n < 1 || n > MAX_TOKENS || !(scale > 0.0) || !(u >= 0.0 && u < 1.0)) {
        PyErr_SetString(PyExc_ValueError, "draw needs a logits address, 1 <= n <= 2**24, scale > 0 and 0 <= u < 1");
        return NULL;
    }
    double stack[STACK_BLOCKS], *outer = stack;
    Py_ssize_t nb = (n + BLOCK - 1) / BLOCK;
    if (nb > STACK_BLOCKS && (outer = malloc(sizeof(double) * (size_t)nb)) == NULL)
        return PyErr_NoMemory();
    float fscale = scale > 1e30 ? 1e30f : (float)scale;
    Py_ssize_t token = draw_row((const float *)address, n, fscale, u, outer);
    if (outer != stack)
        free(outer);
    if (token < 0) {
        PyErr_SetString(PyExc_ValueError, "the logits have no finite largest value (the model produced NaN or infinity)");
        return NULL;
    }
    return PyLong_FromSsize_t(token);
}

static PyMethodDef methods[] = {
    {"draw", (PyCFunction)(void (*)(void))draw, METH_FASTCALL, draw_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},  /* a pure function: safe without the GIL */
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastdraw", "The whole-vocabulary draw in C (see fastdist).", 0, methods,
    slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastdraw(void) { return PyModuleDef_Init(&module); }
