/*
 * idx_write.c — atomic file writes and IDX writers (file.h).
 *
 * An atomic write goes to "<path>.tmp.<pid>" in the same directory (so the
 * final rename stays within one file system), is flushed and fsync'ed, and
 * is renamed over path only once every step has succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"

/* ------------------------------------------------------------------------ */
/* Atomic writes */

/* Best effort: makes the rename itself durable by syncing the directory. */
static void sync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n >= sizeof dir) return;
    if (n == 0) strcpy(dir, slash ? "/" : ".");
    else memcpy(dir, path, n), dir[n] = 0;
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

int tg_file_write_parts(const char *path, int nparts, const void *const bufs[], const size_t lens[], tg_err *e) {
    TG_CHECK(path && nparts >= 0 && (nparts == 0 || (bufs && lens)), "tg_file_write_parts: bad arguments");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        tg_err_set(e, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());

    const char *step = "cannot create";
    FILE *f = fopen(tmp, "wb");
    if (!f) goto fail;
    step = "write failed on";
    for (int i = 0; i < nparts; i++) {
        if (lens[i] == 0) continue;
        TG_CHECK(bufs[i], "tg_file_write_parts: part %d of %zu bytes is NULL", i, lens[i]);
        errno = 0;
        if (fwrite(bufs[i], 1, lens[i], f) != lens[i]) goto fail;
    }
    step = "cannot flush";
    errno = 0;
    if (fflush(f) != 0) goto fail;
    step = "cannot fsync";
    /* EINVAL: the file is on something that cannot be synced (e.g. a pipe
     * behind a symlink); nothing more can be done there. */
    if (fsync(fileno(f)) != 0 && errno != EINVAL) goto fail;
    step = "cannot close";
    errno = 0;
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) goto fail;
    step = "cannot rename";
    if (rename(tmp, path) != 0) goto fail;
    sync_parent_dir(path);
    free(tmp);
    return 0;

fail:;
    int err = errno;
    if (f) fclose(f);
    remove(tmp);
    const char *base = strrchr(tmp, '/');   /* the directory is path's: name it once */
    tg_err_set(e, "%s: %s temporary file %s: %s", path, step, base ? base + 1 : tmp, err ? strerror(err) : "unknown error");
    free(tmp);
    return -1;
}

int tg_file_write(const char *path, const void *buf, size_t n, tg_err *e) {
    return tg_file_write_parts(path, 1, (const void *const[]){buf}, (const size_t[]){n}, e);
}

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
