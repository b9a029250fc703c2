/*
 * vmath.h — float32 exp and log written so that a compiler vectorises the
 * loops that call them: no branches (only selects), no tables, no libm calls.
 * libm's expf/logf are exact to 1 ulp but are opaque calls, one element at a
 * time; these run 8 or 16 elements per instruction and are accurate to a few
 * ulp (max relative error measured in tests/test_vmath.c). float64 code keeps
 * using libm.
 *
 *   tg_expf(x)    e^x: 0 below -87.3 (no denormals), +inf above 88.72, NaN kept
 *   tg_logf(x)    ln x: -inf at 0, NaN below 0, +inf at +inf, denormals handled
 *   tg_log1pf(x)  ln(1 + x) for x > -1, accurate for tiny x
 *
 * TG_SIMD marks a hot function for which GCC on x86-64 also builds AVX-512
 * and AVX2 versions, picked at load time (target_clones); elsewhere it is
 * empty. The clones compute the same IEEE operations (ISO C mode keeps GCC
 * from contracting a * b + c into FMA), so results do not depend on which
 * one runs.
 */
#ifndef TG_VMATH_H
#define TG_VMATH_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TG_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TG_SIMD
#endif

static inline float tg_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t tg_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float tg_expf(float x) {
    const float hi = 88.7228f, lo = -87.33654f;
    float xc = x == x ? x : 0.0f;                     /* NaN: compute on 0, return x */
    xc = xc > hi ? hi : xc;
    xc = xc < lo ? lo : xc;
    /* x = k ln2 + r with k integer and |r| <= ln2 / 2; k rounded by the 1.5 * 2^23 trick. */
    float kf = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = (xc - kf * 0.693359375f) - kf * -2.12194440e-4f;
    /* e^r, Taylor to degree 7: truncation error below 5e-9 relative for |r| <= 0.347. */
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^k as two factors 2^(k/2) 2^(k - k/2), each a normal float for k in [-126, 128]. */
    int32_t k = (int32_t)kf, k1 = k / 2;
    float y = p * tg_f32_from_bits((uint32_t)(k1 + 127) << 23) * tg_f32_from_bits((uint32_t)(k - k1 + 127) << 23);
    y = x > hi ? tg_f32_from_bits(0x7f800000u) : y;
    y = x < lo ? 0.0f : y;
    return x == x ? y : x;
}

static inline float tg_logf(float x) {
    /* x = m 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s), s = (m - 1) / (m + 1). */
    int tiny = x < 1.17549435e-38f;                   /* denormal (or <= 0): scale up by 2^23 */
    float xs = tiny ? x * 8388608.0f : x;
    uint32_t u = tg_f32_bits(xs);
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127 - (tiny ? 23 : 0);
    float m = tg_f32_from_bits((u & 0x007fffffu) | 0x3f800000u);   /* [1, 2) */
    int big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    e = big ? e + 1 : e;
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;   /* |s| <= 0.1716 */
    float p = 1.0f / 9;
    p = p * s2 + 1.0f / 7;
    p = p * s2 + 1.0f / 5;
    p = p * s2 + 1.0f / 3;
    p = p * s2 + 1.0f;
    float y = (float)e * 0.693147181f + 2.0f * s * p;
    y = x == 0.0f ? -tg_f32_from_bits(0x7f800000u) : y;
    y = x < 0.0f ? tg_f32_from_bits(0x7fc00000u) : y;
    y = x == tg_f32_from_bits(0x7f800000u) ? x : y;
    return x == x ? y : x;
}

static inline float tg_log1pf(float x) {
    /* ln(1 + x) = ln(u) * x / (u - 1) with u = 1 + x rounded: the ratio cancels
     * the rounding of u (Goldberg's trick); exact x when u == 1. */
    float u = 1.0f + x, d = u - 1.0f;
    float l = tg_logf(u);
    return d == 0.0f ? x : l * (x / d);
}

#endif
