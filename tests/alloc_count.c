/* alloc_count.c — allocation counters behind -Wl,--wrap (see alloc_count.h). */
#include "tests/alloc_count.h"

#include <stdatomic.h>
#include <stddef.h>

static _Atomic uint64_t count;

void *__real_malloc(size_t n);
void *__real_calloc(size_t m, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);

void *__wrap_malloc(size_t n) { count++; return __real_malloc(n); }
void *__wrap_calloc(size_t m, size_t n) { count++; return __real_calloc(m, n); }
void *__wrap_realloc(void *p, size_t n) { count++; return __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { count++; return __real_aligned_alloc(a, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) { count++; return __real_posix_memalign(p, a, n); }

uint64_t tg_test_alloc_count(void) { return count; }
