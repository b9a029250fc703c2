/*
 * plot.h — line charts as PNG files (plot.c): loss curves from a training
 * run, drawn from scratch with a built-in 5x7 bitmap font.
 *
 *     // epochs (n), and two curves over them (n)
 *     tg_plot p = {.title = "seed_vae", .x_label = "epoch", .y_label = "loss (nats)", .x_integer = true,
 *                  .n_series = 2,
 *                  .series = {{"train_loss", n, epochs, train}, {"test_loss", n, epochs, test}}};
 *     tg_err err;
 *     if (tg_plot_lines("runs/vae/curves.png", &p, &err) != 0) {
 *         fprintf(stderr, "%s\n", err.msg);   // 'runs/vae/curves.png: series[1] ("test_loss").n is -1; need >= 0'
 *         return 1;
 *     }
 *
 * The picture follows matplotlib's defaults: white background, a black
 * frame around the plot area, ticks pointing out on the left and bottom
 * with their values, the title above, the axis labels below and (turned a
 * quarter left) beside, and a legend box of the named series in whichever
 * inside corner covers the fewest drawn pixels. Series i is drawn in the
 * i-th tab10 colour:
 *   #1f77b4 blue, #ff7f0e orange, #2ca02c green, #d62728 red,
 *   #9467bd purple, #8c564b brown, #e377c2 pink, #7f7f7f gray,
 * as a line 2 to 3 px wide joining its points in the order given; points
 * are marked with discs of radius 3 when a series has at most
 * TG_PLOT_MARK_MAX finite points, so a single point still shows. A point
 * with a non-finite x or y (or |x|, |y| > 1e300) is skipped and breaks the
 * line there, like matplotlib's NaN.
 *
 * Axes: each axis spans its finite data widened to the enclosing "nice"
 * ticks of tg_plot_ticks (so [0.13, 9.7] is drawn from 0 to 10 with ticks
 * 0, 2, ..., 10); a value v lands at the fraction (v - lo) / (hi - lo) of
 * the way from the left (bottom) frame line to the right (top) one. A
 * constant axis is widened around its value; an axis with no finite data at
 * all spans [0, 1]. The y axis is linear: losses of a run stay within a
 * decade of each other after the first epoch.
 *
 * Images of at least 1000 x 700 draw text, lines and markers twice as big.
 *
 * The PNG is 8-bit RGB (io/png.h), a deterministic function of the input,
 * written atomically (io/file.h). Bad input returns -1 with a message
 * naming the path and the field: n_series outside 1..TG_PLOT_MAX_SERIES, a
 * series with n < 0 or a NULL x or y for n > 0, a width or height outside
 * TG_PLOT_MIN_SIZE..TG_PLOT_MAX_SIZE (0 picks the default 640 x 400); a
 * write error (say, a missing directory) returns -1 naming the path, with
 * nothing left behind. A NULL path or plot is a programmer error and aborts.
 */
#ifndef TG_PLOT_H
#define TG_PLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "io/file.h"

enum {
    TG_PLOT_MAX_SERIES = 8,    /* the first eight tab10 colours */
    TG_PLOT_MARK_MAX = 30,     /* series with at most this many finite points get markers */
    TG_PLOT_MIN_SIZE = 160,    /* pixels, either side */
    TG_PLOT_MAX_SIZE = 4096,
    TG_PLOT_MAX_TICKS = 16,    /* tg_plot_ticks writes at most this many */
};

/* One curve: points (x[i], y[i]) for i < n. */
typedef struct {
    const char *name;     /* legend entry; NULL or "" for none */
    int64_t n;            /* points */
    const double *x, *y;  /* (n) each */
} tg_plot_series;

/* A line chart. Zero-initialise and fill in what you need. */
typedef struct {
    int64_t width, height;              /* pixels; 0 for 640 x 400 */
    const char *title;                  /* NULL for none, and the same for the labels */
    const char *x_label, *y_label;
    bool x_integer;                     /* x values are counts (epochs): ticks at whole numbers only */
    int n_series;                       /* 1..TG_PLOT_MAX_SERIES */
    tg_plot_series series[TG_PLOT_MAX_SERIES];
} tg_plot;

/* Draws p and writes it as an RGB PNG at path (see above). */
int tg_plot_lines(const char *path, const tg_plot *p, tg_err *e);

/* Nice ticks covering [lo, hi]: the multiples k * step, k integer, from the
 * largest <= lo to the smallest >= hi, with step = m * 10^j, m in {1, 2, 5},
 * the smallest such step (and >= 1 if integer) giving at most max_n ticks.
 * lo == hi is first widened to lo - d, hi + d, with d = 1 if integer or
 * lo == 0, else |lo| / 10. Writes the ticks in increasing order to
 * ticks[0..count) and returns count, 2 <= count <= max_n. Needs finite
 * lo <= hi with |lo|, |hi| <= 1e300 and 3 <= max_n <= TG_PLOT_MAX_TICKS
 * (a range around 0 needs 3).
 *   tg_plot_ticks(0.13, 9.7, 6, false, t) == 6:  0, 2, 4, 6, 8, 10
 *   tg_plot_ticks(1, 1, 8, true, t) == 3:        0, 1, 2 */
int tg_plot_ticks(double lo, double hi, int max_n, bool integer, double *ticks);

#endif
