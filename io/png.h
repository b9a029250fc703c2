/*
 * png.h — writing 8-bit grayscale and RGB PNG files, and image grids, from scratch.
 *
 *     // 64 model outputs of 28x28 in [0, 1], as an 8x8 grid with 2-pixel gaps
 *     tg_err err;
 *     if (tg_png_write_grid_f32("out/samples.png", probs, 64, 28, 28, 8, 2, &err) != 0) {
 *         fprintf(stderr, "%s\n", err.msg);
 *         return 1;
 *     }
 *
 * A file is the PNG signature, IHDR (bit depth 8, color type 0 = gray or
 * 2 = RGB, no interlace), IDAT chunks of at most 64 KiB holding one zlib stream, and
 * IEND; every chunk carries its CRC-32. Every scanline uses filter type 0
 * (None). The zlib stream is compressed with one fixed-Huffman deflate block
 * and a greedy LZ77 matcher, or stored in raw deflate blocks when that comes
 * out smaller (noise does not compress). Output is a deterministic function
 * of the input.
 *
 * Files are written atomically as described in io/file.h: on failure
 * nothing is left behind and -1 comes back with a message naming the path.
 * Sizes < 1 or NULL buffers are programmer errors and abort; images over
 * TG_DATA_MAX_BYTES of scanlines, or wider or taller than PNG allows
 * (2^31 - 1), return -1.
 */
#ifndef TG_PNG_H
#define TG_PNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/file.h"

/* Compresses in[0..n) into one zlib stream (RFC 1950: header 78 01 or 78 5e,
 * deflate data, big-endian Adler-32): a fixed-Huffman block with LZ77 matches
 * when huffman is true and that is smaller than storing, else stored blocks of
 * at most 65535 bytes. *out is malloc'd (*out_n bytes; the caller frees it).
 * Returns 0, or -1 if out of memory. tg_zlib_inflate inverts it. */
int tg_zlib_compress(const uint8_t *in, size_t n, bool huffman, uint8_t **out, size_t *out_n, tg_err *e);

/* Encodes a width x height gray image, pixels (height, width) row-major with
 * 0 = black, as a PNG file image in memory: *out is malloc'd, *out_n bytes. */
int tg_png_encode_gray(const uint8_t *pixels, int64_t width, int64_t height, uint8_t **out, size_t *out_n,
                       tg_err *e);

/* Writes pixels (height, width) as a grayscale PNG file at path. */
int tg_png_write_gray(const char *path, const uint8_t *pixels, int64_t width, int64_t height, tg_err *e);

/* tg_png_encode_gray for a color image: pixels (height, width, 3) row-major,
 * each pixel its red, green and blue bytes (color type 2). */
int tg_png_encode_rgb(const uint8_t *pixels, int64_t width, int64_t height, uint8_t **out, size_t *out_n,
                      tg_err *e);

/* Writes pixels (height, width, 3) as an RGB PNG file at path. */
int tg_png_write_rgb(const char *path, const uint8_t *pixels, int64_t width, int64_t height, tg_err *e);

/* Size of the grid tg_png_write_grid draws: with c = min(cols, n) tiles per
 * row and r = ceil(n / c) rows of tiles,
 *   width = c * (w + pad) + pad,   height = r * (h + pad) + pad. */
void tg_png_grid_size(int64_t n, int64_t h, int64_t w, int64_t cols, int64_t pad, int64_t *grid_w,
                      int64_t *grid_h);

/* Writes n images (n, h, w) as one PNG grid, like torchvision's make_grid:
 * image i sits at tile row i / c, tile column i % c (c = min(cols, n)), its
 * top-left pixel at (pad + row * (h + pad), pad + col * (w + pad)); the pad
 * pixels around and between tiles, and unused tiles in the last row, are 0.
 * Needs n, h, w, cols >= 1 and pad >= 0. */
int tg_png_write_grid(const char *path, const uint8_t *images, int64_t n, int64_t h, int64_t w, int64_t cols,
                      int64_t pad, tg_err *e);

/* tg_png_write_grid for float pixels in [0, 1] (model outputs): each value
 * is clamped to [0, 1] (NaN counts as 0) and mapped to floor(255 x + 0.5),
 * so 0.5 -> 128, -0.2 -> 0, 1.7 -> 255. */
int tg_png_write_grid_f32(const char *path, const float *images, int64_t n, int64_t h, int64_t w, int64_t cols,
                          int64_t pad, tg_err *e);

/* The byte a float pixel becomes in tg_png_write_grid_f32. */
uint8_t tg_png_pixel_from_f32(float x);

#endif
