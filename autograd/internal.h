/* internal.h — what the op files (elementwise.c, linalg.c, reduce.c,
 * softmax.c, shape.c, index.c, loss.c, conv.c, pool2d.c, norm.c, custom.c)
 * share with the tape and the op table (ops.c); not part of the API. */
#ifndef TG_AUTOGRAD_INTERNAL_H
#define TG_AUTOGRAD_INTERNAL_H

#include "autograd/autograd.h"
#include "tensor/kernels.h"

/* A fresh output var in the tape's arena (value uninitialised, no gradient). */
tg_var *tg_var_new(tg_tape *t, tg_dtype dt, tg_shape s);

/* Appends an entry for op if grad mode is on and a or b requires a gradient,
 * marking out as requiring one; returns NULL (and records nothing) otherwise. */
tg_entry *tg_record(tg_tape *t, tg_op op, tg_var *out, tg_var *a, tg_var *b);
/* The same for an op with three inputs. */
tg_entry *tg_record3(tg_tape *t, tg_op op, tg_var *out, tg_var *a, tg_var *b, tg_var *c);
/* The same for a variadic op: ins (n vars) are copied onto the entry (ins,
 * n_ins), the first three also into in[]. */
tg_entry *tg_record_n(tg_tape *t, tg_op op, tg_var *out, tg_var *const *ins, int n);

/* Aborts with the op's caller's file:line (file and line are the TG_LOC args). */
#define OP_CHECK(cond, ...) \
    do { if (!(cond)) tg_die(file, line, __VA_ARGS__); } while (0)

/* Checks shared by the op files; each aborts naming the op and the caller. */
void tg_check_same_dtype(TG_LOC, const char *op, const tg_var *a, const tg_var *b);
void tg_check_same_shape(TG_LOC, const char *op, const tg_var *a, const tg_var *b);
void tg_check_float(TG_LOC, const char *op, const tg_var *a);     /* float32 or float64 */
void tg_check_index(TG_LOC, const char *op, const tg_var *idx);   /* int64, no gradient */
int tg_check_axis(TG_LOC, const char *op, int axis, int ndim);   /* axis, negatives from the end */

/* dL/dv if v wants a gradient (allocated zeroed on first use), else NULL. */
static inline tg_tensor *grad_of(tg_tape *t, tg_var *v) { return v && v->requires_grad ? tg_var_grad(t, v) : NULL; }

/* A rule that writes a gradient whole may set it (=) instead of adding into
 * zeros when no gradient has reached v yet (v wants none, or its buffer is
 * not allocated); later rules reaching v then add (+=) as usual, so reused
 * vars stay right. tg_var_grad_unset allocates that buffer without zeroing
 * it (the rule must write every element); NULL if v wants no gradient. */
static inline bool grad_untouched(const tg_var *v) { return !v || !v->requires_grad || !v->grad.data; }
tg_tensor *tg_var_grad_unset(tg_tape *t, tg_var *v);
/* v's gradient buffer for such a rule: unset (the rule writes it, =) when set,
 * else grad_of's (the rule adds, +=). */
static inline tg_tensor *grad_for(tg_tape *t, tg_var *v, bool set) { return set ? tg_var_grad_unset(t, v) : grad_of(t, v); }

/* A tensor shaped like `like` for a backward rule's intermediate values, in
 * the tape's arena: it dies at tg_tape_reset, so a step allocates nothing new. */
static inline tg_tensor *scratch(tg_tape *t, const tg_tensor *like) {
    return tg_tensor_new(tg_tape_arena(t), like->dtype, like->shape);
}

/* The backward rules, one per op, registered in tg_ops (ops.c). Each reads
 * e->out->grad (dL/dout) and adds (+=) dL/din into the inputs that want it. */
#define TG_BACKWARD(name) void tg_backward_##name(tg_tape *t, const tg_entry *e)
TG_BACKWARD(add); TG_BACKWARD(sub); TG_BACKWARD(mul); TG_BACKWARD(div);
TG_BACKWARD(neg); TG_BACKWARD(add_scalar); TG_BACKWARD(mul_scalar);
TG_BACKWARD(exp); TG_BACKWARD(log); TG_BACKWARD(sqrt); TG_BACKWARD(square); TG_BACKWARD(pow);
TG_BACKWARD(relu); TG_BACKWARD(sigmoid); TG_BACKWARD(tanh); TG_BACKWARD(softplus);
TG_BACKWARD(matmul); TG_BACKWARD(affine);
TG_BACKWARD(sum);
TG_BACKWARD(reshape); TG_BACKWARD(transpose); TG_BACKWARD(concat); TG_BACKWARD(narrow);
TG_BACKWARD(reparam); TG_BACKWARD(bce); TG_BACKWARD(bce_logits); TG_BACKWARD(bce_logits_sum);
/* elementwise maps, comparisons and where */
TG_BACKWARD(abs); TG_BACKWARD(clamp); TG_BACKWARD(maximum); TG_BACKWARD(minimum);
TG_BACKWARD(log1p); TG_BACKWARD(expm1); TG_BACKWARD(leaky_relu); TG_BACKWARD(elu);
TG_BACKWARD(gelu); TG_BACKWARD(gelu_tanh); TG_BACKWARD(silu); TG_BACKWARD(hardtanh); TG_BACKWARD(where);
/* Broadcasting helpers (elementwise.c): v broadcast to shape s (v itself if it
 * has that shape, else a copy in the tape's arena); and a fresh output of
 * float a and b's broadcast shape, a and b expanded to it in *ea, *eb,
 * aborting naming op and the caller if they do not broadcast. */
tg_tensor *tg_expanded(tg_tape *t, tg_tensor *v, tg_shape s);
tg_var *tg_broadcast_out(TG_LOC, tg_tape *t, const char *op, tg_var *a, tg_var *b, tg_tensor **ea, tg_tensor **eb);
/* out = kernel(a, b) on those expanded operands, recorded as op (maximum, bce, ...). */
tg_var *tg_broadcast_op(TG_LOC, tg_tape *t, tg_op op, tg_var *a, tg_var *b,
                        void (*kernel)(tg_tensor *, const tg_tensor *, const tg_tensor *));

/* reductions and the softmax family */
TG_BACKWARD(max); TG_BACKWARD(logsumexp); TG_BACKWARD(std); TG_BACKWARD(softmax); TG_BACKWARD(nll);
/* s without axis, or with it as 1 if keepdim (reduce.c). */
tg_shape tg_reduced_shape(tg_shape s, int axis, bool keepdim);

/* shape and indexing */
TG_BACKWARD(permute); TG_BACKWARD(expand); TG_BACKWARD(pad); TG_BACKWARD(slice);
TG_BACKWARD(gather); TG_BACKWARD(index_select); TG_BACKWARD(scatter_add);

/* linear algebra, custom ops */
TG_BACKWARD(custom);


/* convolution */
TG_BACKWARD(conv2d); TG_BACKWARD(conv_transpose2d);

/* pooling and upsampling */
TG_BACKWARD(max_pool2d); TG_BACKWARD(avg_pool2d); TG_BACKWARD(upsample_nearest2d);

/* normalisation and dropout */
TG_BACKWARD(norm);      /* layer_norm and batch_norm (norm.c) */
TG_BACKWARD(dropout);

#endif
