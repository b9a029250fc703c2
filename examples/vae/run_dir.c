/* run_dir.c — a run's directory: its files, its lock, its debris (see run_dir.h). */
#include "examples/vae/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* True if s is one or more decimal digits followed by suffix. */
static bool digits_then(const char *s, const char *suffix) {
    const char *p = s;
    while (*p >= '0' && *p <= '9') p++;
    return p > s && !strcmp(p, suffix);
}

bool tg_run_dir_is_run_file(const char *name) {
    static const char *const fixed[] = {"config.json", "metrics.csv", "model.safetensors", "optimizer.safetensors"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!strcmp(name, fixed[i])) return true;
    if (!strncmp(name, "reconstruction_", 15)) return digits_then(name + 15, ".png");
    if (!strncmp(name, "sample_", 7)) return digits_then(name + 7, ".png");
    return false;
}

/* The pid of a temporary file "<name>.tmp.<pid>", or 0 if name is not one. */
static long tmp_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    while (strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");
    if (!digits_then(t + 5, "")) return 0;
    long pid = strtol(t + 5, NULL, 10);
    return pid > 0 ? pid : 0;
}

static bool process_alive(long pid) { return pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH; }

int tg_run_dir_list(const char *dir, char *list, size_t cap) {
    DIR *dp = opendir(dir);
    if (cap) list[0] = 0;
    if (!dp) return 0;
    int n = 0;
    size_t len = 0;
    for (struct dirent *de; (de = readdir(dp));) {
        if (!tg_run_dir_is_run_file(de->d_name)) continue;
        int k = snprintf(list + len, cap - len, "%s%s", n ? ", " : "", de->d_name);
        if (k > 0 && len + (size_t)k < cap) len += (size_t)k;
        else if (cap > 4) snprintf(list + (len < cap - 4 ? len : cap - 4), 4, "...");
        n++;
    }
    closedir(dp);
    return n;
}

/* Removes dir's temporary files of dead processes and, if run_files, every
 * run file. 0, or -1 with the message. */
static int remove_files(const char *dir, bool run_files, tg_err *e) {
    DIR *dp = opendir(dir);
    if (!dp) {
        tg_err_set(e, "%s: cannot read directory: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    char path[TG_RUN_DIR_MAX + 300];
    for (struct dirent *de; (de = readdir(dp));) {
        long pid = tmp_pid(de->d_name);
        if (!(pid && !process_alive(pid)) && !(run_files && tg_run_dir_is_run_file(de->d_name))) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) != 0 && errno != ENOENT) {
            tg_err_set(e, "%s: cannot remove: %s", path, strerror(errno));
            rc = -1;
            break;
        }
    }
    closedir(dp);
    return rc;
}

/* mkdir of path, else of path-2, path-3, ...; the name made goes to out. */
static int make_unique(const char *base, char *out, size_t cap, tg_err *e) {
    char parent[TG_RUN_DIR_MAX + 1];
    snprintf(parent, sizeof parent, "%s", base);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        if (mkdir(parent, 0777) != 0 && errno != EEXIST) {
            tg_err_set(e, "%s: cannot create directory: %s", parent, strerror(errno));
            return -1;
        }
    }
    for (int k = 1; k < 10000; k++) {
        if (k == 1) snprintf(out, cap, "%s", base);
        else snprintf(out, cap, "%s-%d", base, k);
        if (mkdir(out, 0777) == 0) return 0;
        if (errno != EEXIST) {
            tg_err_set(e, "%s: cannot create directory: %s", out, strerror(errno));
            return -1;
        }
    }
    tg_err_set(e, "%s: 9999 directories of that name exist already", base);
    return -1;
}

int tg_run_dir_open(tg_run_dir *d, const char *dir, tg_run_dir_mode mode, tg_err *e) {
    memset(d, 0, sizeof *d);
    d->lock_fd = -1;
    if (strlen(dir) + 8 > TG_RUN_DIR_MAX) {
        tg_err_set(e, "%.40s...: a directory name of %zu characters is too long (at most %d)", dir, strlen(dir),
                   TG_RUN_DIR_MAX - 8);
        return -1;
    }
    struct stat st;
    if (mode == TG_RUN_DIR_UNIQUE) {
        if (make_unique(dir, d->path, sizeof d->path, e) != 0) return -1;
        d->created = true;
    } else {
        snprintf(d->path, sizeof d->path, "%s", dir);
        if (mkdir(dir, 0777) == 0) d->created = true;
        else if (errno != EEXIST) {
            tg_err_set(e, "%s: cannot create directory: %s", dir, strerror(errno));
            return -1;
        } else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            tg_err_set(e, "%s: exists and is not a directory", dir);
            return -1;
        }
    }
    char path[TG_RUN_DIR_MAX + 16];
    snprintf(path, sizeof path, "%s/.lock", d->path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        tg_err_set(e, "%s: cannot create the lock file .lock: %s", d->path, strerror(errno));
        goto fail;
    }
    d->lock_fd = fd;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            tg_err_set(e, "%s/.lock: cannot lock: %s", d->path, strerror(errno));
            goto fail;
        }
        char pid[32] = "";
        ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
        pid[k > 0 ? k : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        tg_err_set(e, "%s is being written by another process%s%s%s; wait for it to finish, or choose another "
                      "directory", d->path, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        goto fail;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        tg_err_set(e, "%s/.lock: cannot write: %s", d->path, strerror(errno));
        goto fail;
    }
    char list[512];
    if (mode == TG_RUN_DIR_NEW && tg_run_dir_list(d->path, list, sizeof list) > 0) {
        tg_err_set(e, "%s holds a run: %s", d->path, list);
        tg_run_dir_close(d, true);
        return -2;
    }
    if (remove_files(d->path, mode == TG_RUN_DIR_FORCE, e) != 0) goto fail;
    return 0;
fail:
    tg_run_dir_close(d, true);
    return -1;
}

void tg_run_dir_close(tg_run_dir *d, bool discard) {
    if (d->lock_fd < 0 && !d->created) return;
    if (discard && d->created) {
        char path[TG_RUN_DIR_MAX + 16];
        snprintf(path, sizeof path, "%s/.lock", d->path);
        DIR *dp = opendir(d->path);
        int others = 0;
        for (struct dirent *de; dp && (de = readdir(dp));)
            others += strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, ".lock");
        if (dp) closedir(dp);
        if (dp && !others) {
            unlink(path);
            rmdir(d->path);
        }
    }
    if (d->lock_fd >= 0) close(d->lock_fd);   /* releases the flock */
    d->lock_fd = -1;
    d->created = false;
}
