/*
 * test_graph.c — seeing the tape: tg_tape_print and tg_tape_dot on small
 * graphs whose text is written out here by hand, tg_name, and the programs'
 * --graph flags (vae train, seed_vae) on the reference VAE, whose graph is
 * known: 15 entries, 10 parameters, one loss. When Graphviz's `dot` is
 * installed, the files must render; the text itself is checked always.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/autograd.h"
#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

static void setup(void) {
    tg_tmpdir_setup();
    tg_cli_write_data(tg_tmp("data"), 256, 64);
}

TestSuite(graph, .init = setup, .fini = tg_tmpdir_teardown, .timeout = 120);

/* What f writes for tape t, as a malloc'd string. */
static char *text_of(void (*f)(const tg_tape *, FILE *), const tg_tape *t) {
    char *buf = NULL;
    size_t n = 0;
    FILE *s = open_memstream(&buf, &n);
    cr_assert_not_null(s);
    f(t, s);
    fclose(s);
    return buf;
}

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* loss = sum(relu(a * b)): a a named parameter (2, 3), b an unnamed input (3). */
static tg_var *small_graph(tg_tape *t) {
    tg_arena *ar = tg_tape_arena(t);
    tg_var *a = tg_leaf(t, tg_tensor_full(ar, TG_F64, TG_SHAPE(2, 3), 1.0), true);
    a->name = "a";
    tg_var *b = tg_leaf(t, tg_tensor_full(ar, TG_F64, TG_SHAPE(3), 2.0), false);
    tg_var *y = tg_name(tg_relu(t, tg_mul(t, a, b)), "y");
    return tg_sum(t, y);
}

Test(graph, print_lists_each_entry_with_names_and_shapes) {
    tg_tape *t = tg_tape_new();
    tg_var *loss = small_graph(t);
    char *got = text_of(tg_tape_print, t);
    const char *want = "tape: 3 entries\n"
                       "   0  mul                %0 (2, 3) <- a (2, 3), in0 (3,)\n"
                       "   1  relu               y (2, 3) <- %0 (2, 3)\n"
                       "   2  sum                %2 () <- y (2, 3)\n";
    cr_expect_str_eq(got, want);
    free(got);
    tg_backward(t, loss);   /* backward forgets the entries */
    got = text_of(tg_tape_print, t);
    cr_expect_str_eq(got, "tape: 0 entries\n");
    free(got);
    tg_tape_free(t);
}

Test(graph, dot_has_values_as_boxes_ops_as_ellipses_parameters_filled_results_doubled) {
    tg_tape *t = tg_tape_new();
    small_graph(t);
    char *got = text_of(tg_tape_dot, t);
    const char *want = "digraph tape {\n"
                       "  node [fontname=\"Helvetica\", fontsize=10];\n"
                       "  edge [arrowsize=0.6];\n"
                       "  v0 [shape=box, label=\"%0\\n(2, 3)\"];\n"
                       "  v1 [shape=box, label=\"y\\n(2, 3)\"];\n"
                       "  v2 [shape=box, label=\"%2\\n()\", peripheries=2];\n"
                       "  v3 [shape=box, label=\"a\\n(2, 3)\", style=filled, fillcolor=\"#cfe2f3\"];\n"
                       "  v4 [shape=box, label=\"in0\\n(3,)\"];\n"
                       "  op0 [shape=ellipse, label=\"mul\"];\n"
                       "  v3 -> op0;\n"
                       "  v4 -> op0;\n"
                       "  op0 -> v0;\n"
                       "  op1 [shape=ellipse, label=\"relu\"];\n"
                       "  v0 -> op1;\n"
                       "  op1 -> v1;\n"
                       "  op2 [shape=ellipse, label=\"sum\"];\n"
                       "  v1 -> op2;\n"
                       "  op2 -> v2;\n"
                       "}\n";
    cr_expect_str_eq(got, want);
    free(got);
    tg_tape_free(t);
}

Test(graph, variadic_inputs_reused_values_and_quoted_names) {
    tg_tape *t = tg_tape_new();
    tg_arena *ar = tg_tape_arena(t);
    tg_var *a = tg_name(tg_leaf(t, tg_tensor_full(ar, TG_F64, TG_SHAPE(2, 2), 1.0), true), "say \"a\\b\"");
    tg_var *c = tg_concat(t, a, a, 0);                  /* one value used twice by one entry */
    tg_var *d = tg_add(t, c, tg_exp(t, c));             /* and by two entries */
    (void)d;
    char *got = text_of(tg_tape_print, t);
    cr_expect_str_eq(got, "tape: 3 entries\n"
                          "   0  concat             %0 (4, 2) <- say \"a\\b\" (2, 2), say \"a\\b\" (2, 2)\n"
                          "   1  exp                %1 (4, 2) <- %0 (4, 2)\n"
                          "   2  add                %2 (4, 2) <- %0 (4, 2), %1 (4, 2)\n");
    free(got);
    got = text_of(tg_tape_dot, t);
    cr_expect(strstr(got, "v3 [shape=box, label=\"say \\\"a\\\\b\\\"\\n(2, 2)\", style=filled"), "%s", got);
    cr_expect_eq(count(got, "v3 -> op0;"), 2, "%s", got);
    cr_expect_eq(count(got, "v0 -> op"), 2, "%s", got);
    cr_expect_eq(count(got, "peripheries=2"), 1, "only %%2 is a result:\n%s", got);
    free(got);
    tg_tape_free(t);
}

Test(graph, nothing_recorded_without_gradients) {
    tg_tape *t = tg_tape_new();
    tg_var *a = tg_leaf(t, tg_tensor_full(tg_tape_arena(t), TG_F64, TG_SHAPE(2), 1.0), false);
    tg_exp(t, a);
    char *got = text_of(tg_tape_dot, t);
    cr_expect_str_eq(got, "digraph tape {\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [arrowsize=0.6];\n}\n");
    free(got);
    tg_tape_free(t);
}

/* The VAE's first step as DOT: its ops (15 in the reference VAE; the
 * trainer's model adds a sum over the batch for the KL per dimension, a
 * second result), 10 parameters and the named values; rendered by Graphviz
 * when it is installed. */
static void check_vae_dot(const char *path, bool model_names) {
    int ops = model_names ? 16 : 15, results = model_names ? 2 : 1;
    char *dot = tg_cli_text(path);
    cr_assert(!strncmp(dot, "digraph tape {\n", 15) && strstr(dot, "\n}\n"), "%s", dot);
    cr_expect_eq(count(dot, "shape=ellipse"), ops, "%s", dot);
    cr_expect_eq(count(dot, "label=\"affine\""), 5, "%s", dot);
    cr_expect_eq(count(dot, "style=filled"), 10, "%s", dot);
    cr_expect_eq(count(dot, "peripheries=2"), results, "%s", dot);
    static const char *const params[] = {"fc1.weight\\n(400, 784)", "fc1.bias\\n(400,)", "fc_mu.weight\\n(20, 400)",
                                         "fc_logvar.bias\\n(20,)", "fc3.weight\\n(784, 400)"};
    for (size_t i = 0; i < sizeof params / sizeof *params; i++)
        cr_expect(strstr(dot, params[i]), "%s missing from %s", params[i], dot);
    static const char *const names[] = {"\"x\\n(128, 784)\"", "\"mu\\n(128, 20)\"", "\"logvar\\n(128, 20)\"",
                                        "\"z\\n(128, 20)\"", "\"logits\\n(128, 784)\"", "\"kl\\n()\"",
                                        "\"loss\\n()\", peripheries=2"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        cr_expect(strstr(dot, names[i]), "%s missing", names[i]);
    if (model_names) cr_expect(strstr(dot, "\"recon\\n()\""), "the term recon is named: %s", dot);
    free(dot);
    if (system("command -v dot >/dev/null 2>&1") == 0) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "dot -Tsvg %s -o %s", tg_tmp(path), tg_tmp("graph.svg"));
        cr_expect_eq(system(cmd), 0, "%s", cmd);
        char *svg = tg_cli_text("graph.svg");
        cr_expect(strstr(svg, "<svg") && strstr(svg, "fc1.weight"), "no picture");
        free(svg);
    } else {
        cr_log_warn("Graphviz's dot is not installed: the DOT file is checked, not rendered");
    }
}

Test(graph, vae_train_graph_writes_the_first_step) {
    char args[1024];
    snprintf(args, sizeof args, "--model vae --epochs 1 --graph %s", tg_tmp("vae.dot"));
    tg_cli_train("data", "run", args);
    check_vae_dot("vae.dot", true);
}

Test(graph, seed_vae_graph_writes_the_first_step) {
    char args[1024];
    snprintf(args, sizeof args, "--data %s --epochs 1 --graph %s", tg_tmp("data"), tg_tmp("seed.dot"));
    cr_assert_eq(tg_cli_run_program("build/seed_vae", args), 0, "%s", tg_cli_text("stderr"));
    check_vae_dot("seed.dot", false);
}

Test(graph, graph_into_a_missing_directory_is_refused_before_training) {
    char args[1024];
    snprintf(args, sizeof args, "train --data %s --out %s --epochs 1 --graph /nonexistent-dir/g.dot", tg_tmp("data"),
             tg_tmp("refused"));
    tg_cli_expect_error("vae train --graph", tg_cli_run(args), 1,
                        (const char *const[]){"vae train: --graph /nonexistent-dir/g.dot: directory /nonexistent-dir "
                                              "is not writable", NULL});
    cr_expect_neq(access(tg_tmp("refused"), F_OK), 0, "no run directory is made");
    snprintf(args, sizeof args, "--data %s --epochs 1 --graph /nonexistent-dir/g.dot", tg_tmp("data"));
    cr_expect_eq(tg_cli_run_program("build/seed_vae", args), 1);
    char *err = tg_cli_text("stderr");
    cr_expect(strstr(err, "seed_vae: --graph /nonexistent-dir/g.dot: directory /nonexistent-dir is not writable"),
              "%s", err);
    free(err);
    snprintf(args, sizeof args, "train --data %s --out %s --epochs 1 --graph", tg_tmp("data"), tg_tmp("refused"));
    tg_cli_expect_error("vae train --graph without a value", tg_cli_run(args), 2,
                        (const char *const[]){"--graph", NULL});
}

/* build/first (examples/first.c) prints what docs/autograd.md shows, in
 * the block whose info string is "text build/first"; and, independently of
 * the document, its loss falls below 0.001 and it computes XOR. */
Test(graph, first_prints_what_the_document_shows) {
    cr_assert_eq(tg_cli_run_program("build/first", ""), 0, "%s", tg_cli_text("stderr"));
    char *got = tg_cli_text("stdout");
    size_t n;
    char *doc = (char *)tg_slurp("docs/autograd.md", &n);
    const char *open = strstr(doc, "```text build/first\n");
    cr_assert_not_null(open, "docs/autograd.md has no ```text build/first block");
    open += strlen("```text build/first\n");
    const char *close = strstr(open, "```");
    cr_assert_not_null(close);
    char *want = strndup(open, (size_t)(close - open));
    cr_expect_str_eq(got, want, "build/first's output differs from docs/autograd.md");
    char *readme = (char *)tg_slurp("README.md", &n);
    const char *tape_end = strstr(got, "step ");   /* the tape: the lines before the first loss */
    cr_assert_not_null(tape_end);
    char *tape = strndup(got, (size_t)(tape_end - got));
    cr_expect(strstr(readme, tape), "README.md does not show build/first's tape:\n%s", tape);
    free(tape), free(readme);
    cr_expect(strstr(got, "   1  tanh               h (4, 8) <- %0 (4, 8)\n"), "%s", got);
    double first = -1, last = -1, loss;
    int step;
    for (const char *l = got; (l = strstr(l, "step ")); l++)
        if (sscanf(l, "step %d loss %lf", &step, &loss) == 2) {
            if (first < 0) first = loss;
            last = loss;
        }
    cr_expect(first > 0.6 && last < 1e-3, "loss %g -> %g", first, last);
    static const char *const xor[] = {"xor(0, 0) = 0.0", "xor(0, 1) = 1.0", "xor(1, 0) = 0.99", "xor(1, 1) = 0.0"};
    for (int i = 0; i < 4; i++) cr_expect(strstr(got, xor[i]), "%s missing", xor[i]);
    cr_expect(strstr(got, "gradient check of 33 parameters: ok\n"), "%s", got);
    free(want), free(doc), free(got);
}
