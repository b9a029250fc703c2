/*
 * test_doc_blocks.c — the C in README.md and the docs/ markdown files cannot rot. Every
 * fenced block whose info string starts with "c" is checked by its kind:
 *
 *   ```c              a complete file: compiled with the library's flags
 *                     (-std=c11 -Wall -Wextra -Werror) and, if it defines
 *                     main, linked against build/libtapegrad.a;
 *   ```c fragment     statements: compiled inside a function, after
 *                     #include "tapegrad.h" and the C headers it needs
 *                     (unused variables allowed: a fragment shows a call);
 *   ```c from PATH    an excerpt of the repository's file PATH: its lines
 *                     appear there in order and contiguous (trailing blanks
 *                     ignored), except that a line "..." stands for any
 *                     number of lines left out.
 *
 * Other blocks (sh, text, dot, python) are not checked. A failure names the
 * document and the line its block starts on.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/tmpdir.h"

TestSuite(doc_blocks, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

typedef struct {
    char doc[256];   /* "docs/autograd.md" */
    int line;        /* of the opening fence */
    char info[256];  /* after the backticks: "c", "c fragment", "c from autograd/tape.c" */
    char *body;      /* the block's text, malloc'd */
} block;

/* The c blocks of one markdown file, appended to *out (grown). */
static void blocks_of(const char *doc, block **out, int *n, int *cap) {
    size_t len;
    char *text = (char *)tg_slurp(doc, &len);
    cr_assert_not_null(text, "cannot read %s", doc);
    char *body = NULL, *next;
    size_t blen = 0, bcap = 0;
    block cur = {0};
    bool in = false;
    int line = 0;
    for (char *l = text; l; l = next) {
        next = strchr(l, '\n');
        if (next) *next++ = '\0';
        line++;
        const char *s = l + strspn(l, " ");
        if (!strncmp(s, "```", 3)) {
            if (!in) {
                in = true;
                cur = (block){.line = line};
                snprintf(cur.doc, sizeof cur.doc, "%s", doc);
                snprintf(cur.info, sizeof cur.info, "%s", s + 3);
                blen = 0;
                continue;
            }
            in = false;
            if (cur.info[0] == 'c' && (cur.info[1] == '\0' || cur.info[1] == ' ')) {
                if (*n == *cap) {
                    *cap = *cap ? 2 * *cap : 64;
                    *out = realloc(*out, (size_t)*cap * sizeof **out);
                }
                cur.body = strndup(body ? body : "", blen);
                (*out)[(*n)++] = cur;
            }
            continue;
        }
        if (!in) continue;
        size_t k = strlen(l);
        if (blen + k + 2 > bcap) {
            bcap = 2 * (blen + k + 2);
            body = realloc(body, bcap);
        }
        memcpy(body + blen, l, k);
        body[blen + k] = '\n';
        blen += k + 1;
    }
    cr_assert(!in, "%s: the block opened on line %d is not closed", doc, cur.line);
    free(body);
    free(text);
}

/* README.md and every markdown file in docs/, in name order. */
static block *all_blocks(int *n) {
    block *b = NULL;
    int cap = 0;
    *n = 0;
    blocks_of("README.md", &b, n, &cap);
    struct dirent **names;
    int k = scandir("docs", &names, NULL, alphasort);
    cr_assert(k >= 0, "cannot list docs/");
    for (int i = 0; i < k; i++) {
        size_t len = strlen(names[i]->d_name);
        if (len > 3 && !strcmp(names[i]->d_name + len - 3, ".md")) {
            char path[300];
            snprintf(path, sizeof path, "docs/%s", names[i]->d_name);
            blocks_of(path, &b, n, &cap);
        }
        free(names[i]);
    }
    free(names);
    return b;
}

/* Lines of s (split on '\n', trailing blanks cut; s is modified). */
static int split_lines(char *s, char **lines, int cap) {
    int n = 0;
    for (char *p = s; *p && n < cap;) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        size_t k = strlen(p);
        while (k && (p[k - 1] == ' ' || p[k - 1] == '\t' || p[k - 1] == '\r')) p[--k] = '\0';
        lines[n++] = p;
        if (!e) break;
        p = e + 1;
    }
    return n;
}

static bool is_gap(const char *l) { return !strcmp(l + strspn(l, " "), "..."); }

/* NULL if the excerpt's lines appear in the file as described above, else why not. */
static const char *excerpt_mismatch(const char *path, const char *body, char *why, size_t cap) {
    size_t len;
    if (access(path, R_OK) != 0) return snprintf(why, cap, "%s cannot be read", path), why;
    char *file = (char *)tg_slurp(path, &len);
    char *ex = strdup(body);
    enum { MAX = 1 << 16 };
    char **fl = malloc(MAX * sizeof *fl), **el = malloc(MAX * sizeof *el);
    int nf = split_lines(file, fl, MAX), ne = split_lines(ex, el, MAX);
    while (ne && !el[ne - 1][0]) ne--;   /* the block's last newline */
    const char *res = NULL;
    int at = 0;                           /* where the next run of lines may start in the file */
    bool anchored = true;                 /* the first run must start the excerpt, but anywhere in the file */
    for (int i = 0; i < ne && !res;) {
        if (is_gap(el[i])) {
            i++;
            continue;
        }
        int j = i;
        while (j < ne && !is_gap(el[j])) j++;   /* run el[i..j) */
        int found = -1;
        for (int s = at; s + (j - i) <= nf && found < 0; s++) {
            int k = 0;
            while (k < j - i && !strcmp(fl[s + k], el[i + k])) k++;
            if (k == j - i) found = s;
        }
        if (found < 0) {
            snprintf(why, cap, "the lines from \"%s\" (excerpt line %d) are not in %s%s", el[i], i + 1, path,
                     anchored ? "" : " after the excerpt's earlier lines");
            res = why;
        }
        at = found + (j - i), anchored = false, i = j;
    }
    free(fl), free(el), free(ex), free(file);
    return res;
}

static bool defines_main(const char *body) {
    return strstr(body, "int main(") != NULL;
}

/* Compiles the block (wrapped if a fragment); on failure, the compiler's output in out. */
static int compile(const block *b, int index, bool fragment, char *out, size_t cap) {
    char src[64], bin[64], log[64];
    snprintf(src, sizeof src, "block%d.c", index);
    snprintf(bin, sizeof bin, "block%d", index);
    snprintf(log, sizeof log, "block%d.log", index);
    FILE *f = fopen(tg_tmp(src), "w");
    cr_assert_not_null(f);
    if (fragment)
        fprintf(f, "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
                   "#include \"tapegrad.h\"\nvoid fragment%d(void);\nvoid fragment%d(void) {\n#line %d \"%s\"\n%s}\n",
                index, index, b->line + 1, b->doc, b->body);
    else
        fprintf(f, "#line %d \"%s\"\n%s", b->line + 1, b->doc, b->body);
    fclose(f);
    char cmd[4096];
    const char *flags = "-std=c11 -O0 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I.";
    const char *relax = fragment ? " -Wno-unused-variable -Wno-unused-but-set-variable -Wno-unused-parameter" : "";
    if (!fragment && defines_main(b->body))
        snprintf(cmd, sizeof cmd, "cc %s %s -o %s build/libtapegrad.a -lm -lpthread > %s 2>&1", flags, tg_tmp(src),
                 tg_tmp(bin), tg_tmp(log));
    else
        snprintf(cmd, sizeof cmd, "cc %s%s -c %s -o %s.o > %s 2>&1", flags, relax, tg_tmp(src), tg_tmp(bin),
                 tg_tmp(log));
    int rc = system(cmd);
    size_t n;
    char *text = (char *)tg_slurp(tg_tmp(log), &n);
    snprintf(out, cap, "%s", text ? text : "");
    free(text);
    return rc;
}

Test(doc_blocks, every_c_block_compiles_or_matches_its_file) {
    cr_assert_eq(access("build/libtapegrad.a", R_OK), 0, "build/libtapegrad.a is missing (make builds it first)");
    int n, checked[3] = {0};
    block *b = all_blocks(&n);
    for (int i = 0; i < n; i++) {
        const char *kind = b[i].info + 1 + strspn(b[i].info + 1, " ");
        char why[8192];
        if (!strncmp(kind, "from ", 5)) {
            const char *path = kind + 5 + strspn(kind + 5, " ");
            const char *bad = excerpt_mismatch(path, b[i].body, why, sizeof why);
            cr_expect(!bad, "%s:%d: ```c from %s: %s", b[i].doc, b[i].line, path, bad ? bad : "");
            checked[2]++;
        } else if (!strcmp(kind, "fragment") || !*kind) {
            bool fragment = *kind != '\0';
            int rc = compile(&b[i], i, fragment, why, sizeof why);
            cr_expect_eq(rc, 0, "%s:%d: the ```c%s block does not compile:\n%s", b[i].doc, b[i].line,
                         fragment ? " fragment" : "", why);
            checked[fragment]++;
        } else {
            cr_expect_fail("%s:%d: unknown block kind \"```%s\" (c, c fragment or c from PATH)", b[i].doc,
                           b[i].line, b[i].info);
        }
        free(b[i].body);
    }
    free(b);
    cr_log_info("%d complete files, %d fragments, %d excerpts checked", checked[0], checked[1], checked[2]);
    cr_expect_gt(checked[0] + checked[1] + checked[2], 0, "no C blocks found");
}

/* The checker itself: an excerpt that is not in the file, or out of order,
 * fails; "..." skips; a fragment with an error does not compile. */
Test(doc_blocks, the_checker_refuses_what_it_should) {
    char why[512];
    const char *path = tg_tmp("f.c");
    FILE *f = fopen(path, "w");
    fputs("int a;\nint b;   \nint c;\nint d;\n", f);
    fclose(f);
    cr_expect_null(excerpt_mismatch(path, "int a;\nint b;\n", why, sizeof why), "%s", why);
    cr_expect_null(excerpt_mismatch(path, "int b;\n", why, sizeof why), "a run anywhere: %s", why);
    cr_expect_null(excerpt_mismatch(path, "int a;\n...\nint d;\n", why, sizeof why), "%s", why);
    cr_expect_null(excerpt_mismatch(path, "int a;\n    ...\nint b;\n", why, sizeof why), "a gap of 0 lines: %s", why);
    cr_expect_not_null(excerpt_mismatch(path, "int a;\nint c;\n", why, sizeof why), "not contiguous");
    cr_expect_not_null(excerpt_mismatch(path, "int c;\n...\nint a;\n", why, sizeof why), "out of order");
    cr_expect_not_null(excerpt_mismatch(path, "int e;\n", why, sizeof why), "absent");
    cr_expect_not_null(excerpt_mismatch(tg_tmp("missing.c"), "int a;\n", why, sizeof why), "no file");

    block ok = {.doc = "x.md", .line = 1, .body = "tg_tape *t = tg_tape_new();\ntg_tape_free(t);\n"};
    cr_expect_eq(compile(&ok, 900, true, why, sizeof why), 0, "%s", why);
    block bad = {.doc = "x.md", .line = 1, .body = "tg_tape *t = tg_tape_new(1);\n"};
    cr_expect_neq(compile(&bad, 901, true, why, sizeof why), 0, "a wrong call must not compile");
    cr_expect(strstr(why, "x.md:"), "the error names the document: %s", why);
}
