/*
 * idx_write.h — saving uint8 arrays as IDX files, the format MNIST ships in
 * (idx_write.c); data/data.h reads them back.
 *
 *     tg_err err;
 *     if (tg_idx_images_save("out/samples-idx3-ubyte", px, 64, 28, 28, &err) != 0) {
 *         fprintf(stderr, "%s\n", err.msg);   // "out/...: cannot create ...: No such file or directory"
 *         return 1;
 *     }
 *
 * Files are written atomically (io/file.h). Sizes out of range are
 * programmer errors and abort through TG_CHECK.
 */
#ifndef TG_IDX_WRITE_H
#define TG_IDX_WRITE_H

#include <stdint.h>

#include "io/file.h"

/* Saves n images of rows x cols uint8 pixels, pixels (n, rows, cols)
 * row-major, as an IDX file: magic 0x00000803, the three sizes as big-endian
 * uint32, then the n*rows*cols bytes; what tg_idx_images_load reads back.
 * Aborts unless 1 <= n, rows, cols <= 2^32 - 1; returns -1 if the data would
 * exceed TG_DATA_MAX_BYTES (the loader's limit) or on any write error. */
int tg_idx_images_save(const char *path, const uint8_t *pixels, int64_t n, int64_t rows, int64_t cols,
                       tg_err *e);

/* Saves n uint8 labels (n) as an IDX file: magic 0x00000801, n as big-endian
 * uint32, then the n bytes. Same rules as tg_idx_images_save. */
int tg_idx_labels_save(const char *path, const uint8_t *labels, int64_t n, tg_err *e);

#endif
