/*
 * run_dir.h — the directory a training run writes (examples/vae/train.h): which
 * files belong to a run, one writer at a time, and no debris.
 *
 *     tg_run_dir d;
 *     tg_err err;
 *     if (tg_run_dir_open(&d, "runs/vae", TG_RUN_DIR_NEW, &err) != 0) ...   // refuses an existing run
 *     ... train, writing into d.path ...
 *     tg_run_dir_close(&d, false);
 *
 * A run's files are config.json, metrics.csv, model.safetensors,
 * optimizer.safetensors, reconstruction_<N>.png and sample_<N>.png; the lock
 * file is ".lock". A writer holds an exclusive flock(2) on DIR/.lock for as
 * long as it writes (the kernel drops it when the process dies, however it
 * dies), so a second writer fails at once. Readers (eval, sample) need no
 * lock: they read optimizer.safetensors / model.safetensors, each replaced
 * atomically. Errors name the directory and the problem.
 */
#ifndef TG_VAE_RUN_DIR_H
#define TG_VAE_RUN_DIR_H

#include <stdbool.h>

#include "tensor/tensor.h"

/* Longest directory name a run accepts: DIR/<longest file>.tmp.<pid> must
 * fit in PATH_MAX (4096) with room to spare. */
#define TG_RUN_DIR_MAX 4000

typedef enum {
    TG_RUN_DIR_NEW,     /* a fresh run: refuse a directory holding a run's files */
    TG_RUN_DIR_FORCE,   /* a fresh run replacing whatever run is there: its files are removed first */
    TG_RUN_DIR_RESUME,  /* continue the run that is there */
    TG_RUN_DIR_UNIQUE,  /* a fresh run in a new directory: dir, else dir-2, dir-3, ... whichever
                           does not exist yet (mkdir is atomic, so two runs never share one);
                           dir's parent is created if missing (one level) */
} tg_run_dir_mode;

typedef struct {
    char path[TG_RUN_DIR_MAX + 1];
    int lock_fd;        /* open DIR/.lock, locked; -1 when closed */
    bool created;       /* the directory was made by tg_run_dir_open */
} tg_run_dir;

/* True if name is one of a run's files (not the lock, not a temporary). */
bool tg_run_dir_is_run_file(const char *name);

/* The run files in dir, as "a, b, c" (at most cap bytes, "..." if cut):
 * their count, 0 if none or dir does not exist. */
int tg_run_dir_list(const char *dir, char *list, size_t cap);

/* Opens dir for writing a run: creates it if missing (its parent must exist;
 * d->path is the directory used, which UNIQUE may have suffixed), takes the
 * lock (another writer: "DIR is being written by another process (pid N)"),
 * removes temporary files ("*.tmp.<pid>") of processes that no longer run,
 * then as mode says: NEW refuses a directory with a run's files in it
 * (returns -2, "DIR holds a run: config.json, model.safetensors, ..."), FORCE
 * removes them, RESUME leaves them. 0, or -1 / -2 with the message; on
 * failure nothing is left created or locked. */
int tg_run_dir_open(tg_run_dir *d, const char *dir, tg_run_dir_mode mode, tg_err *e);

/* Releases the lock. With discard (a run that wrote no checkpoint), a
 * directory tg_run_dir_open created is removed again when it holds nothing
 * but the lock. */
void tg_run_dir_close(tg_run_dir *d, bool discard);

#endif
