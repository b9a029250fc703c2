/*
 * fuzz_idx.c — libFuzzer target for the gzip/zlib/deflate decoder
 * (io/inflate.c) and the IDX reader (data/idx.c).
 *
 * Each input is fed, as it is, to
 *   1. tg_gunzip_max        (a .gz file),
 *   2. tg_zlib_inflate      behind a zlib header 78 9c (the input as raw deflate data),
 *   3. tg_zlib_inflate      (a zlib stream),
 *   4. tg_idx_images_parse and tg_idx_labels_parse (an IDX file, raw or gzipped).
 * A failure must come with a message; a success must be consistent: the IDX
 * readers' arrays are the (decompressed) file's data bytes, with in-range
 * labels. Built with TG_FUZZ_ZLIB (the Makefile defines it when zlib is
 * installed), 1 and 2 are also checked against zlib: both decoders must
 * accept the same streams and produce the same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "io/file.h"
#include "io/gzip.h"

#ifdef TG_FUZZ_ZLIB
#include <zlib.h>
#endif

/* Output limit for the decoders: small enough that no input the fuzzer can
 * make legitimately hits the malloc limit. */
#define MAX_OUT ((size_t)16 << 20)

static void check_failed(int rc, const tg_err *e, const char *what) {
    if (rc != -1 || e->msg[0] == 0) {
        fprintf(stderr, "%s: returned %d with message \"%s\"\n", what, rc, e->msg);
        abort();
    }
}

#ifdef TG_FUZZ_ZLIB
/* zlib's decoding of in[0..n): windowBits 15 + 16 for gzip (every member),
 * -15 for raw deflate. Returns true and *out (malloc'd, *out_n bytes) on
 * success; *used is the input consumed (raw deflate may stop early). */
static bool zlib_decode(const uint8_t *in, size_t n, int window_bits, uint8_t **out, size_t *out_n,
                        size_t *used) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, window_bits) != Z_OK) abort();
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) abort();
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    bool ok = false;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_OUT) break;
            cap *= 2;
            if (!(buf = realloc(buf, cap))) abort();
        }
        z.next_out = buf + len;
        z.avail_out = (uInt)(cap - len);
        int rc = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
        if (rc == Z_STREAM_END) {
            /* gzip: another member may follow; zlib's own gunzip does the same. */
            if (window_bits > 0 && z.avail_in > 0) {
                if (inflateReset(&z) != Z_OK) abort();
                continue;
            }
            ok = true;
            break;
        }
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_out == 0)) break;
        if (rc == Z_OK && z.avail_in == 0 && z.avail_out > 0) break;   /* input ends mid-stream */
    }
    *used = n - z.avail_in;
    inflateEnd(&z);
    if (!ok) {
        free(buf);
        return false;
    }
    *out = buf;
    *out_n = len;
    return true;
}

/* Both decoders accept or both reject; if both accept, the same bytes. */
static void agree(bool ours, const uint8_t *a, size_t an, bool theirs, const uint8_t *b, size_t bn,
                  const char *what, const char *msg) {
    if (ours != theirs || (ours && (an != bn || memcmp(a, b, an) != 0))) {
        fprintf(stderr, "%s: tapegrad %s (%zu bytes; %s), zlib %s (%zu bytes)\n", what,
                ours ? "accepts" : "rejects", an, msg, theirs ? "accepts" : "rejects", bn);
        abort();
    }
}
#endif

static void fuzz_gzip(const uint8_t *in, size_t n) {
    uint8_t *out;
    size_t out_n;
    tg_err e = {{0}};
    int rc = tg_gunzip_max(in, n, MAX_OUT, &out, &out_n, &e);
    if (rc) check_failed(rc, &e, "tg_gunzip_max");
    else if (out_n > MAX_OUT) abort();
#ifdef TG_FUZZ_ZLIB
    /* Inputs without the magic are refused before decoding starts. */
    if (tg_is_gzip(in, n)) {
        uint8_t *ref = NULL;
        size_t ref_n = 0, used;
        bool theirs = zlib_decode(in, n, 15 + 16, &ref, &ref_n, &used) && used == n;
        agree(rc == 0, out, rc ? 0 : out_n, theirs, ref, ref_n, "gzip", e.msg);
        free(ref);
    }
#endif
    if (rc == 0) free(out);
}

static void fuzz_deflate(const uint8_t *in, size_t n) {
    /* 78 9c, the input, and (for zlib to agree on) a correct Adler-32 after
     * the deflate stream, found by decoding it first with zlib if present. */
    uint8_t *z = malloc(n + 6);
    if (!z) return;
    z[0] = 0x78, z[1] = 0x9c;
    if (n) memcpy(z + 2, in, n);
    size_t zn = n + 2;
#ifdef TG_FUZZ_ZLIB
    uint8_t *ref = NULL;
    size_t ref_n = 0, used = 0;
    bool theirs = zlib_decode(in, n, -15, &ref, &ref_n, &used);
    if (theirs) {   /* cut after the stream and append its Adler-32 */
        uint32_t a = tg_adler32(1, ref, ref_n);
        zn = 2 + used;
        for (int k = 0; k < 4; k++) z[zn++] = (uint8_t)(a >> (24 - 8 * k));
    }
#endif
    uint8_t *out;
    size_t out_n;
    tg_err e = {{0}};
    int rc = tg_zlib_inflate(z, zn, MAX_OUT, &out, &out_n, &e);
    if (rc) check_failed(rc, &e, "tg_zlib_inflate (raw deflate)");
#ifdef TG_FUZZ_ZLIB
    /* Without a correct Adler-32 our decoder fails after the deflate data;
     * whether the deflate data itself decoded shows in the message. */
    bool ours = rc == 0 || strstr(e.msg, "Adler-32") || strstr(e.msg, "trailing garbage");
    if (ours && !theirs) agree(true, NULL, 0, false, NULL, 0, "raw deflate", e.msg);
    if (theirs) agree(rc == 0, out, rc ? 0 : out_n, true, ref, ref_n, "raw deflate", e.msg);
    free(ref);
#endif
    if (rc == 0) free(out);
    free(z);
}

static void fuzz_zlib(const uint8_t *in, size_t n) {
    uint8_t *out;
    size_t out_n;
    tg_err e = {{0}};
    int rc = tg_zlib_inflate(in, n, MAX_OUT, &out, &out_n, &e);
    if (rc) check_failed(rc, &e, "tg_zlib_inflate");
    else free(out);
}

/* The file's contents after transparent decompression, as the IDX readers see them. */
static bool contents(const uint8_t *in, size_t n, uint8_t **buf, size_t *len) {
    tg_err e;
    if (tg_is_gzip(in, n)) return tg_gunzip(in, n, buf, len, &e) == 0;
    *buf = malloc(n ? n : 1);
    if (!*buf) abort();
    if (n) memcpy(*buf, in, n);
    *len = n;
    return true;
}

static void fuzz_idx(const uint8_t *in, size_t n) {
    tg_err e = {{0}};
    tg_images x;
    int rc = tg_idx_images_parse(in, n, "fuzz", &x, &e);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rc == 0) {
        if (!contents(in, n, &buf, &len)) abort();
        if (x.n < 1 || x.rows < 1 || x.cols < 1 || len != 16 + (size_t)(x.n * x.rows * x.cols) ||
            memcmp(x.pixels, buf + 16, len - 16) != 0)
            abort();
        free(buf);
        tg_images_free(&x);
    } else {
        check_failed(rc, &e, "tg_idx_images_parse");
        if (x.pixels || x.n) abort();
    }
    tg_labels y;
    memset(&e, 0, sizeof e);
    rc = tg_idx_labels_parse(in, n, "fuzz", 10, &y, &e);
    if (rc == 0) {
        if (!contents(in, n, &buf, &len)) abort();
        if (y.n < 1 || y.classes != 10 || len != 8 + (size_t)y.n || memcmp(y.labels, buf + 8, len - 8) != 0)
            abort();
        for (int64_t i = 0; i < y.n; i++)
            if (y.labels[i] >= 10) abort();
        free(buf);
        tg_labels_free(&y);
    } else {
        check_failed(rc, &e, "tg_idx_labels_parse");
        if (y.labels || y.n) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A heap copy of exactly size bytes, so reading past the end is caught. */
    uint8_t *in = malloc(size ? size : 1);
    if (!in) return 0;
    memcpy(in, data, size);
    fuzz_gzip(in, size);
    fuzz_deflate(in, size);
    fuzz_zlib(in, size);
    fuzz_idx(in, size);
    free(in);
    return 0;
}
