/* child.h — running code that is meant to abort in a forked child, so a test
 * can check both how it ended and what it printed (Criterion's .signal only
 * sees the former). */
#ifndef TG_TEST_CHILD_H
#define TG_TEST_CHILD_H

#include <stddef.h>

/* Runs fn in a forked child whose stderr goes into out[0..n) (NUL-terminated,
 * cut short if longer); returns the signal that ended the child, or 0 if it
 * exited (fn returned). A child still running after 30 s gets SIGALRM. */
int tg_child_run(void (*fn)(void), char *out, size_t n);

/* Expects fn to abort: its child ends with SIGABRT and its stderr holds
 * each of the given strings, e.g.
 *     tg_expect_abort(bad_add, "add", "(2, 3)", "(4,)"); */
#define tg_expect_abort(fn, ...) tg_expect_abort_(fn, __VA_ARGS__, (const char *)NULL)
void tg_expect_abort_(void (*fn)(void), ...);

/* Skips the calling test when built with AddressSanitizer, whose allocator
 * reserves address space of its own: for tests that limit RLIMIT_AS. */
#if defined(__SANITIZE_ADDRESS__)
#define TG_SKIP_UNDER_ASAN() cr_skip_test("address-space limits do not mix with ASan")
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_SKIP_UNDER_ASAN() cr_skip_test("address-space limits do not mix with ASan")
#endif
#endif
#ifndef TG_SKIP_UNDER_ASAN
#define TG_SKIP_UNDER_ASAN() ((void)0)
#endif

#endif
