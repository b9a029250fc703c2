/*
 * test_vae_bad_input.c — every kind of bad input, through the real build/vae:
 * one message naming the file or flag and the problem, exit 1 (2 for usage),
 * no crash, and nothing written. Data files, checkpoints and config.json,
 * outputs that cannot be written or a full disk (RLIMIT_FSIZE, so every
 * write's error path runs) and stdout on a full device.
 *
 * Flag errors (unknown, missing value, not a number, out of range: --epochs 0,
 * --batch 0, --latent 0, --lr nan/inf/negative, --beta negative, --label
 * outside the classes, --threads 0, ...) are the tables of
 * test_vae_cli.c:flag_errors and test_vae_eval.c:flag_errors.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/safetensors.h"

#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define SMALL "--epochs 1 --batch 16 --hidden 32 --latent 4 --threads 1"

static const char *const data_files[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

static int run_limited(const char *args, long as_mb, long fsize, const char *out_path) {
    return tg_cli_run_limited(NULL, args, as_mb, fsize, out_path);
}

#define expect_error tg_cli_expect_error

/* No temporary files ("*.tmp.*") left in dir. */
static void expect_no_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    while ((ent = readdir(d))) cr_expect(!strstr(ent->d_name, ".tmp."), "%s/%s left behind", dir, ent->d_name);
    closedir(d);
}

/* ---------------------------------------------------------------- data */

/* A copy of the good dataset in dir "bad", with file `name` replaced by
 * bytes[0..n) (or removed if bytes is NULL); then `vae train` on it must fail
 * naming `named` (the file, or the directory for a mismatch between files)
 * and `needle`, leaving no output directory. */
static void bad_data_named(const char *name, const char *named, const void *bytes, size_t n, const char *needle,
                           long as_mb) {
    tg_remove_tree(tg_tmp("bad"));
    mkdir(tg_tmp("bad"), 0777);
    for (int i = 0; i < 4; i++) {
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/%s", tg_tmp("data"), data_files[i]);
        snprintf(dst, sizeof dst, "%s/%s", tg_tmp("bad"), data_files[i]);
        size_t k;
        uint8_t *b = tg_slurp(src, &k);
        tg_spit(dst, b, k);
        free(b);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tg_tmp("bad"), name);
    if (strstr(name, ".gz")) {   /* replace the raw file by its .gz */
        char raw[512];
        snprintf(raw, sizeof raw, "%.*s", (int)(strlen(path) - 3), path);
        unlink(raw);
    }
    if (bytes) tg_spit(path, bytes, n);
    else unlink(path);
    char a[1024];
    snprintf(a, sizeof a, "train --model vae " SMALL " --data %s --out %s", tg_tmp("bad"), tg_tmp("out"));
    const char *needles[] = {named, needle, NULL};
    expect_error(name, run_limited(a, as_mb, 0, NULL), 1, needles);
    cr_expect(access(tg_tmp("out"), F_OK) != 0, "%s: output directory created", name);
}

static void bad_data(const char *name, const void *bytes, size_t n, const char *needle, long as_mb) {
    bad_data_named(name, name, bytes, n, needle, as_mb);
}

static uint8_t *good_file(const char *name, size_t *n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tg_tmp("data"), name);
    return tg_slurp(p, n);
}

/* file (of the good dataset) gzipped by the system's gzip, into *n bytes. */
static uint8_t *gzipped(const char *name, size_t *n) {
    char cmd[1024], gz[512];
    snprintf(gz, sizeof gz, "%s/%s.gz", tg_tmp("data"), name);
    snprintf(cmd, sizeof cmd, "gzip -n -c %s/%s > %s", tg_tmp("data"), name, gz);
    cr_assert_eq(system(cmd), 0, "gzip failed");
    uint8_t *b = tg_slurp(gz, n);
    unlink(gz);
    return b;
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

TestSuite(vae_bad_input, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

Test(vae_bad_input, data_files) {
    size_t n, nl;
    uint8_t *img = good_file("train-images-idx3-ubyte", &n), *lab = good_file("train-labels-idx1-ubyte", &nl);
    uint8_t *b = malloc(n + 16);

    /* Missing directory, missing file. */
    char a[1024];
    snprintf(a, sizeof a, "train --model vae --data %s --out %s", tg_tmp("nodata"), tg_tmp("out"));
    const char *nodir[] = {"nodata", NULL};
    expect_error("missing directory", run_limited(a, 0, 0, NULL), 1, nodir);
    bad_data("train-labels-idx1-ubyte", NULL, 0, "", 0);

    /* Wrong magic: the labels' magic on the images, and garbage. */
    memcpy(b, img, n);
    be32(b, 0x00000801);
    bad_data("train-images-idx3-ubyte", b, n, "magic", 0);
    be32(b, 0x12345678);
    bad_data("train-images-idx3-ubyte", b, n, "magic", 0);

    /* Truncated: inside the header, inside the pixels. */
    bad_data("train-images-idx3-ubyte", img, 10, "", 0);
    bad_data("train-images-idx3-ubyte", img, n - 100, "", 0);

    /* gzip: truncated, CRC and length mismatches. */
    size_t ng;
    uint8_t *gz = gzipped("train-images-idx3-ubyte", &ng);
    bad_data("train-images-idx3-ubyte.gz", gz, ng / 2, "", 0);
    gz[ng - 8] ^= 0x55;   /* CRC-32 */
    bad_data("train-images-idx3-ubyte.gz", gz, ng, "CRC", 0);
    gz[ng - 8] ^= 0x55;
    gz[ng - 4] ^= 0x01;   /* ISIZE */
    bad_data("train-images-idx3-ubyte.gz", gz, ng, "ISIZE", 0);
    free(gz);

    /* Images and labels of different counts; train and test images of different sizes. */
    memcpy(b, lab, nl);
    be32(b + 4, TG_CLI_NTRAIN - 1);
    bad_data("train-labels-idx1-ubyte", b, nl - 1, "", 0);
    {
        /* 32 test images of 28x27. */
        size_t nt = 16 + (size_t)TG_CLI_NTEST * 28 * 27;
        uint8_t *t = calloc(nt, 1);
        be32(t, 0x00000803), be32(t + 4, TG_CLI_NTEST), be32(t + 8, 28), be32(t + 12, 27);
        bad_data_named("t10k-images-idx3-ubyte", "bad", t, nt, "28x27", 0);
        free(t);
    }

    /* Headers claiming absurd sizes: an error, with no giant allocation
     * (the program runs with 1 GiB of address space). */
    memcpy(b, img, 16);
    be32(b + 4, 0xffffffffu), be32(b + 8, 0xffff), be32(b + 12, 0xffff);
    bad_data("train-images-idx3-ubyte", b, 16 + 1000, "", 1024);
    be32(b + 4, 60000), be32(b + 8, 4096), be32(b + 12, 4096);   /* 1 TB of pixels */
    bad_data("train-images-idx3-ubyte", b, 16 + 1000, "", 1024);
    memcpy(b, lab, 8);
    be32(b + 4, 0x7fffffffu);
    bad_data("train-labels-idx1-ubyte", b, 8 + 64, "", 1024);

    /* A label outside the classes. */
    memcpy(b, lab, nl);
    b[8 + 5] = 10;
    bad_data("train-labels-idx1-ubyte", b, nl, "", 0);
    b[8 + 5] = 255;
    bad_data("train-labels-idx1-ubyte", b, nl, "", 0);
    free(b);
    free(img);
    free(lab);
}

/* ---------------------------------------------------------------- checkpoints */

/* With run "run" damaged by the caller: eval and sample must each fail
 * naming `file` and needle, and sample must write nothing. */
static void bad_run(const char *what, const char *file, const char *needle) {
    char a[1024];
    const char *needles[] = {file, needle, NULL};
    snprintf(a, sizeof a, "eval --run %s --iw 2", tg_tmp("run"));
    expect_error(what, run_limited(a, 0, 0, NULL), 1, needles);
    snprintf(a, sizeof a, "sample --run %s --out %s", tg_tmp("run"), tg_tmp("s.png"));
    expect_error(what, run_limited(a, 0, 0, NULL), 1, needles);
    cr_expect(access(tg_tmp("s.png"), F_OK) != 0, "%s: sample wrote its output", what);
}

Test(vae_bad_input, checkpoints_and_config) {
    char a[1024];
    snprintf(a, sizeof a, "train --model vae " SMALL " --data %s --out %s", tg_tmp("data"), tg_tmp("run"));
    cr_assert_eq(run_limited(a, 0, 0, NULL), 0, "%s", tg_cli_text("stderr"));
    snprintf(a, sizeof a, "train --model vae --epochs 1 --batch 16 --hidden 16 --latent 4 --threads 1 --data %s --out %s",
             tg_tmp("data"), tg_tmp("h16"));
    cr_assert_eq(run_limited(a, 0, 0, NULL), 0, "%s", tg_cli_text("stderr"));
    char model[512], config[512];
    snprintf(model, sizeof model, "%s", tg_tmp("run/model.safetensors"));
    snprintf(config, sizeof config, "%s", tg_tmp("run/config.json"));
    size_t n, nc;
    uint8_t *good = tg_slurp(model, &n), *good_cfg = tg_slurp(config, &nc);
    uint8_t *b = malloc(n);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)good[i] << (8 * i);

    tg_spit(model, good, n / 2);
    bad_run("truncated", "model.safetensors", "");
    tg_spit(model, good, 5);
    bad_run("shorter than its length field", "model.safetensors", "");
    memcpy(b, good, n);
    b[7] = 0x10;   /* header length beyond the file */
    tg_spit(model, b, n);
    bad_run("header length beyond the file", "model.safetensors", "");
    memcpy(b, good, n);
    memset(b + 8 + hlen / 2, '{', 4);   /* malformed JSON */
    tg_spit(model, b, n);
    bad_run("malformed JSON", "model.safetensors", "");
    memcpy(b, good, n);
    char *dt = strstr((char *)b + 8, "\"F32\"");
    cr_assert(dt && (uint64_t)(dt - (char *)b) < 8 + hlen);
    memcpy(dt, "\"Q32\"", 5);   /* unknown dtype */
    tg_spit(model, b, n);
    bad_run("unknown dtype", "model.safetensors", "Q32");
    float four[1] = {0};
    tg_spit_safetensors(model, "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1200000]}}", four, 4);
    bad_run("offsets outside the data", "model.safetensors", "");
    tg_spit_safetensors(model, "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", four, 4);
    bad_run("tensors missing", "model.safetensors", "");
    {   /* every tensor but one, written by the library itself */
        tg_safetensors st;
        tg_err e;
        tg_spit(model, good, n);
        cr_assert_eq(tg_safetensors_read(model, &st, &e), 0, "%s", e.msg);
        const char *names[16];
        const tg_tensor *ts[16];
        int k = 0;
        for (int i = 0; i < st.n && k < 16; i++)
            if (strcmp(st.tensors[i].name, "fc_logvar.bias")) names[k] = st.tensors[i].name, ts[k++] = &st.tensors[i].tensor;
        cr_assert_eq(tg_safetensors_write(model, k, names, ts, 0, NULL, NULL, &e), 0, "%s", e.msg);
        tg_safetensors_free(&st);
        bad_run("one tensor missing", "model.safetensors", "fc_logvar.bias");
    }
    /* The model of another --hidden: shapes that do not match config.json. */
    size_t nh;
    uint8_t *h16 = tg_slurp(tg_tmp("h16/model.safetensors"), &nh);
    tg_spit(model, h16, nh);
    free(h16);
    bad_run("another --hidden", "model.safetensors", "config.json");
    tg_spit(model, good, n);

    /* config.json: malformed, a field of the wrong type, an unknown model, a
     * latent that does not match the checkpoint, missing. */
    static const struct {
        const char *from, *to, *needle;
    } edits[] = {
        {"\"model\"", "\"model\" ", NULL},   /* placeholder: truncated below */
        {"\"latent\":4", "\"latent\":\"4\"", "latent"},
        {"\"model\":\"vae\"", "\"model\":\"gan\"", "model"},
        {"\"latent\":4", "\"latent\":5", "model.safetensors"},
        {"\"hidden\":[32]", "\"hidden\":[]", "hidden"},
        {"\"image_rows\":28", "\"image_rows\":-28", "image_rows"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        char *c = malloc(nc + 64), *p;
        memcpy(c, good_cfg, nc);
        c[nc] = 0;
        if (i == 0) {
            tg_spit(config, c, nc / 2);   /* malformed: cut in half */
        } else {
            cr_assert((p = strstr(c, edits[i].from)), "config.json has no %s: %s", edits[i].from, c);
            char rest[2048];
            snprintf(rest, sizeof rest, "%s", p + strlen(edits[i].from));
            sprintf(p, "%s%s", edits[i].to, rest);
            tg_spit(config, c, strlen(c));
        }
        bad_run(edits[i].to, i == 3 ? "model.safetensors" : "config.json", edits[i].needle ? edits[i].needle : "");
        free(c);
    }
    unlink(config);
    bad_run("no config.json", "config.json", "");
    tg_spit(config, good_cfg, nc);

    /* optimizer.safetensors for --resume: malformed, and moments of another size. */
    char opt[512];
    snprintf(opt, sizeof opt, "%s", tg_tmp("run/optimizer.safetensors"));
    size_t no;
    uint8_t *good_opt = tg_slurp(opt, &no);
    const char *needles[] = {"optimizer.safetensors", NULL};
    tg_spit(opt, "\x02\0\0\0\0\0\0\0{}", 10);
    snprintf(a, sizeof a, "train --resume %s --epochs 2", tg_tmp("run"));
    expect_error("resume, empty optimizer", run_limited(a, 0, 0, NULL), 1, needles);
    uint8_t *h16opt = tg_slurp(tg_tmp("h16/optimizer.safetensors"), &nh);
    tg_spit(opt, h16opt, nh);
    free(h16opt);
    expect_error("resume, another model's optimizer", run_limited(a, 0, 0, NULL), 1, needles);
    size_t nm;
    uint8_t *m1 = tg_slurp(model, &nm);
    cr_expect(nm == n && !memcmp(m1, good, n), "a failed resume changed model.safetensors");
    free(m1);
    free(good_opt);
    free(good);
    free(good_cfg);
    free(b);
}

/* ---------------------------------------------------------------- outputs */

Test(vae_bad_input, outputs_that_cannot_be_written) {
    char a[1024];
    /* --out below a regular file. */
    tg_spit(tg_tmp("plain"), "x", 1);
    snprintf(a, sizeof a, "train --model vae " SMALL " --data %s --out %s/run", tg_tmp("data"), tg_tmp("plain"));
    const char *out_flag[] = {"--out", "plain/run", NULL};
    expect_error("--out below a file", run_limited(a, 0, 0, NULL), 1, out_flag);

    /* A directory that cannot be written: mode 0555, or for root (who may
     * write anyway) /sys/kernel, which the kernel refuses. */
    char ro[512];
    snprintf(ro, sizeof ro, "%s", tg_tmp("ro"));
    mkdir(ro, 0777);
    chmod(ro, 0555);
    char probe[600];
    snprintf(probe, sizeof probe, "%s/probe", ro);
    int fd = open(probe, O_WRONLY | O_CREAT, 0666);
    if (fd >= 0) {
        close(fd);
        unlink(probe);
        snprintf(ro, sizeof ro, "/sys/kernel");
        snprintf(probe, sizeof probe, "%s/probe", ro);
        fd = open(probe, O_WRONLY | O_CREAT, 0666);
    }
    if (fd >= 0) {
        close(fd);
        unlink(probe);
        cr_log_warn("no unwritable directory on this machine; that case is skipped");
    } else {
        snprintf(a, sizeof a, "train --model vae " SMALL " --data %s --out %s", tg_tmp("data"), ro);
        const char *needles[] = {ro, "--out", "Permission denied", NULL};
        expect_error("unwritable --out", run_limited(a, 0, 0, NULL), 1, needles);
        snprintf(a, sizeof a, "train --model vae " SMALL " --data %s --out %s", tg_tmp("data"), tg_tmp("run"));
        cr_assert_eq(run_limited(a, 0, 0, NULL), 0, "%s", tg_cli_text("stderr"));
        snprintf(a, sizeof a, "sample --run %s --out %s/s.png", tg_tmp("run"), ro);
        const char *s_needles[] = {"s.png", NULL};
        expect_error("unwritable sample --out", run_limited(a, 0, 0, NULL), 1, s_needles);
    }
    chmod(tg_tmp("ro"), 0777);
}

/* A full disk: files may grow to 120 kB, so config.json, metrics.csv and the
 * images fit but model.safetensors (about 220 kB) does not. The run stops
 * naming it, and leaves no temporary and no partial file. */
Test(vae_bad_input, full_disk) {
    char a[1024];
    snprintf(a, sizeof a, "train --model vae " SMALL " --data %s --out %s", tg_tmp("data"), tg_tmp("full"));
    const char *needles[] = {"model.safetensors", NULL};
    expect_error("train, disk full", run_limited(a, 0, 120000, NULL), 1, needles);
    cr_expect(access(tg_tmp("full/model.safetensors"), F_OK) != 0, "a partial model.safetensors exists");
    cr_expect(access(tg_tmp("full/optimizer.safetensors"), F_OK) != 0, "optimizer.safetensors written");
    expect_no_temp_files(tg_tmp("full"));

    /* A resume on a full disk keeps the earlier checkpoint as it was. */
    snprintf(a, sizeof a, "train --model vae " SMALL " --data %s --out %s", tg_tmp("data"), tg_tmp("run"));
    cr_assert_eq(run_limited(a, 0, 0, NULL), 0, "%s", tg_cli_text("stderr"));
    size_t n0, n1;
    uint8_t *m0 = tg_slurp(tg_tmp("run/model.safetensors"), &n0);
    snprintf(a, sizeof a, "train --resume %s --epochs 2", tg_tmp("run"));
    expect_error("resume, disk full", run_limited(a, 0, 120000, NULL), 1, needles);
    uint8_t *m1 = tg_slurp(tg_tmp("run/model.safetensors"), &n1);
    cr_expect(n0 == n1 && !memcmp(m0, m1, n0), "model.safetensors changed");
    free(m0);
    free(m1);
    expect_no_temp_files(tg_tmp("run"));

    /* sample: a PNG and an IDX file that do not fit. */
    snprintf(a, sizeof a, "sample --run %s --n 256 --out %s", tg_tmp("run"), tg_tmp("s.idx"));
    const char *idx[] = {"s.idx", NULL};
    expect_error("sample .idx, disk full", run_limited(a, 0, 10000, NULL), 1, idx);
    cr_expect(access(tg_tmp("s.idx"), F_OK) != 0);
    snprintf(a, sizeof a, "sample --run %s --n 256 --out %s", tg_tmp("run"), tg_tmp("s.png"));
    const char *png[] = {"s.png", NULL};
    expect_error("sample .png, disk full", run_limited(a, 0, 1000, NULL), 1, png);
    cr_expect(access(tg_tmp("s.png"), F_OK) != 0);
    expect_no_temp_files(tg_tmpdir());

    /* eval's JSON to a full device. */
    snprintf(a, sizeof a, "eval --run %s --iw 2", tg_tmp("run"));
    const char *out[] = {"standard output", NULL};
    expect_error("eval > /dev/full", run_limited(a, 0, 0, "/dev/full"), 1, out);
}
