/*
 * file.c — whole-file reading (raw or gzip) and atomic file writes (file.h).
 *
 * An atomic write goes to "<path>.tmp.<pid>" in the same directory (so the
 * final rename stays within one file system), is flushed and fsync'ed, and
 * is renamed over path only once every step has succeeded.
 */
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gzip.h"

/* ------------------------------------------------------------------------ */
/* Reading */

int tg_file_read(const char *path, uint8_t **buf, size_t *n, tg_err *e) {
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        tg_err_set(e, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        tg_err_set(e, "%s: cannot stat: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        tg_err_set(e, "%s: not a regular file", path);
        fclose(f);
        return -1;
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > TG_DATA_MAX_BYTES) {
        tg_err_set(e, "%s: file is %lld bytes, over the limit of %zu", path, (long long)st.st_size,
                   TG_DATA_MAX_BYTES);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *raw = malloc(size ? size : 1);
    if (!raw) {
        tg_err_set(e, "%s: out of memory reading %zu bytes", path, size);
        fclose(f);
        return -1;
    }
    size_t got = fread(raw, 1, size, f);
    bool read_error = ferror(f);
    fclose(f);
    if (got != size) {
        if (read_error) tg_err_set(e, "%s: read error after %zu of %zu bytes", path, got, size);
        else tg_err_set(e, "%s: file shrank while reading (%zu of %zu bytes)", path, got, size);
        free(raw);
        return -1;
    }
    if (tg_is_gzip(raw, size)) {
        uint8_t *out;
        size_t out_n;
        int rc = tg_gunzip(raw, size, &out, &out_n, e);
        free(raw);
        if (rc) {
            tg_err_prefix(e, path);
            return -1;
        }
        raw = out;
        size = out_n;
    }
    *buf = raw;
    *n = size;
    return 0;
}

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
