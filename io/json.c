/*
 * json.c — strict recursive-descent JSON reader (depth-limited) and a
 * compact writer (json.h).
 */
#include "io/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Reader */

typedef struct {
    const unsigned char *p;   /* text */
    size_t n, pos;
    const char *name;
    tg_err *e;
    bool failed;
} parser;

__attribute__((format(printf, 3, 4)))
static void fail_at(parser *s, size_t at, const char *fmt, ...) {
    if (s->failed) return;
    s->failed = true;
    if (!s->e) return;
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (s->name) tg_err_set(s->e, "%s: JSON error at byte %zu: %s", s->name, at, what);
    else tg_err_set(s->e, "JSON error at byte %zu: %s", at, what);
}

/* Describes the byte at pos for messages: "end of input", "'x'", "byte 0x07". */
static const char *here(parser *s, char buf[32]) {
    if (s->pos >= s->n) return "end of input";
    unsigned c = s->p[s->pos];
    if (c >= 0x20 && c < 0x7f) snprintf(buf, 32, "'%c'", (char)c);
    else snprintf(buf, 32, "byte 0x%02x", c);
    return buf;
}

static void skip_ws(parser *s) {
    while (s->pos < s->n) {
        unsigned char c = s->p[s->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        s->pos++;
    }
}

static void node_clear(tg_json *v) {
    if (v->type == TG_JSON_STRING) free(v->str);
    if (v->type == TG_JSON_ARRAY || v->type == TG_JSON_OBJECT) {
        for (size_t i = 0; i < v->n; i++) node_clear(&v->items[i]);
        free(v->items);
        if (v->keys)
            for (size_t i = 0; i < v->n; i++) free(v->keys[i]);
        free(v->keys), free(v->key_lens);
    }
    memset(v, 0, sizeof *v);
}

void tg_json_free(tg_json *v) {
    if (!v) return;
    node_clear(v);
    free(v);
}

static int hexval(unsigned c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* Four hex digits at pos (after "\u"); -1 with an error if not. */
static long hex4(parser *s) {
    long v = 0;
    for (int k = 0; k < 4; k++) {
        if (s->pos + (size_t)k >= s->n) {
            fail_at(s, s->pos + (size_t)k, "unterminated \\u escape");
            return -1;
        }
        int h = hexval(s->p[s->pos + (size_t)k]);
        if (h < 0) {
            fail_at(s, s->pos + (size_t)k, "\\u escape needs four hex digits");
            return -1;
        }
        v = v << 4 | h;
    }
    s->pos += 4;
    return v;
}

static size_t put_utf8(unsigned char *o, unsigned long cp) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xc0 | cp >> 6); o[1] = (unsigned char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the valid UTF-8 sequence at p[0..avail) (RFC 3629: no overlongs,
 * no surrogates, at most U+10FFFF), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t avail) {
    unsigned c = p[0];
    size_t len;
    unsigned long cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (avail < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* A string starting at the opening quote at pos. On success *out is a
 * malloc'd NUL-terminated copy of *out_len bytes. */
static int parse_string(parser *s, char **out, size_t *out_len) {
    size_t start = s->pos++;   /* the quote */
    /* Decoded text is never longer than the source: find the end first. */
    size_t end = s->pos;
    while (end < s->n && s->p[end] != '"') end += s->p[end] == '\\' ? 2 : 1;
    if (end >= s->n) {
        fail_at(s, start, "unterminated string");
        return -1;
    }
    unsigned char *o = malloc(end - s->pos + 1);
    if (!o) {
        fail_at(s, start, "out of memory for a string of %zu bytes", end - s->pos);
        return -1;
    }
    size_t k = 0;
    for (;;) {
        unsigned c = s->p[s->pos];
        if (c == '"') break;
        if (c < 0x20) {
            fail_at(s, s->pos, "control character 0x%02x in string (escape it)", c);
            goto fail;
        }
        if (c == '\\') {
            size_t esc = s->pos++;
            unsigned d = s->p[s->pos++];   /* in range: a backslash is never the last byte before end */
            switch (d) {
            case '"': o[k++] = '"'; break;
            case '\\': o[k++] = '\\'; break;
            case '/': o[k++] = '/'; break;
            case 'b': o[k++] = '\b'; break;
            case 'f': o[k++] = '\f'; break;
            case 'n': o[k++] = '\n'; break;
            case 'r': o[k++] = '\r'; break;
            case 't': o[k++] = '\t'; break;
            case 'u': {
                long hi = hex4(s);
                if (hi < 0) goto fail;
                unsigned long cp = (unsigned long)hi;
                if (hi >= 0xdc00 && hi <= 0xdfff) {
                    fail_at(s, esc, "lone low surrogate \\u%04lx", cp);
                    goto fail;
                }
                if (hi >= 0xd800 && hi <= 0xdbff) {
                    if (s->pos + 1 >= s->n || s->p[s->pos] != '\\' || s->p[s->pos + 1] != 'u') {
                        fail_at(s, esc, "high surrogate \\u%04lx not followed by a \\u low surrogate", cp);
                        goto fail;
                    }
                    s->pos += 2;
                    long lo = hex4(s);
                    if (lo < 0) goto fail;
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        fail_at(s, esc, "high surrogate \\u%04lx followed by \\u%04lx, not a low surrogate", cp,
                                (unsigned long)lo);
                        goto fail;
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned long)lo - 0xdc00);
                }
                k += put_utf8(o + k, cp);   /* at most as long as the escape: 6 or 12 bytes */
                break;
            }
            default:
                fail_at(s, esc, "invalid escape \\%c", d >= 0x20 && d < 0x7f ? (char)d : '?');
                goto fail;
            }
            continue;
        }
        size_t len = utf8_len(s->p + s->pos, end - s->pos);
        if (!len) {
            fail_at(s, s->pos, "invalid UTF-8 byte 0x%02x in string", c);
            goto fail;
        }
        memcpy(o + k, s->p + s->pos, len);
        k += len, s->pos += len;
    }
    s->pos++;   /* closing quote */
    o[k] = 0;
    *out = (char *)o;
    *out_len = k;
    return 0;
fail:
    free(o);
    return -1;
}

static int parse_number(parser *s, tg_json *v) {
    size_t start = s->pos, i = s->pos;
    const unsigned char *p = s->p;
    bool neg = false, integral = true;
    if (i < s->n && p[i] == '-') neg = true, i++;
    if (i >= s->n || p[i] < '0' || p[i] > '9') {
        fail_at(s, i, "expected a digit in number");
        return -1;
    }
    /* Integer part, accumulated exactly as a negative value (reaches INT64_MIN). */
    bool fits = true;
    int64_t acc = 0;
    if (p[i] == '0') {
        i++;
        if (i < s->n && p[i] >= '0' && p[i] <= '9') {
            fail_at(s, start, "leading zero in number");
            return -1;
        }
    } else {
        while (i < s->n && p[i] >= '0' && p[i] <= '9') {
            int d = p[i++] - '0';
            if (acc < (INT64_MIN + d) / 10) fits = false;
            else acc = acc * 10 - d;
        }
    }
    if (i < s->n && p[i] == '.') {
        integral = false, i++;
        if (i >= s->n || p[i] < '0' || p[i] > '9') {
            fail_at(s, i, "expected a digit after '.' in number");
            return -1;
        }
        while (i < s->n && p[i] >= '0' && p[i] <= '9') i++;
    }
    if (i < s->n && (p[i] == 'e' || p[i] == 'E')) {
        integral = false, i++;
        if (i < s->n && (p[i] == '+' || p[i] == '-')) i++;
        if (i >= s->n || p[i] < '0' || p[i] > '9') {
            fail_at(s, i, "expected a digit in exponent");
            return -1;
        }
        while (i < s->n && p[i] >= '0' && p[i] <= '9') i++;
    }
    size_t len = i - start;
    char small[64], *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) {
        fail_at(s, start, "out of memory for a number of %zu bytes", len);
        return -1;
    }
    memcpy(buf, p + start, len);
    buf[len] = 0;
    double d = strtod(buf, NULL);
    if (buf != small) free(buf);
    if (!isfinite(d)) {
        fail_at(s, start, "number out of range of a double");
        return -1;
    }
    v->type = TG_JSON_NUMBER;
    v->num = d;
    if (integral && fits && (neg || acc != INT64_MIN)) {
        v->is_int = true;
        v->i = neg ? acc : -acc;
    }
    s->pos = i;
    return 0;
}

static int parse_value(parser *s, tg_json *v, int depth);

static int key_cmp(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Grows the item arrays of a container to hold one more. */
static int grow(parser *s, tg_json *v, size_t *cap, bool object) {
    if (v->n < *cap) return 0;
    size_t nc = *cap ? 2 * *cap : 4;
    tg_json *items = realloc(v->items, nc * sizeof *items);
    if (items) v->items = items;
    if (object) {
        char **keys = realloc(v->keys, nc * sizeof *keys);
        if (keys) v->keys = keys;
        size_t *lens = realloc(v->key_lens, nc * sizeof *lens);
        if (lens) v->key_lens = lens;
        if (!keys || !lens) items = NULL;
    }
    if (!items) {
        fail_at(s, s->pos, "out of memory for %zu elements", nc);
        return -1;
    }
    *cap = nc;
    return 0;
}

/* Rejects duplicate member names of a parsed object (sorting a copy of the
 * key pointers, so large objects stay O(n log n)). Names with embedded NULs
 * compare by their prefix, which can only report a false duplicate for names
 * that differ after a NUL — harmless for a strict reader. */
static int check_dup_keys(parser *s, tg_json *v, size_t at) {
    if (v->n < 2) return 0;
    char **sorted = malloc(v->n * sizeof *sorted);
    if (!sorted) {
        fail_at(s, at, "out of memory checking %zu keys", v->n);
        return -1;
    }
    memcpy(sorted, v->keys, v->n * sizeof *sorted);
    qsort(sorted, v->n, sizeof *sorted, key_cmp);
    int rc = 0;
    for (size_t i = 1; i < v->n; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            fail_at(s, at, "duplicate key \"%.200s\" in object", sorted[i]);
            rc = -1;
            break;
        }
    free(sorted);
    return rc;
}

static int parse_container(parser *s, tg_json *v, int depth, bool object) {
    size_t open = s->pos;
    if (depth >= TG_JSON_MAX_DEPTH) {
        fail_at(s, open, "nesting deeper than %d", TG_JSON_MAX_DEPTH);
        return -1;
    }
    v->type = object ? TG_JSON_OBJECT : TG_JSON_ARRAY;
    char close = object ? '}' : ']', b[32];
    size_t cap = 0;
    s->pos++;
    skip_ws(s);
    if (s->pos < s->n && s->p[s->pos] == (unsigned char)close) {
        s->pos++;
        return 0;
    }
    for (;;) {
        if (grow(s, v, &cap, object)) return -1;
        if (object) {
            if (s->pos >= s->n || s->p[s->pos] != '"') {
                fail_at(s, s->pos, "expected a string key in object, found %s", here(s, b));
                return -1;
            }
            char *key;
            size_t klen;
            if (parse_string(s, &key, &klen)) return -1;
            v->keys[v->n] = key, v->key_lens[v->n] = klen;
            memset(&v->items[v->n], 0, sizeof v->items[0]);
            v->n++;   /* counted now so the key is freed on failure; value is null until parsed */
            skip_ws(s);
            if (s->pos >= s->n || s->p[s->pos] != ':') {
                fail_at(s, s->pos, "expected ':' after object key, found %s", here(s, b));
                return -1;
            }
            s->pos++;
            skip_ws(s);
            if (parse_value(s, &v->items[v->n - 1], depth + 1)) return -1;
        } else {
            memset(&v->items[v->n], 0, sizeof v->items[0]);
            v->n++;
            if (parse_value(s, &v->items[v->n - 1], depth + 1)) return -1;
        }
        skip_ws(s);
        if (s->pos < s->n && s->p[s->pos] == ',') {
            s->pos++;
            skip_ws(s);
            if (s->pos < s->n && s->p[s->pos] == (unsigned char)close) {
                fail_at(s, s->pos, "trailing comma before '%c'", close);
                return -1;
            }
            continue;
        }
        if (s->pos < s->n && s->p[s->pos] == (unsigned char)close) {
            s->pos++;
            return object ? check_dup_keys(s, v, open) : 0;
        }
        fail_at(s, s->pos, "expected ',' or '%c' in %s, found %s", close, object ? "object" : "array",
                here(s, b));
        return -1;
    }
}

static int literal(parser *s, const char *word) {
    size_t len = strlen(word);
    if (s->n - s->pos < len || memcmp(s->p + s->pos, word, len) != 0) {
        fail_at(s, s->pos, "invalid literal (expected %s)", word);
        return -1;
    }
    s->pos += len;
    return 0;
}

/* A value at pos (whitespace already skipped). v is zeroed by the caller. */
static int parse_value(parser *s, tg_json *v, int depth) {
    char b[32];
    if (s->pos >= s->n) {
        fail_at(s, s->pos, "expected a value, found end of input");
        return -1;
    }
    switch (s->p[s->pos]) {
    case '{': return parse_container(s, v, depth, true);
    case '[': return parse_container(s, v, depth, false);
    case '"':
        if (parse_string(s, &v->str, &v->len)) return -1;
        v->type = TG_JSON_STRING;
        return 0;
    case 't': if (literal(s, "true")) return -1; v->type = TG_JSON_BOOL, v->b = true; return 0;
    case 'f': if (literal(s, "false")) return -1; v->type = TG_JSON_BOOL, v->b = false; return 0;
    case 'n': if (literal(s, "null")) return -1; v->type = TG_JSON_NULL; return 0;
    default:
        if (s->p[s->pos] == '-' || (s->p[s->pos] >= '0' && s->p[s->pos] <= '9')) return parse_number(s, v);
        fail_at(s, s->pos, "expected a value, found %s", here(s, b));
        return -1;
    }
}

tg_json *tg_json_parse(const char *text, size_t n, const char *name, tg_err *e) {
    parser s = {.p = (const unsigned char *)text, .n = n, .name = name, .e = e};
    tg_json *v = calloc(1, sizeof *v);
    if (!v) {
        fail_at(&s, 0, "out of memory");
        return NULL;
    }
    char b[32];
    skip_ws(&s);
    if (parse_value(&s, v, 0) == 0) {
        skip_ws(&s);
        if (s.pos == s.n) return v;
        fail_at(&s, s.pos, "trailing characters after the JSON value, starting with %s", here(&s, b));
    }
    tg_json_free(v);
    return NULL;
}

const char *tg_json_type_name(tg_json_type t) {
    switch (t) {
    case TG_JSON_NULL: return "null";
    case TG_JSON_BOOL: return "boolean";
    case TG_JSON_NUMBER: return "number";
    case TG_JSON_STRING: return "string";
    case TG_JSON_ARRAY: return "array";
    case TG_JSON_OBJECT: return "object";
    }
    return "?";
}

const tg_json *tg_json_get(const tg_json *obj, const char *key) {
    if (!obj || obj->type != TG_JSON_OBJECT) return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < obj->n; i++)
        if (obj->key_lens[i] == klen && memcmp(obj->keys[i], key, klen) == 0) return &obj->items[i];
    return NULL;
}

size_t tg_json_len(const tg_json *v) {
    return v && (v->type == TG_JSON_ARRAY || v->type == TG_JSON_OBJECT) ? v->n : 0;
}

const tg_json *tg_json_at(const tg_json *v, size_t i) { return i < tg_json_len(v) ? &v->items[i] : NULL; }

const char *tg_json_key(const tg_json *obj, size_t i) {
    return obj && obj->type == TG_JSON_OBJECT && i < obj->n ? obj->keys[i] : NULL;
}

const char *tg_json_as_string(const tg_json *v) { return v && v->type == TG_JSON_STRING ? v->str : NULL; }

int tg_json_as_int64(const tg_json *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!v || v->type != TG_JSON_NUMBER || !v->is_int || v->i < lo || v->i > hi) return -1;
    *out = v->i;
    return 0;
}

int tg_json_as_double(const tg_json *v, double *out) {
    if (!v || v->type != TG_JSON_NUMBER) return -1;
    *out = v->num;
    return 0;
}

int tg_json_as_bool(const tg_json *v, bool *out) {
    if (!v || v->type != TG_JSON_BOOL) return -1;
    *out = v->b;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Writer */

void tg_jsonw_init(tg_jsonw *w) { memset(w, 0, sizeof *w); }

void tg_jsonw_free(tg_jsonw *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

void tg_jsonw_raw(tg_jsonw *w, const char *s, size_t n) {
    if (w->failed) return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1) {
            if (cap > SIZE_MAX / 2) { w->failed = true; return; }
            cap *= 2;
        }
        char *b = realloc(w->buf, cap);
        if (!b) { w->failed = true; return; }
        w->buf = b, w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void put(tg_jsonw *w, const char *s) { tg_jsonw_raw(w, s, strlen(s)); }

/* Before any value: the comma, and the check that an object member has its key. */
static void before_value(tg_jsonw *w) {
    if (w->depth > 0 && w->in_object[w->depth]) {
        TG_CHECK(w->after_key, "tg_jsonw: a value inside an object needs tg_jsonw_key first");
        w->after_key = false;
        return;
    }
    if (w->depth > 0 && w->has_items[w->depth]) put(w, ",");
    TG_CHECK(w->depth > 0 || w->len == 0, "tg_jsonw: a second top-level value");
    if (w->depth > 0) w->has_items[w->depth] = true;
}

static void begin(tg_jsonw *w, bool object) {
    before_value(w);
    TG_CHECK(w->depth < TG_JSON_MAX_DEPTH, "tg_jsonw: nesting deeper than %d", TG_JSON_MAX_DEPTH);
    w->depth++;
    w->in_object[w->depth] = object;
    w->has_items[w->depth] = false;
    put(w, object ? "{" : "[");
}

static void end(tg_jsonw *w, bool object) {
    TG_CHECK(w->depth > 0 && w->in_object[w->depth] == object && !w->after_key,
             "tg_jsonw: tg_jsonw_end_%s does not match what is open", object ? "object" : "array");
    w->depth--;
    put(w, object ? "}" : "]");
}

void tg_jsonw_begin_object(tg_jsonw *w) { begin(w, true); }
void tg_jsonw_end_object(tg_jsonw *w) { end(w, true); }
void tg_jsonw_begin_array(tg_jsonw *w) { begin(w, false); }
void tg_jsonw_end_array(tg_jsonw *w) { end(w, false); }

static void put_string(tg_jsonw *w, const char *s, size_t n) {
    put(w, "\"");
    size_t run = 0;   /* bytes copied as they are since the last escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) snprintf(u, sizeof u, "\\u%04x", c), esc = u;
        }
        if (!esc) continue;
        tg_jsonw_raw(w, s + run, i - run);
        put(w, esc);
        run = i + 1;
    }
    tg_jsonw_raw(w, s + run, n - run);
    put(w, "\"");
}

void tg_jsonw_key(tg_jsonw *w, const char *key) {
    TG_CHECK(w->depth > 0 && w->in_object[w->depth] && !w->after_key,
             "tg_jsonw_key: \"%s\" is not where an object key can go", key);
    if (w->has_items[w->depth]) put(w, ",");
    w->has_items[w->depth] = true;
    put_string(w, key, strlen(key));
    put(w, ":");
    w->after_key = true;
}

void tg_jsonw_string_n(tg_jsonw *w, const char *s, size_t n) {
    before_value(w);
    put_string(w, s, n);
}

void tg_jsonw_string(tg_jsonw *w, const char *s) { tg_jsonw_string_n(w, s, strlen(s)); }

void tg_jsonw_int(tg_jsonw *w, int64_t v) {
    char b[32];
    before_value(w);
    snprintf(b, sizeof b, "%lld", (long long)v);
    put(w, b);
}

void tg_jsonw_double(tg_jsonw *w, double v) {
    before_value(w);
    if (!isfinite(v)) {
        w->failed = true;
        return;
    }
    char b[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v) break;
    }
    put(w, b);
}

void tg_jsonw_bool(tg_jsonw *w, bool v) {
    before_value(w);
    put(w, v ? "true" : "false");
}

void tg_jsonw_null(tg_jsonw *w) {
    before_value(w);
    put(w, "null");
}

const char *tg_jsonw_finish(tg_jsonw *w) {
    TG_CHECK(w->depth == 0 && !w->after_key, "tg_jsonw_finish: %d arrays/objects still open", w->depth);
    if (w->failed) return NULL;
    if (!w->buf) tg_jsonw_raw(w, "", 0);
    return w->failed ? NULL : w->buf;
}
