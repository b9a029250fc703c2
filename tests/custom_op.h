/* custom_op.h — a user-defined op for the tests: y = a^3 b (a, b of one
 * shape), written only against the public tg_custom API, as a user would. */
#ifndef TG_TEST_CUSTOM_OP_H
#define TG_TEST_CUSTOM_OP_H

#include "autograd/autograd.h"

/* y = a^3 b:  da += dy 3 a^2 b,  db += dy a^3 */
extern const tg_function tg_test_cube_mul;

#endif
