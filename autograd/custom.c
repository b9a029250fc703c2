/*
 * custom.c — the user's own ops (tg_custom): one variadic tape entry that
 * keeps the user's functions and context, and a backward rule that hands the
 * user the gradient buffers of the inputs that want one.
 */
#include "autograd/internal.h"

#define MAX_IN 16

typedef struct {
    const tg_function *fn;
    void *ctx;
} custom_ctx;

/* out = fn->forward(in); backward: fn->backward(din, dout, out, in), din[i]
 * NULL for inputs that want no gradient. */
tg_var *tg_custom_(TG_LOC, tg_tape *t, const tg_function *fn, tg_var *const *in, int n, tg_shape out_shape,
                   void *ctx) {
    OP_CHECK(fn && fn->forward && fn->backward, "custom: a tg_function needs a forward and a backward");
    OP_CHECK(n >= 1 && n <= MAX_IN, "custom op %s: 1 to %d inputs, got %d", fn->name, MAX_IN, n);
    const tg_tensor *vals[MAX_IN];
    for (int k = 0; k < n; k++) {
        tg_check_float(file, line, fn->name, in[k]);
        tg_check_same_dtype(file, line, fn->name, in[0], in[k]);
        vals[k] = &in[k]->val;
    }
    tg_var *out = tg_var_new(t, in[0]->val.dtype, out_shape);
    fn->forward(t, &out->val, vals, n, ctx);
    tg_entry *e = tg_record_n(t, TG_OP_CUSTOM, out, in, n);
    if (e) {
        custom_ctx *c = tg_arena_alloc(tg_tape_arena(t), sizeof *c);
        *c = (custom_ctx){fn, ctx};
        e->ctx = c;
    }
    return out;
}

TG_BACKWARD(custom) {
    const custom_ctx *c = e->ctx;
    tg_tensor *din[MAX_IN];
    const tg_tensor *vals[MAX_IN];
    for (int k = 0; k < e->n_ins; k++) din[k] = grad_of(t, e->ins[k]), vals[k] = &e->ins[k]->val;
    c->fn->backward(t, din, &e->out->grad, &e->out->val, vals, e->n_ins, c->ctx);
}
