/*
 * png.c — a zlib/deflate encoder (RFC 1950/1951) and a grayscale and RGB PNG writer
 * (PNG spec, ISO/IEC 15948), from scratch on libc.
 *
 * Deflate: one fixed-Huffman block (RFC 1951 3.2.6) fed by a greedy LZ77
 * matcher, a hash of the next 3 bytes into chains of earlier positions
 * within the 32 KiB window, walking at most MAX_CHAIN candidates. If that
 * does not beat stored blocks, the data is stored instead; the encoder
 * writes into a buffer the size of the stored form and gives up on Huffman as
 * soon as it would overflow it, so the worst case costs no extra memory.
 * Bits go out least-significant first; Huffman codes are bit-reversed first
 * because deflate sends them most-significant bit first.
 */
#include <stdlib.h>
#include <string.h>

#include "io/gzip.h"
#include "io/png.h"

/* ------------------------------------------------------------------------ */
/* Deflate */

enum {
    STORED_MAX = 65535,          /* bytes per stored block */
    WINDOW = 32768,              /* deflate's largest distance */
    HASH_BITS = 15,
    MAX_CHAIN = 32,              /* candidates tried per position */
    MIN_MATCH = 3,
    MAX_MATCH = 258,
};

/* Lengths 3..258: base of each length symbol 257..285, and its extra bits. */
static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
/* Distances 1..32768: base of each distance symbol 0..29, and its extra bits. */
static const uint16_t dist_base[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
                                       193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* An LSB-first bit sink into buf[0..cap); sets full instead of overflowing. */
typedef struct {
    uint8_t *buf;
    size_t cap, n;
    uint64_t acc;  /* pending bits, the oldest lowest */
    int nacc;      /* how many; < 8 between calls */
    bool full;
} bitsink;

/* Appends the k (<= 32) low bits of v. */
static void put_bits(bitsink *s, uint32_t v, int k) {
    s->acc |= (uint64_t)v << s->nacc;
    s->nacc += k;
    while (s->nacc >= 8) {
        if (s->n == s->cap) {
            s->full = true;
            s->nacc = 0;
            return;
        }
        s->buf[s->n++] = (uint8_t)s->acc;
        s->acc >>= 8;
        s->nacc -= 8;
    }
}

/* Pads the last partial byte with zeros. */
static void flush_bits(bitsink *s) {
    if (s->nacc > 0) put_bits(s, 0, 8 - s->nacc);
}

static uint32_t reverse_bits(uint32_t code, int len) {
    uint32_t r = 0;
    for (int i = 0; i < len; i++) r |= ((code >> i) & 1) << (len - 1 - i);
    return r;
}

/* Fixed literal/length code of sym (0..287): bit-reversed code and length. */
static void fixed_code(int sym, uint32_t *code, int *len) {
    if (sym < 144) *code = 0x30 + (uint32_t)sym, *len = 8;
    else if (sym < 256) *code = 0x190 + (uint32_t)(sym - 144), *len = 9;
    else if (sym < 280) *code = (uint32_t)(sym - 256), *len = 7;
    else *code = 0xc0 + (uint32_t)(sym - 280), *len = 8;
    *code = reverse_bits(*code, *len);
}

/* Hash of the 3 bytes at p. */
static inline uint32_t hash3(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    return (v * 2654435761u) >> (32 - HASH_BITS);
}

/* Writes in[0..n) as one final fixed-Huffman block into s (s->full if it
 * does not fit). head (2^HASH_BITS) and prev (WINDOW) are scratch. */
static void deflate_fixed(bitsink *s, const uint8_t *in, size_t n, int32_t *head, int32_t *prev) {
    uint32_t lit_code[288];
    int lit_len[288];
    for (int k = 0; k < 288; k++) fixed_code(k, &lit_code[k], &lit_len[k]);
    for (int k = 0; k < 1 << HASH_BITS; k++) head[k] = -1;

    put_bits(s, 1, 1);  /* BFINAL */
    put_bits(s, 1, 2);  /* BTYPE = 01, fixed Huffman */
    size_t i = 0;
    while (i < n && !s->full) {
        size_t best = 0, best_dist = 0;
        if (n - i >= MIN_MATCH) {
            size_t limit = n - i < MAX_MATCH ? n - i : MAX_MATCH;
            uint32_t h = hash3(in + i);
            int32_t cand = head[h];
            for (int chain = 0; cand >= 0 && i - (size_t)cand <= WINDOW && chain < MAX_CHAIN; chain++) {
                const uint8_t *a = in + cand, *b = in + i;
                size_t len = 0;
                while (len < limit && a[len] == b[len]) len++;
                if (len > best) {
                    best = len;
                    best_dist = i - (size_t)cand;
                    if (len == limit) break;
                }
                cand = prev[cand & (WINDOW - 1)];
            }
            prev[i & (WINDOW - 1)] = head[h];
            head[h] = (int32_t)i;
        }
        if (best < MIN_MATCH) {
            put_bits(s, lit_code[in[i]], lit_len[in[i]]);
            i++;
            continue;
        }
        int ls = 28;
        while (len_base[ls] > best) ls--;
        put_bits(s, lit_code[257 + ls], lit_len[257 + ls]);
        put_bits(s, (uint32_t)(best - len_base[ls]), len_extra[ls]);
        int ds = 29;
        while (dist_base[ds] > best_dist) ds--;
        put_bits(s, reverse_bits((uint32_t)ds, 5), 5);
        put_bits(s, (uint32_t)(best_dist - dist_base[ds]), dist_extra[ds]);
        /* Index the positions the match covers so later ones can refer to them. */
        for (size_t j = i + 1; j < i + best && n - j >= MIN_MATCH; j++) {
            uint32_t h = hash3(in + j);
            prev[j & (WINDOW - 1)] = head[h];
            head[h] = (int32_t)j;
        }
        i += best;
    }
    put_bits(s, lit_code[256], lit_len[256]);  /* end of block */
    flush_bits(s);
}

/* Writes in[0..n) as stored blocks at out (which has room, see stored_size). */
static size_t deflate_stored(uint8_t *out, const uint8_t *in, size_t n) {
    size_t o = 0, i = 0;
    do {
        size_t len = n - i < STORED_MAX ? n - i : STORED_MAX;
        out[o++] = i + len == n;  /* BFINAL, BTYPE = 00, then pad to the byte */
        out[o++] = (uint8_t)len;
        out[o++] = (uint8_t)(len >> 8);
        out[o++] = (uint8_t)~len;
        out[o++] = (uint8_t)(~len >> 8);
        if (len) memcpy(out + o, in + i, len);
        o += len;
        i += len;
    } while (i < n);
    return o;
}

/* Bytes deflate_stored writes for n input bytes (at least one block). */
static size_t stored_size(size_t n) {
    size_t blocks = n ? (n + STORED_MAX - 1) / STORED_MAX : 1;
    return n + 5 * blocks;
}

int tg_zlib_compress(const uint8_t *in, size_t n, bool huffman, uint8_t **out, size_t *out_n, tg_err *e) {
    *out = NULL;
    *out_n = 0;
    TG_CHECK(in || n == 0, "tg_zlib_compress: NULL input of %zu bytes", n);
    if (n > TG_DATA_MAX_BYTES) {
        tg_err_set(e, "tg_zlib_compress: %zu bytes is over the limit of %zu", n, TG_DATA_MAX_BYTES);
        return -1;
    }
    size_t cap = 2 + stored_size(n) + 4;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        tg_err_set(e, "out of memory compressing %zu bytes", n);
        return -1;
    }
    size_t body = 0;
    int level = 0;  /* FLEVEL: 0 = stored ("fastest"), 1 = fixed Huffman ("fast") */
    if (huffman) {
        int32_t *head = malloc(sizeof(int32_t) << HASH_BITS);
        int32_t *prev = malloc(sizeof(int32_t) * WINDOW);
        if (!head || !prev) {
            free(head);
            free(prev);
            free(buf);
            tg_err_set(e, "out of memory compressing %zu bytes", n);
            return -1;
        }
        /* Leave room for the Adler-32 so a Huffman stream that fits is smaller. */
        bitsink s = {.buf = buf + 2, .cap = cap - 2 - 4 - 1};
        deflate_fixed(&s, in, n, head, prev);
        free(head);
        free(prev);
        if (!s.full) {
            body = s.n;
            level = 1;
        }
    }
    if (level == 0) body = deflate_stored(buf + 2, in, n);
    /* CMF = 0x78: method 8 (deflate), 32 KiB window; FLG makes CMF*256+FLG a
     * multiple of 31, no preset dictionary. */
    uint32_t cmf = 0x78, flg = (uint32_t)level << 6;
    flg += 31 - (cmf * 256 + flg) % 31;
    buf[0] = (uint8_t)cmf;
    buf[1] = (uint8_t)flg;
    uint32_t adler = tg_adler32(1, in, n);
    uint8_t *t = buf + 2 + body;
    t[0] = (uint8_t)(adler >> 24);
    t[1] = (uint8_t)(adler >> 16);
    t[2] = (uint8_t)(adler >> 8);
    t[3] = (uint8_t)adler;
    *out = buf;
    *out_n = 2 + body + 4;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* PNG */

enum { IDAT_MAX = 65536 };  /* bytes of zlib stream per IDAT chunk */
static const int64_t PNG_DIM_MAX = 0x7fffffff;

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes a chunk (length, type, data, CRC of type and data) at p; returns
 * the bytes written, 12 + len. */
static size_t put_chunk(uint8_t *p, const char type[4], const uint8_t *data, size_t len) {
    put_be32(p, (uint32_t)len);
    memcpy(p + 4, type, 4);
    if (len) memcpy(p + 8, data, len);
    put_be32(p + 8 + len, tg_crc32(0, p + 4, 4 + len));
    return 12 + len;
}

/* Encodes pixels (height, width, channels) as a PNG file image; color type
 * 0 (gray) for 1 channel, 2 (RGB) for 3. */
static int encode(const uint8_t *pixels, int64_t width, int64_t height, int channels, uint8_t **out, size_t *out_n,
                  tg_err *e) {
    *out = NULL;
    *out_n = 0;
    if (width > PNG_DIM_MAX || height > PNG_DIM_MAX ||
        ((uint64_t)width * (uint64_t)channels + 1) * (uint64_t)height > TG_DATA_MAX_BYTES) {
        tg_err_set(e, "a %lldx%lld PNG is over the size limits (2^31 - 1 per side, %zu bytes of scanlines)",
                   (long long)width, (long long)height, TG_DATA_MAX_BYTES);
        return -1;
    }
    size_t w = (size_t)width, h = (size_t)height, row = w * (size_t)channels, stride = row + 1;
    uint8_t *raw = malloc(stride * h);
    if (!raw) {
        tg_err_set(e, "out of memory encoding a %zux%zu PNG", w, h);
        return -1;
    }
    for (size_t y = 0; y < h; y++) {
        raw[y * stride] = 0;  /* filter type 0, None */
        memcpy(raw + y * stride + 1, pixels + y * row, row);
    }
    uint8_t *z;
    size_t zn;
    int rc = tg_zlib_compress(raw, stride * h, true, &z, &zn, e);
    free(raw);
    if (rc) return -1;

    size_t nidat = (zn + IDAT_MAX - 1) / IDAT_MAX;  /* zn >= 6, so >= 1 */
    size_t size = 8 + (12 + 13) + 12 * nidat + zn + 12;
    uint8_t *f = malloc(size);
    if (!f) {
        free(z);
        tg_err_set(e, "out of memory encoding a %zux%zu PNG", w, h);
        return -1;
    }
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(f, signature, 8);
    size_t o = 8;
    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;   /* bit depth */
    ihdr[9] = channels == 3 ? 2 : 0;  /* color type: RGB or grayscale */
    ihdr[10] = 0;  /* compression: deflate */
    ihdr[11] = 0;  /* filter method: adaptive (each line says which) */
    ihdr[12] = 0;  /* no interlace */
    o += put_chunk(f + o, "IHDR", ihdr, sizeof ihdr);
    for (size_t i = 0; i < zn; i += IDAT_MAX) o += put_chunk(f + o, "IDAT", z + i, zn - i < IDAT_MAX ? zn - i : IDAT_MAX);
    o += put_chunk(f + o, "IEND", NULL, 0);
    free(z);
    TG_CHECK(o == size, "tg_png_encode: wrote %zu bytes, planned %zu", o, size);
    *out = f;
    *out_n = size;
    return 0;
}

int tg_png_encode_gray(const uint8_t *pixels, int64_t width, int64_t height, uint8_t **out, size_t *out_n,
                       tg_err *e) {
    TG_CHECK(pixels && width >= 1 && height >= 1, "tg_png_encode_gray: need pixels and a size >= 1x1, got %lldx%lld",
             (long long)width, (long long)height);
    return encode(pixels, width, height, 1, out, out_n, e);
}

int tg_png_encode_rgb(const uint8_t *pixels, int64_t width, int64_t height, uint8_t **out, size_t *out_n,
                      tg_err *e) {
    TG_CHECK(pixels && width >= 1 && height >= 1, "tg_png_encode_rgb: need pixels and a size >= 1x1, got %lldx%lld",
             (long long)width, (long long)height);
    return encode(pixels, width, height, 3, out, out_n, e);
}

/* Encodes and writes atomically. */
static int write_png(const char *path, const uint8_t *pixels, int64_t width, int64_t height, int channels,
                     tg_err *e) {
    uint8_t *png;
    size_t n;
    int rc = channels == 3 ? tg_png_encode_rgb(pixels, width, height, &png, &n, e)
                           : tg_png_encode_gray(pixels, width, height, &png, &n, e);
    if (rc) {
        tg_err_prefix(e, path);
        return -1;
    }
    rc = tg_file_write(path, png, n, e);
    free(png);
    return rc;
}

int tg_png_write_gray(const char *path, const uint8_t *pixels, int64_t width, int64_t height, tg_err *e) {
    return write_png(path, pixels, width, height, 1, e);
}

int tg_png_write_rgb(const char *path, const uint8_t *pixels, int64_t width, int64_t height, tg_err *e) {
    return write_png(path, pixels, width, height, 3, e);
}

/* ------------------------------------------------------------------------ */
/* Grids */

/* a * b + c for non-negative values, saturating at INT64_MAX. */
static int64_t sat_muladd(int64_t a, int64_t b, int64_t c) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_add_overflow(r, c, &r)) return INT64_MAX;
    return r;
}

void tg_png_grid_size(int64_t n, int64_t h, int64_t w, int64_t cols, int64_t pad, int64_t *grid_w,
                      int64_t *grid_h) {
    TG_CHECK(n >= 1 && h >= 1 && w >= 1 && cols >= 1 && pad >= 0,
             "tg_png_grid: need n, h, w, cols >= 1 and pad >= 0, got n=%lld h=%lld w=%lld cols=%lld pad=%lld",
             (long long)n, (long long)h, (long long)w, (long long)cols, (long long)pad);
    int64_t c = cols < n ? cols : n, r = (n + c - 1) / c;
    int64_t tw = w > INT64_MAX - pad ? INT64_MAX : w + pad, th = h > INT64_MAX - pad ? INT64_MAX : h + pad;
    *grid_w = sat_muladd(c, tw, pad);
    *grid_h = sat_muladd(r, th, pad);
}

uint8_t tg_png_pixel_from_f32(float x) {
    if (!(x > 0.0f)) return 0;  /* also NaN */
    if (x >= 1.0f) return 255;
    return (uint8_t)(x * 255.0f + 0.5f);
}

/* Draws the grid of u8 (or f32 if u8 is NULL) images and writes it. */
static int grid_write(const char *path, const uint8_t *u8, const float *f32, int64_t n, int64_t h, int64_t w,
                      int64_t cols, int64_t pad, tg_err *e) {
    TG_CHECK(u8 || f32, "tg_png_write_grid: NULL images");
    int64_t gw, gh;
    tg_png_grid_size(n, h, w, cols, pad, &gw, &gh);
    if (gw > PNG_DIM_MAX || gh > PNG_DIM_MAX || (uint64_t)(gw + 1) * (uint64_t)gh > TG_DATA_MAX_BYTES) {
        tg_err_set(e, "%s: a grid of %lld images of %lldx%lld, %lld per row, pad %lld, is %lldx%lld pixels, "
                      "over the PNG size limits",
                   path, (long long)n, (long long)h, (long long)w, (long long)cols, (long long)pad,
                   (long long)gw, (long long)gh);
        return -1;
    }
    uint8_t *g = calloc((size_t)gw * (size_t)gh, 1);
    if (!g) {
        tg_err_set(e, "%s: out of memory for a %lldx%lld grid", path, (long long)gw, (long long)gh);
        return -1;
    }
    int64_t c = cols < n ? cols : n;
    for (int64_t i = 0; i < n; i++) {
        int64_t y0 = pad + i / c * (h + pad), x0 = pad + i % c * (w + pad);
        for (int64_t y = 0; y < h; y++) {
            uint8_t *dst = g + (y0 + y) * gw + x0;
            if (u8) {
                memcpy(dst, u8 + (i * h + y) * w, (size_t)w);
            } else {
                const float *src = f32 + (i * h + y) * w;
                for (int64_t x = 0; x < w; x++) dst[x] = tg_png_pixel_from_f32(src[x]);
            }
        }
    }
    int rc = tg_png_write_gray(path, g, gw, gh, e);
    free(g);
    return rc;
}

int tg_png_write_grid(const char *path, const uint8_t *images, int64_t n, int64_t h, int64_t w, int64_t cols,
                      int64_t pad, tg_err *e) {
    return grid_write(path, images, NULL, n, h, w, cols, pad, e);
}

int tg_png_write_grid_f32(const char *path, const float *images, int64_t n, int64_t h, int64_t w, int64_t cols,
                          int64_t pad, tg_err *e) {
    TG_CHECK(images, "tg_png_write_grid_f32: NULL images");
    return grid_write(path, NULL, images, n, h, w, cols, pad, e);
}
