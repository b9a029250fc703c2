/*
 * batch.c — the mini-batch iterator: a permutation of the rows, reshuffled
 * at the start of every epoch, walked B rows at a time. Pixels are converted
 * through a 256-entry table, so a batch costs one table lookup per value and
 * no allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "tensor/kernels.h"

tg_batcher *tg_batcher_new(const tg_images *x, const tg_labels *y, int64_t batch, bool shuffle, tg_rng *rng) {
    TG_CHECK(x && x->pixels && x->n > 0 && x->rows > 0 && x->cols > 0,
             "tg_batcher_new: no images (load a dataset first)");
    TG_CHECK(batch >= 1, "tg_batcher_new: batch size %lld, must be >= 1", (long long)batch);
    TG_CHECK(!y || (y->labels && y->n == x->n), "tg_batcher_new: %lld images but %lld labels", (long long)x->n,
             (long long)(y ? y->n : 0));
    TG_CHECK(!shuffle || rng, "tg_batcher_new: shuffle needs an rng");
    if ((uint64_t)x->n > SIZE_MAX / sizeof(int64_t)) return NULL;
    tg_batcher *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->order = malloc((size_t)x->n * sizeof *b->order);
    if (!b->order) {
        free(b);
        return NULL;
    }
    b->x = x;
    b->y = y;
    b->n = x->n;
    b->dim = x->rows * x->cols;
    b->batch = batch;
    b->shuffle = shuffle;
    b->rng = rng;
    tg_batcher_start_epoch(b);
    return b;
}

void tg_batcher_start_epoch(tg_batcher *b) {
    /* Start from the identity so an epoch's order depends only on the rng
     * state, not on earlier epochs. */
    for (int64_t i = 0; i < b->n; i++) b->order[i] = i;
    if (b->shuffle) tg_rng_shuffle(b->rng, b->order, b->n);
    b->pos = 0;
    b->epoch++;
}

int64_t tg_batcher_next(tg_batcher *b, tg_tensor *x_out, tg_tensor *y_out) {
    if (x_out->shape.ndim != 2 || x_out->shape.d[0] < b->batch || x_out->shape.d[1] != b->dim) {
        char s[96];
        tg_die(__FILE__, __LINE__, "tg_batcher_next: x_out is %s, expected (B, %lld) with B >= %lld",
               tg_shape_str(x_out->shape, s), (long long)b->dim, (long long)b->batch);
    }
    TG_CHECK(!y_out || b->y, "tg_batcher_next: labels requested from a batcher made without labels");
    if (y_out && (y_out->dtype != TG_I64 || y_out->shape.ndim != 1 || y_out->shape.d[0] < b->batch)) {
        char s[96];
        tg_die(__FILE__, __LINE__, "tg_batcher_next: y_out is %s %s, expected int64 (B) with B >= %lld",
               tg_shape_str(y_out->shape, s), tg_dtype_name(y_out->dtype), (long long)b->batch);
    }
    int64_t rows = b->n - b->pos < b->batch ? b->n - b->pos : b->batch;
    if (rows <= 0) return 0;
    const int64_t *idx = b->order + b->pos;
    tg_tensor_rows_from_u8(x_out, b->x->pixels, idx, rows, b->dim);   /* pixels / 255 */
    if (y_out)
        for (int64_t i = 0; i < rows; i++) TG_I64P(y_out)[i] = b->y->labels[idx[i]];
    b->pos += rows;
    return rows;
}

int64_t tg_batcher_count(const tg_batcher *b) {
    return (b->n + b->batch - 1) / b->batch;
}

void tg_batcher_free(tg_batcher *b) {
    if (!b) return;
    free(b->order);
    free(b);
}

int tg_images_binarize(const tg_images *src, tg_images *dst, tg_rng *r) {
    *dst = *src;
    size_t n = (size_t)(src->n * src->rows * src->cols);
    dst->pixels = malloc(n ? n : 1);
    if (!dst->pixels) return -1;
    for (size_t i = 0; i < n; i++) dst->pixels[i] = tg_rng_uniform(r) * 255.0 < src->pixels[i] ? 255 : 0;
    return 0;
}

void tg_binarize_f32(float *x, int64_t n, tg_rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = tg_rng_uniform(r) < x[i] ? 1.0f : 0.0f;
}
