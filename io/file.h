/*
 * file.h — writing files atomically, and IDX arrays (idx_write.c).
 *
 *     tg_err err;
 *     if (tg_idx_images_save("out/samples-idx3-ubyte", px, 64, 28, 28, &err) != 0) {
 *         fprintf(stderr, "%s\n", err.msg);   // "out/...: cannot create ...: No such file or directory"
 *         return 1;
 *     }
 *
 * Every writer here builds the file under a temporary name next to it,
 * "<path>.tmp.<pid>", checks every fwrite, fflush, fsync and fclose, and only
 * then renames it onto path, so a reader sees the old file or the whole new
 * one, never a torn one. On any failure the temporary file is removed, path
 * is left as it was, and the call returns -1 with a message naming path and
 * the system's reason (strerror). Success returns 0.
 *
 * Like the readers in data.h, failures caused by the file system are errors
 * the caller reports; bad arguments (a size < 1, a NULL buffer) are programmer
 * errors and abort through TG_CHECK.
 */
#ifndef TG_FILE_H
#define TG_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "data/data.h"

/* Writes the concatenation of bufs[0..nparts) (lens[i] bytes each) to path,
 * atomically as described above. A part of length 0 may have a NULL buffer. */
int tg_file_write_parts(const char *path, int nparts, const void *const bufs[], const size_t lens[], tg_err *e);

/* Writes buf[0..n) to path atomically: tg_file_write_parts with one part. */
int tg_file_write(const char *path, const void *buf, size_t n, tg_err *e);

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
