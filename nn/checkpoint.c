/*
 * checkpoint.c — saving / loading a tg_params block as a safetensors file
 * (checkpoint.h), through io/safetensors.h.
 */
#include "nn/checkpoint.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Saving */

int tg_params_save(const tg_params *ps, const char *path, int n_meta, const char *const meta_keys[],
                   const char *const meta_vals[], tg_err *e) {
    int n = ps->count;
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    const tg_tensor **ts = malloc((size_t)(n ? n : 1) * sizeof *ts);
    if (!names || !ts) {
        free(names), free(ts);
        tg_err_set(e, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) names[i] = ps->vars[i]->name, ts[i] = &ps->vars[i]->val;
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

int tg_params_load_from(tg_params *ps, const tg_safetensors *st, const char *path, const char *shape_hint,
                        tg_err *e) {
    const tg_st_tensor **src = malloc((size_t)(ps->count ? ps->count : 1) * sizeof *src);
    if (!src) {
        tg_err_set(e, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < ps->count; i++) {   /* validate everything before changing anything */
        const tg_var *v = ps->vars[i];
        const tg_st_tensor *t = tg_safetensors_find(st, v->name);
        if (!t) {
            tg_err_set(e, "%s: no tensor %s", path, v->name);
            goto fail;
        }
        if (!tg_shape_eq(t->tensor.shape, v->val.shape)) {
            char a[160], b[160];
            tg_err_set(e, "%s: tensor %s has shape %s but the model expects %s%s%s%s", path, v->name,
                       tg_safetensors_shape_str(t->tensor.shape, a),
                       tg_safetensors_shape_str(v->val.shape, b), shape_hint ? " (" : "",
                       shape_hint ? shape_hint : "", shape_hint ? ")" : "");
            goto fail;
        }
        src[i] = t;
    }
    for (int i = 0; i < ps->count; i++) {
        tg_tensor *dst = &ps->vars[i]->val;
        const tg_tensor *s = &src[i]->tensor;
        if (s->dtype == dst->dtype) memcpy(dst->data, s->data, (size_t)s->numel * tg_dtype_size(s->dtype));
        else if (dst->dtype == TG_F32)
            for (int64_t k = 0; k < s->numel; k++) TG_F32P(dst)[k] = (float)TG_F64P(s)[k];
        else
            for (int64_t k = 0; k < s->numel; k++) TG_F64P(dst)[k] = (double)TG_F32P(s)[k];
    }
    free(src);
    return 0;
fail:
    free(src);
    return -1;
}

int tg_params_load(tg_params *ps, const char *path, tg_err *e) { return tg_params_load_hint(ps, path, NULL, e); }
