/*
 * idx.c — IDX arrays (raw or gzip) and MNIST-style datasets.
 *
 * IDX (http://yann.lecun.com/exdb/mnist/) is a 4-byte magic 00 00 TT DD,
 * where TT is the element type (08 = unsigned byte) and DD the number of
 * dimensions, then DD big-endian uint32 sizes, then the elements row-major.
 * Images are 00 00 08 03 (n, rows, cols), labels 00 00 08 01 (n).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data.h"
#include "io/gzip.h"

/* ------------------------------------------------------------------------ */
/* IDX */

/* Big-endian 32-bit load. */
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parses buf[0..n), a malloc'd buffer holding a whole (decompressed) file
 * called path, as a uint8 IDX array of ndim dimensions (1 or 3), taking
 * ownership of buf. On success dims[0..ndim) are the sizes (all >= 1) and
 * buf holds exactly the dims-product data bytes, moved to its start (the
 * caller frees it). On error frees buf and returns -1 with "path: problem".
 * `what` names the elements in messages ("images", "labels"). */
static int idx_parse(uint8_t *buf, size_t n, const char *path, int ndim, const char *what, int64_t dims[3],
                     tg_err *e) {
    uint8_t *p = buf;
    size_t header = 4 + 4 * (size_t)ndim;
    if (n < 4) {
        tg_err_set(e, "%s: truncated: %zu bytes, too short for an IDX header", path, n);
        goto fail;
    }
    uint32_t magic = be32(p), want = 0x0800u | (uint32_t)ndim;
    if (magic != want) {
        const char *hint = "";
        if ((magic & 0xffffff00u) != 0x00000800u) hint = " (not a uint8 IDX file)";
        else if ((magic & 0xff) == 1 && ndim == 3) hint = " (a label file?)";
        else if ((magic & 0xff) == 3 && ndim == 1) hint = " (an image file?)";
        tg_err_set(e, "%s: bad IDX magic 0x%08x, expected 0x%08x for %s%s", path, magic, want, what, hint);
        goto fail;
    }
    if (n < header) {
        tg_err_set(e, "%s: truncated: %zu bytes, the IDX header needs %zu", path, n, header);
        goto fail;
    }
    /* Check sizes before anything depends on them. Each is below 2^32, so
     * stop multiplying as soon as the product passes the limit. */
    char dimstr[64] = "";
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(p + 4 + 4 * i);
        size_t used = strlen(dimstr);
        snprintf(dimstr + used, sizeof dimstr - used, "%s%lld", i ? " x " : "", (long long)dims[i]);
    }
    uint64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] == 0) {
            tg_err_set(e, "%s: IDX dimensions %s: dimension %d is 0 (no %s)", path, dimstr, i, what);
            goto fail;
        }
        total *= (uint64_t)dims[i];
        if (total > TG_DATA_MAX_BYTES) {
            tg_err_set(e, "%s: absurd IDX header: %s %s need over %zu bytes", path, dimstr, what,
                       TG_DATA_MAX_BYTES);
            goto fail;
        }
    }
    char said[160];
    if (ndim == 3)
        snprintf(said, sizeof said, "%lld %s of %lldx%lld (%llu bytes)", (long long)dims[0], what,
                 (long long)dims[1], (long long)dims[2], (unsigned long long)total);
    else
        snprintf(said, sizeof said, "%lld %s (%llu bytes)", (long long)dims[0], what, (unsigned long long)total);
    if (n - header < total) {
        tg_err_set(e, "%s: truncated: header says %s but the file has %zu data bytes after the %zu-byte header",
                   path, said, n - header, header);
        goto fail;
    }
    if (n - header > total) {
        tg_err_set(e, "%s: %llu bytes of trailing data: header says %s but the file has %zu", path,
                   (unsigned long long)(n - header - total), said, n - header);
        goto fail;
    }
    memmove(p, p + header, total);
    return 0;
fail:
    free(buf);
    return -1;
}

/* A malloc'd copy of a file's contents in[0..n), decompressed if it starts
 * with the gzip magic (as tg_file_read does for a file called name). */
static int contents_copy(const uint8_t *in, size_t n, const char *name, uint8_t **buf, size_t *out_n, tg_err *e) {
    if (tg_is_gzip(in, n)) {
        if (tg_gunzip(in, n, buf, out_n, e) == 0) return 0;
        tg_err_prefix(e, name);
        return -1;
    }
    if (n > TG_DATA_MAX_BYTES) {
        tg_err_set(e, "%s: %zu bytes, over the limit of %zu", name, n, TG_DATA_MAX_BYTES);
        return -1;
    }
    if (!(*buf = malloc(n ? n : 1))) {
        tg_err_set(e, "%s: out of memory copying %zu bytes", name, n);
        return -1;
    }
    if (n) memcpy(*buf, in, n);
    *out_n = n;
    return 0;
}

/* Images from buf[0..n), owned (see idx_parse). */
static int images_from(uint8_t *buf, size_t n, const char *name, tg_images *out, tg_err *e) {
    int64_t d[3];
    if (idx_parse(buf, n, name, 3, "images", d, e)) return -1;
    *out = (tg_images){.n = d[0], .rows = d[1], .cols = d[2], .pixels = buf};
    return 0;
}

/* Labels from buf[0..n), owned (see idx_parse), each checked < classes. */
static int labels_from(uint8_t *buf, size_t n, const char *name, int classes, tg_labels *out, tg_err *e) {
    int64_t d[3];
    if (idx_parse(buf, n, name, 1, "labels", d, e)) return -1;
    for (int64_t i = 0; i < d[0]; i++) {
        if (buf[i] >= classes) {
            tg_err_set(e, "%s: label %u at index %lld is out of range [0, %d)", name, buf[i], (long long)i,
                       classes);
            free(buf);
            return -1;
        }
    }
    *out = (tg_labels){.n = d[0], .classes = classes, .labels = buf};
    return 0;
}

/* classes as tg_idx_labels_load takes it: <= 0 means 10, over 256 aborts. */
static int label_classes(int classes) {
    if (classes <= 0) classes = 10;
    TG_CHECK(classes <= 256, "tg_idx_labels_load: %d classes do not fit in uint8 labels", classes);
    return classes;
}

int tg_idx_images_load(const char *path, tg_images *out, tg_err *e) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t n;
    if (tg_file_read(path, &buf, &n, e)) return -1;
    return images_from(buf, n, path, out, e);
}

int tg_idx_labels_load(const char *path, int classes, tg_labels *out, tg_err *e) {
    memset(out, 0, sizeof *out);
    classes = label_classes(classes);
    uint8_t *buf;
    size_t n;
    if (tg_file_read(path, &buf, &n, e)) return -1;
    return labels_from(buf, n, path, classes, out, e);
}

int tg_idx_images_parse(const uint8_t *in, size_t n, const char *name, tg_images *out, tg_err *e) {
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    if (contents_copy(in, n, name, &buf, &len, e)) return -1;
    return images_from(buf, len, name, out, e);
}

int tg_idx_labels_parse(const uint8_t *in, size_t n, const char *name, int classes, tg_labels *out, tg_err *e) {
    memset(out, 0, sizeof *out);
    classes = label_classes(classes);
    uint8_t *buf;
    size_t len;
    if (contents_copy(in, n, name, &buf, &len, e)) return -1;
    return labels_from(buf, len, name, classes, out, e);
}

void tg_images_free(tg_images *x) {
    free(x->pixels);
    memset(x, 0, sizeof *x);
}

void tg_labels_free(tg_labels *y) {
    free(y->labels);
    memset(y, 0, sizeof *y);
}

/* ------------------------------------------------------------------------ */
/* Datasets */

enum { TRAIN_X, TRAIN_Y, TEST_X, TEST_Y };
static const char *const file_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
static const char *const default_dirs[2] = {"data/mnist", "/usr/share/datasets/fashion-mnist"};

/* True if path names a regular file (following symlinks). */
static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Sets path to dir/name if that file exists, else to dir/name.gz if that one
 * does. Returns 0, or -1 with an error naming the file if neither exists. */
static int dataset_file(const char *dir, const char *name, char *path, size_t cap, tg_err *e) {
    int len = snprintf(path, cap, "%s/%s", dir, name);
    if (len < 0 || (size_t)len + 4 > cap) {
        tg_err_set(e, "%s: directory name too long", dir);
        return -1;
    }
    if (is_file(path)) return 0;
    strcat(path, ".gz");
    if (is_file(path)) return 0;
    tg_err_set(e, "%s/%s: not found (nor %s.gz)", dir, name, name);
    return -1;
}

int tg_dataset_load(const char *dir, tg_dataset *ds, tg_err *e) {
    memset(ds, 0, sizeof *ds);
    if (strlen(dir) >= sizeof ds->dir) {
        tg_err_set(e, "%s: directory name too long", dir);
        return -1;
    }
    char path[4][sizeof ds->dir + 32];
    for (int i = 0; i < 4; i++)
        if (dataset_file(dir, file_names[i], path[i], sizeof path[i], e)) return -1;
    if (tg_idx_images_load(path[TRAIN_X], &ds->train_x, e) ||
        tg_idx_labels_load(path[TRAIN_Y], 10, &ds->train_y, e) ||
        tg_idx_images_load(path[TEST_X], &ds->test_x, e) ||
        tg_idx_labels_load(path[TEST_Y], 10, &ds->test_y, e))
        goto fail;
    const tg_images *X[2] = {&ds->train_x, &ds->test_x};
    const tg_labels *Y[2] = {&ds->train_y, &ds->test_y};
    for (int s = 0; s < 2; s++) {
        if (X[s]->n != Y[s]->n) {
            tg_err_set(e, "%s: %s has %lld images but %s has %lld labels", dir, file_names[2 * s],
                       (long long)X[s]->n, file_names[2 * s + 1], (long long)Y[s]->n);
            goto fail;
        }
    }
    if (ds->train_x.rows != ds->test_x.rows || ds->train_x.cols != ds->test_x.cols) {
        tg_err_set(e, "%s: train images are %lldx%lld but test images are %lldx%lld", dir,
                   (long long)ds->train_x.rows, (long long)ds->train_x.cols, (long long)ds->test_x.rows,
                   (long long)ds->test_x.cols);
        goto fail;
    }
    strcpy(ds->dir, dir);
    return 0;
fail:
    tg_dataset_free(ds);
    return -1;
}

void tg_dataset_free(tg_dataset *ds) {
    tg_images_free(&ds->train_x);
    tg_images_free(&ds->test_x);
    tg_labels_free(&ds->train_y);
    tg_labels_free(&ds->test_y);
    memset(ds, 0, sizeof *ds);
}

bool tg_dataset_exists(const char *dir) {
    char path[1100];
    for (int i = 0; i < 4; i++)
        if (dataset_file(dir, file_names[i], path, sizeof path, NULL)) return false;
    return true;
}

const char *tg_dataset_default_dir(void) {
    for (int i = 0; i < 2; i++)
        if (tg_dataset_exists(default_dirs[i])) return default_dirs[i];
    return NULL;
}

void tg_dataset_print_help(FILE *f) {
    char cwd[1024];
    if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "?");
    fprintf(f, "No dataset found in the default places:\n");
    for (int i = 0; i < 2; i++) {
        const char *dir = default_dirs[i];
        struct stat st;
        fprintf(f, "  %s", dir);
        if (dir[0] != '/') fprintf(f, " (under %s)", cwd);
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(f, ": no such directory\n");
            continue;
        }
        char path[1100];
        int missing = 0;
        for (int k = 0; k < 4; k++)
            if (dataset_file(dir, file_names[k], path, sizeof path, NULL))
                fprintf(f, "%s %s[.gz]", missing++ ? "" : ": missing", file_names[k]);
        fprintf(f, "%s\n", missing ? "" : ": all four files present");
    }
    fprintf(f,
            "Get data in one of these ways:\n"
            "  make data                                    download MNIST into data/mnist/\n"
            "                                               (needs internet; checks MD5 sums)\n"
            "  sudo apt-get install dataset-fashion-mnist   install Fashion-MNIST into\n"
            "                                               /usr/share/datasets/fashion-mnist/\n"
            "  --data DIR                                   use DIR, holding the four IDX files\n"
            "                                               (each raw or .gz):\n"
            "      %s  %s\n"
            "      %s   %s\n",
            file_names[0], file_names[1], file_names[2], file_names[3]);
}
