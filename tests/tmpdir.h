/* tmpdir.h — a fresh temporary directory for a test (Criterion runs each test
 * in its own process, so one directory per process is one per test). */
#ifndef TG_TEST_TMPDIR_H
#define TG_TEST_TMPDIR_H

void tg_tmpdir_setup(void);             /* creates /tmp/tg_test_XXXXXX; use as a Criterion .init */
void tg_tmpdir_teardown(void);          /* removes it and everything in it; use as .fini */
const char *tg_tmpdir(void);            /* its path */
const char *tg_tmp(const char *name);   /* "<dir>/<name>", in one of four rotating buffers */
void tg_remove_tree(const char *path);  /* removes path and, if a directory, everything under it */

#include <stddef.h>
#include <stdint.h>

/* The whole file at path, read with stdio (not the code under test); malloc'd. */
uint8_t *tg_slurp(const char *path, size_t *n);
/* Writes buf[0..n) to path with stdio. */
void tg_spit(const char *path, const void *buf, size_t n);
/* Writes a safetensors file by hand: the header's length (8 bytes, little
 * endian), the header text as given, then data[0..data_n). */
void tg_spit_safetensors(const char *path, const char *header, const void *data, size_t data_n);

#endif
