/*
 * pool.h — a small persistent thread pool for data-parallel loops.
 *
 *     // y[i] = 2 x[i], split over the threads in ranges of at least 4096
 *     typedef struct { const float *x; float *y; } twice_ctx;
 *     static void twice(void *ctx, int64_t begin, int64_t end) {
 *         twice_ctx *c = ctx;
 *         for (int64_t i = begin; i < end; i++) c->y[i] = 2.0f * c->x[i];
 *     }
 *     ...
 *     tg_parallel_for(n, 4096, twice, &(twice_ctx){x, y});
 *
 * Threads. An op may use tg_threads_get() threads (tensor/threads.h): the
 * caller plus tg_threads_get() - 1 workers. Workers start on the first call
 * that needs them (and restart when the count changes). Between calls a
 * worker spins for up to 100 us, so back-to-back jobs start within a
 * microsecond, then sleeps on a condition variable, so an idle pool costs no
 * CPU (with more threads than cores nobody spins). A steady-state call
 * allocates nothing.
 *
 * Determinism. How [0, n) is cut depends only on n, grain and the thread
 * count; which thread runs which range varies from call to call. fn must
 * write only its range's outputs. Code that wants results independent of
 * the thread count (GEMM does) computes each output the same way whichever
 * range it falls in.
 *
 * Re-entrancy. tg_parallel_for is meant to be called from one thread at a
 * time. A nested call (from inside fn) and a call made while another thread
 * is inside tg_parallel_for both run fn(ctx, 0, n) inline on the calling
 * thread: correct, just not parallel. fn must not call tg_threads_set or
 * tg_pool_shutdown.
 */
#ifndef TG_POOL_H
#define TG_POOL_H

#include <stdint.h>

#include "tensor/threads.h"

/* Calls fn(ctx, begin, end) over contiguous ranges that cover [0, n) exactly
 * once, in parallel, and returns when all are done. Ranges hold at least
 * grain items (grain < 1 counts as 1), so with n < 2 grain — or one thread,
 * or a nested call — fn(ctx, 0, n) runs inline on the caller with no thread
 * wake-up. Otherwise [0, n) is cut into min(threads, n / grain) ranges of
 * equal size (± 1) and the caller's thread runs ranges too. n <= 0 does
 * nothing. */
typedef void (*tg_range_fn)(void *ctx, int64_t begin, int64_t end);
void tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);

/* Stops and joins the workers (the next tg_parallel_for starts them again).
 * Registered with atexit, so threads exit cleanly and leak checkers see
 * nothing; tests may call it directly. */
void tg_pool_shutdown(void);

#endif
