/*
 * seed_vae.c — the textbook PyTorch VAE example, in C with tapegrad.
 *
 * Encoder 784 -> 400 (ReLU) -> mu, logvar (20 each); z = mu + exp(logvar/2) eps;
 * decoder 20 -> 400 (ReLU) -> 784 (sigmoid). Loss: BCE summed over pixels plus
 * KL(q(z|x) || N(0, I)). Adam, lr 1e-3, batch 128, 10 epochs; the training
 * set is reshuffled every epoch. Prints the same lines as the PyTorch script.
 *
 *     build/seed_vae [--data DIR] [--epochs N] [--seed S] [--threads N] [--save FILE] [--graph FILE]
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "data/data.h"
#include "examples/flags.h"
#include "models/vae.h"
#include "nn/checkpoint.h"
#include "optim/optim.h"
#include "tensor/threads.h"

static const char usage[] =
    "usage: seed_vae [--data DIR] [--epochs N] [--seed S] [--threads N] [--save FILE] [--graph FILE]\n"
    "\n"
    "Trains the reference VAE (784-400-20, BCE + KL, Adam 1e-3, batch 128).\n"
    "\n"
    "  --data DIR    MNIST-format IDX files (raw or .gz); default: data/mnist if\n"
    "                present, else /usr/share/datasets/fashion-mnist\n"
    "  --epochs N    epochs to train (default 10)\n"
    "  --seed S      seed for initialisation, shuffling and sampling (default 1)\n"
    "  --threads N   threads (default: $TG_THREADS, else every core); results\n"
    "                are identical for any N\n"
    "  --save FILE   write the trained weights to FILE as safetensors, with the\n"
    "                PyTorch module's names (fc1.weight, ...)\n"
    "  --graph FILE  write the first training step's tape to FILE in Graphviz's\n"
    "                DOT language (render: dot -Tsvg FILE -o tape.svg)\n"
    "  --help        this text\n";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *save = NULL, *graph = NULL;
    long long epochs = 10, seed = 1;
    static const char *const known[] = {"--data", "--epochs", "--seed", "--threads", "--save", "--graph", NULL};
    for (int i = 1; i < argc; i++) {
        const char *v, *a = tg_flag_next("seed_vae", usage, argc, argv, &i, known, &v);
        if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--save")) save = v;
        else if (!strcmp(a, "--graph")) graph = v;
        else if (!strcmp(a, "--epochs")) epochs = tg_flag_int("seed_vae", a, v, 1, 100000);
        else if (!strcmp(a, "--threads")) tg_threads_set((int)tg_flag_int("seed_vae", a, v, 1, TG_MAX_THREADS));
        else seed = tg_flag_int("seed_vae", a, v, 0, (long long)1 << 62);
    }

    /* Fail now, not after training, if --save or --graph names a directory we cannot write. */
    if (save) tg_flag_out_file("seed_vae", "--save", save);
    if (graph) tg_flag_out_file("seed_vae", "--graph", graph);

    /* Data. */
    tg_dataset ds;
    tg_example_load("seed_vae", dir, &ds);
    const int64_t B = 128, D = ds.train_x.rows * ds.train_x.cols;

    /* Model and optimizer. Independent streams for weights, order and noise. */
    tg_rng init_rng = tg_rng_seed((uint64_t)seed), data_rng = tg_rng_seed((uint64_t)seed + 1),
           noise_rng = tg_rng_seed((uint64_t)seed + 2);
    tg_params *ps = tg_params_new(TG_F32);
    tg_vae model = tg_vae_new(ps, D, 400, 20, &init_rng);
    tg_adam *opt = tg_adam_new(ps, 1e-3);
    tg_tape *tape = tg_tape_new();
    tg_arena *keep = tg_arena_new();
    tg_tensor *xb = tg_tensor_new(keep, TG_F32, TG_SHAPE(B, D));   /* (B, D) batch buffer */
    tg_batcher *train = tg_batcher_new(&ds.train_x, NULL, B, true, &data_rng);
    tg_batcher *test = tg_batcher_new(&ds.test_x, NULL, B, false, NULL);
    TG_CHECK(train && test, "seed_vae: out of memory");
    int64_t nbatches = tg_batcher_count(train);

    for (long long epoch = 1; epoch <= epochs; epoch++) {
        /* Train. */
        double t0 = now(), train_loss = 0;
        if (epoch > 1) tg_batcher_start_epoch(train);
        int64_t rows;
        for (int64_t batch = 0; (rows = tg_batcher_next(train, xb, NULL)) > 0; batch++) {
            tg_tensor xv = tg_tensor_wrap(TG_F32, TG_SHAPE(rows, D), xb->data);   /* last batch may be short */
            tg_params_zero_grad(ps);
            tg_vae_out o = tg_vae_forward(tape, &model, tg_name(tg_leaf(tape, &xv, false), "x"), NULL, &noise_rng);
            if (graph && epoch == 1 && batch == 0) {   /* the tape, before backward forgets it */
                tg_err err;
                if (tg_tape_dot_save(tape, graph, &err) != 0) {
                    fprintf(stderr, "seed_vae: --graph: %s\n", err.msg);
                    return 1;
                }
            }
            tg_backward(tape, o.loss);
            tg_adam_step(opt);
            double loss = tg_tensor_get(&o.loss->val, 0);
            train_loss += loss;
            if (batch % 100 == 0)
                printf("Train Epoch: %lld [%lld/%lld (%.0f%%)]\tLoss: %.6f\n", epoch, (long long)(batch * B),
                       (long long)ds.train_x.n, 100.0 * (double)batch / (double)nbatches, loss / (double)rows);
            tg_tape_reset(tape);
        }
        double secs = now() - t0;
        printf("====> Epoch: %lld Average loss: %.4f\n", epoch, train_loss / (double)ds.train_x.n);

        /* Test: the same loss, one sample of z per image, no gradients. */
        double test_loss = 0;
        bool prev = tg_no_grad(tape);
        tg_batcher_start_epoch(test);
        while ((rows = tg_batcher_next(test, xb, NULL)) > 0) {
            tg_tensor xv = tg_tensor_wrap(TG_F32, TG_SHAPE(rows, D), xb->data);
            tg_vae_out o = tg_vae_forward(tape, &model, tg_leaf(tape, &xv, false), NULL, &noise_rng);
            test_loss += tg_tensor_get(&o.loss->val, 0);
            tg_tape_reset(tape);
        }
        tg_set_grad(tape, prev);
        printf("====> Test set loss: %.4f\n", test_loss / (double)ds.test_x.n);
        printf("====> Epoch %lld took %.2f s (%.0f images/s)\n", epoch, secs, (double)ds.train_x.n / secs);
        fflush(stdout);
    }

    int status = 0;
    if (save) {
        tg_err err;
        if (tg_params_save(ps, save, 0, NULL, NULL, &err) != 0) {
            fprintf(stderr, "seed_vae: %s\n", err.msg);
            status = 1;
        } else {
            printf("Saved %s\n", save);
        }
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) printf("Peak memory: %.1f MB\n", (double)ru.ru_maxrss / 1024.0);

    tg_batcher_free(train);
    tg_batcher_free(test);
    tg_arena_free(keep);
    tg_tape_free(tape);
    tg_adam_free(opt);
    tg_params_free(ps);
    tg_dataset_free(&ds);
    return status;
}
