/*
 * idx_write.c — IDX writers (idx_write.h), atomic through io/file.h.
 */
#include "io/idx_write.h"

/* ------------------------------------------------------------------------ */
/* IDX */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes a uint8 IDX array of ndim (1 or 3) dims to path. */
static int idx_save(const char *path, const char *fn, const uint8_t *data, int ndim, const int64_t *dims,
                    tg_err *e) {
    uint8_t header[16];
    put_be32(header, 0x0800u | (uint32_t)ndim);
    uint64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        TG_CHECK(dims[i] >= 1 && dims[i] <= (int64_t)UINT32_MAX,
                 "%s: dimension %d is %lld; IDX sizes must be in [1, 2^32 - 1]", fn, i, (long long)dims[i]);
        put_be32(header + 4 + 4 * i, (uint32_t)dims[i]);
        total *= (uint64_t)dims[i];  /* three factors below 2^32 each; checked as it grows */
        if (total > TG_DATA_MAX_BYTES) {
            tg_err_set(e, "%s: %s: over %zu bytes of data, more than tg_idx_*_load accepts", path, fn,
                       TG_DATA_MAX_BYTES);
            return -1;
        }
    }
    TG_CHECK(data, "%s: NULL data", fn);
    return tg_file_write_parts(path, 2, (const void *const[]){header, data},
                               (const size_t[]){4 + 4 * (size_t)ndim, (size_t)total}, e);
}

int tg_idx_images_save(const char *path, const uint8_t *pixels, int64_t n, int64_t rows, int64_t cols,
                       tg_err *e) {
    return idx_save(path, "tg_idx_images_save", pixels, 3, (const int64_t[]){n, rows, cols}, e);
}

int tg_idx_labels_save(const char *path, const uint8_t *labels, int64_t n, tg_err *e) {
    return idx_save(path, "tg_idx_labels_save", labels, 1, (const int64_t[]){n}, e);
}
