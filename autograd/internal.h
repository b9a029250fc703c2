/* internal.h — what the op files share with the tape; not part of the API. */
#ifndef TG_AUTOGRAD_INTERNAL_H
#define TG_AUTOGRAD_INTERNAL_H

#include "autograd/autograd.h"

/* A fresh output var in the tape's arena (value uninitialised, no gradient). */
tg_var *tg_var_new(tg_tape *t, tg_dtype dt, tg_shape s);

/* Appends an entry for op if grad mode is on and a or b requires a gradient,
 * marking out as requiring one; returns NULL (and records nothing) otherwise. */
tg_entry *tg_record(tg_tape *t, tg_op op, tg_var *out, tg_var *a, tg_var *b);
/* The same for an op with three inputs. */
tg_entry *tg_record3(tg_tape *t, tg_op op, tg_var *out, tg_var *a, tg_var *b, tg_var *c);

/* Aborts with the op's caller's file:line (file and line are the TG_LOC args). */
#define OP_CHECK(cond, ...) \
    do { if (!(cond)) tg_die(file, line, __VA_ARGS__); } while (0)

#endif
