/* alloc_count.h — counts heap allocations made by code linked into the test
 * binary (the library included). The Makefile links with
 * -Wl,--wrap=malloc,... so every such call goes through tests/alloc_count.c. */
#ifndef TG_ALLOC_COUNT_H
#define TG_ALLOC_COUNT_H

#include <stdint.h>

/* malloc + calloc + realloc + aligned_alloc + posix_memalign calls so far in this process. */
uint64_t tg_test_alloc_count(void);

#endif
