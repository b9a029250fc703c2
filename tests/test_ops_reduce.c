/*
 * test_ops_reduce.c — the reductions and the softmax family beyond the table
 * walks of test_ops.c and test_torch_ops.c: the compositions (var, std, the
 * nll and cross-entropy losses) against PyTorch (tests/fixtures/reduce.bin,
 * written by scripts/op_fixtures.py), more gradient checks, and the edges
 * PyTorch 1.13 pins down (ties, infinities, n = 1, ignored labels).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tensor/kernels.h"
#include "tests/child.h"
#include "tests/fixture.h"

#define S(...) TG_SHAPE(__VA_ARGS__)

/* A leaf of dtype dt holding v (shape s). */
static tg_var *leaf(tg_tape *t, tg_dtype dt, tg_shape s, const double *v, bool grad) {
    return tg_leaf(t, tg_tensor_from(tg_tape_arena(t), dt, s, v, TG_F64), grad);
}

/* int64 labels from doubles. */
static tg_var *labels_of(tg_tape *t, tg_shape s, const double *v) { return leaf(t, TG_I64, s, v, false); }

static void expect_values(const tg_tensor *got, const double *want, double tol, const char *what) {
    for (int64_t i = 0; i < got->numel; i++) {
        double g = tg_tensor_get(got, i), w = want[i];
        bool same = (isnan(w) && isnan(g)) || g == w || fabs(g - w) <= tol * fmax(1, fabs(w));
        cr_expect(same, "%s element %lld: %.17g, want %.17g", what, (long long)i, g, w);
    }
}

/* ================================================================ against PyTorch */

/* Case k of reduce.bin (args = [kind, a, b, c], see scripts/op_fixtures.py) on x. */
static tg_var *reduce_case(tg_tape *t, const double *a, tg_var *x, tg_var *labels) {
    switch ((int)a[0]) {
    case 0: return tg_var_axis(t, x, (int)a[1], a[2], a[3] != 0);
    case 1: return tg_std_axis(t, x, (int)a[1], a[2], a[3] != 0);
    case 2: return tg_loss_nll(t, x, labels, (tg_reduction)a[1]);
    default: return tg_loss_cross_entropy(t, x, labels, (tg_reduction)a[1]);
    }
}

/* |ours - torch| <= 1e-12 max(|torch|, 1e-3 max |torch|), as test_torch_ops.c. */
static void expect_torch(const tg_tensor *got, const tg_tensor *want, int k, const char *what) {
    cr_assert_eq(got->numel, want->numel, "case %d: %s has %lld elements, PyTorch %lld", k, what,
                 (long long)got->numel, (long long)want->numel);
    double scale = 0;
    for (int64_t i = 0; i < want->numel; i++) scale = fmax(scale, fabs(tg_tensor_get(want, i)));
    for (int64_t i = 0; i < want->numel; i++) {
        double g = tg_tensor_get(got, i), w = tg_tensor_get(want, i);
        cr_expect(fabs(g - w) <= 1e-12 * fmax(fabs(w), 1e-3 * scale) || g == w, "case %d: %s element %lld: %.17g, "
                  "PyTorch %.17g", k, what, (long long)i, g, w);
    }
}

Test(ops_reduce, var_std_nll_cross_entropy_match_pytorch) {
    tg_fixture *fx = tg_fixture_load("tests/fixtures/reduce.bin");
    int n = (int)tg_tensor_get(tg_fixture_get(fx, "count"), 0), kinds[4] = {0};
    for (int k = 0; k < n; k++) {
        char name[32];
        const tg_tensor *args, *x, *up, *out, *gx;
#define GET(var, suffix) (snprintf(name, sizeof name, "%d." suffix, k), var = tg_fixture_get(fx, name))
        GET(args, "args"), GET(x, "x"), GET(up, "up"), GET(out, "out"), GET(gx, "gx");
        const double *a = args->data;
        tg_tape *t = tg_tape_new();
        tg_var *xv = tg_leaf(t, tg_tensor_copy(tg_tape_arena(t), x), true), *lab = NULL;
        if (a[0] >= 2) {
            const tg_tensor *l;
            GET(l, "labels");
            lab = tg_leaf(t, tg_tensor_cast(tg_tape_arena(t), l, TG_I64), false);
        }
#undef GET
        tg_var *y = reduce_case(t, a, xv, lab);
        expect_torch(&y->val, out, k, "output");
        tg_backward_seed(t, y, up);
        expect_torch(tg_var_grad(t, xv), gx, k, "gradient");
        kinds[(int)a[0]]++;
        tg_tape_free(t);
    }
    for (int kind = 0; kind < 4; kind++) cr_expect_gt(kinds[kind], 0, "reduce.bin has no case of kind %d", kind);
    tg_fixture_free(fx);
}

/* ================================================================ gradient checks */

static tg_var *f_variant(tg_tape *t, tg_var **v, void *c) {
    static const double lab[4] = {2, 0, TG_IGNORE_INDEX, 4};
    switch (*(int *)c) {
    case 0: return tg_min(t, v[0]);
    case 1: return tg_max_axis(t, v[0], 0, true);
    case 2: return tg_min_axis(t, v[0], 2, true);
    case 3: return tg_logsumexp_axis(t, v[0], 0, false);
    case 4: return tg_logsumexp_axis(t, v[0], -1, false);
    case 5: return tg_softmax(t, v[0], 0);
    case 6: return tg_log_softmax(t, v[0], 1);
    case 7: return tg_var_axis(t, v[0], 1, 1, false);
    case 8: return tg_std_axis(t, v[0], -1, 0, true);
    case 9: return tg_var_axis(t, v[0], 0, 2, true);
    case 10: return tg_loss_cross_entropy(t, tg_reshape(t, v[0], S(4, 6)), labels_of(t, S(4), lab), TG_REDUCE_MEAN);
    case 11: return tg_loss_nll(t, tg_reshape(t, v[0], S(4, 6)), labels_of(t, S(4), lab), TG_REDUCE_SUM);
    case 12: return tg_loss_cross_entropy(t, tg_reshape(t, v[0], S(2, 3, 4)), labels_of(t, S(2, 4), (double[]){0, 1, 2,
                                          1, 0, -100, 2, 2}), TG_REDUCE_NONE);
    default: return tg_nll(t, tg_reshape(t, v[0], S(24)), labels_of(t, TG_SCALAR_SHAPE, (double[]){17}), -100);
    }
}

Test(ops_reduce, every_variant_is_gradient_checked) {
    tg_arena *a = tg_arena_new();
    for (int k = 0; k < 14; k++) {
        tg_rng r = tg_rng_seed(99);
        tg_tensor *x = tg_tensor_uniform(a, TG_F64, S(3, 2, 4), -2, 2, &r);   /* no ties: distinct draws */
        tg_gradcheck_result res = tg_gradcheck(f_variant, &x, 1, &k, 1e-6, 1e-7, 1e-6);
        cr_expect(res.ok && res.checked == 24, "variant %d: element %lld analytic %.10g numeric %.10g", k,
                  (long long)res.worst_index, res.analytic, res.numeric);
    }
    tg_arena_free(a);
}

/* ================================================================ edges */

/* Value of f on v (shape s) in dt, and the gradient of sum(f) into g. */
static void run(tg_var *(*f)(tg_tape *, tg_var *), tg_dtype dt, tg_shape s, const double *v, double *y, double *g) {
    tg_tape *t = tg_tape_new();
    tg_var *x = leaf(t, dt, s, v, true);
    tg_var *out = f(t, x);
    for (int64_t i = 0; i < out->val.numel; i++) y[i] = tg_tensor_get(&out->val, i);
    tg_backward(t, tg_sum(t, out));
    for (int64_t i = 0; i < x->val.numel; i++) g[i] = tg_tensor_get(&x->grad, i);
    tg_tape_free(t);
}

static tg_var *max_all(tg_tape *t, tg_var *x) { return tg_max(t, x); }
static tg_var *min_all(tg_tape *t, tg_var *x) { return tg_min(t, x); }
static tg_var *max_rows(tg_tape *t, tg_var *x) { return tg_max_axis(t, x, -1, false); }
static tg_var *min_rows(tg_tape *t, tg_var *x) { return tg_min_axis(t, x, 1, true); }

Test(ops_reduce, max_ties_share_of_all_go_to_the_first_along_an_axis) {
    /* torch.max(x).backward() -> (0, .5, .5, 0); torch.max(x, 1) -> index 1, grad (0, 1, 0, 0) */
    double v[8] = {1, 3, 3, 2, -1, -4, 0, -4}, y[2], g[8];
    for (int dt = 0; dt < 2; dt++) {
        run(max_all, dt, S(2, 4), v, y, g);
        expect_values(&(tg_tensor){.numel = 1, .dtype = TG_F64, .data = y}, (double[]){3}, 0, "max of all");
        double want_all[8] = {0, .5, .5, 0, 0, 0, 0, 0};
        for (int i = 0; i < 8; i++) cr_expect_eq(g[i], want_all[i], "max of all: gradient %d = %g", i, g[i]);
        run(min_all, dt, S(2, 4), v, y, g);
        double want_min[8] = {0, 0, 0, 0, 0, .5, 0, .5};
        cr_expect_eq(y[0], -4);
        for (int i = 0; i < 8; i++) cr_expect_eq(g[i], want_min[i], "min of all: gradient %d = %g", i, g[i]);
        run(max_rows, dt, S(2, 4), v, y, g);
        double want_rows[8] = {0, 1, 0, 0, 0, 0, 1, 0};
        cr_expect(y[0] == 3 && y[1] == 0);
        for (int i = 0; i < 8; i++) cr_expect_eq(g[i], want_rows[i], "max along rows: gradient %d = %g", i, g[i]);
        run(min_rows, dt, S(2, 4), v, y, g);
        double want_minr[8] = {1, 0, 0, 0, 0, 1, 0, 0};
        cr_expect(y[0] == 1 && y[1] == -4);
        for (int i = 0; i < 8; i++) cr_expect_eq(g[i], want_minr[i], "min along rows: gradient %d = %g", i, g[i]);
    }
}

Test(ops_reduce, argmax_first_of_ties_nan_wins_no_gradient) {
    tg_tape *t = tg_tape_new();
    double v[8] = {1, 3, 3, 2, 5, NAN, 7, NAN};
    tg_var *x = leaf(t, TG_F32, S(2, 4), v, true);
    tg_var *am = tg_argmax(t, x, 1, false), *an = tg_argmin(t, x, -1, true), *a0 = tg_argmax(t, x, 0, false);
    cr_expect(am->val.dtype == TG_I64 && tg_shape_eq(am->val.shape, S(2)) && tg_shape_eq(an->val.shape, S(2, 1)));
    cr_expect_eq(TG_I64P(&am->val)[0], 1, "argmax of (1, 3, 3, 2): the first 3");
    cr_expect_eq(TG_I64P(&am->val)[1], 1, "argmax with NaN: the first NaN, as torch.argmax");
    cr_expect_eq(TG_I64P(&an->val)[0], 0);
    cr_expect_eq(TG_I64P(&an->val)[1], 1, "argmin with NaN: the first NaN, as torch.argmin");
    cr_expect(TG_I64P(&a0->val)[0] == 1 && TG_I64P(&a0->val)[1] == 1 && TG_I64P(&a0->val)[3] == 1);
    cr_expect_not(am->requires_grad);
    cr_expect_eq(t->n, 0, "argmax / argmin must not be recorded");
    tg_var *mx = tg_max_axis(t, x, 1, false);
    cr_expect(isnan(tg_tensor_get(&mx->val, 1)), "max with NaN is NaN");
    /* The tape-free kernel: predicted classes of (3, 4) scores. */
    double s[12] = {0.1, 0.7, 0.7, 0.2, 9, 1, 2, 3, -1, -2, -0.5, -0.5};
    tg_tensor *sc = tg_tensor_from(tg_tape_arena(t), TG_F64, S(3, 4), s, TG_F64);
    tg_tensor *pred = tg_tensor_new(tg_tape_arena(t), TG_I64, S(3));
    tg_tensor_argmax_last(pred, sc);
    cr_expect(TG_I64P(pred)[0] == 1 && TG_I64P(pred)[1] == 0 && TG_I64P(pred)[2] == 2);
    tg_tape_free(t);
}

static tg_var *lse_rows(tg_tape *t, tg_var *x) { return tg_logsumexp_axis(t, x, 1, false); }

Test(ops_reduce, logsumexp_of_infinities) {
    /* Rows: all -inf -> -inf, gradient 0 (PyTorch: NaN); (+inf, 1, 2) -> +inf, gradient (1, 0, 0) (PyTorch:
     * NaN, 0, 0); (+inf, +inf, -inf) -> +inf, shared (1/2, 1/2, 0); (-inf, 0, ln 3): finite, -inf gets 0. */
    double v[12] = {-INFINITY, -INFINITY, -INFINITY, INFINITY, 1, 2, INFINITY, INFINITY, -INFINITY,
                    -INFINITY, 0, log(3.0)};
    double y[4], g[12];
    for (int dt = 0; dt < 2; dt++) {
        run(lse_rows, dt, S(4, 3), v, y, g);
        double tol = dt == TG_F32 ? 1e-6 : 1e-15;
        expect_values(&(tg_tensor){.numel = 4, .dtype = TG_F64, .data = y},
                      (double[]){-INFINITY, INFINITY, INFINITY, log(4.0)}, tol, "logsumexp");
        expect_values(&(tg_tensor){.numel = 12, .dtype = TG_F64, .data = g},
                      (double[]){0, 0, 0, 1, 0, 0, .5, .5, 0, 0, .25, .75}, tol, "logsumexp gradient");
    }
    double big[3] = {1e4, -1e4, 1e4 - log(3.0)};   /* no overflow: 1e4 + ln(1 + 1/3) */
    run(lse_rows, TG_F64, S(1, 3), big, y, g);
    cr_expect(fabs(y[0] - (1e4 + log(4.0 / 3))) < 1e-11, "logsumexp(1e4, ...) = %.17g", y[0]);
}

static tg_var *softmax_rows(tg_tape *t, tg_var *x) { return tg_softmax(t, x, 1); }
static tg_var *log_softmax_rows(tg_tape *t, tg_var *x) { return tg_log_softmax(t, x, 1); }
static tg_var *softmax_one(tg_tape *t, tg_var *x) { return tg_softmax(t, x, 0); }

Test(ops_reduce, softmax_of_huge_logits_is_exact) {
    double v[6] = {1e4, -1e4, 0, 1e30, 0, 1}, y[6], g[6];
    for (int dt = 0; dt < 2; dt++) {
        run(softmax_rows, dt, S(2, 3), v, y, g);
        for (int i = 0; i < 6; i++) cr_expect_eq(y[i], i % 3 == 0 ? 1.0 : 0.0, "softmax %d = %g", i, y[i]);
        for (int i = 0; i < 6; i++) cr_expect_eq(g[i], 0.0, "softmax gradient of a sum %d = %g", i, g[i]);
        run(log_softmax_rows, dt, S(2, 3), v, y, g);
        double want[6] = {0, -2e4, -1e4, 0, -1e30, -1e30};
        for (int i = 0; i < 6; i++)
            cr_expect(y[i] == (dt == TG_F32 ? (double)(float)want[i] : want[i]), "log_softmax %d = %.17g", i, y[i]);
        /* dx = 1 - 3 softmax: (-2, 1, 1) per row */
        for (int i = 0; i < 6; i++) cr_expect_eq(g[i], i % 3 == 0 ? -2.0 : 1.0, "log_softmax gradient %d = %g", i, g[i]);
    }
    run(softmax_one, TG_F64, S(1), (double[]){-7}, y, g);   /* a lane of one: 1, gradient 0 */
    cr_expect(y[0] == 1.0 && g[0] == 0.0);
}

static tg_var *var1(tg_tape *t, tg_var *x) { return tg_var_axis(t, x, 1, 1, false); }
static tg_var *var0(tg_tape *t, tg_var *x) { return tg_var_axis(t, x, 1, 0, false); }
static tg_var *std1(tg_tape *t, tg_var *x) { return tg_std_axis(t, x, -1, 1, true); }
static tg_var *var2(tg_tape *t, tg_var *x) { return tg_var_axis(t, x, 0, 2, false); }

Test(ops_reduce, var_of_one_element_is_nan_like_pytorch) {
    /* torch.var(torch.tensor([[3.]]), 1) -> nan (gradient nan); correction 0 -> 0;
     * torch.var(torch.tensor([3., 4.]), 0, correction=2) -> inf. */
    double y[2], g[2];
    for (int dt = 0; dt < 2; dt++) {
        run(var1, dt, S(1, 1), (double[]){3}, y, g);
        cr_expect(isnan(y[0]) && isnan(g[0]), "var n=1 = %g, gradient %g", y[0], g[0]);
        run(std1, dt, S(1, 1), (double[]){3}, y, g);
        cr_expect(isnan(y[0]) && isnan(g[0]), "std n=1 = %g, gradient %g", y[0], g[0]);
        run(var0, dt, S(1, 1), (double[]){3}, y, g);
        cr_expect(y[0] == 0 && g[0] == 0, "var n=1 correction 0 = %g, gradient %g", y[0], g[0]);
        run(var2, dt, S(2), (double[]){3, 4}, y, g);
        cr_expect(isinf(y[0]) && y[0] > 0, "var n=2 correction 2 = %g", y[0]);
    }
}

Test(ops_reduce, nll_ignores_labels_and_means_over_the_rest) {
    double lp[8] = {-1, -2, -3, -4, -5, -6, -7, -8}, lab[2] = {3, -100}, all[2] = {-100, -100};
    for (int dt = 0; dt < 2; dt++) {
        tg_tape *t = tg_tape_new();
        tg_var *x = leaf(t, dt, S(2, 4), lp, true);
        tg_var *none = tg_loss_nll(t, x, labels_of(t, S(2), lab), TG_REDUCE_NONE);
        expect_values(&none->val, (double[]){4, 0}, 0, "nll none");
        tg_var *mean = tg_loss_nll(t, x, labels_of(t, S(2), lab), TG_REDUCE_MEAN);
        cr_expect_eq(tg_tensor_get(&mean->val, 0), 4.0, "mean over the one label not ignored");
        tg_backward(t, mean);
        expect_values(&x->grad, (double[]){0, 0, 0, -1, 0, 0, 0, 0}, 0, "nll mean gradient");
        tg_tape_reset(t);
        x = leaf(t, dt, S(2, 4), lp, true);
        tg_var *m = tg_loss_nll(t, x, labels_of(t, S(2), all), TG_REDUCE_MEAN);   /* PyTorch: nan, gradient 0 */
        tg_var *s = tg_loss_nll(t, x, labels_of(t, S(2), all), TG_REDUCE_SUM);
        cr_expect(isnan(tg_tensor_get(&m->val, 0)) && tg_tensor_get(&s->val, 0) == 0);
        tg_backward(t, m);
        for (int i = 0; i < 8; i++) cr_expect_eq(tg_tensor_get(&x->grad, i), 0.0);
        tg_tape_free(t);
    }
}

static void nll_label_out_of_range(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F32, S(3, 4)), true);
    tg_loss_cross_entropy(t, x, labels_of(t, S(3), (double[]){1, 4, 2}), TG_REDUCE_MEAN);
}
static const int nll_bad_at = __LINE__ - 2;

static void nll_label_negative(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F64, S(2, 3, 2)), true);
    tg_nll(t, x, labels_of(t, S(2, 2), (double[]){0, 1, 2, -1}), TG_IGNORE_INDEX);
}

static void nll_float_labels(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F64, S(2, 3)), true);
    tg_nll(t, x, tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F64, S(2)), false), TG_IGNORE_INDEX);
}

static void nll_labels_misshaped(void) {
    tg_tape *t = tg_tape_new();
    tg_var *x = tg_leaf(t, tg_tensor_zeros(tg_tape_arena(t), TG_F64, S(2, 3)), true);
    tg_nll(t, x, labels_of(t, S(3), (double[]){0, 1, 2}), TG_IGNORE_INDEX);
}

Test(ops_reduce, bad_labels_abort_naming_the_label_and_caller) {
    char at[64];
    snprintf(at, sizeof at, "(at tests/test_ops_reduce.c:%d)", nll_bad_at);
    tg_expect_abort(nll_label_out_of_range, "tapegrad: nll: label 4 at index 1 is not a class in [0, 4)", at);
    tg_expect_abort(nll_label_negative, "nll: label -1 at index 3 is not a class in [0, 3) nor ignore_index -100",
                    "(at tests/test_ops_reduce.c:");
    tg_expect_abort(nll_float_labels, "nll: indices must be an int64 tensor, got float64");
    tg_expect_abort(nll_labels_misshaped, "nll: labels (3,) do not fit logp (2, 3) (labels want (2,))");
}

/* ================================================================ float32 against float64 */

static tg_var *f32_case(tg_tape *t, tg_var *x, int k) {
    static const double lab[5] = {0, 5, 2, -100, 1};
    switch (k) {
    case 0: return tg_max_axis(t, x, 0, false);
    case 1: return tg_logsumexp_axis(t, x, 1, true);
    case 2: return tg_softmax(t, x, -1);
    case 3: return tg_log_softmax(t, x, 0);
    case 4: return tg_std_axis(t, x, 1, 1, false);
    case 5: return tg_var_axis(t, x, 0, 0, true);
    case 6: return tg_loss_cross_entropy(t, x, labels_of(t, S(5), lab), TG_REDUCE_MEAN);
    default: return tg_min(t, x);
    }
}

Test(ops_reduce, float32_agrees_with_float64) {
    tg_arena *a = tg_arena_new();
    tg_rng r = tg_rng_seed(5);
    tg_tensor *x64 = tg_tensor_uniform(a, TG_F64, S(5, 6), -3, 3, &r);
    tg_tensor *x32 = tg_tensor_cast(a, x64, TG_F32), *back = tg_tensor_cast(a, x32, TG_F64);
    for (int k = 0; k < 8; k++) {
        tg_tape *t = tg_tape_new(), *t32 = tg_tape_new();
        tg_var *x = tg_leaf(t, back, true), *xf = tg_leaf(t32, x32, true);
        tg_var *y = f32_case(t, x, k), *yf = f32_case(t32, xf, k);
        cr_expect_eq(yf->val.dtype, TG_F32);
        for (int64_t i = 0; i < y->val.numel; i++) {
            double d = tg_tensor_get(&y->val, i);
            cr_expect(fabs(tg_tensor_get(&yf->val, i) - d) <= 2e-6 * fmax(1, fabs(d)), "case %d value %lld", k, (long long)i);
        }
        tg_backward(t, tg_sum(t, y));
        tg_backward(t32, tg_sum(t32, yf));
        for (int64_t i = 0; i < 30; i++) {
            double d = tg_tensor_get(&x->grad, i);
            cr_expect(fabs(tg_tensor_get(&xf->grad, i) - d) <= 2e-6 * fmax(1, fabs(d)), "case %d gradient %lld", k,
                      (long long)i);
        }
        tg_tape_free(t), tg_tape_free(t32);
    }
    tg_arena_free(a);
}
