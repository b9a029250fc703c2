/*
 * test_png.c — the deflate/zlib encoder, the gray and RGB PNG and grid writers
 * (io/png.h) and atomic and IDX writes (io/file.h, io/idx_write.h).
 *
 * Every PNG written here is read back by tg_png_read (tests/png_read.c), a
 * strict little decoder written for the tests: it checks the signature, the chunk order,
 * every chunk's CRC-32 (with tg_crc32 and a bit-at-a-time reference), the
 * IHDR fields, inflates the joined IDAT data with tg_zlib_inflate (which
 * checks the Adler-32), undoes filter 0 and hands back the pixels, which are
 * compared exactly with what was written. Tests that write files do so in a
 * fresh temporary directory and check that no temporary file is left.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/data.h"
#include "io/file.h"
#include "io/gzip.h"
#include "io/idx_write.h"
#include "io/png.h"

#include "tests/child.h"
#include "tests/png_read.h"
#include "tests/tmpdir.h"

/* ================================================================ helpers */


/* Number of entries in the temporary directory whose name contains ".tmp.". */
static int temp_files_left(void) {
    DIR *d = opendir(tg_tmpdir());
    cr_assert_not_null(d);
    int k = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        if (strstr(ent->d_name, ".tmp.")) k++;
    closedir(d);
    return k;
}


/* Writes pixels (h, w) to a PNG in the temporary directory and asserts it reads back
 * exactly; returns the decoded image (the caller frees it). */
static tg_png_img roundtrip(const char *name, const uint8_t *px, int64_t w, int64_t h) {
    tg_err e;
    cr_assert_eq(tg_png_write_gray(tg_tmp(name), px, w, h, &e), 0, "%s", e.msg);
    tg_png_img img = tg_png_read(tg_tmp(name));
    cr_assert_eq(img.w, w);
    cr_assert_eq(img.h, h);
    for (int64_t i = 0; i < w * h; i++)
        cr_assert_eq(img.px[i], px[i], "pixel %lld: %d, want %d", (long long)i, img.px[i], px[i]);
    cr_assert_eq(temp_files_left(), 0);
    return img;
}

/* xorshift bytes, so "random" images are the same every run. */
static void noise(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p[i] = (uint8_t)(s >> 32);
    }
}

/* Walks the stored blocks of a zlib stream z[0..zn), asserting it consists of
 * them only; returns how many. */
static int stored_blocks(const uint8_t *z, size_t zn) {
    size_t o = 2;
    int blocks = 0;
    for (;;) {
        cr_assert(o + 5 <= zn - 4);
        uint8_t hdr = z[o];
        cr_assert_eq(hdr & 6, 0, "block %d is not stored", blocks);
        size_t len = z[o + 1] | (size_t)z[o + 2] << 8, nlen = z[o + 3] | (size_t)z[o + 4] << 8;
        cr_assert_eq(len ^ 0xffff, nlen);
        o += 5 + len;
        blocks++;
        if (hdr & 1) break;
    }
    cr_assert_eq(o, zn - 4, "bytes between the last block and the Adler-32");
    return blocks;
}

/* Asserts that rc is an error whose message contains want. */
#define assert_fails(rc, e, want)                                                                 \
    do {                                                                                          \
        cr_assert_eq((rc), -1, "expected an error containing \"%s\"", (want));                    \
        cr_assert(strstr((e).msg, (want)), "message \"%s\" lacks \"%s\"", (e).msg, (want));         \
    } while (0)

/* ================================================================ zlib */

/* Compresses in both modes, checks the zlib header, and inflates back. */
static void zlib_roundtrip(const uint8_t *in, size_t n, size_t *huff_n, size_t *stored_n) {
    for (int huff = 0; huff < 2; huff++) {
        uint8_t *z, *back;
        size_t zn, bn;
        tg_err e;
        cr_assert_eq(tg_zlib_compress(in, n, huff, &z, &zn, &e), 0, "%s", e.msg);
        cr_assert(zn >= 6);
        cr_assert_eq(z[0], 0x78);
        cr_assert_eq((z[0] * 256 + z[1]) % 31, 0, "FCHECK");
        cr_assert_eq(z[1] & 0x20, 0, "FDICT set");
        cr_assert_eq(tg_zlib_inflate(z, zn, n, &back, &bn, &e), 0, "n=%zu huff=%d: %s", n, huff, e.msg);
        cr_assert_eq(bn, n);
        cr_assert(n == 0 || !memcmp(back, in, n), "n=%zu huff=%d: round trip differs", n, huff);
        if (!huff) {
            size_t want_blocks = n ? (n + 65534) / 65535 : 1;
            cr_assert_eq(stored_blocks(z, zn), (int)want_blocks);
            cr_assert_eq(zn, 2 + n + 5 * want_blocks + 4);
            *stored_n = zn;
        } else {
            *huff_n = zn;
        }
        free(z);
        free(back);
    }
}

Test(png_zlib, round_trips_small_and_edge_inputs) {
    size_t hn, sn;
    zlib_roundtrip((const uint8_t *)"", 0, &hn, &sn);
    cr_assert_eq(sn, 11);
    cr_assert(hn < sn);
    zlib_roundtrip((const uint8_t *)"a", 1, &hn, &sn);
    const char *text = "the quick brown fox jumps over the lazy dog; the quick brown fox jumps again";
    zlib_roundtrip((const uint8_t *)text, strlen(text), &hn, &sn);
    cr_assert(hn < sn, "repeated text should compress: %zu vs %zu", hn, sn);
    /* Every byte value, matches at the longest length and longest distances. */
    size_t n = 200000;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(i % 256);
    zlib_roundtrip(buf, n, &hn, &sn);
    cr_assert(hn < n / 50, "a period-256 ramp should shrink a lot, got %zu", hn);
    memset(buf, 7, n);
    zlib_roundtrip(buf, n, &hn, &sn);
    cr_assert(hn < n / 50);
    /* Noise with a repeat 32768 back (the largest distance) and one just past it. */
    noise(buf, n, 1);
    memcpy(buf + 100000, buf + 100000 - 32768, 300);
    memcpy(buf + 150000, buf + 150000 - 32769, 300);
    zlib_roundtrip(buf, n, &hn, &sn);
    cr_assert_eq(hn, sn, "noise falls back to stored blocks");
    /* Sizes around the stored block limit. */
    size_t sizes[] = {65534, 65535, 65536, 2 * 65535, 2 * 65535 + 1};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) zlib_roundtrip(buf, sizes[k], &hn, &sn);
    /* Short runs of every length 3..258 and a mix of distances. */
    size_t o = 0;
    for (int len = 1; len <= 260 && o + 2 * len + 8 < n; len++) {
        noise(buf + o, (size_t)len, (uint64_t)len + 100);
        memcpy(buf + o + len + (len % 5), buf + o, (size_t)len);
        o += 2 * (size_t)len + (size_t)(len % 5);
    }
    zlib_roundtrip(buf, o, &hn, &sn);
    free(buf);
}

/* ================================================================ PNG */

Test(png_write, one_by_one, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    for (int v = 0; v < 256; v += 255) {
        uint8_t px = (uint8_t)v;
        tg_png_img img = roundtrip("one.png", &px, 1, 1);
        cr_assert_eq(img.idat, 1);
        tg_png_free(&img);
    }
}

Test(png_write, wide_and_tall, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t px[3000];
    for (int i = 0; i < 3000; i++) px[i] = (uint8_t)(i * 7 + i / 1000);
    tg_png_img a = roundtrip("wide.png", px, 1000, 3);
    tg_png_img b = roundtrip("tall.png", px, 3, 1000);
    tg_png_free(&a);
    tg_png_free(&b);
}

Test(png_write, noise_needs_several_stored_blocks_and_idat_chunks, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    int64_t w = 300, h = 400;  /* 120400 bytes of scanlines */
    uint8_t *px = malloc((size_t)(w * h));
    noise(px, (size_t)(w * h), 42);
    tg_png_img img = roundtrip("noise.png", px, w, h);
    cr_assert_eq(stored_blocks(img.z, img.zn), 2);
    cr_assert_eq(img.idat, 2, "%zu bytes of zlib data in %d IDAT chunks", img.zn, img.idat);
    tg_png_free(&img);
    free(px);
}

Test(png_write, smooth_image_is_compressed, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    int64_t w = 500, h = 300;
    uint8_t *px = malloc((size_t)(w * h));
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) px[y * w + x] = (uint8_t)(((x / 20) ^ (y / 20)) & 1 ? 200 : x % 256);
    tg_png_img img = roundtrip("smooth.png", px, w, h);
    cr_assert_eq(img.z[2] & 6, 2, "fixed Huffman block expected");
    cr_assert(img.zn < (size_t)(w * h) / 4, "only %zu -> %zu bytes", (size_t)(w * h), img.zn);
    tg_png_free(&img);
    free(px);
}

Test(png_write, output_is_deterministic, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t px[64 * 48];
    for (int i = 0; i < 64 * 48; i++) px[i] = (uint8_t)(i % 61 * 3);
    tg_err e;
    uint8_t *a, *b;
    size_t an, bn;
    cr_assert_eq(tg_png_encode_gray(px, 64, 48, &a, &an, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_png_write_gray(tg_tmp("a.png"), px, 64, 48, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_png_write_gray(tg_tmp("b.png"), px, 64, 48, &e), 0, "%s", e.msg);
    uint8_t *fa = tg_slurp(tg_tmp("a.png"), &an), *fb = tg_slurp(tg_tmp("b.png"), &bn);
    cr_assert_eq(an, bn);
    cr_assert(!memcmp(fa, fb, an), "identical input, different files");
    cr_assert(!memcmp(fa, a, an), "file differs from the in-memory encoding");
    cr_assert_eq(tg_png_encode_gray(px, 64, 48, &b, &bn, &e), 0, "%s", e.msg);
    cr_assert(bn == an && !memcmp(a, b, an));
    free(a);
    free(b);
    free(fa);
    free(fb);
}

Test(png_write, overwrites_existing_file, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t big[100 * 100], small[4] = {1, 2, 3, 4};
    noise(big, sizeof big, 9);
    tg_png_img a = roundtrip("x.png", big, 100, 100);
    tg_png_img b = roundtrip("x.png", small, 2, 2);
    tg_png_free(&a);
    tg_png_free(&b);
}

Test(png_write, rgb_round_trips_as_color_type_2, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* Every channel distinct, so swapped channels or a gray reading show. */
    int64_t w = 37, h = 23;
    uint8_t *px = malloc((size_t)(w * h * 3));
    noise(px, (size_t)(w * h * 3 / 2), 5);
    for (int64_t i = w * h * 3 / 2; i < w * h * 3; i++) px[i] = (uint8_t)(i % 3 * 100 + i / 3 % 50);
    tg_err e;
    cr_assert_eq(tg_png_write_rgb(tg_tmp("rgb.png"), px, w, h, &e), 0, "%s", e.msg);
    cr_assert_eq(temp_files_left(), 0);
    tg_png_img img = tg_png_read_rgb(tg_tmp("rgb.png"));   /* asserts color type 2 */
    cr_assert(img.w == w && img.h == h && img.ch == 3);
    for (int64_t i = 0; i < w * h * 3; i++)
        cr_assert_eq(img.px[i], px[i], "byte %lld (pixel %lld, channel %lld): %d, want %d", (long long)i,
                     (long long)(i / 3), (long long)(i % 3), img.px[i], px[i]);
    uint8_t *mem;
    size_t mn, fn;
    cr_assert_eq(tg_png_encode_rgb(px, w, h, &mem, &mn, &e), 0, "%s", e.msg);
    uint8_t *f = tg_slurp(tg_tmp("rgb.png"), &fn);
    cr_assert(mn == fn && !memcmp(mem, f, fn), "the file differs from the in-memory encoding");
    cr_assert_eq(f[8 + 8 + 9], 2, "IHDR color type");
    /* The gray writer still says gray. */
    cr_assert_eq(tg_png_write_gray(tg_tmp("gray.png"), px, w, h, &e), 0, "%s", e.msg);
    uint8_t *g = tg_slurp(tg_tmp("gray.png"), &fn);
    cr_assert_eq(g[8 + 8 + 9], 0, "IHDR color type");
    free(g);
    free(f);
    free(mem);
    tg_png_free(&img);
    free(px);
}

Test(png_write, rgb_in_a_missing_directory_fails_cleanly, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t px[3] = {1, 2, 3};
    tg_err e;
    cr_assert_eq(tg_png_write_rgb(tg_tmp("no/such/dir/x.png"), px, 1, 1, &e), -1);
    cr_assert(strstr(e.msg, "no/such/dir/x.png"), "message does not name the path: %s", e.msg);
}

/* ================================================================ grids */

/* Asserts the grid image holds images (n, h, w) at the documented places,
 * with zeros everywhere else. */
static void check_grid(const tg_png_img *g, const uint8_t *images, int64_t n, int64_t h, int64_t w, int64_t cols,
                       int64_t pad) {
    int64_t gw, gh;
    tg_png_grid_size(n, h, w, cols, pad, &gw, &gh);
    cr_assert(gw == g->w && gh == g->h);
    uint8_t *tiles = malloc((size_t)(n * h * w));
    tg_png_grid_tiles(g, n, h, w, cols, pad, tiles);
    for (int64_t i = 0; i < n * h * w; i++)
        cr_assert_eq(tiles[i], images[i], "image %lld, pixel %lld: %d, want %d", (long long)(i / (h * w)),
                     (long long)(i % (h * w)), tiles[i], images[i]);
    free(tiles);
}

Test(png_grid, tiles_and_padding, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    int64_t n = 5, h = 3, w = 2;
    uint8_t images[5 * 3 * 2];
    for (int i = 0; i < 30; i++) images[i] = (uint8_t)(i + 1);  /* never 0, so padding is distinguishable */
    /* Hand-checked corners for cols 3, pad 1: a 10x9 grid. */
    tg_err e;
    cr_assert_eq(tg_png_write_grid(tg_tmp("g.png"), images, n, h, w, 3, 1, &e), 0, "%s", e.msg);
    tg_png_img g = tg_png_read(tg_tmp("g.png"));
    cr_assert_eq(g.w, 10);
    cr_assert_eq(g.h, 9);
    cr_assert_eq(g.px[0], 0);                    /* border */
    cr_assert_eq(g.px[1 * 10 + 1], 1);           /* image 0, pixel (0, 0) */
    cr_assert_eq(g.px[3 * 10 + 2], 6);           /* image 0, pixel (2, 1) */
    cr_assert_eq(g.px[1 * 10 + 3], 0);           /* gap between tiles */
    cr_assert_eq(g.px[1 * 10 + 4], 7);           /* image 1, pixel (0, 0) */
    cr_assert_eq(g.px[5 * 10 + 1], 19);          /* image 3, pixel (0, 0) */
    cr_assert_eq(g.px[7 * 10 + 5], 30);          /* image 4, pixel (2, 1) */
    cr_assert_eq(g.px[5 * 10 + 7], 0);           /* unused sixth tile */
    check_grid(&g, images, n, h, w, 3, 1);
    tg_png_free(&g);
    /* Other layouts, each checked pixel by pixel. */
    int64_t layouts[][2] = {{3, 0}, {1, 2}, {5, 1}, {8, 3}, {2, 0}};
    for (size_t k = 0; k < sizeof layouts / sizeof *layouts; k++) {
        cr_assert_eq(tg_png_write_grid(tg_tmp("g.png"), images, n, h, w, layouts[k][0], layouts[k][1], &e), 0, "%s",
                     e.msg);
        g = tg_png_read(tg_tmp("g.png"));
        check_grid(&g, images, n, h, w, layouts[k][0], layouts[k][1]);
        tg_png_free(&g);
    }
    cr_assert_eq(temp_files_left(), 0);
}

Test(png_grid, float_pixels_clamped_and_rounded, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    cr_assert_eq(tg_png_pixel_from_f32(-0.2f), 0);
    cr_assert_eq(tg_png_pixel_from_f32(1.7f), 255);
    cr_assert_eq(tg_png_pixel_from_f32(0.5f), 128);
    cr_assert_eq(tg_png_pixel_from_f32(0.0f), 0);
    cr_assert_eq(tg_png_pixel_from_f32(1.0f), 255);
    cr_assert_eq(tg_png_pixel_from_f32(NAN), 0);
    cr_assert_eq(tg_png_pixel_from_f32(INFINITY), 255);
    cr_assert_eq(tg_png_pixel_from_f32(-INFINITY), 0);
    for (int v = 0; v < 256; v++) cr_assert_eq(tg_png_pixel_from_f32(v / 255.0f), v, "%d / 255", v);

    float images[2 * 2 * 4] = {-0.2f, 1.7f, 0.5f, 0.0f, 1.0f, 0.25f, 1.0f / 255, NAN,
                               0.1f,  0.2f, 0.3f, 0.4f, 0.6f, 0.7f,  0.8f,      0.9f};
    uint8_t want[16] = {0, 255, 128, 0, 255, 64, 1, 0, 26, 51, 77, 102, 153, 179, 204, 230};
    tg_err e;
    cr_assert_eq(tg_png_write_grid_f32(tg_tmp("f.png"), images, 2, 2, 4, 2, 1, &e), 0, "%s", e.msg);
    tg_png_img g = tg_png_read(tg_tmp("f.png"));
    check_grid(&g, want, 2, 2, 4, 2, 1);
    tg_png_free(&g);
}

/* ================================================================ errors */

Test(png_errors, missing_directory_and_file_as_directory, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t px[4] = {0};
    tg_err e;
    const char *p = tg_tmp("nope/x.png");
    assert_fails(tg_png_write_gray(p, px, 2, 2, &e), e, p);
    cr_assert(strstr(e.msg, strerror(ENOENT)), "%s", e.msg);
    cr_assert_eq(tg_png_write_gray(tg_tmp("file"), px, 2, 2, &e), 0, "%s", e.msg);
    p = tg_tmp("file/x.png");
    assert_fails(tg_png_write_grid(p, px, 1, 2, 2, 1, 0, &e), e, p);
    cr_assert(strstr(e.msg, strerror(ENOTDIR)), "%s", e.msg);
    p = tg_tmp("nope/x-idx3-ubyte");
    assert_fails(tg_idx_images_save(p, px, 1, 2, 2, &e), e, p);
    assert_fails(tg_idx_labels_save(p, px, 4, &e), e, p);
    cr_assert_eq(tg_png_write_gray(p, px, 2, 2, NULL), -1, "a NULL tg_err is allowed");
    cr_assert_eq(temp_files_left(), 0);
}

Test(png_errors, rename_failure_removes_temp_file, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* The temporary file is written, but it cannot be renamed over a directory. */
    cr_assert_eq(mkdir(tg_tmp("taken"), 0755), 0);
    cr_assert_eq(mkdir(tg_tmp("taken/inside"), 0755), 0);
    uint8_t px[6] = {1, 2, 3, 4, 5, 6};
    tg_err e;
    const char *p = tg_tmp("taken");
    assert_fails(tg_png_write_gray(p, px, 3, 2, &e), e, p);
    cr_assert(strstr(e.msg, "rename"), "%s", e.msg);
    cr_assert_eq(temp_files_left(), 0);
    struct stat st;
    cr_assert(stat(p, &st) == 0 && S_ISDIR(st.st_mode), "the destination was disturbed");
}

Test(png_errors, write_failure_removes_temp_file_and_keeps_old_file, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t small[4] = {9, 8, 7, 6};
    tg_err e;
    cr_assert_eq(tg_png_write_gray(tg_tmp("keep.png"), small, 2, 2, &e), 0, "%s", e.msg);
    /* In a child limited to 4 KiB files, writing 64 KiB of noise fails with EFBIG. */
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        static uint8_t big[256 * 256];
        noise(big, sizeof big, 3);
        tg_err ce;
        if (tg_png_write_gray(tg_tmp("keep.png"), big, 256, 256, &ce) != -1) _exit(11);
        if (!strstr(ce.msg, tg_tmp("keep.png")) || !strstr(ce.msg, strerror(EFBIG))) _exit(12);
        if (tg_idx_images_save(tg_tmp("keep.idx"), big, 1, 256, 256, &ce) != -1) _exit(13);
        if (!strstr(ce.msg, strerror(EFBIG))) _exit(14);
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    cr_assert_eq(temp_files_left(), 0);
    tg_png_img img = tg_png_read(tg_tmp("keep.png"));
    cr_assert(img.w == 2 && img.h == 2 && !memcmp(img.px, small, 4), "the old file was damaged");
    tg_png_free(&img);
    cr_assert_eq(access(tg_tmp("keep.idx"), F_OK), -1);
}

/* ================================================================ IDX */

Test(png_idx, images_and_labels_round_trip, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    int64_t n = 7, rows = 5, cols = 3;
    uint8_t px[7 * 5 * 3], y[7] = {0, 9, 3, 3, 1, 8, 5};
    noise(px, sizeof px, 5);
    tg_err e;
    cr_assert_eq(tg_idx_images_save(tg_tmp("x-idx3-ubyte"), px, n, rows, cols, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_labels_save(tg_tmp("y-idx1-ubyte"), y, n, &e), 0, "%s", e.msg);
    cr_assert_eq(temp_files_left(), 0);

    size_t fn;
    uint8_t *f = tg_slurp(tg_tmp("x-idx3-ubyte"), &fn);
    static const uint8_t header[16] = {0, 0, 8, 3, 0, 0, 0, 7, 0, 0, 0, 5, 0, 0, 0, 3};
    cr_assert_eq(fn, 16 + sizeof px);
    cr_assert(!memcmp(f, header, 16) && !memcmp(f + 16, px, sizeof px));
    free(f);
    f = tg_slurp(tg_tmp("y-idx1-ubyte"), &fn);
    static const uint8_t lheader[8] = {0, 0, 8, 1, 0, 0, 0, 7};
    cr_assert(fn == 15 && !memcmp(f, lheader, 8) && !memcmp(f + 8, y, 7));
    free(f);

    tg_images x;
    cr_assert_eq(tg_idx_images_load(tg_tmp("x-idx3-ubyte"), &x, &e), 0, "%s", e.msg);
    cr_assert(x.n == n && x.rows == rows && x.cols == cols);
    cr_assert(!memcmp(x.pixels, px, sizeof px));
    tg_images_free(&x);
    tg_labels l;
    cr_assert_eq(tg_idx_labels_load(tg_tmp("y-idx1-ubyte"), 10, &l, &e), 0, "%s", e.msg);
    cr_assert(l.n == n && !memcmp(l.labels, y, 7));
    tg_labels_free(&l);

    /* Overwriting with a smaller array leaves exactly the new one. */
    cr_assert_eq(tg_idx_images_save(tg_tmp("x-idx3-ubyte"), px, 2, 2, 2, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_images_load(tg_tmp("x-idx3-ubyte"), &x, &e), 0, "%s", e.msg);
    cr_assert(x.n == 2 && x.rows == 2 && x.cols == 2 && !memcmp(x.pixels, px, 8));
    tg_images_free(&x);
}

Test(png_idx, oversized_array_rejected_before_writing, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t px[1] = {0};
    tg_err e;
    assert_fails(tg_idx_images_save(tg_tmp("big"), px, 60000, 28 * 28, 28 * 28, &e), e, "over");
    cr_assert_eq(access(tg_tmp("big"), F_OK), -1);
    cr_assert_eq(temp_files_left(), 0);
}

Test(png_idx, file_write_parts_concatenates, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_err e;
    cr_assert_eq(tg_file_write_parts(tg_tmp("p"), 3, (const void *const[]){"ab", NULL, "cde"},
                                     (const size_t[]){2, 0, 3}, &e),
                 0, "%s", e.msg);
    size_t n;
    uint8_t *f = tg_slurp(tg_tmp("p"), &n);
    cr_assert(n == 5 && !memcmp(f, "abcde", 5));
    free(f);
    cr_assert_eq(tg_file_write(tg_tmp("empty"), NULL, 0, &e), 0, "%s", e.msg);
    f = tg_slurp(tg_tmp("empty"), &n);
    cr_assert_eq(n, 0);
    free(f);
}

/* ================================================================ programmer errors */

static void empty_grid(void) {
    uint8_t px[1] = {0};
    tg_png_write_grid("/tmp/never-written.png", px, 0, 1, 1, 1, 0, NULL);
}

static void negative_pad(void) {
    uint8_t px[1] = {0};
    tg_png_write_grid("/tmp/never-written.png", px, 1, 1, 1, 1, -1, NULL);
}

static void zero_width_png(void) {
    uint8_t px[1] = {0};
    tg_png_write_gray("/tmp/never-written.png", px, 0, 1, NULL);
}

static void idx_dimension_zero(void) {
    uint8_t px[1] = {0};
    tg_idx_images_save("/tmp/never-written-idx3-ubyte", px, 1, 0, 1, NULL);
}

Test(png_abort, empty_grid_aborts) {
    tg_expect_abort(empty_grid, "tapegrad: tg_png_grid: need n, h, w, cols >= 1 and pad >= 0, got n=0 h=1 w=1 cols=1 pad=0");
}

Test(png_abort, negative_pad_aborts) {
    tg_expect_abort(negative_pad, "tapegrad: tg_png_grid: need n, h, w, cols >= 1 and pad >= 0, got n=1 h=1 w=1 cols=1 pad=-1");
}

Test(png_abort, zero_width_png_aborts) {
    tg_expect_abort(zero_width_png, "tapegrad: tg_png_encode_gray: need pixels and a size >= 1x1, got 0x1");
}

Test(png_abort, idx_dimension_zero_aborts) {
    tg_expect_abort(idx_dimension_zero,
                    "tapegrad: tg_idx_images_save: dimension 1 is 0; IDX sizes must be in [1, 2^32 - 1]");
}
