/*
 * main.c — the `vae` program: the VAE family from the command line. Its
 * own logic lives beside it: training runs (train.c), evaluation and
 * sampling (evaluate.c), run directories (run_dir.c).
 *
 *     build/vae train --model vae|beta-vae|annealed-vae|cvae|iwae|conv-vae|vq-vae [flags]   (see --help)
 *     build/vae train --resume DIR [--epochs N]
 *     build/vae eval --run DIR [--data DIR] [--iw K] [--scores FILE.csv]   (examples/vae/evaluate.h)
 *     build/vae sample --run DIR --out FILE.png|FILE.idx [--n N] [--label L] [--temperature T]
 *     build/vae sample --run DIR --out FILE.png --traverse [--image I] [--cols 11]   (Gaussian latent)
 *     build/vae sample --run DIR --out FILE.png --interpolate I,J [--steps 10]
 *     build/vae sample --run DIR --out FILE.png --manifold [--steps 20]              (a latent of 2)
 *     build/vae encode --run DIR --out CODES.bin [--data DIR]                        (vq-vae codes)
 *     build/vae decode --run DIR --codes CODES.bin --out FILE.png|FILE.idx
 *
 * A codes file is a 20-byte header (magic "TGVQ", then uint32 little-endian
 * version 1, K, G and the image count) and the codes packed at ceil(log2 K)
 * bits each, least significant bit first; evaluate.h gives the layout.
 *
 * Flag errors exit 2 with one message naming the flag; data and file errors
 * exit 1 with the loader's or writer's message. The loop is examples/vae/train.c.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "examples/flags.h"
#include "examples/vae/evaluate.h"
#include "examples/vae/run_dir.h"
#include "examples/vae/train.h"
#include "io/idx_write.h"
#include "io/png.h"
#include "tensor/threads.h"

static const char usage[] =
    "usage: vae <command> [flags]\n"
    "\n"
    "commands:\n"
    "  train    train a model of the VAE family and write checkpoints, metrics and images\n"
    "  eval     evaluate a run on the test set: ELBO, recon, KL, importance-sampled NLL, active units\n"
    "  sample   draw images from a run's prior into a PNG grid or an IDX file, or pictures of\n"
    "           its latent: traversals, interpolations, the 2-D manifold\n"
    "  encode   write a vq-vae run's codes of the test set to a compact file\n"
    "  decode   decode such a file back into images\n"
    "\n"
    "`vae <command> --help` lists the flags.\n";

static const char train_usage[] =
    "usage: vae train [--model vae|beta-vae|annealed-vae|cvae|iwae|conv-vae|vq-vae] [--data DIR] [--epochs 10]\n"
    "                 [--batch 128] [--hidden 400[,H2...]] [--latent 20] [--lr 1e-3] [--beta 1] [--k 5]\n"
    "                 [--codes 64] [--code-dim 16] [--commitment 0.25]\n"
    "                 [--anneal linear|cyclical] [--anneal-epochs N] [--anneal-steps N] [--cycles C]\n"
    "                 [--ratio R] [--prior standard|learned] [--likelihood bernoulli|gaussian]\n"
    "                 [--binarize none|static|dynamic] [--seed 1] [--threads N] [--out DIR] [--force]\n"
    "                 [--graph FILE.dot] [--profile]\n"
    "       vae train --resume DIR [--epochs N] [--threads N] [--data DIR] [--graph FILE.dot] [--profile]\n"
    "\n"
    "  --model M          vae (the default), beta-vae (KL times --beta), annealed-vae\n"
    "                     (KL weight annealed to 1), cvae (conditioned on the label),\n"
    "                     iwae (the k-sample importance-weighted bound), conv-vae\n"
    "                     (convolutional networks), vq-vae (a grid of discrete codes)\n"
    "  --data DIR         MNIST-format IDX files (raw or .gz); default: data/mnist if\n"
    "                     present, else /usr/share/datasets/fashion-mnist\n"
    "  --epochs N         epochs (default 10)\n"
    "  --batch B          images per step (default 128)\n"
    "  --hidden H[,H2..]  MLP models: hidden layer sizes, encoder order, at most 8\n"
    "                     (default 400)\n"
    "  --latent L         latent dimensions (default 20)\n"
    "  --lr X             Adam learning rate (default 1e-3)\n"
    "  --beta X           beta-vae: weight of the KL term, >= 0 (default 1)\n"
    "  --k K              iwae: importance samples per image, 1 to 100000 (default 5)\n"
    "  --codes K          vq-vae: codebook size, 2 to 65536 (default 64)\n"
    "  --code-dim D       vq-vae: codebook vector size, 1 to 4096 (default 16)\n"
    "  --commitment X     vq-vae: weight of the commitment loss, >= 0 (default 0.25)\n"
    "                     (a model-specific flag given to another model is an error)\n"
    "  --anneal S         annealed-vae schedule: linear (default) or cyclical\n"
    "  --anneal-epochs N  linear: epoch e (from 1) trains at weight min(1, e / N)\n"
    "                     (default 10)\n"
    "  --anneal-steps N   linear: count steps instead, N steps from 0 to 1\n"
    "  --cycles C         cyclical: cycles over the run's --epochs (default 4); a run\n"
    "                     extended with --resume --epochs keeps this schedule, and its\n"
    "                     added epochs train at weight 1, where the schedule ends\n"
    "  --ratio R          cyclical: share of a cycle spent ramping up, in (0, 1] (default 0.5)\n"
    "  --prior P          standard (default) or learned (cvae only: p(z|y) learned per class)\n"
    "  --likelihood L     bernoulli (default) or gaussian (unit variance)\n"
    "  --binarize B       none (gray pixels, default), static (sampled once), dynamic\n"
    "                     (resampled every epoch)\n"
    "  --seed S           seed for initialisation, shuffling and sampling (default 1)\n"
    "  --threads N        threads (default: $TG_THREADS, else every core); results\n"
    "                     are identical for any N\n"
    "  --out DIR          output directory, created if missing (its parent must exist);\n"
    "                     a directory holding a run's files is refused (see --resume,\n"
    "                     --force); default runs/<model>-<YYYYmmdd-HHMMSS>, with -2,\n"
    "                     -3, ... added if that exists\n"
    "  --force            replace the run in --out: its files are removed first\n"
    "  --graph FILE       write the first step's tape to FILE in Graphviz's DOT\n"
    "                     language (render: dot -Tsvg FILE -o tape.svg)\n"
    "  --profile          after each epoch, where its training steps spent their time:\n"
    "                     data, zero_grad, forward, backward, optimizer, other\n"
    "  --resume DIR       continue the run in DIR from its last checkpoint, with the\n"
    "                     settings of DIR/config.json, up to --epochs in total (default:\n"
    "                     the run's epochs); the result is byte-identical to an\n"
    "                     uninterrupted run. The data must be the run's (counts and\n"
    "                     image size). Other flags are an error; a run that has the\n"
    "                     epochs already is left as it is\n"
    "  --help             this text\n"
    "\n"
    "Writes to DIR: model.safetensors, optimizer.safetensors, config.json, metrics.csv\n"
    "(epoch,train_loss,test_loss,<the model's terms>[,kl_weight],seconds: for the VAEs\n"
    "recon,kl,kl_weight, for vq-vae recon,codebook,commitment), curves.png,\n"
    "reconstruction_<epoch>.png and sample_<epoch>.png, all at the end of each epoch.\n"
    "Losses are nats per image; test_loss is the model's test objective (recon + kl,\n"
    "the negative ELBO, for the VAEs; the k-sample bound for iwae), train_loss the\n"
    "objective optimised.\n"
    "Each file is replaced atomically; killed at any moment, the run resumes from its\n"
    "last complete checkpoint. Ctrl-C (SIGINT) or SIGTERM ends the current step,\n"
    "saves the state and exits 0; a second one stops at once. One process at a time\n"
    "writes a run (DIR/.lock); a second fails at once. A run that fails before its\n"
    "first checkpoint leaves nothing. A progress bar is drawn on stderr when it is a\n"
    "terminal.\n";

/* Set by SIGINT or SIGTERM: tg_train_run saves and returns at the end of the
 * step. The handler is reset by the first signal, so a second one kills. */
static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) { stop_requested = sig; }

static void catch_stop_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The command being run, for messages: "vae train", "vae eval", "vae sample". */
static const char *prog = "vae train";

_Noreturn static void flag_error(const char *flag, const char *fmt, const char *val) {
    fprintf(stderr, "%s: %s: ", prog, flag);
    fprintf(stderr, fmt, val);
    fputc('\n', stderr);
    exit(2);
}

static long long parse_int(const char *flag, const char *s, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) flag_error(flag, "not an integer: \"%s\"", s);
    if (v < lo || v > hi) {
        fprintf(stderr, "%s: %s: %s is out of range [%lld, %lld]\n", prog, flag, s, lo, hi);
        exit(2);
    }
    return v;
}

static double parse_num(const char *flag, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end) flag_error(flag, "not a number: \"%s\"", s);
    if (!isfinite(v)) flag_error(flag, "must be finite, got \"%s\"", s);
    return v;
}

static int parse_enum(const char *flag, const char *s, const char *const names[], int n, const char *list) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    fprintf(stderr, "vae train: %s: unknown value \"%s\" (expected %s)\n", flag, s, list);
    exit(2);
}

static const char *const train_flags[] = {
    "--model", "--data",   "--epochs", "--batch",  "--hidden",     "--latent",   "--lr",    "--beta",
    "--anneal", "--anneal-epochs", "--anneal-steps", "--cycles", "--ratio", "--prior", "--likelihood",
    "--binarize", "--seed", "--threads", "--out", "--resume", "--k", "--codes", "--code-dim", "--commitment", "--graph",
};

/* dir made absolute against the working directory (into buf), so a run's
 * config.json names its data wherever a later command runs. */
static const char *absolute(const char *dir, char *buf, size_t n) {
    char cwd[4096];
    if (dir[0] == '/' || !getcwd(cwd, sizeof cwd) || (size_t)snprintf(buf, n, "%s/%s", cwd, dir) >= n) return dir;
    return buf;
}

/* Flags only some models read; given to another, they would do nothing, so
 * they are refused. */
static const struct {
    const char *flag, *models, *what;
} model_flags[] = {
    {"--beta", "beta-vae", "beta-vae"},
    {"--k", "iwae", "iwae"},
    {"--codes", "vq-vae", "vq-vae"},
    {"--code-dim", "vq-vae", "vq-vae"},
    {"--commitment", "vq-vae", "vq-vae"},
    {"--hidden", "vae beta-vae annealed-vae cvae iwae", "the MLP models (vae, beta-vae, annealed-vae, cvae, iwae)"},
};

/* Whether name is one of the space-separated words of list. */
static bool in_list(const char *name, const char *list) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    return false;
}

static int cmd_train(int argc, char **argv) {
    tg_train_opts o = tg_train_opts_default();
    const char *dir = NULL, *out = NULL, *resume = NULL, *other = NULL;
    bool given[sizeof model_flags / sizeof *model_flags] = {0};
    bool have_model = false, have_epochs = false, force = false, profile = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(train_usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--force")) {
            force = true;
            continue;
        }
        if (!strcmp(a, "--profile")) {
            profile = true;
            continue;
        }
        bool known = false;
        for (size_t k = 0; k < sizeof train_flags / sizeof *train_flags; k++) known |= !strcmp(a, train_flags[k]);
        if (!known) {
            fprintf(stderr, "vae train: unknown flag \"%s\" (see vae train --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vae train: %s: missing value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--resume") && strcmp(a, "--epochs") && strcmp(a, "--threads") && strcmp(a, "--data") &&
            strcmp(a, "--graph") && !other)
            other = a;
        for (size_t k = 0; k < sizeof model_flags / sizeof *model_flags; k++)
            given[k] |= !strcmp(a, model_flags[k].flag);
        if (!strcmp(a, "--resume")) resume = v;
        else if (!strcmp(a, "--model")) {
            if (!tg_model_find(v)) {
                fprintf(stderr, "vae train: --model: unknown value \"%s\" (expected %s)\n", v, tg_model_names());
                exit(2);
            }
            o.model = v;
            have_model = true;
        } else if (!strcmp(a, "--k")) o.k = parse_int(a, v, 1, TG_RUN_MAX_K);
        else if (!strcmp(a, "--codes")) o.codes = parse_int(a, v, 2, TG_RUN_MAX_CODES);
        else if (!strcmp(a, "--code-dim")) o.code_dim = parse_int(a, v, 1, TG_RUN_MAX_CODE_DIM);
        else if (!strcmp(a, "--commitment")) {
            o.commitment = parse_num(a, v);
            if (o.commitment < 0) flag_error(a, "must be >= 0, got \"%s\"", v);
        } else if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--graph")) {
            if (!v[0]) flag_error(a, "expected a file name, got \"%s\"", v);
            o.graph = v;
        }
        else if (!strcmp(a, "--epochs")) o.epochs = parse_int(a, v, 1, TG_RUN_MAX_EPOCHS), have_epochs = true;
        else if (!strcmp(a, "--batch")) o.batch = parse_int(a, v, 1, TG_RUN_MAX_BATCH);
        else if (!strcmp(a, "--latent")) o.latent = parse_int(a, v, 1, TG_RUN_MAX_LATENT);
        else if (!strcmp(a, "--hidden")) {
            o.n_hidden = tg_vae_parse_hidden(v, o.hidden);
            if (o.n_hidden < 0)
                flag_error(a, "malformed \"%s\" (expected 1 to 8 positive integers separated by commas)", v);
        } else if (!strcmp(a, "--lr")) {
            o.lr = parse_num(a, v);
            if (!(o.lr > 0)) flag_error(a, "must be positive, got \"%s\"", v);
        } else if (!strcmp(a, "--beta")) {
            o.beta = parse_num(a, v);
            if (o.beta < 0) flag_error(a, "must be >= 0, got \"%s\"", v);
        } else if (!strcmp(a, "--anneal")) {
            static const char *const s[] = {"linear", "cyclical"};
            o.anneal = parse_enum(a, v, s, 2, "linear or cyclical") ? TG_KL_CYCLICAL : TG_KL_LINEAR;
        } else if (!strcmp(a, "--anneal-epochs")) o.anneal_epochs = parse_int(a, v, 1, TG_RUN_MAX_EPOCHS);
        else if (!strcmp(a, "--anneal-steps")) o.anneal_steps = parse_int(a, v, 1, TG_RUN_MAX_STEPS);
        else if (!strcmp(a, "--cycles")) o.cycles = (int)parse_int(a, v, 1, TG_RUN_MAX_EPOCHS);
        else if (!strcmp(a, "--ratio")) {
            o.ratio = parse_num(a, v);
            if (!(o.ratio > 0 && o.ratio <= 1)) flag_error(a, "must be in (0, 1], got \"%s\"", v);
        } else if (!strcmp(a, "--prior")) {
            static const char *const s[] = {"standard", "learned"};
            o.prior = parse_enum(a, v, s, 2, "standard or learned") ? TG_PRIOR_LEARNED : TG_PRIOR_STANDARD;
        } else if (!strcmp(a, "--likelihood")) {
            static const char *const s[] = {"bernoulli", "gaussian"};
            o.lik = parse_enum(a, v, s, 2, "bernoulli or gaussian") ? TG_LIK_GAUSSIAN : TG_LIK_BERNOULLI;
        } else if (!strcmp(a, "--binarize")) {
            static const char *const s[] = {"none", "static", "dynamic"};
            o.binarize = (tg_binarize)parse_enum(a, v, s, 3, "none, static or dynamic");
        } else if (!strcmp(a, "--seed")) o.seed = (uint64_t)parse_int(a, v, 0, TG_RUN_MAX_SEED);
        else { /* --threads */
            o.threads = (int)parse_int(a, v, 1, TG_MAX_THREADS);
        }
    }
    tg_err err;
    tg_run_info ri;
    tg_run_dir rd = {.lock_fd = -1};
    if (resume) {
        if (other || force) {
            fprintf(stderr, "vae train: %s: not allowed with --resume (the run's config.json has the settings; "
                            "only --epochs, --threads, --data, --graph and --profile may be given)\n", other ? other : "--force");
            return 2;
        }
        int64_t epochs = o.epochs, done;
        int threads = o.threads;
        /* The lock first: then nobody writes the run while it is read. */
        if (tg_run_dir_open(&rd, resume, TG_RUN_DIR_RESUME, &err) != 0 ||
            tg_train_checkpoint_epoch(resume, &done, &err) != 0 || tg_run_info_load(resume, &ri, &err) != 0) {
            fprintf(stderr, "vae train: %s\n", err.msg);
            tg_run_dir_close(&rd, false);
            return 1;
        }
        const char *graph = o.graph;
        o = ri.o;
        o.graph = graph;
        if (have_epochs) o.epochs = epochs;
        if (threads) o.threads = threads;
        if (done >= o.epochs) {
            printf("%s has %lld epoch%s already (asked for %lld in total); nothing to do\n", resume,
                   (long long)done, done == 1 ? "" : "s", (long long)o.epochs);
            tg_run_dir_close(&rd, false);
            return 0;
        }
        if (!o.schedule_epochs) o.schedule_epochs = ri.o.epochs;   /* the schedule stays the run's */
        if (!dir) dir = o.data_dir;
        o.resume = true;
        out = resume;
        have_model = true;
    }
    if (!have_model) o.model = "vae";   /* a fresh run without --model trains the VAE */
    for (size_t k = 0; !resume && k < sizeof model_flags / sizeof *model_flags; k++)
        if (given[k] && !in_list(o.model, model_flags[k].models)) {
            fprintf(stderr, "vae train: %s: is read only by %s (--model is %s)\n", model_flags[k].flag,
                    model_flags[k].what, o.model);
            return 2;
        }
    if (o.prior == TG_PRIOR_LEARNED && !tg_model_find(o.model)->conditional) {
        fprintf(stderr, "vae train: --prior: learned needs --model cvae\n");
        return 2;
    }
    if (!resume && tg_train_opts_check(&o, 0, 0, &err) != 0) {
        /* The message starts with the setting's name: hidden -> --hidden. */
        char flag[32] = "--";
        size_t k = strcspn(err.msg, " :");
        for (size_t j = 0; j < k && j + 3 < sizeof flag; j++) flag[j + 2] = err.msg[j] == '_' ? '-' : err.msg[j];
        fprintf(stderr, "vae train: %s: %s\n", flag, err.msg);
        return 2;
    }
    if (out && strlen(out) > TG_RUN_DIR_MAX - 8) {
        fprintf(stderr, "vae train: --out: a directory name of %zu characters is too long (at most %d)\n", strlen(out),
                TG_RUN_DIR_MAX - 8);
        return 2;
    }
    char list[512];
    if (!resume && out && !force && tg_run_dir_list(out, list, sizeof list) > 0) {
        char ckpt[4200];
        snprintf(ckpt, sizeof ckpt, "%s/optimizer.safetensors", out);
        if (access(ckpt, F_OK) == 0)
            fprintf(stderr, "vae train: --out %s holds a run (%s); continue it with `vae train --resume %s`, or "
                            "choose another --out (--force replaces it)\n", out, list, out);
        else
            fprintf(stderr, "vae train: --out %s holds files of a run that saved no checkpoint (%s); start again "
                            "with --force to replace them, or choose another --out\n", out, list);
        return 1;
    }
    o.profile = profile;
    if (o.graph) tg_flag_out_file("vae train", "--graph", o.graph);   /* exits 1 if its directory is not writable */
    if (o.threads) tg_threads_set(o.threads);

    /* Data. */
    int rc = 1;
    if (!dir && !(dir = tg_dataset_default_dir())) {
        tg_dataset_print_help(stderr);
        if (resume) tg_run_dir_close(&rd, false);
        return 1;
    }
    tg_dataset ds;
    if (tg_dataset_load(dir, &ds, &err) != 0) {
        fprintf(stderr, "vae train: %s\n", err.msg);
        if (resume) tg_run_dir_close(&rd, false);
        return 1;
    }
    char abs_dir[4096];
    o.data_dir = absolute(dir, abs_dir, sizeof abs_dir);
    if (resume ? tg_run_check_data(&ri, resume, &ds, true, &err) != 0
               : tg_train_opts_check(&o, ds.train_x.rows, ds.train_x.cols, &err) != 0 &&
                     (tg_err_prefix(&err, ds.dir), 1)) {
        fprintf(stderr, "vae train: %s\n", err.msg);
        goto done;
    }

    /* Output directory: locked while we write it. */
    if (!resume) {
        char def[256];
        tg_run_dir_mode mode = force ? TG_RUN_DIR_FORCE : TG_RUN_DIR_NEW;
        if (!out) {
            time_t t = time(NULL);
            struct tm tm;
            localtime_r(&t, &tm);
            char stamp[32];
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
            snprintf(def, sizeof def, "runs/%s-%s", o.model, stamp);
            out = def, mode = TG_RUN_DIR_UNIQUE;
        }
        int r = tg_run_dir_open(&rd, out, mode, &err);
        if (r == -2)
            fprintf(stderr, "vae train: --out %s; continue it with `vae train --resume %s`, or choose another --out "
                            "(--force replaces it)\n", err.msg, out);
        else if (r != 0)
            fprintf(stderr, "vae train: --out: %s\n", err.msg);
        if (r != 0) {
            tg_dataset_free(&ds);
            return 1;
        }
    }
    o.out_dir = rd.path;

    printf("Dataset: %s (%lld train, %lld test images of %lldx%lld)\n", ds.dir, (long long)ds.train_x.n,
           (long long)ds.test_x.n, (long long)ds.train_x.rows, (long long)ds.train_x.cols);
    printf("Model: %s, %s %s\n", o.model, resume ? "resuming" : "writing to", rd.path);
    fflush(stdout);
    o.progress = isatty(STDERR_FILENO) ? stderr : NULL;
    o.stop = &stop_requested;
    catch_stop_signals();
    rc = tg_train_run(&o, &ds, stdout, &err);
    if (rc != 0) fprintf(stderr, "vae train: %s\n", err.msg);
done:
    tg_run_dir_close(&rd, rc != 0);   /* a fresh directory left empty by a failed run goes */
    tg_dataset_free(&ds);
    return rc;
}

/* ---------------------------------------------------------------- eval, sample */

static const char eval_usage[] =
    "usage: vae eval --run DIR [--data DIR] [--iw 1000] [--scores FILE.csv] [--seed 1] [--threads N]\n"
    "\n"
    "  --run DIR    a directory written by `vae train` (config.json, model.safetensors); required\n"
    "  --data DIR   MNIST-format IDX files; default: the run's data directory\n"
    "  --iw K       importance samples per image for nll (default 1000)\n"
    "  --scores F   also write F: index,label,score per test image, the score its\n"
    "               negative ELBO (the model's objective of the image alone), or its\n"
    "               importance-sampled -log p(x) when --iw is given: anomaly scores\n"
    "  --seed S     seed of the z and importance samples (default 1)\n"
    "  --threads N  threads (default: $TG_THREADS, else every core)\n"
    "  --help       this text\n"
    "\n"
    "Prints one JSON object over the test set (binarised as the run was), in nats per\n"
    "image: model; elbo (negative ELBO, one z sample: recon + kl) for the VAEs; each of\n"
    "the model's terms (recon, kl; vq-vae: recon, codebook, commitment); loss (the\n"
    "model's test objective); with a Gaussian latent nll (-log p(x), importance-sampled),\n"
    "active_units, kl_per_dim; with codes (vq-vae) codes, codes_used, perplexity,\n"
    "bits_per_image, bytes_per_image; iw_samples, images.\n";

static const char sample_usage[] =
    "usage: vae sample --run DIR --out FILE.png|FILE.idx [--n 64] [--label L] [--temperature 1] [--seed 1]\n"
    "                  [--threads N]\n"
    "       vae sample --run DIR --out FILE.png|FILE.idx --traverse [--image 0] [--cols 11] [--data DIR]\n"
    "       vae sample --run DIR --out FILE.png|FILE.idx --interpolate I,J [--steps 10] [--data DIR]\n"
    "       vae sample --run DIR --out FILE.png|FILE.idx --manifold [--steps 20] [--label L]\n"
    "\n"
    "  --run DIR        a directory written by `vae train`; required\n"
    "  --out FILE       .png: a grid, 8 samples per row, or the rows of a picture below;\n"
    "                   .idx: an IDX file of uint8 images, in the grid's order; required\n"
    "  --n N            samples (default 64)\n"
    "  --label L        cvae only: every sample of class L (default: sample i of class i % classes);\n"
    "                   with --manifold the class of every image (default 0)\n"
    "  --temperature T  z = prior mean + T * prior std * eps, T finite and >= 0 (default 1: the\n"
    "                   prior itself); 0 decodes the prior mean (the learned prior's mu_p(y),\n"
    "                   else 0), the same images for every seed. vq-vae: each grid position's\n"
    "                   code drawn from the run's code frequencies p^(1/T) (0: the most frequent)\n"
    "  --seed S         seed of the prior samples (default 1)\n"
    "  --threads N      threads (default: $TG_THREADS, else every core)\n"
    "  --help           this text\n"
    "\n"
    "Pictures of a Gaussian latent (not vq-vae's codes), instead of prior samples:\n"
    "  --traverse       one row per latent dimension l: z = the posterior mean of a test\n"
    "                   image, but z_l = -3 + 6 j / (cols - 1) in column j (-3 to 3; the\n"
    "                   middle column z_l = 0). A cvae decodes with the image's label\n"
    "  --image I        the test image of --traverse, from 0 (default 0)\n"
    "  --cols N         columns of --traverse, 2 to 256 (default 11)\n"
    "  --interpolate I,J  one row decoding z = (1 - t) mu_I + t mu_J, t from 0 to 1 in\n"
    "                   --steps, mu the posterior means of test images I and J: the first\n"
    "                   image decodes mu_I, the last mu_J (a cvae: label I while t < 1/2,\n"
    "                   then label J)\n"
    "  --manifold       for a latent of 2 dimensions: a --steps x --steps grid decoding z at\n"
    "                   the normal quantiles Phi^-1((k + 1/2) / steps), z_1 growing to the right,\n"
    "                   z_2 downwards (Kingma & Welling's figure; a learned prior's own\n"
    "                   quantiles, mu_p + sigma_p Phi^-1)\n"
    "  --steps N        images per row of --interpolate (default 10) or --manifold (default\n"
    "                   20), 2 to 256\n"
    "  --data DIR       the test images of --traverse and --interpolate (binarised as the run\n"
    "                   was; the index of an image counts from 0); default: the run's data\n";

/* Generic flag loop for eval and sample: returns the value of the flag at
 * argv[*i] (advancing *i), after checking it is one of flags[]. */
static const char *flag_value(int argc, char **argv, int *i, const char *const flags[], size_t n_flags,
                              const char *help_cmd) {
    const char *a = argv[*i];
    bool known = false;
    for (size_t k = 0; k < n_flags; k++) known |= !strcmp(a, flags[k]);
    if (!known) {
        fprintf(stderr, "%s: unknown flag \"%s\" (see vae %s --help)\n", prog, a, help_cmd);
        exit(2);
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s: missing value\n", prog, a);
        exit(2);
    }
    return argv[++*i];
}

static int cmd_eval(int argc, char **argv) {
    prog = "vae eval";
    static const char *const flags[] = {"--run", "--data", "--iw", "--seed", "--threads", "--scores"};
    const char *run = NULL, *dir = NULL, *scores = NULL;
    int64_t iw = 1000;
    bool have_iw = false;
    uint64_t seed = 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(eval_usage, stdout);
            return 0;
        }
        const char *a = argv[i], *v = flag_value(argc, argv, &i, flags, 6, "eval");
        if (!strcmp(a, "--run")) run = v;
        else if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--scores")) scores = v;
        else if (!strcmp(a, "--iw")) iw = parse_int(a, v, 1, (long long)1 << 40), have_iw = true;
        else if (!strcmp(a, "--seed")) seed = (uint64_t)parse_int(a, v, 0, TG_RUN_MAX_SEED);
        else tg_threads_set((int)parse_int(a, v, 1, TG_MAX_THREADS));
    }
    if (!run) {
        fprintf(stderr, "vae eval: --run: required (a directory written by vae train)\n");
        return 2;
    }
    if (scores && scores[0] == '\0') flag_error("--scores", "expected a file name, got \"%s\"", scores);
    tg_err err;
    tg_run_info ri;
    tg_model m;
    if (tg_run_info_load(run, &ri, &err) != 0) {
        fprintf(stderr, "vae: %s\n", err.msg);
        return 1;
    }
    tg_params *ps = tg_run_model_load(run, &ri, &m, &err);
    if (!ps) {
        fprintf(stderr, "vae: %s\n", err.msg);
        return 1;
    }
    /* Scores are the per-image negative ELBO unless --iw asks for the IS-NLL. */
    if (scores && !have_iw) iw = 0;
    const bool explicit_data = dir != NULL;
    if (!dir) dir = ri.data[0] ? ri.data : tg_dataset_default_dir();
    if (!dir) {
        tg_dataset_print_help(stderr);
        tg_model_free(&m);
        tg_params_free(ps);
        return 1;
    }
    tg_dataset ds;
    if (tg_dataset_load(dir, &ds, &err) != 0) {
        fprintf(stderr, "vae: %s\n", err.msg);
        tg_model_free(&m);
        tg_params_free(ps);
        return 1;
    }
    tg_eval_result r;
    int rc = 1;
    /* The run's own data must be what it was; other data (--data) only of its image size. */
    if (tg_run_check_data(&ri, run, &ds, !explicit_data, &err) != 0) {
        fprintf(stderr, "vae eval: %s\n", err.msg);
    } else if (tg_run_evaluate(&m, &ri, &ds, iw, seed, scores != NULL, NULL, &r, &err) != 0) {
        fprintf(stderr, "vae: %s\n", err.msg);
    } else if (scores && tg_eval_scores_write(&r, scores, &err) != 0) {
        fprintf(stderr, "vae eval: --scores: %s\n", err.msg);
        tg_eval_result_free(&r);
    } else {
        tg_jsonw w;
        const char *s = tg_eval_result_json(&r, &w);
        if (s) {
            printf("%s\n", s);
            rc = 0;   /* a failed write to stdout is caught in main */
        } else {
            fprintf(stderr, "vae: out of memory\n");
        }
        tg_jsonw_free(&w);
        tg_eval_result_free(&r);
    }
    tg_dataset_free(&ds);
    tg_model_free(&m);
    tg_params_free(ps);
    return rc;
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n > k && !strcmp(s + n - k, suf);
}

/* The run's test set as its trainer saw it (tg_run_test_images), from dir
 * (NULL: the run's own data, which must be what it was; another only of its
 * image size). 0, or 1 with the message printed. Free test and ds after. */
static int load_test_set(const char *run, const tg_run_info *ri, const char *dir, tg_dataset *ds, tg_images *test) {
    tg_err err;
    const bool explicit_data = dir != NULL;
    if (!dir) dir = ri->data[0] ? ri->data : tg_dataset_default_dir();
    if (!dir) {
        tg_dataset_print_help(stderr);
        return 1;
    }
    if (tg_dataset_load(dir, ds, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    if (tg_run_check_data(ri, run, ds, !explicit_data, &err) != 0 || tg_run_test_images(ri, ds, test, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        tg_dataset_free(ds);
        return 1;
    }
    return 0;
}

/* Writes n images (n, rows, cols) to out: a PNG grid of cols_per_row, or an IDX file. 0, or 1 with the message. */
static int write_images(const char *out, const uint8_t *px, int64_t n, int64_t rows, int64_t cols,
                        int64_t cols_per_row) {
    tg_err err;
    int w = ends_with(out, ".png") ? tg_png_write_grid(out, px, n, rows, cols, cols_per_row, 2, &err)
                                   : tg_idx_images_save(out, px, n, rows, cols, &err);
    if (w != 0) fprintf(stderr, "%s: %s\n", prog, err.msg);
    return w != 0;
}

/* malloc(n * D) for n images of D pixels, refusing more than a file may hold. NULL with the message printed. */
static uint8_t *image_buffer(int64_t n, int64_t D) {
    if (n > (int64_t)(TG_DATA_MAX_BYTES / (size_t)D)) {
        fprintf(stderr, "%s: %lld images of %lld pixels are more than a file may hold (%zu bytes)\n", prog,
                (long long)n, (long long)D, TG_DATA_MAX_BYTES);
        return NULL;
    }
    uint8_t *px = malloc((size_t)(n * D));
    if (!px) fprintf(stderr, "%s: out of memory\n", prog);
    return px;
}

/* "I,J": two integers in [0, 2^31) for --interpolate. */
static void parse_pair(const char *flag, const char *s, int64_t *i, int64_t *j) {
    char *end, *end2;
    errno = 0;
    long long a = strtoll(s, &end, 10), b = *end == ',' ? strtoll(end + 1, &end2, 10) : -1;
    if (errno || end == s || *end != ',' || end2 == end + 1 || *end2 || a < 0 || b < 0 || a > INT32_MAX ||
        b > INT32_MAX)
        flag_error(flag, "expected two test image indices I,J (e.g. 0,1), got \"%s\"", s);
    *i = a, *j = b;
}

typedef enum { SAMPLE_PRIOR, SAMPLE_TRAVERSE, SAMPLE_INTERPOLATE, SAMPLE_MANIFOLD } sample_mode;

static int cmd_sample(int argc, char **argv) {
    prog = "vae sample";
    static const char *const flags[] = {"--run",   "--n",   "--label", "--temperature", "--seed", "--out",
                                        "--threads", "--interpolate", "--image", "--cols", "--steps", "--data"};
    static const char *const mode_flag[] = {NULL, "--traverse", "--interpolate", "--manifold"};
    const char *run = NULL, *out = NULL, *label_s = NULL, *dir = NULL;
    const char *prior_only = NULL;   /* a flag of prior samples (--n, --temperature, --seed), if given */
    const char *steps_s = NULL, *image_s = NULL, *cols_s = NULL;
    int64_t n = 64, label = -1, image = 0, cols = 11, steps = -1, ia = 0, ib = 0;
    double temperature = 1;
    uint64_t seed = 1;
    sample_mode mode = SAMPLE_PRIOR;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(sample_usage, stdout);
            return 0;
        }
        sample_mode mm = !strcmp(a, "--traverse") ? SAMPLE_TRAVERSE : !strcmp(a, "--manifold") ? SAMPLE_MANIFOLD
                         : !strcmp(a, "--interpolate")               ? SAMPLE_INTERPOLATE
                                                                     : SAMPLE_PRIOR;
        if (mm != SAMPLE_PRIOR) {
            if (mode != SAMPLE_PRIOR && mode != mm) flag_error(a, "one picture at a time: not with %s", mode_flag[mode]);
            mode = mm;
            if (mm != SAMPLE_INTERPOLATE) continue;
        }
        const char *v = flag_value(argc, argv, &i, flags, sizeof flags / sizeof *flags, "sample");
        if (!strcmp(a, "--run")) run = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--interpolate")) parse_pair(a, v, &ia, &ib);
        else if (!strcmp(a, "--image")) image = parse_int(a, v, 0, INT32_MAX), image_s = v;
        else if (!strcmp(a, "--cols")) cols = parse_int(a, v, 2, 256), cols_s = a;
        else if (!strcmp(a, "--steps")) steps = parse_int(a, v, 2, 256), steps_s = a;
        else if (!strcmp(a, "--n")) n = parse_int(a, v, 1, 1 << 20), prior_only = a;
        else if (!strcmp(a, "--label")) label = parse_int(a, v, 0, 255), label_s = v;
        else if (!strcmp(a, "--temperature")) {
            temperature = parse_num(a, v), prior_only = a;
            if (temperature < 0) flag_error(a, "must be >= 0, got \"%s\"", v);
        } else if (!strcmp(a, "--seed")) seed = (uint64_t)parse_int(a, v, 0, TG_RUN_MAX_SEED), prior_only = a;
        else tg_threads_set((int)parse_int(a, v, 1, TG_MAX_THREADS));
    }
    /* Flags of one kind of picture only. */
    const char *m_flag = mode_flag[mode];
    if (mode != SAMPLE_PRIOR && prior_only) flag_error(prior_only, "a setting of prior samples, not of %s", m_flag);
    if (mode != SAMPLE_TRAVERSE && (image_s || cols_s)) flag_error(image_s ? "--image" : "--cols", "%s",
                                                                     "only with --traverse");
    if (steps_s && mode != SAMPLE_INTERPOLATE && mode != SAMPLE_MANIFOLD)
        flag_error("--steps", "%s", "only with --interpolate or --manifold");
    if (dir && mode != SAMPLE_TRAVERSE && mode != SAMPLE_INTERPOLATE)
        flag_error("--data", "%s", "only with --traverse or --interpolate (which encode test images)");
    if (label_s && (mode == SAMPLE_TRAVERSE || mode == SAMPLE_INTERPOLATE))
        flag_error("--label", "not with %s: the test images' own labels are used", m_flag);
    if (steps < 0) steps = mode == SAMPLE_MANIFOLD ? 20 : 10;
    if (!run) {
        fprintf(stderr, "vae sample: --run: required (a directory written by vae train)\n");
        return 2;
    }
    if (!out) {
        fprintf(stderr, "vae sample: --out: required (FILE.png or FILE.idx)\n");
        return 2;
    }
    const bool png = ends_with(out, ".png");
    if (!png && !ends_with(out, ".idx")) flag_error("--out", "expected a name ending in .png or .idx, got \"%s\"", out);
    tg_err err;
    tg_run_info ri;
    tg_model m;
    if (tg_run_info_load(run, &ri, &err) != 0) {
        fprintf(stderr, "vae: %s\n", err.msg);
        return 1;
    }
    if (label_s && ri.classes == 0) flag_error("--label", "the model of this run is not conditional (got \"%s\")", label_s);
    if (label_s && label >= ri.classes) {
        fprintf(stderr, "vae sample: --label: %s is out of range [0, %lld)\n", label_s, (long long)ri.classes);
        return 2;
    }
    if (mode != SAMPLE_PRIOR && !tg_model_find(ri.o.model)->posterior)
        flag_error(m_flag, "the model's latent is discrete (%s)", ri.o.model);
    if (mode == SAMPLE_MANIFOLD && ri.o.latent != 2) {
        fprintf(stderr, "vae sample: --manifold: needs a latent of 2 dimensions; the run's has %lld (train with "
                        "--latent 2)\n", (long long)ri.o.latent);
        return 2;
    }
    const int64_t D = ri.rows * ri.cols, L = ri.o.latent;
    tg_dataset ds = {0};
    tg_images test = {0};
    if ((mode == SAMPLE_TRAVERSE || mode == SAMPLE_INTERPOLATE) && load_test_set(run, &ri, dir, &ds, &test) != 0)
        return 1;
    const bool have_test = test.pixels != NULL;
    int rc = 1;
    const int64_t bad = mode == SAMPLE_TRAVERSE ? (image >= test.n ? image : -1)
                        : mode == SAMPLE_INTERPOLATE ? (ia >= test.n ? ia : ib >= test.n ? ib : -1)
                                                     : -1;
    if (bad >= 0) {
        fprintf(stderr, "vae sample: %s: image %lld is out of range [0, %lld) (the run's test set)\n",
                mode == SAMPLE_TRAVERSE ? "--image" : "--interpolate", (long long)bad, (long long)test.n);
        tg_images_free(&test), tg_dataset_free(&ds);
        return 2;
    }
    tg_params *ps = tg_run_model_load(run, &ri, &m, &err);
    if (!ps) {
        fprintf(stderr, "vae: %s\n", err.msg);
        if (have_test) tg_images_free(&test), tg_dataset_free(&ds);
        return 1;
    }
    /* The picture: count images, per_row of them to a grid row. */
    const int64_t count = mode == SAMPLE_TRAVERSE ? L * cols : mode == SAMPLE_INTERPOLATE ? steps
                          : mode == SAMPLE_MANIFOLD ? steps * steps : n;
    const int64_t per_row = mode == SAMPLE_TRAVERSE ? cols : mode == SAMPLE_PRIOR ? 8 : steps;
    uint8_t *px = image_buffer(count, D);
    float *mu = malloc(sizeof(float) * (size_t)(2 * L));
    int w = -1;
    if (px && !mu) fprintf(stderr, "vae: out of memory\n");
    else if (px) {
        const uint8_t *y = ds.test_y.labels;
        switch (mode) {
        case SAMPLE_PRIOR:
            w = tg_run_sample(&m, n, (int)label, temperature, seed, px, &err);
            break;
        case SAMPLE_TRAVERSE:
            tg_run_posterior_mean(&m, &test, image, ri.classes ? y[image] : 0, mu);
            w = tg_run_traverse(&m, mu, ri.classes ? y[image] : 0, cols, px, &err);
            break;
        case SAMPLE_INTERPOLATE:
            tg_run_posterior_mean(&m, &test, ia, ri.classes ? y[ia] : 0, mu);
            tg_run_posterior_mean(&m, &test, ib, ri.classes ? y[ib] : 0, mu + L);
            w = tg_run_interpolate(&m, mu, ri.classes ? y[ia] : 0, mu + L, ri.classes ? y[ib] : 0, steps, px, &err);
            break;
        case SAMPLE_MANIFOLD:
            w = tg_run_manifold(&m, steps, label >= 0 ? (int)label : 0, px, &err);
            break;
        }
        if (w != 0) fprintf(stderr, "vae: %s\n", err.msg);
        else rc = write_images(out, px, count, ri.rows, ri.cols, per_row);
    }
    free(px), free(mu);
    if (have_test) tg_images_free(&test), tg_dataset_free(&ds);
    tg_model_free(&m);
    tg_params_free(ps);
    return rc;
}

/* ---------------------------------------------------------------- encode, decode */

static const char codes_usage[] =
    "usage: vae encode --run DIR --out CODES.bin [--data DIR] [--threads N]\n"
    "       vae decode --run DIR --codes CODES.bin --out FILE.png|FILE.idx [--threads N]\n"
    "\n"
    "For a model with discrete codes (vq-vae). encode writes the codes of the run's\n"
    "test set (binarised as the run was) to CODES.bin, log2(K) bits per code (rounded\n"
    "up for K not a power of two) after a 20-byte header (the format: examples/vae/\n"
    "evaluate.h), and prints the bytes per image against the raw image's. decode\n"
    "reads them back and writes the images the run's decoder makes of them.\n"
    "\n"
    "  --run DIR      a directory written by `vae train --model vq-vae`; required\n"
    "  --out FILE     encode: the codes file; decode: .png, a grid of 8 images per row,\n"
    "                 or .idx, an IDX file of uint8 images; required. Written\n"
    "                 atomically: a failed command leaves nothing\n"
    "  --data DIR     encode: MNIST-format IDX files; default: the run's data directory\n"
    "  --codes FILE   decode: a file written by `vae encode` with a run of the same\n"
    "                 codebook size and grid; required\n"
    "  --threads N    threads (default: $TG_THREADS, else every core)\n"
    "  --help         this text\n";

/* Loads a run whose model has codes: 0, 2 (a Gaussian model, named), or 1; the message printed. */
static int codes_run(const char *run, tg_run_info *ri) {
    tg_err err;
    if (tg_run_info_load(run, ri, &err) != 0) {
        fprintf(stderr, "vae: %s\n", err.msg);
        return 1;
    }
    if (tg_model_find(ri->o.model)->posterior) {
        fprintf(stderr, "%s: --run: the model of %s is %s, whose latent is Gaussian: it has no codes (vq-vae has)\n",
                prog, run, ri->o.model);
        return 2;
    }
    return 0;
}

static int cmd_encode(int argc, char **argv) {
    prog = "vae encode";
    static const char *const flags[] = {"--run", "--out", "--data", "--threads"};
    const char *run = NULL, *out = NULL, *dir = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(codes_usage, stdout);
            return 0;
        }
        const char *a = argv[i], *v = flag_value(argc, argv, &i, flags, 4, "encode");
        if (!strcmp(a, "--run")) run = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--data")) dir = v;
        else tg_threads_set((int)parse_int(a, v, 1, TG_MAX_THREADS));
    }
    if (!run) flag_error("--run", "%s", "required (a directory written by vae train --model vq-vae)");
    if (!out || !out[0]) flag_error("--out", "%s", "required (the codes file to write)");
    tg_run_info ri;
    int rc = codes_run(run, &ri);
    if (rc != 0) return rc;
    tg_err err;
    tg_model m;
    tg_dataset ds;
    tg_images test;
    tg_params *ps = tg_run_model_load(run, &ri, &m, &err);
    if (!ps) {
        fprintf(stderr, "vae: %s\n", err.msg);
        return 1;
    }
    if (load_test_set(run, &ri, dir, &ds, &test) != 0) {
        tg_model_free(&m);
        tg_params_free(ps);
        return 1;
    }
    tg_codes c;
    rc = 1;
    if (tg_run_encode(&m, &test, &c, &err) != 0 || tg_codes_write(out, &c, &err) != 0) {
        fprintf(stderr, "vae encode: %s\n", err.msg);
    } else {
        const int b = tg_codes_bits(c.K);
        const double per_image = (double)(c.G * b) / 8, raw = (double)(ri.rows * ri.cols);
        printf("%s: %lld images, %lld codes each of %d bits (K = %lld): %g bytes per image against the raw "
               "image's %g, %.2f times smaller; %lld bytes with the %d-byte header\n",
               out, (long long)c.n, (long long)c.G, b, (long long)c.K, per_image, raw, raw / per_image,
               (long long)tg_codes_file_size(c.K, c.G, c.n), TG_CODES_HEADER);
        rc = 0;
    }
    tg_codes_free(&c);
    tg_images_free(&test);
    tg_dataset_free(&ds);
    tg_model_free(&m);
    tg_params_free(ps);
    return rc;
}

static int cmd_decode(int argc, char **argv) {
    prog = "vae decode";
    static const char *const flags[] = {"--run", "--codes", "--out", "--threads"};
    const char *run = NULL, *codes = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(codes_usage, stdout);
            return 0;
        }
        const char *a = argv[i], *v = flag_value(argc, argv, &i, flags, 4, "decode");
        if (!strcmp(a, "--run")) run = v;
        else if (!strcmp(a, "--codes")) codes = v;
        else if (!strcmp(a, "--out")) out = v;
        else tg_threads_set((int)parse_int(a, v, 1, TG_MAX_THREADS));
    }
    if (!run) flag_error("--run", "%s", "required (a directory written by vae train --model vq-vae)");
    if (!codes) flag_error("--codes", "%s", "required (a file written by vae encode)");
    if (!out) flag_error("--out", "%s", "required (FILE.png or FILE.idx)");
    if (!ends_with(out, ".png") && !ends_with(out, ".idx"))
        flag_error("--out", "expected a name ending in .png or .idx, got \"%s\"", out);
    tg_run_info ri;
    int rc = codes_run(run, &ri);
    if (rc != 0) return rc;
    tg_err err;
    tg_codes c;
    if (tg_codes_read(codes, &c, &err) != 0) {
        fprintf(stderr, "vae decode: %s\n", err.msg);
        return 1;
    }
    tg_model m;
    tg_params *ps = tg_run_model_load(run, &ri, &m, &err);
    if (!ps) {
        fprintf(stderr, "vae: %s\n", err.msg);
        tg_codes_free(&c);
        return 1;
    }
    const int64_t G = tg_run_codes_per_image(&m);
    if (c.K != m.cfg.codes || c.G != G) {
        fprintf(stderr, "vae decode: %s: codes of a codebook of K = %lld, G = %lld per image, written for another "
                        "run: the run in %s has K = %lld, G = %lld\n", codes, (long long)c.K, (long long)c.G, run,
                (long long)m.cfg.codes, (long long)G);
        tg_codes_free(&c);
        tg_model_free(&m);
        tg_params_free(ps);
        return 1;
    }
    const int64_t D = ri.rows * ri.cols;
    uint8_t *px = image_buffer(c.n, D);
    rc = 1;
    if (px) {
        if (tg_run_decode_codes(&m, &c, px, &err) != 0) fprintf(stderr, "vae decode: %s\n", err.msg);
        else rc = write_images(out, px, c.n, ri.rows, ri.cols, 8);
    }
    free(px);
    tg_codes_free(&c);
    tg_model_free(&m);
    tg_params_free(ps);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    int rc;
    if (!strcmp(cmd, "train")) rc = cmd_train(argc - 2, argv + 2);
    else if (!strcmp(cmd, "eval")) rc = cmd_eval(argc - 2, argv + 2);
    else if (!strcmp(cmd, "sample")) rc = cmd_sample(argc - 2, argv + 2);
    else if (!strcmp(cmd, "encode")) rc = cmd_encode(argc - 2, argv + 2);
    else if (!strcmp(cmd, "decode")) rc = cmd_decode(argc - 2, argv + 2);
    else {
        fprintf(stderr, "vae: unknown command \"%s\"\n%s", cmd, usage);
        return 2;
    }
    /* Output lost on the way to stdout (a full disk, a closed pipe) is an error too. */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "vae: standard output: write error%s%s\n", errno ? ": " : "", errno ? strerror(errno) : "");
        return rc ? rc : 1;
    }
    return rc;
}
