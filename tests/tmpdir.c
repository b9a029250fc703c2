/* tmpdir.c — temporary directories for tests (see tmpdir.h). */
#include "tests/tmpdir.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

void tg_tmpdir_setup(void) {
    strcpy(dir, "/tmp/tg_test_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
}

void tg_tmpdir_teardown(void) { tg_remove_tree(dir); }

const char *tg_tmpdir(void) { return dir; }

const char *tg_tmp(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

void tg_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *ent;
        while (d && (ent = readdir(d))) {
            if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, ent->d_name);
            tg_remove_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

uint8_t *tg_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size + 1);   /* + a NUL, so text can be read as a string */
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = 0;
    fclose(f);
    *n = (size_t)size;
    return buf;
}

void tg_spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(buf, 1, n, f), n);
    fclose(f);
}

void tg_spit_safetensors(const char *path, const char *header, const void *data, size_t data_n) {
    size_t hn = strlen(header);
    uint8_t *buf = malloc(8 + hn + data_n + 1);
    for (int k = 0; k < 8; k++) buf[k] = (uint8_t)((uint64_t)hn >> (8 * k));
    memcpy(buf + 8, header, hn);
    if (data_n) memcpy(buf + 8 + hn, data, data_n);
    tg_spit(path, buf, 8 + hn + data_n);
    free(buf);
}
