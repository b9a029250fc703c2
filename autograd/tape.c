/* tape.c — the tape, backward, leaves and the gradient checker. */
#include "autograd/autograd.h"
#include "autograd/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

tg_tape *tg_tape_new(void) {
    tg_tape *t = calloc(1, sizeof *t);
    TG_CHECK(t, "tg_tape_new: out of memory");
    t->arena = tg_arena_new();
    t->grad_enabled = true;
    return t;
}

void tg_tape_reset(tg_tape *t) {
    t->n = 0;
    tg_arena_reset(t->arena);
}

void tg_tape_free(tg_tape *t) {
    if (!t) return;
    tg_arena_free(t->arena);
    free(t->entries);
    free(t);
}

tg_arena *tg_tape_arena(tg_tape *t) { return t->arena; }

bool tg_no_grad(tg_tape *t) {
    bool prev = t->grad_enabled;
    t->grad_enabled = false;
    return prev;
}

void tg_set_grad(tg_tape *t, bool enabled) { t->grad_enabled = enabled; }

tg_var *tg_leaf(tg_tape *t, tg_tensor *val, bool requires_grad) {
    TG_CHECK(!(requires_grad && val->dtype == TG_I64),
             "tg_leaf: an int64 tensor (labels, indices) cannot require a gradient");
    tg_var *v = tg_arena_calloc(t->arena, sizeof *v);
    v->val = *val;
    v->grad = tg_tensor_wrap(val->dtype, val->shape, NULL);
    v->requires_grad = requires_grad;
    return v;
}

tg_var *tg_detach(tg_tape *t, tg_var *v) { return tg_leaf(t, &v->val, false); }

double tg_item_(const char *file, int line, const tg_var *v) {
    char b[96];
    if (v->val.numel != 1) tg_die(file, line, "item: a var of shape %s has %lld elements, not one",
                                  tg_shape_str(v->val.shape, b), (long long)v->val.numel);
    return tg_tensor_get(&v->val, 0);
}

tg_tensor *tg_var_grad(tg_tape *t, tg_var *v) {
    if (!v->grad.data) {
        v->grad = tg_tensor_wrap(v->val.dtype, v->val.shape, NULL);
        v->grad.data = tg_arena_calloc(t->arena, (size_t)v->val.numel * tg_dtype_size(v->val.dtype));
    }
    return &v->grad;
}

tg_tensor *tg_var_grad_unset(tg_tape *t, tg_var *v) {
    if (!v || !v->requires_grad) return NULL;
    if (!v->grad.data) {
        v->grad = tg_tensor_wrap(v->val.dtype, v->val.shape, NULL);
        v->grad.data = tg_arena_alloc(t->arena, (size_t)v->val.numel * tg_dtype_size(v->val.dtype));
    }
    return &v->grad;
}

/* ------------------------------------------------------------ recording */

tg_var *tg_var_new(tg_tape *t, tg_dtype dt, tg_shape s) {
    tg_var *v = tg_arena_calloc(t->arena, sizeof *v);
    v->val = *tg_tensor_new(t->arena, dt, s);
    v->grad = tg_tensor_wrap(dt, s, NULL);
    return v;
}

/* A new entry for op producing out, which now requires a gradient. */
static tg_entry *push(tg_tape *t, tg_op op, tg_var *out) {
    if (t->n == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 256;
        tg_entry *e = realloc(t->entries, (size_t)cap * sizeof *e);
        TG_CHECK(e, "tape: out of memory growing to %lld entries", (long long)cap);
        t->entries = e, t->cap = cap;
    }
    out->requires_grad = true;
    tg_entry *e = &t->entries[t->n++];
    *e = (tg_entry){.op = op, .out = out};
    return e;
}

tg_entry *tg_record3(tg_tape *t, tg_op op, tg_var *out, tg_var *a, tg_var *b, tg_var *c) {
    bool needs = t->grad_enabled && ((a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad));
    if (!needs || !tg_ops[op].backward) return NULL;
    tg_entry *e = push(t, op, out);
    e->in[0] = a, e->in[1] = b, e->in[2] = c;
    return e;
}

tg_entry *tg_record(tg_tape *t, tg_op op, tg_var *out, tg_var *a, tg_var *b) {
    return tg_record3(t, op, out, a, b, NULL);
}

tg_entry *tg_record_n(tg_tape *t, tg_op op, tg_var *out, tg_var *const *ins, int n) {
    bool needs = false;
    for (int k = 0; k < n; k++) needs = needs || ins[k]->requires_grad;
    if (!t->grad_enabled || !needs || !tg_ops[op].backward) return NULL;
    tg_entry *e = push(t, op, out);
    e->ins = tg_arena_alloc(t->arena, (size_t)n * sizeof *e->ins);
    for (int k = 0; k < n; k++) e->ins[k] = ins[k];
    for (int k = 0; k < n && k < 3; k++) e->in[k] = ins[k];
    e->n_ins = n;
    return e;
}

/* ------------------------------------------------------------ backward */

/* Runs every entry's backward, newest first, then forgets the entries (as
 * PyTorch frees its graph): a later backward sees only ops recorded after
 * this one, so it never re-runs this graph. Values stay until tg_tape_reset. */
static void run_backward(tg_tape *t) {
    for (int64_t k = t->n - 1; k >= 0; k--) {
        const tg_entry *e = &t->entries[k];
        if (e->out->grad.data) tg_ops[e->op].backward(t, e);  /* no gradient reached it: skip */
    }
    t->n = 0;
}

void tg_backward(tg_tape *t, tg_var *loss) {
    char b[96];
    TG_CHECK(loss->val.numel == 1, "tg_backward: loss must have one element, got shape %s "
             "(reduce it with tg_sum or tg_mean, or use tg_backward_seed)", tg_shape_str(loss->val.shape, b));
    TG_CHECK(loss->requires_grad, "tg_backward: the loss does not depend on anything that requires a gradient");
    tg_tensor *g = tg_var_grad(t, loss);
    tg_tensor_set(g, 0, tg_tensor_get(g, 0) + 1.0);
    run_backward(t);
}

void tg_backward_seed(tg_tape *t, tg_var *out, const tg_tensor *seed) {
    char b1[96], b2[96];
    TG_CHECK(tg_shape_eq(out->val.shape, seed->shape), "tg_backward_seed: seed shape %s differs from output %s",
             tg_shape_str(seed->shape, b1), tg_shape_str(out->val.shape, b2));
    TG_CHECK(out->requires_grad, "tg_backward_seed: the output does not depend on anything that requires a gradient");
    if (grad_untouched(out) && seed->dtype == out->val.dtype) {   /* the first gradient to reach out: a copy */
        tg_tensor *g = tg_var_grad_unset(t, out);
        memcpy(g->data, seed->data, (size_t)g->numel * tg_dtype_size(g->dtype));
        run_backward(t);
        return;
    }
    tg_tensor *g = tg_var_grad(t, out);
    if (seed->dtype == g->dtype) tg_tensor_add(g, g, seed);   /* the vectorised kernel, not a get/set per element */
    else for (int64_t i = 0; i < g->numel; i++) tg_tensor_set(g, i, tg_tensor_get(g, i) + tg_tensor_get(seed, i));
    run_backward(t);
}

/* ------------------------------------------------------------ gradient check */

/* L = sum(w * f(in)) evaluated without recording. */
static double eval_weighted(tg_gradcheck_fn f, tg_tape *t, tg_tensor **in, int n, void *ctx, const tg_tensor *w) {
    tg_var *leaves[16];
    for (int i = 0; i < n; i++) leaves[i] = tg_leaf(t, in[i], false);
    bool prev = tg_no_grad(t);
    tg_var *out = f(t, leaves, ctx);
    tg_set_grad(t, prev);
    double s = 0;
    for (int64_t i = 0; i < out->val.numel; i++) s += tg_tensor_get(w, i) * tg_tensor_get(&out->val, i);
    return s;
}

tg_gradcheck_result tg_gradcheck(tg_gradcheck_fn f, tg_tensor **in, int n, void *ctx,
                                 double h, double atol, double rtol) {
    TG_CHECK(n >= 1 && n <= 16, "tg_gradcheck: 1 to 16 inputs, got %d", n);
    for (int i = 0; i < n; i++) TG_CHECK(in[i]->dtype == TG_F64, "tg_gradcheck: input %d is %s; gradient checks run in float64", i, tg_dtype_name(in[i]->dtype));
    tg_gradcheck_result res = {.ok = true, .worst_input = -1};
    tg_tape *t = tg_tape_new();
    tg_arena *keep = tg_arena_new();   /* weights and analytic gradients outlive the tape resets */

    /* Analytic gradients. */
    tg_var *leaves[16];
    for (int i = 0; i < n; i++) leaves[i] = tg_leaf(t, in[i], true);
    tg_var *out = f(t, leaves, ctx);
    tg_rng r = tg_rng_seed(12345);
    tg_tensor *w = tg_tensor_uniform(keep, TG_F64, out->val.shape, 0.5, 1.5, &r);
    tg_tensor *grads[16];
    if (out->requires_grad) tg_backward_seed(t, out, w);
    for (int i = 0; i < n; i++) {
        grads[i] = leaves[i]->grad.data ? tg_tensor_copy(keep, &leaves[i]->grad)
                                        : tg_tensor_zeros(keep, TG_F64, in[i]->shape);
    }
    tg_tape_reset(t);

    /* Central differences, one element at a time. */
    double worst = -1;
    for (int i = 0; i < n; i++) {
        for (int64_t j = 0; j < in[i]->numel; j++) {
            double x0 = tg_tensor_get(in[i], j);
            tg_tensor_set(in[i], j, x0 + h);
            double lp = eval_weighted(f, t, in, n, ctx, w);
            tg_tape_reset(t);
            tg_tensor_set(in[i], j, x0 - h);
            double lm = eval_weighted(f, t, in, n, ctx, w);
            tg_tape_reset(t);
            tg_tensor_set(in[i], j, x0);
            double num = (lp - lm) / (2 * h), ana = tg_tensor_get(grads[i], j);
            double err = fabs(ana - num);
            if (!(err <= atol + rtol * fabs(num))) res.ok = false;  /* NaN fails too */
            double score = isnan(err) ? INFINITY : err / (atol + rtol * fabs(num));
            if (score > worst) {
                worst = score;
                res.worst_input = i, res.worst_index = j, res.analytic = ana, res.numeric = num;
                res.max_rel_err = err / fmax(fabs(num), 1e-12);
            }
            if (isnan(err) || err > res.max_abs_err) res.max_abs_err = isnan(err) ? INFINITY : err;
            res.checked++;
        }
    }
    tg_tape_free(t);
    tg_arena_free(keep);
    return res;
}
