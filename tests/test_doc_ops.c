/*
 * test_doc_ops.c — docs/autograd.md documents every op of the table: each
 * tg_ops[i].name appears in it in backticks (`add`, `bce_logits`, ...), so
 * an op added to autograd/ops.c without its entry in the document fails
 * here, naming it. Run from the repository root, as the whole suite.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"

TestSuite(doc_ops, .timeout = 120);   /* one timeout for every suite: see tests/vae_cli.h */

#define DOC "docs/autograd.md"

/* The whole of path as a NUL-terminated string (the caller frees it). */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (run the tests from the repository root)", path);
    size_t cap = 1 << 16, n = 0, got;
    char *s = malloc(cap);
    cr_assert(s);
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
            cr_assert(s);
        }
    }
    fclose(f);
    s[n] = '\0';
    return s;
}

Test(doc_ops, every_op_of_the_table_is_documented) {
    char *doc = slurp(DOC);
    char missing[4096] = "", want[80];
    int n_missing = 0;
    for (int i = 0; i < TG_OP_COUNT; i++) {
        const char *name = tg_ops[i].name;
        cr_assert(name && *name, "tg_ops[%d] has no name", i);
        snprintf(want, sizeof want, "`%s`", name);
        if (strstr(doc, want)) continue;
        n_missing++;
        if (strlen(missing) + strlen(want) + 3 < sizeof missing) {
            if (*missing) strcat(missing, ", ");
            strcat(missing, want);
        }
    }
    free(doc);
    cr_assert(n_missing == 0, "%d of the %d ops of tg_ops are not named in backticks in %s: %s", n_missing,
              (int)TG_OP_COUNT, DOC, missing);
}
