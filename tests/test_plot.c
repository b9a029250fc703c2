/*
 * test_plot.c — line charts (io/plot.h) and their tick chooser.
 *
 * Every chart is read back with the tests' own PNG decoder
 * (tg_png_read_rgb, tests/png_read.c) and judged by its pixels alone: the
 * plot area is found as the long black frame lines, and data must then sit
 * where plot.h says, v at the fraction (v - lo) / (hi - lo) of the way
 * between the frame lines, in the documented tab10 colour of its series.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/plot.h"

#include "tests/child.h"
#include "tests/png_read.h"
#include "tests/tmpdir.h"

/* ================================================================ helpers */

typedef struct {
    uint8_t r, g, b;
} rgb;

/* matplotlib's tab10, as plot.h lists it. */
static const rgb TAB10[8] = {
    {0x1f, 0x77, 0xb4}, {0xff, 0x7f, 0x0e}, {0x2c, 0xa0, 0x2c}, {0xd6, 0x27, 0x28},
    {0x94, 0x67, 0xbd}, {0x8c, 0x56, 0x4b}, {0xe3, 0x77, 0xc2}, {0x7f, 0x7f, 0x7f},
};
static const rgb BLACK = {0, 0, 0};

static bool is(const tg_png_img *g, int64_t x, int64_t y, rgb c) {
    if (x < 0 || y < 0 || x >= g->w || y >= g->h) return false;
    const uint8_t *p = g->px + (y * g->w + x) * 3;
    return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

/* Pixels of colour c in the rectangle [x0, x1] x [y0, y1]. */
static int64_t count(const tg_png_img *g, int64_t x0, int64_t y0, int64_t x1, int64_t y1, rgb c) {
    int64_t k = 0;
    for (int64_t y = y0; y <= y1; y++)
        for (int64_t x = x0; x <= x1; x++) k += is(g, x, y, c);
    return k;
}

/* The plot area's frame: the outermost columns and rows more than a third
 * black (text and ticks are far shorter). */
typedef struct {
    int64_t l, t, r, b;
} frame;

static frame find_frame(const tg_png_img *g) {
    frame f = {-1, -1, -1, -1};
    for (int64_t x = 0; x < g->w; x++)
        if (count(g, x, 0, x, g->h - 1, BLACK) > g->h / 3) {
            if (f.l < 0) f.l = x;
            f.r = x;
        }
    for (int64_t y = 0; y < g->h; y++)
        if (count(g, 0, y, g->w - 1, y, BLACK) > g->w / 3) {
            if (f.t < 0) f.t = y;
            f.b = y;
        }
    cr_assert(f.l >= 0 && f.t >= 0 && f.r - f.l > 50 && f.b - f.t > 50, "no frame found: %lld %lld %lld %lld",
              (long long)f.l, (long long)f.t, (long long)f.r, (long long)f.b);
    return f;
}

/* Where data lands on axes spanning [lo, hi] (x) and [lo, hi] (y). */
static double fx(frame f, double v, double lo, double hi) { return f.l + (v - lo) / (hi - lo) * (double)(f.r - f.l); }
static double fy(frame f, double v, double lo, double hi) { return f.b - (v - lo) / (hi - lo) * (double)(f.b - f.t); }

/* Draws p into name in the temporary directory and reads it back. */
static tg_png_img draw(const tg_plot *p, const char *name) {
    tg_err e;
    cr_assert_eq(tg_plot_lines(tg_tmp(name), p, &e), 0, "%s", e.msg);
    return tg_png_read_rgb(tg_tmp(name));
}

/* The centroid of the pixels of colour c in the rectangle; returns how many. */
static int64_t centroid(const tg_png_img *g, int64_t x0, int64_t y0, int64_t x1, int64_t y1, rgb c, double *cx,
                        double *cy) {
    int64_t k = 0;
    double sx = 0, sy = 0;
    for (int64_t y = y0; y <= y1; y++)
        for (int64_t x = x0; x <= x1; x++)
            if (is(g, x, y, c)) k++, sx += (double)x, sy += (double)y;
    *cx = k ? sx / (double)k : NAN;
    *cy = k ? sy / (double)k : NAN;
    return k;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ================================================================ ticks */

/* Asserts t[0..n) are the ticks tg_plot_ticks documents for [lo, hi]. */
static void check_ticks(double lo, double hi, int max_n, bool integer) {
    double t[TG_PLOT_MAX_TICKS];
    int n = tg_plot_ticks(lo, hi, max_n, integer, t);
    cr_assert(n >= 2 && n <= max_n, "[%g, %g] max %d: %d ticks", lo, hi, max_n, n);
    double e10 = pow(10, floor(log10(t[1] - t[0]) + 1e-9)), m = round((t[1] - t[0]) / e10), step = m * e10;
    cr_assert(m == 1 || m == 2 || m == 5 || m == 10, "[%g, %g]: step %g is not 1-2-5", lo, hi, t[1] - t[0]);
    if (m == 10) m = 1, e10 *= 10;
    if (integer) cr_assert(step >= 1 - 1e-12, "[%g, %g]: integer step %g", lo, hi, step);
    for (int i = 0; i < n; i++) {
        double k = t[i] / step;
        cr_assert(fabs(k - round(k)) < 1e-9 * fmax(1, fabs(k)), "[%g, %g]: tick %.17g is not a multiple of %g", lo,
                  hi, t[i], step);
        cr_assert(i == 0 || round(k) == round(t[i - 1] / step) + 1, "[%g, %g]: ticks %d and %d are not a step apart",
                  lo, hi, i - 1, i);
    }
    if (lo < hi) {
        double tol = 1e-9 * step;
        cr_assert(t[0] <= lo + tol && t[n - 1] >= hi - tol, "[%g, %g]: ticks %g..%g do not cover it", lo, hi, t[0],
                  t[n - 1]);
        cr_assert(t[1] > lo + tol && t[n - 2] < hi - tol, "[%g, %g]: ticks %g..%g cover more than needed", lo, hi,
                  t[0], t[n - 1]);
        /* The next smaller 1-2-5 step would need more than max_n ticks. */
        double smaller = m == 1 ? 5 * e10 / 10 : m == 2 ? e10 : 2 * e10;
        if (!integer || smaller >= 1) {
            double need = ceil(hi / smaller - 1e-9) - floor(lo / smaller + 1e-9) + 1;
            cr_assert(need > max_n, "[%g, %g] max %d: step %g would also do (%g ticks), %g is not the smallest", lo,
                      hi, max_n, smaller, need, step);
        }
    }
}

Test(plot, ticks_are_nice_and_cover_the_range) {
    double t[TG_PLOT_MAX_TICKS];
    int n = tg_plot_ticks(0.13, 9.7, 6, false, t);
    cr_assert_eq(n, 6);
    for (int i = 0; i < 6; i++) cr_assert(fabs(t[i] - 2 * i) < 1e-12, "tick %d is %g, want %d", i, t[i], 2 * i);
    n = tg_plot_ticks(-3.7, 12.1, 6, false, t);
    double want[] = {-5, 0, 5, 10, 15};
    cr_assert_eq(n, 5);
    for (int i = 0; i < 5; i++) cr_assert(fabs(t[i] - want[i]) < 1e-12, "tick %d is %g, want %g", i, t[i], want[i]);
    n = tg_plot_ticks(0.3, 0.7, 5, false, t);   /* 0.3 / 0.1 is 2.9999999999999996 */
    cr_assert(n == 5 && fabs(t[0] - 0.3) < 1e-12 && fabs(t[4] - 0.7) < 1e-12, "%d ticks from %g", n, t[0]);
    n = tg_plot_ticks(1, 10, 8, true, t);      /* epochs 1..10 */
    cr_assert(n == 6 && t[0] == 0 && t[5] == 10, "%d ticks %g..%g", n, t[0], t[n - 1]);
    n = tg_plot_ticks(1, 3, 10, true, t);      /* no half epochs */
    cr_assert(n == 3 && t[0] == 1 && t[1] == 2 && t[2] == 3, "%d ticks %g, %g", n, t[0], t[1]);

    /* A spread of ranges, signs and magnitudes. */
    uint64_t s = 12345;
    for (int k = 0; k < 2000; k++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) / 9007199254740992.0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double v = (double)(s >> 11) / 9007199254740992.0;
        double scale = pow(10, (int)(k % 25) - 12);
        double lo = (u - 0.3) * scale, hi = lo + v * scale * (k % 3 ? 1 : 0.001);
        if (k % 7 == 0) hi = fabs(hi) + scale * 1e-3, lo = -hi * v;   /* around 0 */
        check_ticks(lo, hi, 3 + k % (TG_PLOT_MAX_TICKS - 2), k % 4 == 0 && scale >= 1);
    }
}

Test(plot, ticks_of_a_constant_widen_around_it) {
    double t[TG_PLOT_MAX_TICKS];
    int n = tg_plot_ticks(1, 1, 8, true, t);   /* a single epoch */
    cr_assert(n == 3 && t[0] == 0 && t[1] == 1 && t[2] == 2, "%d ticks %g, %g, %g", n, t[0], t[1], t[2]);
    n = tg_plot_ticks(5, 5, 6, false, t);      /* widened to [4.5, 5.5] */
    cr_assert(n >= 2 && t[0] <= 4.5 && t[0] > 4 && t[n - 1] >= 5.5 && t[n - 1] < 6, "%d ticks %g..%g", n, t[0],
              t[n - 1]);
    n = tg_plot_ticks(0, 0, 6, false, t);      /* widened to [-1, 1] */
    cr_assert(n >= 2 && t[0] == -1 && t[n - 1] == 1, "%d ticks %g..%g", n, t[0], t[n - 1]);
    n = tg_plot_ticks(-2e-7, -2e-7, 6, false, t);
    cr_assert(n >= 2 && t[0] < -2e-7 && t[n - 1] > -2e-7, "%d ticks %g..%g", n, t[0], t[n - 1]);
}

static void ticks_max_2(void) {
    double t[TG_PLOT_MAX_TICKS];
    tg_plot_ticks(-1, 1, 2, false, t);
}

static void ticks_nan(void) {
    double t[TG_PLOT_MAX_TICKS];
    tg_plot_ticks(0, NAN, 5, false, t);
}

static void plot_null_path(void) {
    double x[1] = {0};
    tg_plot p = {.n_series = 1, .series = {{"a", 1, x, x}}};
    tg_plot_lines(NULL, &p, NULL);
}

Test(plot_abort, programmer_errors_abort) {
    tg_expect_abort(ticks_max_2, "tg_plot_ticks: max_n is 2; need 3 to 16");
    tg_expect_abort(ticks_nan, "tg_plot_ticks: need finite lo <= hi");
    tg_expect_abort(plot_null_path, "tg_plot_lines: NULL path");
}

/* ================================================================ where data lands */

Test(plot, horizontal_series_sit_on_their_rows, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* y = 5 and y = 2 over x in [0, 10], drawn over the diagonal (0, 0) to
     * (10, 10), which makes both axes [0, 10]. Unnamed: no legend. */
    double x[11], five[11], two[11], dx[2] = {0, 10}, dy[2] = {0, 10};
    for (int i = 0; i < 11; i++) x[i] = i, five[i] = 5, two[i] = 2;
    tg_plot p = {.n_series = 3, .series = {{NULL, 2, dx, dy}, {NULL, 11, x, five}, {NULL, 11, x, two}}};
    tg_png_img g = draw(&p, "h.png");
    cr_assert(g.w == 640 && g.h == 400, "default size is %lldx%lld", (long long)g.w, (long long)g.h);
    frame f = find_frame(&g);
    for (int k = 1; k <= 2; k++) {
        double v = k == 1 ? 5 : 2, row = fy(f, v, 0, 10);
        /* Every column of the frame from x = 0 to 10 has the colour within a
         * pixel of the row... */
        for (int64_t X = f.l + 4; X <= f.r - 4; X++)
            cr_assert(count(&g, X, (int64_t)floor(row) - 1, X, (int64_t)ceil(row) + 1, TAB10[k]) > 0,
                      "y = %g: column %lld has no pixel of its colour near row %.1f", v, (long long)X, row);
        /* ... and none further than a marker's radius (3) from it. */
        for (int64_t Y = 0; Y < g.h; Y++)
            if (fabs((double)Y - row) > 3.5)
                cr_assert_eq(count(&g, 0, Y, g.w - 1, Y, TAB10[k]), 0, "y = %g (row %.1f): its colour on row %lld", v,
                             row, (long long)Y);
    }
    tg_png_free(&g);
}

Test(plot, a_point_lands_at_its_coordinates, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* The diagonal (0, 0)-(10, 10) fixes both axes to [0, 10]; the single
     * point (2, 8), drawn as a marker, must sit a fifth of the way from the
     * left and a fifth of the way down from the top. */
    double dx[2] = {0, 10}, dy[2] = {0, 10}, px[1] = {2}, py[1] = {8};
    tg_plot p = {.n_series = 2, .series = {{NULL, 2, dx, dy}, {NULL, 1, px, py}}};
    tg_png_img g = draw(&p, "pt.png");
    frame f = find_frame(&g);
    double cx, cy, wx = fx(f, 2, 0, 10), wy = fy(f, 8, 0, 10);
    int64_t k = centroid(&g, 0, 0, g.w - 1, g.h - 1, TAB10[1], &cx, &cy);
    cr_assert(k >= 20, "the point shows only %lld pixels", (long long)k);
    cr_assert(fabs(cx - wx) <= 1 && fabs(cy - wy) <= 1, "the point (2, 8) is drawn at (%.1f, %.1f), want (%.1f, %.1f)",
              cx, cy, wx, wy);
    /* The diagonal rises: its colour at x = 1 sits low, at x = 9 high. */
    double ax, ay, bx, by;
    int64_t c0 = (int64_t)fx(f, 1, 0, 10), c1 = (int64_t)fx(f, 9, 0, 10);
    cr_assert(centroid(&g, c0, 0, c0, g.h - 1, TAB10[0], &ax, &ay) > 0);
    cr_assert(centroid(&g, c1, 0, c1, g.h - 1, TAB10[0], &bx, &by) > 0);
    cr_assert(fabs(ay - fy(f, 1, 0, 10)) <= 1.5 && fabs(by - fy(f, 9, 0, 10)) <= 1.5,
              "the diagonal is at rows %.1f and %.1f, want %.1f and %.1f", ay, by, fy(f, 1, 0, 10), fy(f, 9, 0, 10));
    tg_png_free(&g);
}

Test(plot, a_rising_series_rises_left_to_right, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* 41 points (too many for markers) of y = x^2: per column, the mean row
     * of its pixels must go up (decrease) from left to right, from the
     * bottom frame line to the top one. */
    double x[41], y[41];
    for (int i = 0; i < 41; i++) x[i] = i / 4.0, y[i] = x[i] * x[i];
    tg_plot p = {.n_series = 1, .series = {{NULL, 41, x, y}}};
    tg_png_img g = draw(&p, "rise.png");
    frame f = find_frame(&g);
    double prev = INFINITY, first = NAN, last = NAN;
    int64_t cols = 0;
    for (int64_t X = f.l; X <= f.r; X++) {
        double cx, cy;
        if (!centroid(&g, X, 0, X, g.h - 1, TAB10[0], &cx, &cy)) continue;
        cr_assert(cy <= prev + 0.5, "column %lld: mean row %.1f, below %.1f to its left", (long long)X, cy, prev);
        prev = cy;
        if (isnan(first)) first = cy;
        last = cy;
        cols++;
    }
    cr_assert(cols >= f.r - f.l - 2, "the curve covers %lld of %lld columns", (long long)cols, (long long)(f.r - f.l));
    /* y runs from 0 to 100 and the axis from 0 to 100 (ticks of 20). */
    cr_assert(fabs(first - f.b) <= 1.5 && fabs(last - f.t) <= 1.5, "from row %.1f to %.1f, want %lld to %lld", first,
              last, (long long)f.b, (long long)f.t);
    tg_png_free(&g);
}

Test(plot, each_series_has_its_own_tab10_colour, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* Series k is the horizontal line y = k + 1: the y axis is [1, 8]. */
    double x[2] = {0, 10}, y[8][2];
    tg_plot p = {.n_series = 8, .width = 500, .height = 360};
    for (int k = 0; k < 8; k++) {
        y[k][0] = y[k][1] = k + 1;
        p.series[k] = (tg_plot_series){NULL, 2, x, y[k]};
    }
    tg_png_img g = draw(&p, "eight.png");
    cr_assert(g.w == 500 && g.h == 360);
    frame f = find_frame(&g);
    int64_t mid = (f.l + f.r) / 2;
    for (int k = 0; k < 8; k++) {
        double row = fy(f, k + 1, 1, 8);
        int64_t hit = count(&g, mid, (int64_t)floor(row) - 1, mid, (int64_t)ceil(row) + 1, TAB10[k]);
        cr_assert(hit > 0, "series %d: no pixel of %02x%02x%02x at row %.1f", k, TAB10[k].r, TAB10[k].g, TAB10[k].b,
                  row);
        for (int j = 0; j < 8; j++)
            if (j != k) cr_assert_eq(count(&g, mid, (int64_t)row - 1, mid, (int64_t)row + 1, TAB10[j]), 0,
                                     "series %d's colour on series %d's row", j, k);
    }
    tg_png_free(&g);
}

/* ================================================================ axes, text, legend */

Test(plot, tick_marks_and_labels_sit_by_the_axes, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    double x[2] = {0, 10}, y[2] = {0, 10};
    tg_plot p = {.n_series = 1, .series = {{NULL, 2, x, y}}};
    tg_png_img g = draw(&p, "ticks.png");
    frame f = find_frame(&g);
    /* y = 0 and y = 10 are ticks: a mark sticking out left of the frame and
     * a label left of it, "10" about twice as wide as "0". */
    int64_t width[2];
    for (int k = 0; k < 2; k++) {
        int64_t row = (int64_t)lround(fy(f, 10 * k, 0, 10));
        cr_assert(is(&g, f.l - 2, row, BLACK) && is(&g, f.l - 4, row, BLACK), "no tick mark at y = %d", 10 * k);
        int64_t lo = -1, hi = -1;
        for (int64_t X = 0; X < f.l - 6; X++)
            if (count(&g, X, row - 4, X, row + 4, BLACK)) {
                if (lo < 0) lo = X;
                hi = X;
            }
        cr_assert(lo >= 0 && f.l - hi <= 14, "no label just left of the tick at y = %d", 10 * k);
        width[k] = hi - lo + 1;
    }
    cr_assert(width[0] >= 3 && width[0] <= 6 && width[1] >= 9 && width[1] <= 12,
              "label widths %lld (\"0\") and %lld (\"10\")", (long long)width[0], (long long)width[1]);
    /* The same below the x axis. */
    for (int k = 0; k < 2; k++) {
        int64_t col = (int64_t)lround(fx(f, 10 * k, 0, 10));
        cr_assert(is(&g, col, f.b + 2, BLACK) && is(&g, col, f.b + 4, BLACK), "no tick mark at x = %d", 10 * k);
        cr_assert(count(&g, col - 7, f.b + 6, col + 7, f.b + 20, BLACK) >= 8, "no label below x = %d", 10 * k);
    }
    /* The tick marks on the y axis (black just left of the frame) are evenly
     * spaced from the bottom frame line to the top one. */
    int64_t marks[TG_PLOT_MAX_TICKS + 1] = {0}, n = 0;
    for (int64_t Y = f.t - 1; Y <= f.b + 1; Y++)
        if (is(&g, f.l - 3, Y, BLACK)) {
            cr_assert(n <= TG_PLOT_MAX_TICKS, "too many tick marks");
            marks[n++] = Y;
        }
    cr_assert(n >= 2 && marks[0] == f.t && marks[n - 1] == f.b, "%lld tick marks, from row %lld to %lld", (long long)n,
              (long long)marks[0], (long long)marks[n - 1]);
    for (int64_t i = 1; i < n; i++)
        cr_assert(llabs((marks[i] - marks[i - 1]) - (f.b - f.t) / (n - 1)) <= 1, "uneven tick marks at rows %lld, %lld",
                  (long long)marks[i - 1], (long long)marks[i]);
    tg_png_free(&g);
}

Test(plot, title_and_labels_are_drawn_only_when_given, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    double x[2] = {0, 10}, y[2] = {0, 10};
    tg_plot p = {.n_series = 1, .series = {{NULL, 2, x, y}}};
    tg_png_img bare = draw(&p, "bare.png");
    frame fb = find_frame(&bare);
    cr_assert_eq(count(&bare, 0, 0, bare.w - 1, fb.t - 6, BLACK), 0, "ink above the frame without a title");
    cr_assert_eq(count(&bare, 0, 0, 8, bare.h - 1, BLACK), 0, "ink at the left edge without a y label");
    p.title = "Loss";
    p.x_label = "epoch";
    p.y_label = "nats";
    tg_png_img full = draw(&p, "full.png");
    frame ff = find_frame(&full);
    cr_assert(count(&full, 0, 0, full.w - 1, ff.t - 6, BLACK) > 30, "no title above the frame");
    cr_assert(count(&full, 0, ff.b + 22, full.w - 1, full.h - 1, BLACK) > 20, "no x label below the tick labels");
    cr_assert(count(&full, 0, ff.t, 20, ff.b, BLACK) > 20, "no y label at the left");
    tg_png_free(&bare);
    tg_png_free(&full);
}

Test(plot, legend_shows_each_named_series, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* Two falling curves leave the upper right free for the legend. */
    double x[20], a[20], b[20];
    for (int i = 0; i < 20; i++) x[i] = i + 1, a[i] = 100.0 / (i + 1), b[i] = 50.0 / (i + 1);
    tg_plot p = {.n_series = 2, .x_integer = true, .series = {{"train_loss", 20, x, a}, {"test_loss", 20, x, b}}};
    tg_png_img g = draw(&p, "legend.png");
    frame f = find_frame(&g);
    /* The legend's box is the light gray (204) outline. */
    const rgb EDGE = {204, 204, 204};
    int64_t l = g.w, t = g.h, r = -1, bt = -1;
    for (int64_t Y = 0; Y < g.h; Y++)
        for (int64_t X = 0; X < g.w; X++)
            if (is(&g, X, Y, EDGE)) l = X < l ? X : l, r = X > r ? X : r, t = Y < t ? Y : t, bt = Y > bt ? Y : bt;
    cr_assert(r > l + 40 && bt > t + 15, "no legend box");
    cr_assert(l > (f.l + f.r) / 2 && bt < (f.t + f.b) / 2, "the legend is not in the free upper right: (%lld, %lld)",
              (long long)l, (long long)t);
    /* In it, a sample line of each colour (a run of >= 20 pixels) and
     * the names in black to its right. */
    for (int k = 0; k < 2; k++) {
        int64_t best = 0;
        for (int64_t Y = t; Y <= bt; Y++) {
            int64_t run = 0;
            for (int64_t X = l; X <= r; X++) {
                run = is(&g, X, Y, TAB10[k]) ? run + 1 : 0;
                best = run > best ? run : best;
            }
        }
        cr_assert(best >= 20, "series %d: longest run in the legend %lld", k, (long long)best);
    }
    cr_assert(count(&g, l + 30, t, r, bt, BLACK) > 40, "no names in the legend");
    tg_png_free(&g);

    /* Unnamed series make no legend. */
    p.series[0].name = NULL;
    p.series[1].name = "";
    g = draw(&p, "nolegend.png");
    cr_assert_eq(count(&g, 0, 0, g.w - 1, g.h - 1, EDGE), 0, "a legend without names");
    tg_png_free(&g);
}

/* ================================================================ awkward data */

Test(plot, non_finite_points_are_skipped_and_break_the_line, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    double x[11], y[11], vx[2] = {0, 0}, vy[2] = {0, 10};
    for (int i = 0; i < 11; i++) x[i] = i, y[i] = 5;
    y[5] = NAN;
    y[7] = INFINITY;
    x[9] = -INFINITY;
    tg_plot p = {.n_series = 2, .series = {{NULL, 11, x, y}, {NULL, 2, vx, vy}}};
    tg_png_img g = draw(&p, "nan.png");
    frame f = find_frame(&g);
    double row = fy(f, 5, 0, 10);   /* the axis is still [0, 10] */
    cr_assert(count(&g, f.l, (int64_t)row - 1, f.r, (int64_t)row + 1, TAB10[0]) > 100, "the series is missing");
    for (int64_t Y = 0; Y < g.h; Y++)
        if (fabs((double)Y - row) > 3.5) cr_assert_eq(count(&g, 0, Y, g.w - 1, Y, TAB10[0]), 0, "row %lld", (long long)Y);
    /* Gaps around the skipped points 5, 7 and 9 (markers reach 3 pixels). */
    for (int gap = 5; gap <= 9; gap += 2) {
        int64_t a = (int64_t)fx(f, gap - 1, 0, 10) + 5, b = (int64_t)fx(f, gap + 1, 0, 10) - 5;
        cr_assert_eq(count(&g, a, 0, b, g.h - 1, TAB10[0]), 0, "a line across the skipped point %d", gap);
    }
    /* ... and a line where the points are. */
    int64_t a = (int64_t)fx(f, 1, 0, 10), b = (int64_t)fx(f, 3, 0, 10);
    for (int64_t X = a; X <= b; X++)
        cr_assert(count(&g, X, (int64_t)row - 1, X, (int64_t)row + 1, TAB10[0]) > 0, "a hole at column %lld",
                  (long long)X);
    tg_png_free(&g);

    /* Nothing finite at all: an empty chart, not an error. */
    double nx[3] = {NAN, 1, INFINITY}, ny[3] = {1, NAN, 2};
    tg_plot q = {.n_series = 1, .series = {{NULL, 3, nx, ny}}};
    g = draw(&q, "none.png");
    find_frame(&g);
    cr_assert_eq(count(&g, 0, 0, g.w - 1, g.h - 1, TAB10[0]), 0, "a series with no finite point drew something");
    tg_png_free(&g);
}

Test(plot, constant_and_single_point_series_show, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    /* y = 3 everywhere: the y axis is widened around 3, which lands mid-frame. */
    double x[5] = {1, 2, 3, 4, 5}, y[5] = {3, 3, 3, 3, 3};
    tg_plot p = {.n_series = 1, .x_integer = true, .series = {{NULL, 5, x, y}}};
    tg_png_img g = draw(&p, "flat.png");
    frame f = find_frame(&g);
    double cx, cy;
    int64_t k = centroid(&g, f.l, f.t, f.r, f.b, TAB10[0], &cx, &cy);
    cr_assert(k > 100 && fabs(cy - (f.t + f.b) / 2.0) <= 1.5, "%lld pixels around row %.1f, frame %lld..%lld",
              (long long)k, cy, (long long)f.t, (long long)f.b);
    tg_png_free(&g);

    /* One epoch: one point, both axes widened around it, a visible marker
     * in the middle. */
    p.series[0].n = 1;
    g = draw(&p, "one.png");
    f = find_frame(&g);
    k = centroid(&g, f.l, f.t, f.r, f.b, TAB10[0], &cx, &cy);
    cr_assert(k >= 20, "a single point shows %lld pixels", (long long)k);
    cr_assert(fabs(cx - (f.l + f.r) / 2.0) <= 1.5 && fabs(cy - (f.t + f.b) / 2.0) <= 1.5,
              "the point is at (%.1f, %.1f), not mid-frame", cx, cy);
    tg_png_free(&g);
}

Test(plot, output_is_deterministic, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    double x[30], a[30], b[30];
    for (int i = 0; i < 30; i++) x[i] = i + 1, a[i] = 90 + 60 * exp(-i / 3.0), b[i] = 25 - 10 * exp(-i / 4.0);
    tg_plot p = {.title = "vae", .x_label = "epoch", .y_label = "loss", .x_integer = true, .n_series = 2,
                 .series = {{"train_loss", 30, x, a}, {"kl", 30, x, b}}};
    tg_err e;
    cr_assert_eq(tg_plot_lines(tg_tmp("a.png"), &p, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_plot_lines(tg_tmp("b.png"), &p, &e), 0, "%s", e.msg);
    size_t an, bn;
    uint8_t *fa = tg_slurp(tg_tmp("a.png"), &an), *fb = tg_slurp(tg_tmp("b.png"), &bn);
    cr_assert(an == bn && !memcmp(fa, fb, an), "the same plot twice gives different files");
    b[29] += 1;
    cr_assert_eq(tg_plot_lines(tg_tmp("c.png"), &p, &e), 0, "%s", e.msg);
    uint8_t *fc = tg_slurp(tg_tmp("c.png"), &bn);
    cr_assert(an != bn || memcmp(fa, fc, an), "a changed point gives the same file");
    free(fa);
    free(fb);
    free(fc);
}

/* ================================================================ errors */

/* Expects tg_plot_lines(name, p) to fail with a message containing want,
 * leaving no file (and no temporary file) behind. */
static void expect_error(const tg_plot *p, const char *name, const char *want) {
    tg_err e;
    cr_assert_eq(tg_plot_lines(tg_tmp(name), p, &e), -1, "%s: no error", want);
    cr_assert(strstr(e.msg, want), "message \"%s\" does not say \"%s\"", e.msg, want);
    cr_assert(strstr(e.msg, name), "message \"%s\" does not name the file", e.msg);
    cr_assert(!exists(tg_tmp(name)), "%s: a file was written", want);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", tg_tmp(name), (int)getpid());
    cr_assert(!exists(tmp), "a temporary file was left");
}

Test(plot, bad_input_is_an_error_naming_the_field, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown) {
    double x[2] = {0, 1}, y[2] = {0, 1};
    tg_plot p = {.n_series = 0, .series = {{"a", 2, x, y}, {"b", 2, x, y}}};
    expect_error(&p, "n0.png", "n_series is 0");
    p.n_series = 9;
    expect_error(&p, "n9.png", "n_series is 9");
    p.n_series = 2;
    p.series[1].n = -1;
    expect_error(&p, "neg.png", "series[1] (\"b\").n is -1");
    p.series[1].n = 2;
    p.series[0].y = NULL;
    expect_error(&p, "null.png", "series[0] (\"a\").y is NULL");
    p.series[0].y = y;
    p.width = 100;
    expect_error(&p, "w.png", "width is 100");
    p.width = 0;
    p.height = 100000;
    expect_error(&p, "h.png", "height is 100000");
    p.height = 0;

    /* A missing directory: -1 naming the path, nothing created. */
    tg_err e;
    cr_assert_eq(tg_plot_lines(tg_tmp("no/such/dir/curves.png"), &p, &e), -1);
    cr_assert(strstr(e.msg, "no/such/dir/curves.png"), "message does not name the path: %s", e.msg);
    cr_assert(!exists(tg_tmp("no")));

    /* A failed call leaves the previous file as it was. */
    cr_assert_eq(tg_plot_lines(tg_tmp("keep.png"), &p, &e), 0, "%s", e.msg);
    size_t n0, n1;
    uint8_t *before = tg_slurp(tg_tmp("keep.png"), &n0);
    p.series[1].n = -5;
    cr_assert_eq(tg_plot_lines(tg_tmp("keep.png"), &p, &e), -1);
    uint8_t *after = tg_slurp(tg_tmp("keep.png"), &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "a failed call changed the file");
    free(before);
    free(after);
}
