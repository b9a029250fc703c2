/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader
 * (io/safetensors.c, and through it the JSON reader).
 *
 * Each input is read with tg_safetensors_parse. A rejected input must come
 * back with a message and a zeroed struct. An accepted one must be
 * consistent (valid dtypes, numel equal to the shape's product, 8-byte
 * aligned data, every name found by tg_safetensors_find, metadata equal to
 * the header's strings), and, unless a
 * tensor is called "" (which the writer refuses), must survive a
 * round trip: written with tg_safetensors_write to a scratch directory and
 * read back with tg_safetensors_read (the file path), it gives the same
 * names, metadata, shapes and bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/json.h"
#include "io/safetensors.h"

static char scratch[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(scratch, sizeof scratch, "%s/tg_fuzz_st_%ld.safetensors", base, (long)getpid());
    return 0;
}

static void check(bool ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_safetensors: %s\n", what);
        abort();
    }
}

/* Consistency of an accepted file. */
static void check_loaded(const tg_safetensors *st) {
    check(st->n >= 0 && st->n_meta >= 0, "negative counts");
    for (int i = 0; i < st->n; i++) {
        const tg_st_tensor *t = &st->tensors[i];
        check(t->name != NULL, "tensor without a name");
        check(tg_safetensors_find(st, t->name) == t, "tg_safetensors_find misses a tensor");
        check(t->tensor.dtype == TG_F32 || t->tensor.dtype == TG_F64, "bad dtype");
        check(t->tensor.shape.ndim >= 0 && t->tensor.shape.ndim <= TG_MAX_DIMS, "bad ndim");
        check(t->tensor.numel == tg_shape_numel(t->tensor.shape), "numel is not the shape's product");
        check(((uintptr_t)t->tensor.data & 7) == 0, "tensor data not 8-byte aligned");
        volatile unsigned char sink = 0;   /* touch every byte: ASan checks they are ours */
        const unsigned char *p = t->tensor.data;
        size_t bytes = (size_t)t->tensor.numel * tg_dtype_size(t->tensor.dtype);
        for (size_t k = 0; k < bytes; k++) sink ^= p[k];
        (void)sink;
    }
    for (int j = 0; j < st->n_meta; j++)
        check(st->meta_keys[j] && st->meta_vals[j] && tg_safetensors_meta(st, st->meta_keys[j]),
              "metadata lookup fails");
}

/* The metadata must be the header's strings, whole: parse the header again
 * and compare lengths and bytes. */
static void check_metadata(const uint8_t *in, const tg_safetensors *st) {
    uint64_t hn = 0;
    for (int k = 0; k < 8; k++) hn |= (uint64_t)in[k] << (8 * k);
    tg_json *h = tg_json_parse((const char *)in + 8, (size_t)hn, NULL, NULL);
    check(h != NULL, "accepted a header the JSON reader rejects");
    const tg_json *meta = tg_json_get(h, "__metadata__");
    check((int)tg_json_len(meta) == st->n_meta, "metadata count differs from the header's");
    for (int j = 0; j < st->n_meta; j++) {
        const tg_json *v = tg_json_at(meta, (size_t)j);
        check(strlen(st->meta_keys[j]) == meta->key_lens[j] &&
                  memcmp(st->meta_keys[j], meta->keys[j], meta->key_lens[j]) == 0,
              "a metadata key is not the header's");
        check(strlen(st->meta_vals[j]) == v->len && memcmp(st->meta_vals[j], v->str, v->len) == 0,
              "a metadata value is not the header's");
    }
    tg_json_free(h);
}

/* Writes st and reads it back through the file reader; both must agree. */
static void round_trip(const tg_safetensors *st) {
    int n = st->n;
    /* The reader takes a tensor called "" (as the reference library does);
     * our writer refuses to make one. */
    for (int i = 0; i < n; i++)
        if (!st->tensors[i].name[0]) return;
    const char **names = malloc(sizeof *names * (size_t)(n + 1));
    const tg_tensor **ts = malloc(sizeof *ts * (size_t)(n + 1));
    check(names && ts, "out of memory");
    for (int i = 0; i < n; i++) names[i] = st->tensors[i].name, ts[i] = &st->tensors[i].tensor;
    tg_err e = {{0}};
    /* Metadata keys and values are C strings here: a value with an embedded
     * NUL (from \u0000) comes back cut at the NUL, as the reader stores it. */
    int rc = tg_safetensors_write(scratch, n, names, ts, st->n_meta, (const char *const *)st->meta_keys,
                                  (const char *const *)st->meta_vals, &e);
    free(names), free(ts);
    if (rc) {
        fprintf(stderr, "fuzz_safetensors: writing back failed: %s\n", e.msg);
        abort();
    }
    tg_safetensors back;
    if (tg_safetensors_read(scratch, &back, &e)) {
        fprintf(stderr, "fuzz_safetensors: reading back failed: %s\n", e.msg);
        abort();
    }
    unlink(scratch);
    check(back.n == st->n && back.n_meta == st->n_meta, "round trip changed the counts");
    for (int i = 0; i < n; i++) {
        const tg_tensor *a = &st->tensors[i].tensor, *b = &back.tensors[i].tensor;
        check(strcmp(st->tensors[i].name, back.tensors[i].name) == 0, "round trip changed a name");
        check(a->dtype == b->dtype && tg_shape_eq(a->shape, b->shape), "round trip changed a dtype or shape");
        check(memcmp(a->data, b->data, (size_t)a->numel * tg_dtype_size(a->dtype)) == 0,
              "round trip changed tensor bytes");
    }
    for (int j = 0; j < st->n_meta; j++)
        check(strcmp(st->meta_keys[j], back.meta_keys[j]) == 0 && strcmp(st->meta_vals[j], back.meta_vals[j]) == 0,
              "round trip changed metadata");
    tg_safetensors_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A heap copy of exactly size bytes, so reading past the end is caught. */
    uint8_t *in = malloc(size ? size : 1);
    if (!in) return 0;
    memcpy(in, data, size);
    tg_safetensors st;
    tg_err e = {{0}};
    if (tg_safetensors_parse(in, size, "fuzz", &st, &e) != 0) {
        check(strncmp(e.msg, "fuzz: ", 6) == 0, "error without a message naming the file");
        static const tg_safetensors zero;
        check(memcmp(&st, &zero, sizeof st) == 0, "failed read left the struct non-zero");
    } else {
        check_loaded(&st);
        check_metadata(in, &st);
        round_trip(&st);
        tg_safetensors_free(&st);
    }
    free(in);
    return 0;
}
