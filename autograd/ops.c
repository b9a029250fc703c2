/*
 * ops.c — the table of every op (tg_ops), and the checks the op files share.
 *
 * The ops themselves, each forward next to its backward, are grouped by
 * family: elementwise.c (broadcasting binary ops and unary maps), linalg.c
 * (matmul, affine), reduce.c (sums, means, max, min, logsumexp, std),
 * softmax.c (softmax, log_softmax, nll), shape.c (reshape, transpose,
 * permute, expand, concat, narrow, pad, slice, one_hot), index.c (gather,
 * index_select, embedding, scatter_add), loss.c (reparam, bce, bce_logits),
 * conv.c, pool2d.c, norm.c (layer_norm, batch_norm, dropout) and custom.c
 * (tg_custom). docs/autograd.md gives each one's maths. The loops they call
 * are tensor/'s kernels.
 */
#include "autograd/internal.h"

void tg_check_same_dtype(TG_LOC, const char *op, const tg_var *a, const tg_var *b) {
    OP_CHECK(a->val.dtype == b->val.dtype, "%s: dtypes differ (%s and %s)", op,
             tg_dtype_name(a->val.dtype), tg_dtype_name(b->val.dtype));
}

void tg_check_same_shape(TG_LOC, const char *op, const tg_var *a, const tg_var *b) {
    char b1[96], b2[96];
    tg_check_same_dtype(file, line, op, a, b);
    OP_CHECK(tg_shape_eq(a->val.shape, b->val.shape), "%s: shapes %s and %s differ", op,
             tg_shape_str(a->val.shape, b1), tg_shape_str(b->val.shape, b2));
}

void tg_check_float(TG_LOC, const char *op, const tg_var *a) {
    OP_CHECK(a->val.dtype != TG_I64, "%s: takes float32 or float64 values, got an int64 tensor", op);
}

void tg_check_index(TG_LOC, const char *op, const tg_var *idx) {
    OP_CHECK(idx->val.dtype == TG_I64, "%s: indices must be an int64 tensor, got %s", op, tg_dtype_name(idx->val.dtype));
}

int tg_check_axis(TG_LOC, const char *op, int axis, int ndim) {
    int ax = axis < 0 ? axis + ndim : axis;
    OP_CHECK(ax >= 0 && ax < ndim, "%s: axis %d out of range for %d dimensions", op, axis, ndim);
    return ax;
}

const tg_op_def tg_ops[TG_OP_COUNT] = {
    [TG_OP_ADD] = {"add", 2, tg_backward_add},
    [TG_OP_SUB] = {"sub", 2, tg_backward_sub},
    [TG_OP_MUL] = {"mul", 2, tg_backward_mul},
    [TG_OP_DIV] = {"div", 2, tg_backward_div},
    [TG_OP_NEG] = {"neg", 1, tg_backward_neg},
    [TG_OP_ADD_SCALAR] = {"add_scalar", 1, tg_backward_add_scalar},
    [TG_OP_MUL_SCALAR] = {"mul_scalar", 1, tg_backward_mul_scalar},
    [TG_OP_EXP] = {"exp", 1, tg_backward_exp},
    [TG_OP_LOG] = {"log", 1, tg_backward_log},
    [TG_OP_SQRT] = {"sqrt", 1, tg_backward_sqrt},
    [TG_OP_SQUARE] = {"square", 1, tg_backward_square},
    [TG_OP_POW] = {"pow", 1, tg_backward_pow},
    [TG_OP_RELU] = {"relu", 1, tg_backward_relu},
    [TG_OP_SIGMOID] = {"sigmoid", 1, tg_backward_sigmoid},
    [TG_OP_TANH] = {"tanh", 1, tg_backward_tanh},
    [TG_OP_SOFTPLUS] = {"softplus", 1, tg_backward_softplus},
    [TG_OP_MATMUL] = {"matmul", 2, tg_backward_matmul},
    [TG_OP_AFFINE] = {"affine", 3, tg_backward_affine},
    [TG_OP_SUM] = {"sum", 1, tg_backward_sum},
    [TG_OP_MEAN] = {"mean", 1, tg_backward_sum},
    [TG_OP_RESHAPE] = {"reshape", 1, tg_backward_reshape},
    [TG_OP_TRANSPOSE] = {"transpose", 1, tg_backward_transpose},
    [TG_OP_CONCAT] = {"concat", -1, tg_backward_concat},
    [TG_OP_NARROW] = {"narrow", 1, tg_backward_narrow},
    [TG_OP_ONE_HOT] = {"one_hot", 1, NULL},
    [TG_OP_REPARAM] = {"reparam", 2, tg_backward_reparam},
    [TG_OP_BCE] = {"bce", 2, tg_backward_bce},
    [TG_OP_BCE_LOGITS] = {"bce_logits", 2, tg_backward_bce_logits},
    [TG_OP_BCE_LOGITS_SUM] = {"bce_logits_sum", 2, tg_backward_bce_logits_sum},
    /* elementwise maps, comparisons and where */
    [TG_OP_ABS] = {"abs", 1, tg_backward_abs},
    [TG_OP_CLAMP] = {"clamp", 1, tg_backward_clamp},
    [TG_OP_MAXIMUM] = {"maximum", 2, tg_backward_maximum},
    [TG_OP_MINIMUM] = {"minimum", 2, tg_backward_minimum},
    [TG_OP_LOG1P] = {"log1p", 1, tg_backward_log1p},
    [TG_OP_EXPM1] = {"expm1", 1, tg_backward_expm1},
    [TG_OP_LEAKY_RELU] = {"leaky_relu", 1, tg_backward_leaky_relu},
    [TG_OP_ELU] = {"elu", 1, tg_backward_elu},
    [TG_OP_GELU] = {"gelu", 1, tg_backward_gelu},
    [TG_OP_GELU_TANH] = {"gelu_tanh", 1, tg_backward_gelu_tanh},
    [TG_OP_SILU] = {"silu", 1, tg_backward_silu},
    [TG_OP_HARDTANH] = {"hardtanh", 1, tg_backward_hardtanh},
    [TG_OP_WHERE] = {"where", 2, tg_backward_where},   /* a, b; cond is saved on the entry */

    /* reductions and the softmax family */
    [TG_OP_MAX] = {"max", 1, tg_backward_max},
    [TG_OP_MIN] = {"min", 1, tg_backward_max},
    [TG_OP_LOGSUMEXP] = {"logsumexp", 1, tg_backward_logsumexp},
    [TG_OP_STD] = {"std", 1, tg_backward_std},
    [TG_OP_SOFTMAX] = {"softmax", 1, tg_backward_softmax},
    [TG_OP_LOG_SOFTMAX] = {"log_softmax", 1, tg_backward_softmax},
    [TG_OP_NLL] = {"nll", 1, tg_backward_nll},

    /* shape and indexing */
    [TG_OP_PERMUTE] = {"permute", 1, tg_backward_permute},
    [TG_OP_EXPAND] = {"expand", 1, tg_backward_expand},
    [TG_OP_PAD] = {"pad", 1, tg_backward_pad},
    [TG_OP_SLICE] = {"slice", 1, tg_backward_slice},
    [TG_OP_GATHER] = {"gather", 1, tg_backward_gather},
    [TG_OP_INDEX_SELECT] = {"index_select", 1, tg_backward_index_select},
    [TG_OP_EMBEDDING] = {"embedding", 1, tg_backward_index_select},
    [TG_OP_SCATTER_ADD] = {"scatter_add", 2, tg_backward_scatter_add},

    /* linear algebra, custom ops */
    [TG_OP_CUSTOM] = {"custom", -1, tg_backward_custom},

    /* convolution */
    [TG_OP_CONV2D] = {"conv2d", 3, tg_backward_conv2d},   /* b may be NULL */
    [TG_OP_CONV_TRANSPOSE2D] = {"conv_transpose2d", 3, tg_backward_conv_transpose2d},

    /* pooling and upsampling */
    [TG_OP_MAX_POOL2D] = {"max_pool2d", 1, tg_backward_max_pool2d},
    [TG_OP_AVG_POOL2D] = {"avg_pool2d", 1, tg_backward_avg_pool2d},
    [TG_OP_UPSAMPLE_NEAREST2D] = {"upsample_nearest2d", 1, tg_backward_upsample_nearest2d},

    /* normalisation and dropout */
    [TG_OP_LAYER_NORM] = {"layer_norm", -1, tg_backward_norm},
    [TG_OP_BATCH_NORM] = {"batch_norm", -1, tg_backward_norm},
    [TG_OP_DROPOUT] = {"dropout", 1, tg_backward_dropout},

};
