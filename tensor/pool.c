/*
 * pool.c — the thread pool behind tg_parallel_for (see pool.h).
 *
 * One job at a time. The caller publishes a job (fn, ctx, n, nranges) under
 * the mutex and bumps the generation `job_gen`; workers notice it (spinning
 * briefly, else woken from `wake_cv`), copy the job under the mutex, and
 * claim ranges from `claim` until none are left. The caller claims ranges
 * too, so a worker that wakes late may find nothing to do: the job never
 * waits for a thread that is slow to start. Each finished range decrements
 * `remaining`; the caller returns when it reaches 0.
 *
 * `claim` packs (generation, next range index) into one 64-bit word and is
 * advanced by compare-and-swap, so a worker still holding an old job can
 * never claim a range of a newer one: only ranges of the current job are
 * run, and they all finish before the caller returns (so ctx, on the
 * caller's stack, is not touched after it returns).
 *
 * Nothing here allocates after the workers are started: the job lives in
 * static storage, the ranges are computed from (n, nranges, index).
 */
#include "tensor/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tensor/tensor.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle thread spins on the job counter before it sleeps: long
 * enough to bridge the gap between two GEMMs of a training step, so a new
 * job is picked up within a microsecond instead of after a futex wake-up,
 * short enough that an idle pool burns no CPU. Measured on a 2-core KVM
 * guest (Zen 4): a job of 2 x 100 us ranges finishes 0.3 us after the ideal
 * when the worker spins, 20-45 us after when it must be woken. With more
 * threads than cores spinning only steals time from the threads working, so
 * then nobody spins. */
enum { SPIN_NS = 100 * 1000 };

/* ------------------------------------------------------------------------ */
/* Thread count. */

static _Atomic int threads_set;      /* tg_threads_set; 0: not set */
static _Atomic int threads_default;  /* TG_THREADS or cores; 0: not read yet */

static int core_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > TG_MAX_THREADS ? TG_MAX_THREADS : (int)n;
}

static int default_threads(void)
{
    const char *s = getenv("TG_THREADS");
    if (s == NULL || *s == '\0') return core_count();
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno == 0 && end != s && *end == '\0' && v >= 1 && v <= TG_MAX_THREADS) return (int)v;
    int cores = core_count();
    fprintf(stderr, "tapegrad: ignoring TG_THREADS=\"%s\" (want an integer from 1 to %d); "
            "using %d threads, one per core\n", s, TG_MAX_THREADS, cores);
    return cores;
}

int tg_threads_get(void)
{
    int n = atomic_load_explicit(&threads_set, memory_order_relaxed);
    if (n > 0) return n;
    n = atomic_load_explicit(&threads_default, memory_order_relaxed);
    if (n > 0) return n;
    n = default_threads();
    atomic_store_explicit(&threads_default, n, memory_order_relaxed);
    return n;
}

void tg_threads_set(int n)
{
    TG_CHECK(n >= 0 && n <= TG_MAX_THREADS,
             "tg_threads_set: n=%d is outside [1, %d] (0 restores the default)", n,
             TG_MAX_THREADS);
    atomic_store_explicit(&threads_set, n, memory_order_relaxed);
    if (n == 0) atomic_store_explicit(&threads_default, 0, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* Pool state. Fields of `pool` are guarded by `mu`; the atomics are read
 * without it. */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;  /* new job or stop */
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;  /* remaining hit 0 */

static struct {
    pthread_t *threads;  /* (nworkers) */
    int nworkers;        /* running; fewer than target if some failed to start */
    int target;          /* workers asked for when last started; 0: none */
    int sleepers;        /* workers blocked on wake_cv */
    bool stop;           /* workers must exit */
    bool caller_waits;   /* the caller is blocked on done_cv */
    bool registered;     /* atexit / pthread_atfork done */
    /* The current job. */
    tg_range_fn fn;
    void *ctx;
    int64_t n;
    int nranges;
} pool;

static _Atomic uint64_t job_gen;  /* bumped for every job and for stop */
static _Atomic uint64_t claim;    /* (job_gen & 0xffffffff) << 32 | next range */
static _Atomic int remaining;     /* ranges of the current job not finished */
static atomic_flag busy = ATOMIC_FLAG_INIT;  /* a parallel job is running */
static _Thread_local bool in_pool;           /* on a worker, or caller inside fn */

/* Start of range r when [0, n) is cut into R ranges of equal size (± 1). */
static int64_t range_begin(int64_t n, int64_t R, int64_t r)
{
    int64_t q = n / R, rem = n % R;
    return r * q + (r < rem ? r : rem);
}

static uint64_t claim_word(uint64_t gen, int r)
{
    return (gen & 0xffffffffu) << 32 | (uint32_t)r;
}

/* Claims the next range of job `gen`; -1 when none is left (or the job is
 * no longer current). */
static int claim_range(uint64_t gen, int nranges)
{
    uint64_t c = atomic_load_explicit(&claim, memory_order_relaxed);
    for (;;) {
        int r = (int)(uint32_t)c;
        if (c >> 32 != (gen & 0xffffffffu) || r >= nranges) return -1;
        if (atomic_compare_exchange_weak_explicit(&claim, &c, c + 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return r;
    }
}

/* Runs ranges of job `gen` until none is left. */
static void run_ranges(uint64_t gen, tg_range_fn fn, void *ctx, int64_t n, int nranges)
{
    int r;
    while ((r = claim_range(gen, nranges)) >= 0) {
        fn(ctx, range_begin(n, nranges, r), range_begin(n, nranges, r + 1));
        if (atomic_fetch_sub_explicit(&remaining, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&mu);
            if (pool.caller_waits) pthread_cond_signal(&done_cv);
            pthread_mutex_unlock(&mu);
        }
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Atomic int64_t spin_ns;  /* SPIN_NS, or 0 with more threads than cores */

/* Spins up to spin_ns until done() holds; returns whether it does. */
static bool spin_until(bool (*done)(uint64_t), uint64_t arg)
{
    if (done(arg)) return true;
    int64_t ns = atomic_load_explicit(&spin_ns, memory_order_relaxed);
    if (ns == 0) return false;
    uint64_t deadline = now_ns() + (uint64_t)ns;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            cpu_relax();
            if (done(arg)) return true;
        }
        if (now_ns() > deadline) return false;
    }
}

static bool new_job(uint64_t seen)
{
    return atomic_load_explicit(&job_gen, memory_order_acquire) != seen;
}

static bool job_done(uint64_t unused)
{
    (void)unused;
    return atomic_load_explicit(&remaining, memory_order_acquire) == 0;
}

static void *worker_main(void *arg)
{
    uint64_t seen = (uint64_t)(uintptr_t)arg;  /* job_gen when started */
    in_pool = true;
    for (;;) {
        spin_until(new_job, seen);
        pthread_mutex_lock(&mu);
        while (!pool.stop && atomic_load_explicit(&job_gen, memory_order_relaxed) == seen) {
            pool.sleepers++;
            pthread_cond_wait(&wake_cv, &mu);
            pool.sleepers--;
        }
        if (pool.stop) break;
        seen = atomic_load_explicit(&job_gen, memory_order_relaxed);
        tg_range_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int64_t n = pool.n;
        int nranges = pool.nranges;
        pthread_mutex_unlock(&mu);
        run_ranges(seen, fn, ctx, n, nranges);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Starting and stopping workers. */

static void stop_workers(void)
{
    pthread_mutex_lock(&mu);
    int nw = pool.nworkers;
    pthread_t *threads = pool.threads;
    pool.stop = true;
    atomic_fetch_add_explicit(&job_gen, 1, memory_order_release);  /* ends spins */
    pthread_cond_broadcast(&wake_cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nw; i++) pthread_join(threads[i], NULL);
    pthread_mutex_lock(&mu);
    free(pool.threads);
    pool.threads = NULL;
    pool.nworkers = pool.target = 0;
    pool.stop = false;
    pthread_mutex_unlock(&mu);
}

void tg_pool_shutdown(void)
{
    /* From a worker (exit() inside fn) joining would deadlock; and while a
     * job runs on another thread, the workers are in use. */
    if (in_pool) return;
    if (atomic_flag_test_and_set(&busy)) return;
    if (pool.target > 0) stop_workers();
    atomic_flag_clear(&busy);
}

/* After fork() only the forking thread exists in the child: forget the
 * workers (their memory is the parent's) and start afresh. */
static void atfork_prepare(void) { pthread_mutex_lock(&mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&mu); }
static void atfork_child(void)
{
    free(pool.threads);
    pool.threads = NULL;
    pool.nworkers = pool.target = pool.sleepers = 0;
    pool.stop = pool.caller_waits = false;
    pthread_cond_init(&wake_cv, NULL);
    pthread_cond_init(&done_cv, NULL);
    pthread_mutex_unlock(&mu);
}

/* Makes nw workers run (called with `busy` held). */
static void start_workers(int nw)
{
    if (pool.target > 0) stop_workers();
    if (!pool.registered) {
        pool.registered = true;
        atexit(tg_pool_shutdown);
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    }
    atomic_store_explicit(&spin_ns, nw + 1 <= core_count() ? SPIN_NS : 0, memory_order_relaxed);
    pthread_t *threads = malloc((size_t)nw * sizeof *threads);
    TG_CHECK(threads != NULL, "tg_parallel_for: cannot allocate %d thread handles", nw);
    uint64_t gen = atomic_load_explicit(&job_gen, memory_order_relaxed);
    int started = 0;
    for (; started < nw; started++) {
        int err = pthread_create(&threads[started], NULL, worker_main, (void *)(uintptr_t)gen);
        if (err != 0) {
            /* Fewer workers still give correct results: the caller claims
             * whatever they do not. */
            fprintf(stderr, "tapegrad: started %d of %d worker threads (%s)\n", started, nw,
                    strerror(err));
            break;
        }
    }
    pthread_mutex_lock(&mu);
    pool.threads = threads;
    pool.nworkers = started;
    pool.target = nw;
    pthread_mutex_unlock(&mu);
}

/* ------------------------------------------------------------------------ */

void tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = tg_threads_get();
    int64_t nranges = n / grain < threads ? n / grain : threads;
    if (nranges <= 1 || in_pool || atomic_flag_test_and_set(&busy)) {
        fn(ctx, 0, n);
        return;
    }
    /* Holding `busy`, this is the only thread changing the pool. */
    if (pool.target != threads - 1) start_workers(threads - 1);

    pthread_mutex_lock(&mu);
    uint64_t gen = atomic_load_explicit(&job_gen, memory_order_relaxed) + 1;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.nranges = (int)nranges;
    atomic_store_explicit(&remaining, (int)nranges, memory_order_relaxed);
    atomic_store_explicit(&claim, claim_word(gen, 0), memory_order_relaxed);
    atomic_store_explicit(&job_gen, gen, memory_order_release);
    if (pool.sleepers > 0) pthread_cond_broadcast(&wake_cv);
    pthread_mutex_unlock(&mu);

    in_pool = true;
    run_ranges(gen, fn, ctx, n, (int)nranges);
    in_pool = false;

    if (!spin_until(job_done, 0)) {
        pthread_mutex_lock(&mu);
        pool.caller_waits = true;
        while (atomic_load_explicit(&remaining, memory_order_acquire) != 0)
            pthread_cond_wait(&done_cv, &mu);
        pool.caller_waits = false;
        pthread_mutex_unlock(&mu);
    }
    atomic_flag_clear(&busy);
}
