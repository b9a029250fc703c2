/*
 * test_conv_layers.c — nn's Conv2d and ConvTranspose2d: PyTorch's names,
 * shapes and default initialisation, and a PyTorch state_dict loaded into
 * them giving PyTorch's output and gradients.
 *
 * tests/fixtures/conv_layers.safetensors (scripts/layer_fixtures.py, offline)
 * holds the state_dict of enc.0 = Conv2d(3, 4, (3, 2), stride (2, 1),
 * padding (1, 0), dilation (1, 2)), dec.0 = ConvTranspose2d(4, 2, 4, stride 2,
 * padding 1, output_padding 1) and proj = Conv2d(2, 3, 1, bias=False), an
 * input, the output proj(relu(dec.0(relu(enc.0(x))))), an upstream gradient
 * and PyTorch's gradients of sum(output * up), all float64.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "nn/checkpoint.h"
#include "nn/nn.h"
#include "tensor/threads.h"

#define FIXTURE "tests/fixtures/conv_layers.safetensors"

typedef struct {
    tg_conv enc, dec, proj;
} net;

static net net_new(tg_params *ps, tg_rng *r) {
    net n;
    n.enc = tg_conv2d_new(ps, "enc.0", 3, 4, 3, 2,
                          (tg_conv_args){.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}, true, r);
    n.dec = tg_conv_transpose2d_new(ps, "dec.0", 4, 2, 4, 4,
                                    (tg_conv_args){.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}},
                                    true, r);
    n.proj = tg_conv2d_new(ps, "proj", 2, 3, 1, 1, (tg_conv_args){0}, false, r);
    return n;
}

static tg_var *net_forward(tg_tape *t, const net *n, tg_var *x) {
    tg_var *h = tg_relu(t, tg_conv_forward(t, &n->enc, x));
    return tg_conv_forward(t, &n->proj, tg_relu(t, tg_conv_forward(t, &n->dec, h)));
}

/* |got - want| <= 1e-12 max(|want|, 1e-3 max|want|) elementwise. */
static void expect_close(const char *what, const tg_tensor *got, const tg_tensor *want) {
    cr_assert(tg_shape_eq(got->shape, want->shape), "%s: shapes differ", what);
    double scale = 0;
    for (int64_t i = 0; i < want->numel; i++) scale = fmax(scale, fabs(tg_tensor_get(want, i)));
    for (int64_t i = 0; i < want->numel; i++) {
        double g = tg_tensor_get(got, i), w = tg_tensor_get(want, i);
        cr_assert(fabs(g - w) <= 1e-12 * fmax(fabs(w), 1e-3 * scale), "%s element %lld: %.17g, PyTorch %.17g", what,
                  (long long)i, g, w);
    }
}

static const tg_tensor *fixture_tensor(const tg_safetensors *st, const char *name) {
    const tg_st_tensor *e = tg_safetensors_find(st, name);
    cr_assert(e, FIXTURE ": no tensor %s (regenerate with /usr/bin/python3 scripts/layer_fixtures.py)", name);
    return &e->tensor;
}

Test(conv_layers, names_shapes_and_default_init_are_pytorchs) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(1);
    net n = net_new(ps, &r);
    cr_expect_eq(ps->count, 5);
    cr_expect(tg_shape_eq(n.enc.weight->val.shape, TG_SHAPE(4, 3, 3, 2)));
    cr_expect(tg_shape_eq(n.dec.weight->val.shape, TG_SHAPE(4, 2, 4, 4)));   /* (in, out, kh, kw) */
    cr_expect(tg_shape_eq(n.proj.weight->val.shape, TG_SHAPE(3, 2, 1, 1)));
    cr_expect_null(n.proj.bias);
    cr_expect_null(tg_params_find(ps, "proj.bias"));
    /* bounds 1/sqrt(fan_in), fan_in = weight.size(1) kh kw: 6 for enc.0, 32 for dec.0 */
    struct {
        tg_var *v;
        double bound;
    } want[] = {{n.enc.weight, 1 / sqrt(18.0)}, {n.enc.bias, 1 / sqrt(18.0)}, {n.dec.weight, 1 / sqrt(32.0)},
                {n.dec.bias, 1 / sqrt(32.0)}, {n.proj.weight, 1 / sqrt(2.0)}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        double most = 0;
        for (int64_t i = 0; i < want[k].v->val.numel; i++) most = fmax(most, fabs(tg_tensor_get(&want[k].v->val, i)));
        cr_expect(most < want[k].bound && most > want[k].bound / 4, "%s: largest |w| %g, bound %g", want[k].v->name,
                  most, want[k].bound);
    }
    tg_params_free(ps);
}

Test(conv_layers, a_pytorch_state_dict_loads_and_gives_pytorchs_output_and_gradients) {
    tg_safetensors st;
    tg_err err;
    cr_assert_eq(tg_safetensors_read(FIXTURE, &st, &err), 0, "%s", err.msg);
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(1);
    net n = net_new(ps, &r);
    cr_assert_eq(tg_params_load_from(ps, &st, FIXTURE, NULL, &err), 0, "%s", err.msg);
    for (int k = 0; k < ps->count; k++)   /* every parameter of ours is in PyTorch's state_dict, same shape */
        cr_expect(tg_shape_eq(ps->vars[k]->val.shape, fixture_tensor(&st, ps->vars[k]->name)->shape), "%s",
                  ps->vars[k]->name);
    int keys = 0;   /* and every key of PyTorch's state_dict is one of ours: a strict load_state_dict of our file works */
    for (int k = 0; k < st.n; k++) {
        const char *name = st.tensors[k].name;
        if (!strcmp(name, "input") || !strcmp(name, "up") || !strcmp(name, "output") || !strncmp(name, "grad.", 5))
            continue;
        cr_expect(tg_params_find(ps, name), "PyTorch's %s has no parameter here", name);
        keys++;
    }
    cr_expect_eq(keys, ps->count);

    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_copy(tg_tape_arena(t), fixture_tensor(&st, "input")), true);
    tg_var *y = net_forward(t, &n, x);
    expect_close("output", &y->val, fixture_tensor(&st, "output"));
    tg_backward_seed(t, y, fixture_tensor(&st, "up"));
    expect_close("grad.input", &x->grad, fixture_tensor(&st, "grad.input"));
    for (int k = 0; k < ps->count; k++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", ps->vars[k]->name);
        expect_close(name, &ps->vars[k]->grad, fixture_tensor(&st, name));
    }
    tg_tape_free(t);
    tg_params_free(ps);
    tg_safetensors_free(&st);
}

/* tg_conv_relu is relu(tg_conv_forward) in one op: the same bits, values and
 * every gradient, for conv2d and conv_transpose2d, on the conv VAE's shapes
 * (the kernels' fastest paths) and on odd ones, float32 and float64, at 1
 * and 2 threads; and a second use of the input adds to what the op set. */
static void fused_relu_case(tg_dtype dt, bool transposed, int64_t cin, int64_t cout, int64_t h, tg_conv_args a, int threads) {
    tg_threads_set(threads);
    tg_rng r = tg_rng_seed(11);
    tg_params *ps[2];
    tg_conv c[2];
    for (int k = 0; k < 2; k++) {
        tg_rng rk = r;
        ps[k] = tg_params_new(dt);
        c[k] = transposed ? tg_conv_transpose2d_new(ps[k], "c", cin, cout, 4, 3, a, true, &rk)
                          : tg_conv2d_new(ps[k], "c", cin, cout, 4, 3, a, true, &rk);
    }
    tg_tape *t = tg_tape_new();
    tg_tensor *xv = tg_tensor_uniform(tg_tape_arena(t), dt, TG_SHAPE(5, cin, h, h + 1), -1, 1, &r);
    tg_var *x[2], *y[2];
    for (int k = 0; k < 2; k++) {
        x[k] = tg_leaf(t, xv, true);
        y[k] = k ? tg_conv_relu(t, &c[k], x[k]) : tg_relu(t, tg_conv_forward(t, &c[k], x[k]));
    }
    cr_assert(tg_shape_eq(y[0]->val.shape, y[1]->val.shape));
    cr_expect_eq(memcmp(y[0]->val.data, y[1]->val.data, (size_t)y[0]->val.numel * tg_dtype_size(dt)), 0, "values");
    tg_tensor *up = tg_tensor_uniform(tg_tape_arena(t), dt, y[0]->val.shape, -1, 1, &r);
    tg_var *l = tg_add(t, tg_sum(t, tg_mul(t, y[0], tg_leaf(t, up, false))), tg_sum(t, tg_mul(t, y[1], tg_leaf(t, up, false))));
    l = tg_add(t, l, tg_sum(t, tg_add(t, tg_sum(t, x[0]), tg_sum(t, x[1]))));   /* x used again: its gradient adds */
    tg_backward(t, l);
    size_t bytes = (size_t)xv->numel * tg_dtype_size(dt);
    cr_expect_eq(memcmp(x[0]->grad.data, x[1]->grad.data, bytes), 0, "dx");
    cr_expect_eq(memcmp(ps[0]->grad, ps[1]->grad, (size_t)ps[0]->n * tg_dtype_size(dt)), 0, "dw, db");
    int64_t zeros = 0;
    for (int64_t i = 0; i < y[1]->val.numel; i++) zeros += tg_tensor_get(&y[1]->val, i) == 0;
    cr_expect(zeros > 0 && zeros < y[1]->val.numel, "the ReLU clips some outputs (%lld of %lld)", (long long)zeros,
              (long long)y[1]->val.numel);
    tg_tape_free(t);
    tg_params_free(ps[0]), tg_params_free(ps[1]);
}

Test(conv_layers, conv_relu_is_relu_of_conv_bit_for_bit) {
    tg_conv_args s2 = {.stride = {2, 2}, .padding = {1, 1}}, odd = {.stride = {1, 2}, .padding = {2, 0}, .dilation = {1, 2}};
    for (int th = 1; th <= 2; th++) {
        fused_relu_case(TG_F32, false, 32, 64, 14, s2, th);   /* the conv VAE's middle layers */
        fused_relu_case(TG_F32, true, 64, 32, 7, s2, th);
        fused_relu_case(TG_F32, false, 1, 32, 28, s2, th);
        fused_relu_case(TG_F64, false, 3, 5, 9, odd, th);
        fused_relu_case(TG_F64, true, 3, 5, 6, s2, th);
        fused_relu_case(TG_F32, true, 32, 1, 14, s2, th);
    }
}
