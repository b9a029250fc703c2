/* test_vmath.c — the vectorisable float32 exp / log / log1p against libm in double. */
#include <criterion/criterion.h>
#include <math.h>

#include "tensor/vmath.h"

/* Every 97th float from 0 up to +inf, and their negatives where in domain. */
#define SWEEP(x) for (uint32_t u_ = 0; u_ < 0x7f800000u; u_ += 97) for (int s_ = 0; s_ < 2; s_++) \
    for (float x = s_ ? -tg_f32_from_bits(u_) : tg_f32_from_bits(u_); x == x; x = NAN)

Test(vmath, expf_relative_error_below_3e7) {
    double worst = 0, at = 0;
    SWEEP(x) {
        if (x > 88.7f || x < -87.3f) continue;
        double want = exp((double)x), e = fabs(tg_expf(x) - want) / want;
        if (e > worst) worst = e, at = x;
    }
    cr_expect_lt(worst, 3e-7, "max relative error %.3g at x = %g", worst, at);
}

Test(vmath, logf_error_below_3e7) {
    double worst = 0, at = 0;
    SWEEP(x) {
        if (x <= 0) continue;
        double want = log((double)x), e = fabs(tg_logf(x) - want) / fmax(fabs(want), 1.0);
        if (e > worst) worst = e, at = x;
    }
    cr_expect_lt(worst, 3e-7, "max error %.3g at x = %g", worst, at);
}

Test(vmath, log1pf_relative_error_below_5e7) {
    double worst = 0, at = 0;
    SWEEP(x) {
        if (x <= -1 || x > 1e30f) continue;
        double want = log1p((double)x);
        if (want == 0) continue;
        double e = fabs(tg_log1pf(x) - want) / fabs(want);
        if (e > worst) worst = e, at = x;
    }
    cr_expect_lt(worst, 5e-7, "max relative error %.3g at x = %g", worst, at);
}

Test(vmath, special_values) {
    cr_expect(isnan(tg_expf(NAN)));
    cr_expect(isinf(tg_expf(100.0f)) && tg_expf(100.0f) > 0);
    cr_expect_eq(tg_expf(-100.0f), 0.0f);
    cr_expect_eq(tg_expf(0.0f), 1.0f);
    cr_expect(isinf(tg_logf(0.0f)) && tg_logf(0.0f) < 0);
    cr_expect(isnan(tg_logf(-1.0f)));
    cr_expect(isnan(tg_logf(NAN)));
    cr_expect(isinf(tg_logf(INFINITY)));
    cr_expect_eq(tg_logf(1.0f), 0.0f);
    cr_expect_float_eq(tg_logf(1e-45f), log((double)1e-45f), 1e-4, "denormal input");
    cr_expect_eq(tg_log1pf(0.0f), 0.0f);
    cr_expect_float_eq(tg_log1pf(1e-10f), 1e-10, 1e-17);
}
