/*
 * plot.c — line charts drawn into an RGB canvas and written as PNG
 * (plot.h): axes with nice ticks, a 5x7 bitmap font, thick lines, markers
 * and a legend, all from scratch.
 *
 * Coordinates are pixels, x to the right and y down, a pixel's centre at
 * its integer coordinates. The plot area's frame lines are the columns
 * left, right and the rows top, bottom; data maps linearly onto them, and
 * what a series draws is clipped to the frame widened by MARK_R (data never
 * lies outside the frame, but a marker on it shows whole); the frame is
 * drawn over the series. A line is every pixel
 * whose centre lies within LINE_R of the segment, so 2 or 3 pixels across.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/plot.h"
#include "io/png.h"

/* ------------------------------------------------------------------------ */
/* Font: printable ASCII 32..126, 7 rows of 5 bits each, the high bit the
 * leftmost pixel. Characters outside that range are drawn as '?'. */

enum { GLYPH_W = 5, GLYPH_H = 7, ADVANCE = 6 };

static const uint8_t font5x7[95][GLYPH_H] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, /* '!' */
    {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00}, /* '"' */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a}, /* '#' */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04}, /* '$' */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* '%' */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d}, /* '&' */
    {0x04, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00}, /* '\'' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* '(' */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ')' */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00}, /* '*' */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00}, /* '+' */
    {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08}, /* ',' */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00}, /* '-' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c}, /* '.' */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* '/' */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e}, /* '0' */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* '1' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f}, /* '2' */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e}, /* '3' */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02}, /* '4' */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e}, /* '5' */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e}, /* '6' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* '7' */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e}, /* '8' */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c}, /* '9' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00}, /* ':' */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08}, /* ';' */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, /* '<' */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00}, /* '=' */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* '>' */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* '?' */
    {0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e}, /* '@' */
    {0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11}, /* 'A' */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e}, /* 'B' */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e}, /* 'C' */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c}, /* 'D' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f}, /* 'E' */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10}, /* 'F' */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f}, /* 'G' */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11}, /* 'H' */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 'I' */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* 'J' */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* 'K' */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f}, /* 'L' */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11}, /* 'M' */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* 'N' */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* 'O' */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10}, /* 'P' */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d}, /* 'Q' */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11}, /* 'R' */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e}, /* 'S' */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* 'T' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e}, /* 'U' */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* 'V' */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a}, /* 'W' */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11}, /* 'X' */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04}, /* 'Y' */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f}, /* 'Z' */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e}, /* '[' */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00}, /* '\\' */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e}, /* ']' */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00}, /* '^' */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f}, /* '_' */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00}, /* '`' */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f}, /* 'a' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e}, /* 'b' */
    {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e}, /* 'c' */
    {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f}, /* 'd' */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e}, /* 'e' */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08}, /* 'f' */
    {0x00, 0x00, 0x0f, 0x11, 0x0f, 0x01, 0x0e}, /* 'g' */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, /* 'h' */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e}, /* 'i' */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c}, /* 'j' */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, /* 'k' */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e}, /* 'l' */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11}, /* 'm' */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, /* 'n' */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e}, /* 'o' */
    {0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10}, /* 'p' */
    {0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01}, /* 'q' */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, /* 'r' */
    {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e}, /* 's' */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06}, /* 't' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d}, /* 'u' */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04}, /* 'v' */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a}, /* 'w' */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11}, /* 'x' */
    {0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* 'y' */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f}, /* 'z' */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02}, /* '{' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* '|' */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08}, /* '}' */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}, /* '~' */
};

/* ------------------------------------------------------------------------ */
/* Canvas */

typedef struct {
    uint8_t r, g, b;
} rgb;

static const rgb WHITE = {255, 255, 255}, BLACK = {0, 0, 0}, LEGEND_EDGE = {204, 204, 204};

/* matplotlib's tab10, the first TG_PLOT_MAX_SERIES. */
static const rgb tab10[TG_PLOT_MAX_SERIES] = {
    {0x1f, 0x77, 0xb4}, {0xff, 0x7f, 0x0e}, {0x2c, 0xa0, 0x2c}, {0xd6, 0x27, 0x28},
    {0x94, 0x67, 0xbd}, {0x8c, 0x56, 0x4b}, {0xe3, 0x77, 0xc2}, {0x7f, 0x7f, 0x7f},
};

typedef struct {
    uint8_t *px;          /* (h, w, 3) */
    int w, h;
    int cx0, cy0, cx1, cy1;  /* clip rectangle, inclusive */
} canvas;

static void clip_all(canvas *c) {
    c->cx0 = 0, c->cy0 = 0, c->cx1 = c->w - 1, c->cy1 = c->h - 1;
}

static void put(canvas *c, int x, int y, rgb col) {
    if (x < c->cx0 || x > c->cx1 || y < c->cy0 || y > c->cy1) return;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = col.r, p[1] = col.g, p[2] = col.b;
}

static void fill_rect(canvas *c, int x0, int y0, int x1, int y1, rgb col) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(c, x, y, col);
}

/* The outline of the rectangle with corners (x0, y0), (x1, y1). */
static void rect(canvas *c, int x0, int y0, int x1, int y1, rgb col) {
    fill_rect(c, x0, y0, x1, y0, col);
    fill_rect(c, x0, y1, x1, y1, col);
    fill_rect(c, x0, y0, x0, y1, col);
    fill_rect(c, x1, y0, x1, y1, col);
}

enum { LINE_R2 = 1, MARK_R = 3 };  /* squared half-width of lines; marker radius; times the text scale */

/* Every pixel whose centre is within sqrt(r2) of the segment (ax, ay)-(bx, by). */
static void segment(canvas *c, double ax, double ay, double bx, double by, double r2, rgb col) {
    double r = sqrt(r2);
    int x0 = (int)floor(fmin(ax, bx) - r), x1 = (int)ceil(fmax(ax, bx) + r);
    int y0 = (int)floor(fmin(ay, by) - r), y1 = (int)ceil(fmax(ay, by) + r);
    if (x0 < c->cx0) x0 = c->cx0;
    if (y0 < c->cy0) y0 = c->cy0;
    if (x1 > c->cx1) x1 = c->cx1;
    if (y1 > c->cy1) y1 = c->cy1;
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = y0; y <= y1; y++) {
        for (int x = x0; x <= x1; x++) {
            double t = len2 > 0 ? ((x - ax) * dx + (y - ay) * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = x - (ax + t * dx), ey = y - (ay + t * dy);
            if (ex * ex + ey * ey <= r2) put(c, x, y, col);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Text */

static int text_width(const char *s, int scale) {
    size_t n = strlen(s);
    return n ? (int)n * ADVANCE * scale - scale : 0;
}

/* Draws s with its top-left corner at (x, y), each font pixel a scale x
 * scale block; if up, turned a quarter left (reading upwards, the tops of
 * the letters to the left) with its bottom-left corner at (x, y). */
static void text(canvas *c, int x, int y, const char *s, int scale, bool up, rgb col) {
    for (int i = 0; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        const uint8_t *g = font5x7[(ch >= 32 && ch < 127 ? ch : '?') - 32];
        for (int gy = 0; gy < GLYPH_H; gy++) {
            for (int gx = 0; gx < GLYPH_W; gx++) {
                if (!(g[gy] >> (GLYPH_W - 1 - gx) & 1)) continue;
                int u = (i * ADVANCE + gx) * scale, v = gy * scale;   /* along, down the text */
                for (int a = 0; a < scale; a++)
                    for (int b = 0; b < scale; b++) {
                        if (up) put(c, x + v + b, y - u - a, col);
                        else put(c, x + u + a, y + v + b, col);
                    }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Ticks */

static const double COORD_MAX = 1e300;

int tg_plot_ticks(double lo, double hi, int max_n, bool integer, double *ticks) {
    TG_CHECK(isfinite(lo) && isfinite(hi) && lo <= hi && fabs(lo) <= COORD_MAX && fabs(hi) <= COORD_MAX,
             "tg_plot_ticks: need finite lo <= hi within +-1e300, got [%g, %g]", lo, hi);
    TG_CHECK(max_n >= 3 && max_n <= TG_PLOT_MAX_TICKS, "tg_plot_ticks: max_n is %d; need 3 to %d", max_n,
             TG_PLOT_MAX_TICKS);
    /* A range too narrow to tell from rounding is a constant. */
    if (hi - lo <= 1e-9 * fmax(fabs(lo), fabs(hi))) {
        double mid = lo / 2 + hi / 2, d = integer || mid == 0 ? 1 : fabs(mid) / 10;
        lo = mid - d, hi = mid + d;
    }
    /* Steps grow until the ticks fit; 3 always do (-step, 0, step around 0). */
    static const double mant[3] = {1, 2, 5};
    double raw = hi / (max_n - 1) - lo / (max_n - 1);
    int j = (int)floor(log10(raw)), m = 0;
    if (integer && j < 0) j = 0;
    for (;;) {
        double step = mant[m] * pow(10, j);
        /* Tolerate rounding: lo = 0.3 is a multiple of 0.1. */
        double k0 = floor(lo / step + 1e-9), k1 = ceil(hi / step - 1e-9);
        if (k1 - k0 + 1 <= max_n) {
            int n = (int)(k1 - k0) + 1;
            for (int i = 0; i < n; i++) ticks[i] = (k0 + i) * step;
            if (n == 1) ticks[n++] = (k0 + 1) * step;   /* rounding made lo and hi one multiple */
            return n;
        }
        if (++m == 3) m = 0, j++;
    }
}

/* Labels for ticks t[0..n) (n >= 2), as matplotlib would write them: fixed
 * point with as many decimals as the step needs, or scientific notation
 * for values of 1e6 and up or small ones below 1e-3. Each lab[i] holds 32. */
static void tick_labels(const double *t, int n, char (*lab)[32]) {
    double step = t[1] - t[0], big = fmax(fabs(t[0]), fabs(t[n - 1]));
    bool sci = big >= 1e6 || big < 1e-3;
    int step_exp = (int)floor(log10(step) + 1e-9);
    for (int i = 0; i < n; i++) {
        double v = fabs(t[i]) < step * 1e-6 ? 0 : t[i];
        if (v == 0) {
            strcpy(lab[i], "0");
        } else if (sci) {
            int p = (int)floor(log10(big) + 1e-9) - step_exp;
            snprintf(lab[i], 32, "%.*e", p < 0 ? 0 : p > 6 ? 6 : p, v);
        } else {
            snprintf(lab[i], 32, "%.*f", step_exp >= 0 ? 0 : -step_exp, v);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The chart */

static bool usable(double v) { return isfinite(v) && fabs(v) <= COORD_MAX; }

static bool point_ok(const tg_plot_series *s, int64_t i) { return usable(s->x[i]) && usable(s->y[i]); }

/* Checks p; on a problem sets the message (naming the field) and returns -1. */
static int check(const char *path, const tg_plot *p, tg_err *e) {
    if (p->n_series < 1 || p->n_series > TG_PLOT_MAX_SERIES) {
        tg_err_set(e, "%s: n_series is %d; need 1 to %d", path, p->n_series, TG_PLOT_MAX_SERIES);
        return -1;
    }
    if (p->width != 0 && (p->width < TG_PLOT_MIN_SIZE || p->width > TG_PLOT_MAX_SIZE)) {
        tg_err_set(e, "%s: width is %lld; need 0 (default 640) or %d to %d", path, (long long)p->width,
                   TG_PLOT_MIN_SIZE, TG_PLOT_MAX_SIZE);
        return -1;
    }
    if (p->height != 0 && (p->height < TG_PLOT_MIN_SIZE || p->height > TG_PLOT_MAX_SIZE)) {
        tg_err_set(e, "%s: height is %lld; need 0 (default 400) or %d to %d", path, (long long)p->height,
                   TG_PLOT_MIN_SIZE, TG_PLOT_MAX_SIZE);
        return -1;
    }
    for (int k = 0; k < p->n_series; k++) {
        const tg_plot_series *s = &p->series[k];
        const char *name = s->name ? s->name : "";
        if (s->n < 0) {
            tg_err_set(e, "%s: series[%d] (\"%.200s\").n is %lld; need >= 0", path, k, name, (long long)s->n);
            return -1;
        }
        if (s->n > 0 && (!s->x || !s->y)) {
            tg_err_set(e, "%s: series[%d] (\"%.200s\").%s is NULL with n = %lld", path, k, name, s->x ? "y" : "x",
                       (long long)s->n);
            return -1;
        }
    }
    return 0;
}

/* An axis: its ticks, whose first and last are its ends, and their labels. */
typedef struct {
    int n;
    double t[TG_PLOT_MAX_TICKS];
    char lab[TG_PLOT_MAX_TICKS][32];
    int lab_w;  /* widest label, pixels */
} axis;

/* Chooses ticks for data in [lo, hi] (lo > hi: no data), the most up to
 * max_n whose labels fit in `room` pixels along the axis (x) — or, when
 * room is 0, just max_n (y). */
static void make_axis(axis *a, double lo, double hi, int max_n, bool integer, int scale, int room) {
    if (lo > hi) lo = 0, hi = 1;
    for (int m = max_n; m >= 3; m--) {
        a->n = tg_plot_ticks(lo, hi, m, integer, a->t);
        tick_labels(a->t, a->n, a->lab);
        a->lab_w = 0;
        for (int i = 0; i < a->n; i++) {
            int w = text_width(a->lab[i], scale);
            if (w > a->lab_w) a->lab_w = w;
        }
        if (room == 0 || a->n * (a->lab_w + 12 * scale) <= room) return;
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

int tg_plot_lines(const char *path, const tg_plot *p, tg_err *e) {
    TG_CHECK(path && p, "tg_plot_lines: NULL %s", path ? "plot" : "path");
    if (check(path, p, e)) return -1;
    canvas c = {.w = p->width ? (int)p->width : 640, .h = p->height ? (int)p->height : 400};
    clip_all(&c);
    c.px = malloc((size_t)c.w * (size_t)c.h * 3);
    if (!c.px) {
        tg_err_set(e, "%s: out of memory for a %dx%d plot", path, c.w, c.h);
        return -1;
    }
    memset(c.px, 255, (size_t)c.w * (size_t)c.h * 3);

    /* Data ranges and how many points each series shows. */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int64_t shown[TG_PLOT_MAX_SERIES] = {0};
    for (int k = 0; k < p->n_series; k++) {
        const tg_plot_series *s = &p->series[k];
        for (int64_t i = 0; i < s->n; i++) {
            if (!point_ok(s, i)) continue;
            shown[k]++;
            xlo = fmin(xlo, s->x[i]), xhi = fmax(xhi, s->x[i]);
            ylo = fmin(ylo, s->y[i]), yhi = fmax(yhi, s->y[i]);
        }
    }

    /* Layout: sizes of text first, then the frame. */
    const int s = c.w >= 1000 && c.h >= 700 ? 2 : 1;   /* text scale; the title is twice as big */
    const int TICK = 5 * s, GAP = 4 * s, PAD = 10, TH = GLYPH_H * s;
    const char *title = p->title && *p->title ? p->title : NULL;
    const char *xl = p->x_label && *p->x_label ? p->x_label : NULL, *yl = p->y_label && *p->y_label ? p->y_label : NULL;
    int top = title ? PAD + 2 * TH + 10 : PAD + TH;
    int bottom = c.h - 1 - (TICK + GAP + TH + (xl ? 8 + TH : 0) + PAD);
    axis ya, xa;
    make_axis(&ya, ylo, yhi, clampi((bottom - top) / (40 * s) + 1, 3, 10), false, s, 0);
    int left = PAD + (yl ? TH + 10 : 0) + ya.lab_w + GAP + TICK;
    make_axis(&xa, xlo, xhi, 10, p->x_integer, s, c.w - left - 16);
    int right = c.w - 1 - (xa.lab_w / 2 + 8 > 16 ? xa.lab_w / 2 + 8 : 16);
    if (right - left < 20 || bottom - top < 20) {
        free(c.px);
        tg_err_set(e, "%s: a %dx%d plot leaves no room for the plot area; make it larger", path, c.w, c.h);
        return -1;
    }
    const double x0 = xa.t[0], x1 = xa.t[xa.n - 1], y0 = ya.t[0], y1 = ya.t[ya.n - 1];
#define PX(v) (left + ((v) - x0) / (x1 - x0) * (right - left))
#define PY(v) (bottom - ((v) - y0) / (y1 - y0) * (bottom - top))

    /* The series, clipped to the frame widened by a marker's radius so
     * that points on the frame show whole; then the frame over them, as
     * matplotlib draws its spines over lines. */
    const int lr2 = LINE_R2 * s * s, mr = MARK_R * s;   /* both grow with the text */
    c.cx0 = left - mr, c.cy0 = top - mr, c.cx1 = right + mr, c.cy1 = bottom + mr;
    for (int k = 0; k < p->n_series; k++) {
        const tg_plot_series *sr = &p->series[k];
        bool prev = false;
        double px = 0, py = 0;
        for (int64_t i = 0; i < sr->n; i++) {
            if (!point_ok(sr, i)) {
                prev = false;
                continue;
            }
            double qx = PX(sr->x[i]), qy = PY(sr->y[i]);
            /* A lone point still shows as a dot. */
            segment(&c, prev ? px : qx, prev ? py : qy, qx, qy, lr2, tab10[k]);
            px = qx, py = qy, prev = true;
        }
        if (shown[k] <= TG_PLOT_MARK_MAX)
            for (int64_t i = 0; i < sr->n; i++)
                if (point_ok(sr, i))
                    segment(&c, PX(sr->x[i]), PY(sr->y[i]), PX(sr->x[i]), PY(sr->y[i]), mr * mr, tab10[k]);
    }
    clip_all(&c);
    rect(&c, left, top, right, bottom, BLACK);

    /* Ticks and their labels. */
    for (int i = 0; i < ya.n; i++) {
        int y = (int)lround(PY(ya.t[i]));
        fill_rect(&c, left - TICK, y, left - 1, y, BLACK);
        text(&c, left - TICK - GAP - text_width(ya.lab[i], s), y - TH / 2, ya.lab[i], s, false, BLACK);
    }
    for (int i = 0; i < xa.n; i++) {
        int x = (int)lround(PX(xa.t[i]));
        fill_rect(&c, x, bottom + 1, x, bottom + TICK, BLACK);
        text(&c, x - text_width(xa.lab[i], s) / 2, bottom + TICK + GAP, xa.lab[i], s, false, BLACK);
    }
#undef PX
#undef PY

    /* Title and axis labels, centred on the plot area. */
    if (title) text(&c, (left + right) / 2 - text_width(title, 2 * s) / 2, PAD, title, 2 * s, false, BLACK);
    if (xl) text(&c, (left + right) / 2 - text_width(xl, s) / 2, bottom + TICK + GAP + TH + 8, xl, s, false, BLACK);
    if (yl) text(&c, PAD, (top + bottom) / 2 + text_width(yl, s) / 2, yl, s, true, BLACK);

    /* The legend: a line sample (with a marker if the series has them) and
     * the name for each named series, in the inside corner covering the
     * fewest drawn pixels (upper right first on ties, as matplotlib's
     * "best"). */
    int named = 0, name_w = 0;
    for (int k = 0; k < p->n_series; k++) {
        const char *nm = p->series[k].name;
        if (!nm || !*nm) continue;
        named++;
        if (text_width(nm, s) > name_w) name_w = text_width(nm, s);
    }
    if (named) {
        const int SAMPLE = 24 * s, ROW = TH + 7 * s, INSET = 8;
        int bw = 6 + SAMPLE + 6 + name_w + 6, bh = 5 + named * ROW;
        int corner[4][2] = {{right - INSET - bw, top + INSET},       /* upper right */
                            {left + INSET, top + INSET},             /* upper left */
                            {left + INSET, bottom - INSET - bh},     /* lower left */
                            {right - INSET - bw, bottom - INSET - bh}};  /* lower right */
        int best = 0;
        int64_t best_ink = INT64_MAX;
        for (int q = 0; q < 4; q++) {
            int64_t ink = 0;
            for (int y = corner[q][1]; y < corner[q][1] + bh; y++)
                for (int x = corner[q][0]; x < corner[q][0] + bw; x++) {
                    if (x < 0 || y < 0 || x >= c.w || y >= c.h) continue;
                    const uint8_t *px = c.px + ((size_t)y * (size_t)c.w + (size_t)x) * 3;
                    ink += px[0] != 255 || px[1] != 255 || px[2] != 255;
                }
            if (ink < best_ink) best_ink = ink, best = q;
        }
        int bx = corner[best][0], by = corner[best][1];
        fill_rect(&c, bx, by, bx + bw - 1, by + bh - 1, WHITE);
        rect(&c, bx, by, bx + bw - 1, by + bh - 1, LEGEND_EDGE);
        int row = 0;
        for (int k = 0; k < p->n_series; k++) {
            const char *nm = p->series[k].name;
            if (!nm || !*nm) continue;
            int ty = by + 5 + row * ROW + 1, ly = ty + TH / 2, lx = bx + 6;
            segment(&c, lx, ly, lx + SAMPLE, ly, lr2, tab10[k]);
            if (shown[k] <= TG_PLOT_MARK_MAX && shown[k] > 0)
                segment(&c, lx + SAMPLE / 2, ly, lx + SAMPLE / 2, ly, mr * mr, tab10[k]);
            text(&c, lx + SAMPLE + 6, ty, nm, s, false, BLACK);
            row++;
        }
    }

    int rc = tg_png_write_rgb(path, c.px, c.w, c.h, e);
    free(c.px);
    return rc;
}
