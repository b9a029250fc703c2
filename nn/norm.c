/* norm.c — the train / eval switch, buffers, and the LayerNorm, BatchNorm
 * and Dropout layers (nn.h), over autograd/norm.c's ops. */
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/kernels.h"

void tg_params_train(tg_params *ps, bool training) { ps->training = training; }

/* ---------------------------------------------------------------- buffers */

tg_tensor *tg_params_add_buffer(tg_params *ps, const char *name, tg_dtype dt, tg_shape s) {
    TG_CHECK(!tg_params_find(ps, name) && !tg_params_find_buffer(ps, name),
             "tg_params_add_buffer: a parameter or buffer called \"%s\" already exists", name);
    if (ps->n_bufs == ps->bufs_cap) {
        ps->bufs_cap = ps->bufs_cap ? 2 * ps->bufs_cap : 8;
        ps->bufs = realloc(ps->bufs, (size_t)ps->bufs_cap * sizeof *ps->bufs);
        TG_CHECK(ps->bufs, "tg_params_add_buffer: out of memory");
    }
    tg_buffer *b = calloc(1, sizeof *b);
    char *nm = malloc(strlen(name) + 1);
    int64_t numel = tg_shape_numel(s);
    void *data = calloc((size_t)(numel ? numel : 1), tg_dtype_size(dt));
    TG_CHECK(b && nm && data, "tg_params_add_buffer: out of memory for %s", name);
    b->name = strcpy(nm, name);
    b->val = tg_tensor_wrap(dt, s, data);
    ps->bufs[ps->n_bufs++] = b;
    return &b->val;
}

tg_tensor *tg_params_find_buffer(const tg_params *ps, const char *name) {
    for (int i = 0; i < ps->n_bufs; i++)
        if (strcmp(ps->bufs[i]->name, name) == 0) return &ps->bufs[i]->val;
    return NULL;
}

/* ---------------------------------------------------------------- layers */

/* "<name>.<what>" in buf. */
static const char *member(char *buf, size_t n, const char *name, const char *what) {
    snprintf(buf, n, "%s.%s", name, what);
    return buf;
}

tg_layernorm tg_layernorm_new(tg_params *ps, const char *name, tg_shape normalized_shape) {
    char buf[256];
    TG_CHECK(normalized_shape.ndim >= 1 && tg_shape_numel(normalized_shape) > 0,
             "tg_layernorm_new: %s: normalized_shape must have at least one dim and elements", name);
    tg_layernorm l = {.ndim = normalized_shape.ndim, .eps = 1e-5};
    l.weight = tg_params_add(ps, member(buf, sizeof buf, name, "weight"), normalized_shape);
    l.bias = tg_params_add(ps, member(buf, sizeof buf, name, "bias"), normalized_shape);
    tg_tensor_fill(&l.weight->val, 1);
    return l;
}

tg_var *tg_layernorm_forward_(TG_LOC, tg_tape *t, const tg_layernorm *l, tg_var *x) {
    return tg_layer_norm_(file, line, t, x, l->ndim, l->weight, l->bias, l->eps);
}

tg_batchnorm tg_batchnorm_new(tg_params *ps, const char *name, int64_t num_features) {
    char buf[256];
    TG_CHECK(num_features > 0, "tg_batchnorm_new: %s: num_features must be positive, got %lld", name,
             (long long)num_features);
    tg_batchnorm l = {.ps = ps, .momentum = 0.1, .eps = 1e-5};
    l.weight = tg_params_add(ps, member(buf, sizeof buf, name, "weight"), TG_SHAPE(num_features));
    l.bias = tg_params_add(ps, member(buf, sizeof buf, name, "bias"), TG_SHAPE(num_features));
    tg_tensor_fill(&l.weight->val, 1);
    l.running_mean = tg_params_add_buffer(ps, member(buf, sizeof buf, name, "running_mean"), ps->dtype,
                                          TG_SHAPE(num_features));
    l.running_var = tg_params_add_buffer(ps, member(buf, sizeof buf, name, "running_var"), ps->dtype,
                                         TG_SHAPE(num_features));
    tg_tensor_fill(l.running_var, 1);
    l.num_batches_tracked = tg_params_add_buffer(ps, member(buf, sizeof buf, name, "num_batches_tracked"), TG_I64,
                                                 TG_SCALAR_SHAPE);
    return l;
}

tg_var *tg_batchnorm_forward_(TG_LOC, tg_tape *t, tg_batchnorm *l, tg_var *x) {
    bool training = l->ps->training;
    tg_var *y = tg_batch_norm_(file, line, t, x, l->weight, l->bias, l->running_mean, l->running_var, training,
                               l->momentum, l->eps);
    if (training) TG_I64P(l->num_batches_tracked)[0]++;
    return y;
}

tg_dropout_layer tg_dropout_new(const tg_params *ps, double p, tg_rng *r) {
    TG_CHECK(p >= 0 && p <= 1, "tg_dropout_new: p %g must be in [0, 1]", p);
    return (tg_dropout_layer){.ps = ps, .p = p, .rng = r};
}

tg_var *tg_dropout_forward_(TG_LOC, tg_tape *t, const tg_dropout_layer *l, tg_var *x) {
    return tg_dropout_(file, line, t, x, l->p, l->ps->training, l->rng);
}
