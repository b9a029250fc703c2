/*
 * inflate.c — CRC-32, Adler-32 and a deflate decoder (RFC 1951) inside gzip
 * (RFC 1952) and zlib (RFC 1950) wrappers, from scratch (gzip.h).
 *
 * Decoding reads bits least-significant first from a 64-bit bit buffer.
 * Past the end of the input the buffer is padded with zero bytes, so the hot
 * loop never has to ask "is there another byte?"; instead it checks after
 * every symbol whether it has consumed any padding, and stops with
 * "truncated" if so. Huffman codes are decoded with a 2^10-entry table for
 * codes of up to 10 bits and a canonical-code walk (as in zlib's puff.c) for
 * the rare longer ones. The output buffer grows by doubling up to a hard
 * limit, and every back-reference is checked against what has been written.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "io/gzip.h"

/* ------------------------------------------------------------------------ */
/* Checksums */

/* crc_table[k][b]: CRC of byte b followed by k zero bytes (slicing-by-8). */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* Fills crc_table for the reflected polynomial 0xedb88320. */
static void crc_table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* Little-endian 32-bit load. */
static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t tg_crc32(uint32_t crc, const void *buf, size_t n) {
    pthread_once(&crc_once, crc_table_init);
    const uint32_t(*T)[256] = (const uint32_t(*)[256])crc_table;
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = c ^ le32(p), hi = le32(p + 4);
        c = T[7][lo & 0xff] ^ T[6][(lo >> 8) & 0xff] ^ T[5][(lo >> 16) & 0xff] ^ T[4][lo >> 24] ^
            T[3][hi & 0xff] ^ T[2][(hi >> 8) & 0xff] ^ T[1][(hi >> 16) & 0xff] ^ T[0][hi >> 24];
    }
    for (; n > 0; p++, n--) c = T[0][(c ^ *p) & 0xff] ^ (c >> 8);
    return ~c;
}

uint32_t tg_adler32(uint32_t adler, const void *buf, size_t n) {
    const uint32_t MOD = 65521;  /* largest prime below 2^16 */
    const size_t NMAX = 5552;    /* most bytes before b can overflow 32 bits */
    const uint8_t *p = buf;
    uint32_t a = adler & 0xffff, b = adler >> 16;
    while (n > 0) {
        size_t k = n < NMAX ? n : NMAX;
        n -= k;
        for (; k > 0; k--) {
            a += *p++;
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    return b << 16 | a;
}

bool tg_is_gzip(const uint8_t *buf, size_t n) {
    return n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

/* ------------------------------------------------------------------------ */
/* Deflate decoder state */

#define FAST_BITS 10
#define FAST_SIZE (1 << FAST_BITS)
#define MAX_LIT 288   /* literal/length alphabet incl. the two unused codes */
#define MAX_DIST 32   /* distance alphabet incl. the two unused codes */

/* A canonical Huffman code. */
typedef struct {
    uint16_t fast[FAST_SIZE];  /* next FAST_BITS input bits -> (length << 9) | symbol, 0 = slow path */
    uint16_t count[16];        /* number of codes of each length 1..15 */
    uint16_t symbol[MAX_LIT];  /* symbols ordered by (code length, value) */
} huffman;

typedef struct {
    const uint8_t *in;  /* (n) whole input */
    size_t n;
    size_t pos;         /* bytes loaded into bitbuf so far; beyond n they are zero padding */
    uint64_t bitbuf;    /* next bits, least-significant first; bits above nbits are 0 or true input */
    int nbits;          /* valid bits in bitbuf */
    uint8_t *out;       /* (out_cap) output, out_n bytes written */
    size_t out_n, out_cap, max_out;
    size_t start;       /* out offset where the current stream began: matches may not reach before it */
    tg_err *e;
    bool have_fixed;    /* fixed_lit/fixed_dist built */
    huffman lit, dist, fixed_lit, fixed_dist;
} inflater;

/* Tops bitbuf up to at least 56 valid bits, padding with zeros past the end. */
static inline void refill(inflater *s) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (s->n >= 8 && s->pos <= s->n - 8) {
        /* Branch-free refill (F. Giesen): load 8 bytes, keep the whole ones. */
        uint64_t v;
        memcpy(&v, s->in + s->pos, 8);
        s->bitbuf |= v << s->nbits;
        s->pos += (size_t)(63 - s->nbits) >> 3;
        s->nbits |= 56;
        return;
    }
#endif
    while (s->nbits <= 56) {
        uint64_t byte = s->pos < s->n ? s->in[s->pos] : 0;
        s->bitbuf |= byte << s->nbits;
        s->pos++;
        s->nbits += 8;
    }
}

/* True if decoding has consumed any of the zero padding past the input. */
static inline bool overrun(const inflater *s) {
    return s->pos > s->n && (s->pos - s->n) * 8 > (size_t)s->nbits;
}

/* Consumes and returns the next k <= 32 bits. */
static inline uint32_t getbits(inflater *s, int k) {
    if (s->nbits < k) refill(s);
    uint32_t v = (uint32_t)(s->bitbuf & ((1ull << k) - 1));
    s->bitbuf >>= k;
    s->nbits -= k;
    return v;
}

/* Reports msg, or "truncated" if the real cause is running out of input. */
static int fail(inflater *s, const char *msg) {
    if (overrun(s)) tg_err_set(s->e, "truncated deflate data (input ends inside a block)");
    else tg_err_set(s->e, "invalid deflate data: %s", msg);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Huffman codes */

/* Builds h from code lengths len[0..n) (each 0..15, 0 = unused). Returns NULL
 * or what is wrong. Over-subscribed codes are always rejected; incomplete
 * ones only when allow_incomplete and the code is a single 1-bit code (as
 * zlib does); an empty code is accepted, and any symbol read with it fails. */
static const char *huffman_build(huffman *h, const uint8_t *len, int n, bool allow_incomplete) {
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++) h->count[len[i]]++;
    h->count[0] = 0;
    int left = 1, max = 0;
    for (int l = 1; l <= 15; l++) {
        left = (left << 1) - h->count[l];
        if (left < 0) return "over-subscribed code lengths";
        if (h->count[l]) max = l;
    }
    if (left > 0 && max > 0 && !(allow_incomplete && max == 1)) return "incomplete code lengths";

    int offs[16];
    offs[1] = 0;
    for (int l = 1; l < 15; l++) offs[l + 1] = offs[l] + h->count[l];
    for (int i = 0; i < n; i++)
        if (len[i]) h->symbol[offs[len[i]]++] = (uint16_t)i;

    /* Codes of length l start at (first code of length l-1 + count) << 1;
     * the stream holds them most-significant bit first, so index the table by
     * the bit-reversed code, repeated for every value of the bits after it. */
    memset(h->fast, 0, sizeof h->fast);
    int code = 0, k = 0;
    for (int l = 1; l <= FAST_BITS; l++, code <<= 1) {
        for (int c = 0; c < h->count[l]; c++, code++, k++) {
            int rev = 0;
            for (int b = 0; b < l; b++) rev |= ((code >> b) & 1) << (l - 1 - b);
            uint16_t entry = (uint16_t)(l << 9 | h->symbol[k]);
            for (int j = rev; j < FAST_SIZE; j += 1 << l) h->fast[j] = entry;
        }
    }
    return NULL;
}

/* Decodes a code longer than FAST_BITS (or an invalid one) bit by bit.
 * Needs >= 15 valid bits. Returns the symbol or -1. */
static int huffman_decode_slow(inflater *s, const huffman *h) {
    int code = 0, first = 0, index = 0;
    uint64_t bits = s->bitbuf;
    for (int l = 1; l <= 15; l++) {
        code |= (int)(bits & 1);
        bits >>= 1;
        int count = h->count[l];
        if (code - first < count) {
            s->bitbuf >>= l;
            s->nbits -= l;
            return h->symbol[index + code - first];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

/* Decodes one symbol with h. Returns the symbol or -1 for an invalid code. */
static inline int huffman_decode(inflater *s, const huffman *h) {
    if (s->nbits < 15) refill(s);
    uint16_t entry = h->fast[s->bitbuf & (FAST_SIZE - 1)];
    if (entry) {
        int l = entry >> 9;
        s->bitbuf >>= l;
        s->nbits -= l;
        return entry & 511;
    }
    return huffman_decode_slow(s, h);
}

/* ------------------------------------------------------------------------ */
/* Blocks */

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                       33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Makes room for `need` more output bytes, within max_out. */
static int out_grow(inflater *s, size_t need) {
    if (need > s->max_out - s->out_n) {
        tg_err_set(s->e, "decompressed data exceeds the limit of %zu bytes", s->max_out);
        return -1;
    }
    size_t cap = s->out_cap < 65536 ? 65536 : s->out_cap;
    while (cap - s->out_n < need && cap <= SIZE_MAX / 2) cap *= 2;
    if (cap > s->max_out) cap = s->max_out;
    uint8_t *p = realloc(s->out, cap ? cap : 1);
    if (!p) {
        tg_err_set(s->e, "out of memory growing the output to %zu bytes", cap);
        return -1;
    }
    s->out = p;
    s->out_cap = cap;
    return 0;
}

/* Copies a stored (uncompressed) block; the 3 header bits are consumed. */
static int inflate_stored(inflater *s) {
    int drop = s->nbits & 7;  /* skip to a byte boundary */
    s->bitbuf >>= drop;
    s->nbits -= drop;
    if (overrun(s)) return fail(s, "");
    size_t p = s->pos - (size_t)s->nbits / 8;  /* next unread input byte */
    s->pos = p;
    s->bitbuf = 0;
    s->nbits = 0;
    if (s->n - p < 4) {
        tg_err_set(s->e, "truncated deflate data (stored block header)");
        return -1;
    }
    unsigned len = s->in[p] | s->in[p + 1] << 8, nlen = s->in[p + 2] | s->in[p + 3] << 8;
    if (len != (~nlen & 0xffff)) return fail(s, "stored block length does not match its complement");
    p += 4;
    if (s->n - p < len) {
        tg_err_set(s->e, "truncated deflate data (stored block of %u bytes has %zu)", len, s->n - p);
        return -1;
    }
    if (s->out_cap - s->out_n < len && out_grow(s, len)) return -1;
    memcpy(s->out + s->out_n, s->in + p, len);
    s->out_n += len;
    s->pos = p + len;
    return 0;
}

/* Decodes the symbols of one Huffman block up to end-of-block. */
static int inflate_codes(inflater *s, const huffman *lit, const huffman *dist) {
    for (;;) {
        int sym = huffman_decode(s, lit);
        if (sym < 256) {
            if (sym < 0) return fail(s, "invalid literal/length code");
            if (s->out_n == s->out_cap && out_grow(s, 1)) return -1;
            s->out[s->out_n++] = (uint8_t)sym;
        } else if (sym == 256) {
            return overrun(s) ? fail(s, "") : 0;
        } else {
            sym -= 257;
            if (sym >= 29) return fail(s, "invalid length symbol");
            size_t len = len_base[sym] + getbits(s, len_extra[sym]);
            int dsym = huffman_decode(s, dist);
            if (dsym < 0 || dsym >= 30) return fail(s, "invalid distance code");
            size_t d = dist_base[dsym] + getbits(s, dist_extra[dsym]);
            if (overrun(s)) return fail(s, "");
            if (d > s->out_n - s->start) return fail(s, "distance too far back");
            if (s->out_cap - s->out_n < len && out_grow(s, len)) return -1;
            uint8_t *to = s->out + s->out_n;
            const uint8_t *from = to - d;
            if (d >= len) memcpy(to, from, len);
            else if (d == 1) memset(to, *from, len);
            else for (size_t i = 0; i < len; i++) to[i] = from[i];  /* overlapping: repeats */
            s->out_n += len;
        }
        if (overrun(s)) return fail(s, "");
    }
}

/* Builds the fixed codes of RFC 1951 section 3.2.6. */
static void fixed_build(inflater *s) {
    uint8_t len[MAX_LIT];
    int i = 0;
    for (; i < 144; i++) len[i] = 8;
    for (; i < 256; i++) len[i] = 9;
    for (; i < 280; i++) len[i] = 7;
    for (; i < 288; i++) len[i] = 8;
    huffman_build(&s->fixed_lit, len, MAX_LIT, false);
    for (i = 0; i < MAX_DIST; i++) len[i] = 5;
    huffman_build(&s->fixed_dist, len, MAX_DIST, false);
    s->have_fixed = true;
}

/* Reads a dynamic block's code-length header into s->lit and s->dist. */
static int dynamic_build(inflater *s) {
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int nlit = (int)getbits(s, 5) + 257, ndist = (int)getbits(s, 5) + 1, ncode = (int)getbits(s, 4) + 4;
    if (nlit > 286 || ndist > 30) return fail(s, "too many length or distance codes");
    uint8_t len[MAX_LIT + MAX_DIST] = {0};
    for (int i = 0; i < ncode; i++) len[order[i]] = (uint8_t)getbits(s, 3);
    const char *bad = huffman_build(&s->lit, len, 19, false);
    if (bad) return fail(s, bad);  /* "code lengths code" errors */

    for (int i = 0; i < nlit + ndist;) {  /* overwrites every entry */
        int sym = huffman_decode(s, &s->lit);
        if (sym < 0) return fail(s, "invalid code-length code");
        if (sym < 16) {
            len[i++] = (uint8_t)sym;
        } else {
            uint8_t rep_len = 0;
            int rep;
            if (sym == 16) {
                if (i == 0) return fail(s, "repeat with no previous code length");
                rep_len = len[i - 1];
                rep = 3 + (int)getbits(s, 2);
            } else if (sym == 17) {
                rep = 3 + (int)getbits(s, 3);
            } else {
                rep = 11 + (int)getbits(s, 7);
            }
            if (rep > nlit + ndist - i) return fail(s, "code-length repeat runs past the end");
            while (rep--) len[i++] = rep_len;
        }
        if (overrun(s)) return fail(s, "");
    }
    if (len[256] == 0) return fail(s, "no end-of-block code");
    if ((bad = huffman_build(&s->lit, len, nlit, true))) return fail(s, bad);
    if ((bad = huffman_build(&s->dist, len + nlit, ndist, true))) return fail(s, bad);
    return 0;
}

/* Decodes one raw deflate stream starting at input byte *pos, appending to
 * s->out. On success *pos is the first byte after the stream. */
static int inflate_stream(inflater *s, size_t *pos) {
    s->pos = *pos;
    s->bitbuf = 0;
    s->nbits = 0;
    s->start = s->out_n;
    int last;
    do {
        last = (int)getbits(s, 1);
        int type = (int)getbits(s, 2);
        if (overrun(s)) return fail(s, "");
        int rc;
        if (type == 0) {
            rc = inflate_stored(s);
        } else if (type == 1) {
            if (!s->have_fixed) fixed_build(s);
            rc = inflate_codes(s, &s->fixed_lit, &s->fixed_dist);
        } else if (type == 2) {
            rc = dynamic_build(s);
            if (rc == 0) rc = inflate_codes(s, &s->lit, &s->dist);
        } else {
            return fail(s, "block type 3 is reserved");
        }
        if (rc) return rc;
    } while (!last);
    int drop = s->nbits & 7;  /* the stream ends at a byte boundary */
    s->bitbuf >>= drop;
    s->nbits -= drop;
    if (overrun(s)) return fail(s, "");
    *pos = s->pos - (size_t)s->nbits / 8;
    return 0;
}

/* Sets up s to decode in[0..n) into a buffer of initially `hint` bytes. */
static int inflater_init(inflater *s, const uint8_t *in, size_t n, size_t max_out, size_t hint, tg_err *e) {
    memset(s, 0, offsetof(inflater, lit));
    s->in = in;
    s->n = n;
    s->max_out = max_out;
    s->e = e;
    /* The hint (gzip's ISIZE) is a claim from the input, checked only at the
     * end: trust it up to 16 times the input size (64 KiB at least), so a
     * trailer that lies reserves no more than that. Data that really expands
     * further (deflate allows ~1032:1) grows the buffer by doubling. */
    size_t bound = n > (SIZE_MAX - 65536) / 16 ? SIZE_MAX : n * 16 + 65536;
    if (hint > bound) hint = bound;
    if (hint > max_out) hint = max_out;
    s->out_cap = hint;
    s->out = malloc(hint ? hint : 1);
    if (!s->out) {
        tg_err_set(e, "out of memory allocating %zu bytes", hint);
        return -1;
    }
    return 0;
}

/* Hands s's output to the caller, trimmed to size. */
static void inflater_finish(inflater *s, uint8_t **out, size_t *out_n) {
    if (s->out_cap > s->out_n + s->out_n / 8 + 4096) {
        uint8_t *p = realloc(s->out, s->out_n ? s->out_n : 1);
        if (p) s->out = p;
    }
    *out = s->out;
    *out_n = s->out_n;
}

/* ------------------------------------------------------------------------ */
/* gzip and zlib wrappers */

/* Parses the gzip member header at in[*pos], leaving *pos at its deflate data. */
static int gzip_header(const uint8_t *in, size_t n, size_t *pos, tg_err *e) {
    size_t p = *pos, h = p + 10;
    if (n - p < 10) {
        tg_err_set(e, "truncated gzip header (%zu bytes)", n - p);
        return -1;
    }
    if (in[p] != 0x1f || in[p + 1] != 0x8b) {
        tg_err_set(e, "not gzip data (magic %02x %02x, expected 1f 8b)", in[p], in[p + 1]);
        return -1;
    }
    if (in[p + 2] != 8) {
        tg_err_set(e, "unsupported gzip compression method %u (only 8, deflate, exists)", in[p + 2]);
        return -1;
    }
    unsigned flg = in[p + 3];
    if (flg & 0xe0) {
        tg_err_set(e, "reserved gzip header flags set (flags %02x)", flg);
        return -1;
    }
    if (flg & 0x04) {  /* FEXTRA: 2-byte length, then that many bytes */
        if (n - h < 2 || n - h - 2 < (size_t)(in[h] | in[h + 1] << 8)) goto truncated;
        h += 2 + (size_t)(in[h] | in[h + 1] << 8);
    }
    for (unsigned f = 0x08; f <= 0x10; f <<= 1) {  /* FNAME, FCOMMENT: NUL-terminated */
        if (!(flg & f)) continue;
        const uint8_t *z = memchr(in + h, 0, n - h);
        if (!z) goto truncated;
        h = (size_t)(z - in) + 1;
    }
    if (flg & 0x02) {  /* FHCRC: low 16 bits of the CRC-32 of the header so far */
        if (n - h < 2) goto truncated;
        unsigned stored = in[h] | in[h + 1] << 8, computed = tg_crc32(0, in + p, h - p) & 0xffff;
        if (stored != computed) {
            tg_err_set(e, "gzip header CRC-16 mismatch (stored %04x, computed %04x)", stored, computed);
            return -1;
        }
        h += 2;
    }
    *pos = h;
    return 0;
truncated:
    tg_err_set(e, "truncated gzip header (flags %02x, %zu bytes)", flg, n - p);
    return -1;
}

int tg_gunzip_max(const uint8_t *in, size_t n, size_t max_out, uint8_t **out, size_t *out_n, tg_err *e) {
    *out = NULL;
    *out_n = 0;
    if (!tg_is_gzip(in, n)) {
        tg_err_set(e, "not gzip data (no 1f 8b magic)");
        return -1;
    }
    inflater *s = malloc(sizeof *s);
    if (!s) {
        tg_err_set(e, "out of memory");
        return -1;
    }
    /* The last member's ISIZE is the whole output's size mod 2^32 for a
     * single member: a good first guess, bounded in inflater_init. */
    size_t hint = n >= 18 ? le32(in + n - 4) : 0;
    if (inflater_init(s, in, n, max_out, hint, e)) {
        free(s);
        return -1;
    }
    size_t p = 0;
    for (int member = 1; p < n; member++) {
        char where[32] = "";
        if (member > 1) snprintf(where, sizeof where, " in member %d", member);
        if (gzip_header(in, n, &p, e) || inflate_stream(s, &p)) goto fail;
        if (n - p < 8) {
            tg_err_set(e, "truncated gzip data: %zu of the 8 trailer bytes (CRC-32, ISIZE)%s", n - p, where);
            goto fail;
        }
        size_t size = s->out_n - s->start;
        uint32_t crc = tg_crc32(0, s->out + s->start, size), stored_crc = le32(in + p);
        uint32_t isize = le32(in + p + 4);
        if (crc != stored_crc) {
            tg_err_set(e, "gzip CRC-32 mismatch (stored %08x, computed %08x)%s", stored_crc, crc, where);
            goto fail;
        }
        if (isize != (uint32_t)size) {
            tg_err_set(e, "gzip ISIZE mismatch (stored %u, decompressed %zu bytes)%s", isize, size, where);
            goto fail;
        }
        p += 8;
        if (p < n && !tg_is_gzip(in + p, n - p)) {
            tg_err_set(e, "%zu bytes of trailing garbage after gzip member %d", n - p, member);
            goto fail;
        }
    }
    inflater_finish(s, out, out_n);
    free(s);
    return 0;
fail:
    free(s->out);
    free(s);
    return -1;
}

int tg_gunzip(const uint8_t *in, size_t n, uint8_t **out, size_t *out_n, tg_err *e) {
    return tg_gunzip_max(in, n, TG_DATA_MAX_BYTES, out, out_n, e);
}

int tg_zlib_inflate(const uint8_t *in, size_t n, size_t max_out, uint8_t **out, size_t *out_n, tg_err *e) {
    *out = NULL;
    *out_n = 0;
    if (n < 2) {
        tg_err_set(e, "truncated zlib header (%zu bytes)", n);
        return -1;
    }
    unsigned cmf = in[0], flg = in[1];
    if ((cmf & 15) != 8 || (cmf >> 4) > 7) {
        tg_err_set(e, "unsupported zlib method/window (CMF %02x)", cmf);
        return -1;
    }
    if ((cmf << 8 | flg) % 31 != 0) {
        tg_err_set(e, "zlib header check failed (CMF %02x, FLG %02x)", cmf, flg);
        return -1;
    }
    if (flg & 0x20) {
        tg_err_set(e, "zlib preset dictionaries are not supported");
        return -1;
    }
    inflater *s = malloc(sizeof *s);
    if (!s) {
        tg_err_set(e, "out of memory");
        return -1;
    }
    if (inflater_init(s, in, n, max_out, n > SIZE_MAX / 4 ? SIZE_MAX : 4 * n, e)) {
        free(s);
        return -1;
    }
    size_t p = 2;
    if (inflate_stream(s, &p)) goto fail;
    if (n - p < 4) {
        tg_err_set(e, "truncated zlib data: %zu of the 4 Adler-32 bytes", n - p);
        goto fail;
    }
    uint32_t stored = (uint32_t)in[p] << 24 | (uint32_t)in[p + 1] << 16 | (uint32_t)in[p + 2] << 8 | in[p + 3];
    uint32_t computed = tg_adler32(1, s->out, s->out_n);
    if (stored != computed) {
        tg_err_set(e, "zlib Adler-32 mismatch (stored %08x, computed %08x)", stored, computed);
        goto fail;
    }
    if (p + 4 != n) {
        tg_err_set(e, "%zu bytes of trailing garbage after zlib stream", n - p - 4);
        goto fail;
    }
    inflater_finish(s, out, out_n);
    free(s);
    return 0;
fail:
    free(s->out);
    free(s);
    return -1;
}
