/*
 * test_json.c — the strict JSON reader and the writer (io/json.h).
 *
 * Every parse is fed from a malloc'd copy of exactly n bytes with no NUL
 * after it, so any read past the input shows up under AddressSanitizer.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

/* Parses s (its strlen bytes, or n if n != (size_t)-1) from an exact-size heap copy. */
static tg_json *parse_n(const char *s, size_t n, tg_err *e) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    tg_json *v = tg_json_parse(copy, n, "config.json", e);
    free(copy);   /* the tree must not point into the input */
    return v;
}

static tg_json *parse(const char *s, tg_err *e) { return parse_n(s, strlen(s), e); }

/* Writes a parsed tree back out with the writer. */
static void write_tree(tg_jsonw *w, const tg_json *v) {
    switch (v->type) {
    case TG_JSON_NULL: tg_jsonw_null(w); break;
    case TG_JSON_BOOL: tg_jsonw_bool(w, v->b); break;
    case TG_JSON_NUMBER:
        if (v->is_int && !(v->i == 0 && signbit(v->num))) tg_jsonw_int(w, v->i);
        else tg_jsonw_double(w, v->num);
        break;
    case TG_JSON_STRING: tg_jsonw_string_n(w, v->str, v->len); break;
    case TG_JSON_ARRAY:
        tg_jsonw_begin_array(w);
        for (size_t i = 0; i < v->n; i++) write_tree(w, &v->items[i]);
        tg_jsonw_end_array(w);
        break;
    case TG_JSON_OBJECT:
        tg_jsonw_begin_object(w);
        for (size_t i = 0; i < v->n; i++) {
            tg_jsonw_key(w, v->keys[i]);
            write_tree(w, &v->items[i]);
        }
        tg_jsonw_end_object(w);
        break;
    }
}

/* Deep equality of two trees (numbers bitwise, so -0 != 0). */
static bool tree_eq(const tg_json *a, const tg_json *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case TG_JSON_NULL: return true;
    case TG_JSON_BOOL: return a->b == b->b;
    case TG_JSON_NUMBER:
        /* an integral double such as 1e2 may come back as the integer literal 100 */
        return (!a->is_int || (b->is_int && a->i == b->i)) && memcmp(&a->num, &b->num, sizeof a->num) == 0;
    case TG_JSON_STRING: return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case TG_JSON_ARRAY:
    case TG_JSON_OBJECT:
        if (a->n != b->n) return false;
        for (size_t i = 0; i < a->n; i++) {
            if (a->type == TG_JSON_OBJECT && strcmp(a->keys[i], b->keys[i]) != 0) return false;
            if (!tree_eq(&a->items[i], &b->items[i])) return false;
        }
        return true;
    }
    return false;
}

/* ================================================================ reading */

Test(json, object_keys_keep_order_and_lookup_works) {
    tg_err e;
    tg_json *v = parse(" {\"z\": 1, \"a\": [true, false, null, \"s\"], \"m\": {\"k\": -2.5}} \n", &e);
    cr_assert_not_null(v, "%s", e.msg);
    cr_assert_eq(v->type, TG_JSON_OBJECT);
    cr_assert_eq(tg_json_len(v), 3);
    cr_assert_str_eq(tg_json_key(v, 0), "z");
    cr_assert_str_eq(tg_json_key(v, 1), "a");
    cr_assert_str_eq(tg_json_key(v, 2), "m");
    cr_assert_null(tg_json_key(v, 3));
    int64_t i;
    cr_assert_eq(tg_json_as_int64(tg_json_get(v, "z"), 0, 10, &i), 0);
    cr_assert_eq(i, 1);
    const tg_json *a = tg_json_get(v, "a");
    cr_assert_eq(tg_json_len(a), 4);
    bool b;
    cr_assert_eq(tg_json_as_bool(tg_json_at(a, 0), &b), 0);
    cr_assert(b);
    cr_assert_eq(tg_json_as_bool(tg_json_at(a, 1), &b), 0);
    cr_assert(!b);
    cr_assert_eq(tg_json_at(a, 2)->type, TG_JSON_NULL);
    cr_assert_str_eq(tg_json_as_string(tg_json_at(a, 3)), "s");
    cr_assert_null(tg_json_at(a, 4));
    double d;
    cr_assert_eq(tg_json_as_double(tg_json_get(tg_json_get(v, "m"), "k"), &d), 0);
    cr_assert_eq(d, -2.5);
    cr_assert_null(tg_json_get(v, "missing"));
    cr_assert_null(tg_json_get(a, "z"));               /* not an object */
    cr_assert_null(tg_json_as_string(tg_json_get(v, "z")));
    cr_assert_eq(tg_json_as_int64(tg_json_get(v, "z"), 2, 10, &i), -1);   /* out of range */
    cr_assert_eq(tg_json_as_int64(tg_json_get(tg_json_get(v, "m"), "k"), -10, 10, &i), -1);   /* not integer */
    cr_assert_eq(tg_json_as_int64(NULL, 0, 1, &i), -1);
    tg_json_free(v);
}

Test(json, empty_containers_and_scalars_at_top_level) {
    tg_err e;
    const char *ok[] = {"{}", "[]", " [ ] ", "0", "\"\"", "true", "null", "-0.0e+0", "[[],{}]"};
    for (size_t k = 0; k < sizeof ok / sizeof *ok; k++) {
        tg_json *v = parse(ok[k], &e);
        cr_assert_not_null(v, "%s: %s", ok[k], e.msg);
        tg_json_free(v);
    }
}

Test(json, string_escapes_decode_to_utf8) {
    tg_err e;
    tg_json *v = parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u0041\\u00e9\\u20ac\\ud83d\\ude00 \xc3\xa9\xf0\x9f\x98\x80\"", &e);
    cr_assert_not_null(v, "%s", e.msg);
    const char want[] = "q\" b\\ s/ \b\f\n\r\t A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xc3\xa9\xf0\x9f\x98\x80";
    cr_assert_eq(v->len, sizeof want - 1);
    cr_assert_eq(memcmp(v->str, want, sizeof want), 0);   /* includes the final NUL */
    tg_json_free(v);

    v = parse("\"a\\u0000b\"", &e);   /* embedded NUL is kept, with its length */
    cr_assert_not_null(v, "%s", e.msg);
    cr_assert_eq(v->len, 3);
    cr_assert_eq(memcmp(v->str, "a\0b", 4), 0);
    tg_json_free(v);

    v = parse("\"\\uDBFF\\uDFFF\"", &e);   /* U+10FFFF, upper-case hex */
    cr_assert_not_null(v, "%s", e.msg);
    cr_assert_eq(memcmp(v->str, "\xf4\x8f\xbf\xbf", 5), 0);
    tg_json_free(v);
}

Test(json, number_edge_cases) {
    tg_err e;
    struct { const char *text; bool is_int; int64_t i; double d; } cases[] = {
        {"9223372036854775807", true, INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", true, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775808", false, 0, 9223372036854775808.0},
        {"-9223372036854775809", false, 0, -9223372036854775809.0},
        {"123456789012345678901234567890", false, 0, 123456789012345678901234567890.0},
        {"0", true, 0, 0.0},
        {"-0", true, 0, -0.0},
        {"1e308", false, 0, 1e308},
        {"1.7976931348623157e308", false, 0, 1.7976931348623157e308},
        {"1e-320", false, 0, 1e-320},
        {"4.9e-324", false, 0, 4.9e-324},
        {"0.1", false, 0, 0.1},
        {"-1.5E+2", false, 0, -150.0},
        {"1e2", false, 0, 100.0},
        {"1.0", false, 0, 1.0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tg_json *v = parse(cases[k].text, &e);
        cr_assert_not_null(v, "%s: %s", cases[k].text, e.msg);
        cr_assert_eq(v->type, TG_JSON_NUMBER);
        cr_assert_eq(v->is_int, cases[k].is_int, "%s", cases[k].text);
        if (cases[k].is_int) cr_assert_eq(v->i, cases[k].i, "%s", cases[k].text);
        cr_assert_eq(memcmp(&v->num, &cases[k].d, sizeof(double)), 0, "%s: %.17g", cases[k].text, v->num);
        tg_json_free(v);
    }
    tg_json *v = parse("-0", &e);
    cr_assert(signbit(v->num));
    tg_json_free(v);
    v = parse("1e-320", &e);
    cr_assert(v->num > 0 && v->num < 1e-310);   /* subnormal, not flushed to 0 */
    tg_json_free(v);
    int64_t i;
    v = parse("9223372036854775807", &e);
    cr_assert_eq(tg_json_as_int64(v, INT64_MIN, INT64_MAX, &i), 0);
    cr_assert_eq(i, INT64_MAX);
    cr_assert_eq(tg_json_as_int64(v, 0, INT64_MAX - 1, &i), -1);
    tg_json_free(v);
}

/* Each case: input, the byte offset the message must name, and a fragment. */
typedef struct { const char *text; size_t n; size_t at; const char *what; } bad_case;

Test(json, rejections_name_the_byte_offset) {
    static char deep[200];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = 0;
    bad_case cases[] = {
        {"", 0, 0, "expected a value"},
        {"   ", 3, 3, "expected a value"},
        {"{\"a\" 1}", 7, 5, "expected ':' after object key"},
        {"{\"a\":1,}", 8, 7, "trailing comma"},
        {"[1,2,]", 6, 5, "trailing comma"},
        {"[1 2]", 5, 3, "expected ',' or ']'"},
        {"{\"a\":1 \"b\":2}", 13, 7, "expected ',' or '}'"},
        {"{1:2}", 5, 1, "expected a string key"},
        {"01", 2, 0, "leading zero"},
        {"-01", 3, 0, "leading zero"},
        {"[00]", 4, 1, "leading zero"},
        {"-", 1, 1, "expected a digit"},
        {"+1", 2, 0, "expected a value"},
        {".5", 2, 0, "expected a value"},
        {"1.", 2, 2, "after '.'"},
        {"1.e5", 4, 2, "after '.'"},
        {"1e", 2, 2, "exponent"},
        {"1e+", 3, 3, "exponent"},
        {"1e999", 5, 0, "out of range"},
        {"-1e999", 6, 0, "out of range"},
        {"NaN", 3, 0, "expected a value"},
        {"tru", 3, 0, "expected true"},
        {"nul", 3, 0, "expected null"},
        {"[true false]", 12, 6, "expected ','"},
        {"[1] x", 5, 4, "trailing characters"},
        {"{} {}", 5, 3, "trailing characters"},
        {"\"abc", 4, 0, "unterminated string"},
        {"\"abc\\\"", 6, 0, "unterminated string"},
        {"\"a\tb\"", 5, 2, "control character 0x09"},
        {"\"a\nb\"", 5, 2, "control character 0x0a"},
        {"\"\\x\"", 4, 1, "invalid escape \\x"},
        {"\"\\u12g4\"", 8, 5, "four hex digits"},
        {"\"\\u12\"", 6, 5, "four hex digits"},
        {"\"\\ud800\"", 8, 1, "high surrogate"},
        {"\"\\ud800x\"", 9, 1, "high surrogate"},
        {"\"\\ud800\\u0041\"", 14, 1, "not a low surrogate"},
        {"\"\\udc00\"", 8, 1, "lone low surrogate"},
        {"\"\xff\"", 3, 1, "invalid UTF-8"},
        {"\"ab\x80\"", 5, 3, "invalid UTF-8"},
        {"\"\xc0\xaf\"", 4, 1, "invalid UTF-8"},          /* overlong '/' */
        {"\"\xe0\x80\xaf\"", 5, 1, "invalid UTF-8"},      /* overlong */
        {"\"\xed\xa0\x80\"", 5, 1, "invalid UTF-8"},      /* UTF-8-encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", 6, 1, "invalid UTF-8"},  /* above U+10FFFF */
        {"\"\xe2\x82\"", 4, 1, "invalid UTF-8"},          /* cut short by the quote */
        {"{\"a\":1,\"b\":2,\"a\":3}", 19, 0, "duplicate key \"a\""},
        {"[1,{\"k\":[],\"k\":{}}]", 19, 3, "duplicate key \"k\""},
        {"[1]\0", 4, 3, "trailing characters"},
        {deep, 130, 64, "nesting deeper than 64"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tg_err e = {{0}};
        tg_json *v = parse_n(cases[k].text, cases[k].n, &e);
        cr_assert_null(v, "case %zu \"%s\" was accepted", k, cases[k].text);
        char want[64];
        snprintf(want, sizeof want, "config.json: JSON error at byte %zu: ", cases[k].at);
        cr_assert_eq(strncmp(e.msg, want, strlen(want)), 0, "case %zu: got \"%s\", want prefix \"%s\"", k, e.msg,
                     want);
        cr_assert_not_null(strstr(e.msg, cases[k].what), "case %zu: \"%s\" lacks \"%s\"", k, e.msg, cases[k].what);
    }
}

Test(json, message_exactly_as_documented_and_null_name_and_null_err) {
    tg_err e;
    tg_json *v = parse("{\"hidden\": 400, \"latent\" 20}", &e);
    cr_assert_null(v);
    cr_assert_str_eq(e.msg, "config.json: JSON error at byte 25: expected ':' after object key, found '2'");
    v = tg_json_parse("[1,]", 4, NULL, &e);
    cr_assert_null(v);
    cr_assert_str_eq(e.msg, "JSON error at byte 3: trailing comma before ']'");
    cr_assert_null(tg_json_parse("[1,]", 4, "x", NULL));   /* no error struct: still fails cleanly */
}

Test(json, depth_64_accepted_65_rejected) {
    char buf[200];
    tg_err e;
    memset(buf, '[', 64);
    memset(buf + 64, ']', 64);
    tg_json *v = parse_n(buf, 128, &e);
    cr_assert_not_null(v, "%s", e.msg);
    tg_json_free(v);
    /* mixed: an object whose value nests further counts the same */
    char obj[300];
    int k = snprintf(obj, sizeof obj, "{\"a\":");
    memset(obj + k, '[', 64);
    memset(obj + k + 64, ']', 64);
    obj[k + 128] = '}';
    v = parse_n(obj, (size_t)k + 129, &e);
    cr_assert_null(v);
    cr_assert_not_null(strstr(e.msg, "at byte 68: nesting deeper than 64"), "%s", e.msg);
}

Test(json, every_prefix_of_a_document_is_rejected_without_overread) {
    const char *doc = "{\"__metadata__\":{\"k\":\"v\\u00e9\"},\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[400,784],"
                      "\"data_offsets\":[0,1254400]},\"x\":[true,false,null,-1.5e-3]}";
    size_t n = strlen(doc);
    tg_err e;
    tg_json *full = parse(doc, &e);
    cr_assert_not_null(full, "%s", e.msg);
    tg_json_free(full);
    for (size_t len = 0; len < n; len++) {
        tg_json *v = parse_n(doc, len, &e);
        cr_assert_null(v, "prefix of %zu bytes accepted", len);
        cr_assert_not_null(strstr(e.msg, "JSON error at byte "), "%s", e.msg);
    }
}

/* ================================================================ writing */

Test(json, writer_exact_text_and_escapes) {
    tg_jsonw w;
    tg_jsonw_init(&w);
    tg_jsonw_begin_object(&w);
    tg_jsonw_key(&w, "s");
    tg_jsonw_string(&w, "q\"\\/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9");
    tg_jsonw_key(&w, "k\"ey");
    tg_jsonw_begin_array(&w);
    tg_jsonw_int(&w, INT64_MAX);
    tg_jsonw_int(&w, INT64_MIN);
    tg_jsonw_double(&w, 0.1);
    tg_jsonw_double(&w, -0.0);
    tg_jsonw_double(&w, 1e308);
    tg_jsonw_double(&w, 1e-320);
    tg_jsonw_double(&w, 2.0);
    tg_jsonw_bool(&w, true);
    tg_jsonw_bool(&w, false);
    tg_jsonw_null(&w);
    tg_jsonw_begin_array(&w);
    tg_jsonw_end_array(&w);
    tg_jsonw_begin_object(&w);
    tg_jsonw_end_object(&w);
    tg_jsonw_end_array(&w);
    tg_jsonw_end_object(&w);
    const char *s = tg_jsonw_finish(&w);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "{\"s\":\"q\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\","
                        "\"k\\\"ey\":[9223372036854775807,-9223372036854775808,0.1,-0,1e+308,"
                        "9.99988867182683e-321,2,true,false,null,[],{}]}");
    cr_assert_eq(w.len, strlen(s));
    tg_err e;
    tg_json *v = parse(s, &e);   /* and it reads back */
    cr_assert_not_null(v, "%s", e.msg);
    const tg_json *a = tg_json_get(v, "k\"ey");
    cr_assert_eq(tg_json_at(a, 0)->i, INT64_MAX);
    cr_assert_eq(tg_json_at(a, 1)->i, INT64_MIN);
    cr_assert_eq(tg_json_at(a, 2)->num, 0.1);
    cr_assert(signbit(tg_json_at(a, 3)->num));
    cr_assert_eq(tg_json_at(a, 4)->num, 1e308);
    cr_assert_eq(tg_json_at(a, 5)->num, 1e-320);
    cr_assert_str_eq(tg_json_as_string(tg_json_get(v, "s")), "q\"\\/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9");
    tg_json_free(v);
    tg_jsonw_free(&w);
}

Test(json, writer_doubles_round_trip_exactly) {
    tg_rng r = tg_rng_seed(7);
    for (int k = 0; k < 20000; k++) {
        uint64_t bits = tg_rng_u64(&r);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) continue;
        tg_jsonw w;
        tg_jsonw_init(&w);
        tg_jsonw_double(&w, d);
        const char *s = tg_jsonw_finish(&w);
        cr_assert_not_null(s);
        tg_err e;
        tg_json *v = parse(s, &e);
        cr_assert_not_null(v, "%s: %s", s, e.msg);
        cr_assert_eq(memcmp(&v->num, &d, sizeof d), 0, "%.17g printed as %s", d, s);
        tg_json_free(v);
        tg_jsonw_free(&w);
    }
}

Test(json, writer_nonfinite_fails_and_empty_finish) {
    tg_jsonw w;
    tg_jsonw_init(&w);
    tg_jsonw_begin_array(&w);
    tg_jsonw_double(&w, NAN);
    tg_jsonw_end_array(&w);
    cr_assert_null(tg_jsonw_finish(&w));
    tg_jsonw_free(&w);
    tg_jsonw_init(&w);
    cr_assert_str_eq(tg_jsonw_finish(&w), "");
    tg_jsonw_free(&w);
}

/* v written out and parsed again is the same tree. */
static void expect_round_trip(const tg_json *v, const char *what) {
    tg_err e;
    tg_jsonw w;
    tg_jsonw_init(&w);
    write_tree(&w, v);
    const char *s = tg_jsonw_finish(&w);
    cr_assert_not_null(s);
    tg_json *v2 = parse_n(s, w.len, &e);
    cr_assert_not_null(v2, "%s: %s", s, e.msg);
    cr_assert(tree_eq(v, v2), "round trip changed %s into %s", what, s);
    tg_json_free(v2);
    tg_jsonw_free(&w);
}

Test(json, parse_write_parse_round_trip) {
    const char *docs[] = {
        "{\"a\":[1,2.5,-0,\"x\\u0000y\",{\"b\":null}],\"\xe2\x82\xac\":\"\\ud83d\\ude00\",\"t\":true}",
        "[9223372036854775807,-9223372036854775808,1e308,1e-320,0.30000000000000004,[],{}]",
        "\"\\u001f\\\"\\\\\"",
    };
    for (size_t k = 0; k < sizeof docs / sizeof *docs; k++) {
        tg_err e;
        tg_json *v = parse(docs[k], &e);
        cr_assert_not_null(v, "%s", e.msg);
        expect_round_trip(v, docs[k]);
        tg_json_free(v);
    }
}

/* Random texts over JSON's alphabet: never a crash or overread (ASan), and
 * whatever parses also survives a write / re-parse round trip. */
Test(json, fuzz_random_texts) {
    static const char alphabet[] = "{}[],:\"\\u0123456789abcdefABCDEF.eE+- \ttrunlsf\x01\xc3\xa9\xed\xff";
    tg_rng r = tg_rng_seed(2024);
    char buf[64];
    int accepted = 0;
    for (int it = 0; it < 30000; it++) {
        size_t n = (size_t)tg_rng_below(&r, sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = alphabet[tg_rng_below(&r, sizeof alphabet - 1)];
        tg_err e;
        tg_json *v = parse_n(buf, n, &e);
        if (!v) {
            cr_assert_not_null(strstr(e.msg, "JSON error at byte "), "%s", e.msg);
            continue;
        }
        accepted++;
        expect_round_trip(v, "a random text");
        tg_json_free(v);
    }
    cr_assert(accepted > 0);
}
