/*
 * test_groups.c — parameter groups (own learning rate and weight decay per
 * name prefix) for Adam, AdamW and SGD, and Linear without bias.
 *
 * A model whose optimizer has a group must take exactly the steps that two
 * separate optimizers would take, one over the group's parameters with the
 * group's settings and one over the rest: those single-group optimizers are
 * the ones checked against PyTorch in test_optim.c.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "nn/nn.h"
#include "optim/optim.h"
#include "tests/child.h"

typedef enum { ADAM, ADAMW, SGD } kind;

/* One optimizer of the kind over ps with (lr, wd); groups added by the caller. */
typedef struct {
    tg_adam *adam;
    tg_sgd *sgd;
} opt;

static opt opt_new(kind k, tg_params *ps, double lr, double wd) {
    opt o = {0};
    if (k == SGD) {
        o.sgd = tg_sgd_new(ps, lr, 0.9);
        o.sgd->weight_decay = wd;
    } else {
        o.adam = k == ADAMW ? tg_adamw_new(ps, lr, wd) : tg_adam_new(ps, lr);
        if (k == ADAM) o.adam->weight_decay = wd;
    }
    return o;
}

static int opt_group(opt *o, const char *prefix, double lr, double wd) {
    return o->sgd ? tg_sgd_add_group(o->sgd, prefix, lr, wd) : tg_adam_add_group(o->adam, prefix, lr, wd);
}

static void opt_step(opt *o) { o->sgd ? tg_sgd_step(o->sgd) : tg_adam_step(o->adam); }
static void opt_free(opt *o) { tg_sgd_free(o->sgd), tg_adam_free(o->adam); }

/* Fills every parameter of ps from r (values), and its gradient from a rng seeded by name and step. */
static void fill_grads(tg_params *ps, int step) {
    for (int k = 0; k < ps->count; k++) {
        tg_var *v = ps->vars[k];
        uint64_t seed = (uint64_t)step * 1000;
        for (const char *c = v->name; *c; c++) seed = seed * 31 + (uint64_t)*c;
        tg_rng r = tg_rng_seed(seed);
        tg_tensor_fill_uniform(&v->grad, -1, 1, &r);
    }
}

static void copy_values(tg_params *dst, const tg_params *src) {
    for (int k = 0; k < dst->count; k++) {
        tg_var *s = tg_params_find(src, dst->vars[k]->name);
        memcpy(dst->vars[k]->val.data, s->val.data, (size_t)s->val.numel * tg_dtype_size(s->val.dtype));
    }
}

static void check_kind(kind k, tg_dtype dt) {
    /* The model: the group ("codebook") sits between the other parameters. */
    tg_params *ps = tg_params_new(dt), *rest = tg_params_new(dt), *book = tg_params_new(dt);
    tg_params_add(ps, "enc.weight", TG_SHAPE(3, 4));
    tg_params_add(ps, "codebook", TG_SHAPE(5, 2));
    tg_params_add(ps, "enc.bias", TG_SHAPE(3));
    tg_params_add(rest, "enc.weight", TG_SHAPE(3, 4));
    tg_params_add(rest, "enc.bias", TG_SHAPE(3));
    tg_params_add(book, "codebook", TG_SHAPE(5, 2));
    tg_rng r = tg_rng_seed(9);
    tg_tensor all = tg_tensor_wrap(dt, TG_SHAPE(ps->n), ps->data);
    tg_tensor_fill_uniform(&all, -1, 1, &r);
    copy_values(rest, ps), copy_values(book, ps);

    opt o = opt_new(k, ps, 1e-2, 0.05), o_rest = opt_new(k, rest, 1e-2, 0.05), o_book = opt_new(k, book, 0.3, 0.5);
    cr_assert_eq(opt_group(&o, "code", 0.3, 0.5), 0);
    for (int step = 0; step < 4; step++) {
        fill_grads(ps, step), fill_grads(rest, step), fill_grads(book, step);
        opt_step(&o), opt_step(&o_rest), opt_step(&o_book);
    }
    for (int j = 0; j < ps->count; j++) {
        tg_var *v = ps->vars[j];
        tg_var *w = tg_params_find(strcmp(v->name, "codebook") == 0 ? book : rest, v->name);
        cr_expect_eq(memcmp(v->val.data, w->val.data, (size_t)v->val.numel * tg_dtype_size(dt)), 0,
                     "kind %d %s: %s differs from its own optimizer's", k, tg_dtype_name(dt), v->name);
    }
    /* and the group really changed something: the model without a group ends elsewhere */
    tg_var *cb = tg_params_find(ps, "codebook"), *cr = tg_params_find(rest, "enc.weight");
    cr_expect(fabs(tg_tensor_get(&cb->val, 0) - tg_tensor_get(&cr->val, 0)) > 0);
    opt_free(&o), opt_free(&o_rest), opt_free(&o_book);
    tg_params_free(ps), tg_params_free(rest), tg_params_free(book);
}

Test(groups, adam_group_steps_as_its_own_optimizer) { check_kind(ADAM, TG_F64), check_kind(ADAM, TG_F32); }
Test(groups, adamw_group_steps_as_its_own_optimizer) { check_kind(ADAMW, TG_F64), check_kind(ADAMW, TG_F32); }
Test(groups, sgd_group_steps_as_its_own_optimizer) { check_kind(SGD, TG_F64), check_kind(SGD, TG_F32); }

Test(groups, a_group_lr_can_be_scheduled_between_steps) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_var *a = tg_params_add(ps, "a", TG_SHAPE(1)), *b = tg_params_add(ps, "b", TG_SHAPE(1));
    tg_sgd *o = tg_sgd_new(ps, 1.0, 0);
    int g = tg_sgd_add_group(o, "b", 0.5, 0);
    TG_F64P(&a->grad)[0] = 1, TG_F64P(&b->grad)[0] = 1;
    tg_sgd_step(o);
    o->groups.g[g].lr = 0.25;
    tg_sgd_step(o);
    cr_expect_eq(TG_F64P(&a->val)[0], -2.0);
    cr_expect_eq(TG_F64P(&b->val)[0], -0.75);
    tg_sgd_free(o);
    tg_params_free(ps);
}

static tg_params *two_params(void) {
    tg_params *ps = tg_params_new(TG_F32);
    tg_params_add(ps, "enc.weight", TG_SHAPE(2));
    tg_params_add(ps, "dec.weight", TG_SHAPE(2));
    return ps;
}

static void group_matching_nothing(void) { tg_adam_add_group(tg_adam_new(two_params(), 1e-3), "codebook", 1, 0); }
static void parameter_in_two_groups(void) {
    tg_adam *o = tg_adam_new(two_params(), 1e-3);
    tg_adam_add_group(o, "enc", 1, 0);
    tg_adam_add_group(o, "enc.w", 1, 0);
}

Test(groups, bad_groups_abort_with_a_reason) {
    tg_expect_abort(group_matching_nothing, "tg_adam_add_group", "no parameter's name begins with \"codebook\"");
    tg_expect_abort(parameter_in_two_groups, "parameter enc.weight is already in the group of \"enc\"");
}

/* ---------------------------------------------------------------- Linear without bias */

Test(groups, linear_without_bias) {
    tg_params *ps = tg_params_new(TG_F64), *ref = tg_params_new(TG_F64);
    tg_rng r1 = tg_rng_seed(5), r2 = tg_rng_seed(5);
    tg_linear l = tg_linear_new_nobias(ps, "proj", 4, 3, &r1);
    tg_linear lb = tg_linear_new(ref, "proj", 4, 3, &r2);
    cr_expect_null(l.bias);
    cr_expect_eq(ps->count, 1);
    cr_expect_null(tg_params_find(ps, "proj.bias"));
    cr_expect_eq(memcmp(l.weight->val.data, lb.weight->val.data, 12 * sizeof(double)), 0, "same draws as with bias");
    tg_tape *t = tg_tape_new();
    tg_rng r = tg_rng_seed(6);
    tg_var *x = tg_leaf(t, tg_tensor_uniform(tg_tape_arena(t), TG_F64, TG_SHAPE(2, 5, 4), -1, 1, &r), true);
    tg_var *y = tg_linear_forward(t, &l, x), *h = tg_linear_relu(t, &l, x);
    cr_assert(tg_shape_eq(y->val.shape, TG_SHAPE(2, 5, 3)));
    for (int i = 0; i < 10; i++)
        for (int o = 0; o < 3; o++) {
            double s = 0;   /* x W^T by hand, no bias */
            for (int k = 0; k < 4; k++) s += tg_tensor_get(&x->val, i * 4 + k) * tg_tensor_get(&l.weight->val, o * 4 + k);
            cr_expect(fabs(tg_tensor_get(&y->val, i * 3 + o) - s) < 1e-14);
            cr_expect_eq(tg_tensor_get(&h->val, i * 3 + o), fmax(tg_tensor_get(&y->val, i * 3 + o), 0));
        }
    tg_backward(t, tg_sum(t, y));
    for (int o = 0; o < 3; o++)
        for (int k = 0; k < 4; k++) {
            double s = 0;   /* dW[o, k] = sum over rows of x[:, k] */
            for (int i = 0; i < 10; i++) s += tg_tensor_get(&x->val, i * 4 + k);
            cr_expect(fabs(tg_tensor_get(&l.weight->grad, o * 4 + k) - s) < 1e-13);
        }
    tg_tape_free(t);
    tg_params_free(ps), tg_params_free(ref);
}
