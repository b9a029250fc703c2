/*
 * checkpoint.c — saving / loading a tg_params block as a safetensors file
 * (checkpoint.h), through io/safetensors.h.
 */
#include "nn/checkpoint.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Saving */

/* The k-th tensor a checkpoint holds: the parameters in creation order, then
 * the buffers (batch norm's running statistics, ...) in theirs. */
static int n_saved(const tg_params *ps) { return ps->count + ps->n_bufs; }
static tg_tensor *saved_tensor(const tg_params *ps, int k, const char **name) {
    if (k < ps->count) return *name = ps->vars[k]->name, &ps->vars[k]->val;
    tg_buffer *b = ps->bufs[k - ps->count];
    return *name = b->name, &b->val;
}

int tg_params_save(const tg_params *ps, const char *path, int n_meta, const char *const meta_keys[],
                   const char *const meta_vals[], tg_err *e) {
    int n = n_saved(ps);
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    const tg_tensor **ts = malloc((size_t)(n ? n : 1) * sizeof *ts);
    if (!names || !ts) {
        free(names), free(ts);
        tg_err_set(e, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) ts[i] = saved_tensor(ps, i, &names[i]);
    int rc = tg_safetensors_write(path, n, names, ts, n_meta, meta_keys, meta_vals, e);
    free(names), free(ts);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Loading */

int tg_params_load_hint(tg_params *ps, const char *path, const char *shape_hint, tg_err *e) {
    tg_safetensors st;
    if (tg_safetensors_read(path, &st, e)) return -1;
    int rc = tg_params_load_from(ps, &st, path, shape_hint, e);
    tg_safetensors_free(&st);
    return rc;
}

/* dst = src, converting between dtypes (F32, F64, I64) element by element where they differ. */
static void copy_converting(tg_tensor *dst, const tg_tensor *src) {
    if (src->dtype == dst->dtype) memcpy(dst->data, src->data, (size_t)src->numel * tg_dtype_size(src->dtype));
    else if (dst->dtype == TG_F32 && src->dtype == TG_F64)
        for (int64_t k = 0; k < src->numel; k++) TG_F32P(dst)[k] = (float)TG_F64P(src)[k];
    else if (dst->dtype == TG_F64 && src->dtype == TG_F32)
        for (int64_t k = 0; k < src->numel; k++) TG_F64P(dst)[k] = (double)TG_F32P(src)[k];
    else
        for (int64_t k = 0; k < src->numel; k++) tg_tensor_set(dst, k, tg_tensor_get(src, k));
}

int tg_params_load_from(tg_params *ps, const tg_safetensors *st, const char *path, const char *shape_hint,
                        tg_err *e) {
    int n = n_saved(ps);
    const tg_st_tensor **src = malloc((size_t)(n ? n : 1) * sizeof *src);
    if (!src) {
        tg_err_set(e, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {   /* validate everything before changing anything */
        const char *name;
        const tg_tensor *v = saved_tensor(ps, i, &name);
        const tg_st_tensor *t = tg_safetensors_find(st, name);
        if (!t) {
            tg_err_set(e, "%s: no tensor %s", path, name);
            goto fail;
        }
        if (!tg_shape_eq(t->tensor.shape, v->shape)) {
            char a[160], b[160];
            tg_err_set(e, "%s: tensor %s has shape %s but the model expects %s%s%s%s", path, name,
                       tg_safetensors_shape_str(t->tensor.shape, a),
                       tg_safetensors_shape_str(v->shape, b), shape_hint ? " (" : "",
                       shape_hint ? shape_hint : "", shape_hint ? ")" : "");
            goto fail;
        }
        src[i] = t;
    }
    for (int i = 0; i < n; i++) {
        const char *name;
        copy_converting(saved_tensor(ps, i, &name), &src[i]->tensor);
    }
    free(src);
    return 0;
fail:
    free(src);
    return -1;
}

int tg_params_load(tg_params *ps, const char *path, tg_err *e) { return tg_params_load_hint(ps, path, NULL, e); }
