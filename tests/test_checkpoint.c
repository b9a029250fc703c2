/*
 * test_checkpoint.c — safetensors files and parameter checkpoints
 * (io/safetensors.h, nn/checkpoint.h).
 *
 * Compatibility with PyTorch's `safetensors` rests on the byte-exact layout
 * test below: the expected file is spelled out by hand from the format's
 * definition (8-byte little-endian header length, compact JSON header padded
 * with spaces to a multiple of 8, little-endian data at the given offsets).
 * The reading tests build files by hand too, including one laid out as the
 * reference library writes them (JSON keys not in offset order). Tests that
 * write files do so in a fresh temporary directory.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "nn/checkpoint.h"

#include "tests/tmpdir.h"

/* ================================================================ helpers */


/* Entries in dir other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) n++;
    closedir(d);
    return n;
}


/* The reference VAE's parameters (784-400-20), values from a seed. */
static tg_params *vae_params(tg_dtype dt, int64_t hidden, int64_t latent, uint64_t seed) {
    tg_params *ps = tg_params_new(dt);
    tg_rng r = tg_rng_seed(seed);
    tg_linear_new(ps, "fc1", 784, hidden, &r);
    tg_linear_new(ps, "fc_mu", hidden, latent, &r);
    tg_linear_new(ps, "fc_logvar", hidden, latent, &r);
    tg_linear_new(ps, "fc2", latent, hidden, &r);
    tg_linear_new(ps, "fc3", hidden, 784, &r);
    return ps;
}

/* A small two-layer model for the exhaustive corruption loops. */
static tg_params *tiny_params(uint64_t seed) {
    tg_params *ps = tg_params_new(TG_F32);
    tg_rng r = tg_rng_seed(seed);
    tg_linear_new(ps, "fc1", 3, 2, &r);
    tg_linear_new(ps, "fc2", 2, 1, &r);
    return ps;
}

static bool params_same(const tg_params *a, const tg_params *b) {
    return a->n == b->n && a->dtype == b->dtype &&
           memcmp(a->data, b->data, (size_t)a->n * tg_dtype_size(a->dtype)) == 0;
}

/* Expects tg_params_load of path to fail with a message containing every
 * fragment, leaving ps as it was. */
static void expect_load_fails(tg_params *ps, const char *path, const char *frag1, const char *frag2) {
    size_t bytes = (size_t)ps->n * tg_dtype_size(ps->dtype);
    void *snap = malloc(bytes);
    memcpy(snap, ps->data, bytes);
    tg_err e = {{0}};
    cr_assert_eq(tg_params_load(ps, path, &e), -1, "load of %s succeeded", path);
    cr_assert_eq(memcmp(snap, ps->data, bytes), 0, "a failed load changed the parameters (%s)", e.msg);
    cr_assert_not_null(strstr(e.msg, path), "message \"%s\" does not name the file", e.msg);
    if (frag1) cr_assert_not_null(strstr(e.msg, frag1), "message \"%s\" lacks \"%s\"", e.msg, frag1);
    if (frag2) cr_assert_not_null(strstr(e.msg, frag2), "message \"%s\" lacks \"%s\"", e.msg, frag2);
    free(snap);
}

/* ================================================================ layout */

Test(checkpoint, exact_bytes_of_a_small_file, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    float a[2] = {1.0f, -2.0f};
    double b[1] = {0.5};
    tg_tensor ta = tg_tensor_wrap(TG_F32, TG_SHAPE(2), a);
    tg_tensor tb = tg_tensor_wrap(TG_F64, TG_SHAPE(1, 1), b);
    const char *names[] = {"a", "b"};
    const tg_tensor *ts[] = {&ta, &tb};
    const char *mk[] = {"k"}, *mv[] = {"v"};
    tg_err e;
    cr_assert_eq(tg_safetensors_write(tg_tmp("s.safetensors"), 2, names, ts, 1, mk, mv, &e), 0, "%s", e.msg);

    static const char header[] =
        "{\"__metadata__\":{\"k\":\"v\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[8,16]}}"
        " ";   /* 135 bytes of JSON + 1 space: 8 + 136 is a multiple of 8 */
    cr_assert_eq(sizeof header - 1, 136);
    uint8_t want[8 + 136 + 16] = {0x88, 0, 0, 0, 0, 0, 0, 0};   /* 136, little-endian */
    memcpy(want + 8, header, 136);
    static const uint8_t data[16] = {
        0x00, 0x00, 0x80, 0x3f,                         /* 1.0f  */
        0x00, 0x00, 0x00, 0xc0,                         /* -2.0f */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f, /* 0.5   */
    };
    memcpy(want + 144, data, 16);
    size_t n;
    uint8_t *got = tg_slurp(tg_tmp("s.safetensors"), &n);
    cr_assert_eq(n, sizeof want);
    for (size_t i = 0; i < n; i++) cr_assert_eq(got[i], want[i], "byte %zu: got 0x%02x, want 0x%02x", i, got[i], want[i]);
    free(got);
    cr_assert_eq(count_entries(tg_tmpdir()), 1, "a temporary file was left behind");
}

Test(checkpoint, no_metadata_no_tensors_and_exact_padding, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_err e;
    cr_assert_eq(tg_safetensors_write(tg_tmp("e.st"), 0, NULL, NULL, 0, NULL, NULL, &e), 0, "%s", e.msg);
    size_t n;
    uint8_t *got = tg_slurp(tg_tmp("e.st"), &n);
    static const uint8_t want[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    cr_assert_eq(n, 16);
    cr_assert_eq(memcmp(got, want, 16), 0);
    free(got);
    tg_safetensors st;
    cr_assert_eq(tg_safetensors_read(tg_tmp("e.st"), &st, &e), 0, "%s", e.msg);
    cr_assert_eq(st.n, 0);
    cr_assert_eq(st.n_meta, 0);
    tg_safetensors_free(&st);

    /* A scalar (shape []) and an empty tensor (shape [0, 3]), header length already a multiple of 8 */
    float s = 3.0f;
    tg_tensor ts0 = tg_tensor_wrap(TG_F32, TG_SCALAR_SHAPE, &s);
    tg_tensor te = tg_tensor_wrap(TG_F64, TG_SHAPE(0, 3), NULL);
    const char *names[] = {"s", "e"};
    const tg_tensor *ts[] = {&ts0, &te};
    cr_assert_eq(tg_safetensors_write(tg_tmp("z.st"), 2, names, ts, 0, NULL, NULL, &e), 0, "%s", e.msg);
    got = tg_slurp(tg_tmp("z.st"), &n);
    const char *h = "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"e\":{\"dtype\":\"F64\",\"shape\":[0,3],\"data_offsets\":[4,4]}}";
    size_t hn = strlen(h), padded = (hn + 7) / 8 * 8;
    cr_assert_eq(n, 8 + padded + 4);
    cr_assert_eq(got[0], padded);
    cr_assert_eq(memcmp(got + 8, h, hn), 0, "header: %.*s", (int)padded, (char *)got + 8);
    for (size_t i = hn; i < padded; i++) cr_assert_eq(got[8 + i], ' ');
    free(got);
    cr_assert_eq(tg_safetensors_read(tg_tmp("z.st"), &st, &e), 0, "%s", e.msg);
    cr_assert_eq(st.tensors[0].tensor.shape.ndim, 0);
    cr_assert_eq(st.tensors[0].tensor.numel, 1);
    cr_assert_eq(TG_F32P(&st.tensors[0].tensor)[0], 3.0f);
    cr_assert_eq(st.tensors[1].tensor.numel, 0);
    tg_safetensors_free(&st);
}

/* ================================================================ round trips */

Test(checkpoint, f32_and_f64_round_trip_with_metadata, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_arena *ar = tg_arena_new();
    tg_rng r = tg_rng_seed(3);
    tg_tensor *x = tg_tensor_normal(ar, TG_F32, TG_SHAPE(5, 7), &r);
    tg_tensor *y = tg_tensor_normal(ar, TG_F64, TG_SHAPE(2, 3, 4), &r);
    tg_tensor *z = tg_tensor_normal(ar, TG_F32, TG_SHAPE(1), &r);
    TG_F64P(y)[0] = -0.0, TG_F64P(y)[1] = 1e-320, TG_F64P(y)[2] = 1e308, TG_F64P(y)[3] = INFINITY;
    TG_F32P(x)[0] = NAN;
    const char *names[] = {"layer.weight", "adam.m.\xc3\xa9\"q\"", "step"};
    const tg_tensor *ts[] = {x, y, z};
    const char *mk[] = {"step", "format", "note"}, *mv[] = {"1200", "pt", "line\nbreak \"quoted\" \\ \xe2\x82\xac"};
    tg_err e;
    cr_assert_eq(tg_safetensors_write(tg_tmp("m.safetensors"), 3, names, ts, 3, mk, mv, &e), 0, "%s", e.msg);
    tg_safetensors st;
    cr_assert_eq(tg_safetensors_read(tg_tmp("m.safetensors"), &st, &e), 0, "%s", e.msg);
    cr_assert_eq(st.n, 3);
    for (int i = 0; i < 3; i++) {
        const tg_st_tensor *t = &st.tensors[i];
        cr_assert_str_eq(t->name, names[i]);
        cr_assert_eq(tg_safetensors_find(&st, names[i]), t);
        cr_assert_eq(t->tensor.dtype, ts[i]->dtype);
        cr_assert(tg_shape_eq(t->tensor.shape, ts[i]->shape));
        cr_assert_eq(t->tensor.numel, ts[i]->numel);
        cr_assert_eq((uintptr_t)t->tensor.data % 8, 0);
        cr_assert_eq(memcmp(t->tensor.data, ts[i]->data, (size_t)ts[i]->numel * tg_dtype_size(ts[i]->dtype)), 0);
    }
    cr_assert_null(tg_safetensors_find(&st, "nope"));
    cr_assert_eq(st.n_meta, 3);
    for (int j = 0; j < 3; j++) {
        cr_assert_str_eq(st.meta_keys[j], mk[j]);
        cr_assert_str_eq(tg_safetensors_meta(&st, mk[j]), mv[j]);
    }
    cr_assert_null(tg_safetensors_meta(&st, "nope"));
    tg_safetensors_free(&st);
    tg_safetensors_free(&st);   /* safe on a zeroed struct */
    tg_arena_free(ar);
}

Test(checkpoint, identical_inputs_give_identical_bytes, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_params *a = vae_params(TG_F32, 40, 4, 11), *b = vae_params(TG_F32, 40, 4, 11);
    const char *mk[] = {"epoch", "seed"}, *mv[] = {"3", "11"};
    tg_err e;
    cr_assert_eq(tg_params_save(a, tg_tmp("1.st"), 2, mk, mv, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_params_save(b, tg_tmp("2.st"), 2, mk, mv, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_params_save(a, tg_tmp("1.st"), 2, mk, mv, &e), 0, "%s", e.msg);   /* over an existing file */
    size_t n1, n2;
    uint8_t *f1 = tg_slurp(tg_tmp("1.st"), &n1), *f2 = tg_slurp(tg_tmp("2.st"), &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(f1, f2, n1), 0);
    uint64_t hn = 0;
    for (int k = 0; k < 8; k++) hn |= (uint64_t)f1[k] << (8 * k);
    cr_assert_eq((8 + hn) % 8, 0);
    cr_assert_eq(n1, 8 + hn + (uint64_t)a->n * 4);
    free(f1), free(f2);
    tg_params_free(a), tg_params_free(b);
}

Test(checkpoint, vae_params_save_load_round_trip, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_params *src = vae_params(TG_F32, 400, 20, 42);
    const char *mk[] = {"hidden", "latent"}, *mv[] = {"400", "20"};
    tg_err e;
    cr_assert_eq(tg_params_save(src, tg_tmp("model.safetensors"), 2, mk, mv, &e), 0, "%s", e.msg);

    tg_safetensors st;   /* names, shapes and order as PyTorch's state_dict */
    cr_assert_eq(tg_safetensors_read(tg_tmp("model.safetensors"), &st, &e), 0, "%s", e.msg);
    static const char *names[] = {"fc1.weight", "fc1.bias", "fc_mu.weight", "fc_mu.bias", "fc_logvar.weight",
                                  "fc_logvar.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"};
    static const int64_t shapes[][2] = {{400, 784}, {400, 0}, {20, 400}, {20, 0}, {20, 400},
                                        {20, 0},    {400, 20}, {400, 0}, {784, 400}, {784, 0}};
    cr_assert_eq(st.n, 10);
    for (int i = 0; i < 10; i++) {
        cr_assert_str_eq(st.tensors[i].name, names[i]);
        const tg_shape *s = &st.tensors[i].tensor.shape;
        cr_assert_eq(s->ndim, shapes[i][1] ? 2 : 1);
        cr_assert_eq(s->d[0], shapes[i][0]);
        if (shapes[i][1]) cr_assert_eq(s->d[1], shapes[i][1]);
    }
    cr_assert_str_eq(tg_safetensors_meta(&st, "hidden"), "400");
    tg_safetensors_free(&st);

    tg_params *dst = vae_params(TG_F32, 400, 20, 7);
    cr_assert(!params_same(src, dst));
    cr_assert_eq(tg_params_load(dst, tg_tmp("model.safetensors"), &e), 0, "%s", e.msg);
    cr_assert(params_same(src, dst));

    /* F32 file into an F64 model, and back: values convert */
    tg_params *d64 = vae_params(TG_F64, 400, 20, 8);
    cr_assert_eq(tg_params_load(d64, tg_tmp("model.safetensors"), &e), 0, "%s", e.msg);
    for (int64_t k = 0; k < src->n; k++)
        cr_assert_eq(((double *)d64->data)[k], (double)((float *)src->data)[k]);
    cr_assert_eq(tg_params_save(d64, tg_tmp("model64.safetensors"), 0, NULL, NULL, &e), 0, "%s", e.msg);
    tg_params *back = vae_params(TG_F32, 400, 20, 9);
    cr_assert_eq(tg_params_load(back, tg_tmp("model64.safetensors"), &e), 0, "%s", e.msg);
    cr_assert(params_same(src, back));
    tg_params_free(src), tg_params_free(dst), tg_params_free(d64), tg_params_free(back);
}

Test(checkpoint, adam_state_as_extra_tensors, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* m and v are flat (ps->n) blocks; saved as two 1-D tensors plus a step count in metadata */
    tg_params *ps = tiny_params(1);
    double m[11], v[11];
    for (int k = 0; k < 11; k++) m[k] = 0.1 * k, v[k] = 1e-8 * k;
    cr_assert_eq(ps->n, 11);   /* fc1 (2, 3) + (2), fc2 (1, 2) + (1) */
    tg_tensor tm = tg_tensor_wrap(TG_F64, TG_SHAPE(11), m), tv = tg_tensor_wrap(TG_F64, TG_SHAPE(11), v);
    const char *names[] = {"adam.m", "adam.v"};
    const tg_tensor *ts[] = {&tm, &tv};
    const char *mk[] = {"adam.step"}, *mv[] = {"9223372036854775807"};
    tg_err e;
    cr_assert_eq(tg_safetensors_write(tg_tmp("opt.st"), 2, names, ts, 1, mk, mv, &e), 0, "%s", e.msg);
    tg_safetensors st;
    cr_assert_eq(tg_safetensors_read(tg_tmp("opt.st"), &st, &e), 0, "%s", e.msg);
    cr_assert_eq(memcmp(tg_safetensors_find(&st, "adam.m")->tensor.data, m, sizeof m), 0);
    cr_assert_eq(memcmp(tg_safetensors_find(&st, "adam.v")->tensor.data, v, sizeof v), 0);
    cr_assert_str_eq(tg_safetensors_meta(&st, "adam.step"), "9223372036854775807");
    tg_safetensors_free(&st);
    tg_params_free(ps);
}

/* ================================================================ reading what others write */

Test(checkpoint, reads_reference_style_files, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* As the reference library lays them out: keys not in offset order, padding, no metadata. */
    const char *h = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"x\":{\"shape\":[],\"dtype\":\"F64\",\"data_offsets\":[12,20],\"extra\":1}}     ";
    float d[3] = {1.5f, 2.5f, 3.5f};
    double s = -7.25;
    uint8_t data[20];
    memcpy(data, d, 12);
    memcpy(data + 12, &s, 8);
    tg_spit_safetensors(tg_tmp("r.st"), h, data, 20);
    tg_safetensors st;
    tg_err e;
    cr_assert_eq(tg_safetensors_read(tg_tmp("r.st"), &st, &e), 0, "%s", e.msg);
    cr_assert_eq(st.n, 3);
    cr_assert_str_eq(st.tensors[0].name, "b");
    cr_assert_eq(TG_F32P(&st.tensors[0].tensor)[0], 3.5f);
    cr_assert_eq(TG_F32P(&tg_safetensors_find(&st, "a")->tensor)[1], 2.5f);
    cr_assert_eq(TG_F64P(&tg_safetensors_find(&st, "x")->tensor)[0], -7.25);
    cr_assert_eq((uintptr_t)tg_safetensors_find(&st, "x")->tensor.data % 8, 0);   /* realigned */
    tg_safetensors_free(&st);
}

Test(checkpoint, parse_from_memory_as_from_a_file, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* tg_safetensors_parse reads a file's bytes as tg_safetensors_read reads
     * the file, every prefix of it included, and leaves the bytes alone. */
    tg_params *ps = tiny_params(5);
    const char *mk[] = {"k"}, *mv[] = {"v"};
    tg_err e;
    cr_assert_eq(tg_params_save(ps, tg_tmp("t.st"), 1, mk, mv, &e), 0, "%s", e.msg);
    size_t n;
    uint8_t *f = tg_slurp(tg_tmp("t.st"), &n), *copy = malloc(n);
    memcpy(copy, f, n);
    for (size_t len = 0; len <= n; len++) {
        tg_spit(tg_tmp("cut.st"), f, len);
        tg_safetensors a, b;
        tg_err ea = {{0}}, eb = {{0}};
        int ra = tg_safetensors_read(tg_tmp("cut.st"), &a, &ea);
        int rb = tg_safetensors_parse(f, len, tg_tmp("cut.st"), &b, &eb);
        cr_assert_eq(ra, rb, "length %zu: file %d, memory %d", len, ra, rb);
        cr_assert_str_eq(ea.msg, eb.msg, "length %zu", len);
        cr_assert_eq(ra, len == n ? 0 : -1);
        if (ra) {
            cr_assert(b.n == 0 && !b.tensors && !b.data);
            continue;
        }
        cr_assert(a.n == b.n && a.n == ps->count && b.n_meta == 1);
        cr_assert_str_eq(tg_safetensors_meta(&b, "k"), "v");
        for (int i = 0; i < a.n; i++) {
            const tg_tensor *x = &a.tensors[i].tensor, *y = &b.tensors[i].tensor;
            cr_assert_str_eq(a.tensors[i].name, b.tensors[i].name);
            cr_assert(tg_shape_eq(x->shape, y->shape) && x->dtype == y->dtype);
            cr_assert(!memcmp(x->data, y->data, (size_t)x->numel * tg_dtype_size(x->dtype)));
            cr_assert((uint8_t *)y->data < f || (uint8_t *)y->data >= f + n, "tensor data points into the input");
        }
        tg_safetensors_free(&a), tg_safetensors_free(&b);
    }
    cr_assert(!memcmp(f, copy, n), "input changed");
    free(f), free(copy);
    tg_params_free(ps);
}

/* ================================================================ corruption */

typedef struct { const char *header; size_t data_n; const char *frag1, *frag2; } bad_file;

Test(checkpoint, malformed_headers_are_data_errors, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    bad_file cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8, "header: JSON error at byte 54",
         "trailing comma"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}x", 8, "JSON error at byte 54", "trailing characters"},
        {"[]", 0, "header must be a JSON object (found array)", NULL},
        {"", 0, "JSON error at byte 0", NULL},
        {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor a has unknown dtype \"Q7\"",
         "only F32 and F64"},
        {"{\"fc1.weight\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", 8,
         "tensor fc1.weight has unsupported dtype \"F16\"", NULL},
        {"{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor a: missing or non-string \"dtype\"",
         NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "tensor a: missing or non-array \"shape\"", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "\"data_offsets\" must be [begin, end]", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "\"data_offsets\" must be", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8, "\"data_offsets\" must be", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "\"data_offsets\" must be", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape entry 0", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "shape entry 0", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, "7 dimensions", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8,
         "data_offsets [0, 16] lie outside the data section of 8 bytes", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "lie outside", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
         "tensor a: shape [3] of F32 needs 12 bytes but data_offsets [0, 8] span 8", NULL},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "needs 16 bytes", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8, "needs over",
         NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "needs over",
         NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1073741824],\"data_offsets\":[0,4294967296]}}", 8, "lie outside",
         NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "tensor b: data_offsets [4, 12] overlap tensor a",
         NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         "bytes [0, 4) of the data section belong to no tensor", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "4 bytes after the last tensor", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate key \"a\"", NULL},
        {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value of \"k\" must be a string (found number)", NULL},
        {"{\"__metadata__\":[]}", 0, "__metadata__ must be an object of strings (found array)", NULL},
        {"{\"a\":[1]}", 0, "tensor a: entry must be an object (found array)", NULL},
    };
    static uint8_t zeros[64];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tg_spit_safetensors(tg_tmp("bad.st"), cases[k].header, zeros, cases[k].data_n);
        tg_safetensors st;
        tg_err e = {{0}};
        cr_assert_eq(tg_safetensors_read(tg_tmp("bad.st"), &st, &e), -1, "case %zu accepted", k);
        cr_assert_eq(st.n, 0);
        cr_assert_null(st.tensors);
        cr_assert_not_null(strstr(e.msg, tg_tmp("bad.st")), "case %zu: \"%s\" does not name the file", k, e.msg);
        cr_assert_not_null(strstr(e.msg, cases[k].frag1), "case %zu: \"%s\" lacks \"%s\"", k, e.msg, cases[k].frag1);
        if (cases[k].frag2)
            cr_assert_not_null(strstr(e.msg, cases[k].frag2), "case %zu: \"%s\" lacks \"%s\"", k, e.msg,
                               cases[k].frag2);
    }
}

/* Found by fuzz/fuzz_safetensors: a metadata key or value holding \u0000 was
 * accepted and handed out cut at the NUL ("for\u0000ogvar." as "for"), so a
 * lookup saw a different string than the file holds. Such files are refused,
 * as tensor names with a NUL already were. The first input is the fuzzer's,
 * as found. */
Test(checkpoint, nul_in_metadata_or_names_is_refused) {
    static const uint8_t found[128] = {
        0x68, 0, 0, 0, 0, 0, 0, 0, '{', '"', '_', '_', 'm', 'e', 't', 'a', 'd', 'a', 't', 'a', '_', '_', '"', ':',
        '{', '"', 'f', 'o', 'r', '\\', 'u', '0', '0', '0', '0', 'o', 'g', 'v', 'a', 'r', '.', '"', ':', '"', 'v',
        '\\', 'u', 'e', '0', '9', '0', '"', '}', ',', '"', 'w', '"', ':', '{', '"', 'd', 't', 'y', 'p', 'e', '"',
        ':', '"', 'F', '6', '4', '"', ',', '"', 's', 'h', 'a', 'p', 'e', '"', ':', '[', '2', ',', '1', ']', ',',
        '"', 'd', 'a', 't', 'a', '_', 'o', 'f', 'f', 's', 'e', 't', 's', '"', ':', '[', '0', ',', '1', '6', ']',
        '}', '}', ' ', ' ', 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0x34};
    tg_safetensors st;
    tg_err e;
    cr_assert_eq(tg_safetensors_parse(found, sizeof found, "found", &st, &e), -1);
    cr_assert_str_eq(e.msg, "found: __metadata__ key \"for\" contains a NUL byte");
    cr_assert(st.n == 0 && st.n_meta == 0 && !st.meta_keys);
    const char *headers[3] = {"{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", "{\"__metadata__\":{\"k\":\"\\u0000\"}}",
                              "{\"a\\u0000\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}"};
    const char *want[3] = {"h: __metadata__ value of \"k\" contains a NUL byte",
                           "h: __metadata__ value of \"k\" contains a NUL byte", "h: a header key contains a NUL byte"};
    for (int k = 0; k < 3; k++) {
        size_t hn = strlen(headers[k]);
        uint8_t buf[128] = {(uint8_t)hn};
        memcpy(buf + 8, headers[k], hn);
        cr_assert_eq(tg_safetensors_parse(buf, 8 + hn, "h", &st, &e), -1, "case %d accepted", k);
        cr_assert_str_eq(e.msg, want[k]);
    }
    /* without the NUL, the same files are fine */
    const char *ok = "{\"__metadata__\":{\"for\":\"v\\ue090\",\"k\":\"ab\"}}";
    uint8_t buf[128] = {(uint8_t)strlen(ok)};
    memcpy(buf + 8, ok, strlen(ok));
    cr_assert_eq(tg_safetensors_parse(buf, 8 + strlen(ok), "h", &st, &e), 0, "%s", e.msg);
    cr_assert_str_eq(tg_safetensors_meta(&st, "for"), "v\xee\x82\x90");
    cr_assert_str_eq(tg_safetensors_meta(&st, "k"), "ab");
    tg_safetensors_free(&st);
}

Test(checkpoint, header_length_beyond_file_and_tiny_files, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_params *ps = tiny_params(5);
    tg_err e;
    cr_assert_eq(tg_params_save(ps, tg_tmp("t.st"), 0, NULL, NULL, &e), 0, "%s", e.msg);
    size_t n;
    uint8_t *f = tg_slurp(tg_tmp("t.st"), &n);
    static const uint64_t lens[] = {0xffffffffffffffffull, 0x8000000000000000ull, 1ull << 40, 0};
    for (size_t k = 0; k < 4; k++) {
        uint64_t hl = lens[k] ? lens[k] : (uint64_t)n - 7;   /* one past what the file can hold */
        for (int b = 0; b < 8; b++) f[b] = (uint8_t)(hl >> (8 * b));
        tg_spit(tg_tmp("long.st"), f, n);
        expect_load_fails(ps, tg_tmp("long.st"), "is beyond the file size", NULL);
    }
    free(f);
    tg_spit(tg_tmp("empty.st"), "", 0);
    expect_load_fails(ps, tg_tmp("empty.st"), "too short for the 8-byte safetensors header length", NULL);
    expect_load_fails(ps, tg_tmp("missing.st"), "cannot open: No such file or directory", NULL);
    expect_load_fails(ps, tg_tmpdir(), "not a regular file", NULL);
    tg_params_free(ps);
}

Test(checkpoint, every_truncation_fails_and_leaves_params_unchanged, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_params *src = tiny_params(5), *ps = tiny_params(6);
    const char *mk[] = {"k"}, *mv[] = {"v"};
    tg_err e;
    cr_assert_eq(tg_params_save(src, tg_tmp("t.st"), 1, mk, mv, &e), 0, "%s", e.msg);
    size_t n;
    uint8_t *f = tg_slurp(tg_tmp("t.st"), &n);
    for (size_t len = 0; len < n; len++) {
        tg_spit(tg_tmp("cut.st"), f, len);
        expect_load_fails(ps, tg_tmp("cut.st"), NULL, NULL);
    }
    /* and appending a byte is as wrong as removing one */
    uint8_t *g = malloc(n + 1);
    memcpy(g, f, n);
    g[n] = 0;
    tg_spit(tg_tmp("long.st"), g, n + 1);
    expect_load_fails(ps, tg_tmp("long.st"), "1 bytes after the last tensor", NULL);
    cr_assert_eq(tg_params_load(ps, tg_tmp("t.st"), &e), 0, "%s", e.msg);
    cr_assert(params_same(src, ps));
    free(f), free(g);
    tg_params_free(src), tg_params_free(ps);
}

Test(checkpoint, shape_mismatch_and_missing_tensor_messages, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_params *big = vae_params(TG_F32, 400, 20, 1);
    tg_err e;
    cr_assert_eq(tg_params_save(big, tg_tmp("model.safetensors"), 0, NULL, NULL, &e), 0, "%s", e.msg);
    tg_params *small = vae_params(TG_F32, 300, 20, 2), *snap = vae_params(TG_F32, 300, 20, 2);
    char want[512];
    snprintf(want, sizeof want,
             "%s: tensor fc1.weight has shape [400, 784] but the model expects [300, 784] (check --hidden / --latent)",
             tg_tmp("model.safetensors"));
    cr_assert_eq(tg_params_load_hint(small, tg_tmp("model.safetensors"), "check --hidden / --latent", &e), -1);
    cr_assert_str_eq(e.msg, want);
    cr_assert(params_same(small, snap));
    cr_assert_eq(tg_params_load(small, tg_tmp("model.safetensors"), &e), -1);
    snprintf(want, sizeof want, "%s: tensor fc1.weight has shape [400, 784] but the model expects [300, 784]",
             tg_tmp("model.safetensors"));
    cr_assert_str_eq(e.msg, want);
    cr_assert(params_same(small, snap));

    /* A file lacking fc_mu.bias (written without it): nothing loads, even the tensors that match. */
    const char *names[9];
    const tg_tensor *ts[9];
    int k = 0;
    for (int i = 0; i < big->count; i++)
        if (strcmp(big->vars[i]->name, "fc_mu.bias") != 0) names[k] = big->vars[i]->name, ts[k++] = &big->vars[i]->val;
    cr_assert_eq(k, 9);
    cr_assert_eq(tg_safetensors_write(tg_tmp("partial.safetensors"), 9, names, ts, 0, NULL, NULL, &e), 0, "%s", e.msg);
    tg_params *same = vae_params(TG_F32, 400, 20, 3), *same_snap = vae_params(TG_F32, 400, 20, 3);
    cr_assert_eq(tg_params_load(same, tg_tmp("partial.safetensors"), &e), -1);
    snprintf(want, sizeof want, "%s: no tensor fc_mu.bias", tg_tmp("partial.safetensors"));
    cr_assert_str_eq(e.msg, want);
    cr_assert(params_same(same, same_snap));

    /* A rank mismatch reads the same way */
    tg_params *one = tg_params_new(TG_F32);
    tg_params_add(one, "fc1.bias", TG_SHAPE(400, 1));
    cr_assert_eq(tg_params_load(one, tg_tmp("model.safetensors"), &e), -1);
    cr_assert_not_null(strstr(e.msg, "tensor fc1.bias has shape [400] but the model expects [400, 1]"), "%s", e.msg);
    tg_params_free(one);
    tg_params_free(big), tg_params_free(small), tg_params_free(snap), tg_params_free(same), tg_params_free(same_snap);
}

/* ================================================================ writing failures */

Test(checkpoint, unwritable_destinations_leave_no_temp_file, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_params *ps = tiny_params(1);
    tg_err e;
    cr_assert_eq(tg_params_save(ps, tg_tmp("no/such/dir/m.st"), 0, NULL, NULL, &e), -1);
    cr_assert_not_null(strstr(e.msg, tg_tmp("no/such/dir/m.st")), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "No such file or directory"), "%s", e.msg);

    tg_spit(tg_tmp("file"), "x", 1);   /* a path through a regular file */
    cr_assert_eq(tg_params_save(ps, tg_tmp("file/m.st"), 0, NULL, NULL, &e), -1);
    cr_assert_not_null(strstr(e.msg, "Not a directory"), "%s", e.msg);

    mkdir(tg_tmp("adir"), 0755);   /* the destination is a directory: rename fails after a full write */
    cr_assert_eq(tg_params_save(ps, tg_tmp("adir"), 0, NULL, NULL, &e), -1);
    cr_assert_not_null(strstr(e.msg, "cannot rename"), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, tg_tmp("adir")), "%s", e.msg);
    cr_assert_eq(count_entries(tg_tmpdir()), 2, "a temporary file was left behind");   /* file, adir */
    cr_assert_eq(count_entries(tg_tmp("adir")), 0);

    /* Bad names are refused before anything is created. */
    float x = 1;
    tg_tensor t = tg_tensor_wrap(TG_F32, TG_SHAPE(1), &x);
    const char *dup[] = {"w", "w"}, *meta_name[] = {"__metadata__"}, *empty[] = {""};
    const tg_tensor *ts[] = {&t, &t};
    cr_assert_eq(tg_safetensors_write(tg_tmp("d.st"), 2, dup, ts, 0, NULL, NULL, &e), -1);
    cr_assert_not_null(strstr(e.msg, "two tensors are called \"w\""), "%s", e.msg);
    cr_assert_eq(tg_safetensors_write(tg_tmp("d.st"), 1, meta_name, ts, 0, NULL, NULL, &e), -1);
    cr_assert_eq(tg_safetensors_write(tg_tmp("d.st"), 1, empty, ts, 0, NULL, NULL, &e), -1);
    const char *mk[] = {"k", "k"}, *mv[] = {"1", "2"};
    cr_assert_eq(tg_safetensors_write(tg_tmp("d.st"), 0, NULL, NULL, 2, mk, mv, &e), -1);
    const char *bad_utf8[] = {"w\xff"};
    cr_assert_eq(tg_safetensors_write(tg_tmp("d.st"), 1, bad_utf8, ts, 0, NULL, NULL, &e), -1);
    cr_assert_not_null(strstr(e.msg, "must be valid UTF-8"), "%s", e.msg);
    const char *mk1[] = {"k"}, *mv_bad[] = {"\xc0\xaf"};
    cr_assert_eq(tg_safetensors_write(tg_tmp("d.st"), 0, NULL, NULL, 1, mk1, mv_bad, &e), -1);
    cr_assert_not_null(strstr(e.msg, "must be valid UTF-8"), "%s", e.msg);
    cr_assert_eq(count_entries(tg_tmpdir()), 2);
    tg_params_free(ps);
}

/* A write that fails midway (the file-size limit stands in for a full disk)
 * removes its temporary file and leaves the previous checkpoint intact. */
Test(checkpoint, failed_write_keeps_the_old_file, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_params *old = vae_params(TG_F32, 8, 2, 1), *neu = vae_params(TG_F32, 400, 20, 2);
    tg_err e;
    cr_assert_eq(tg_params_save(old, tg_tmp("m.st"), 0, NULL, NULL, &e), 0, "%s", e.msg);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 100000, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    cr_assert_eq(tg_params_save(neu, tg_tmp("m.st"), 0, NULL, NULL, &e), -1);
    rl.rlim_cur = RLIM_INFINITY;
    setrlimit(RLIMIT_FSIZE, &rl);
    cr_assert_not_null(strstr(e.msg, tg_tmp("m.st")), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "write failed"), "%s", e.msg);
    cr_assert_not_null(strstr(e.msg, "File too large"), "%s", e.msg);
    cr_assert_eq(count_entries(tg_tmpdir()), 1, "a temporary file was left behind");
    tg_params *check = vae_params(TG_F32, 8, 2, 3);
    cr_assert_eq(tg_params_load(check, tg_tmp("m.st"), &e), 0, "%s", e.msg);
    cr_assert(params_same(old, check));
    tg_params_free(old), tg_params_free(neu), tg_params_free(check);
}

/* ================================================================ fuzz */

/* Random byte flips of a valid file: every outcome is either a clean error
 * or a file whose tensors lie inside what was read (checked by touching
 * every byte under ASan). */
Test(checkpoint, fuzz_byte_flips, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_arena *ar = tg_arena_new();
    tg_rng r = tg_rng_seed(99);
    tg_tensor *x = tg_tensor_normal(ar, TG_F32, TG_SHAPE(2, 3), &r);
    tg_tensor *y = tg_tensor_normal(ar, TG_F64, TG_SHAPE(2), &r);
    const char *names[] = {"fc1.weight", "fc1.bias"};
    const tg_tensor *ts[] = {x, y};
    const char *mk[] = {"step"}, *mv[] = {"10"};
    tg_err e;
    cr_assert_eq(tg_safetensors_write(tg_tmp("f.st"), 2, names, ts, 1, mk, mv, &e), 0, "%s", e.msg);
    size_t n;
    uint8_t *f = tg_slurp(tg_tmp("f.st"), &n), *g = malloc(n);
    static const uint8_t interesting[] = {'0', '9', '[', ']', '{', '}', '"', ',', ':', '-', '\\', ' ', 0, 0xff, 0x80};
    int ok = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(g, f, n);
        int flips = 1 + (int)tg_rng_below(&r, 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)tg_rng_below(&r, tg_rng_below(&r, 4) ? n - 24 : n);   /* mostly the header */
            g[at] = tg_rng_below(&r, 2) ? (uint8_t)tg_rng_u64(&r)
                                        : interesting[tg_rng_below(&r, sizeof interesting)];
        }
        tg_spit(tg_tmp("z.st"), g, n);
        tg_safetensors st;
        if (tg_safetensors_read(tg_tmp("z.st"), &st, &e) != 0) {
            cr_assert(e.msg[0] != 0);
            cr_assert_null(st.tensors);
            continue;
        }
        ok++;
        double sum = 0;
        for (int i = 0; i < st.n; i++) {
            const tg_tensor *t = &st.tensors[i].tensor;
            cr_assert_eq(t->numel, tg_shape_numel(t->shape));
            for (int64_t k = 0; k < t->numel; k++) sum += tg_tensor_get(t, k) != 0;
        }
        cr_assert(sum >= 0);
        tg_safetensors_free(&st);
    }
    cr_assert(ok > 0, "no flip left a readable file (flips in the data section should)");
    free(f), free(g);
    tg_arena_free(ar);
}
