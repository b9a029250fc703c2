/* fixture.c — the fixture reader (tests only). */
#include "tests/fixture.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void need(FILE *f, void *p, size_t n, const char *path) {
    if (fread(p, 1, n, f) != n) cr_assert_fail("%s: truncated fixture", path);
}

tg_fixture *tg_fixture_load(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open fixture %s (run the tests from the repository root)", path);
    char magic[8];
    uint32_t n;
    need(f, magic, 8, path);
    cr_assert(memcmp(magic, "TGFIX001", 8) == 0, "%s: not a TGFIX001 fixture", path);
    need(f, &n, 4, path);
    cr_assert(n > 0 && n < 10000, "%s: %u records", path, n);
    tg_fixture *fx = calloc(1, sizeof *fx);
    fx->n = (int)n;
    fx->names = calloc(n, sizeof *fx->names);
    fx->tensors = calloc(n, sizeof *fx->tensors);
    fx->arena = tg_arena_new();
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len, dtype, ndim;
        need(f, &len, 4, path);
        cr_assert(len > 0 && len < 256, "%s: record %u name length %u", path, i, len);
        fx->names[i] = calloc(len + 1, 1);
        need(f, fx->names[i], len, path);
        need(f, &dtype, 4, path);
        need(f, &ndim, 4, path);
        cr_assert(dtype <= 1 && ndim <= TG_MAX_DIMS, "%s: record %s dtype %u ndim %u", path, fx->names[i], dtype, ndim);
        tg_shape s = {.ndim = (int)ndim};
        for (uint32_t k = 0; k < ndim; k++) {
            uint64_t d;
            need(f, &d, 8, path);
            s.d[k] = (int64_t)d;
        }
        tg_tensor *t = tg_tensor_new(fx->arena, dtype ? TG_F64 : TG_F32, s);
        need(f, t->data, (size_t)t->numel * tg_dtype_size(t->dtype), path);
        fx->tensors[i] = *t;
    }
    fclose(f);
    return fx;
}

const tg_tensor *tg_fixture_get(const tg_fixture *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0) return &f->tensors[i];
    cr_assert_fail("fixture has no record %s", name);
    return NULL;
}

void tg_fixture_free(tg_fixture *f) {
    for (int i = 0; i < f->n; i++) free(f->names[i]);
    free(f->names), free(f->tensors);
    tg_arena_free(f->arena);
    free(f);
}

double tg_rel_max_err(const tg_tensor *a, const tg_tensor *b) {
    cr_assert_eq(a->numel, b->numel);
    double num = 0, den = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        num = fmax(num, fabs(tg_tensor_get(a, i) - tg_tensor_get(b, i)));
        den = fmax(den, fabs(tg_tensor_get(b, i)));
    }
    return den > 0 ? num / den : num;
}
