/*
 * fuzz_json.c — libFuzzer target for the JSON reader (io/json.c).
 *
 * Every input is parsed with tg_json_parse. A rejected input must come back
 * with a message; an accepted one is walked through the accessors, written
 * back with the tg_jsonw writer and parsed again, and the two trees must
 * agree (types, strings byte for byte, numbers by value, exact integers by
 * value). The sanitizers catch overreads, leaks and undefined behaviour.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

/* Writes v with the writer. Returns false if v cannot be written faithfully
 * (an object key with an embedded NUL: the writer takes C-string keys). */
static bool write_value(tg_jsonw *w, const tg_json *v) {
    switch (v->type) {
    case TG_JSON_NULL: tg_jsonw_null(w); return true;
    case TG_JSON_BOOL: tg_jsonw_bool(w, v->b); return true;
    case TG_JSON_NUMBER:
        if (v->is_int) tg_jsonw_int(w, v->i);
        else tg_jsonw_double(w, v->num);
        return true;
    case TG_JSON_STRING: tg_jsonw_string_n(w, v->str, v->len); return true;
    case TG_JSON_ARRAY: {
        bool ok = true;
        tg_jsonw_begin_array(w);
        for (size_t i = 0; i < v->n; i++) ok &= write_value(w, &v->items[i]);
        tg_jsonw_end_array(w);
        return ok;
    }
    case TG_JSON_OBJECT: {
        bool ok = true;
        tg_jsonw_begin_object(w);
        for (size_t i = 0; i < v->n; i++) {
            if (strlen(v->keys[i]) != v->key_lens[i]) ok = false;
            tg_jsonw_key(w, v->keys[i]);
            ok &= write_value(w, &v->items[i]);
        }
        tg_jsonw_end_object(w);
        return ok;
    }
    }
    abort();
}

/* Aborts unless a and b are the same document. */
static void same(const tg_json *a, const tg_json *b) {
    if (a->type != b->type) abort();
    switch (a->type) {
    case TG_JSON_NULL: break;
    case TG_JSON_BOOL:
        if (a->b != b->b) abort();
        break;
    case TG_JSON_NUMBER:
        if (a->num != b->num) abort();
        if (a->is_int && (!b->is_int || a->i != b->i)) abort();
        break;
    case TG_JSON_STRING:
        if (a->len != b->len || memcmp(a->str, b->str, a->len) != 0 || b->str[b->len] != 0) abort();
        break;
    case TG_JSON_ARRAY:
    case TG_JSON_OBJECT:
        if (a->n != b->n) abort();
        for (size_t i = 0; i < a->n; i++) {
            if (a->type == TG_JSON_OBJECT &&
                (a->key_lens[i] != b->key_lens[i] || memcmp(a->keys[i], b->keys[i], a->key_lens[i]) != 0))
                abort();
            same(&a->items[i], &b->items[i]);
        }
        break;
    }
}

/* Exercises the read-only accessors on every node. */
static void walk(const tg_json *v) {
    int64_t i64;
    double d;
    bool b;
    (void)tg_json_type_name(v->type);
    (void)tg_json_as_string(v);
    (void)tg_json_as_int64(v, INT64_MIN, INT64_MAX, &i64);
    (void)tg_json_as_double(v, &d);
    (void)tg_json_as_bool(v, &b);
    size_t n = tg_json_len(v);
    if (tg_json_at(v, n)) abort();
    for (size_t i = 0; i < n; i++) {
        const tg_json *c = tg_json_at(v, i);
        if (!c) abort();
        const char *k = tg_json_key(v, i);
        if ((k != NULL) != (v->type == TG_JSON_OBJECT)) abort();
        /* Lookup by C string finds the member unless its name holds a NUL. */
        if (k && strlen(k) == v->key_lens[i] && tg_json_get(v, k) != c) abort();
        walk(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A heap copy of exactly size bytes, so reading past the end is caught. */
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    memcpy(text, data, size);
    tg_err e = {{0}};
    tg_json *doc = tg_json_parse(text, size, "fuzz.json", &e);
    if (!doc) {
        if (strncmp(e.msg, "fuzz.json: JSON error at byte ", 30) != 0) abort();
        free(text);
        return 0;
    }
    walk(doc);
    tg_jsonw w;
    tg_jsonw_init(&w);
    bool faithful = write_value(&w, doc);
    const char *out = tg_jsonw_finish(&w);
    if (!out) abort();
    tg_json *again = tg_json_parse(out, w.len, NULL, &e);
    if (!again) {
        fprintf(stderr, "written text does not parse: %s\n", e.msg);
        abort();
    }
    if (faithful) same(doc, again);
    tg_json_free(again);
    tg_jsonw_free(&w);
    tg_json_free(doc);
    free(text);
    return 0;
}
