/*
 * data.h — loading MNIST-style datasets: IDX files, mini-batches.
 *
 * Everything here is written from scratch on libc: a reader for the IDX files
 * MNIST and Fashion-MNIST ship in (raw or gzipped, decoded by io/gzip.h), the
 * default dataset, and a shuffling mini-batch iterator. io/idx_write.h writes
 * IDX files.
 *
 *     tg_err err;
 *     tg_dataset ds;
 *     const char *dir = tg_dataset_default_dir();   // or --data DIR
 *     if (!dir) { tg_dataset_print_help(stderr); return 1; }
 *     if (tg_dataset_load(dir, &ds, &err) != 0) {
 *         fprintf(stderr, "%s\n", err.msg);          // names file and problem
 *         return 1;
 *     }
 *     tg_rng rng = tg_rng_seed(42);
 *     tg_batcher *b = tg_batcher_new(&ds.train_x, &ds.train_y, 128, true, &rng);
 *     tg_tensor *x = tg_tensor_new(arena, TG_F32, TG_SHAPE(128, 784));
 *     uint8_t y[128];
 *     for (int epoch = 0; epoch < 10; epoch++) {
 *         tg_batcher_start_epoch(b);                 // reshuffles
 *         int64_t rows;
 *         while ((rows = tg_batcher_next(b, x, y)) > 0) {
 *             // x's first `rows` rows hold pixels / 255, y the labels
 *         }
 *     }
 *     tg_batcher_free(b);
 *     tg_dataset_free(&ds);
 *
 * Errors in files are data, not aborts: every function that reads input
 * returns 0 on success, or -1 with a message in a caller-provided tg_err
 * (which may be NULL), and leaves nothing allocated behind. Messages name
 * the file and the problem, e.g.
 *   "data/mnist/train-images-idx3-ubyte.gz: gzip CRC-32 mismatch (stored
 *    1a2b3c4d, computed 5e6f7a8b)".
 * Programmer errors (a tensor of the wrong shape, batch size 0) abort through
 * TG_CHECK like the rest of the library.
 *
 * Sizes are bounded: no file or dataset may exceed TG_DATA_MAX_BYTES
 * (1 GiB, io/file.h), and sizes read from headers are checked before
 * anything is allocated for them.
 */
#ifndef TG_DATA_H
#define TG_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/file.h"

/* ------------------------------------------------------------------------ */
/* IDX arrays (idx.c) */

/* n images of rows x cols uint8 pixels, row-major, 0 = background. */
typedef struct {
    int64_t n, rows, cols;
    uint8_t *pixels;  /* (n, rows * cols), malloc'd */
} tg_images;

/* n class labels, each in [0, classes). */
typedef struct {
    int64_t n;
    int classes;
    uint8_t *labels;  /* (n), malloc'd */
} tg_labels;

/* Loads an IDX image file (magic 0x00000803: uint8, dims n, rows, cols; all
 * big-endian), raw or gzipped. The data must be exactly n*rows*cols bytes;
 * sizes over TG_DATA_MAX_BYTES are rejected from the header alone. On error
 * *out is zeroed. */
int tg_idx_images_load(const char *path, tg_images *out, tg_err *e);

/* Loads an IDX label file (magic 0x00000801: uint8, dim n), raw or gzipped,
 * checking every label is < classes (classes <= 0 means 10; more than 256
 * aborts, as uint8 labels cannot reach them). On error *out is zeroed. */
int tg_idx_labels_load(const char *path, int classes, tg_labels *out, tg_err *e);

/* As tg_idx_images_load and tg_idx_labels_load, on a file's contents
 * in[0..n) already in memory (raw or gzipped, told apart by the gzip magic
 * as for files); name stands for the file in messages. in is only read. */
int tg_idx_images_parse(const uint8_t *in, size_t n, const char *name, tg_images *out, tg_err *e);
int tg_idx_labels_parse(const uint8_t *in, size_t n, const char *name, int classes, tg_labels *out, tg_err *e);

/* Frees the arrays and zeroes the struct; safe on a zeroed struct. */
void tg_images_free(tg_images *x);
void tg_labels_free(tg_labels *y);

/* ------------------------------------------------------------------------ */
/* Datasets (idx.c) */

/* MNIST-shaped train/test split with 10 classes. */
typedef struct {
    tg_images train_x, test_x;
    tg_labels train_y, test_y;
    char dir[1024];  /* directory it was loaded from */
} tg_dataset;

/* Loads dir/{train-images-idx3-ubyte, train-labels-idx1-ubyte,
 * t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte}, each raw or with ".gz"
 * (the raw file is used when both exist). Checks that image and label counts
 * match and that train and test images have the same size. On error *ds is
 * zeroed and nothing stays allocated. */
int tg_dataset_load(const char *dir, tg_dataset *ds, tg_err *e);

/* Frees all four arrays and zeroes *ds; safe on a zeroed struct. */
void tg_dataset_free(tg_dataset *ds);

/* The first of "data/mnist" (relative to the working directory) and
 * "/usr/share/datasets/fashion-mnist" that holds all four files (raw or .gz),
 * or NULL. Returns a string literal. */
const char *tg_dataset_default_dir(void);

/* True if dir holds all four dataset files (raw or .gz). */
bool tg_dataset_exists(const char *dir);

/* Writes to f where tg_dataset_default_dir looked, which files were missing,
 * and the ways to get data: `make data`, `apt-get install
 * dataset-fashion-mnist`, `--data DIR`. */
void tg_dataset_print_help(FILE *f);

/* ------------------------------------------------------------------------ */
/* Mini-batches (batch.c) */

/* Walks a dataset in batches, in a fresh random order each epoch if shuffle.
 * Fields are read-only for callers; order[pos - rows .. pos) are the dataset
 * rows of the batch just returned. */
typedef struct {
    const tg_images *x;   /* (n, D), D = rows * cols; borrowed */
    const tg_labels *y;   /* (n) or NULL; borrowed */
    int64_t n, dim;       /* rows in the dataset, D */
    int64_t batch;        /* rows per full batch, B */
    bool shuffle;
    tg_rng *rng;          /* borrowed; used only if shuffle */
    int64_t *order;       /* (n) permutation of 0..n-1 for this epoch */
    int64_t pos;          /* next index into order */
    int64_t epoch;        /* calls of tg_batcher_start_epoch, incl. the one in _new */
} tg_batcher;

/* Creates a batcher over x (and labels y, which may be NULL) with batches of
 * `batch` rows, and starts the first epoch (shuffled if shuffle, using rng,
 * which must then outlive the batcher). Returns NULL if out of memory.
 * Aborts if batch < 1, x has no rows, y->n != x->n, or shuffle && !rng. */
tg_batcher *tg_batcher_new(const tg_images *x, const tg_labels *y, int64_t batch,
                           bool shuffle, tg_rng *rng);

/* Starts a new epoch: rewinds, and reshuffles the order if shuffle. */
void tg_batcher_start_epoch(tg_batcher *b);

/* Fills the first r rows of x_out, a float32 or float64 tensor of shape
 * (B', D) with B' >= B, with pixels / 255 of the next r dataset rows, and
 * the first r elements of y_out, an int64 tensor of shape (B'') with B'' >= B,
 * with their labels if y_out is not NULL (the batcher must then have labels):
 * the class indices tg_loss_cross_entropy and tg_one_hot take. r = min(B,
 * rows left this epoch); returns r, 0 once the epoch is exhausted (call
 * tg_batcher_start_epoch). Allocates nothing. */
int64_t tg_batcher_next(tg_batcher *b, tg_tensor *x_out, tg_tensor *y_out);

/* Binarisation, one uniform draw of r per pixel in row-major order: a pixel
 * of gray level p becomes 255 with probability p / 255, else 0 (so 0 stays 0
 * and 255 stays 255). tg_images_binarize writes a binarised copy of src into
 * *dst (pixels malloc'd; free with tg_images_free): 0, or -1 if out of memory.
 * tg_binarize_f32 does the same in place to n values in [0, 1] (a batch as
 * tg_batcher_next gives it): x becomes 1 with probability x, else 0. */
int tg_images_binarize(const tg_images *src, tg_images *dst, tg_rng *r);
void tg_binarize_f32(float *x, int64_t n, tg_rng *r);

/* Batches per epoch: ceil(n / B), counting the last partial batch. */
int64_t tg_batcher_count(const tg_batcher *b);

/* Frees the batcher (not the dataset or rng); NULL is fine. */
void tg_batcher_free(tg_batcher *b);

#endif
