/*
 * test_vq.c — the VQ-VAE's quantiser (tg_vq_quantize), composed from the
 * ops (matmul, argmin, embedding, detach): PyTorch's codes, values, losses
 * and straight-through gradients (tests/fixtures/vq.safetensors, from
 * scripts/layer_fixtures.py), and the straight-through rule on its own.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "io/safetensors.h"
#include "models/vq.h"

#define FIXTURE "tests/fixtures/vq.safetensors"

static const tg_tensor *fixture_tensor(const tg_safetensors *st, const char *name) {
    const tg_st_tensor *e = tg_safetensors_find(st, name);
    cr_assert(e, FIXTURE ": no tensor %s (regenerate with /usr/bin/python3 scripts/layer_fixtures.py)", name);
    return &e->tensor;
}

static void expect_close(const char *what, const tg_tensor *got, const tg_tensor *want) {
    cr_assert_eq(got->numel, want->numel, "%s: %lld elements, PyTorch %lld", what, (long long)got->numel,
                 (long long)want->numel);
    for (int64_t i = 0; i < want->numel; i++) {
        double g = tg_tensor_get(got, i), w = tg_tensor_get(want, i);
        cr_expect(fabs(g - w) <= 1e-12 * fmax(fabs(w), 1e-3), "%s element %lld: %.17g, PyTorch %.17g", what,
                  (long long)i, g, w);
    }
}

Test(vq, codes_values_losses_and_gradients_match_pytorch) {
    tg_safetensors st;
    tg_err err;
    cr_assert_eq(tg_safetensors_read(FIXTURE, &st, &err), 0, "%s", err.msg);
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_var *z_e = tg_leaf(t, tg_tensor_copy(a, fixture_tensor(&st, "z_e")), true);
    tg_var *book = tg_leaf(t, tg_tensor_copy(a, fixture_tensor(&st, "book")), true);
    tg_vq_out q = tg_vq_quantize(t, z_e, book);
    const tg_tensor *codes = fixture_tensor(&st, "codes");
    for (int64_t i = 0; i < codes->numel; i++)
        cr_expect_eq(TG_I64P(&q.codes->val)[i], (int64_t)tg_tensor_get(codes, i), "code %lld", (long long)i);
    expect_close("z_q", &q.z_q->val, fixture_tensor(&st, "z_q"));
    expect_close("codebook", &q.codebook->val, fixture_tensor(&st, "codebook"));
    expect_close("commitment", &q.commitment->val, fixture_tensor(&st, "commitment"));
    tg_var *up = tg_leaf(t, (tg_tensor *)fixture_tensor(&st, "up"), false);
    tg_var *loss = tg_add(t, tg_add(t, tg_sum(t, tg_mul(t, q.z_q, up)), q.codebook), tg_mul_scalar(t, q.commitment, 0.25));
    tg_backward(t, loss);
    expect_close("grad.z_e", &z_e->grad, fixture_tensor(&st, "grad.z_e"));
    expect_close("grad.book", &book->grad, fixture_tensor(&st, "grad.book"));
    tg_tape_free(t);
    tg_safetensors_free(&st);
}

Test(vq, straight_through_and_the_nearest_code) {
    /* Two codes on a line: 0.2 is nearest code 1 (at 0), 0.9 code 0 (at 1). */
    double zv[2] = {0.2, 0.9}, bv[2] = {1.0, 0.0};
    tg_tape *t = tg_tape_new();
    tg_arena *a = tg_tape_arena(t);
    tg_var *z = tg_leaf(t, tg_tensor_from(a, TG_F64, TG_SHAPE(2, 1), zv, TG_F64), true);
    tg_var *book = tg_leaf(t, tg_tensor_from(a, TG_F64, TG_SHAPE(2, 1), bv, TG_F64), true);
    tg_vq_out q = tg_vq_quantize(t, z, book);
    cr_expect_eq(TG_I64P(&q.codes->val)[0], 1);
    cr_expect_eq(TG_I64P(&q.codes->val)[1], 0);
    cr_expect_eq(TG_F64P(&q.z_q->val)[0], 0.0);
    cr_expect_eq(TG_F64P(&q.z_q->val)[1], 1.0);
    tg_backward(t, tg_sum(t, tg_mul_scalar(t, q.z_q, 3.0)));   /* dL/dz_q = 3 passes to z unchanged */
    cr_expect_eq(TG_F64P(&z->grad)[0], 3.0);
    cr_expect_eq(TG_F64P(&z->grad)[1], 3.0);
    cr_expect_null(book->grad.data, "z_q alone must not move the codebook");
    tg_tape_free(t);
}
