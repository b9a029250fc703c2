/*
 * test_pool.c — tg_parallel_for and the thread count (tensor/pool.h).
 *
 * Every call is checked for its contract: the ranges cover [0, n) exactly
 * once, there are min(threads, n / grain) of them (one, run inline on the
 * caller, when that is below 2), each holds at least grain items, and
 * results do not depend on the thread count. Also: nested and concurrent
 * calls run inline, steady state allocates nothing, TG_THREADS parsing.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tensor/pool.h"
#include "tests/alloc_count.h"
#include "tests/child.h"

static const int thread_counts[] = {1, 2, 3, 4, 8};
enum { NTHREAD_COUNTS = sizeof thread_counts / sizeof thread_counts[0] };

/* Restores the default thread count and stops the workers after each test,
 * so every test starts from the same state and exits leak-free. */
static void teardown(void)
{
    tg_threads_set(0);
    tg_pool_shutdown();
}

/* ------------------------------------------------------------------------ */
/* A recorder: counts the visits of each index and logs the ranges. */

enum { MAX_N = 1000, MAX_RANGES = 64 };

typedef struct {
    _Atomic int hits[MAX_N];
    _Atomic int nranges;
    int64_t begin[MAX_RANGES], end[MAX_RANGES];
    pthread_t thread[MAX_RANGES];
} recorder;

static void record(void *ctx, int64_t begin, int64_t end)
{
    recorder *r = ctx;
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&r->hits[i], 1);
    int k = atomic_fetch_add(&r->nranges, 1);
    if (k < MAX_RANGES) {
        r->begin[k] = begin;
        r->end[k] = end;
        r->thread[k] = pthread_self();
    }
}

static void recorder_reset(recorder *r, int64_t n)
{
    for (int64_t i = 0; i < n; i++) atomic_store(&r->hits[i], 0);
    atomic_store(&r->nranges, 0);
}

/* Runs one call and checks the contract. */
static void check_call(recorder *r, int threads, int64_t n, int64_t grain)
{
    recorder_reset(r, n);
    tg_parallel_for(n, grain, record, r);
    for (int64_t i = 0; i < n; i++)
        if (atomic_load(&r->hits[i]) != 1)
            cr_assert(false, "threads=%d n=%lld grain=%lld: index %lld visited %d times", threads,
                      (long long)n, (long long)grain, (long long)i, atomic_load(&r->hits[i]));
    int got = atomic_load(&r->nranges);
    int64_t g = grain < 1 ? 1 : grain;
    int64_t want = n <= 0 ? 0 : n / g < threads ? n / g : threads;
    if (n > 0 && want < 1) want = 1;
    cr_assert_eq(got, want, "threads=%d n=%lld grain=%lld: %d ranges, want %lld", threads,
                 (long long)n, (long long)grain, got, (long long)want);
    for (int k = 0; k < got && want > 1; k++)
        cr_assert_geq(r->end[k] - r->begin[k], g, "threads=%d n=%lld grain=%lld: range "
                      "[%lld, %lld) holds fewer than grain items", threads, (long long)n,
                      (long long)grain, (long long)r->begin[k], (long long)r->end[k]);
    if (got == 1)
        cr_assert(pthread_equal(r->thread[0], pthread_self()),
                  "threads=%d n=%lld grain=%lld: a single range must run on the caller",
                  threads, (long long)n, (long long)grain);
}

/* ------------------------------------------------------------------------ */

TestSuite(pool, .fini = teardown);

/* Thousands of tiny jobs: n = 0..100 with grain 1, then coarser grains. */
Test(pool, tiny_tasks_cover_every_index_once)
{
    static recorder r;
    for (int t = 0; t < NTHREAD_COUNTS; t++) {
        tg_threads_set(thread_counts[t]);
        cr_assert_eq(tg_threads_get(), thread_counts[t]);
        for (int rep = 0; rep < 5; rep++)
            for (int64_t n = 0; n <= 100; n++) check_call(&r, thread_counts[t], n, 1);
        const int64_t grains[] = {0, 2, 3, 7, 50, 100, 1000};
        for (size_t gi = 0; gi < sizeof grains / sizeof grains[0]; gi++)
            for (int64_t n = 0; n <= 100; n += 3) check_call(&r, thread_counts[t], n, grains[gi]);
        check_call(&r, thread_counts[t], MAX_N, 1);
        check_call(&r, thread_counts[t], MAX_N - 1, 333);
    }
}

/* Grain: 10 items of grain 4 on 8 threads are 2 ranges of 5; 7 items are
 * one range, run on the caller. */
Test(pool, grain_respected)
{
    static recorder r;
    tg_threads_set(8);
    recorder_reset(&r, 10);
    tg_parallel_for(10, 4, record, &r);
    cr_assert_eq(atomic_load(&r.nranges), 2);
    for (int k = 0; k < 2; k++) cr_assert_eq(r.end[k] - r.begin[k], 5);
    check_call(&r, 8, 7, 4);
    check_call(&r, 8, 3, 4);  /* n < grain: one short range */
}

/* out[i] depends only on i, so every thread count gives the same bytes. */
typedef struct {
    float *out;
} series_ctx;

static void series(void *ctx, int64_t begin, int64_t end)
{
    series_ctx *c = ctx;
    for (int64_t i = begin; i < end; i++) {
        float s = 0;
        for (int64_t k = 1; k <= 200; k++) s += 1.0f / (float)(i * k + 1);
        c->out[i] = s;
    }
}

Test(pool, results_identical_for_thread_counts)
{
    enum { N = 5000 };
    static float ref[N], out[N];
    tg_threads_set(1);
    tg_parallel_for(N, 1, series, &(series_ctx){ref});
    for (int t = 0; t < NTHREAD_COUNTS; t++) {
        tg_threads_set(thread_counts[t]);
        for (int64_t grain = 1; grain <= 4096; grain *= 8) {
            memset(out, 0xff, sizeof out);
            tg_parallel_for(N, grain, series, &(series_ctx){out});
            cr_assert(memcmp(ref, out, sizeof out) == 0, "threads=%d grain=%lld differ",
                      thread_counts[t], (long long)grain);
        }
    }
}

/* A call from inside fn runs inline on that range's thread, without
 * deadlock, and still covers its own [0, n). */
typedef struct {
    _Atomic int outer_ranges, bad;
} nested_ctx;

static void inner_fn(void *ctx, int64_t begin, int64_t end)
{
    recorder *r = ctx;
    record(r, begin, end);
}

static void outer_fn(void *ctx, int64_t begin, int64_t end)
{
    nested_ctx *c = ctx;
    atomic_fetch_add(&c->outer_ranges, 1);
    for (int64_t i = begin; i < end; i++) {
        recorder *r = malloc(sizeof *r);
        if (r == NULL) { atomic_store(&c->bad, 1); return; }
        recorder_reset(r, 50);
        tg_parallel_for(50, 1, inner_fn, r);
        bool ok = atomic_load(&r->nranges) == 1 && r->begin[0] == 0 && r->end[0] == 50 &&
                  pthread_equal(r->thread[0], pthread_self());
        for (int k = 0; k < 50; k++) ok = ok && atomic_load(&r->hits[k]) == 1;
        if (!ok) atomic_store(&c->bad, 1);
        free(r);
    }
}

Test(pool, nested_call_runs_inline)
{
    for (int t = 0; t < NTHREAD_COUNTS; t++) {
        tg_threads_set(thread_counts[t]);
        nested_ctx c = {0};
        tg_parallel_for(16, 1, outer_fn, &c);
        cr_assert_eq(atomic_load(&c.bad), 0, "threads=%d: a nested call did not run inline",
                     thread_counts[t]);
        int want = thread_counts[t] < 16 ? thread_counts[t] : 16;
        cr_assert_eq(atomic_load(&c.outer_ranges), want);
    }
}

/* The ranges really run at the same time: each waits (up to 5 s) until
 * all have started, which only happens if the workers take part. */
typedef struct {
    _Atomic int started;
    int want;
    _Atomic int timed_out;
} rendezvous_ctx;

static void rendezvous(void *ctx, int64_t begin, int64_t end)
{
    rendezvous_ctx *c = ctx;
    (void)begin; (void)end;
    atomic_fetch_add(&c->started, 1);
    struct timespec ms = {0, 1000000};
    for (int i = 0; atomic_load(&c->started) < c->want; i++) {
        if (i == 5000) { atomic_store(&c->timed_out, 1); return; }
        nanosleep(&ms, NULL);
    }
}

Test(pool, workers_run_ranges_in_parallel)
{
    for (int t = 1; t < NTHREAD_COUNTS; t++) {
        tg_threads_set(thread_counts[t]);
        for (int rep = 0; rep < 3; rep++) {
            rendezvous_ctx c = {.want = thread_counts[t]};
            tg_parallel_for(thread_counts[t], 1, rendezvous, &c);
            cr_assert_eq(atomic_load(&c.timed_out), 0, "threads=%d: ranges did not run "
                         "concurrently", thread_counts[t]);
        }
    }
}

/* While one thread's job runs, a call from another thread runs inline. */
static _Atomic int inside, other_done;
static recorder other_rec;

static void *other_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&inside)) sched_yield();
    recorder_reset(&other_rec, 100);
    tg_parallel_for(100, 1, record, &other_rec);
    atomic_store(&other_done, 1);
    return NULL;
}

static void hold_pool(void *ctx, int64_t begin, int64_t end)
{
    (void)ctx; (void)begin; (void)end;
    atomic_store(&inside, 1);
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < 2000 && !atomic_load(&other_done); i++) nanosleep(&ms, NULL);  /* <= 2 s */
}

Test(pool, concurrent_call_runs_inline)
{
    tg_threads_set(2);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    tg_parallel_for(2, 1, hold_pool, NULL);
    pthread_join(th, NULL);
    cr_assert(atomic_load(&other_done), "the other thread's call did not finish");
    cr_assert_eq(atomic_load(&other_rec.nranges), 1, "a concurrent call must run inline");
    for (int i = 0; i < 100; i++) cr_assert_eq(atomic_load(&other_rec.hits[i]), 1);
    cr_assert(pthread_equal(other_rec.thread[0], th));
}

/* After the first parallel call starts the workers, calls allocate nothing. */
static void touch(void *ctx, int64_t begin, int64_t end)
{
    float *x = ctx;
    for (int64_t i = begin; i < end; i++) x[i] += 1.0f;
}

Test(pool, steady_state_allocates_nothing)
{
    static float x[4096];
    for (int t = 0; t < NTHREAD_COUNTS; t++) {
        tg_threads_set(thread_counts[t]);
        tg_parallel_for(4096, 1, touch, x);  /* starts the workers */
        uint64_t before = tg_test_alloc_count();
        for (int rep = 0; rep < 300; rep++)
            for (int64_t n = 0; n <= 4096; n = 2 * n + 1) tg_parallel_for(n, 1, touch, x);
        cr_assert_eq(tg_test_alloc_count(), before, "threads=%d: %llu allocations",
                     thread_counts[t], (unsigned long long)(tg_test_alloc_count() - before));
    }
}

/* Shutdown joins the workers; the next call starts them again. */
Test(pool, shutdown_and_restart)
{
    static recorder r;
    tg_threads_set(3);
    check_call(&r, 3, 30, 1);
    tg_pool_shutdown();
    tg_pool_shutdown();  /* idempotent */
    check_call(&r, 3, 30, 1);
    tg_threads_set(2);   /* count change: workers re-created */
    check_call(&r, 2, 30, 1);
}

/* ------------------------------------------------------------------------ */
/* Thread count. */

/* tg_threads_get() after setting TG_THREADS to value (NULL: unset), with
 * stderr captured into warn (size bytes). */
static int threads_from_env(const char *value, char *warn, size_t size)
{
    if (value) setenv("TG_THREADS", value, 1);
    else unsetenv("TG_THREADS");
    char path[] = "/tmp/tg_pool_stderr_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    tg_threads_set(0);  /* forget the setting: read TG_THREADS again */
    int n = tg_threads_get();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t len = pread(fd, warn, size - 1, 0);
    warn[len > 0 ? len : 0] = '\0';
    close(fd);
    unlink(path);
    return n;
}

Test(pool, tg_threads_parsing)
{
    char warn[512];
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > TG_MAX_THREADS) cores = TG_MAX_THREADS;
    if (cores < 1) cores = 1;

    cr_assert_eq(threads_from_env(NULL, warn, sizeof warn), cores);
    cr_assert_str_empty(warn);
    cr_assert_eq(threads_from_env("", warn, sizeof warn), cores);
    cr_assert_str_empty(warn);
    cr_assert_eq(threads_from_env("3", warn, sizeof warn), 3);
    cr_assert_str_empty(warn);
    cr_assert_eq(threads_from_env("1", warn, sizeof warn), 1);
    char max[16], over[16];
    snprintf(max, sizeof max, "%d", TG_MAX_THREADS);
    snprintf(over, sizeof over, "%d", TG_MAX_THREADS + 1);
    cr_assert_eq(threads_from_env(max, warn, sizeof warn), TG_MAX_THREADS);
    cr_assert_str_empty(warn);

    const char *bad[] = {"0", "-2", "abc", "2x", "3.5", " ", over, "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(threads_from_env(bad[i], warn, sizeof warn), cores, "TG_THREADS=\"%s\"",
                     bad[i]);
        cr_assert(strstr(warn, "TG_THREADS") != NULL, "TG_THREADS=\"%s\": no warning", bad[i]);
        char *nl = strchr(warn, '\n');
        cr_assert(nl != NULL && nl[1] == '\0', "TG_THREADS=\"%s\": want one line, got \"%s\"",
                  bad[i], warn);
        cr_assert_eq(tg_threads_get(), cores);  /* read once, kept */
    }

    /* tg_threads_set overrides the environment; 0 goes back to it. */
    threads_from_env("3", warn, sizeof warn);
    tg_threads_set(5);
    cr_assert_eq(tg_threads_get(), 5);
    tg_threads_set(0);
    cr_assert_eq(tg_threads_get(), 3);
    unsetenv("TG_THREADS");
}

static void negative_thread_count(void) { tg_threads_set(-1); }
static void too_many_threads(void) { tg_threads_set(TG_MAX_THREADS + 1); }

/* What tg_threads_set(n) must say: the bad n and the allowed range. */
static void expect_threads_abort(void (*fn)(void), int n) {
    char want[128];
    snprintf(want, sizeof want, "tapegrad: tg_threads_set: n=%d is outside [1, %d]", n, TG_MAX_THREADS);
    tg_expect_abort(fn, want);
}

Test(pool, negative_thread_count_aborts)
{
    expect_threads_abort(negative_thread_count, -1);
}

Test(pool, too_many_threads_abort)
{
    expect_threads_abort(too_many_threads, TG_MAX_THREADS + 1);
}
