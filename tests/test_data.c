/*
 * test_data.c — checksums, gzip/zlib decoding and whole-file reading
 * (io/gzip.h, io/file.h), IDX files, datasets and the mini-batch iterator
 * (data/data.h).
 *
 * The compressed fixtures in tests/fixtures/data/ were made by independent
 * encoders, the system gzip and Python's zlib (make_data_fixtures.py there
 * documents how), so decoding is checked against them; the error paths that
 * no encoder produces are reached with deflate streams assembled bit by bit
 * below. Reference CRC-32 and Adler-32 are recomputed here the slow, obvious
 * way. Tests that write files do so in a fresh temporary directory.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "data/data.h"
#include "io/file.h"
#include "io/gzip.h"
#include "tests/alloc_count.h"

#include "tests/child.h"
#include "tests/png_read.h"
#include "tests/tmpdir.h"

/* ================================================================ helpers */

/* Path of a fixture: tests/fixtures/data/<name>, found next to this file. */
static const char *fix(const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash ? (int)(slash - __FILE__ + 1) : 0;
    snprintf(p, sizeof buf[0], "%.*sfixtures/data/%s", dirlen, __FILE__, name);
    return p;
}



/* Adler-32 reduced after every byte. */
static uint32_t ref_adler32(const uint8_t *p, size_t n) {
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521;
        b = (b + a) % 65521;
    }
    return b << 16 | a;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}

static void put_be32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* The pixel formula of the fixtures (make_data_fixtures.py). */
static uint8_t pix(int64_t i, int64_t r, int64_t c) {
    return (uint8_t)((37 * i + 11 * r + 5 * c + i * r * c) % 256);
}

/* Writes an IDX file: magic, ndim big-endian dims, then data[0..len). */
static void write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims, const uint8_t *data,
                      size_t len) {
    size_t h = 4 + 4 * (size_t)ndim;
    uint8_t *buf = malloc(h + len + 1);
    put_be32(buf, magic);
    for (int i = 0; i < ndim; i++) put_be32(buf + 4 + 4 * i, dims[i]);
    if (len) memcpy(buf + h, data, len);
    tg_spit(path, buf, h + len);
    free(buf);
}

/* Writes n images of rows x cols with the fixture formula, raw. */
static void write_images(const char *path, uint32_t n, uint32_t rows, uint32_t cols) {
    uint8_t *px = malloc((size_t)n * rows * cols + 1);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t c = 0; c < cols; c++) px[((size_t)i * rows + r) * cols + c] = pix(i, r, c);
    write_idx(path, 0x803, 3, (uint32_t[]){n, rows, cols}, px, (size_t)n * rows * cols);
    free(px);
}

/* Writes n labels (mul * i + add) mod 10, raw. */
static void write_labels(const char *path, uint32_t n, int mul, int add) {
    uint8_t *y = malloc(n + 1);
    for (uint32_t i = 0; i < n; i++) y[i] = (uint8_t)((mul * (int64_t)i + add) % 10);
    write_idx(path, 0x801, 1, (uint32_t[]){n}, y, n);
    free(y);
}

/* Asserts that rc is an error whose message contains want. */
#define assert_err(rc, e, want)                                                                   \
    do {                                                                                          \
        cr_assert_eq((rc), -1, "expected an error containing \"%s\"", (want));                    \
        cr_assert(strstr((e).msg, (want)), "message \"%s\" lacks \"%s\"", (e).msg, (want));         \
    } while (0)

/* ---------------------------------------------------------------- a deflate bit writer */

typedef struct {
    uint8_t b[8192];
    size_t n;  /* bytes started */
    int bits;  /* bits used in the last byte; 0 = next bit starts a new byte */
} bitw;

/* Appends the k low bits of v, least significant first (header fields). */
static void bw_bits(bitw *w, uint32_t v, int k) {
    for (int i = 0; i < k; i++) {
        if (w->bits == 0) w->b[w->n++] = 0;
        w->b[w->n - 1] |= (uint8_t)(((v >> i) & 1) << w->bits);
        w->bits = (w->bits + 1) & 7;
    }
}

/* Appends a Huffman code of len bits, most significant first. */
static void bw_code(bitw *w, uint32_t code, int len) {
    for (int i = len - 1; i >= 0; i--) bw_bits(w, (code >> i) & 1, 1);
}

static void bw_align(bitw *w) { w->bits = 0; }

/* Appends a byte at a byte boundary. */
static void bw_byte(bitw *w, uint8_t x) {
    cr_assert_eq(w->bits, 0);
    w->b[w->n++] = x;
}

/* A literal/length symbol in the fixed code (RFC 1951 3.2.6). */
static void fixed_sym(bitw *w, int sym) {
    if (sym < 144) bw_code(w, 0x30 + (uint32_t)sym, 8);
    else if (sym < 256) bw_code(w, 0x190 + (uint32_t)(sym - 144), 9);
    else if (sym < 280) bw_code(w, (uint32_t)(sym - 256), 7);
    else bw_code(w, 0xc0 + (uint32_t)(sym - 280), 8);
}

/* A distance symbol in the fixed code: 5 bits. */
static void fixed_dist(bitw *w, int dsym) { bw_code(w, (uint32_t)dsym, 5); }

/* A stored block holding data[0..n). */
static void stored_block(bitw *w, bool last, const char *data, unsigned n) {
    bw_bits(w, last, 1);
    bw_bits(w, 0, 2);
    bw_align(w);
    bw_byte(w, n & 0xff), bw_byte(w, (uint8_t)(n >> 8));
    bw_byte(w, ~n & 0xff), bw_byte(w, (uint8_t)(~n >> 8));
    for (unsigned i = 0; i < n; i++) bw_byte(w, (uint8_t)data[i]);
}

static const uint8_t cl_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

/* A dynamic block header for code lengths lens[0..nlit+ndist), each sent
 * with a flat code-length code (symbols 0..15 all 4 bits, so symbol s is
 * code s). BFINAL/BTYPE must already be written. */
static void dyn_header(bitw *w, const uint8_t *lens, int nlit, int ndist) {
    bw_bits(w, (uint32_t)(nlit - 257), 5);
    bw_bits(w, (uint32_t)(ndist - 1), 5);
    bw_bits(w, 19 - 4, 4);
    for (int i = 0; i < 19; i++) bw_bits(w, cl_order[i] < 16 ? 4 : 0, 3);
    for (int i = 0; i < nlit + ndist; i++) bw_code(w, lens[i], 4);
}

/* Canonical Huffman codes for lens[0..n) (RFC 1951 3.2.2). */
static void canon(const uint8_t *lens, int n, uint32_t *codes) {
    int count[16] = {0};
    uint32_t next[16] = {0}, code = 0;
    for (int i = 0; i < n; i++) count[lens[i]]++;
    count[0] = 0;
    for (int l = 1; l < 16; l++) next[l] = code = (code + (uint32_t)count[l - 1]) << 1;
    for (int i = 0; i < n; i++)
        if (lens[i]) codes[i] = next[lens[i]]++;
}

/* Wraps raw deflate data in a minimal gzip member whose trailer describes
 * plain[0..pn). Returns the size written to out. */
static size_t gz_wrap(uint8_t *out, const uint8_t *deflate, size_t dn, const void *plain, size_t pn) {
    static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    memcpy(out, header, 10);
    memcpy(out + 10, deflate, dn);
    put_le32(out + 10 + dn, tg_ref_crc32(plain, pn));
    put_le32(out + 14 + dn, (uint32_t)pn);
    return dn + 18;
}

/* Decodes bit writer contents wrapped as gzip with trailer for expect;
 * returns tg_gunzip's result and checks the output on success. */
static int gunzip_crafted(const bitw *w, const char *expect, tg_err *e) {
    uint8_t gz[8300];
    size_t pn = expect ? strlen(expect) : 0;
    size_t n = gz_wrap(gz, w->b, w->n, expect ? expect : "", pn);
    uint8_t *out;
    size_t out_n;
    int rc = tg_gunzip(gz, n, &out, &out_n, e);
    if (rc == 0) {
        cr_assert_eq(out_n, pn);
        cr_assert(!memcmp(out, expect, pn), "wrong output");
        free(out);
    } else {
        cr_assert_null(out);
    }
    return rc;
}

/* ================================================================ checksums */

Test(data_checksum, crc32_known_values_and_chaining) {
    cr_assert_eq(tg_crc32(0, "123456789", 9), 0xcbf43926u);
    cr_assert_eq(tg_crc32(0, "", 0), 0u);
    cr_assert_eq(tg_crc32(0, "The quick brown fox jumps over the lazy dog", 43), 0x414fa339u);
    uint8_t buf[10007];
    uint32_t x = 1;
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
    uint32_t whole = tg_crc32(0, buf, sizeof buf);
    cr_assert_eq(whole, tg_ref_crc32(buf, sizeof buf));
    for (size_t cut = 0; cut < 40; cut++)  /* every alignment of the 8-byte loop */
        cr_assert_eq(tg_crc32(tg_crc32(0, buf, cut), buf + cut, sizeof buf - cut), whole, "cut %zu", cut);
}

Test(data_checksum, adler32_known_values_and_chaining) {
    cr_assert_eq(tg_adler32(1, "Wikipedia", 9), 0x11e60398u);
    cr_assert_eq(tg_adler32(1, "", 0), 1u);
    static uint8_t buf[100000];
    memset(buf, 0xff, sizeof buf);  /* worst case for overflow between reductions */
    uint32_t whole = tg_adler32(1, buf, sizeof buf);
    cr_assert_eq(whole, ref_adler32(buf, sizeof buf));
    cr_assert_eq(tg_adler32(tg_adler32(1, buf, 12345), buf + 12345, sizeof buf - 12345), whole);
}

/* ================================================================ gzip: fixtures from real encoders */

/* Decodes a fixture with tg_file_read and checks it equals payload.bin. */
static void check_payload_fixture(const char *name, int first_btype) {
    size_t pn, gn, n;
    uint8_t *payload = tg_slurp(fix("payload.bin"), &pn);
    uint8_t *gz = tg_slurp(fix(name), &gn);
    if (first_btype >= 0) {  /* the fixture really holds the block type under test */
        cr_assert_eq(gz[3], 0, "%s: expected no header flags", name);
        cr_assert_eq((gz[10] >> 1) & 3, first_btype, "%s: first block type", name);
    }
    uint8_t *out;
    tg_err e;
    int rc = tg_file_read(fix(name), &out, &n, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    cr_assert_eq(n, pn);
    cr_assert(!memcmp(out, payload, n), "%s decodes to different bytes", name);
    free(out);
    free(gz);
    free(payload);
}

Test(data_gzip, dynamic_huffman_gzip_9) { check_payload_fixture("payload.gz", 2); }
Test(data_gzip, stored_blocks) { check_payload_fixture("payload-stored.gz", 0); }
Test(data_gzip, fixed_huffman) { check_payload_fixture("payload-fixed.gz", 1); }
Test(data_gzip, fname_header) { check_payload_fixture("payload-name.gz", -1); }
Test(data_gzip, two_members) { check_payload_fixture("payload-multi.gz", -1); }

Test(data_gzip, empty_member) {
    size_t gn, n = 99;
    uint8_t *gz = tg_slurp(fix("empty.gz"), &gn), *out;
    tg_err e;
    cr_assert_eq(tg_gunzip(gz, gn, &out, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 0);
    cr_assert_not_null(out);
    free(out);
    free(gz);
}

Test(data_gzip, zlib_stream) {
    size_t pn, zn, n;
    uint8_t *payload = tg_slurp(fix("payload.bin"), &pn), *z = tg_slurp(fix("payload.zlib"), &zn), *out;
    tg_err e;
    cr_assert_eq(tg_zlib_inflate(z, zn, SIZE_MAX, &out, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, pn);
    cr_assert(!memcmp(out, payload, n));
    free(out);
    z[zn - 1] ^= 1;
    assert_err(tg_zlib_inflate(z, zn, SIZE_MAX, &out, &n, &e), e, "Adler-32 mismatch");
    z[zn - 1] ^= 1;
    z[1] ^= 1;
    assert_err(tg_zlib_inflate(z, zn, SIZE_MAX, &out, &n, &e), e, "header check");
    z[1] ^= 1;
    assert_err(tg_zlib_inflate(z, zn - 1, SIZE_MAX, &out, &n, &e), e, "truncated");
    cr_assert_null(out);
    free(z);
    free(payload);
}

Test(data_gzip, all_header_flags) {
    /* FTEXT|FHCRC|FEXTRA|FNAME|FCOMMENT in front of payload.gz's deflate data. */
    size_t gn, pn, n;
    uint8_t *gz = tg_slurp(fix("payload.gz"), &gn), *payload = tg_slurp(fix("payload.bin"), &pn);
    uint8_t *buf = malloc(gn + 64), *out;
    uint8_t head[] = {0x1f, 0x8b, 8, 0x1f, 1, 2, 3, 4, 0, 3, 5, 0, 'x', 't', 'r', 'a', '!',
                      'n', 'a', 'm', 'e', 0, 'h', 'i', ' ', 't', 'h', 'e', 'r', 'e', 0};
    size_t h = sizeof head;
    memcpy(buf, head, h);
    uint32_t hcrc = tg_ref_crc32(head, h);
    buf[h] = hcrc & 0xff, buf[h + 1] = (uint8_t)(hcrc >> 8);
    memcpy(buf + h + 2, gz + 10, gn - 10);
    size_t n_all = h + 2 + gn - 10;
    tg_err e;
    cr_assert_eq(tg_gunzip(buf, n_all, &out, &n, &e), 0, "%s", e.msg);
    cr_assert(n == pn && !memcmp(out, payload, n));
    free(out);
    buf[h] ^= 0x40;
    assert_err(tg_gunzip(buf, n_all, &out, &n, &e), e, "header CRC-16 mismatch");
    buf[h] ^= 0x40;
    for (size_t cut = 10; cut < h + 2; cut++)  /* header cut inside any field */
        assert_err(tg_gunzip(buf, cut, &out, &n, &e), e, "truncated gzip header");
    free(buf);
    free(payload);
    free(gz);
}

Test(data_gzip, corrupt_crc_isize_and_header) {
    size_t gn, n;
    uint8_t *gz = tg_slurp(fix("payload.gz"), &gn), *out;
    tg_err e;
    gz[gn - 8] ^= 0x01;  /* CRC-32 */
    assert_err(tg_gunzip(gz, gn, &out, &n, &e), e, "gzip CRC-32 mismatch (stored ");
    cr_assert_null(out);
    gz[gn - 8] ^= 0x01;
    gz[gn - 1] = 0xff;  /* ISIZE now claims ~4 GB: must not be believed */
    assert_err(tg_gunzip(gz, gn, &out, &n, &e), e,
               "gzip ISIZE mismatch (stored 4278222848, decompressed 32768 bytes)");
    gz[gn - 1] = 0;
    gz[gn - 4] ^= 1;    /* ISIZE off by one */
    assert_err(tg_gunzip(gz, gn, &out, &n, &e), e, "ISIZE mismatch");
    gz[gn - 4] ^= 1;
    gz[2] = 7;
    assert_err(tg_gunzip(gz, gn, &out, &n, &e), e, "compression method 7");
    gz[2] = 8;
    gz[3] = 0x20;
    assert_err(tg_gunzip(gz, gn, &out, &n, &e), e, "reserved gzip header flags");
    gz[3] = 0;
    gz[0] = 0x1e;
    assert_err(tg_gunzip(gz, gn, &out, &n, &e), e, "not gzip data");
    gz[0] = 0x1f;
    cr_assert_eq(tg_gunzip(gz, gn, &out, &n, &e), 0, "%s", e.msg);  /* all restored */
    free(out);
    free(gz);
}

Test(data_gzip, trailing_garbage_and_second_member_errors) {
    size_t gn, n;
    uint8_t *gz = tg_slurp(fix("payload.gz"), &gn), *out;
    uint8_t *buf = malloc(2 * gn + 4);
    tg_err e;
    memcpy(buf, gz, gn);
    buf[gn] = 0;
    assert_err(tg_gunzip(buf, gn + 1, &out, &n, &e), e, "trailing garbage");
    memcpy(buf + gn, gz, gn);  /* two copies: fine, then break the second's CRC */
    cr_assert_eq(tg_gunzip(buf, 2 * gn, &out, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 2 * 32768);
    free(out);
    buf[2 * gn - 8] ^= 1;
    assert_err(tg_gunzip(buf, 2 * gn, &out, &n, &e), e, "CRC-32 mismatch");
    cr_assert(strstr(e.msg, "in member 2"), "%s", e.msg);
    free(buf);
    free(gz);
}

Test(data_gzip, every_truncation_is_an_error) {
    const char *names[] = {"payload.gz", "payload-stored.gz", "payload-fixed.gz", "payload-name.gz",
                           "mini/train-images-idx3-ubyte.gz"};
    for (int f = 0; f < 5; f++) {
        size_t gn, n;
        uint8_t *gz = tg_slurp(fix(names[f]), &gn), *out;
        for (size_t cut = 0; cut < gn; cut += (cut < 300 || cut > gn - 300) ? 1 : 7) {
            /* a copy of exactly `cut` bytes, so ASan sees any read past it */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, gz, cut);
            tg_err e;
            int rc = tg_gunzip(p, cut, &out, &n, &e);
            cr_assert_eq(rc, -1, "%s cut at %zu decoded", names[f], cut);
            cr_assert_null(out);
            if (cut >= 2) cr_assert(strstr(e.msg, "truncated"), "%s cut at %zu: %s", names[f], cut, e.msg);
            free(p);
        }
        free(gz);
    }
}

Test(data_gzip, output_limit) {
    size_t gn, n;
    uint8_t *gz = tg_slurp(fix("payload.gz"), &gn), *out;
    tg_err e;
    assert_err(tg_gunzip_max(gz, gn, 32767, &out, &n, &e), e, "exceeds the limit of 32767 bytes");
    cr_assert_null(out);
    cr_assert_eq(tg_gunzip_max(gz, gn, 32768, &out, &n, &e), 0, "%s", e.msg);
    free(out);
    free(gz);
}

/* The ISIZE trailer is a claim like any header field: 256 KiB of stored
 * blocks whose trailer says 4 GiB once made the decoder reserve 1032 times the
 * input (270 MB) before decoding a byte. In a child whose address space is
 * capped 64 MiB above its current size, the stream must decode and fail on
 * the ISIZE check, not run out of memory. Skipped under ASan, whose
 * allocator reserves address space of its own. (Found with fuzz/fuzz_idx
 * and -malloc_limit_mb=256; fuzz/README.md.) */
Test(data_gzip, lying_isize_reserves_no_giant_buffer) {
    TG_SKIP_UNDER_ASAN();
    enum { N = 4 * 65535 + 4 };   /* five stored blocks */
    static uint8_t plain[N], gz[10 + N + 5 * 5 + 8];
    uint32_t x = 7;
    for (size_t i = 0; i < N; i++) plain[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
    static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    memcpy(gz, header, 10);
    size_t n = 10;
    for (size_t at = 0; at < N; at += 65535) {
        unsigned len = N - at < 65535 ? (unsigned)(N - at) : 65535;
        gz[n++] = at + len == N;   /* BFINAL, BTYPE 00 */
        gz[n++] = len & 0xff, gz[n++] = (uint8_t)(len >> 8), gz[n++] = ~len & 0xff, gz[n++] = (uint8_t)(~len >> 8);
        memcpy(gz + n, plain + at, len);
        n += len;
    }
    put_le32(gz + n, tg_ref_crc32(plain, N));
    put_le32(gz + n + 4, 0xffffffffu);
    n += 8;
    cr_assert_eq(n, sizeof gz);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages;
        if (!f || fscanf(f, "%lu", &pages) != 1) _exit(10);
        fclose(f);
        rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)64 << 20);
        struct rlimit rl = {cap, cap};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(11);
        uint8_t *out;
        size_t out_n;
        tg_err e;
        if (tg_gunzip(gz, n, &out, &out_n, &e) != -1) _exit(12);
        if (strstr(e.msg, "out of memory")) _exit(13);
        _exit(strstr(e.msg, "gzip ISIZE mismatch (stored 4294967295, decompressed 262144 bytes)") ? 0 : 14);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child status %d (exit 13: out of memory, the buffer was sized from the claim)", status);
    /* The same stream with a true ISIZE decodes, its buffer grown by doubling. */
    put_le32(gz + n - 4, N);
    uint8_t *out;
    size_t out_n;
    tg_err e;
    cr_assert_eq(tg_gunzip(gz, n, &out, &out_n, &e), 0, "%s", e.msg);
    cr_assert(out_n == N && !memcmp(out, plain, N));
    free(out);
}

/* Mutated and random inputs: every call must return 0 or -1 cleanly (run
 * this under ASan/UBSan to see that nothing is read or written out of bounds). */
Test(data_gzip, fuzz_mutations_and_random_streams) {
    const char *names[] = {"payload.gz", "payload-stored.gz", "payload-fixed.gz", "payload.zlib"};
    uint32_t x = 12345;
#define RND() (x = x * 1664525u + 1013904223u, x >> 8)
    int ok = 0, failed = 0;
    for (int f = 0; f < 4; f++) {
        size_t gn, n;
        uint8_t *gz = tg_slurp(fix(names[f]), &gn), *out;
        uint8_t *p = malloc(gn);
        for (int it = 0; it < 300; it++) {
            memcpy(p, gz, gn);
            int flips = 1 + (int)(RND() % 4);
            for (int k = 0; k < flips; k++) {
                size_t at = RND() % gn;
                if (RND() & 1) p[at] ^= (uint8_t)(1u << (RND() % 8));
                else p[at] = (uint8_t)RND();
            }
            tg_err e = {{0}};
            int rc = f == 3 ? tg_zlib_inflate(p, gn, 1 << 20, &out, &n, &e) : tg_gunzip(p, gn, &out, &n, &e);
            cr_assert(rc == 0 || rc == -1);
            if (rc == 0) {
                ok++;
                free(out);
            } else {
                failed++;
                cr_assert(e.msg[0] && !out);
            }
        }
        free(p);
        free(gz);
    }
    /* Random deflate data behind a valid gzip header, biased to each block type. */
    uint8_t buf[2100];
    for (int it = 0; it < 3000; it++) {
        size_t len = 1 + RND() % 2048, n;
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)RND();
        buf[0] = (uint8_t)((buf[0] & ~6) | (it % 3) << 1);
        uint8_t gz[2200], *out;
        size_t gn = gz_wrap(gz, buf, len, "", 0);
        tg_err e;
        int rc = tg_gunzip(gz, gn, &out, &n, &e);
        cr_assert(rc == 0 || rc == -1);
        if (rc == 0) free(out);
    }
#undef RND
    cr_log_info("mutations: %d decoded (header bytes without a check), %d rejected", ok, failed);
}

/* ================================================================ gzip: hand-built streams */

Test(data_inflate, fixed_block_literals_and_matches) {
    bitw w = {0};
    bw_bits(&w, 1, 1), bw_bits(&w, 1, 2);  /* final, fixed */
    fixed_sym(&w, 'a'), fixed_sym(&w, 'b'), fixed_sym(&w, 'c');
    fixed_sym(&w, 257), fixed_dist(&w, 2);  /* length 3, distance 3 */
    fixed_sym(&w, 264), fixed_dist(&w, 0);  /* length 10, distance 1: a run */
    fixed_sym(&w, 265), bw_bits(&w, 1, 1), fixed_dist(&w, 7), bw_bits(&w, 1, 2);  /* length 12, distance 14 */
    fixed_sym(&w, 256);
    tg_err e;
    cr_assert_eq(gunzip_crafted(&w, "abcabc" "cccccccccc" "cabccccccccc", &e), 0, "%s", e.msg);
}

Test(data_inflate, stored_blocks_including_empty) {
    bitw w = {0};
    stored_block(&w, false, "hello ", 6);
    stored_block(&w, false, "", 0);
    bw_bits(&w, 0, 1), bw_bits(&w, 1, 2);  /* a fixed block in between */
    fixed_sym(&w, 'w'), fixed_sym(&w, 256);
    stored_block(&w, true, "orld", 4);
    tg_err e;
    cr_assert_eq(gunzip_crafted(&w, "hello world", &e), 0, "%s", e.msg);
}

Test(data_inflate, dynamic_block_with_single_distance_code) {
    /* 'a' 1 bit, end 2 bits, length-3 symbol 2 bits; one distance code of 1 bit. */
    uint8_t lens[259] = {0};
    lens['a'] = 1, lens[256] = 2, lens[257] = 2, lens[258] = 1;
    uint32_t codes[258];
    canon(lens, 258, codes);
    bitw w = {0};
    bw_bits(&w, 1, 1), bw_bits(&w, 2, 2);
    dyn_header(&w, lens, 258, 1);
    bw_code(&w, codes['a'], 1);
    bw_code(&w, codes[257], 2), bw_code(&w, 0, 1);  /* length 3, distance 1 */
    bw_code(&w, codes[256], 2);
    tg_err e;
    cr_assert_eq(gunzip_crafted(&w, "aaaa", &e), 0, "%s", e.msg);
}

Test(data_inflate, bad_streams_are_named_errors) {
    tg_err e;
    bitw w = {0};
    bw_bits(&w, 1, 1), bw_bits(&w, 1, 2);  /* distance beyond the output */
    fixed_sym(&w, 'a'), fixed_sym(&w, 257), fixed_dist(&w, 1), fixed_sym(&w, 256);
    assert_err(gunzip_crafted(&w, "aaaa", &e), e, "distance too far back");

    w = (bitw){0};
    bw_bits(&w, 1, 1), bw_bits(&w, 1, 2);
    fixed_sym(&w, 'a'), fixed_sym(&w, 286), fixed_sym(&w, 256);
    assert_err(gunzip_crafted(&w, "a", &e), e, "invalid length symbol");

    w = (bitw){0};
    bw_bits(&w, 1, 1), bw_bits(&w, 1, 2);
    fixed_sym(&w, 'a'), fixed_sym(&w, 257), fixed_dist(&w, 30), fixed_sym(&w, 256);
    assert_err(gunzip_crafted(&w, "aaaa", &e), e, "invalid distance code");

    w = (bitw){0};
    bw_bits(&w, 1, 1), bw_bits(&w, 3, 2), bw_bits(&w, 0, 13);
    assert_err(gunzip_crafted(&w, "", &e), e, "block type 3 is reserved");

    w = (bitw){0};
    stored_block(&w, true, "abc", 3);
    w.b[3] ^= 1;  /* NLEN no longer ~LEN */
    assert_err(gunzip_crafted(&w, "abc", &e), e, "stored block length");
}

Test(data_inflate, bad_dynamic_headers) {
    tg_err e;
    uint8_t lens[320];
    bitw w;
    struct {
        int a, b, eob;  /* code lengths of 'a', 'b' and end-of-block */
        const char *want;
    } cases[] = {
        {1, 1, 0, "no end-of-block code"},
        {2, 0, 2, "incomplete code lengths"},
        {1, 1, 1, "over-subscribed code lengths"},
    };
    for (int c = 0; c < 3; c++) {
        memset(lens, 0, sizeof lens);
        lens['a'] = (uint8_t)cases[c].a, lens['b'] = (uint8_t)cases[c].b, lens[256] = (uint8_t)cases[c].eob;
        lens[257] = 1;  /* the one distance code */
        w = (bitw){0};
        bw_bits(&w, 1, 1), bw_bits(&w, 2, 2);
        dyn_header(&w, lens, 257, 1);
        bw_bits(&w, 0, 16);
        assert_err(gunzip_crafted(&w, "", &e), e, cases[c].want);
    }

    /* Code-length code over-subscribed: symbols 16, 17, 18 and 0 all 1 bit. */
    w = (bitw){0};
    bw_bits(&w, 1, 1), bw_bits(&w, 2, 2), bw_bits(&w, 0, 5), bw_bits(&w, 0, 5), bw_bits(&w, 0, 4);
    for (int i = 0; i < 4; i++) bw_bits(&w, 1, 3);
    bw_bits(&w, 0, 16);
    assert_err(gunzip_crafted(&w, "", &e), e, "over-subscribed");

    /* Code-length code {0: 1 bit, 16: 1 bit}; a repeat (16) comes first. */
    w = (bitw){0};
    bw_bits(&w, 1, 1), bw_bits(&w, 2, 2), bw_bits(&w, 0, 5), bw_bits(&w, 0, 5), bw_bits(&w, 0, 4);
    bw_bits(&w, 1, 3), bw_bits(&w, 0, 3), bw_bits(&w, 0, 3), bw_bits(&w, 1, 3);
    bw_code(&w, 1, 1), bw_bits(&w, 0, 16);
    assert_err(gunzip_crafted(&w, "", &e), e, "repeat with no previous code length");

    /* Code-length code {0: 1 bit, 18: 1 bit}; two runs of 138 zeros > 258 lengths. */
    w = (bitw){0};
    bw_bits(&w, 1, 1), bw_bits(&w, 2, 2), bw_bits(&w, 0, 5), bw_bits(&w, 0, 5), bw_bits(&w, 0, 4);
    bw_bits(&w, 0, 3), bw_bits(&w, 0, 3), bw_bits(&w, 1, 3), bw_bits(&w, 1, 3);
    bw_code(&w, 1, 1), bw_bits(&w, 127, 7), bw_code(&w, 1, 1), bw_bits(&w, 127, 7);
    assert_err(gunzip_crafted(&w, "", &e), e, "runs past the end");

    /* HLIT = 30: 287 literal/length codes, more than the 286 that exist. */
    w = (bitw){0};
    bw_bits(&w, 1, 1), bw_bits(&w, 2, 2), bw_bits(&w, 30, 5), bw_bits(&w, 0, 5), bw_bits(&w, 0, 4);
    bw_bits(&w, 0, 32);
    assert_err(gunzip_crafted(&w, "", &e), e, "too many length or distance codes");
}

Test(data_inflate, matches_cannot_reach_into_the_previous_member) {
    bitw w1 = {0}, w2 = {0};
    stored_block(&w1, true, "abc", 3);
    bw_bits(&w2, 1, 1), bw_bits(&w2, 1, 2);
    fixed_sym(&w2, 257), fixed_dist(&w2, 2), fixed_sym(&w2, 256);  /* "abc" again, from member 1 */
    uint8_t gz[200], *out;
    size_t n1 = gz_wrap(gz, w1.b, w1.n, "abc", 3);
    size_t n2 = gz_wrap(gz + n1, w2.b, w2.n, "abc", 3), n;
    tg_err e;
    assert_err(tg_gunzip(gz, n1 + n2, &out, &n, &e), e, "distance too far back");
}

/* ================================================================ files and IDX */

Test(data_idx, raw_images_and_labels, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    write_images(tg_tmp("img"), 37, 5, 4);
    write_labels(tg_tmp("lab"), 37, 7, 3);
    tg_images x;
    tg_labels y;
    tg_err e;
    cr_assert_eq(tg_idx_images_load(tg_tmp("img"), &x, &e), 0, "%s", e.msg);
    cr_assert(x.n == 37 && x.rows == 5 && x.cols == 4);
    for (int64_t i = 0; i < 37; i++)
        for (int64_t r = 0; r < 5; r++)
            for (int64_t c = 0; c < 4; c++) cr_assert_eq(x.pixels[(i * 5 + r) * 4 + c], pix(i, r, c));
    cr_assert_eq(tg_idx_labels_load(tg_tmp("lab"), 0, &y, &e), 0, "%s", e.msg);
    cr_assert(y.n == 37 && y.classes == 10);
    for (int64_t i = 0; i < 37; i++) cr_assert_eq(y.labels[i], (7 * i + 3) % 10);
    tg_images_free(&x);
    tg_labels_free(&y);
    cr_assert_null(x.pixels);
    tg_images_free(&x);  /* twice is fine */
}

Test(data_idx, gzip_detected_by_magic_not_by_name, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    size_t gn;
    uint8_t *gz = tg_slurp(fix("mini/train-images-idx3-ubyte.gz"), &gn);
    tg_spit(tg_tmp("plain-name"), gz, gn);  /* gzip data, no .gz */
    write_images(tg_tmp("raw.gz"), 37, 5, 4);  /* raw data named .gz */
    tg_images a, b;
    tg_err e;
    cr_assert_eq(tg_idx_images_load(tg_tmp("plain-name"), &a, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_images_load(tg_tmp("raw.gz"), &b, &e), 0, "%s", e.msg);
    cr_assert(a.n == b.n && a.rows == b.rows && a.cols == b.cols);
    cr_assert(!memcmp(a.pixels, b.pixels, (size_t)(a.n * a.rows * a.cols)), "gz and raw differ");
    tg_images_free(&a);
    tg_images_free(&b);
    free(gz);
}

Test(data_idx, size_mismatches_name_file_and_sizes, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t px[100] = {0};
    tg_images x;
    tg_err e;
    write_idx(tg_tmp("short"), 0x803, 3, (uint32_t[]){37, 5, 4}, px, 100);
    assert_err(tg_idx_images_load(tg_tmp("short"), &x, &e), e,
               "short: truncated: header says 37 images of 5x4 (740 bytes) but the file has 100");
    cr_assert_null(x.pixels);
    write_idx(tg_tmp("long"), 0x803, 3, (uint32_t[]){4, 5, 4}, px, 81);
    assert_err(tg_idx_images_load(tg_tmp("long"), &x, &e), e, "1 bytes of trailing data");
    write_idx(tg_tmp("hdr"), 0x803, 1, (uint32_t[]){4}, px, 0);  /* 8 bytes: header cut */
    assert_err(tg_idx_images_load(tg_tmp("hdr"), &x, &e), e, "truncated: 8 bytes, the IDX header needs 16");
    tg_spit(tg_tmp("tiny"), "\0\0", 2);
    assert_err(tg_idx_images_load(tg_tmp("tiny"), &x, &e), e, "too short for an IDX header");
    tg_spit(tg_tmp("empty"), "", 0);
    assert_err(tg_idx_images_load(tg_tmp("empty"), &x, &e), e, "too short");
}

Test(data_idx, truncated_idx_inside_gzip, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* mini/t10k-labels-idx1-ubyte.gz holds 11 labels; claim 12 by decoding,
     * editing and storing it again as a gzip member with a stored block. */
    uint8_t *lab;
    size_t n;
    tg_err e;
    cr_assert_eq(tg_file_read(fix("mini/t10k-labels-idx1-ubyte.gz"), &lab, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 8 + 11);
    lab[7] = 12;
    bitw w = {0};
    stored_block(&w, true, (const char *)lab, (unsigned)n);
    uint8_t gz[200];
    tg_spit(tg_tmp("lab.gz"), gz, gz_wrap(gz, w.b, w.n, lab, n));
    tg_labels y;
    assert_err(tg_idx_labels_load(tg_tmp("lab.gz"), 10, &y, &e), e,
               "lab.gz: truncated: header says 12 labels (12 bytes) but the file has 11");
    free(lab);
}

Test(data_idx, wrong_magic, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t d[20] = {0};
    tg_images x;
    tg_labels y;
    tg_err e;
    write_labels(tg_tmp("lab"), 20, 1, 0);
    write_images(tg_tmp("img"), 1, 2, 2);
    assert_err(tg_idx_images_load(tg_tmp("lab"), &x, &e), e, "bad IDX magic 0x00000801, expected 0x00000803");
    cr_assert(strstr(e.msg, "label file?"), "%s", e.msg);
    assert_err(tg_idx_labels_load(tg_tmp("img"), 10, &y, &e), e, "image file?");
    write_idx(tg_tmp("f32"), 0x0d03, 3, (uint32_t[]){1, 2, 2}, d, 16);  /* float elements */
    assert_err(tg_idx_images_load(tg_tmp("f32"), &x, &e), e, "bad IDX magic 0x00000d03");
    tg_spit(tg_tmp("text"), "hello world, not an IDX file", 28);
    assert_err(tg_idx_images_load(tg_tmp("text"), &x, &e), e, "not a uint8 IDX file");
}

Test(data_idx, absurd_and_zero_sizes_rejected_from_header, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t d[16] = {0};
    tg_images x;
    tg_labels y;
    tg_err e;
    write_idx(tg_tmp("huge"), 0x803, 3, (uint32_t[]){0xffffffffu, 65535, 65535}, d, 16);
    uint64_t before = tg_test_alloc_count();
    int rc = tg_idx_images_load(tg_tmp("huge"), &x, &e);
    uint64_t allocs = tg_test_alloc_count() - before;
    assert_err(rc, e, "absurd IDX header: 4294967295 x 65535 x 65535 images need over 1073741824 bytes");
    cr_assert_leq(allocs, 2, "%llu allocations for a rejected header", (unsigned long long)allocs);
    write_idx(tg_tmp("huge_lab"), 0x801, 1, (uint32_t[]){0x7fffffffu}, d, 16);
    assert_err(tg_idx_labels_load(tg_tmp("huge_lab"), 10, &y, &e), e, "absurd");
    write_idx(tg_tmp("zero"), 0x803, 3, (uint32_t[]){5, 0, 4}, d, 0);
    assert_err(tg_idx_images_load(tg_tmp("zero"), &x, &e), e, "dimension 1 is 0");
    write_idx(tg_tmp("none"), 0x801, 1, (uint32_t[]){0}, d, 0);
    assert_err(tg_idx_labels_load(tg_tmp("none"), 10, &y, &e), e, "dimension 0 is 0 (no labels)");
}

Test(data_idx, label_range, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    uint8_t y8[6] = {0, 1, 9, 3, 10, 2};
    write_idx(tg_tmp("lab"), 0x801, 1, (uint32_t[]){6}, y8, 6);
    tg_labels y;
    tg_err e;
    assert_err(tg_idx_labels_load(tg_tmp("lab"), 0, &y, &e), e, "lab: label 10 at index 4 is out of range [0, 10)");
    cr_assert_null(y.labels);
    cr_assert_eq(tg_idx_labels_load(tg_tmp("lab"), 11, &y, &e), 0, "%s", e.msg);
    cr_assert_eq(y.classes, 11);
    tg_labels_free(&y);
    assert_err(tg_idx_labels_load(tg_tmp("lab"), 5, &y, &e), e, "label 9 at index 2 is out of range [0, 5)");
}

Test(data_idx, unreadable_paths, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_images x;
    tg_err e;
    assert_err(tg_idx_images_load(tg_tmp("nope"), &x, &e), e, "nope: cannot open: No such file");
    assert_err(tg_idx_images_load(tg_tmpdir(), &x, &e), e, "not a regular file");
    size_t gn;
    uint8_t *gz = tg_slurp(fix("payload.gz"), &gn);
    gz[gn - 5] ^= 0x10;  /* the CRC, with the path in front of the message */
    tg_spit(tg_tmp("bad.gz"), gz, gn);
    assert_err(tg_idx_images_load(tg_tmp("bad.gz"), &x, &e), e, "bad.gz: gzip CRC-32 mismatch (stored ");
    free(gz);
}

Test(data_idx, parse_from_memory_as_from_files) {
    /* The in-memory readers see what the file readers see, gzipped or not,
     * and leave their input as it was. */
    const char *files[4] = {"mini/train-images-idx3-ubyte.gz", "mini/t10k-images-idx3-ubyte",
                            "mini/train-labels-idx1-ubyte", "mini/t10k-labels-idx1-ubyte.gz"};
    tg_err e;
    for (int k = 0; k < 4; k++) {
        size_t n;
        uint8_t *in = tg_slurp(fix(files[k]), &n), *copy = malloc(n);
        memcpy(copy, in, n);
        if (k < 2) {
            tg_images a, b;
            cr_assert_eq(tg_idx_images_load(fix(files[k]), &a, &e), 0, "%s", e.msg);
            cr_assert_eq(tg_idx_images_parse(in, n, files[k], &b, &e), 0, "%s", e.msg);
            cr_assert(a.n == b.n && a.rows == b.rows && a.cols == b.cols);
            cr_assert(!memcmp(a.pixels, b.pixels, (size_t)(a.n * a.rows * a.cols)));
            tg_images_free(&a), tg_images_free(&b);
        } else {
            tg_labels a, b;
            cr_assert_eq(tg_idx_labels_load(fix(files[k]), 10, &a, &e), 0, "%s", e.msg);
            cr_assert_eq(tg_idx_labels_parse(in, n, files[k], 10, &b, &e), 0, "%s", e.msg);
            cr_assert(a.n == b.n && a.classes == b.classes && !memcmp(a.labels, b.labels, (size_t)a.n));
            tg_labels_free(&a), tg_labels_free(&b);
        }
        cr_assert(!memcmp(in, copy, n), "%s: input changed", files[k]);
        free(in), free(copy);
    }
    /* Errors name what the caller called the bytes, gzip errors included. */
    size_t gn;
    uint8_t *gz = tg_slurp(fix("mini/t10k-labels-idx1-ubyte.gz"), &gn);
    tg_labels y = {.n = 5};
    assert_err(tg_idx_labels_parse(gz, gn, "mem", 3, &y, &e), e, "mem: label 4 at index 1 is out of range [0, 3)");
    cr_assert(y.n == 0 && !y.labels);
    gz[gn - 5] ^= 0x10;
    assert_err(tg_idx_labels_parse(gz, gn, "mem", 10, &y, &e), e, "mem: gzip CRC-32 mismatch");
    tg_images x = {.n = 5};
    assert_err(tg_idx_images_parse(gz, 3, "mem", &x, &e), e, "mem: truncated gzip header");
    cr_assert(x.n == 0 && !x.pixels);
    assert_err(tg_idx_images_parse(NULL, 0, "mem", &x, &e), e, "mem: truncated: 0 bytes, too short");
    free(gz);
}

/* ================================================================ datasets */

Test(data_dataset, mini_fixture_mixed_raw_and_gz) {
    tg_dataset ds;
    tg_err e;
    cr_assert(tg_dataset_exists(fix("mini")));
    cr_assert_eq(tg_dataset_load(fix("mini"), &ds, &e), 0, "%s", e.msg);
    cr_assert(ds.train_x.n == 37 && ds.test_x.n == 11 && ds.train_x.rows == 5 && ds.test_x.cols == 4);
    cr_assert(ds.train_y.n == 37 && ds.test_y.n == 11);
    for (int64_t i = 0; i < 11; i++) {
        cr_assert_eq(ds.test_y.labels[i], (3 * i + 1) % 10);
        cr_assert_eq(ds.test_x.pixels[i * 20 + 19], pix(i, 4, 3));
    }
    for (int64_t i = 0; i < 37; i++) {
        cr_assert_eq(ds.train_y.labels[i], (7 * i + 3) % 10);
        for (int k = 0; k < 20; k++) cr_assert_eq(ds.train_x.pixels[i * 20 + k], pix(i, k / 4, k % 4));
    }
    cr_assert_str_eq(ds.dir, fix("mini"));
    tg_dataset_free(&ds);
    tg_dataset_free(&ds);
}

/* Writes a consistent 4-file dataset into the temp dir. */
static void write_dataset(uint32_t ntrain, uint32_t ntrain_labels, uint32_t test_rows) {
    write_images(tg_tmp("train-images-idx3-ubyte"), ntrain, 5, 4);
    write_labels(tg_tmp("train-labels-idx1-ubyte"), ntrain_labels, 7, 3);
    write_images(tg_tmp("t10k-images-idx3-ubyte"), 11, test_rows, 4);
    write_labels(tg_tmp("t10k-labels-idx1-ubyte"), 11, 3, 1);
}

Test(data_dataset, consistency_errors, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_dataset ds;
    tg_err e;
    write_dataset(37, 36, 5);
    assert_err(tg_dataset_load(tg_tmpdir(), &ds, &e), e,
               "train-images-idx3-ubyte has 37 images but train-labels-idx1-ubyte has 36 labels");
    cr_assert_null(ds.train_x.pixels);
    write_dataset(37, 37, 6);
    assert_err(tg_dataset_load(tg_tmpdir(), &ds, &e), e, "train images are 5x4 but test images are 6x4");
    write_dataset(37, 37, 5);
    cr_assert_eq(tg_dataset_load(tg_tmpdir(), &ds, &e), 0, "%s", e.msg);
    tg_dataset_free(&ds);
    unlink(tg_tmp("t10k-labels-idx1-ubyte"));
    assert_err(tg_dataset_load(tg_tmpdir(), &ds, &e), e,
               "t10k-labels-idx1-ubyte: not found (nor t10k-labels-idx1-ubyte.gz)");
    cr_assert(!tg_dataset_exists(tg_tmpdir()));
}

Test(data_dataset, raw_preferred_over_gz_and_errors_free_everything, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    tg_dataset ds;
    tg_err e;
    write_dataset(37, 37, 5);
    tg_spit(tg_tmp("train-images-idx3-ubyte.gz"), "\x1f\x8b garbage", 10);
    cr_assert_eq(tg_dataset_load(tg_tmpdir(), &ds, &e), 0, "%s", e.msg);  /* raw one used */
    tg_dataset_free(&ds);
    unlink(tg_tmp("train-images-idx3-ubyte"));
    assert_err(tg_dataset_load(tg_tmpdir(), &ds, &e), e, "train-images-idx3-ubyte.gz: ");
    /* A failure in the last file after three loads: nothing may leak (ASan's
     * leak checker watches this), and ds comes back zeroed. */
    write_dataset(37, 37, 5);
    write_idx(tg_tmp("t10k-labels-idx1-ubyte"), 0x801, 1, (uint32_t[]){11}, (const uint8_t *)"\x01\x02\x63", 3);
    assert_err(tg_dataset_load(tg_tmpdir(), &ds, &e), e, "truncated");
    cr_assert(!ds.train_x.pixels && !ds.train_y.labels && !ds.test_x.pixels && !ds.test_y.labels);
}

Test(data_dataset, default_dir_and_help, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    const char *d = tg_dataset_default_dir();
    if (d) cr_assert(tg_dataset_exists(d), "%s", d);
    char cwd[1024];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(tg_tmpdir()), 0);
    mkdir("data", 0777), mkdir("data/mnist", 0777);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    tg_dataset_print_help(f);
    fclose(f);
    cr_assert(strstr(text, "data/mnist (under ") && strstr(text, "missing train-images-idx3-ubyte[.gz]"), "%s",
              text);
    cr_assert(strstr(text, "make data") && strstr(text, "apt-get install dataset-fashion-mnist") &&
                  strstr(text, "--data DIR"),
              "%s", text);
    free(text);
    write_images("data/mnist/train-images-idx3-ubyte", 3, 2, 2);
    write_labels("data/mnist/train-labels-idx1-ubyte", 3, 1, 0);
    write_images("data/mnist/t10k-images-idx3-ubyte", 3, 2, 2);
    write_labels("data/mnist/t10k-labels-idx1-ubyte", 3, 1, 0);
    cr_assert_str_eq(tg_dataset_default_dir(), "data/mnist");
    cr_assert_eq(chdir(cwd), 0);
}

/* ================================================================ batcher */

/* n images of 2x2 whose first two pixels spell the row index, labels i % 10. */
static void make_indexed(int64_t n, tg_images *x, tg_labels *y) {
    x->n = n, x->rows = 2, x->cols = 2;
    x->pixels = malloc((size_t)n * 4);
    y->n = n, y->classes = 10;
    y->labels = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) {
        uint8_t *p = x->pixels + i * 4;
        p[0] = (uint8_t)(i & 255), p[1] = (uint8_t)(i >> 8), p[2] = 0, p[3] = 255;
        y->labels[i] = (uint8_t)(i % 10);
    }
}

/* Row index encoded in row r of a batch tensor (F32 or F64). */
static int64_t row_index(const tg_tensor *t, int64_t r) {
    double p0 = tg_tensor_get(t, r * 4), p1 = tg_tensor_get(t, r * 4 + 1);
    return (int64_t)(p0 * 255.0 + 0.5) + 256 * (int64_t)(p1 * 255.0 + 0.5);
}

/* Runs one epoch of b, a batcher of `batch` rows over x, and checks it
 * against x itself (not the batcher's own count): every one of x's rows
 * exactly once, in batches of `batch` but the last, with its label. Writes
 * the visited row order into seen[0..x->n). */
static void run_epoch(tg_batcher *b, const tg_images *x, int64_t batch, tg_tensor *t, int64_t *seen) {
    int64_t ybuf[64];
    tg_tensor yt = tg_tensor_wrap(TG_I64, TG_SHAPE(64), ybuf), *y = &yt;
    int64_t n = x->n, got = 0, batches = 0, rows;
    char *hit = calloc((size_t)n, 1);
    while ((rows = tg_batcher_next(b, t, y)) > 0) {
        batches++;
        cr_assert_eq(rows, got + batch <= n ? batch : n - got, "batch %lld has %lld rows (%lld rows before it, "
                     "dataset of %lld)", (long long)batches, (long long)rows, (long long)got, (long long)n);
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = row_index(t, r);
            cr_assert(i >= 0 && i < n && !hit[i], "row %lld repeated or out of range", (long long)i);
            cr_assert_eq(ybuf[r], i % 10, "label does not match its row");
            cr_assert_eq(b->order[b->pos - rows + r], i);
            hit[i] = 1;
            seen[got + r] = i;
        }
        got += rows;
    }
    for (int64_t i = 0; i < n; i++) cr_assert(hit[i], "row %lld of the dataset's %lld never seen", (long long)i, (long long)n);
    cr_assert_eq(got, n);
    cr_assert_eq(batches, (n + batch - 1) / batch);
    cr_assert_eq(tg_batcher_count(b), batches);
    cr_assert_eq(tg_batcher_next(b, t, y), 0, "still 0 after the end");
    free(hit);
}

Test(data_batch, epochs_cover_every_row_once_and_reshuffle) {
    tg_images x;
    tg_labels y;
    make_indexed(1000, &x, &y);
    tg_rng rng = tg_rng_seed(7);
    tg_batcher *b = tg_batcher_new(&x, &y, 64, true, &rng);
    cr_assert_not_null(b);
    float buf[64 * 4];
    tg_tensor t = tg_tensor_wrap(TG_F32, TG_SHAPE(64, 4), buf);
    int64_t *e1 = malloc(1000 * sizeof *e1), *e2 = malloc(1000 * sizeof *e2);
    run_epoch(b, &x, 64, &t, e1);
    tg_batcher_start_epoch(b);
    run_epoch(b, &x, 64, &t, e2);
    cr_assert_eq(b->epoch, 2);
    cr_assert(memcmp(e1, e2, 1000 * sizeof *e1), "two epochs in the same order");
    for (int k = 0; k < 2; k++) {
        const int64_t *o = k ? e2 : e1;
        int64_t in_place = 0;
        for (int64_t i = 0; i < 1000; i++) in_place += o[i] == i;
        cr_assert_lt(in_place, 20, "epoch %d barely shuffled (%lld rows in place)", k + 1, (long long)in_place);
    }
    tg_batcher_free(b);
    free(e1), free(e2);
    tg_images_free(&x);
    tg_labels_free(&y);
}

Test(data_batch, same_seed_same_order_other_seed_other_order) {
    tg_images x;
    tg_labels y;
    make_indexed(300, &x, &y);
    int64_t *o[3];
    uint64_t seeds[3] = {42, 42, 43};
    double buf[32 * 4];
    tg_tensor t = tg_tensor_wrap(TG_F64, TG_SHAPE(32, 4), buf);
    for (int k = 0; k < 3; k++) {
        tg_rng rng = tg_rng_seed(seeds[k]);
        tg_batcher *b = tg_batcher_new(&x, &y, 32, true, &rng);
        o[k] = malloc(2 * 300 * sizeof(int64_t));
        run_epoch(b, &x, 32, &t, o[k]);
        tg_batcher_start_epoch(b);
        run_epoch(b, &x, 32, &t, o[k] + 300);
        tg_batcher_free(b);
    }
    cr_assert(!memcmp(o[0], o[1], 600 * sizeof(int64_t)), "same seed, different order");
    cr_assert(memcmp(o[0], o[2], 300 * sizeof(int64_t)), "different seeds, same order");
    for (int k = 0; k < 3; k++) free(o[k]);
    tg_images_free(&x);
    tg_labels_free(&y);
}

Test(data_batch, partial_last_batch_values_and_no_allocation) {
    tg_images x;
    tg_labels y;
    make_indexed(37, &x, &y);
    tg_batcher *b = tg_batcher_new(&x, &y, 8, false, NULL);
    cr_assert_eq(tg_batcher_count(b), 5);
    float buf[10 * 4];
    tg_tensor t = tg_tensor_wrap(TG_F32, TG_SHAPE(10, 4), buf);  /* B' = 10 >= B = 8 */
    int64_t labbuf[10];
    tg_tensor labt = tg_tensor_wrap(TG_I64, TG_SHAPE(10), labbuf), *lab = &labt;
    int64_t sizes[8], nb = 0, r;
    uint64_t before = tg_test_alloc_count();
    for (int epoch = 0; epoch < 3; epoch++) {
        tg_batcher_start_epoch(b);
        for (int i = 0; i < 40; i++) buf[i] = -1.0f;
        while ((r = tg_batcher_next(b, &t, lab)) > 0)
            if (epoch == 2) sizes[nb++] = r;
    }
    uint64_t allocs = tg_test_alloc_count() - before;
    cr_assert_eq(allocs, 0, "%llu allocations while batching", (unsigned long long)allocs);
    cr_assert_eq(nb, 5);
    for (int i = 0; i < 4; i++) cr_assert_eq(sizes[i], 8);
    cr_assert_eq(sizes[4], 5);
    /* Last batch: rows 32..36 in order (no shuffle) in rows 0..4; rows 5.. untouched. */
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(row_index(&t, i), 32 + i);
        cr_assert_eq(labbuf[i], (32 + i) % 10);
        cr_assert_eq(buf[i * 4 + 2], 0.0f);
        cr_assert_eq(buf[i * 4 + 3], 1.0f);
        cr_assert_eq(buf[i * 4], (float)(32 + i) / 255.0f);
    }
    for (int i = 5; i < 8; i++) cr_assert_eq(row_index(&t, i), 24 + i, "row %d overwritten", i);
    for (int i = 32; i < 40; i++) cr_assert_eq(buf[i], -1.0f, "row %d beyond the batch was written", i / 4);
    tg_batcher_free(b);
    tg_images_free(&x);
    tg_labels_free(&y);
}

Test(data_batch, pixel_scaling_exact_in_both_dtypes_and_no_labels) {
    tg_images x = {.n = 1, .rows = 16, .cols = 16, .pixels = malloc(256)};
    for (int p = 0; p < 256; p++) x.pixels[p] = (uint8_t)p;
    tg_batcher *b = tg_batcher_new(&x, NULL, 4, false, NULL);
    float f[4 * 256];
    double d[4 * 256];
    tg_tensor tf = tg_tensor_wrap(TG_F32, TG_SHAPE(4, 256), f), td = tg_tensor_wrap(TG_F64, TG_SHAPE(4, 256), d);
    cr_assert_eq(tg_batcher_next(b, &tf, NULL), 1);
    tg_batcher_start_epoch(b);
    cr_assert_eq(tg_batcher_next(b, &td, NULL), 1);
    for (int p = 0; p < 256; p++) {
        cr_assert_eq(f[p], (float)p / 255.0f);
        cr_assert_eq(d[p], p / 255.0);
    }
    cr_assert_eq(f[255], 1.0f);
    tg_batcher_free(b);
    tg_images_free(&x);
}

static void wrong_tensor_shape(void) {
    tg_images x;
    tg_labels y;
    make_indexed(10, &x, &y);
    tg_batcher *b = tg_batcher_new(&x, &y, 8, false, NULL);
    float buf[7 * 4];
    tg_tensor t = tg_tensor_wrap(TG_F32, TG_SHAPE(7, 4), buf);  /* fewer rows than B */
    tg_batcher_next(b, &t, NULL);
}

Test(data_batch, wrong_tensor_shape_aborts) {
    tg_expect_abort(wrong_tensor_shape, "tapegrad: tg_batcher_next: x_out is (7, 4), expected (B, 4) with B >= 8");
}

/* ================================================================ the real Fashion-MNIST */

#define FASHION "/usr/share/datasets/fashion-mnist"

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Test(data_real, fashion_mnist_loads, .timeout = 120) {
    if (!tg_dataset_exists(FASHION))
        cr_skip_test("%s not installed (apt-get install dataset-fashion-mnist)", FASHION);
    tg_dataset ds;
    tg_err e;
    double t0 = seconds();
    cr_assert_eq(tg_dataset_load(FASHION, &ds, &e), 0, "%s", e.msg);
    cr_log_info("loaded %s in %.3f s", FASHION, seconds() - t0);
    cr_assert_eq(ds.train_x.n, 60000);
    cr_assert_eq(ds.test_x.n, 10000);
    cr_assert(ds.train_x.rows == 28 && ds.train_x.cols == 28 && ds.test_x.rows == 28);
    int64_t count[2][10] = {{0}};
    for (int64_t i = 0; i < 60000; i++) count[0][ds.train_y.labels[i]]++;
    for (int64_t i = 0; i < 10000; i++) count[1][ds.test_y.labels[i]]++;
    for (int c = 0; c < 10; c++) cr_assert(count[0][c] == 6000 && count[1][c] == 1000, "class %d", c);
    cr_assert_eq(ds.train_y.labels[0], 9);  /* an ankle boot, in both splits */
    cr_assert_eq(ds.test_y.labels[0], 9);
    tg_dataset_free(&ds);
}

Test(data_real, fashion_mnist_matches_system_gzip, .timeout = 120) {
    const char *path = FASHION "/train-images-idx3-ubyte.gz";
    if (access(path, R_OK) != 0) cr_skip_test("%s not installed (apt-get install dataset-fashion-mnist)", path);
    FILE *p = popen("gzip -dc " FASHION "/train-images-idx3-ubyte.gz 2>/dev/null", "r");
    cr_assert_not_null(p);
    size_t cap = 48u << 20, n_ref = 0, got;
    uint8_t *ref = malloc(cap);
    while ((got = fread(ref + n_ref, 1, cap - n_ref, p)) > 0) n_ref += got;
    if (pclose(p) != 0 || n_ref == 0) {
        free(ref);
        cr_skip_test("system gzip unavailable");
    }
    uint8_t *buf;
    size_t n;
    tg_err e;
    double t0 = seconds();
    cr_assert_eq(tg_file_read(path, &buf, &n, &e), 0, "%s", e.msg);
    cr_log_info("decompressed %zu bytes in %.3f s", n, seconds() - t0);
    cr_assert_eq(n, n_ref);
    cr_assert(!memcmp(buf, ref, n), "differs from gzip -dc");
    free(buf);
    free(ref);
}

static void labels_as_uint8(void) {
    tg_images x;
    tg_labels y;
    make_indexed(10, &x, &y);
    tg_batcher *b = tg_batcher_new(&x, &y, 8, false, NULL);
    float buf[8 * 4];
    uint8_t lab[8];
    tg_tensor t = tg_tensor_wrap(TG_F32, TG_SHAPE(8, 4), buf);
    tg_tensor l = tg_tensor_wrap(TG_F32, TG_SHAPE(8), lab);   /* float labels: not indices */
    tg_batcher_next(b, &t, &l);
}

Test(data_batch, labels_must_be_an_int64_tensor) {
    tg_expect_abort(labels_as_uint8, "tapegrad: tg_batcher_next: y_out is (8,) float32, expected int64 (B) with B >= 8");
}
