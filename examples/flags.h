/* flags.h — the command-line conventions of the small example programs
 * (seed_vae, mlp_classifier): every flag takes a value, `--help` prints the
 * usage, a wrong flag or value exits 2 with one line naming it, and data
 * that cannot be read exits 1 naming the file. */
#ifndef TG_EXAMPLE_FLAGS_H
#define TG_EXAMPLE_FLAGS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data.h"

/* The flag at argv[*i], one of known (NULL-terminated), with its value in
 * *value and *i moved past it. --help or -h prints usage and exits 0; an
 * unknown flag, or one without its value, exits 2 naming it. */
static inline const char *tg_flag_next(const char *prog, const char *usage, int argc, char **argv, int *i,
                                       const char *const *known, const char **value) {
    const char *a = argv[*i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        fputs(usage, stdout);
        exit(0);
    }
    const char *const *k = known;
    while (*k && strcmp(*k, a)) k++;
    if (!*k) {
        fprintf(stderr, "%s: unknown flag \"%s\"\n%s", prog, a, usage);
        exit(2);
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", prog, a);
        exit(2);
    }
    *value = argv[++*i];
    return *k;
}

/* A whole decimal integer in [lo, hi], or exit 2 naming the flag. */
static inline long long tg_flag_int(const char *prog, const char *flag, const char *s, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s: expected an integer in [%lld, %lld], got \"%s\"\n", prog, flag, lo, hi, s);
        exit(2);
    }
    return v;
}

/* Exits 1 naming the flag unless the directory that would hold path (the
 * output file of flag) is writable: checked before any work, so a run does
 * not fail at its end. */
static inline void tg_flag_out_file(const char *prog, const char *flag, const char *path) {
    char d[4096];
    const char *slash = strrchr(path, '/');
    snprintf(d, sizeof d, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (!d[0]) strcpy(d, "/");
    if (access(d, W_OK) != 0) {
        fprintf(stderr, "%s: %s %s: directory %s is not writable: %s\n", prog, flag, path, d, strerror(errno));
        exit(1);
    }
}

/* Loads dir (NULL: the default dataset) into *ds and prints its one-line
 * description; exits 1 with the reason (or how to get a dataset) if it
 * cannot. */
static inline void tg_example_load(const char *prog, const char *dir, tg_dataset *ds) {
    tg_err err;
    if (!dir && !(dir = tg_dataset_default_dir())) {
        tg_dataset_print_help(stderr);
        exit(1);
    }
    if (tg_dataset_load(dir, ds, &err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        exit(1);
    }
    printf("Dataset: %s (%lld train, %lld test images of %lldx%lld)\n", ds->dir, (long long)ds->train_x.n,
           (long long)ds->test_x.n, (long long)ds->train_x.rows, (long long)ds->train_x.cols);
}

#endif
