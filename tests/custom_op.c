/* custom_op.c — see custom_op.h. */
#include "tests/custom_op.h"

static void cube_mul_forward(tg_tape *t, tg_tensor *out, const tg_tensor *const *in, int n, void *ctx) {
    (void)t, (void)n, (void)ctx;
    for (int64_t i = 0; i < out->numel; i++) {
        double a = tg_tensor_get(in[0], i);
        tg_tensor_set(out, i, a * a * a * tg_tensor_get(in[1], i));
    }
}

static void cube_mul_backward(tg_tape *t, tg_tensor *const *din, const tg_tensor *dout, const tg_tensor *out,
                              const tg_tensor *const *in, int n, void *ctx) {
    (void)t, (void)out, (void)n, (void)ctx;
    for (int64_t i = 0; i < dout->numel; i++) {
        double a = tg_tensor_get(in[0], i), b = tg_tensor_get(in[1], i), g = tg_tensor_get(dout, i);
        if (din[0]) tg_tensor_set(din[0], i, tg_tensor_get(din[0], i) + g * 3 * a * a * b);
        if (din[1]) tg_tensor_set(din[1], i, tg_tensor_get(din[1], i) + g * a * a * a);
    }
}

const tg_function tg_test_cube_mul = {"cube_mul", cube_mul_forward, cube_mul_backward};
