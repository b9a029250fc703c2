/*
 * graph.c — the tape as text and as a picture: tg_tape_print, tg_tape_dot.
 *
 * Both walk the entries in record order. A value is named by, in turn:
 *   its tg_var name (tg_name, or a parameter's "fc1.weight"),
 *   "%k" if entry k made it (k its index on the tape),
 *   "in<j>" otherwise: a leaf, or a value computed where nothing needed a
 *   gradient (no entry was recorded for it), numbered in order of first use.
 * A leaf that requires a gradient (a parameter, usually) is what an
 * optimizer updates; the DOT picture fills it.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L  /* open_memstream */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "io/file.h"

tg_var *tg_name(tg_var *v, const char *name) {
    TG_CHECK(v, "tg_name: NULL var");
    v->name = name;
    return v;
}

/* The values of a tape, each with a printable label: entries' outputs first
 * (val[k] = entries[k].out), then inputs no entry made, in order of use. */
typedef struct {
    const tg_var **val;
    int64_t n, cap;
} value_list;

static int64_t find(const value_list *l, const tg_var *v) {
    for (int64_t i = 0; i < l->n; i++)
        if (l->val[i] == v) return i;
    return -1;
}

static void push(value_list *l, const tg_var *v) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->val = realloc(l->val, (size_t)l->cap * sizeof *l->val);
        TG_CHECK(l->val, "tg_tape_print: out of memory");
    }
    l->val[l->n++] = v;
}

static int n_inputs(const tg_entry *e) {
    return e->ins ? e->n_ins : 3;
}

static const tg_var *input(const tg_entry *e, int k) {
    return e->ins ? e->ins[k] : e->in[k];
}

static value_list values(const tg_tape *t) {
    value_list l = {0};
    for (int64_t k = 0; k < t->n; k++) push(&l, t->entries[k].out);
    for (int64_t k = 0; k < t->n; k++)
        for (int j = 0; j < n_inputs(&t->entries[k]); j++) {
            const tg_var *v = input(&t->entries[k], j);
            if (v && find(&l, v) < 0) push(&l, v);
        }
    return l;
}

/* Value i's label: its name, "%k", or "in<j>" (j counting the unnamed
 * values no entry made, in order of first use). */
static const char *label(const tg_tape *t, const value_list *l, int64_t i, char *buf, size_t cap) {
    if (l->val[i]->name) return l->val[i]->name;
    if (i < t->n) snprintf(buf, cap, "%%%lld", (long long)i);
    else {
        int64_t j = 0;
        for (int64_t k = t->n; k < i; k++) j += l->val[k]->name == NULL;
        snprintf(buf, cap, "in%lld", (long long)j);
    }
    return buf;
}

void tg_tape_print(const tg_tape *t, FILE *f) {
    value_list l = values(t);
    fprintf(f, "tape: %lld entries\n", (long long)t->n);
    for (int64_t k = 0; k < t->n; k++) {
        const tg_entry *e = &t->entries[k];
        char nb[32], sb[96];
        fprintf(f, "%4lld  %-18s %s %s <-", (long long)k, tg_ops[e->op].name, label(t, &l, k, nb, sizeof nb),
                tg_shape_str(e->out->val.shape, sb));
        const char *sep = " ";
        for (int j = 0; j < n_inputs(e); j++) {
            const tg_var *v = input(e, j);
            if (!v) continue;
            fprintf(f, "%s%s %s", sep, label(t, &l, find(&l, v), nb, sizeof nb), tg_shape_str(v->val.shape, sb));
            sep = ", ";
        }
        fputc('\n', f);
    }
    free(l.val);
}

/* s between double quotes, as DOT reads it. */
static void quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\n') fputs("\\n", f);   /* a line break in the label */
        else {
            if (*s == '"' || *s == '\\') fputc('\\', f);
            fputc(*s, f);
        }
    }
    fputc('"', f);
}

void tg_tape_dot(const tg_tape *t, FILE *f) {
    value_list l = values(t);
    bool *used = calloc((size_t)l.n + 1, sizeof *used);   /* is value i an input of some entry? */
    TG_CHECK(used, "tg_tape_dot: out of memory");
    for (int64_t k = 0; k < t->n; k++)
        for (int j = 0; j < n_inputs(&t->entries[k]); j++)
            if (input(&t->entries[k], j)) used[find(&l, input(&t->entries[k], j))] = true;

    fputs("digraph tape {\n"
          "  node [fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [arrowsize=0.6];\n", f);
    /* Values: boxes "name\n(shape)"; parameters filled, results (used by no entry) doubled. */
    for (int64_t i = 0; i < l.n; i++) {
        const tg_var *v = l.val[i];
        char nb[32], sb[96], text[256];
        snprintf(text, sizeof text, "%s\n%s", label(t, &l, i, nb, sizeof nb), tg_shape_str(v->val.shape, sb));
        bool param = i >= t->n && v->requires_grad;
        fprintf(f, "  v%lld [shape=box, label=", (long long)i);
        quoted(f, text);
        if (param) fputs(", style=filled, fillcolor=\"#cfe2f3\"", f);
        if (!used[i]) fputs(", peripheries=2", f);
        fputs("];\n", f);
    }
    /* Ops: ellipses, edges from their inputs and to their output. */
    for (int64_t k = 0; k < t->n; k++) {
        const tg_entry *e = &t->entries[k];
        fprintf(f, "  op%lld [shape=ellipse, label=", (long long)k);
        quoted(f, tg_ops[e->op].name);
        fputs("];\n", f);
        for (int j = 0; j < n_inputs(e); j++)
            if (input(e, j)) fprintf(f, "  v%lld -> op%lld;\n", (long long)find(&l, input(e, j)), (long long)k);
        fprintf(f, "  op%lld -> v%lld;\n", (long long)k, (long long)k);
    }
    fputs("}\n", f);
    free(used);
    free(l.val);
}

int tg_tape_dot_save(const tg_tape *t, const char *path, tg_err *e) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    TG_CHECK(f, "tg_tape_dot_save: out of memory");
    tg_tape_dot(t, f);
    TG_CHECK(fclose(f) == 0, "tg_tape_dot_save: out of memory");
    int rc = tg_file_write(path, buf, n, e);
    free(buf);
    return rc;
}
