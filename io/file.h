/*
 * file.h — reading whole files and writing files atomically (file.c).
 *
 *     tg_err err;
 *     uint8_t *buf;
 *     size_t n;
 *     if (tg_file_read("config.json", &buf, &n, &err) != 0   // gunzipped if it is gzip
 *         || tg_file_write("copy.json", buf, n, &err) != 0) {
 *         fprintf(stderr, "%s\n", err.msg);   // "copy.json: cannot create temporary file ...: Permission denied"
 *         return 1;
 *     }
 *     free(buf);
 *
 * Reading is bounded: no file or decompressed content may exceed
 * TG_DATA_MAX_BYTES (1 GiB).
 *
 * Every writer here builds the file under a temporary name next to it,
 * "<path>.tmp.<pid>", checks every fwrite, fflush, fsync and fclose, and only
 * then renames it onto path, so a reader sees the old file or the whole new
 * one, never a torn one. On any failure the temporary file is removed, path
 * is left as it was, and the call returns -1 with a message naming path and
 * the system's reason (strerror). Success returns 0.
 *
 * Failures caused by the file system are errors the caller reports; bad
 * arguments (a NULL path or buffer) are programmer errors and abort through
 * TG_CHECK.
 */
#ifndef TG_FILE_H
#define TG_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

/* Largest decompressed stream, file or image array we accept: 1 GiB. */
#define TG_DATA_MAX_BYTES ((size_t)1 << 30)

/* Reads the whole file at path into a malloc'd *buf of *n bytes; if it starts
 * with the gzip magic it is decompressed transparently (whatever its name).
 * Errors ("path: problem") for missing/unreadable files, non-regular files,
 * files or contents over TG_DATA_MAX_BYTES, and any gzip error. */
int tg_file_read(const char *path, uint8_t **buf, size_t *n, tg_err *e);

/* Writes the concatenation of bufs[0..nparts) (lens[i] bytes each) to path,
 * atomically as described above. A part of length 0 may have a NULL buffer. */
int tg_file_write_parts(const char *path, int nparts, const void *const bufs[], const size_t lens[], tg_err *e);

/* Writes buf[0..n) to path atomically: tg_file_write_parts with one part. */
int tg_file_write(const char *path, const void *buf, size_t n, tg_err *e);

#endif
