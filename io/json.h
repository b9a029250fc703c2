/*
 * json.h — a small, strict JSON (RFC 8259) reader and writer.
 *
 *     tg_err err;
 *     tg_json *doc = tg_json_parse(text, n, "config.json", &err);
 *     if (!doc) { fprintf(stderr, "%s\n", err.msg); return 1; }
 *     // "config.json: JSON error at byte 17: expected ':' after object key"
 *     int64_t hidden;
 *     if (tg_json_as_int64(tg_json_get(doc, "hidden"), 1, 1 << 20, &hidden) != 0) ...
 *     tg_json_free(doc);
 *
 *     tg_jsonw w;
 *     tg_jsonw_init(&w);
 *     tg_jsonw_begin_object(&w);
 *     tg_jsonw_key(&w, "shape");
 *     tg_jsonw_begin_array(&w); tg_jsonw_int(&w, 400); tg_jsonw_int(&w, 784); tg_jsonw_end_array(&w);
 *     tg_jsonw_end_object(&w);
 *     const char *s = tg_jsonw_finish(&w);   // {"shape":[400,784]}, or NULL if out of memory
 *     tg_jsonw_free(&w);
 *
 * Reader. One complete JSON text (leading and trailing whitespace allowed,
 * nothing else), parsed into a tree. Strict: no trailing commas, no leading
 * zeros, no control characters or invalid UTF-8 in strings, no lone
 * surrogates in \u escapes, no duplicate keys in an object, no numbers beyond
 * the range of a double, nesting at most TG_JSON_MAX_DEPTH. Errors give the
 * byte offset (0-based) of the problem. The parser reads only text[0..n),
 * never recurses deeper than the nesting limit, and allocates in proportion
 * to n (every node and string comes from at least one input byte).
 *
 * Writer. Appends compact JSON (no spaces) to a growable buffer, inserting
 * commas itself. Strings are escaped (", \, and control characters); bytes
 * >= 0x80 are copied as they are (the caller passes UTF-8). Doubles are
 * printed with the fewest of 15..17 significant digits that read back to the
 * same value, int64 exactly. Non-finite doubles have no JSON form and mark
 * the writer failed. Misuse (a value where a key is needed, unbalanced ends)
 * aborts: it is a programmer error.
 *
 * Number formatting and parsing use strtod/snprintf, so they assume the "C"
 * locale's decimal point (the library never calls setlocale).
 */
#ifndef TG_JSON_H
#define TG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

#define TG_JSON_MAX_DEPTH 64

typedef enum {
    TG_JSON_NULL, TG_JSON_BOOL, TG_JSON_NUMBER, TG_JSON_STRING, TG_JSON_ARRAY, TG_JSON_OBJECT
} tg_json_type;

typedef struct tg_json tg_json;
struct tg_json {
    tg_json_type type;
    bool b;           /* BOOL */
    double num;       /* NUMBER: the value as a double (-0 stays -0) */
    bool is_int;      /* NUMBER: the literal had no fraction or exponent and fits int64 */
    int64_t i;        /* NUMBER: the exact value if is_int */
    char *str;        /* STRING: UTF-8, NUL-terminated (may also hold NULs from \u0000) */
    size_t len;       /* STRING: bytes in str, excluding the final NUL */
    size_t n;         /* ARRAY, OBJECT: number of elements / members */
    tg_json *items;   /* ARRAY, OBJECT: (n) elements / member values, in document order */
    char **keys;      /* OBJECT: (n) member names, NUL-terminated UTF-8 */
    size_t *key_lens; /* OBJECT: (n) bytes in each name */
};

/* Parses text[0..n) (need not be NUL-terminated). Returns the tree, or NULL
 * with "name: JSON error at byte K: problem" in e (without "name: " if name
 * is NULL); also NULL, with a message, when out of memory. */
tg_json *tg_json_parse(const char *text, size_t n, const char *name, tg_err *e);
/* Frees a tree from tg_json_parse; NULL is fine. */
void tg_json_free(tg_json *v);

const char *tg_json_type_name(tg_json_type t);   /* "null", "boolean", ... */

/* Member key of object obj (the first, as duplicates are rejected), or NULL
 * if obj is NULL, not an object, or has no such member. */
const tg_json *tg_json_get(const tg_json *obj, const char *key);
/* Elements of an array / members of an object; 0 for anything else or NULL. */
size_t tg_json_len(const tg_json *v);
/* i-th element of an array or i-th member value of an object; NULL if out of range. */
const tg_json *tg_json_at(const tg_json *v, size_t i);
/* i-th member name of an object; NULL if out of range or not an object. */
const char *tg_json_key(const tg_json *obj, size_t i);

/* The string's bytes (NUL-terminated), or NULL if v is not a string. */
const char *tg_json_as_string(const tg_json *v);
/* 0 and *out = the integer if v is an integer literal in [lo, hi], else -1
 * (*out untouched). */
int tg_json_as_int64(const tg_json *v, int64_t lo, int64_t hi, int64_t *out);
/* 0 and *out = the number if v is a number, else -1. */
int tg_json_as_double(const tg_json *v, double *out);
/* 0 and *out if v is true or false, else -1. */
int tg_json_as_bool(const tg_json *v, bool *out);

/* ------------------------------------------------------------------------ */
/* Writer */

typedef struct {
    char *buf;       /* len bytes of output, NUL-terminated once anything is written */
    size_t len, cap;
    bool failed;     /* out of memory, or a non-finite double was written */
    int depth;       /* open arrays and objects */
    bool in_object[TG_JSON_MAX_DEPTH + 1]; /* per level: object (needs keys) or array */
    bool has_items[TG_JSON_MAX_DEPTH + 1]; /* per level: a comma is due before the next item */
    bool after_key;  /* a key was written; its value comes next */
} tg_jsonw;

void tg_jsonw_init(tg_jsonw *w);
void tg_jsonw_free(tg_jsonw *w);
void tg_jsonw_begin_object(tg_jsonw *w);
void tg_jsonw_end_object(tg_jsonw *w);
void tg_jsonw_begin_array(tg_jsonw *w);
void tg_jsonw_end_array(tg_jsonw *w);
void tg_jsonw_key(tg_jsonw *w, const char *key);
void tg_jsonw_string(tg_jsonw *w, const char *s);
void tg_jsonw_string_n(tg_jsonw *w, const char *s, size_t n);
void tg_jsonw_int(tg_jsonw *w, int64_t v);
void tg_jsonw_double(tg_jsonw *w, double v);
void tg_jsonw_bool(tg_jsonw *w, bool v);
void tg_jsonw_null(tg_jsonw *w);
/* Appends raw bytes (e.g. padding after a complete value). */
void tg_jsonw_raw(tg_jsonw *w, const char *s, size_t n);
/* The text so far (NUL-terminated; "" if empty), or NULL if w failed.
 * Aborts if arrays or objects are still open. Owned by w. */
const char *tg_jsonw_finish(tg_jsonw *w);

#endif
