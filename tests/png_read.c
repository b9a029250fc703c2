/* png_read.c — the tests' PNG decoder (see png_read.h). */
#include "tests/png_read.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "io/gzip.h"
#include "tests/tmpdir.h"

uint32_t tg_ref_crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static uint32_t rd_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decodes an 8-bit non-interlaced PNG of color type ctype (0 gray, 2 RGB)
 * from f[0..n), asserting every structural rule on the way. */
static tg_png_img parse(const uint8_t *f, size_t n, int ctype) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    tg_png_img img = {0};
    cr_assert(n >= 8 && !memcmp(f, sig, 8), "bad PNG signature");
    size_t o = 8, cap = 0;
    int chunk = 0;
    bool ended = false, prev_idat = false;
    while (o < n) {
        cr_assert(!ended, "bytes after IEND");
        cr_assert(n - o >= 12, "truncated chunk at offset %zu", o);
        uint32_t len = rd_be32(f + o);
        cr_assert(len <= n - o - 12, "chunk at %zu overruns the file", o);
        const uint8_t *type = f + o + 4, *data = f + o + 8;
        uint32_t crc = rd_be32(data + len);
        cr_assert_eq(tg_crc32(0, type, 4 + len), crc, "chunk %.4s: CRC mismatch", (const char *)type);
        cr_assert_eq(tg_ref_crc32(type, 4 + len), crc, "chunk %.4s: CRC mismatch (reference)", (const char *)type);
        if (chunk == 0) {
            cr_assert(!memcmp(type, "IHDR", 4), "first chunk is %.4s, not IHDR", (const char *)type);
            cr_assert_eq(len, 13);
            img.w = rd_be32(data);
            img.h = rd_be32(data + 4);
            cr_assert(img.w >= 1 && img.h >= 1);
            cr_assert_eq(data[8], 8, "bit depth");
            cr_assert_eq(data[9], ctype, "color type");
            cr_assert_eq(data[10], 0, "compression method");
            cr_assert_eq(data[11], 0, "filter method");
            cr_assert_eq(data[12], 0, "interlace method");
        } else if (!memcmp(type, "IDAT", 4)) {
            cr_assert(img.idat == 0 || prev_idat, "IDAT chunks are not consecutive");
            if (img.zn + len > cap) {
                cap = 2 * (img.zn + len);
                img.z = realloc(img.z, cap);
            }
            memcpy(img.z + img.zn, data, len);
            img.zn += len;
            img.idat++;
        } else if (!memcmp(type, "IEND", 4)) {
            cr_assert_eq(len, 0);
            ended = true;
        } else {
            cr_assert_fail("unexpected chunk %.4s", (const char *)type);
        }
        prev_idat = !memcmp(type, "IDAT", 4);
        chunk++;
        o += 12 + len;
    }
    cr_assert(ended, "no IEND");
    cr_assert(img.idat >= 1, "no IDAT");
    img.ch = ctype == 2 ? 3 : 1;
    size_t row = (size_t)img.w * (size_t)img.ch, stride = row + 1, raw_n = stride * (size_t)img.h;
    uint8_t *raw;
    size_t got;
    tg_err e;
    cr_assert_eq(tg_zlib_inflate(img.z, img.zn, raw_n, &raw, &got, &e), 0, "inflate: %s", e.msg);
    cr_assert_eq(got, raw_n, "inflated %zu bytes, want %zu", got, raw_n);
    img.px = malloc(raw_n);
    for (int64_t y = 0; y < img.h; y++) {
        cr_assert_eq(raw[y * stride], 0, "scanline %lld has filter %d", (long long)y, raw[y * stride]);
        memcpy(img.px + (size_t)y * row, raw + y * stride + 1, row);
    }
    free(raw);
    return img;
}

tg_png_img tg_png_parse(const uint8_t *f, size_t n) { return parse(f, n, 0); }
tg_png_img tg_png_parse_rgb(const uint8_t *f, size_t n) { return parse(f, n, 2); }

tg_png_img tg_png_read(const char *path) {
    size_t n;
    uint8_t *f = tg_slurp(path, &n);
    tg_png_img img = tg_png_parse(f, n);
    free(f);
    return img;
}

tg_png_img tg_png_read_rgb(const char *path) {
    size_t n;
    uint8_t *f = tg_slurp(path, &n);
    tg_png_img img = tg_png_parse_rgb(f, n);
    free(f);
    return img;
}

void tg_png_free(tg_png_img *img) {
    free(img->px);
    free(img->z);
}

void tg_png_grid_tiles(const tg_png_img *g, int64_t n, int64_t h, int64_t w, int64_t cols, int64_t pad,
                       uint8_t *tiles) {
    int64_t c = cols < n ? cols : n, r = (n + c - 1) / c;
    cr_assert_eq(g->w, c * (w + pad) + pad, "grid width %lld, want %lld", (long long)g->w,
                 (long long)(c * (w + pad) + pad));
    cr_assert_eq(g->h, r * (h + pad) + pad, "grid height %lld, want %lld", (long long)g->h,
                 (long long)(r * (h + pad) + pad));
    for (int64_t Y = 0; Y < g->h; Y++) {
        for (int64_t X = 0; X < g->w; X++) {
            int64_t ty = (Y - pad) / (h + pad), oy = (Y - pad) % (h + pad);
            int64_t tx = (X - pad) / (w + pad), ox = (X - pad) % (w + pad);
            uint8_t v = g->px[Y * g->w + X];
            if (Y >= pad && X >= pad && oy < h && ox < w && ty * c + tx < n)
                tiles[((ty * c + tx) * h + oy) * w + ox] = v;
            else
                cr_assert_eq(v, 0, "grid pixel (%lld, %lld) outside the tiles is %d, not 0", (long long)Y,
                             (long long)X, v);
        }
    }
}
