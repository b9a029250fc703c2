/* png_read.h — a strict little PNG decoder for the tests, written apart from
 * the writer under test (io/png.c): it checks the signature, the chunk
 * order, every chunk's CRC-32 (with tg_crc32 and a bit-at-a-time reference),
 * the IHDR fields (8-bit gray, or RGB for the _rgb readers, no interlace), inflates the joined IDAT data
 * with tg_zlib_inflate (which checks the Adler-32) and undoes filter 0. Every
 * rule broken fails the calling test. */
#ifndef TG_TEST_PNG_READ_H
#define TG_TEST_PNG_READ_H

#include <stddef.h>
#include <stdint.h>

/* Bit-at-a-time CRC-32 (PNG spec annex D, RFC 1952 section 8, without the
 * table): the reference the library's tg_crc32 is checked against. */
uint32_t tg_ref_crc32(const uint8_t *p, size_t n);

/* A decoded PNG. */
typedef struct {
    int64_t w, h;
    int ch;        /* channels: 1 (gray) or 3 (RGB) */
    uint8_t *px;   /* (h, w, ch) */
    int idat;      /* IDAT chunks seen */
    uint8_t *z;    /* the joined zlib stream */
    size_t zn;
} tg_png_img;

/* Decodes the file image f[0..n), or the file at path, which must be gray
 * (color type 0), or RGB (color type 2) for the _rgb twins. Free with
 * tg_png_free. */
tg_png_img tg_png_parse(const uint8_t *f, size_t n);
tg_png_img tg_png_read(const char *path);
tg_png_img tg_png_parse_rgb(const uint8_t *f, size_t n);
tg_png_img tg_png_read_rgb(const char *path);
void tg_png_free(tg_png_img *img);

/* The n tiles (h, w) of a grid laid out as torchvision's make_grid (and
 * io/png.h) documents, computed here from the layout alone: c = min(cols, n)
 * tiles per row, tile i's top-left pixel at (pad + (i / c)(h + pad),
 * pad + (i % c)(w + pad)); the image must be c (w + pad) + pad wide and
 * ceil(n / c) (h + pad) + pad high, and every pixel outside the tiles (the
 * padding, unused tiles of the last row) 0. Fills tiles (n, h, w). */
void tg_png_grid_tiles(const tg_png_img *g, int64_t n, int64_t h, int64_t w, int64_t cols, int64_t pad,
                       uint8_t *tiles);

#endif
