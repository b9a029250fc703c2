/*
 * conv.c — 2-D convolution and its transpose as packed GEMMs over im2col.
 *
 * Letters (conv2d's view; conv_transpose2d is the same geometry read
 * backwards, its input being conv2d's output):
 *   N, C, H, W      the conv input x (N, C, H, W)
 *   O, kh, kw       the weight w (O, C / G, kh, kw), G groups
 *   Ho, Wo          the conv output y (N, O, Ho, Wo)
 *   K = C/G kh kw   one group's rows of col; P = Ho Wo; L = N P
 *
 * Layout. col (C kh kw, L) holds in row (c, ki, kj) and column (n, oh, ow)
 * the input pixel that weight tap meets (0 in the padding); a group's rows
 * are consecutive. The products work on "channel-major" copies (C, L) of
 * the NCHW tensors (cm_from / cm_to move between them, the bias folded in):
 *
 *   forward           yt (O, L)  = W (O, K) @ col (K, L)         then y = yt in NCHW + b
 *   weight gradient   dW (O, K) += dyt (O, L) @ col^T (L, K)     the batch summed over L
 *   input gradient    dcol (K, L) = W^T (K, O) @ dyt (O, L)       then col2im adds it into dx
 *
 * conv_transpose2d's forward is the input-gradient path (its x as dyt) and
 * its backward is the forward path (dx) and the weight path (dW with x as
 * dyt and im2col of dy), so the two ops share every loop below.
 *
 * Batch chunks. The products run over chunks of about a MiB of col (a few
 * images), each chunk one task on the pool that builds its slice of col and
 * of the copies, multiplies it on its own thread and writes the result into
 * the NCHW output while all of it is in that core's L2 ("batch chunks"
 * below). Elsewhere the forward's col, which the tape keeps for dW, goes to
 * memory whole.
 *
 * Float32 fast paths (AVX-512), each chosen from the shapes alone, the
 * weight packed once per call (tensor/gemm.h's pre-packed products):
 *   rows7_path   output rows of 7, O a multiple of 64 (the VAE's 7 x 7
 *                maps): the forward product an output row at a time, a
 *                (7, 64) tile reading the taps from a zero-padded copy of
 *                the chunk's images, stored into NCHW through register
 *                transposes
 *   panel_path   other input rows of up to 32: im2col written straight into
 *                the GEMM's B panels
 *   wnr          dW from col^T written straight into B's panels (a 4 x 4
 *                kernel's 16 taps of a pixel cut from registers, patch16)
 *   inr          the input gradient's source copied straight into B's panels
 *   set_path     conv_transpose2d's col2im sets y from the bias, y not read
 * On these paths col never goes to memory whole: the backward rebuilds its
 * chunks.
 *
 * Threads and determinism. Chunks depend only on the shapes; each GEMM sums
 * in an order fixed by its shapes (tensor/gemm.h; a rows7 tile element sums
 * k = 0, 1, ... in one register lane), and dW adds the chunks' partial
 * products in chunk order. The layout loops write each output
 * element from one thread in a fixed order (a dx element gets its taps in
 * (ki, kj) order); bias sums run one channel per task, in double, in eight
 * lanes fixed by position. Results are bit-identical for any thread count.
 *
 * Speed. On AVX-512 the float32 layout loops at strides 1 and 2 walk rows
 * with masked loads and a permutation ("row walks"); other geometries use an
 * offset table (gathers) or plain row loops.
 *
 * Memory: col, the chunks' buffers, the GEMM pack buffers and the partial
 * dW come from the caller's scratch arena (the tape's arena in autograd), so
 * a steady-state step allocates nothing.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/pool.h"

#define GRAIN_ELEMS 16384   /* elements per parallel range, at least */

typedef struct {
    int64_t N, C, H, W;          /* conv input */
    int64_t O, kh, kw, G;        /* weight, groups */
    int64_t Ho, Wo;              /* conv output */
    int64_t sh, sw, ph, pw, dh, dw;
    bool relu;                   /* the forward's output through max(., 0) */
} geom;

static inline int64_t one_if_zero(int64_t v) { return v ? v : 1; }

int64_t tg_conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
    stride = one_if_zero(stride), dil = one_if_zero(dil);
    int64_t span = in + 2 * pad - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
}

int64_t tg_conv_transpose_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t out_pad) {
    stride = one_if_zero(stride), dil = one_if_zero(dil);
    return (in - 1) * stride - 2 * pad + dil * (k - 1) + out_pad + 1;
}

/* The geometry of the convolution in (N, C, H, W) -> out (N, O, Ho, Wo)
 * through w (O, C / G, kh, kw), checked (fn names the kernel). */
static geom geom_of(const char *fn, const tg_tensor *in, const tg_tensor *w, const tg_tensor *out, tg_conv_args a) {
    char b1[96], b2[96], b3[96];
    geom g = {0};
    bool ok = in->shape.ndim == 4 && w->shape.ndim == 4 && out->shape.ndim == 4 && in->dtype == w->dtype &&
              in->dtype == out->dtype;
    if (ok) {
        g = (geom){in->shape.d[0], in->shape.d[1], in->shape.d[2], in->shape.d[3],
                   w->shape.d[0], w->shape.d[2], w->shape.d[3], one_if_zero(a.groups),
                   out->shape.d[2], out->shape.d[3],
                   one_if_zero(a.stride[0]), one_if_zero(a.stride[1]), a.padding[0], a.padding[1],
                   one_if_zero(a.dilation[0]), one_if_zero(a.dilation[1]), a.relu};
        ok = g.G > 0 && g.C % g.G == 0 && g.O % g.G == 0 && w->shape.d[1] * g.G == g.C && out->shape.d[0] == g.N &&
             out->shape.d[1] == g.O && g.sh > 0 && g.sw > 0 && g.dh > 0 && g.dw > 0 && g.ph >= 0 && g.pw >= 0 &&
             g.kh > 0 && g.kw > 0;
    }
    TG_CHECK(ok, "%s: input %s, weight %s, output %s (groups %lld) do not fit in (N, C, H, W), w (O, C / groups, "
             "kh, kw), out (N, O, Ho, Wo)", fn, tg_shape_str(in->shape, b1), tg_shape_str(w->shape, b2),
             tg_shape_str(out->shape, b3), (long long)one_if_zero(a.groups));
    return g;
}

static void check_bias(const char *fn, const tg_tensor *b, int64_t channels, tg_dtype dt) {
    char b1[96];
    TG_CHECK(!b || (b->shape.ndim == 1 && b->shape.d[0] == channels && b->dtype == dt),
             "%s: bias %s does not fit (%lld)", fn, b ? tg_shape_str(b->shape, b1) : "", (long long)channels);
}

static inline void *at(const tg_tensor *t, int64_t off) {
    return (char *)t->data + off * (int64_t)tg_dtype_size(t->dtype);
}

/* ---------------------------------------------------------------- layouts */

/* The range [lo, hi) of output columns ow whose input column ow s + off lies in [0, W). */
static inline void valid_range(int64_t Wo, int64_t W, int64_t s, int64_t off, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
    if (h > Wo) h = Wo;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

typedef struct {
    const geom *g;
    const tg_tensor *x;    /* (N, C, H, W), or (N, C, S) / (C, N S) for the layout copies */
    tg_tensor *col;        /* (C kh kw, L), or the other layout */
    const tg_tensor *bias; /* cm_to: (C) or NULL */
    int64_t C, S;          /* layout copies: channels and pixels per image */
    bool acc;
    const int32_t *tab;    /* im2col / col2im: (kh kw, Ho Wo) offsets into a plane, -1 in the padding; or NULL */
    int64_t ld, n0;        /* a chunk's buffer: the row stride of col / of the (C, N S) side, its first image;
                              ld 0: the whole batch (row stride N S), n0 0 */
} conv_job;

/* Plane offsets are the same for every image and channel, so small
 * geometries look them up: tab (kh kw, Ho Wo) = ih W + iw, or -1 where the
 * tap falls in the padding. One flat loop of Ho Wo a tap then replaces Ho
 * short rows (7 wide on the VAE's 7x7 maps). Larger ones walk rows. */
#define TAB_MAX 32768

static bool build_table(const geom *g, int32_t *tab) {
    int64_t P = g->Ho * g->Wo;
    if (g->kh * g->kw * P > TAB_MAX || g->H * g->W > INT32_MAX) return false;
    for (int64_t ki = 0; ki < g->kh; ki++)
        for (int64_t kj = 0; kj < g->kw; kj++)
            for (int64_t oh = 0; oh < g->Ho; oh++)
                for (int64_t ow = 0; ow < g->Wo; ow++) {
                    int64_t ih = oh * g->sh - g->ph + ki * g->dh, iw = ow * g->sw - g->pw + kj * g->dw;
                    bool in = ih >= 0 && ih < g->H && iw >= 0 && iw < g->W;
                    *tab++ = in ? (int32_t)(ih * g->W + iw) : -1;
                }
    return true;
}

/* AVX-512 versions of the table loops. One tap never meets a pixel twice
 * (distinct outputs read distinct inputs), so sixteen table entries at a time
 * gather (im2col) or gather, add and scatter (col2im) with no conflicts, and
 * every dx element still sums its taps in (ki, kj) order: the same bits as
 * the scalar loops. Lanes where the table says -1 (padding) read nothing. */
#if defined(__x86_64__)
#include <immintrin.h>

static bool has_avx512(void) {
    static int known;   /* 0 unknown, 1 no, 2 yes; a benign race on the first calls */
    if (!known) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") ? 2 : 1;
    }
    return known == 2;
}

/* The first min(left, 16) lanes; none when left <= 0. */
static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

/* dst[p] = xp[tp[p]], 0 where tp[p] < 0, for p < P. */
__attribute__((target("avx512f")))
static void gather_f32(const float *xp, const int32_t *tp, float *dst, int64_t P) {
    for (int64_t p = 0; p < P; p += 16) {
        __mmask16 m = tail_mask(P - p);
        __m512i idx = _mm512_maskz_loadu_epi32(m, tp + p);
        __mmask16 in = _mm512_mask_cmpge_epi32_mask(m, idx, _mm512_setzero_si512());
        _mm512_mask_storeu_ps(dst + p, m, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), in, idx, xp, 4));
    }
}

/* xp[tp[p]] += src[p] where tp[p] >= 0, for p < P. */
__attribute__((target("avx512f")))
static void scatter_add_f32(float *xp, const int32_t *tp, const float *src, int64_t P) {
    for (int64_t p = 0; p < P; p += 16) {
        __mmask16 m = tail_mask(P - p);
        __m512i idx = _mm512_maskz_loadu_epi32(m, tp + p);
        __mmask16 in = _mm512_mask_cmpge_epi32_mask(m, idx, _mm512_setzero_si512());
        __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), in, idx, xp, 4);
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(in, src + p));
        _mm512_mask_i32scatter_ps(xp, in, idx, v, 4);
    }
}

/* Row walks for strides 1 and 2 (the VAE's). For each output row, the 32
 * input columns its next 16 outputs can touch are loaded at once (masked to
 * the ones inside the row, so the padding lanes are 0 and nothing outside x
 * is read), and a permutation picks every sw-th. The masks and permutations
 * of a tap depend on its columns only: they are set once (a *_tap) and the
 * row loop is two loads, a permute and a store. */
static bool rows_avx512(const geom *g) { return has_avx512() && g->sw <= 2; }

/* The lanes t < 32 with 0 <= base + t < W, as a mask. */
static inline uint32_t span_mask(int64_t W, int64_t base) {
    int64_t lo = base < 0 ? -base : 0, hi = W - base < 32 ? W - base : 32;
    return hi > lo ? (uint32_t)((((uint64_t)1 << hi) - 1) & ~(((uint64_t)1 << lo) - 1)) : 0;
}

/* Tap column kj, outputs [ow0, ow0 + 16): the span starts at input column
 * q = max(base, 0) (base: the column of output ow0), m its lanes inside the row. */
typedef struct {
    int64_t q;
    uint32_t m;
    __m512i idx;            /* im2col: output lane i reads span lane i sw + base - q ... */
    __mmask16 out, ok;      /* ... for the lanes out (< Wo) where that is >= 0 */
    __m512i lo, hi;         /* col2im: span lane t takes output lane (t + q - base) / sw ... */
    uint32_t add;           /* ... for the lanes t in add */
} row_tap;

__attribute__((target("avx512f")))
static row_tap tap_at(const geom *g, int64_t kj, int64_t ow0) {
    row_tap t;
    int64_t base = ow0 * g->sw + kj * g->dw - g->pw, outs = g->Wo - ow0 < 16 ? g->Wo - ow0 : 16;
    t.q = base > 0 ? base : 0;
    t.m = span_mask(g->W, t.q);
    int e = (int)(t.q - base);
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i stride = g->sw == 2 ? _mm512_add_epi32(iota, iota) : iota;
    t.idx = _mm512_sub_epi32(stride, _mm512_set1_epi32(e));
    t.out = tail_mask(outs);
    t.ok = _mm512_cmpge_epi32_mask(t.idx, _mm512_setzero_si512()) & t.out;
    t.lo = _mm512_add_epi32(iota, _mm512_set1_epi32(e));
    t.hi = _mm512_add_epi32(t.lo, _mm512_set1_epi32(16));
    if (g->sw == 2) t.lo = _mm512_srli_epi32(t.lo, 1), t.hi = _mm512_srli_epi32(t.hi, 1);
    int64_t lim = g->sw * outs - e;   /* t < lim: one of this block's outputs; sw divides t + e */
    uint32_t every = g->sw == 2 ? 0x55555555u << (e % 2) : 0xffffffffu;
    t.add = t.m & every & (lim >= 32 ? 0xffffffffu : lim <= 0 ? 0 : (((uint32_t)1 << lim) - 1));
    return t;
}

/* d (Ho rows of stride Wo, from output column ow0) = tap (ki, t) of the plane xp (H, W). */
__attribute__((target("avx512f")))
static inline void im2col_tap_rows(const geom *g, const row_tap *t, const float *xp, float *d, int64_t ki) {
    for (int64_t oh = 0; oh < g->Ho; oh++, d += g->Wo) {
        int64_t ih = oh * g->sh - g->ph + ki * g->dh;
        if (ih < 0 || ih >= g->H || !t->m) {
            _mm512_mask_storeu_ps(d, t->out, _mm512_setzero_ps());
            continue;
        }
        const float *row = xp + ih * g->W + t->q;
        __m512 v0 = _mm512_maskz_loadu_ps((__mmask16)t->m, row);
        __m512 v1 = _mm512_maskz_loadu_ps((__mmask16)(t->m >> 16), row + 16);
        _mm512_mask_storeu_ps(d, t->out, _mm512_maskz_permutex2var_ps(t->ok, v0, t->idx, v1));
    }
}

/* The plane xp (H, W) += tap (ki, t) of s (Ho rows of stride Wo, from output column ow0). */
__attribute__((target("avx512f")))
static inline void col2im_tap_rows(const geom *g, const row_tap *t, float *xp, const float *s, int64_t ki) {
    if (!t->add) return;
    for (int64_t oh = 0; oh < g->Ho; oh++, s += g->Wo) {
        int64_t ih = oh * g->sh - g->ph + ki * g->dh;
        if (ih < 0 || ih >= g->H) continue;
        float *row = xp + ih * g->W + t->q;
        __m512 sv = _mm512_maskz_loadu_ps(t->out, s);
        __m512 v0 = _mm512_maskz_loadu_ps((__mmask16)t->m, row);
        __m512 v1 = _mm512_maskz_loadu_ps((__mmask16)(t->m >> 16), row + 16);
        v0 = _mm512_mask_add_ps(v0, (__mmask16)t->add, v0, _mm512_permutexvar_ps(t->lo, sv));
        v1 = _mm512_mask_add_ps(v1, (__mmask16)(t->add >> 16), v1, _mm512_permutexvar_ps(t->hi, sv));
        _mm512_mask_storeu_ps(row, (__mmask16)t->m, v0);
        _mm512_mask_storeu_ps(row + 16, (__mmask16)(t->m >> 16), v1);
    }
}

/* im2col of one tap (ki, kj) of the plane xp (H, W) into dst (Ho, Wo). */
__attribute__((target("avx512f")))
static void im2col_rows_f32(const geom *g, const float *xp, float *dst, int64_t ki, int64_t kj) {
    for (int64_t ow0 = 0; ow0 < g->Wo; ow0 += 16) {
        row_tap t = tap_at(g, kj, ow0);
        im2col_tap_rows(g, &t, xp, dst + ow0, ki);
    }
}

/* The plane xp (H, W) += col2im of one tap (ki, kj) of src (Ho, Wo). */
__attribute__((target("avx512f")))
static void col2im_rows_f32(const geom *g, float *xp, const float *src, int64_t ki, int64_t kj) {
    for (int64_t ow0 = 0; ow0 < g->Wo; ow0 += 16) {
        row_tap t = tap_at(g, kj, ow0);
        col2im_tap_rows(g, &t, xp, src + ow0, ki);
    }
}

/* A chunk's im2col / col2im with (c, ki, kj) outer and images inner, so a
 * tap is set once for all the chunk's images; Wo up to 16 (one block of
 * outputs per row), as the VAE's. col2im still gives each dx element its
 * taps in (ki, kj) order, as col2im_range does. */
__attribute__((target("avx512f")))
static void im2col_chunk_f32(const geom *g, const float *x, float *col, int64_t ldc, int64_t n0, int64_t n1) {
    int64_t P = g->Ho * g->Wo, HW = g->H * g->W;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                row_tap t = tap_at(g, kj, 0);
                float *dst = col + ((c * g->kh + ki) * g->kw + kj) * ldc;
                for (int64_t n = n0; n < n1; n++) im2col_tap_rows(g, &t, x + (n * g->C + c) * HW, dst + (n - n0) * P, ki);
            }
}

/* The same im2col written straight into a GEMM's B panels (tensor/gemm.h):
 * each group's rows (K = C/G kh kw of them) as ceil(n / nr) panels of
 * (K, nr), n = (n1 - n0) Ho Wo columns, so the product needs no packing. An
 * output row (Wo <= nr columns) that runs past a panel's end continues at
 * the start of the next panel's row. The last panels are zero past n.
 * Input rows of up to 32 (two registers; whole_rows) are loaded once for
 * all kw taps of a kernel row. */
typedef struct {
    __m512i idx;      /* output lane ow reads input column idx[ow] of the row ... */
    __mmask16 ok;     /* ... for the lanes ow < Wo where that is >= 0 */
} whole_row;

#define WHOLE_HO 64   /* output rows of an image, at most */

static bool whole_rows(const geom *g) {
    return g->W <= 32 && g->Ho <= WHOLE_HO && g->kw <= 16 && (g->Wo - 1) * g->sw + (g->kw - 1) * g->dw - g->pw < 32;
}

__attribute__((target("avx512f")))
static whole_row whole_row_at(const geom *g, int64_t kj) {
    int32_t idx[16];
    uint32_t ok = 0;
    for (int64_t ow = 0; ow < 16; ow++) {
        int64_t iw = ow * g->sw + kj * g->dw - g->pw;
        idx[ow] = iw >= 0 ? (int32_t)iw : 0;
        ok |= (uint32_t)(iw >= 0 && ow < g->Wo) << ow;
    }
    return (whole_row){_mm512_loadu_si512(idx), (__mmask16)ok};
}

__attribute__((target("avx512f")))
static void im2col_panels_f32(const geom *g, const float *x, float *bp, int64_t nr, int64_t n0, int64_t n1) {
    const int64_t Ho = g->Ho, Wo = g->Wo, H = g->H, W = g->W, kh = g->kh, kw = g->kw, P = Ho * Wo, HW = H * W;
    const int64_t n = (n1 - n0) * P, np = (n + nr - 1) / nr, K = g->C / g->G * kh * kw, pstride = K * nr;
    whole_row wr[16];
    for (int64_t kj = 0; kj < kw; kj++) wr[kj] = whole_row_at(g, kj);
    __mmask16 m0 = tail_mask(W), m1 = W > 16 ? tail_mask(W - 16) : 0, out = tail_mask(Wo);
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t ki = 0; ki < kh; ki++) {
            int64_t R = (c * kh + ki) * kw;   /* the row of tap (ki, 0) */
            float *dst = bp + R / K * np * pstride + R % K * nr;
            int64_t o = 0;   /* the column of the panel dst points into */
            for (int64_t im = n0; im < n1; im++) {
                const float *xp = x + (im * g->C + c) * HW;
                if (ki == 0 && c + 1 < g->C)   /* the next channel's plane, read from memory meanwhile */
                    for (int64_t b = 0; b < HW; b += 16) _mm_prefetch((const char *)(xp + HW + b), _MM_HINT_T0);
                for (int64_t oh = 0; oh < Ho; oh++) {
                    int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                    bool in = ih >= 0 && ih < H;
                    const float *row = xp + (in ? ih : 0) * W;
                    __m512 v0 = _mm512_maskz_loadu_ps(in ? m0 : 0, row);
                    __m512 v1 = in && m1 ? _mm512_maskz_loadu_ps(m1, row + 16) : _mm512_setzero_ps();
                    /* lanes here at column o, the rest (if the row runs past the panel) at the next panel's start */
                    bool split = o + Wo > nr;
                    __mmask16 here = split ? tail_mask(nr - o) : out, rest = out & (__mmask16)~here;
                    __mmask16 front = split ? tail_mask(o + Wo - nr) : 0;   /* rest, moved to the low lanes */
                    float *d = dst + o;
                    for (int64_t kj = 0; kj < kw; kj++, d += nr) {
                        __m512 v = _mm512_maskz_permutex2var_ps(wr[kj].ok, v0, wr[kj].idx, v1);
                        _mm512_mask_storeu_ps(d, here, v);
                        if (split) _mm512_mask_storeu_ps(d - o + pstride, front, _mm512_maskz_compress_ps(rest, v));
                    }
                    o += Wo;
                    if (o >= nr) o -= nr, dst += pstride;
                }
            }
            if (o)
                for (int64_t kj = 0; kj < kw; kj++) memset(dst + kj * nr + o, 0, (size_t)(nr - o) * sizeof(float));
        }
}

/* im2col transposed, for the weight gradient dW_g (O/G, K) = t_g (O/G, n)
 * @ col_g^T (n, K): col_g^T written straight into B's panels, each group as
 * ceil(K / nr) panels of (n, nr), panel row l (column l of col) holding
 * taps (c, ki, kj) of that output pixel. The kw taps of one (c, ki) are kw
 * consecutive input pixels (dilation 1): one load and store of 128 bits,
 * masked at the row's ends (kw <= 4; nr a multiple of 4, so they never
 * straddle two panels). Wider accesses would be slower: a masked 512-bit
 * store of a few floats still counts as 64 bytes against the loads that
 * follow it. Panels are zero past K. */
static bool patch_rows(const geom *g, int64_t nr) {
    static int vl;   /* 0 unknown, 1 no, 2 yes; a benign race on the first calls */
    if (!vl) vl = __builtin_cpu_supports("avx512vl") ? 2 : 1;
    return vl == 2 && g->dw == 1 && g->kw <= 4 && nr % 4 == 0 && nr <= 32 && g->Wo <= WHOLE_HO;
}

__attribute__((target("avx512f,avx512vl")))
static void im2col_t_panels_f32(const geom *g, const float *x, float *bp, int64_t nr, int64_t n0, int64_t n1) {
    const int64_t Ho = g->Ho, Wo = g->Wo, H = g->H, W = g->W, kh = g->kh, kw = g->kw, HW = H * W, Cg = g->C / g->G;
    const int64_t n = (n1 - n0) * Ho * Wo, K = Cg * kh * kw, np = (K + nr - 1) / nr;
    __mmask8 wmask[WHOLE_HO];   /* output column ow: the taps inside the row */
    for (int64_t ow = 0; ow < Wo; ow++) {
        int64_t iw0 = ow * g->sw - g->pw;
        wmask[ow] = (__mmask8)(tail_mask(kw < W - iw0 ? kw : W - iw0 > 0 ? W - iw0 : 0) & ~tail_mask(iw0 < 0 ? -iw0 : 0));
    }
    __mmask8 taps = (__mmask8)tail_mask(kw);
    for (int64_t grp = 0; grp < g->G; grp++)
        for (int64_t q = 0; q < np; q++) {   /* panel q: rows R in [q nr, q nr + nr) of the group */
            float *panel = bp + (grp * np + q) * n * nr;
            int64_t r0 = q * nr, r1 = r0 + nr < K ? r0 + nr : K;
            int64_t c0 = grp * Cg + r0 / (kh * kw), c1 = grp * Cg + (r1 - 1) / (kh * kw) + 1;   /* its channels */
            int64_t steps = 0, plane[32], kis[32];   /* (c, ki) of each run of kw taps: c's plane offset, ki */
            for (int64_t R = r0; R < r1; R += kw, steps++)
                plane[steps] = (grp * Cg + R / (kh * kw)) * HW, kis[steps] = R / kw % kh;
            for (int64_t im = n0; im < n1; im++) {
                if (im + 1 < n1)   /* the next image's planes, read from memory meanwhile */
                    for (const float *p = x + ((im + 1) * g->C + c0) * HW, *e = p + (c1 - c0) * HW; p < e; p += 16)
                        _mm_prefetch((const char *)p, _MM_HINT_T0);
                for (int64_t oh = 0; oh < Ho; oh++)
                    for (int64_t ow = 0; ow < Wo; ow++, panel += nr) {
                        int64_t iw0 = ow * g->sw - g->pw;
                        const float *xi = x + im * g->C * HW + iw0;
                        for (int64_t k = 0; k < steps; k++) {
                            int64_t ih = oh * g->sh - g->ph + kis[k] * g->dh;
                            bool in = ih >= 0 && ih < H;
                            const float *row = xi + plane[k] + (in ? ih : 0) * W;
                            _mm_mask_storeu_ps(panel + k * kw, taps, _mm_maskz_loadu_ps(in ? wmask[ow] : 0, row));
                        }
                        if (r1 - r0 < nr) memset(panel + (r1 - r0), 0, (size_t)(nr - (r1 - r0)) * sizeof(float));
                    }
            }
        }
}

/* The same for 4 x 4 kernels on rows of up to 16: a channel's 16 taps of
 * one output pixel are one 64-byte piece of a panel row (nr a multiple of
 * 16, K of nr). The kernel's 4 input rows are loaded once per output row
 * and each pixel's patch is cut from them by two permutes and a shuffle:
 * lanes 4 ki + kj = row ki, column ow sw - pw + kj (0 outside the row). */
static bool patch16(const geom *g, int64_t nr) {
    return g->kh == 4 && g->kw == 4 && g->dw == 1 && g->W <= 16 && nr % 16 == 0 && g->Wo <= WHOLE_HO;
}

__attribute__((target("avx512f")))
static void im2col_t_patch16_f32(const geom *g, const float *x, float *bp, int64_t nr, int64_t n0, int64_t n1) {
    const int64_t Ho = g->Ho, Wo = g->Wo, H = g->H, W = g->W, HW = H * W, Cg = g->C / g->G;
    const int64_t n = (n1 - n0) * Ho * Wo, per = nr / 16, np = Cg / per;   /* channels per panel, panels per group */
    __m512i idx[WHOLE_HO];   /* output column ow: lanes 0-3 from a's row, 4-7 from b's (the second source) */
    __mmask16 ok[WHOLE_HO];
    for (int64_t ow = 0; ow < Wo; ow++) {
        int32_t t[16] = {0};
        uint32_t m = 0;
        for (int kj = 0; kj < 4; kj++) {
            int64_t iw = ow * g->sw - g->pw + kj;
            bool in = iw >= 0 && iw < W;
            t[kj] = in ? (int32_t)iw : 0, t[4 + kj] = in ? (int32_t)(16 + iw) : 16;
            m |= (uint32_t)in << kj | (uint32_t)in << (4 + kj);
        }
        idx[ow] = _mm512_loadu_si512(t), ok[ow] = (__mmask16)m;
    }
    __mmask16 m0 = tail_mask(W);
    for (int64_t grp = 0; grp < g->G; grp++)
        for (int64_t q = 0; q < np; q++) {
            float *panel = bp + (grp * np + q) * n * nr;
            for (int64_t im = n0; im < n1; im++)
                for (int64_t oh = 0; oh < Ho; oh++) {
                    for (int64_t cc = 0; cc < per; cc++) {
                        const float *xp = x + (im * g->C + grp * Cg + q * per + cc) * HW;
                        __m512 r[4];
                        for (int ki = 0; ki < 4; ki++) {
                            int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                            bool in = ih >= 0 && ih < H;
                            r[ki] = _mm512_maskz_loadu_ps(in ? m0 : 0, xp + (in ? ih : 0) * W);
                        }
                        float *d = panel + oh * Wo * nr + cc * 16;
                        for (int64_t ow = 0; ow < Wo; ow++, d += nr) {
                            __m512 a = _mm512_maskz_permutex2var_ps(ok[ow], r[0], idx[ow], r[1]);
                            __m512 b = _mm512_maskz_permutex2var_ps(ok[ow], r[2], idx[ow], r[3]);
                            _mm512_storeu_ps(d, _mm512_shuffle_f32x4(a, b, 0x44));
                        }
                    }
                    if (oh + 1 == Ho) panel += Ho * Wo * nr;
                }
        }
}

/* Output rows of 7 (the VAE's 7 x 7 maps), O a multiple of 64: the product
 * runs an output row at a time, without im2col. The chunk's images are
 * copied with their padding made zeros (planes of (Hp, Wp), rows7_pad_f32),
 * so tap k = (c, ki, kj) of output pixel ow is the padded plane's element
 * (oh sh + ki dh, ow sw + kj dw), read where it lies. A (7, 64) tile of the
 * output (pixels by channels) is summed k = 0, 1, ... in 28 registers
 * against the weight packed as (O / 64, K, 64), K = C kh kw, then written
 * into the NCHW output (rows7_store_f32). */
static int64_t rows7_hp(const geom *g) {
    int64_t span = (g->Ho - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    return g->ph + g->H > span ? g->ph + g->H : span;
}

static int64_t rows7_wp(const geom *g) {
    int64_t span = (g->Wo - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    return g->pw + g->W > span ? g->pw + g->W : span;
}

static bool rows7_path(const geom *g, tg_dtype dt) {
    return dt == TG_F32 && has_avx512() && g->Wo == 7 && g->G == 1 && g->O % 64 == 0 && g->kw <= 4 && whole_rows(g) &&
           rows7_wp(g) <= 32;
}

/* xp ((n1 - n0) C planes of (Hp, Wp)) = images [n0, n1) of x with their
 * padding: x's (ih, iw) at (ih + ph, iw + pw), zeros elsewhere. A row is
 * one masked load and store per 16 lanes (lanes off the row read nothing). */
__attribute__((target("avx512f")))
static void rows7_pad_f32(const geom *g, const float *x, float *xp, int64_t n0, int64_t n1) {
    const int64_t H = g->H, W = g->W, Hp = rows7_hp(g), Wp = rows7_wp(g), HW = H * W;
    uint32_t in = (uint32_t)((((uint64_t)1 << W) - 1) << g->pw);   /* the padded row's lanes from x */
    __mmask16 s0 = tail_mask(Wp), s1 = Wp > 16 ? tail_mask(Wp - 16) : 0;
    for (int64_t pl = n0 * g->C; pl < n1 * g->C; pl++) {
        const float *src = x + pl * HW;
        for (int64_t r = 0; r < Hp; r++, xp += Wp) {
            int64_t ih = r - g->ph;
            bool row = ih >= 0 && ih < H;
            const float *base = src + (row ? ih : 0) * W - g->pw;
            __m512 v0 = _mm512_maskz_loadu_ps(row ? (__mmask16)in : 0, base);
            _mm512_mask_storeu_ps(xp, s0, v0);
            if (s1) _mm512_mask_storeu_ps(xp + 16, s1, _mm512_maskz_loadu_ps(row ? (__mmask16)(in >> 16) : 0, base + 16));
        }
    }
}

/* tile (7, 64) = patches (7, K) of output row oh @ b (K, 64), each element
 * summed k = (c, ki, kj) = 0, 1, ...; xp: the image's padded planes (C, Hp, Wp). */
__attribute__((target("avx512f")))
static void rows7_tile_pad_f32(const geom *g, const float *restrict xp, int64_t oh, const float *restrict b,
                               float *restrict tile) {
    const int64_t Hp = rows7_hp(g), Wp = rows7_wp(g), sw = g->sw;
    __m512 acc[7][4];
#pragma GCC unroll 8
    for (int r = 0; r < 7; r++) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t ki = 0; ki < g->kh; ki++) {
            const float *row = xp + (c * Hp + oh * g->sh + ki * g->dh) * Wp;
            for (int64_t kj = 0; kj < g->kw; kj++, b += 64) {
                const float *a = row + kj * g->dw;
                __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32), b3 = _mm512_loadu_ps(b + 48);
#pragma GCC unroll 8
                for (int r = 0; r < 7; r++) {
                    __m512 ar = _mm512_set1_ps(a[r * sw]);
                    acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
                    acc[r][2] = _mm512_fmadd_ps(ar, b2, acc[r][2]);
                    acc[r][3] = _mm512_fmadd_ps(ar, b3, acc[r][3]);
                }
            }
        }
#pragma GCC unroll 8
    for (int r = 0; r < 7; r++)
        for (int q = 0; q < 4; q++) _mm512_storeu_ps(tile + r * 64 + q * 16, acc[r][q]);
}

/* y[o P .. o P + 6] = tile column o (rows 0-6 of (8, 64); row 7 is dropped)
 * + bias[o] for o < 64 (bias may be NULL), or += that if acc: 8 x 8 blocks
 * transposed in registers. */
__attribute__((target("avx512f,avx512vl")))
static void rows7_store_f32(float *y, int64_t P, const float *tile, const float *bias, bool acc) {
    for (int o0 = 0; o0 < 64; o0 += 8) {
        __m256 r[8], t[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(tile + i * 64 + o0);
        for (int i = 0; i < 8; i += 2) t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        for (int i = 0; i < 8; i += 4) {   /* r[i + e]: rows i .. i + 3 of column e (low half), e + 4 (high) */
            r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44), r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
            r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44), r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int e = 0; e < 4; e++) {   /* t[c]: column o0 + c */
            t[e] = _mm256_permute2f128_ps(r[e], r[4 + e], 0x20);
            t[4 + e] = _mm256_permute2f128_ps(r[e], r[4 + e], 0x31);
        }
        for (int c = 0; c < 8; c++) {
            float *d = y + (o0 + c) * P;
            __m256 v = _mm256_add_ps(t[c], _mm256_set1_ps(bias ? bias[o0 + c] : 0.0f));
            if (acc) v = _mm256_add_ps(_mm256_maskz_loadu_ps(0x7f, d), v);
            _mm256_mask_storeu_ps(d, 0x7f, v);
        }
    }
}

/* col2im a dx row at a time, for rows of up to 32 (two registers): the row
 * is loaded once, gets every tap that reaches it added in registers, in
 * (ki, kj) order, and is stored once; adding tap by tap into memory would
 * store and reload each row kh kw times. Tap kj puts output column ow at
 * input column ow sw + kj dw - pw. At stride 2 (dilation 1) taps kj and
 * kj + 1 reach columns of opposite parity, so one step adds both: lane iw
 * of the row takes lane lo/hi[iw] of the two taps' source rows side by side
 * (a's lanes 0-15, b's 16-31) where add says so, and each element still
 * gets its taps in kj order. */
typedef struct {
    __m512i lo, hi;
    __mmask16 add_lo, add_hi;
    int64_t a, b;   /* the taps (b = a if one) */
} row_gather;

__attribute__((target("avx512f")))
static row_gather gather_at(const geom *g, int64_t a, int64_t b) {
    int32_t idx[32];
    uint32_t add = 0;
    for (int64_t iw = 0; iw < 32; iw++) {
        idx[iw] = 0;
        for (int64_t k = a; k <= b; k++) {
            int64_t t = iw - (k * g->dw - g->pw), ow = t / g->sw;
            if (iw < g->W && t >= 0 && t % g->sw == 0 && ow < g->Wo) {
                idx[iw] = (int32_t)(ow + (k - a) * 16);
                add |= (uint32_t)1 << iw;
            }
        }
    }
    return (row_gather){_mm512_loadu_si512(idx), _mm512_loadu_si512(idx + 16), (__mmask16)add, (__mmask16)(add >> 16),
                        a, b};
}

/* Whether col2im_chunk_f32 goes a dx row at a time, and so can set dx
 * (from a bias) rather than add into it. */
static bool col2im_rows(const geom *g) { return g->W <= 32 && g->kw <= 16; }

/* dx (+)= col2im of col; with set, dx = bias (or 0 if NULL) + col2im, dx not read. */
__attribute__((target("avx512f")))
static void col2im_chunk_f32(const geom *g, float *dx, const float *col, int64_t ldc, int64_t n0, int64_t n1,
                             bool set, const float *bias) {
    int64_t P = g->Ho * g->Wo, HW = g->H * g->W, taps = g->kh * g->kw;
    if (!col2im_rows(g)) {   /* tap by tap */
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t ki = 0; ki < g->kh; ki++)
                for (int64_t kj = 0; kj < g->kw; kj++) {
                    row_tap t = tap_at(g, kj, 0);
                    const float *src = col + ((c * g->kh + ki) * g->kw + kj) * ldc;
                    for (int64_t n = n0; n < n1; n++) col2im_tap_rows(g, &t, dx + (n * g->C + c) * HW, src + (n - n0) * P, ki);
                }
        return;
    }
    row_gather rg[16];
    int64_t steps = 0;
    bool pairs = g->sw == 2 && g->dw == 1;
    for (int64_t kj = 0; kj < g->kw; kj += pairs ? 2 : 1)
        rg[steps++] = gather_at(g, kj, pairs && kj + 1 < g->kw ? kj + 1 : kj);
    __mmask16 out = tail_mask(g->Wo), m0 = tail_mask(g->W), m1 = g->W > 16 ? tail_mask(g->W - 16) : 0;
    /* The VAE's case: stride 2 both ways, dilation 1, rows of up to 16, two steps (kw 3 or 4). */
    bool two = g->sh == 2 && pairs && steps == 2 && g->dh == 1 && !m1;
    const __m512i lo0 = rg[0].lo, lo1 = rg[1 % steps].lo;
    const __mmask16 add0 = rg[0].add_lo, add1 = rg[1 % steps].add_lo;
    const int64_t a0 = rg[0].a * ldc, b0 = rg[0].b * ldc, a1 = rg[1 % steps].a * ldc, b1 = rg[1 % steps].b * ldc;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t n = n0; n < n1; n++) {
            float *xp = dx + (n * g->C + c) * HW;
            const float *src = col + c * taps * ldc + (n - n0) * P;   /* tap (0, 0) of this plane */
            __m512 b = _mm512_set1_ps(bias ? bias[c] : 0.0f);
            if (!set && n + 1 < n1)   /* the next plane, read from memory meanwhile */
                for (int64_t k = 0; k < HW; k += 16) _mm_prefetch((const char *)(xp + g->C * HW + k), _MM_HINT_T0);
            for (int64_t ih = 0; ih < g->H; ih++) {
                float *row = xp + ih * g->W;
                __m512 v0 = b, v1 = b;
                if (!set) {
                    v0 = _mm512_maskz_loadu_ps(m0, row);
                    v1 = m1 ? _mm512_maskz_loadu_ps(m1, row + 16) : _mm512_setzero_ps();
                }
                if (two) {   /* the same adds, the two steps' operands in locals, only the taps of ih's parity */
                    for (int64_t ki = (ih + g->ph) & 1; ki < g->kh; ki += 2) {
                        int64_t t = ih + g->ph - ki, oh = t >> 1;
                        if (t < 0 || oh >= g->Ho) continue;
                        const float *s = src + ki * g->kw * ldc + oh * g->Wo;
                        __m512 sa = _mm512_maskz_loadu_ps(out, s + a0), sb = _mm512_maskz_loadu_ps(out, s + b0);
                        v0 = _mm512_mask_add_ps(v0, add0, v0, _mm512_permutex2var_ps(sa, lo0, sb));
                        sa = _mm512_maskz_loadu_ps(out, s + a1), sb = _mm512_maskz_loadu_ps(out, s + b1);
                        v0 = _mm512_mask_add_ps(v0, add1, v0, _mm512_permutex2var_ps(sa, lo1, sb));
                    }
                    _mm512_mask_storeu_ps(row, m0, v0);
                    continue;
                }
                for (int64_t ki = 0; ki < g->kh; ki++) {
                    int64_t t = ih + g->ph - ki * g->dh, oh = g->sh == 2 ? t >> 1 : t / g->sh;   /* no division at stride 2 */
                    if (t < 0 || (g->sh == 2 ? t & 1 : t % g->sh) || oh >= g->Ho) continue;
                    const float *s = src + ki * g->kw * ldc + oh * g->Wo;
                    for (int64_t k = 0; k < steps; k++) {
                        const row_gather *r = &rg[k];
                        __m512 sa = _mm512_maskz_loadu_ps(out, s + r->a * ldc), sb = _mm512_maskz_loadu_ps(out, s + r->b * ldc);
                        v0 = _mm512_mask_add_ps(v0, r->add_lo, v0, _mm512_permutex2var_ps(sa, r->lo, sb));
                        if (m1) v1 = _mm512_mask_add_ps(v1, r->add_hi, v1, _mm512_permutex2var_ps(sa, r->hi, sb));
                    }
                }
                _mm512_mask_storeu_ps(row, m0, v0);
                if (m1) _mm512_mask_storeu_ps(row + 16, m1, v1);
            }
        }
}
#else
static bool rows_avx512(const geom *g) { (void)g; return false; }
static void im2col_chunk_f32(const geom *g, const float *x, float *col, int64_t ldc, int64_t n0, int64_t n1) { (void)g, (void)x, (void)col, (void)ldc, (void)n0, (void)n1; }
static void col2im_chunk_f32(const geom *g, float *dx, const float *col, int64_t ldc, int64_t n0, int64_t n1, bool set, const float *bias) { (void)g, (void)dx, (void)col, (void)ldc, (void)n0, (void)n1, (void)set, (void)bias; }
static bool col2im_rows(const geom *g) { (void)g; return false; }
static void im2col_panels_f32(const geom *g, const float *x, float *bp, int64_t nr, int64_t n0, int64_t n1) { (void)g, (void)x, (void)bp, (void)nr, (void)n0, (void)n1; }
static void im2col_t_panels_f32(const geom *g, const float *x, float *bp, int64_t nr, int64_t n0, int64_t n1) { (void)g, (void)x, (void)bp, (void)nr, (void)n0, (void)n1; }
static bool patch_rows(const geom *g, int64_t nr) { (void)g, (void)nr; return false; }
static bool patch16(const geom *g, int64_t nr) { (void)g, (void)nr; return false; }
static bool rows7_path(const geom *g, tg_dtype dt) { (void)g, (void)dt; return false; }
static void rows7_pad_f32(const geom *g, const float *x, float *xp, int64_t n0, int64_t n1) { (void)g, (void)x, (void)xp, (void)n0, (void)n1; }
static void rows7_tile_pad_f32(const geom *g, const float *restrict xp, int64_t oh, const float *restrict b, float *restrict tile) { (void)g, (void)xp, (void)oh, (void)b, (void)tile; }
static int64_t rows7_hp(const geom *g) { (void)g; return 0; }
static int64_t rows7_wp(const geom *g) { (void)g; return 0; }
static void rows7_store_f32(float *y, int64_t P, const float *tile, const float *bias, bool acc) { (void)y, (void)P, (void)tile, (void)bias, (void)acc; }
static void im2col_t_patch16_f32(const geom *g, const float *x, float *bp, int64_t nr, int64_t n0, int64_t n1) { (void)g, (void)x, (void)bp, (void)nr, (void)n0, (void)n1; }
static bool whole_rows(const geom *g) { (void)g; return false; }
static void im2col_rows_f32(const geom *g, const float *xp, float *dst, int64_t ki, int64_t kj) { (void)g, (void)xp, (void)dst, (void)ki, (void)kj; }
static void col2im_rows_f32(const geom *g, float *xp, const float *src, int64_t ki, int64_t kj) { (void)g, (void)xp, (void)src, (void)ki, (void)kj; }
static bool has_avx512(void) { return false; }
static void gather_f32(const float *xp, const int32_t *tp, float *dst, int64_t P) { (void)xp, (void)tp, (void)dst, (void)P; }
static void scatter_add_f32(float *xp, const int32_t *tp, const float *src, int64_t P) { (void)xp, (void)tp, (void)src, (void)P; }
#endif

/* col for items i = r N + n: row r = (c, ki, kj), image n. Consecutive
 * items write consecutive memory; the planes they read are re-read by the
 * next tap of the same channel while still in cache. */
static void im2col_range(void *ctx, int64_t begin, int64_t end) {
    const conv_job *j = ctx;
    const geom *g = j->g;
    int64_t P = g->Ho * g->Wo, L = g->N * P;
    TG_DISPATCH(j->x->dtype, {
        const T *x = j->x->data;
        T *col = j->col->data;
        int64_t r = begin / g->N, n = begin % g->N - 1, c = 0, ki = 0, kj = 0;
        for (int64_t i = begin; i < end; i++) {
            if (++n == g->N || i == begin) {   /* divisions once a row, not once an item */
                if (n == g->N) n = 0, r++;
                c = r / (g->kh * g->kw), ki = r / g->kw % g->kh, kj = r % g->kw;
            }
            const T *xp = x + (n * g->C + c) * g->H * g->W;
            T *dst = col + r * (j->ld ? j->ld : L) + (n - j->n0) * P;
            if (sizeof(T) == 4 && rows_avx512(g)) {
                im2col_rows_f32(g, (const float *)xp, (float *)dst, ki, kj);
                continue;
            }
            if (j->tab) {
                const int32_t *tp = j->tab + (ki * g->kw + kj) * P;
                if (sizeof(T) == 4 && has_avx512()) {
                    gather_f32((const float *)xp, tp, (float *)dst, P);
                    continue;
                }
                for (int64_t p = 0; p < P; p++) {
                    int32_t o = tp[p];
                    T v = xp[o & ~(o >> 31)];   /* index 0 in the padding, then dropped: no branch */
                    dst[p] = o >= 0 ? v : 0;
                }
                continue;
            }
            int64_t off = kj * g->dw - g->pw, lo, hi;
            valid_range(g->Wo, g->W, g->sw, off, &lo, &hi);
            for (int64_t oh = 0; oh < g->Ho; oh++, dst += g->Wo) {
                int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                if (ih < 0 || ih >= g->H) {
                    memset(dst, 0, (size_t)g->Wo * sizeof(T));
                    continue;
                }
                const T *row = xp + ih * g->W + off;
                for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;
                if (g->sw == 1) memcpy(dst + lo, row + lo, (size_t)(hi - lo) * sizeof(T));
                else for (int64_t ow = lo; ow < hi; ow++) dst[ow] = row[ow * g->sw];
                for (int64_t ow = hi; ow < g->Wo; ow++) dst[ow] = 0;
            }
        }
    });
}

/* dx planes for items i = c N + n (plane (n, c)): every tap of that plane,
 * in (ki, kj, oh, ow) order, so each element sums in a fixed order.
 * Consecutive items read consecutive stretches of the same col rows. */
static void col2im_range(void *ctx, int64_t begin, int64_t end) {
    const conv_job *j = ctx;
    const geom *g = j->g;
    int64_t P = g->Ho * g->Wo, L = g->N * P;
    TG_DISPATCH(j->col->dtype, {
        T *dx = j->col->data;          /* the image (written) */
        const T *col = j->x->data;     /* the columns (read) */
        for (int64_t i = begin; i < end; i++) {
            int64_t c = i / g->N, n = i % g->N;
            T *xp = dx + (n * g->C + c) * g->H * g->W;
            for (int64_t ki = 0; ki < g->kh; ki++)
                for (int64_t kj = 0; kj < g->kw; kj++) {
                    const T *src = col + ((c * g->kh + ki) * g->kw + kj) * (j->ld ? j->ld : L) + (n - j->n0) * P;
                    if (sizeof(T) == 4 && rows_avx512(g)) {
                        col2im_rows_f32(g, (float *)xp, (const float *)src, ki, kj);
                        continue;
                    }
                    if (j->tab) {   /* the same (oh, ow) order as the rows below */
                        const int32_t *tp = j->tab + (ki * g->kw + kj) * P;
                        if (sizeof(T) == 4 && has_avx512()) {
                            scatter_add_f32((float *)xp, tp, (const float *)src, P);
                            continue;
                        }
                        for (int64_t p = 0; p < P; p++)
                            if (tp[p] >= 0) xp[tp[p]] += src[p];
                        continue;
                    }
                    int64_t off = kj * g->dw - g->pw, lo, hi;
                    valid_range(g->Wo, g->W, g->sw, off, &lo, &hi);
                    for (int64_t oh = 0; oh < g->Ho; oh++, src += g->Wo) {
                        int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                        if (ih < 0 || ih >= g->H) continue;
                        T *row = xp + ih * g->W + off;
                        if (g->sw == 1) for (int64_t ow = lo; ow < hi; ow++) row[ow] += src[ow];
                        else for (int64_t ow = lo; ow < hi; ow++) row[ow * g->sw] += src[ow];
                    }
                }
        }
    });
}

static int64_t grain_for(int64_t elems_per_item) {
    int64_t gr = GRAIN_ELEMS / (elems_per_item > 0 ? elems_per_item : 1);
    return gr > 0 ? gr : 1;
}

/* col (C kh kw, N Ho Wo) = the patches of x (N, C, H, W). */
static void im2col(const geom *g, tg_tensor *col, const tg_tensor *x) {
    int32_t tab[TAB_MAX];
    conv_job j = {.g = g, .x = x, .col = col, .tab = build_table(g, tab) ? tab : NULL};
    tg_parallel_for(g->N * g->C * g->kh * g->kw, grain_for(g->Ho * g->Wo), im2col_range, &j);
}

/* dx (N, C, H, W) += the patches of col summed back onto their pixels. */
static void col2im_acc(const geom *g, tg_tensor *dx, const tg_tensor *col) {
    int32_t tab[TAB_MAX];
    conv_job j = {.g = g, .x = col, .col = dx, .tab = build_table(g, tab) ? tab : NULL};
    tg_parallel_for(g->N * g->C, grain_for(g->kh * g->kw * g->Ho * g->Wo), col2im_range, &j);
}

/* Items i = c N + n: dst (C, N S)[c, n S ..] = src (N, C, S)[n, c, ..]. */
static void cm_from_range(void *ctx, int64_t begin, int64_t end) {
    const conv_job *j = ctx;
    int64_t N = j->x->numel / (j->C * j->S), S = j->S;
    size_t es = tg_dtype_size(j->x->dtype);
    for (int64_t i = begin; i < end; i++) {
        int64_t c = i / N, n = i % N;
        memcpy((char *)j->col->data + (size_t)(c * (j->ld ? j->ld : N * S) + (n - j->n0) * S) * es, (const char *)j->x->data + (size_t)((n * j->C + c) * S) * es,
               (size_t)S * es);
    }
}

/* Items i = n C + c: dst (N, C, S)[n, c, ..] (+)= src (C, N S)[c, n S ..] + b[c]. */
static void cm_to_range(void *ctx, int64_t begin, int64_t end) {
    const conv_job *j = ctx;
    int64_t C = j->C, S = j->S, N = j->col->numel / (C * S);
    TG_DISPATCH(j->x->dtype, {
        const T *src = j->x->data, *b = j->bias ? j->bias->data : NULL;
        T *dst = j->col->data;
        for (int64_t i = begin; i < end; i++) {
            int64_t n = i / C, c = i % C;
            const T *s = src + c * (j->ld ? j->ld : N * S) + (n - j->n0) * S;
            T *d = dst + i * S, bc = b ? b[c] : 0;
            if (j->acc) for (int64_t k = 0; k < S; k++) d[k] += s[k] + bc;
            else for (int64_t k = 0; k < S; k++) d[k] = s[k] + bc;
        }
    });
}

/* db[c] += sum over n, then s of v[n nstride + c cstride + s] (= with set):
 * one channel a task, in double, eight lanes by s mod 8. */
typedef struct {
    tg_tensor *db;
    const tg_tensor *v;
    int64_t N, S, nstride, cstride;
    bool set;
} bias_job;

/* The same eight lanes for float32 in one register of doubles (AVX-512):
 * the same sums, lane for lane. */
#if defined(__x86_64__)
__attribute__((target("avx512f")))
static void bias_range_f32(const bias_job *j, int64_t begin, int64_t end) {
    const float *v = j->v->data;
    float *db = j->db->data;
    __mmask8 tail = (__mmask8)((1u << (j->S % 8)) - 1);
    for (int64_t c = begin; c < end; c++) {
        __m512d acc = _mm512_setzero_pd();
        for (int64_t n = 0; n < j->N; n++) {
            const float *p = v + n * j->nstride + c * j->cstride;
            int64_t k = 0;
            for (; k + 8 <= j->S; k += 8) acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_loadu_ps(p + k)));
            if (tail) acc = _mm512_mask_add_pd(acc, tail, acc, _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps((__mmask16)tail, p + k))));
        }
        double s[8];
        _mm512_storeu_pd(s, acc);
        float sum = (float)(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
        db[c] = (j->set ? 0.0f : db[c]) + sum;
    }
}
#endif

static void bias_range(void *ctx, int64_t begin, int64_t end) {
    const bias_job *j = ctx;
#if defined(__x86_64__)
    if (j->v->dtype == TG_F32 && has_avx512()) {
        bias_range_f32(j, begin, end);
        return;
    }
#endif
    TG_DISPATCH(j->v->dtype, {
        const T *v = j->v->data;
        T *db = j->db->data;
        for (int64_t c = begin; c < end; c++) {
            double s[8] = {0};   /* eight lanes (k mod 8), added in order at the end: a fixed order */
            for (int64_t n = 0; n < j->N; n++) {
                const T *p = v + n * j->nstride + c * j->cstride;
                int64_t k = 0;
                for (; k + 8 <= j->S; k += 8)
                    for (int l = 0; l < 8; l++) s[l] += p[k + l];
                for (; k < j->S; k++) s[k % 8] += p[k];
            }
            T sum = (T)(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
            db[c] = (j->set ? 0 : db[c]) + sum;
        }
    });
}

static void bias_acc(tg_tensor *db, const tg_tensor *v, int64_t N, int64_t S, int64_t nstride, int64_t cstride, bool set) {
    bias_job j = {db, v, N, S, nstride, cstride, set};
    tg_parallel_for(db->numel, grain_for(N * S), bias_range, &j);
}

/* ---------------------------------------------------------------- batch chunks */

/* The products run a chunk of images at a time: one task builds the chunk's
 * slice of col (or of a channel-major copy), multiplies it and spreads the
 * result into the NCHW output while all of it is still in the core's L2,
 * instead of one pass over the whole batch through memory per step. Tasks
 * are whole chunks on the pool, each GEMM on its own thread
 * (tg_gemm_f32_serial, packing into a per-slot arena buffer). The weight
 * gradient sums one partial dW per chunk, then adds the partials in chunk
 * order. The chunks depend only on the shapes, and each GEMM's sums only on
 * its K, so results do not depend on the threads. */
#define CHUNK_BYTES (1024 * 1024)   /* col and product slices of one chunk, about */

typedef enum {
    CH_FORWARD,     /* out (N, O, Ho, Wo) (+)= W @ im2col(x) + b, col kept if not NULL */
    CH_INPUT,       /* out (N, C, H, W) += col2im(W^T @ x), x (N, O, Ho, Wo) */
    CH_CONV_BWD,    /* conv2d: dx += col2im(W^T @ dy), partial dW = dy @ im2col(x)^T; dy in x2 */
    CH_CONVT_BWD,   /* conv_transpose2d: dx += W @ im2col(dy), partial dW = x2 @ im2col(dy)^T; dy in x */
} chunk_mode;

typedef struct {
    const geom *g;
    chunk_mode mode;
    const int32_t *tab;      /* im2col / col2im offset table, or NULL */
    int64_t nb;              /* images per chunk */
    const tg_tensor *x;      /* the tensor im2col reads (N, C, H, W); CH_INPUT: the source (N, O, Ho, Wo) */
    const tg_tensor *x2;     /* CH_*_BWD: the (N, O, Ho, Wo) side of dW (dy, or conv_transpose2d's x) */
    const tg_tensor *w;      /* (O, C / G, kh, kw) */
    const tg_tensor *b;      /* CH_FORWARD: bias (O), CH_INPUT with set: bias (C); or NULL */
    const tg_tensor *col;    /* im2col(x) (C kh kw, L) already made (CH_CONV_BWD) or to fill (CH_FORWARD), or NULL */
    tg_tensor *out;          /* the NCHW result (y, or dx, added into), or NULL */
    bool acc;                /* CH_FORWARD: out += */
    bool set;                /* out = b + (CH_INPUT, set_path) or = (CH_*_BWD: dx) rather than += */
    bool set_w;              /* CH_*_BWD: dW = its sum rather than += */
    char *partial;           /* CH_*_BWD with dW: (chunks, O, C / G kh kw) partial dW, or NULL */
    char *scratch;           /* slot_bytes per slot: GEMM packing, col chunk, product or source chunk */
    size_t pack_bytes, col_bytes, slot_bytes;
    _Atomic int slot;
    int64_t nr;              /* float32 panels (panel_path): B panel width; else 0 */
    int64_t wnr;             /* dW through im2col_t_panels_f32: B panel width; else 0 */
    bool rows7;              /* the forward product through rows7_tile_pad_f32 (wpack: W as (O / 64, K, 64)) */
    int64_t inr;             /* CH_INPUT, or CH_CONV_BWD's dx, through chunk_input_panels: B panel width; else 0 */
    const float *wpack;      /* panel_path: W's groups packed as A panels (tensor/gemm.h), or NULL */
} chunk_job;

/* Whether a float32 chunk's im2col goes straight into the GEMM's B panels
 * (im2col_panels_f32) and its forward product runs on a weight packed once
 * per call: the AVX-512 row walks' geometries, an output row within a panel. */
static bool panel_path(const geom *g, tg_dtype dt) {
    return dt == TG_F32 && rows_avx512(g) && whole_rows(g) && g->Wo <= 16 && g->Wo <= tg_gemm_f32_panel_cols();
}

/* Images per chunk: about CHUNK_BYTES of col and product, then evened out
 * so the chunks come in fours of one size (128 images: 16 chunks of 8, not
 * 14 of 9 and one of 2), which share out evenly over 2 or 4 threads. A
 * function of the shapes only. */
static int64_t chunk_images(const geom *g, size_t es) {
    int64_t per = (g->C * g->kh * g->kw + g->O) * g->Ho * g->Wo * (int64_t)es;
    int64_t nb = CHUNK_BYTES / (per > 0 ? per : 1);
    nb = nb < 1 ? 1 : nb > g->N ? g->N : nb;
    int64_t chunks = (g->N + nb - 1) / nb;
    if (chunks > 1) chunks = (chunks + 3) / 4 * 4;
    return (g->N + chunks - 1) / chunks;
}

static void gemm_here(tg_dtype dt, char *pack, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A,
                      int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc) {
    if (dt == TG_F32) tg_gemm_f32_serial(pack, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    else tg_gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, 0.0, C, ldc);
}

/* The chunk's products for each group g, n columns, with col (C kh kw, n)
 * and t (O, n) of row strides ldc, ldt:
 *   CH_FORWARD   t_g (O/G, n) = W_g (O/G, K) @ col_g (K, n)
 *   CH_INPUT     col_g (K, n) = W_g^T (K, O/G) @ t_g (O/G, n)
 *   weight       dw_g (O/G, K) = t_g (O/G, n) @ col_g^T (n, K) */
static void chunk_gemm(const chunk_job *j, int which, char *pack, char *col, int64_t ldc, char *t, int64_t ldt,
                       int64_t n, char *dw) {
    const geom *g = j->g;
    int64_t K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G;
    tg_dtype dt = j->w->dtype;
    size_t es = tg_dtype_size(dt);
    for (int64_t k = 0; k < g->G; k++) {
        const void *w = at(j->w, k * Og * K);
        char *cg = col + (size_t)(k * K * ldc) * es, *tk = t + (size_t)(k * Og * ldt) * es;
        if (which == CH_FORWARD) gemm_here(dt, pack, false, false, Og, n, K, w, K, cg, ldc, tk, ldt);
        else if (which == CH_INPUT) gemm_here(dt, pack, true, false, K, n, Og, w, K, tk, ldt, cg, ldc);
        else gemm_here(dt, pack, false, true, Og, K, n, tk, ldt, cg, ldc, dw + (size_t)(k * Og * K) * es, K);
    }
}

/* col (C kh kw, n), row stride ldc, = im2col of images [n0, n1) of x. */
static void chunk_im2col(const chunk_job *j, const tg_tensor *x, char *col, int64_t ldc, int64_t n0, int64_t n1) {
    const geom *g = j->g;
    int64_t CK = g->C * g->kh * g->kw;
    if (x->dtype == TG_F32 && rows_avx512(g) && g->Wo <= 16) {
        im2col_chunk_f32(g, x->data, (float *)col, ldc, n0, n1);
        return;
    }
    tg_tensor ct = tg_tensor_wrap(x->dtype, TG_SHAPE(CK, ldc), col);
    conv_job c = {.g = g, .x = x, .col = &ct, .tab = j->tab, .ld = ldc, .n0 = n0};
    for (int64_t r = 0; r < CK; r++) im2col_range(&c, r * g->N + n0, r * g->N + n1);
}

/* t (O, n), row stride n, = images [n0, n1) of src (N, O, Ho, Wo) channel-major. */
static void chunk_cm_from(const chunk_job *j, const tg_tensor *src, char *t, int64_t n0, int64_t n1) {
    const geom *g = j->g;
    int64_t P = g->Ho * g->Wo;
    tg_tensor tt = tg_tensor_wrap(src->dtype, TG_SHAPE(g->O, (n1 - n0) * P), t);
    conv_job c = {.x = src, .col = &tt, .C = g->O, .S = P, .ld = (n1 - n0) * P, .n0 = n0};
    for (int64_t o = 0; o < g->O; o++) cm_from_range(&c, o * g->N + n0, o * g->N + n1);
}

/* The same straight into B's panels (float32): each group's O/G rows as
 * ceil(n / nr) panels of (O/G, nr), zero past n; an image's plane runs on
 * into the next panel where it crosses one. */
static void chunk_cm_from_panels(const chunk_job *j, const tg_tensor *src, float *bp, int64_t n0, int64_t n1) {
    const geom *g = j->g;
    int64_t P = g->Ho * g->Wo, n = (n1 - n0) * P, nr = j->inr, np = (n + nr - 1) / nr, Og = g->O / g->G;
    for (int64_t o = 0; o < g->O; o++) {
        float *rowp = bp + (o / Og * np * Og + o % Og) * nr;   /* row o % Og of its group's first panel */
        for (int64_t im = n0; im < n1; im++) {
            const float *s = (const float *)src->data + (im * g->O + o) * P;
            for (int64_t col = (im - n0) * P, end = col + P; col < end;) {
                int64_t o_ = col % nr, len = nr - o_ < end - col ? nr - o_ : end - col;
                memcpy(rowp + col / nr * Og * nr + o_, s, (size_t)len * sizeof(float));
                s += len, col += len;
            }
        }
        if (n % nr) memset(rowp + (np - 1) * Og * nr + n % nr, 0, (size_t)(nr - n % nr) * sizeof(float));
    }
}

/* out (N, O, Ho, Wo) images [n0, n1) (+)= t (O, n) + b, t's row stride ldt. */
static void chunk_cm_to(const chunk_job *j, const tg_tensor *b, bool acc, char *t, int64_t ldt, int64_t n0, int64_t n1) {
    const geom *g = j->g;
    tg_tensor tt = tg_tensor_wrap(j->w->dtype, TG_SHAPE(g->O, ldt), t);
    conv_job o = {.x = &tt, .col = j->out, .bias = b, .C = g->O, .S = g->Ho * g->Wo, .acc = acc, .ld = ldt, .n0 = n0};
    cm_to_range(&o, n0 * g->O, n1 * g->O);
}

/* out (N, C, H, W) images [n0, n1) += col2im of col (C kh kw, n), row stride ldc;
 * with j->set, out = b + that (b NULL: 0). */
static void chunk_col2im(const chunk_job *j, char *col, int64_t ldc, int64_t n0, int64_t n1) {
    const geom *g = j->g;
    bool rows = j->w->dtype == TG_F32 && rows_avx512(g) && g->Wo <= 16;
    if (j->set && !(rows && col2im_rows(g))) {   /* no setting loop: b (or 0) first, then add */
        int64_t HW = g->H * g->W;
        TG_DISPATCH(j->out->dtype, {
            const T *b = j->b ? j->b->data : NULL;
            for (int64_t n = n0; n < n1; n++)
                for (int64_t c = 0; c < g->C; c++) {
                    T *d = (T *)j->out->data + (n * g->C + c) * HW, v = b ? b[c] : 0;
                    for (int64_t k = 0; k < HW; k++) d[k] = v;
                }
        });
    }
    if (rows) {
        col2im_chunk_f32(g, j->out->data, (const float *)col, ldc, n0, n1, j->set && col2im_rows(g),
                         j->b ? j->b->data : NULL);
        return;
    }
    tg_tensor ct = tg_tensor_wrap(j->w->dtype, TG_SHAPE(g->C * g->kh * g->kw, ldc), col);
    conv_job c = {.g = g, .x = &ct, .col = j->out, .tab = j->tab, .ld = ldc, .n0 = n0};
    for (int64_t ci = 0; ci < g->C; ci++) col2im_range(&c, ci * g->N + n0, ci * g->N + n1);
}

/* t (O, n), row stride n, = W @ im2col of images [n0, n1) of x, through
 * the B panels in cbuf and the packed weight. */
static void chunk_forward_panels(const chunk_job *j, const tg_tensor *x, char *cbuf, char *t, int64_t n0, int64_t n1) {
    const geom *g = j->g;
    int64_t n = (n1 - n0) * g->Ho * g->Wo, K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G;
    int64_t mr = tg_gemm_f32_panel_rows(Og), bstride = (n + j->nr - 1) / j->nr * j->nr * K;
    im2col_panels_f32(g, x->data, (float *)cbuf, j->nr, n0, n1);
    for (int64_t k = 0; k < g->G; k++)
        tg_gemm_f32_prepacked(Og, n, K, j->wpack + k * ((Og + mr - 1) / mr * mr) * K, (const float *)cbuf + k * bstride,
                              (float *)t + k * Og * n, n);
}

/* out (N, O, Ho, 7) images [n0, n1) (+)= W @ im2col(x) + b (b may be NULL)
 * an output row at a time (rows7_path), the padded images in cbuf, W in wpack as
 * (O / 64, K, 64). */
static void chunk_forward_rows7(const chunk_job *j, const tg_tensor *x, const tg_tensor *b, bool acc, char *cbuf,
                                int64_t n0, int64_t n1) {
    const geom *g = j->g;
    int64_t K = g->C * g->kh * g->kw, P = g->Ho * 7, plane = rows7_hp(g) * rows7_wp(g);
    float *xp = (float *)cbuf, *tile = xp + (n1 - n0) * g->C * plane, *out = j->out->data;
    const float *bias = b ? b->data : NULL;
    rows7_pad_f32(g, x->data, xp, n0, n1);
    memset(tile + 7 * 64, 0, 64 * sizeof(float));   /* the tile's unused eighth row */
    for (int64_t im = n0; im < n1; im++)
        for (int64_t oh = 0; oh < g->Ho; oh++) {
            for (int64_t ob = 0; ob < g->O; ob += 64) {
                rows7_tile_pad_f32(g, xp + (im - n0) * g->C * plane, oh, j->wpack + ob * K, tile);
                rows7_store_f32(out + (im * g->O + ob) * P + oh * 7, P, tile, bias ? bias + ob : NULL, acc);
            }
        }
}

/* Ap = A's panels (tensor/gemm.h) of the (M, n) matrix of channels
 * [o0, o0 + M) of images [n0, n1) of src (N, O, Ho, Wo) channel-major: the
 * bytes of chunk_cm_from, then tg_gemm_f32_pack_a, in one pass. */
static void pack_a_from_nchw(const geom *g, const float *src, float *ap, int64_t o0, int64_t M, int64_t n0,
                             int64_t n1) {
    int64_t P = g->Ho * g->Wo;
    for (int64_t im = n0; im < n1; im++)
        tg_gemm_f32_pack_a_cols(ap, M, (n1 - n0) * P, (im - n0) * P, P, src + (im * g->O + o0) * P, P);
}

/* dw (O, C/G kh kw) = t (O, n) @ im2col(x)^T of images [n0, n1), t those
 * images of j->x2 (N, O, Ho, Wo) channel-major: t packed straight from x2
 * as A's panels into pack, col^T built as B's panels in cbuf. */
static void chunk_weight_panels(const chunk_job *j, const tg_tensor *x, char *pack, char *cbuf, int64_t n0, int64_t n1,
                                char *dw) {
    const geom *g = j->g;
    int64_t n = (n1 - n0) * g->Ho * g->Wo, K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G;
    int64_t bstride = (K + j->wnr - 1) / j->wnr * j->wnr * n;
    if (patch16(g, j->wnr)) im2col_t_patch16_f32(g, x->data, (float *)cbuf, j->wnr, n0, n1);
    else im2col_t_panels_f32(g, x->data, (float *)cbuf, j->wnr, n0, n1);
    for (int64_t k = 0; k < g->G; k++) {
        pack_a_from_nchw(g, j->x2->data, (float *)pack, k * Og, Og, n0, n1);
        tg_gemm_f32_prepacked(Og, K, n, (const float *)pack, (const float *)cbuf + k * bstride, (float *)dw + k * Og * K, K);
    }
}

/* col (C kh kw, n), row stride n, = W^T @ images [n0, n1) of src (N, O, Ho, Wo):
 * src laid straight into B's panels in tbuf, W^T packed once in j->wpack. */
static void chunk_input_panels(const chunk_job *j, const tg_tensor *src, char *col, char *tbuf, int64_t n0, int64_t n1) {
    const geom *g = j->g;
    int64_t n = (n1 - n0) * g->Ho * g->Wo, K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G;
    int64_t mr = tg_gemm_f32_panel_rows(K), bstride = (n + j->inr - 1) / j->inr * j->inr * Og;
    chunk_cm_from_panels(j, src, (float *)tbuf, n0, n1);
    for (int64_t k = 0; k < g->G; k++)
        tg_gemm_f32_prepacked(K, n, Og, j->wpack + k * ((K + mr - 1) / mr * mr) * Og, (const float *)tbuf + k * bstride,
                              (float *)col + k * K * n, n);
}

/* y = max(y, 0) over images [n0, n1) of y (N images): a chunk's output,
 * just written and still in cache. */
static void relu_images(const tg_tensor *y, int64_t n0, int64_t n1, int64_t N) {
    int64_t per = y->numel / N;
    tg_tensor part = tg_tensor_wrap(y->dtype, TG_SHAPE((n1 - n0) * per), at(y, n0 * per));
    TG_DISPATCH(part.dtype, {
        T *p = part.data;
        for (int64_t i = 0; i < part.numel; i++) p[i] = p[i] > 0 ? p[i] : (T)0;
    });
}

static void chunk_range(void *ctx, int64_t begin, int64_t end) {
    chunk_job *j = ctx;
    const geom *g = j->g;
    int64_t P = g->Ho * g->Wo, L = g->N * P;
    size_t es = tg_dtype_size(j->w->dtype), wbytes = (size_t)j->w->numel * es;
    char *slot = j->scratch + (size_t)atomic_fetch_add(&j->slot, 1) * j->slot_bytes;
    char *pack = slot, *cbuf = slot + j->pack_bytes, *tbuf = cbuf + j->col_bytes;
    for (int64_t ch = begin; ch < end; ch++) {
        int64_t n0 = ch * j->nb, n1 = n0 + j->nb < g->N ? n0 + j->nb : g->N, n = (n1 - n0) * P;
        char *kept = j->col ? (char *)j->col->data + (size_t)(n0 * P) * es : NULL;   /* this chunk of col */
        char *dw = j->partial ? j->partial + (size_t)ch * wbytes : NULL;
        switch (j->mode) {
        case CH_FORWARD: {
            if (j->rows7) {
                chunk_forward_rows7(j, j->x, j->b, j->acc, cbuf, n0, n1);
                break;
            }
            if (j->wpack) {
                chunk_forward_panels(j, j->x, cbuf, tbuf, n0, n1);
                chunk_cm_to(j, j->b, j->acc, tbuf, n, n0, n1);
                break;
            }
            char *col = kept ? kept : cbuf;
            int64_t ldc = kept ? L : n;
            chunk_im2col(j, j->x, col, ldc, n0, n1);
            chunk_gemm(j, CH_FORWARD, pack, col, ldc, tbuf, n, n, NULL);
            chunk_cm_to(j, j->b, j->acc, tbuf, n, n0, n1);
            break;
        }
        case CH_INPUT: {
            if (j->wpack) {   /* the source straight into B's panels, W^T packed once */
                chunk_input_panels(j, j->x, cbuf, tbuf, n0, n1);
                chunk_col2im(j, cbuf, n, n0, n1);
                break;
            }
            chunk_cm_from(j, j->x, tbuf, n0, n1);
            chunk_gemm(j, CH_INPUT, pack, cbuf, n, tbuf, n, n, NULL);
            chunk_col2im(j, cbuf, n, n0, n1);
            break;
        }
        case CH_CONV_BWD:
            if (j->inr) {   /* dy straight into dW's A panels and dx's B panels, W^T packed once */
                if (dw) chunk_weight_panels(j, j->x, pack, cbuf, n0, n1, dw);
                if (j->out) {
                    chunk_input_panels(j, j->x2, cbuf, tbuf, n0, n1);
                    chunk_col2im(j, cbuf, n, n0, n1);
                }
                break;
            }
            chunk_cm_from(j, j->x2, tbuf, n0, n1);   /* dy */
            if (dw && j->wnr) {
                chunk_weight_panels(j, j->x, pack, cbuf, n0, n1, dw);
            } else if (dw) {
                if (!kept) chunk_im2col(j, j->x, cbuf, n, n0, n1);
                chunk_gemm(j, 2, pack, kept ? kept : cbuf, kept ? L : n, tbuf, n, n, dw);
            }
            if (j->out) {   /* cbuf is free again: dcol */
                chunk_gemm(j, CH_INPUT, pack, cbuf, n, tbuf, n, n, NULL);
                chunk_col2im(j, cbuf, n, n0, n1);
            }
            break;
        case CH_CONVT_BWD:
            if (j->wpack) {   /* dx from the panels, then im2col again for dW */
                if (j->out && j->rows7) {
                    chunk_forward_rows7(j, j->x, NULL, !j->set, cbuf, n0, n1);
                } else if (j->out) {
                    chunk_forward_panels(j, j->x, cbuf, tbuf, n0, n1);
                    chunk_cm_to(j, NULL, !j->set, tbuf, n, n0, n1);
                }
                if (!dw) break;
            }
            if (dw && j->wnr) {
                chunk_weight_panels(j, j->x, pack, cbuf, n0, n1, dw);
                if (j->wpack) break;
                dw = NULL;
            }
            chunk_im2col(j, j->x, cbuf, n, n0, n1);   /* of dy */
            if (j->out && !j->wpack) {
                chunk_gemm(j, CH_FORWARD, pack, cbuf, n, tbuf, n, n, NULL);
                chunk_cm_to(j, NULL, !j->set, tbuf, n, n0, n1);
            }
            if (dw) {   /* tbuf is free again: x */
                chunk_cm_from(j, j->x2, tbuf, n0, n1);
                chunk_gemm(j, 2, pack, cbuf, n, tbuf, n, n, dw);
            }
            break;
        }
        if (g->relu && (j->mode == CH_FORWARD || j->mode == CH_INPUT)) relu_images(j->out, n0, n1, g->N);
    }
}

static size_t round64(size_t v) { return (v + 63) & ~(size_t)63; }

/* dw (+)= the sum of the chunks' partials, in chunk order, for elements [begin, end). */
typedef struct {
    tg_tensor *dw;
    const char *partial;
    int64_t chunks;
    bool set;   /* dw = rather than += */
} partial_job;

static void partial_sum_range(void *ctx, int64_t begin, int64_t end) {
    const partial_job *p = ctx;
    int64_t W = p->dw->numel;
    TG_DISPATCH(p->dw->dtype, {
        const T *part = (const T *)p->partial;
        T *dw = p->dw->data;
        for (int64_t i0 = begin; i0 < end; i0 += 64) {   /* 64 elements at once, chunk after chunk: loops that vectorise */
            int64_t m = end - i0 < 64 ? end - i0 : 64;
            T s[64];
            for (int64_t i = 0; i < m; i++) s[i] = part[i0 + i];
            for (int64_t c = 1; c < p->chunks; c++)
                for (int64_t i = 0; i < m; i++) s[i] += part[c * W + i0 + i];
            if (p->set) for (int64_t i = 0; i < m; i++) dw[i0 + i] = 0 + s[i];   /* as onto zeros: -0 gives +0 */
            else for (int64_t i = 0; i < m; i++) dw[i0 + i] += s[i];
        }
    });
}

/* Runs the job's chunks; dw, if not NULL, gets the partial weight gradients added. */
static void run_chunks(tg_arena *ar, chunk_job *j, tg_tensor *dw) {
    const geom *g = j->g;
    int32_t tab[TAB_MAX];
    size_t es = tg_dtype_size(j->w->dtype);
    j->tab = build_table(g, tab) ? tab : NULL;
    j->nb = chunk_images(g, es);
    int64_t chunks = (g->N + j->nb - 1) / j->nb, cols = j->nb * g->Ho * g->Wo;
    int threads = tg_threads_get();
    if (threads > chunks) threads = (int)chunks;
    j->pack_bytes = j->w->dtype == TG_F32 ? round64(tg_gemm_f32_scratch_bytes()) : 0;
    j->col_bytes = round64((size_t)(g->C * g->kh * g->kw * cols) * es);
    bool fwd = j->mode == CH_FORWARD || (j->mode == CH_CONVT_BWD && j->out);
    if (fwd && rows7_path(g, j->w->dtype)) {   /* padded planes and a tile in the col buffer; W packed once */
        int64_t K = g->C * g->kh * g->kw;
        size_t bytes = round64((size_t)(g->N < j->nb ? g->N : j->nb) * g->C * rows7_hp(g) * rows7_wp(g) * es + 8 * 64 * es);
        if (bytes > j->col_bytes) j->col_bytes = bytes;
        float *wp = tg_arena_alloc(ar, (size_t)(g->O * K) * sizeof(float));
        const float *w = j->w->data;
        for (int64_t ob = 0; ob < g->O; ob += 64)
            for (int64_t k = 0; k < K; k++)
                for (int64_t o = 0; o < 64; o++) wp[(ob * K + k * 64) + o] = w[(ob + o) * K + k];
        j->wpack = wp, j->rows7 = true;
    } else if (fwd && panel_path(g, j->w->dtype)) {   /* B panels in the col buffer (padded to whole panels); W packed once for all chunks */
        int64_t K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G, mr = tg_gemm_f32_panel_rows(Og);
        j->nr = tg_gemm_f32_panel_cols();
        size_t pcols = (size_t)((cols + j->nr - 1) / j->nr * j->nr);
        if (round64(g->C * g->kh * g->kw * pcols * es) > j->col_bytes) j->col_bytes = round64(g->C * g->kh * g->kw * pcols * es);
        int64_t apanel = (Og + mr - 1) / mr * mr * K;
        float *wp = tg_arena_alloc(ar, (size_t)(g->G * apanel) * sizeof(float));
        for (int64_t k = 0; k < g->G; k++)
            tg_gemm_f32_pack_a(wp + k * apanel, false, Og, K, (const float *)j->w->data + k * Og * K, K);
        j->wpack = wp;
    }
    if (dw && j->w->dtype == TG_F32 && has_avx512() && patch_rows(g, tg_gemm_f32_panel_cols()) &&
        g->C / g->G * g->kh * g->kw % tg_gemm_f32_panel_cols() == 0) {   /* whole panels: no zero columns to multiply */
        /* dW's B panels (col^T, padded to whole panels) in the col buffer, t's A panels in the pack buffer */
        int64_t K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G, mr = tg_gemm_f32_panel_rows(Og);
        j->wnr = tg_gemm_f32_panel_cols();
        size_t bytes = (size_t)(g->G * ((K + j->wnr - 1) / j->wnr * j->wnr) * cols) * es;
        if (round64(bytes) > j->col_bytes) j->col_bytes = round64(bytes);
        bytes = (size_t)((Og + mr - 1) / mr * mr * cols) * es;
        if (round64(bytes) > j->pack_bytes) j->pack_bytes = round64(bytes);
    }
    size_t tcols = (size_t)cols;
    bool input_panels = j->mode == CH_INPUT || (j->mode == CH_CONV_BWD && j->out && (j->wnr || !dw));
    if (input_panels && j->w->dtype == TG_F32 && tg_gemm_f32_panel_cols() <= 32) {
        /* the source in B's panels (padded to whole panels); W^T packed once for all chunks */
        int64_t K = g->C / g->G * g->kh * g->kw, Og = g->O / g->G, mr = tg_gemm_f32_panel_rows(K);
        j->inr = tg_gemm_f32_panel_cols();
        tcols = (size_t)((cols + j->inr - 1) / j->inr * j->inr);
        int64_t apanel = (K + mr - 1) / mr * mr * Og;
        float *wp = tg_arena_alloc(ar, (size_t)(g->G * apanel) * sizeof(float));
        for (int64_t k = 0; k < g->G; k++)
            tg_gemm_f32_pack_a(wp + k * apanel, true, K, Og, (const float *)j->w->data + k * Og * K, K);
        j->wpack = wp;
    }
    j->slot_bytes = j->pack_bytes + j->col_bytes + round64((size_t)g->O * tcols * es);
    j->scratch = tg_arena_alloc(ar, (size_t)threads * j->slot_bytes);
    j->partial = dw ? tg_arena_alloc(ar, (size_t)(chunks * dw->numel) * es) : NULL;
    atomic_init(&j->slot, 0);
    tg_parallel_for(chunks, 1, chunk_range, j);
    if (dw) {
        partial_job p = {dw, j->partial, chunks, j->set_w};
        tg_parallel_for(dw->numel, grain_for(chunks), partial_sum_range, &p);
    }
}

/* y (N, O, Ho, Wo) (+)= W @ im2col(x) + b; col (C kh kw, L), if not NULL, left holding im2col(x). */
static void forward_chunks(tg_arena *ar, const geom *g, tg_tensor *y, tg_tensor *col, const tg_tensor *x,
                           const tg_tensor *w, const tg_tensor *b, bool acc) {
    chunk_job j = {.g = g, .mode = CH_FORWARD, .x = x, .w = w, .b = b, .col = col, .out = y, .acc = acc};
    run_chunks(ar, &j, NULL);
}

/* dx (N, C, H, W) += col2im(W^T @ src), src (N, O, Ho, Wo). */
static void input_chunks(tg_arena *ar, const geom *g, tg_tensor *dx, const tg_tensor *w, const tg_tensor *src) {
    chunk_job j = {.g = g, .mode = CH_INPUT, .x = src, .w = w, .out = dx};
    run_chunks(ar, &j, NULL);
}

/* Whether the chunks' col2im can set its output (from a bias) instead of
 * adding into it: the dx-row-at-a-time col2im of float32 on AVX-512. */
static bool set_path(const geom *g, tg_dtype dt) {
    return dt == TG_F32 && rows_avx512(g) && g->Wo <= 16 && col2im_rows(g);
}

/* y (N, C, H, W) = b + col2im(W^T @ src), src (N, O, Ho, Wo), b (C) or NULL; set_path only. */
static void input_set_chunks(tg_arena *ar, const geom *g, tg_tensor *y, const tg_tensor *w, const tg_tensor *b,
                             const tg_tensor *src) {
    chunk_job j = {.g = g, .mode = CH_INPUT, .x = src, .w = w, .b = b, .out = y, .set = true};
    run_chunks(ar, &j, NULL);
}

static tg_tensor *new_col(tg_arena *ar, const geom *g, tg_dtype dt) {
    return tg_tensor_new(ar, dt, TG_SHAPE(g->C * g->kh * g->kw, g->N * g->Ho * g->Wo));
}

/* ---------------------------------------------------------------- conv2d */

static geom conv2d_geom(const char *fn, const tg_tensor *x, const tg_tensor *w, const tg_tensor *y, tg_conv_args a) {
    geom g = geom_of(fn, x, w, y, a);
    TG_CHECK(g.Ho == tg_conv_out_size(g.H, g.kh, g.sh, g.ph, g.dh) && g.Wo == tg_conv_out_size(g.W, g.kw, g.sw, g.pw, g.dw) &&
                 g.Ho > 0 && g.Wo > 0,
             "%s: output %lld x %lld is not conv2d's %lld x %lld", fn, (long long)g.Ho, (long long)g.Wo,
             (long long)tg_conv_out_size(g.H, g.kh, g.sh, g.ph, g.dh), (long long)tg_conv_out_size(g.W, g.kw, g.sw, g.pw, g.dw));
    return g;
}

tg_tensor *tg_conv2d_forward(tg_arena *scratch, tg_tensor *y, const tg_tensor *x, const tg_tensor *w,
                             const tg_tensor *b, tg_conv_args a, bool acc) {
    geom g = conv2d_geom("tg_conv2d_forward", x, w, y, a);
    check_bias("tg_conv2d_forward", b, g.O, x->dtype);
    tg_tensor *col = panel_path(&g, x->dtype) || rows7_path(&g, x->dtype) ? NULL : new_col(scratch, &g, x->dtype);
    forward_chunks(scratch, &g, y, col, x, w, b, acc);
    return col;
}

void tg_conv2d_backward(tg_arena *scratch, tg_tensor *dx, tg_tensor *dw, tg_tensor *db, const tg_tensor *dy,
                        const tg_tensor *x, const tg_tensor *w, const tg_tensor *col, tg_conv_args a, bool acc_x,
                        bool acc_w) {
    a.relu = false;   /* dy is the gradient before any ReLU: the caller masked it */
    geom g = conv2d_geom("tg_conv2d_backward", x, w, dy, a);
    check_bias("tg_conv2d_backward", db, g.O, x->dtype);
    TG_CHECK((!dx || (dx->dtype == x->dtype && tg_shape_eq(dx->shape, x->shape))) &&
                 (!dw || (dw->dtype == w->dtype && tg_shape_eq(dw->shape, w->shape))) &&
                 (!col || (col->dtype == x->dtype && col->numel == g.C * g.kh * g.kw * g.N * g.Ho * g.Wo)),
             "tg_conv2d_backward: dx, dw or col of the wrong shape or dtype");
    if (db) bias_acc(db, dy, g.N, g.Ho * g.Wo, g.O * g.Ho * g.Wo, g.Ho * g.Wo, !acc_w);
    if (!dx && !dw) return;
    chunk_job j = {.g = &g, .mode = CH_CONV_BWD, .x = x, .x2 = dy, .w = w, .col = col, .out = dx, .set = !acc_x,
                   .set_w = !acc_w};
    run_chunks(scratch, &j, dw);
}

/* ---------------------------------------------------------------- conv_transpose2d */

/* conv2d's geometry from y (its input) to x (its output) through w. */
static geom transpose_geom(const char *fn, const tg_tensor *y, const tg_tensor *x, const tg_tensor *w, tg_conv_args a) {
    geom g = geom_of(fn, y, w, x, a);
    int64_t oph = a.output_padding[0], opw = a.output_padding[1];
    TG_CHECK(g.H == tg_conv_transpose_out_size(g.Ho, g.kh, g.sh, g.ph, g.dh, oph) &&
                 g.W == tg_conv_transpose_out_size(g.Wo, g.kw, g.sw, g.pw, g.dw, opw) && oph >= 0 && opw >= 0,
             "%s: output %lld x %lld is not conv_transpose2d's %lld x %lld", fn, (long long)g.H, (long long)g.W,
             (long long)tg_conv_transpose_out_size(g.Ho, g.kh, g.sh, g.ph, g.dh, oph),
             (long long)tg_conv_transpose_out_size(g.Wo, g.kw, g.sw, g.pw, g.dw, opw));
    return g;
}

void tg_conv_transpose2d_forward(tg_arena *scratch, tg_tensor *y, const tg_tensor *x, const tg_tensor *w,
                                 const tg_tensor *b, tg_conv_args a) {
    geom g = transpose_geom("tg_conv_transpose2d_forward", y, x, w, a);
    check_bias("tg_conv_transpose2d_forward", b, g.C, x->dtype);
    if (set_path(&g, x->dtype)) {
        input_set_chunks(scratch, &g, y, w, b, x);
        return;
    }
    if (b) {
        tg_tensor bv = tg_tensor_wrap(b->dtype, TG_SHAPE(g.C, 1, 1), b->data);
        tg_tensor_expand(y, &bv);
    } else {
        tg_tensor_fill(y, 0);
    }
    input_chunks(scratch, &g, y, w, x);
}

void tg_conv_transpose2d_backward(tg_arena *scratch, tg_tensor *dx, tg_tensor *dw, tg_tensor *db, const tg_tensor *dy,
                                  const tg_tensor *x, const tg_tensor *w, tg_conv_args a, bool acc_x, bool acc_w) {
    a.relu = false;   /* dy is the gradient before any ReLU: the caller masked it */
    geom g = transpose_geom("tg_conv_transpose2d_backward", dy, x, w, a);
    check_bias("tg_conv_transpose2d_backward", db, g.C, x->dtype);
    TG_CHECK((!dx || (dx->dtype == x->dtype && tg_shape_eq(dx->shape, x->shape))) &&
                 (!dw || (dw->dtype == w->dtype && tg_shape_eq(dw->shape, w->shape))),
             "tg_conv_transpose2d_backward: dx or dw of the wrong shape or dtype");
    if (db) bias_acc(db, dy, g.N, g.H * g.W, g.C * g.H * g.W, g.H * g.W, !acc_w);
    if (!dx && !dw) return;
    chunk_job j = {.g = &g, .mode = CH_CONVT_BWD, .x = dy, .x2 = x, .w = w, .out = dx, .set = !acc_x,
                   .set_w = !acc_w};
    run_chunks(scratch, &j, dw);
}

/* ---------------------------------------------------------------- the layout kernels on their own */

/* The geometry of im2col over x (N, C, H, W) into col (C kh kw, N Ho Wo), groups ignored. */
static geom layout_geom(const char *fn, const tg_tensor *x, const tg_tensor *col, int64_t kh, int64_t kw,
                        tg_conv_args a) {
    tg_tensor wshape = tg_tensor_wrap(x->dtype, TG_SHAPE(1, x->shape.d[1], kh, kw), NULL);
    int64_t Ho = tg_conv_out_size(x->shape.d[2], kh, a.stride[0], a.padding[0], a.dilation[0]);
    int64_t Wo = tg_conv_out_size(x->shape.d[3], kw, a.stride[1], a.padding[1], a.dilation[1]);
    tg_tensor yshape = tg_tensor_wrap(x->dtype, TG_SHAPE(x->shape.d[0], 1, Ho, Wo), NULL);
    a.groups = 1;
    geom g = geom_of(fn, x, &wshape, &yshape, a);
    TG_CHECK(col->dtype == x->dtype && col->shape.ndim == 2 && col->shape.d[0] == g.C * kh * kw &&
                 col->shape.d[1] == g.N * Ho * Wo && Ho > 0 && Wo > 0,
             "%s: col must be (C kh kw, N Ho Wo) = (%lld, %lld)", fn, (long long)(g.C * kh * kw),
             (long long)(g.N * Ho * Wo));
    return g;
}

void tg_tensor_im2col(tg_tensor *col, const tg_tensor *x, int64_t kh, int64_t kw, tg_conv_args a) {
    geom g = layout_geom("tg_tensor_im2col", x, col, kh, kw, a);
    im2col(&g, col, x);
}

void tg_tensor_col2im_acc(tg_tensor *dx, const tg_tensor *col, int64_t kh, int64_t kw, tg_conv_args a) {
    geom g = layout_geom("tg_tensor_col2im_acc", dx, col, kh, kw, a);
    col2im_acc(&g, dx, col);
}
