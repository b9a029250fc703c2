/*
 * test_torch_ops.c — every differentiable op against PyTorch, value and
 * gradients, in float64.
 *
 * tests/fixtures/ops.bin (written offline by scripts/op_fixtures.py, format in
 * tests/fixtures/README.md) holds, per case, an op's inputs, an upstream
 * gradient u, PyTorch's output and PyTorch's gradient of sum(out * u) with
 * respect to each input. Each case is rebuilt here on a tape from leaves
 * requiring gradients and differentiated with tg_backward_seed(out, u), which
 * is that same gradient. The file is read with plain stdio, not the library;
 * TG_OPS_FIXTURE=path reads another one instead.
 *
 * Tolerance: every element of the output and of each gradient must satisfy
 *     |ours - torch| <= 1e-12 * max(|torch|, 1e-3 * max |torch over the tensor|)
 * (relative 1e-12, with a floor so an element that cancels to near zero in a
 * sum is judged against the tensor's scale). Both sides compute the same
 * functions in float64. The largest errors seen (PyTorch 1.13, x86-64) are
 * 1.0e-14 (mul: a broadcast gradient summed back with cancellation), 4e-15
 * (bce_logits: sigmoid(x) - y; tanh: 1 - tanh^2) and below 6e-16 elsewhere,
 * so every op is held to the same bound, 100x above the worst.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "tests/custom_op.h"
#include "tests/tmpdir.h"

#define FIXTURE "tests/fixtures/ops.bin"
#define REGENERATE "regenerate it with /usr/bin/python3 scripts/op_fixtures.py"
#define RTOL 1e-12
#define FLOOR 1e-3
#define MAX_ARGS 16   /* scalar arguments per case (conv takes 9) */

TestSuite(torch_ops, .timeout = 120);

/* ---------------------------------------------------------------- the file */

typedef struct {
    tg_shape shape;
    double *data;   /* malloc'd, shape's numel values */
} ften;

typedef struct {
    char name[32];
    uint32_t id, n_args, n_in;
    double args[MAX_ARGS];
    bool requires_grad[3];
    ften in[3], up, out, grad[3];   /* grad[i] only where requires_grad[i] */
} fcase;

typedef struct {
    fcase *c;
    uint32_t n;
} ffile;

static bool rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }
static bool rd_u32(FILE *f, uint32_t *v, uint32_t max) { return rd(f, v, 4) && *v <= max; }

static bool rd_tensor(FILE *f, ften *t) {
    uint32_t ndim;
    if (!rd_u32(f, &ndim, TG_MAX_DIMS)) return false;
    t->shape.ndim = (int)ndim;
    int64_t n = 1;
    for (uint32_t k = 0; k < ndim; k++) {
        uint64_t d;
        if (!rd(f, &d, 8) || d > 4096) return false;
        t->shape.d[k] = (int64_t)d, n *= (int64_t)d;
    }
    if (n > 1 << 20) return false;
    t->data = malloc((size_t)(n ? n : 1) * sizeof(double));
    return rd(f, t->data, (size_t)n * sizeof(double));
}

static bool rd_case(FILE *f, fcase *c) {
    uint32_t len;
    if (!rd_u32(f, &len, sizeof c->name - 1) || !rd(f, c->name, len)) return false;
    if (!rd(f, &c->id, 4) || !rd_u32(f, &c->n_args, MAX_ARGS) || !rd(f, c->args, c->n_args * sizeof(double)))
        return false;
    if (!rd_u32(f, &c->n_in, 3)) return false;
    for (uint32_t i = 0; i < c->n_in; i++) {
        uint32_t rg;
        if (!rd_u32(f, &rg, 1) || !rd_tensor(f, &c->in[i])) return false;
        c->requires_grad[i] = rg;
    }
    if (!rd_tensor(f, &c->up) || !rd_tensor(f, &c->out)) return false;
    for (uint32_t i = 0; i < c->n_in; i++)
        if (c->requires_grad[i] && !rd_tensor(f, &c->grad[i])) return false;
    return true;
}

static void ffile_free(ffile *ff) {
    for (uint32_t k = 0; k < ff->n; k++) {
        fcase *c = &ff->c[k];
        for (int i = 0; i < 3; i++) free(c->in[i].data), free(c->grad[i].data);
        free(c->up.data), free(c->out.data);
    }
    free(ff->c);
    *ff = (ffile){0};
}

/* Reads path into ff; on failure returns false with the reason in err. */
static bool ffile_load(const char *path, ffile *ff, char *err, size_t n) {
    *ff = (ffile){0};
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, n, "cannot open %s: %s", path, REGENERATE), false;
    char magic[8];
    uint32_t count;
    bool ok = rd(f, magic, 8) && memcmp(magic, "TGOPS001", 8) == 0;
    if (!ok) snprintf(err, n, "%s: bad magic (not a TGOPS001 file): %s", path, REGENERATE);
    else if (!(ok = rd_u32(f, &count, 100000)))
        snprintf(err, n, "%s: truncated header: %s", path, REGENERATE);
    if (ok) ff->c = calloc(count, sizeof *ff->c);
    for (; ok && ff->n < count; ff->n++)
        if (!(ok = rd_case(f, &ff->c[ff->n])))
            snprintf(err, n, "%s: record %u truncated or malformed: %s", path, ff->n, REGENERATE);
    if (ok && fgetc(f) != EOF) ok = false, snprintf(err, n, "%s: trailing bytes: %s", path, REGENERATE);
    fclose(f);
    if (!ok) ffile_free(ff);
    return ok;
}

/* The fixture (TG_OPS_FIXTURE overrides the path); the test fails if it is unreadable. */
static ffile load_or_fail(void) {
    const char *path = getenv("TG_OPS_FIXTURE");
    ffile ff;
    char err[512];
    cr_assert(ffile_load(path ? path : FIXTURE, &ff, err, sizeof err), "%s", err);
    return ff;
}

static int op_of(const char *name) {
    for (int op = 0; op < TG_OP_COUNT; op++)
        if (tg_ops[op].name && strcmp(tg_ops[op].name, name) == 0) return op;
    return -1;
}

/* ---------------------------------------------------------------- one case */

/* A shape whose dims are the case's scalar arguments (reshape's, permute's, expand's). */
static tg_shape args_shape(const fcase *c) {
    tg_shape s = {.ndim = (int)c->n_args};
    for (uint32_t k = 0; k < c->n_args; k++) s.d[k] = (int64_t)c->args[k];
    return s;
}

/* An index input, stored as float64 in the file, as the int64 var the index ops take. */
static tg_var *as_index(tg_tape *t, tg_var *v) {
    return tg_leaf(t, tg_tensor_cast(tg_tape_arena(t), &v->val, TG_I64), false);
}

/* The case's op applied to the leaves v, its scalar arguments from c->args. */
static tg_var *apply(tg_tape *t, int op, const fcase *c, tg_var **v) {
    const double *a = c->args;
    switch (op) {
    case TG_OP_ADD: return tg_add(t, v[0], v[1]);
    case TG_OP_SUB: return tg_sub(t, v[0], v[1]);
    case TG_OP_MUL: return tg_mul(t, v[0], v[1]);
    case TG_OP_DIV: return tg_div(t, v[0], v[1]);
    case TG_OP_NEG: return tg_neg(t, v[0]);
    case TG_OP_ADD_SCALAR: return tg_add_scalar(t, v[0], a[0]);
    case TG_OP_MUL_SCALAR: return tg_mul_scalar(t, v[0], a[0]);
    case TG_OP_EXP: return tg_exp(t, v[0]);
    case TG_OP_LOG: return tg_log(t, v[0]);
    case TG_OP_SQRT: return tg_sqrt(t, v[0]);
    case TG_OP_SQUARE: return tg_square(t, v[0]);
    case TG_OP_POW: return tg_pow(t, v[0], a[0]);
    case TG_OP_RELU: return tg_relu(t, v[0]);
    case TG_OP_SIGMOID: return tg_sigmoid(t, v[0]);
    case TG_OP_TANH: return tg_tanh(t, v[0]);
    case TG_OP_SOFTPLUS: return tg_softplus(t, v[0]);
    case TG_OP_MATMUL: return tg_matmul(t, v[0], v[1], a[0] != 0, a[1] != 0);
    case TG_OP_AFFINE: return tg_affine(t, v[0], v[1], v[2], a[0] != 0 ? TG_ACT_RELU : TG_ACT_NONE);
    case TG_OP_SUM: return c->n_args ? tg_sum_axis(t, v[0], (int)a[0], a[1] != 0) : tg_sum(t, v[0]);
    case TG_OP_MEAN: return c->n_args ? tg_mean_axis(t, v[0], (int)a[0], a[1] != 0) : tg_mean(t, v[0]);
    case TG_OP_RESHAPE: {
        tg_shape s = {.ndim = (int)c->n_args};
        for (uint32_t k = 0; k < c->n_args; k++) s.d[k] = (int64_t)a[k];
        return tg_reshape(t, v[0], s);
    }
    case TG_OP_TRANSPOSE: return tg_transpose(t, v[0], (int)a[0], (int)a[1]);
    case TG_OP_CONCAT: return c->n_in == 2 ? tg_concat(t, v[0], v[1], (int)a[0]) : tg_cat(t, v, (int)c->n_in, (int)a[0]);
    case TG_OP_NARROW: return tg_narrow(t, v[0], (int)a[0], (int64_t)a[1], (int64_t)a[2]);
    case TG_OP_REPARAM: return tg_reparam(t, v[0], v[1], &v[2]->val);   /* v[2]: eps, a constant */
    case TG_OP_BCE: return tg_bce(t, v[0], v[1]);
    case TG_OP_BCE_LOGITS: return tg_bce_logits(t, v[0], v[1]);
    case TG_OP_BCE_LOGITS_SUM: return tg_bce_logits_sum(t, v[0], v[1]);
    /* elementwise maps, comparisons and where */
    case TG_OP_ABS: return tg_abs(t, v[0]);
    case TG_OP_CLAMP: return tg_clamp(t, v[0], a[0], a[1]);
    case TG_OP_MAXIMUM: return tg_maximum(t, v[0], v[1]);
    case TG_OP_MINIMUM: return tg_minimum(t, v[0], v[1]);
    case TG_OP_LOG1P: return tg_log1p(t, v[0]);
    case TG_OP_EXPM1: return tg_expm1(t, v[0]);
    case TG_OP_LEAKY_RELU: return tg_leaky_relu(t, v[0], a[0]);
    case TG_OP_ELU: return tg_elu(t, v[0], a[0]);
    case TG_OP_GELU: return tg_gelu(t, v[0]);
    case TG_OP_GELU_TANH: return tg_gelu_tanh(t, v[0]);
    case TG_OP_SILU: return tg_silu(t, v[0]);
    case TG_OP_HARDTANH: return tg_hardtanh(t, v[0], a[0], a[1]);
    case TG_OP_WHERE: return tg_where(t, v[0], v[1], v[2]);   /* v[0]: cond, a constant */

    /* reductions and the softmax family */
    case TG_OP_MAX: return c->n_args ? tg_max_axis(t, v[0], (int)a[0], a[1] != 0) : tg_max(t, v[0]);
    case TG_OP_MIN: return c->n_args ? tg_min_axis(t, v[0], (int)a[0], a[1] != 0) : tg_min(t, v[0]);
    case TG_OP_LOGSUMEXP: return tg_logsumexp_axis(t, v[0], (int)a[0], a[1] != 0);
    case TG_OP_STD: return tg_std_axis(t, v[0], (int)a[0], a[1], a[2] != 0);   /* the whole composition */
    case TG_OP_SOFTMAX: return tg_softmax(t, v[0], (int)a[0]);
    case TG_OP_LOG_SOFTMAX: return tg_log_softmax(t, v[0], (int)a[0]);
    case TG_OP_NLL: {   /* v[1]: the labels as float64, a constant; a[0]: ignore_index */
        tg_tensor *y = tg_tensor_cast(tg_tape_arena(t), &v[1]->val, TG_I64);
        return tg_nll(t, v[0], tg_leaf(t, y, false), (int64_t)a[0]);
    }

    /* shape and indexing */
    case TG_OP_PERMUTE: return tg_permute(t, v[0], args_shape(c));
    case TG_OP_EXPAND: return tg_expand(t, v[0], args_shape(c));
    case TG_OP_PAD: {
        int64_t pads[TG_MAX_DIMS];
        for (uint32_t k = 0; k < c->n_args; k++) pads[k] = (int64_t)a[k];
        return tg_pad(t, v[0], pads, (int)c->n_args, 0.0);
    }
    case TG_OP_SLICE: return tg_slice(t, v[0], (int)a[0], (int64_t)a[1], a[2] >= 1e18 ? INT64_MAX : (int64_t)a[2],
                                      (int64_t)a[3]);
    case TG_OP_GATHER: return tg_gather(t, v[0], (int)a[0], as_index(t, v[1]));
    case TG_OP_INDEX_SELECT: return tg_index_select(t, v[0], (int)a[0], as_index(t, v[1]));
    case TG_OP_EMBEDDING: return tg_embedding(t, v[0], as_index(t, v[1]));
    case TG_OP_SCATTER_ADD: return tg_scatter_add(t, v[0], (int)a[0], as_index(t, v[2]), v[1]);

    /* linear algebra, custom ops */
    case TG_OP_CUSTOM: return tg_custom(t, &tg_test_cube_mul, v, (int)c->n_in, v[0]->val.shape, NULL);

    /* convolution */
    case TG_OP_CONV2D:
    case TG_OP_CONV_TRANSPOSE2D: {   /* a: sh, sw, ph, pw, dh, dw, oph, opw, groups; v[2] NULL: no bias */
        tg_conv_args ca = {{(int64_t)a[0], (int64_t)a[1]}, {(int64_t)a[2], (int64_t)a[3]}, {(int64_t)a[4], (int64_t)a[5]},
                           {(int64_t)a[6], (int64_t)a[7]}, (int64_t)a[8], false};
        return op == TG_OP_CONV2D ? tg_conv2d(t, v[0], v[1], v[2], ca) : tg_conv_transpose2d(t, v[0], v[1], v[2], ca);
    }

    /* pooling and upsampling */
    case TG_OP_MAX_POOL2D: case TG_OP_AVG_POOL2D: {   /* pairs packed as 100 h + w; a[4]: ceil_mode + 2 count_include_pad_off */
        tg_pool_args p = {.ceil_mode = (int64_t)a[4] & 1, .count_include_pad_off = (int64_t)a[4] & 2};
        for (int k = 0; k < 2; k++) {
            int64_t pk = k ? 1 : 100;
            p.kernel[k] = (int64_t)a[0] / pk % 100, p.stride[k] = (int64_t)a[1] / pk % 100;
            p.padding[k] = (int64_t)a[2] / pk % 100, p.dilation[k] = (int64_t)a[3] / pk % 100;
        }
        return op == TG_OP_MAX_POOL2D ? tg_max_pool2d(t, v[0], p) : tg_avg_pool2d(t, v[0], p);
    }
    case TG_OP_UPSAMPLE_NEAREST2D: return tg_upsample_nearest2d(t, v[0], (int64_t)a[0], (int64_t)a[1]);

    /* normalisation and dropout */
    case TG_OP_LAYER_NORM: return tg_layer_norm(t, v[0], (int)a[0], v[1], v[2], a[1]);   /* v[1], v[2] NULL: no affine */
    case TG_OP_BATCH_NORM: {   /* eval: running_mean[c] = 0.3 c - 0.2, running_var[c] = 0.5 + 0.25 c, as the script */
        int64_t ch = v[0]->val.shape.d[1];
        tg_tensor *rm = a[0] != 0 ? NULL : tg_tensor_new(tg_tape_arena(t), TG_F64, TG_SHAPE(ch));
        tg_tensor *rv = a[0] != 0 ? NULL : tg_tensor_new(tg_tape_arena(t), TG_F64, TG_SHAPE(ch));
        for (int64_t k = 0; rm && k < ch; k++) TG_F64P(rm)[k] = (double)k * 0.3 - 0.2, TG_F64P(rv)[k] = (double)k * 0.25 + 0.5;
        return tg_batch_norm(t, v[0], v[1], v[2], rm, rv, a[0] != 0, a[1], a[2]);
    }
    case TG_OP_DROPOUT: {   /* the script rebuilt tg_rng's mask for this seed */
        tg_rng r = tg_rng_seed((uint64_t)a[1]);
        return tg_dropout(t, v[0], a[0], true, &r);
    }

    default: return NULL;
    }
}

/* Compares got with want elementwise (tolerance at the top of the file);
 * returns 0, or 1 with the mismatch described in msg (NULL, 0: not described). */
static int compare(const fcase *c, const char *what, const tg_tensor *got, const ften *want, char *msg, size_t n) {
    char b1[96], b2[96];
    if (!tg_shape_eq(got->shape, want->shape))
        return snprintf(msg, n, "%s case %u: %s has shape %s, PyTorch %s", c->name, c->id, what,
                        tg_shape_str(got->shape, b1), tg_shape_str(want->shape, b2)), 1;
    double scale = 0;
    for (int64_t i = 0; i < got->numel; i++) scale = fmax(scale, fabs(want->data[i]));
    for (int64_t i = 0; i < got->numel; i++) {
        double g = tg_tensor_get(got, i), w = want->data[i], err = fabs(g - w) / fmax(fabs(w), FLOOR * scale);
        if (!(err <= RTOL))
            return snprintf(msg, n, "%s case %u: %s element %lld: tapegrad %.17g, PyTorch %.17g (rel err %.3g > %g)",
                            c->name, c->id, what, (long long)i, g, w, err, RTOL), 1;
    }
    return 0;
}

/* Rebuilds c on a tape and compares output and gradients; returns the number
 * of mismatching tensors, the first one described in msg. */
static int check_case(const fcase *c, char *msg, size_t n) {
    int op = op_of(c->name), bad = 0;
    if (op < 0 || !tg_ops[op].backward) return snprintf(msg, n, "%s: not a differentiable op in tg_ops", c->name), 1;
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    tg_var *v[3] = {0};
    for (uint32_t i = 0; i < c->n_in; i++)
        v[i] = tg_leaf(t, tg_tensor_from(ar, TG_F64, c->in[i].shape, c->in[i].data, TG_F64), c->requires_grad[i]);
    tg_var *out = apply(t, op, c, v);
    if (!out) {
        tg_tape_free(t);
        return snprintf(msg, n, "%s: test_torch_ops.c cannot build this op", c->name), 1;
    }
    bad += compare(c, "output", &out->val, &c->out, msg, n);
    tg_backward_seed(t, out, tg_tensor_from(ar, TG_F64, c->up.shape, c->up.data, TG_F64));
    for (uint32_t i = 0; i < c->n_in; i++) {
        if (!c->requires_grad[i]) continue;
        char what[32];
        snprintf(what, sizeof what, "gradient of input %u", i);
        bad += compare(c, what, tg_var_grad(t, v[i]), &c->grad[i], bad ? NULL : msg, bad ? 0 : n);   /* the first stays */
    }
    tg_tape_free(t);
    return bad;
}

/* ---------------------------------------------------------------- tests */

Test(torch_ops, every_case_matches_pytorch) {
    ffile ff = load_or_fail();
    cr_assert_gt(ff.n, 0, FIXTURE " holds no cases: " REGENERATE);
    for (uint32_t k = 0; k < ff.n; k++) {
        char msg[512] = "";
        int bad = check_case(&ff.c[k], msg, sizeof msg);
        cr_expect(bad == 0, "%s (%d tensor%s off)", msg, bad, bad == 1 ? "" : "s");
    }
    ffile_free(&ff);
}

Test(torch_ops, every_differentiable_op_has_a_pytorch_case) {
    ffile ff = load_or_fail();
    int cases[TG_OP_COUNT] = {0};
    for (uint32_t k = 0; k < ff.n; k++) {
        const fcase *c = &ff.c[k];
        int op = op_of(c->name), grads = 0;
        cr_expect_geq(op, 0, "ops.bin case %s %u: no such op in tg_ops", c->name, c->id);
        if (op < 0) continue;
        for (uint32_t i = 0; i < c->n_in; i++) grads += c->requires_grad[i];
        /* variadic, or an optional last input left out (conv's bias): every input given */
        int want = tg_ops[op].n_in < 0 || (int)c->n_in < tg_ops[op].n_in ? (int)c->n_in : tg_ops[op].n_in;
        cr_expect_eq(grads, want, "ops.bin case %s %u: %d differentiable inputs, tg_ops says %d", c->name, c->id,
                     grads, want);
        cases[op]++;
    }
    for (int op = 0; op < TG_OP_COUNT; op++) {   /* the walk of test_ops.c: no op escapes */
        const tg_op_def *d = &tg_ops[op];
        cr_assert(d->name, "op %d has no entry in tg_ops", op);
        if (d->backward)
            cr_expect_gt(cases[op], 0, "op %s has no PyTorch case in " FIXTURE ": add one to scripts/op_fixtures.py "
                         "and %s", d->name, REGENERATE);
    }
    ffile_free(&ff);
}

Test(torch_ops, a_missing_or_foreign_fixture_says_how_to_regenerate, .init = tg_tmpdir_setup,
     .fini = tg_tmpdir_teardown) {
    ffile ff;
    char err[512];
    cr_expect_not(ffile_load(tg_tmp("absent.bin"), &ff, err, sizeof err));
    cr_expect(strstr(err, "cannot open") && strstr(err, "scripts/op_fixtures.py"), "%s", err);
    tg_spit(tg_tmp("foreign.bin"), "TGFIX001\0\0\0\0", 12);
    cr_expect_not(ffile_load(tg_tmp("foreign.bin"), &ff, err, sizeof err));
    cr_expect(strstr(err, "bad magic") && strstr(err, "scripts/op_fixtures.py"), "%s", err);
    tg_spit(tg_tmp("short.bin"), "TGOPS001\1\0\0\0\3\0\0\0ad", 18);
    cr_expect_not(ffile_load(tg_tmp("short.bin"), &ff, err, sizeof err));
    cr_expect(strstr(err, "record 0 truncated"), "%s", err);
}

Test(torch_ops, a_changed_number_is_caught) {
    /* One gradient element moved by a relative 1e-10 must fail its case. */
    ffile ff = load_or_fail();
    fcase *c = &ff.c[0];
    char msg[512] = "";
    cr_assert_eq(check_case(c, msg, sizeof msg), 0, "%s", msg);
    c->grad[1].data[1] *= 1 + 1e-10;
    cr_expect_eq(check_case(c, msg, sizeof msg), 1);
    cr_expect(strstr(msg, "gradient of input 1 element 1"), "%s", msg);
    ffile_free(&ff);
}
