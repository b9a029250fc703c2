/*
 * tensor.h — N-dimensional arrays, their memory and their kernels.
 *
 * This layer knows nothing about gradients. A tensor is a contiguous,
 * row-major block of float32 or float64 values, or of int64 values (labels
 * and indices), with a shape listed outermost-first, as in PyTorch: a batch
 * of 128 MNIST images is (128, 784), its labels (128) int64.
 *
 *     tg_arena *a = tg_arena_new();
 *     tg_rng rng = tg_rng_seed(42);
 *     tg_tensor *x = tg_tensor_normal(a, TG_F32, TG_SHAPE(2, 3), &rng);
 *     tg_tensor *y = tg_tensor_reshape(a, x, TG_SHAPE(3, 2)); // view
 *     tg_tensor_print(stdout, y, "y");
 *     tg_arena_reset(a);   // frees every tensor made in the arena at once
 *     tg_arena_free(a);
 *
 * Memory has two lifetimes. Long-lived tensors (parameters, optimizer state,
 * datasets) come from an arena that is never reset; per-step tensors
 * (activations, gradients of activations) come from an arena reset after
 * every step. An arena keeps its chunks across resets, so once a step has
 * run, repeating it allocates nothing.
 */
#ifndef TG_TENSOR_H
#define TG_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TG_MAX_DIMS 6

/* float32, float64, and int64 for class labels and indices. The float kernels
 * and the differentiable ops take float32 or float64; an int64 tensor goes
 * where an op says "indices" or "labels" (and never requires a gradient). */
typedef enum { TG_F32, TG_F64, TG_I64 } tg_dtype;

/* A shape: ndim sizes, outermost first. TG_SHAPE(128, 784) builds one. */
typedef struct {
    int ndim;
    int64_t d[TG_MAX_DIMS];
} tg_shape;

#define TG_NARGS_(a, b, c, d, e, f, n, ...) n
#define TG_NARGS(...) TG_NARGS_(__VA_ARGS__, 6, 5, 4, 3, 2, 1, 0)
#define TG_SHAPE(...) ((tg_shape){.ndim = TG_NARGS(__VA_ARGS__), .d = {__VA_ARGS__}})
#define TG_SCALAR_SHAPE ((tg_shape){.ndim = 0})

typedef struct {
    tg_dtype dtype;
    tg_shape shape;
    int64_t numel;  /* product of shape.d */
    void *data;     /* numel values, row-major; owned by the arena it came from */
} tg_tensor;

/* ------------------------------------------------------------------------ */
/* Errors. Programmer errors (wrong shapes, wrong dtypes, bad arguments) abort
 * with a message naming the call and file:line. Errors in data and files are
 * returned: a function that reads or writes them returns 0, or -1 with a
 * message in a caller-provided tg_err (which may be NULL). */

_Noreturn void tg_die(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define TG_CHECK(cond, ...) \
    do { if (!(cond)) tg_die(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* A recoverable error: a human-readable, NUL-terminated message, long
 * enough for two paths of PATH_MAX and the reason. */
typedef struct {
    char msg[9216];
} tg_err;

/* Sets e->msg from a printf format (truncating to fit); no-op if e is NULL. */
void tg_err_set(tg_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to e->msg (truncating to fit); no-op if e is NULL. */
void tg_err_prefix(tg_err *e, const char *prefix);

/* Writes "(128, 784)" into buf (at least 96 bytes) and returns buf. */
char *tg_shape_str(tg_shape s, char *buf);
int64_t tg_shape_numel(tg_shape s);
bool tg_shape_eq(tg_shape a, tg_shape b);
size_t tg_dtype_size(tg_dtype dt);
const char *tg_dtype_name(tg_dtype dt);

/* ------------------------------------------------------------------------ */
/* Arena: a bump allocator over a list of chunks. Allocations are 64-byte
 * aligned. Reset makes every chunk reusable without freeing it. */

typedef struct tg_arena tg_arena;

tg_arena *tg_arena_new(void);
void *tg_arena_alloc(tg_arena *a, size_t bytes);   /* uninitialised */
void *tg_arena_calloc(tg_arena *a, size_t bytes);  /* zeroed */
void tg_arena_reset(tg_arena *a);
void tg_arena_free(tg_arena *a);
size_t tg_arena_used(const tg_arena *a);      /* bytes handed out since reset */
size_t tg_arena_capacity(const tg_arena *a);  /* bytes held in chunks */
/* Makes a freshly reset arena hold one chunk of at least `bytes`, placed
 * first, so that the steps to come allocate nothing more. Returns 0, or -1
 * (the arena unchanged) if the memory cannot be had: the one allocation
 * failure of the library that is not fatal, for checking before a run. */
int tg_arena_reserve(tg_arena *a, size_t bytes);

/* ------------------------------------------------------------------------ */
/* Random numbers. Algorithm: xoshiro256** (Blackman & Vigna, 2018) seeded by
 * running splitmix64 from the seed, so a seed gives the same stream on every
 * machine. Uniforms take the top 24 (float) or 53 (double) bits. Normals use
 * the Box–Muller transform in double precision: u1, u2 uniform in (0, 1],
 * z0 = sqrt(-2 ln u1) cos(2 pi u2), z1 = sqrt(-2 ln u1) sin(2 pi u2), returned
 * in that order (z1 is cached for the next call). */

typedef struct {
    uint64_t s[4];
    double spare;     /* cached second normal */
    int has_spare;
} tg_rng;

tg_rng tg_rng_seed(uint64_t seed);
uint64_t tg_rng_u64(tg_rng *r);
double tg_rng_uniform(tg_rng *r);             /* [0, 1) with 53 bits */
double tg_rng_normal(tg_rng *r);              /* N(0, 1) */
uint64_t tg_rng_below(tg_rng *r, uint64_t n); /* uniform in [0, n), unbiased */
void tg_rng_shuffle(tg_rng *r, int64_t *idx, int64_t n); /* Fisher–Yates */

/* ------------------------------------------------------------------------ */
/* Creation. Every tensor comes from an arena. */

tg_tensor *tg_tensor_new(tg_arena *a, tg_dtype dt, tg_shape s);   /* uninitialised */
tg_tensor *tg_tensor_zeros(tg_arena *a, tg_dtype dt, tg_shape s);
tg_tensor *tg_tensor_ones(tg_arena *a, tg_dtype dt, tg_shape s);
tg_tensor *tg_tensor_full(tg_arena *a, tg_dtype dt, tg_shape s, double v);
/* Copies numel values from buf, which holds buf_dt values, converting to dt. */
tg_tensor *tg_tensor_from(tg_arena *a, tg_dtype dt, tg_shape s, const void *buf, tg_dtype buf_dt);
tg_tensor *tg_tensor_uniform(tg_arena *a, tg_dtype dt, tg_shape s, double lo, double hi, tg_rng *r);
tg_tensor *tg_tensor_normal(tg_arena *a, tg_dtype dt, tg_shape s, tg_rng *r);
tg_tensor *tg_tensor_copy(tg_arena *a, const tg_tensor *x);
tg_tensor *tg_tensor_cast(tg_arena *a, const tg_tensor *x, tg_dtype dt);
/* A view of x's data with another shape of the same numel. */
tg_tensor *tg_tensor_reshape(tg_arena *a, const tg_tensor *x, tg_shape s);
/* Wraps an existing buffer without copying (the caller keeps ownership). */
tg_tensor tg_tensor_wrap(tg_dtype dt, tg_shape s, void *data);

/* Fill with v; uniform in [lo, hi); N(0, 1). */
void tg_tensor_fill(tg_tensor *x, double v);
void tg_tensor_fill_uniform(tg_tensor *x, double lo, double hi, tg_rng *r);
void tg_tensor_fill_normal(tg_tensor *x, tg_rng *r);

/* Element access by flat index, in double, whatever the dtype (an int64
 * element is exact up to 2^53; set rounds to nearest for int64). */
double tg_tensor_get(const tg_tensor *x, int64_t i);
void tg_tensor_set(tg_tensor *x, int64_t i, double v);
#define TG_F32P(x) ((float *)(x)->data)
#define TG_F64P(x) ((double *)(x)->data)
#define TG_I64P(x) ((int64_t *)(x)->data)

/* Prints shape, dtype and values (abbreviated beyond 6 per row). */
void tg_tensor_print(FILE *f, const tg_tensor *x, const char *name);

/* ------------------------------------------------------------------------ */
/* Matrix product: C = alpha * op(A) @ op(B) + beta * C, row-major.
 * op(A) is (M, K): A is (M, K) with leading dimension lda, or (K, M) if transA.
 * op(B) is (K, N): B is (K, N) with leading dimension ldb, or (N, K) if transB.
 * C is (M, N) with leading dimension ldc. beta = 0 ignores C's contents. */

void tg_gemm_f32(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc);
void tg_gemm_f64(bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                 double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                 double beta, double *C, int64_t ldc);

/* Runs the same statements with T = float and with T = double, choosing by
 * dtype at run time. With <tgmath.h>, exp(x) etc. pick the right precision.
 * An int64 tensor reaching a float kernel aborts, naming the kernel's line. */
#define TG_DISPATCH(dt, ...)                                                   \
    do {                                                                       \
        if ((dt) == TG_F32) { typedef float T; __VA_ARGS__ }                   \
        else if ((dt) == TG_F64) { typedef double T; __VA_ARGS__ }             \
        else tg_die(__FILE__, __LINE__, "a float kernel was given an %s tensor", \
                    tg_dtype_name(dt));                                        \
    } while (0)

#endif
