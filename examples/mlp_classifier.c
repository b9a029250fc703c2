/*
 * mlp_classifier.c — a 784-256-10 classifier with cross-entropy, the
 * "hello world" of training frameworks, written against the public API.
 *
 * Model: Linear(784, 256) -> ReLU -> Linear(256, 10) logits. Loss: mean
 * cross-entropy of the logits against the int64 labels the batcher hands
 * out. Adam, lr 1e-3, batch 128, training set reshuffled every epoch. After
 * each epoch: the test set's mean loss and accuracy (argmax of the logits).
 * The last line is "test accuracy: 0.XXXX".
 *
 *     build/mlp_classifier [--data DIR] [--epochs N] [--seed S] [--threads N]
 */
#include <string.h>

#include "data/data.h"
#include "examples/flags.h"
#include "optim/optim.h"
#include "tensor/threads.h"

static const char usage[] =
    "usage: mlp_classifier [--data DIR] [--epochs N] [--seed S] [--threads N]\n"
    "\n"
    "Trains a 784-256-10 classifier (ReLU, cross-entropy, Adam 1e-3, batch 128)\n"
    "and prints the test set's loss and accuracy after every epoch.\n"
    "\n"
    "  --data DIR    MNIST-format IDX files (raw or .gz); default: data/mnist if\n"
    "                present, else /usr/share/datasets/fashion-mnist\n"
    "  --epochs N    epochs to train (default 5)\n"
    "  --seed S      seed for initialisation and shuffling (default 1)\n"
    "  --threads N   threads (default: $TG_THREADS, else every core); results\n"
    "                are identical for any N\n"
    "  --help        this text\n";

typedef struct {
    tg_linear fc1, fc2;   /* (784 -> 256), (256 -> 10) */
} mlp;

/* x (B, 784) -> logits (B, 10) */
static tg_var *forward(tg_tape *t, const mlp *m, tg_var *x) {
    return tg_linear_forward(t, &m->fc2, tg_linear_relu(t, &m->fc1, x));
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    long long epochs = 5, seed = 1;
    static const char *const known[] = {"--data", "--epochs", "--seed", "--threads", NULL};
    for (int i = 1; i < argc; i++) {
        const char *v, *a = tg_flag_next("mlp_classifier", usage, argc, argv, &i, known, &v);
        if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--epochs")) epochs = tg_flag_int("mlp_classifier", a, v, 1, 100000);
        else if (!strcmp(a, "--threads")) tg_threads_set((int)tg_flag_int("mlp_classifier", a, v, 1, TG_MAX_THREADS));
        else seed = tg_flag_int("mlp_classifier", a, v, 0, (long long)1 << 62);
    }

    tg_dataset ds;
    tg_example_load("mlp_classifier", dir, &ds);
    const int64_t B = 128, D = ds.train_x.rows * ds.train_x.cols, K = 10;

    tg_rng init_rng = tg_rng_seed((uint64_t)seed), data_rng = tg_rng_seed((uint64_t)seed + 1);
    tg_params *ps = tg_params_new(TG_F32);
    mlp m = {tg_linear_new(ps, "fc1", D, 256, &init_rng), tg_linear_new(ps, "fc2", 256, K, &init_rng)};
    tg_adam *opt = tg_adam_new(ps, 1e-3);
    tg_tape *tape = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_tensor *xb = tg_tensor_new(keep, TG_F32, TG_SHAPE(B, D));   /* (B, D) images */
    tg_tensor *yb = tg_tensor_new(keep, TG_I64, TG_SHAPE(B));      /* (B) labels */
    tg_batcher *train = tg_batcher_new(&ds.train_x, &ds.train_y, B, true, &data_rng);
    tg_batcher *test = tg_batcher_new(&ds.test_x, &ds.test_y, B, false, NULL);
    TG_CHECK(train && test, "mlp_classifier: out of memory");

    double accuracy = 0;
    for (long long epoch = 1; epoch <= epochs; epoch++) {
        double train_loss = 0;
        int64_t rows;
        if (epoch > 1) tg_batcher_start_epoch(train);
        while ((rows = tg_batcher_next(train, xb, yb)) > 0) {
            tg_tensor x = tg_tensor_wrap(TG_F32, TG_SHAPE(rows, D), xb->data);   /* the last batch may be short */
            tg_tensor y = tg_tensor_wrap(TG_I64, TG_SHAPE(rows), yb->data);
            tg_params_zero_grad(ps);
            tg_var *logits = forward(tape, &m, tg_leaf(tape, &x, false));
            tg_var *loss = tg_loss_cross_entropy(tape, logits, tg_leaf(tape, &y, false), TG_REDUCE_MEAN);
            tg_backward(tape, loss);
            tg_adam_step(opt);
            train_loss += tg_item(loss) * (double)rows;
            tg_tape_reset(tape);
        }

        /* Test: summed loss and correct predictions, without recording. */
        double test_loss = 0;
        int64_t correct = 0;
        bool prev = tg_no_grad(tape);
        tg_batcher_start_epoch(test);
        while ((rows = tg_batcher_next(test, xb, yb)) > 0) {
            tg_tensor x = tg_tensor_wrap(TG_F32, TG_SHAPE(rows, D), xb->data);
            tg_tensor y = tg_tensor_wrap(TG_I64, TG_SHAPE(rows), yb->data);
            tg_var *logits = forward(tape, &m, tg_leaf(tape, &x, false));
            tg_var *labels = tg_leaf(tape, &y, false);
            test_loss += tg_item(tg_loss_cross_entropy(tape, logits, labels, TG_REDUCE_SUM));
            tg_var *pred = tg_argmax(tape, logits, 1, false);   /* (rows) int64 */
            for (int64_t i = 0; i < rows; i++) correct += TG_I64P(&pred->val)[i] == TG_I64P(&y)[i];
            tg_tape_reset(tape);
        }
        tg_set_grad(tape, prev);
        accuracy = (double)correct / (double)ds.test_x.n;
        printf("epoch %lld: train loss %.4f, test loss %.4f, test accuracy %.4f\n", epoch,
               train_loss / (double)ds.train_x.n, test_loss / (double)ds.test_x.n, accuracy);
        fflush(stdout);
    }
    printf("test accuracy: %.4f\n", accuracy);

    tg_batcher_free(train);
    tg_batcher_free(test);
    tg_arena_free(keep);
    tg_tape_free(tape);
    tg_adam_free(opt);
    tg_params_free(ps);
    tg_dataset_free(&ds);
    return 0;
}
