/* fixture.h — reads the named-tensor fixture files in tests/fixtures/
 * (format: tests/fixtures/README.md). */
#ifndef TG_TEST_FIXTURE_H
#define TG_TEST_FIXTURE_H

#include "tensor/tensor.h"

typedef struct {
    int n;
    char **names;
    tg_tensor *tensors;   /* data held in arena */
    tg_arena *arena;
} tg_fixture;

/* Loads path; aborts the test with a message if the file is missing or malformed. */
tg_fixture *tg_fixture_load(const char *path);
/* The tensor called name; aborts if absent. */
const tg_tensor *tg_fixture_get(const tg_fixture *f, const char *name);
void tg_fixture_free(tg_fixture *f);

/* max_i |a_i - b_i| / max_i |b_i| */
double tg_rel_max_err(const tg_tensor *a, const tg_tensor *b);

#endif
