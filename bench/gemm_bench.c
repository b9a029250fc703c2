/*
 * gemm_bench.c — float32 GEMM throughput on the shapes of the MNIST VAE, on
 * one thread and on all of them, next to the machine's peak and OpenBLAS.
 *
 * The VAE is 784 -> 400 -> 20 (mu, logvar) -> 400 -> 784 with batch B = 128.
 * A linear layer stores W as (out, in), so with x (B, in), dY (B, out):
 *   forward    y  = x @ W^T     M = B,   N = out, K = in,  transB
 *   backward   dX = dY @ W      M = B,   N = in,  K = out
 *              dW = dY^T @ x    M = out, N = in,  K = B,   transA
 * Each shape runs with the "auto" kernel at 1 thread and at T threads
 * (tg_threads_get(): TG_THREADS, else the core count); the best of several
 * repetitions is reported in GFLOP/s (2 M N K flops per call) and as a
 * percentage of the measured peak: a loop of independent FMAs (AVX-512 when
 * the CPU has it, else AVX2, else scalar) on 1 and on T threads (bench/peak.h).
 *
 * When /usr/bin/python3 (or $PYTHON) has numpy, bench/numpy_gemm.py times
 * the same products with numpy's BLAS (OpenBLAS here) on 1 and T threads,
 * under each OpenBLAS setting of bench/blas_settings.py (OPENBLAS_CORETYPE
 * unset, and the core type made for this CPU), and the fastest setting whose
 * products are right joins the table per shape, with its name. Run from the
 * repository root.
 *
 * Last, it measures the peak again and prints the floor of a VAE training
 * epoch: the epoch's product flops (epoch_flops(), --images training
 * images, default 60000) at the higher of the two peak measurements, on 1
 * and on T threads.
 *
 *   make build/gemm_bench && build/gemm_bench [--kernels] [--images N] [min_seconds_per_case]
 *   build/gemm_bench --peak      the peak line alone (scripts/bench.sh measures it again)
 *
 * --kernels adds a table of every kernel this CPU supports, on one thread.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L  /* clock_gettime, popen */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/peak.h"
#include "tensor/gemm.h"
#include "tensor/pool.h"
#include "tensor/tensor.h"

typedef struct {
    const char *name;
    bool transA, transB;
    int64_t M, N, K;
} bench_shape;

enum { B = 128 };

static const bench_shape shapes[] = {
    /* forward: y = x @ W^T */
    {"fwd enc1   x@W^T  ", false, true, B, 400, 784},
    {"fwd mu     h@W^T  ", false, true, B, 20, 400},
    {"fwd dec1   z@W^T  ", false, true, B, 400, 20},
    {"fwd dec2   h@W^T  ", false, true, B, 784, 400},
    /* backward, input gradients: dX = dY @ W */
    {"bwd enc1   dY@W   ", false, false, B, 784, 400},
    {"bwd mu     dY@W   ", false, false, B, 400, 20},
    {"bwd dec1   dY@W   ", false, false, B, 20, 400},
    {"bwd dec2   dY@W   ", false, false, B, 400, 784},
    /* backward, weight gradients: dW = dY^T @ x */
    {"bwd enc1   dY^T@x ", true, false, 400, 784, B},
    {"bwd mu     dY^T@x ", true, false, 20, 400, B},
    {"bwd dec1   dY^T@x ", true, false, 400, 20, B},
    {"bwd dec2   dY^T@x ", true, false, 784, 400, B},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

static double shape_flops(const bench_shape *s)
{
    return 2.0 * (double)s->M * (double)s->N * (double)s->K;
}

/* ------------------------------------------------------------------------ */
/* Our GEMM. */

static float *random_matrix(int64_t n, uint64_t *state)
{
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) { perror("malloc"); exit(1); }
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (float)((double)(*state >> 40) / (double)(1 << 24) - 0.5);
    }
    return p;
}

/* Best GFLOP/s over repetitions of one call, running for at least min_sec. */
static double bench_one(const bench_shape *s, double min_sec)
{
    uint64_t st = 12345;
    int64_t M = s->M, N = s->N, K = s->K;
    /* Stored shapes: A is (M, K) or (K, M); B is (K, N) or (N, K). */
    int64_t lda = s->transA ? M : K, ldb = s->transB ? K : N;
    float *A = random_matrix(M * K, &st), *Bm = random_matrix(K * N, &st);
    float *C = random_matrix(M * N, &st);

    for (int w = 0; w < 3; w++)  /* warm up caches, pack buffers, threads */
        tg_gemm_f32(s->transA, s->transB, M, N, K, 1.0f, A, lda, Bm, ldb, 0.0f, C, N);

    double best = 1e30, start = now_seconds();
    int reps = 0;
    while (reps < 10 || now_seconds() - start < min_sec) {
        double t0 = now_seconds();
        tg_gemm_f32(s->transA, s->transB, M, N, K, 1.0f, A, lda, Bm, ldb, 0.0f, C, N);
        double dt = now_seconds() - t0;
        if (dt < best) best = dt;
        reps++;
    }
    free(A); free(Bm); free(C);
    return shape_flops(s) / best * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* The floor: the products of one training epoch of the VAE at the FMA peak.
 * A step on a batch of b rows runs, per layer (in -> out), the forward
 * product x @ W^T and the weight gradient dY^T @ x, and the input gradient
 * dY @ W for every layer but fc1 (x needs no gradient: tg_affine's backward
 * skips it); fc_mu and fc_logvar are two separate (b, 400) x (400, 20)
 * products (models/vae.c). Each is 2 b in out flops, so an epoch costs
 * 2 in out flops per training image and product, the last short batch
 * counted as it is. */

typedef struct {
    int64_t in, out;
    int products;  /* forward, dW, and dX unless the input needs no gradient */
} vae_layer;

static const vae_layer vae_layers[] = {
    {784, 400, 2},  /* fc1: forward, dW (no dX) */
    {400, 20, 3},   /* fc_mu */
    {400, 20, 3},   /* fc_logvar */
    {20, 400, 3},   /* fc2 */
    {400, 784, 3},  /* fc3 */
};

static double epoch_flops(int64_t images)
{
    double f = 0;
    for (size_t i = 0; i < sizeof vae_layers / sizeof vae_layers[0]; i++)
        f += vae_layers[i].products * 2.0 * (double)vae_layers[i].in * (double)vae_layers[i].out;
    return f * (double)images;
}

/* ------------------------------------------------------------------------ */
/* OpenBLAS through numpy: bench/numpy_gemm.py tries each OpenBLAS setting
 * and prints a header line "# ...", a line "! ..." per setting left out, and
 * one line per shape, the fastest setting's:
 *   transA transB M N K gflops setting  # name
 * Prints the "!" lines (and the "#" one when header is set); fills
 * gf[NSHAPES] and set[NSHAPES] (0 and "-" where missing); returns false if
 * it did not run. */

typedef char setting_name[24];

static bool blas_gflops(const char *python, int threads, double min_sec, bool header, double *gf,
                        setting_name *set)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s bench/numpy_gemm.py --threads %d --min-seconds %g 2>/dev/null",
             python, threads, min_sec);
    FILE *f = popen(cmd, "r");
    if (f == NULL) return false;
    int found = 0, ta, tb;
    long long M, N, K;
    double g;
    setting_name name;
    for (int i = 0; i < NSHAPES; i++) gf[i] = 0, strcpy(set[i], "-");
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '!' || (header && line[0] == '#')) fputs(line + 2, stdout);
        if (sscanf(line, "%d %d %lld %lld %lld %lf %23s", &ta, &tb, &M, &N, &K, &g, name) == 7)
            for (int i = 0; i < NSHAPES; i++)
                if (shapes[i].transA == ta && shapes[i].transB == tb && shapes[i].M == M &&
                    shapes[i].N == N && shapes[i].K == K) {
                    gf[i] = g;
                    strcpy(set[i], name);
                    found++;
                }
    }
    return pclose(f) == 0 && found > 0;
}

/* ------------------------------------------------------------------------ */

/* Total flops / total time over the shapes (one VAE step runs each once). */
static double step_gflops(const double *gf)
{
    double flops = 0, secs = 0;
    for (int i = 0; i < NSHAPES; i++) {
        if (gf[i] <= 0) return 0;
        flops += shape_flops(&shapes[i]);
        secs += shape_flops(&shapes[i]) / (gf[i] * 1e9);
    }
    return flops / secs * 1e-9;
}

static void kernel_table(double min_sec)
{
    static const char *names[] = {"avx512", "avx2", "generic"};
    enum { NNAMES = sizeof names / sizeof names[0] };
    tg_threads_set(1);
    printf("\nEvery kernel, 1 thread, GFLOP/s\n%-19s %4s %4s %4s", "shape", "M", "N", "K");
    for (int k = 0; k < NNAMES; k++)
        if (tg_gemm_kernel_supported(names[k])) printf(" %8s", names[k]);
    printf("\n");
    double gf[NNAMES][NSHAPES];
    for (int i = 0; i < NSHAPES; i++) {
        const bench_shape *s = &shapes[i];
        printf("%-19s %4lld %4lld %4lld", s->name, (long long)s->M, (long long)s->N,
               (long long)s->K);
        for (int k = 0; k < NNAMES; k++) {
            if (!tg_gemm_kernel_supported(names[k])) continue;
            tg_gemm_force_kernel(names[k]);
            gf[k][i] = bench_one(s, min_sec);
            printf(" %8.1f", gf[k][i]);
            fflush(stdout);
        }
        printf("\n");
    }
    printf("%-19s %14s", "all shapes (step)", "");
    for (int k = 0; k < NNAMES; k++)
        if (tg_gemm_kernel_supported(names[k])) printf(" %8.1f", step_gflops(gf[k]));
    printf("\n");
    tg_gemm_force_kernel("auto");
}

int main(int argc, char **argv)
{
    double min_sec = 0.3;
    bool kernels = false, peak_only = false;
    long long images = 60000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kernels") == 0) kernels = true;
        else if (strcmp(argv[i], "--peak") == 0) peak_only = true;
        else if (strcmp(argv[i], "--images") == 0 && i + 1 < argc) images = atoll(argv[++i]);
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [--kernels] [--images N (default 60000)] [min_seconds_per_case (default 0.3)]\n"
                   "       %s --peak   (the peak line alone)\n", argv[0], argv[0]);
            return 0;
        } else min_sec = atof(argv[i]);
    }
    int T = tg_threads_get();

    fma_kind fk = best_fma();
    double peak1 = peak_gflops(fk, 1), peakT = T > 1 ? peak_gflops(fk, T) : peak1;
    printf("Peak (%s FMA loop): %.1f GFLOP/s on 1 thread", fk.isa, peak1);
    if (T > 1) printf(", %.1f on %d threads", peakT, T);
    printf("\n");
    if (peak_only) return 0;

    const char *python = getenv("PYTHON");
    if (python == NULL) python = "/usr/bin/python3";
    double blas1[NSHAPES], blasT[NSHAPES];
    setting_name set1[NSHAPES], setT[NSHAPES];
    bool have_blas = blas_gflops(python, 1, min_sec, true, blas1, set1);
    if (have_blas && T > 1) have_blas = blas_gflops(python, T, min_sec, false, blasT, setT);
    if (!have_blas)
        printf("(no OpenBLAS column: %s bench/numpy_gemm.py did not run; needs numpy)\n", python);

    double ours1[NSHAPES], oursT[NSHAPES];
    printf("\ntg_gemm_f32 (kernel %s), GFLOP/s, best of repetitions; %%pk = %% of peak\n",
           tg_gemm_kernel_name());
    printf("%-19s %4s %4s %4s | %6s %4s", "shape", "M", "N", "K", "1 thr", "%pk");
    if (T > 1) printf(" %4d thr %4s %5s", T, "%pk", "x");
    if (have_blas) {
        printf(" | %9s %-8s", "BLAS 1thr", "setting");
        if (T > 1) printf(" %6s%dthr %-8s", "BLAS ", T, "setting");
    }
    printf("\n");
    for (int i = 0; i < NSHAPES; i++) {
        const bench_shape *s = &shapes[i];
        printf("%-19s %4lld %4lld %4lld |", s->name, (long long)s->M, (long long)s->N,
               (long long)s->K);
        tg_threads_set(1);
        ours1[i] = bench_one(s, min_sec);
        printf(" %6.1f %3.0f%%", ours1[i], 100 * ours1[i] / peak1);
        if (T > 1) {
            tg_threads_set(T);
            oursT[i] = bench_one(s, min_sec);
            printf(" %8.1f %3.0f%% %5.2f", oursT[i], 100 * oursT[i] / peakT, oursT[i] / ours1[i]);
        }
        if (have_blas) {
            printf(" | %9.1f %-8s", blas1[i], set1[i]);
            if (T > 1) printf(" %10.1f %-8s", blasT[i], setT[i]);
        }
        printf("\n");
        fflush(stdout);
    }
    double s1 = step_gflops(ours1), sT = T > 1 ? step_gflops(oursT) : s1;
    printf("%-19s %14s | %6.1f %3.0f%%", "all shapes (step)", "", s1, 100 * s1 / peak1);
    if (T > 1) printf(" %8.1f %3.0f%% %5.2f", sT, 100 * sT / peakT, sT / s1);
    if (have_blas) {
        printf(" | %9.1f %-8s", step_gflops(blas1), "");
        if (T > 1) printf(" %10.1f", step_gflops(blasT));
    }
    printf("\n");

    /* The floor, at the peak measured again: on a shared machine one
     * measurement may have run beside other work, so the higher counts. */
    double again1 = peak_gflops(fk, 1), againT = T > 1 ? peak_gflops(fk, T) : again1;
    printf("Peak (%s FMA loop) again, after the table: %.1f GFLOP/s on 1 thread", fk.isa, again1);
    if (T > 1) printf(", %.1f on %d threads", againT, T);
    printf("; the floor takes the higher of the two measurements\n");
    if (again1 > peak1) peak1 = again1;
    if (againT > peakT) peakT = againT;
    double ef = epoch_flops(images);
    printf("an epoch's products: %.1f GFLOP (%lld images: the VAE's forward and backward products, batch %d; "
           "the last short batch counted as it is) -> floor %.3f s at the %d-thread peak (%.3f s at 1 thread)\n",
           ef * 1e-9, images, B, ef / (peakT * 1e9), T, ef / (peak1 * 1e9));

    if (kernels) kernel_table(min_sec);
    tg_threads_set(0);
    return 0;
}
