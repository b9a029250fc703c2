/*
 * safetensors.h — safetensors files: named tensors plus string metadata, in
 * the format PyTorch's `safetensors` library reads and writes
 * (safetensors.c). nn/checkpoint.h saves and loads a model's parameters
 * through it.
 *
 *     tg_err err;
 *     const char *names[] = {"w"}, *keys[] = {"step"}, *vals[] = {"10"};
 *     if (tg_safetensors_write("w.safetensors", 1, names, (const tg_tensor *[]){w}, 1, keys, vals, &err) != 0)
 *         { report err.msg }
 *     tg_safetensors st;
 *     if (tg_safetensors_read("w.safetensors", &st, &err) != 0) { report }
 *     const tg_st_tensor *t = tg_safetensors_find(&st, "w");      // t->tensor: dtype, shape, data
 *     const char *step = tg_safetensors_meta(&st, "step");        // "10"
 *     tg_safetensors_free(&st);
 *
 * Format (https://github.com/huggingface/safetensors):
 *   8 bytes    N, the header length, unsigned little-endian
 *   N bytes    JSON object: for each tensor
 *                "name": {"dtype": "F32", "shape": [400, 784], "data_offsets": [begin, end]}
 *              and optionally "__metadata__": {"key": "value", ...} (strings only);
 *              padded with trailing spaces so that 8 + N is a multiple of 8
 *   the rest   the data section: each tensor's values row-major, little-endian,
 *              at [begin, end) counted from the start of the data section.
 *
 * Writing puts "__metadata__" first (when there is metadata), then the tensors
 * in the order given, packed back to back from offset 0, compact JSON, so the
 * same inputs always give the same bytes. The file is written atomically:
 * to "<path>.tmp.<pid>", fsync'd, then renamed over path; on any failure the
 * temporary file is removed and path is left as it was.
 *
 * Reading checks everything before trusting it, against the file's size: the
 * header length, the JSON, each entry's fields, the dtype (F32, F64 and I64
 * are supported; others such as F16, BF16, I32 are rejected by name), at most
 * TG_MAX_DIMS dimensions, shape product x dtype size == end - begin, and that
 * the tensors, sorted by offset, tile the data section exactly (no gaps,
 * overlaps, or bytes past the last one — as the reference library requires),
 * and that no tensor name or metadata key or value holds a NUL byte (they are
 * handed out as C strings).
 * Nothing is allocated from a header claim before it has been checked
 * against the file size. Errors are "path: problem" in a tg_err.
 */
#ifndef TG_SAFETENSORS_H
#define TG_SAFETENSORS_H

#include "tensor/tensor.h"

/* One tensor of a loaded file. */
typedef struct {
    char *name;        /* NUL-terminated UTF-8 */
    tg_tensor tensor;  /* dtype, shape, numel; data in host order, 8-byte aligned, owned by the file */
} tg_st_tensor;

/* A loaded safetensors file. */
typedef struct {
    int n;                     /* tensors, in header order */
    tg_st_tensor *tensors;     /* (n) */
    int n_meta;                /* "__metadata__" entries, in header order */
    char **meta_keys, **meta_vals; /* (n_meta) each */
    void *data;                /* storage of all tensor data */
} tg_safetensors;

/* Writes tensors[i] under names[i], i < n (F32, F64 or I64, any shape with at most
 * TG_MAX_DIMS dimensions), and the string pairs meta_keys[j]: meta_vals[j],
 * j < n_meta, to path atomically. Returns 0, or -1 with "path: problem"
 * (duplicate or empty names, the name "__metadata__", names or metadata that
 * are not valid UTF-8 — all refused before anything is created; or an I/O
 * failure, with its errno text, e.g. "No space left on device"). After the
 * rename the directory is fsync'd, best effort. */
int tg_safetensors_write(const char *path, int n, const char *const names[], const tg_tensor *const tensors[],
                         int n_meta, const char *const meta_keys[], const char *const meta_vals[], tg_err *e);

/* Reads and validates path into *st. Returns 0, or -1 with "path: problem"
 * and *st zeroed. */
int tg_safetensors_read(const char *path, tg_safetensors *st, tg_err *e);
/* As tg_safetensors_read, on a file's contents buf[0..n) already in memory;
 * name stands for the file in messages. buf is only read (the tensors get
 * their own storage). */
int tg_safetensors_parse(const void *buf, size_t n, const char *name, tg_safetensors *st, tg_err *e);
/* The tensor called name, or NULL. */
const tg_st_tensor *tg_safetensors_find(const tg_safetensors *st, const char *name);
/* The metadata value for key, or NULL. */
const char *tg_safetensors_meta(const tg_safetensors *st, const char *key);
/* Frees everything and zeroes *st; safe on a zeroed struct. */
void tg_safetensors_free(tg_safetensors *st);

/* Writes shape s as the header holds it, "[400, 784]", into buf (at least
 * 160 bytes) and returns buf. */
char *tg_safetensors_shape_str(tg_shape s, char *buf);

#endif
