/*
 * gzip.h — checksums and decompression, from scratch on libc (inflate.c):
 * CRC-32 and Adler-32, and a deflate decoder (RFC 1951) inside gzip
 * (RFC 1952) and zlib (RFC 1950) wrappers.
 *
 *     tg_err err;
 *     uint8_t *out;
 *     size_t out_n;
 *     if (tg_gunzip(in, n, &out, &out_n, &err) != 0) {
 *         fprintf(stderr, "%s\n", err.msg);   // "gzip CRC-32 mismatch (stored ..., computed ...)"
 *         return 1;
 *     }
 *     ...
 *     free(out);
 *
 * Corrupt or truncated input is an error, not an abort: the decoders return
 * 0, or -1 with a message in a caller-provided tg_err (which may be NULL),
 * and leave nothing allocated behind. Output is bounded (TG_DATA_MAX_BYTES
 * unless the caller chooses a limit), and sizes read from headers are only
 * hints, never trusted for an allocation.
 */
#ifndef TG_GZIP_H
#define TG_GZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/file.h"

/* CRC-32 (ISO 3309 / ITU-T V.42, as in gzip, zlib and PNG) of buf[0..n),
 * continuing from crc: tg_crc32(0, buf, n) starts a new one, and
 * tg_crc32(tg_crc32(0, a, na), b, nb) equals the CRC of a followed by b.
 * tg_crc32(0, "123456789", 9) == 0xcbf43926. Thread-safe. */
uint32_t tg_crc32(uint32_t crc, const void *buf, size_t n);

/* Adler-32 (RFC 1950) of buf[0..n), continuing from adler: tg_adler32(1, buf, n)
 * starts a new one (zlib semantics). tg_adler32(1, "Wikipedia", 9) == 0x11e60398. */
uint32_t tg_adler32(uint32_t adler, const void *buf, size_t n);

/* Decompresses a gzip file image in[0..n) (RFC 1952: one or more members,
 * each with FEXTRA/FNAME/FCOMMENT/FHCRC as flagged; stored, fixed and dynamic
 * Huffman blocks). Verifies every member's CRC-32 and ISIZE; trailing bytes
 * after the last member are an error. On success *out is a malloc'd buffer of
 * *out_n bytes (the caller frees it; never NULL, even when *out_n == 0). Output
 * larger than TG_DATA_MAX_BYTES is rejected. */
int tg_gunzip(const uint8_t *in, size_t n, uint8_t **out, size_t *out_n, tg_err *e);

/* tg_gunzip with a caller-chosen output limit max_out (bytes). */
int tg_gunzip_max(const uint8_t *in, size_t n, size_t max_out,
                  uint8_t **out, size_t *out_n, tg_err *e);

/* Decompresses one zlib stream in[0..n) (RFC 1950: CMF/FLG header, deflate
 * data, Adler-32 checked; preset dictionaries are rejected). Output rules as
 * tg_gunzip_max. */
int tg_zlib_inflate(const uint8_t *in, size_t n, size_t max_out,
                    uint8_t **out, size_t *out_n, tg_err *e);

/* True if buf[0..n) starts with the gzip magic bytes 1f 8b. */
bool tg_is_gzip(const uint8_t *buf, size_t n);

#endif
