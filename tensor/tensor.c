/* tensor.c — errors, shapes, arenas, random numbers, creation, printing. */
#include "tensor/tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- errors */

void tg_die(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tapegrad: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (at %s:%d)\n", file, line);
    va_end(ap);
    abort();
}

void tg_err_set(tg_err *e, const char *fmt, ...) {
    if (!e) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

void tg_err_prefix(tg_err *e, const char *prefix) {
    if (!e) return;
    char tmp[sizeof e->msg];
    if (snprintf(tmp, sizeof tmp, "%s: %s", prefix, e->msg) < 0) return;
    memcpy(e->msg, tmp, sizeof tmp);
}

/* ---------------------------------------------------------------- shapes */

char *tg_shape_str(tg_shape s, char *buf) {
    int n = sprintf(buf, "(");
    for (int i = 0; i < s.ndim; i++)
        n += sprintf(buf + n, i ? ", %lld" : "%lld", (long long)s.d[i]);
    sprintf(buf + n, s.ndim == 1 ? ",)" : ")");
    return buf;
}

int64_t tg_shape_numel(tg_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

bool tg_shape_eq(tg_shape a, tg_shape b) {
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; i++)
        if (a.d[i] != b.d[i]) return false;
    return true;
}

size_t tg_dtype_size(tg_dtype dt) { return dt == TG_F32 ? 4 : 8; }
const char *tg_dtype_name(tg_dtype dt) { return dt == TG_F32 ? "float32" : dt == TG_F64 ? "float64" : "int64"; }

/* ---------------------------------------------------------------- arena */

typedef struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(64) unsigned char mem[];
} chunk;

struct tg_arena {
    chunk *head, *cur;   /* chunks in allocation order; cur is being filled */
    size_t used;         /* bytes handed out since the last reset */
};

enum { ARENA_MIN_CHUNK = 1 << 20, ARENA_ALIGN = 64 };

tg_arena *tg_arena_new(void) {
    tg_arena *a = calloc(1, sizeof *a);
    TG_CHECK(a, "tg_arena_new: out of memory");
    return a;
}

static chunk *chunk_try(size_t size) {
    if (size > SIZE_MAX - sizeof(chunk) - 2 * ARENA_ALIGN) return NULL;
    chunk *c = aligned_alloc(ARENA_ALIGN, (sizeof(chunk) + size + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (c) c->next = NULL, c->size = size, c->used = 0;
    return c;
}

static chunk *chunk_new(size_t size) {
    chunk *c = chunk_try(size);
    TG_CHECK(c, "tg_arena_alloc: out of memory allocating a %zu-byte chunk", size);
    return c;
}

int tg_arena_reserve(tg_arena *a, size_t bytes) {
    TG_CHECK(a->used == 0, "tg_arena_reserve: the arena has %zu bytes in use (reset it first)", a->used);
    for (chunk *c = a->head; c; c = c->next)
        if (c->size >= bytes) return 0;
    chunk *c = chunk_try(bytes);
    if (!c) return -1;
    c->next = a->head;   /* first, so that a step fills it before any other */
    a->head = a->cur = c;
    return 0;
}

void *tg_arena_alloc(tg_arena *a, size_t bytes) {
    bytes = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (bytes == 0) bytes = ARENA_ALIGN;
    /* Walk forward through chunks kept from before the last reset. */
    while (a->cur && a->cur->used + bytes > a->cur->size) {
        if (!a->cur->next) break;
        a->cur = a->cur->next;
    }
    if (!a->cur || a->cur->used + bytes > a->cur->size) {
        size_t size = bytes > ARENA_MIN_CHUNK ? bytes : ARENA_MIN_CHUNK;
        chunk *c = chunk_new(size);
        if (a->cur) a->cur->next = c; else a->head = c;
        a->cur = c;
    }
    void *p = a->cur->mem + a->cur->used;
    a->cur->used += bytes;
    a->used += bytes;
    return p;
}

void *tg_arena_calloc(tg_arena *a, size_t bytes) {
    void *p = tg_arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void tg_arena_reset(tg_arena *a) {
    for (chunk *c = a->head; c; c = c->next) c->used = 0;
    a->cur = a->head;
    a->used = 0;
}

void tg_arena_free(tg_arena *a) {
    if (!a) return;
    for (chunk *c = a->head, *n; c; c = n) n = c->next, free(c);
    free(a);
}

size_t tg_arena_used(const tg_arena *a) { return a->used; }

size_t tg_arena_capacity(const tg_arena *a) {
    size_t n = 0;
    for (chunk *c = a->head; c; c = c->next) n += c->size;
    return n;
}

/* ---------------------------------------------------------------- random */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

tg_rng tg_rng_seed(uint64_t seed) {
    tg_rng r = {0};
    for (int i = 0; i < 4; i++) r.s[i] = splitmix64(&seed);
    return r;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tg_rng_u64(tg_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t, s[3] = rotl(s[3], 45);
    return out;
}

double tg_rng_uniform(tg_rng *r) { return (double)(tg_rng_u64(r) >> 11) * 0x1.0p-53; }

double tg_rng_normal(tg_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - tg_rng_uniform(r), u2 = 1.0 - tg_rng_uniform(r);  /* (0, 1] */
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    r->spare = rad * sin(th), r->has_spare = 1;
    return rad * cos(th);
}

uint64_t tg_rng_below(tg_rng *r, uint64_t n) {
    TG_CHECK(n > 0, "tg_rng_below: n must be positive (the range [0, n) is empty)");
    uint64_t lim = -n % n;  /* reject the first 2^64 mod n values: no modulo bias */
    for (;;) {
        uint64_t x = tg_rng_u64(r);
        if (x >= lim) return x % n;
    }
}

void tg_rng_shuffle(tg_rng *r, int64_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)tg_rng_below(r, (uint64_t)i + 1), t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
}

/* ---------------------------------------------------------------- creation */

tg_tensor tg_tensor_wrap(tg_dtype dt, tg_shape s, void *data) {
    TG_CHECK(s.ndim >= 0 && s.ndim <= TG_MAX_DIMS, "tensor: %d dimensions (at most %d)", s.ndim, TG_MAX_DIMS);
    for (int i = 0; i < s.ndim; i++) TG_CHECK(s.d[i] >= 0, "tensor: negative size %lld", (long long)s.d[i]);
    return (tg_tensor){.dtype = dt, .shape = s, .numel = tg_shape_numel(s), .data = data};
}

tg_tensor *tg_tensor_new(tg_arena *a, tg_dtype dt, tg_shape s) {
    tg_tensor *x = tg_arena_alloc(a, sizeof *x);
    *x = tg_tensor_wrap(dt, s, NULL);
    x->data = tg_arena_alloc(a, (size_t)x->numel * tg_dtype_size(dt));
    return x;
}

tg_tensor *tg_tensor_zeros(tg_arena *a, tg_dtype dt, tg_shape s) {
    tg_tensor *x = tg_tensor_new(a, dt, s);
    memset(x->data, 0, (size_t)x->numel * tg_dtype_size(dt));
    return x;
}

tg_tensor *tg_tensor_full(tg_arena *a, tg_dtype dt, tg_shape s, double v) {
    tg_tensor *x = tg_tensor_new(a, dt, s);
    tg_tensor_fill(x, v);
    return x;
}

tg_tensor *tg_tensor_ones(tg_arena *a, tg_dtype dt, tg_shape s) { return tg_tensor_full(a, dt, s, 1.0); }

tg_tensor *tg_tensor_from(tg_arena *a, tg_dtype dt, tg_shape s, const void *buf, tg_dtype buf_dt) {
    tg_tensor *x = tg_tensor_new(a, dt, s);
    tg_tensor src = tg_tensor_wrap(buf_dt, s, (void *)buf);
    if (dt == buf_dt) memcpy(x->data, buf, (size_t)x->numel * tg_dtype_size(dt));   /* int64 stays exact */
    else for (int64_t i = 0; i < x->numel; i++) tg_tensor_set(x, i, tg_tensor_get(&src, i));
    return x;
}

tg_tensor *tg_tensor_uniform(tg_arena *a, tg_dtype dt, tg_shape s, double lo, double hi, tg_rng *r) {
    tg_tensor *x = tg_tensor_new(a, dt, s);
    tg_tensor_fill_uniform(x, lo, hi, r);
    return x;
}

tg_tensor *tg_tensor_normal(tg_arena *a, tg_dtype dt, tg_shape s, tg_rng *r) {
    tg_tensor *x = tg_tensor_new(a, dt, s);
    tg_tensor_fill_normal(x, r);
    return x;
}

tg_tensor *tg_tensor_copy(tg_arena *a, const tg_tensor *x) {
    tg_tensor *y = tg_tensor_new(a, x->dtype, x->shape);
    memcpy(y->data, x->data, (size_t)x->numel * tg_dtype_size(x->dtype));
    return y;
}

tg_tensor *tg_tensor_cast(tg_arena *a, const tg_tensor *x, tg_dtype dt) {
    return tg_tensor_from(a, dt, x->shape, x->data, x->dtype);
}

tg_tensor *tg_tensor_reshape(tg_arena *a, const tg_tensor *x, tg_shape s) {
    char b1[96], b2[96];
    TG_CHECK(tg_shape_numel(s) == x->numel, "tg_tensor_reshape: cannot view %s as %s",
             tg_shape_str(x->shape, b1), tg_shape_str(s, b2));
    tg_tensor *y = tg_arena_alloc(a, sizeof *y);
    *y = tg_tensor_wrap(x->dtype, s, x->data);
    return y;
}

void tg_tensor_fill(tg_tensor *x, double v) {
    if (x->dtype == TG_I64) {
        for (int64_t i = 0; i < x->numel; i++) TG_I64P(x)[i] = (int64_t)llround(v);
        return;
    }
    TG_DISPATCH(x->dtype, {
        T *p = x->data;
        for (int64_t i = 0; i < x->numel; i++) p[i] = (T)v;
    });
}

/* The largest value of dtype dt below hi. */
static double below(tg_dtype dt, double hi) {
    if (dt == TG_F64) return nextafter(hi, -INFINITY);
    float f = (float)hi;
    while ((double)f >= hi) f = nextafterf(f, -INFINITY);
    return f;
}

void tg_tensor_fill_uniform(tg_tensor *x, double lo, double hi, tg_rng *r) {
    /* lo + (hi - lo) u can round up to hi, in double or when stored as float;
     * such a draw becomes the largest value below hi, keeping [lo, hi). */
    for (int64_t i = 0; i < x->numel; i++) {
        tg_tensor_set(x, i, lo + (hi - lo) * tg_rng_uniform(r));
        if (tg_tensor_get(x, i) >= hi && hi > lo) tg_tensor_set(x, i, below(x->dtype, hi));
    }
}

void tg_tensor_fill_normal(tg_tensor *x, tg_rng *r) {
    for (int64_t i = 0; i < x->numel; i++) tg_tensor_set(x, i, tg_rng_normal(r));
}

double tg_tensor_get(const tg_tensor *x, int64_t i) {
    return x->dtype == TG_F32 ? (double)TG_F32P(x)[i] : x->dtype == TG_F64 ? TG_F64P(x)[i] : (double)TG_I64P(x)[i];
}

void tg_tensor_set(tg_tensor *x, int64_t i, double v) {
    if (x->dtype == TG_F32) TG_F32P(x)[i] = (float)v;
    else if (x->dtype == TG_F64) TG_F64P(x)[i] = v;
    else TG_I64P(x)[i] = (int64_t)llround(v);
}

/* ---------------------------------------------------------------- printing */

void tg_tensor_print(FILE *f, const tg_tensor *x, const char *name) {
    char b[96];
    fprintf(f, "%s %s %s\n", name ? name : "tensor", tg_shape_str(x->shape, b), tg_dtype_name(x->dtype));
    int64_t cols = x->shape.ndim ? x->shape.d[x->shape.ndim - 1] : 1;
    int64_t rows = cols ? x->numel / cols : 0;
    for (int64_t r = 0; r < rows; r++) {
        if (rows > 8 && r == 3) {
            fprintf(f, "  ...\n");
            r = rows - 4;
            continue;
        }
        fprintf(f, " ");
        for (int64_t c = 0; c < cols; c++) {
            if (cols > 6 && c == 3) {
                fprintf(f, " ...");
                c = cols - 4;
                continue;
            }
            if (x->dtype == TG_I64) fprintf(f, " %lld", (long long)TG_I64P(x)[r * cols + c]);
            else fprintf(f, " % .6g", tg_tensor_get(x, r * cols + c));
        }
        fprintf(f, "\n");
    }
}
