/*
 * threads.h — how many threads the library's kernels use.
 *
 *     tg_threads_set(2);   // e.g. from --threads 2; results do not depend on it
 *
 * GEMM tiles, Adam and the large elementwise loops run on a small pool of
 * threads (tensor/pool.c, internal to the tensor layer). Every result is
 * bit-identical whatever the count: each output element is computed by one
 * thread in a fixed order, and sums over whole tensors use fixed chunks.
 */
#ifndef TG_THREADS_H
#define TG_THREADS_H

/* Number of threads ops may use (>= 1): the last tg_threads_set(n), else the
 * TG_THREADS environment variable (an integer in [1, TG_MAX_THREADS]; other
 * values are ignored with a one-line warning on stderr), else the available
 * cores (sysconf(_SC_NPROCESSORS_ONLN)). */
int tg_threads_get(void);

/* Sets the thread count to n, 1 <= n <= TG_MAX_THREADS (aborts otherwise).
 * n = 0 drops the setting: the next tg_threads_get reads TG_THREADS and the
 * core count again. Takes effect at the next parallel loop
 * (tg_parallel_for, tensor/pool.h); not to be called while another thread
 * is inside one. */
void tg_threads_set(int n);

#define TG_MAX_THREADS 256

#endif
