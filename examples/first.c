/*
 * first.c — the smallest complete tapegrad program: a 2-8-1 network learns
 * XOR. It prints the tape of one training step, the loss as it falls, the
 * predictions, and a gradient check of the whole model (backward against
 * central differences).   make build/first && build/first
 */
#include <stdio.h>

#include "tapegrad.h"

typedef struct {
    tg_linear fc1, fc2;   /* 2 -> 8 (tanh), 8 -> 1 */
} mlp;

/* The mean binary cross-entropy of the network's logits for x (4, 2) against y (4, 1). */
static tg_var *loss_of(tg_tape *t, const mlp *m, tg_var *x, tg_var *y) {
    tg_var *h = tg_name(tg_tanh(t, tg_linear_forward(t, &m->fc1, x)), "h");
    tg_var *logits = tg_name(tg_linear_forward(t, &m->fc2, h), "logits");
    return tg_name(tg_loss_bce_logits(t, logits, y, TG_REDUCE_MEAN), "loss");
}

/* The same loss with the parameters as inputs, for the gradient check. */
static tg_var *loss_of_params(tg_tape *t, tg_var **w, void *data) {
    tg_tensor **xy = data;
    mlp m = {{w[0], w[1], 2, 8}, {w[2], w[3], 8, 1}};
    return loss_of(t, &m, tg_leaf(t, xy[0], false), tg_leaf(t, xy[1], false));
}

int main(void) {
    static const double X[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}}, Y[4] = {0, 1, 1, 0};
    tg_arena *keep = tg_arena_new();
    tg_tensor *x = tg_tensor_from(keep, TG_F64, TG_SHAPE(4, 2), X, TG_F64);
    tg_tensor *y = tg_tensor_from(keep, TG_F64, TG_SHAPE(4, 1), Y, TG_F64);

    tg_rng rng = tg_rng_seed(1);
    tg_params *ps = tg_params_new(TG_F64);   /* float64, so the gradient check is exact enough */
    mlp m = {tg_linear_new(ps, "fc1", 2, 8, &rng), tg_linear_new(ps, "fc2", 8, 1, &rng)};
    tg_adam *opt = tg_adam_new(ps, 0.05);
    tg_tape *t = tg_tape_new();
    for (int step = 0; step <= 300; step++) {
        tg_params_zero_grad(ps);
        tg_var *loss = loss_of(t, &m, tg_name(tg_leaf(t, x, false), "x"), tg_name(tg_leaf(t, y, false), "y"));
        if (step == 0) tg_tape_print(t, stdout);   /* before backward, which forgets the tape */
        tg_backward(t, loss);                      /* fills every parameter's grad */
        tg_adam_step(opt);
        if (step % 50 == 0) printf("step %3d  loss %.6f\n", step, tg_item(loss));
        tg_tape_reset(t);                          /* the step's memory, all at once */
    }

    bool prev = tg_no_grad(t);   /* predictions: nothing recorded */
    tg_var *h = tg_tanh(t, tg_linear_forward(t, &m.fc1, tg_leaf(t, x, false)));
    tg_var *p = tg_sigmoid(t, tg_linear_forward(t, &m.fc2, h));
    for (int i = 0; i < 4; i++) printf("xor(%g, %g) = %.3f\n", X[i][0], X[i][1], tg_tensor_get(&p->val, i));
    tg_set_grad(t, prev);
    tg_tape_reset(t);

    tg_tensor *w[4] = {&m.fc1.weight->val, &m.fc1.bias->val, &m.fc2.weight->val, &m.fc2.bias->val};
    tg_tensor *xy[2] = {x, y};
    tg_gradcheck_result r = tg_gradcheck(loss_of_params, w, 4, xy, 1e-6, 1e-8, 1e-6);
    printf("gradient check of %lld parameters: %s\n", (long long)r.checked, r.ok ? "ok" : "FAILED");

    tg_tape_free(t);
    tg_adam_free(opt);
    tg_params_free(ps);
    tg_arena_free(keep);
    return r.ok ? 0 : 1;
}
