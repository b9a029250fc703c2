/*
 * safetensors.c — safetensors writing (atomic) and reading (validated)
 * (safetensors.h).
 */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "io/json.h"

/* ------------------------------------------------------------------------ */
/* Byte order */

static bool host_is_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reverses each es-byte element of p[0..count*es) (little-endian <-> big-endian). */
static void swap_elems(unsigned char *p, size_t count, size_t es) {
    for (size_t i = 0; i < count; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b], p[b] = t;
        }
}

static const char *st_dtype_name(tg_dtype dt) { return dt == TG_F32 ? "F32" : dt == TG_F64 ? "F64" : "I64"; }

char *tg_safetensors_shape_str(tg_shape s, char *buf) {
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < s.ndim; i++)
        k += (size_t)snprintf(buf + k, 24, "%s%lld", i ? ", " : "", (long long)s.d[i]);
    buf[k++] = ']';
    buf[k] = 0;
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Writing */



/* The header JSON for the given tensors and metadata, padded with spaces to
 * a multiple of 8 bytes; NULL if out of memory. Owned by w. */
static const char *build_header(tg_jsonw *w, int n, const char *const names[], const tg_tensor *const tensors[],
                                int n_meta, const char *const meta_keys[], const char *const meta_vals[]) {
    tg_jsonw_begin_object(w);
    if (n_meta > 0) {
        tg_jsonw_key(w, "__metadata__");
        tg_jsonw_begin_object(w);
        for (int j = 0; j < n_meta; j++) {
            tg_jsonw_key(w, meta_keys[j]);
            tg_jsonw_string(w, meta_vals[j]);
        }
        tg_jsonw_end_object(w);
    }
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        const tg_tensor *t = tensors[i];
        int64_t bytes = t->numel * (int64_t)tg_dtype_size(t->dtype);
        tg_jsonw_key(w, names[i]);
        tg_jsonw_begin_object(w);
        tg_jsonw_key(w, "dtype");
        tg_jsonw_string(w, st_dtype_name(t->dtype));
        tg_jsonw_key(w, "shape");
        tg_jsonw_begin_array(w);
        for (int k = 0; k < t->shape.ndim; k++) tg_jsonw_int(w, t->shape.d[k]);
        tg_jsonw_end_array(w);
        tg_jsonw_key(w, "data_offsets");
        tg_jsonw_begin_array(w);
        tg_jsonw_int(w, off);
        tg_jsonw_int(w, off + bytes);
        tg_jsonw_end_array(w);
        tg_jsonw_end_object(w);
        off += bytes;
    }
    tg_jsonw_end_object(w);
    static const char spaces[8] = "        ";
    if (w->len % 8) tg_jsonw_raw(w, spaces, 8 - w->len % 8);
    return tg_jsonw_finish(w);
}


int tg_safetensors_write(const char *path, int n, const char *const names[], const tg_tensor *const tensors[],
                         int n_meta, const char *const meta_keys[], const char *const meta_vals[], tg_err *e) {
    TG_CHECK(n >= 0 && n_meta >= 0, "tg_safetensors_write: negative counts n %d, n_meta %d", n, n_meta);
    for (int i = 0; i < n; i++) {
        TG_CHECK(names[i] && tensors[i], "tg_safetensors_write: names[%d] or tensors[%d] is NULL", i, i);
        const tg_tensor *t = tensors[i];
        TG_CHECK(t->dtype == TG_F32 || t->dtype == TG_F64 || t->dtype == TG_I64, "tg_safetensors_write: %s: bad dtype",
                 names[i]);
        TG_CHECK(t->numel == tg_shape_numel(t->shape) && (t->data || t->numel == 0),
                 "tg_safetensors_write: %s: numel or data does not match the shape", names[i]);
        if (!names[i][0] || strcmp(names[i], "__metadata__") == 0) {
            tg_err_set(e, "%s: invalid tensor name \"%s\"", path, names[i]);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0) {
                tg_err_set(e, "%s: two tensors are called \"%s\"", path, names[i]);
                return -1;
            }
    }
    for (int j = 0; j < n_meta; j++) {
        TG_CHECK(meta_keys[j] && meta_vals[j], "tg_safetensors_write: metadata %d is NULL", j);
        for (int k = 0; k < j; k++)
            if (strcmp(meta_keys[j], meta_keys[k]) == 0) {
                tg_err_set(e, "%s: two metadata entries are called \"%s\"", path, meta_keys[j]);
                return -1;
            }
    }

    tg_jsonw w;
    tg_jsonw_init(&w);
    const char *header = build_header(&w, n, names, tensors, n_meta, meta_keys, meta_vals);
    if (!header) {
        tg_err_set(e, "%s: out of memory building the header", path);
        tg_jsonw_free(&w);
        return -1;
    }
    /* Names and metadata are copied into the header as given; read it back so
     * that what we write is what we (and other readers) accept, e.g. UTF-8. */
    tg_err je;
    tg_json *check = tg_json_parse(header, w.len, "header", &je);
    if (!check) {
        tg_err_set(e, "%s: tensor names and metadata must be valid UTF-8 (%s)", path, je.msg);
        tg_jsonw_free(&w);
        return -1;
    }
    tg_json_free(check);

    /* The file is the 8-byte header length, the header, then every tensor's
     * bytes in order (little-endian: swapped copies on a big-endian host). */
    unsigned char len8[8];
    uint64_t hn = (uint64_t)w.len;
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)(hn >> (8 * k));
    const void **bufs = calloc((size_t)n + 2, sizeof *bufs);
    size_t *lens = calloc((size_t)n + 2, sizeof *lens);
    void **swapped = host_is_le() ? NULL : calloc((size_t)n + 1, sizeof *swapped);
    int rc = -1;
    if (!bufs || !lens || (!host_is_le() && !swapped)) {
        tg_err_set(e, "%s: out of memory", path);
        goto done;
    }
    bufs[0] = len8, lens[0] = 8;
    bufs[1] = header, lens[1] = w.len;
    for (int i = 0; i < n; i++) {
        size_t es = tg_dtype_size(tensors[i]->dtype), bytes = (size_t)tensors[i]->numel * es;
        bufs[i + 2] = tensors[i]->data, lens[i + 2] = bytes;
        if (swapped && bytes) {
            if (!(swapped[i] = malloc(bytes))) {
                tg_err_set(e, "%s: out of memory", path);
                goto done;
            }
            memcpy(swapped[i], tensors[i]->data, bytes);
            swap_elems(swapped[i], bytes / es, es);
            bufs[i + 2] = swapped[i];
        }
    }
    rc = tg_file_write_parts(path, n + 2, bufs, lens, e);
done:
    if (swapped)
        for (int i = 0; i < n; i++) free(swapped[i]);
    free(swapped), free(bufs), free(lens);
    tg_jsonw_free(&w);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading */

void tg_safetensors_free(tg_safetensors *st) {
    if (!st) return;
    if (st->tensors)
        for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    if (st->meta_keys)
        for (int j = 0; j < st->n_meta; j++) free(st->meta_keys[j]);
    if (st->meta_vals)
        for (int j = 0; j < st->n_meta; j++) free(st->meta_vals[j]);
    free(st->tensors), free(st->meta_keys), free(st->meta_vals), free(st->data);
    memset(st, 0, sizeof *st);
}

const tg_st_tensor *tg_safetensors_find(const tg_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *tg_safetensors_meta(const tg_safetensors *st, const char *key) {
    for (int j = 0; j < st->n_meta; j++)
        if (strcmp(st->meta_keys[j], key) == 0) return st->meta_vals[j];
    return NULL;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

/* Per tensor, while validating: where its bytes are. */
typedef struct {
    int64_t begin, end;
    int idx;   /* index into st->tensors */
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static const char *const unsupported_dtypes[] = {
    "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64", "BOOL",
    "I8", "I16", "I32", "U8", "U16", "U32", "U64"};

/* Parses one tensor entry `v` called name into *t and its span. */
static int parse_entry(const char *path, const char *name, const tg_json *v, int64_t data_len, tg_tensor *t,
                       span *sp, tg_err *e) {
    if (v->type != TG_JSON_OBJECT) {
        tg_err_set(e, "%s: tensor %s: entry must be an object (found %s)", path, name, tg_json_type_name(v->type));
        return -1;
    }
    const char *dt = tg_json_as_string(tg_json_get(v, "dtype"));
    if (!dt) {
        tg_err_set(e, "%s: tensor %s: missing or non-string \"dtype\"", path, name);
        return -1;
    }
    if (strcmp(dt, "F32") == 0) t->dtype = TG_F32;
    else if (strcmp(dt, "F64") == 0) t->dtype = TG_F64;
    else if (strcmp(dt, "I64") == 0) t->dtype = TG_I64;   /* integer buffers: a step count */
    else {
        bool known = false;
        for (size_t k = 0; k < sizeof unsupported_dtypes / sizeof *unsupported_dtypes; k++)
            known |= strcmp(dt, unsupported_dtypes[k]) == 0;
        tg_err_set(e, "%s: tensor %s has %s dtype \"%.40s\" (only F32 and F64 are supported, and I64 for integers)", path, name,
                   known ? "unsupported" : "unknown", dt);
        return -1;
    }
    const tg_json *shape = tg_json_get(v, "shape");
    if (!shape || shape->type != TG_JSON_ARRAY) {
        tg_err_set(e, "%s: tensor %s: missing or non-array \"shape\"", path, name);
        return -1;
    }
    if (shape->n > TG_MAX_DIMS) {
        tg_err_set(e, "%s: tensor %s has %zu dimensions, at most %d are supported", path, name, shape->n,
                   TG_MAX_DIMS);
        return -1;
    }
    t->shape.ndim = (int)shape->n;
    uint64_t numel = 1;
    bool overflow = false, has_zero = false;
    for (size_t k = 0; k < shape->n; k++) {
        int64_t d;
        if (tg_json_as_int64(tg_json_at(shape, k), 0, INT64_MAX, &d)) {
            tg_err_set(e, "%s: tensor %s: shape entry %zu is not a non-negative integer", path, name, k);
            return -1;
        }
        t->shape.d[k] = d;
        if (d == 0) has_zero = true;
        else if (numel > (uint64_t)INT64_MAX / (uint64_t)d) overflow = true;
        else numel *= (uint64_t)d;
    }
    const tg_json *offs = tg_json_get(v, "data_offsets");
    int64_t b, en;
    if (tg_json_len(offs) != 2 || offs->type != TG_JSON_ARRAY ||
        tg_json_as_int64(tg_json_at(offs, 0), 0, INT64_MAX, &b) ||
        tg_json_as_int64(tg_json_at(offs, 1), 0, INT64_MAX, &en)) {
        tg_err_set(e, "%s: tensor %s: \"data_offsets\" must be [begin, end], two non-negative integers", path,
                   name);
        return -1;
    }
    if (b > en || en > data_len) {
        tg_err_set(e, "%s: tensor %s: data_offsets [%lld, %lld] lie outside the data section of %lld bytes", path,
                   name, (long long)b, (long long)en, (long long)data_len);
        return -1;
    }
    size_t es = tg_dtype_size(t->dtype);
    /* Shapes whose nonzero sizes multiply past INT64_MAX are refused even when
     * another size is 0, so tg_shape_numel can never overflow on them. */
    if (has_zero && !overflow) numel = 0;
    char sb[160];
    if (overflow || numel > (uint64_t)(en - b) / es || numel * es != (uint64_t)(en - b)) {
        tg_err_set(e, "%s: tensor %s: shape %s of %s needs %s%llu bytes but data_offsets [%lld, %lld] span %lld",
                   path, name, tg_safetensors_shape_str(t->shape, sb), dt, overflow ? "over " : "",
                   overflow ? (unsigned long long)INT64_MAX : (unsigned long long)(numel * es), (long long)b,
                   (long long)en, (long long)(en - b));
        return -1;
    }
    t->numel = (int64_t)numel;
    sp->begin = b, sp->end = en;
    return 0;
}

/* Validates the parsed header `h` against a data section of data_len bytes
 * and fills st (names, shapes, metadata; not yet data). spans[i] for tensor i. */
static int parse_header(const char *path, const tg_json *h, int64_t data_len, tg_safetensors *st, span **spans_out,
                        tg_err *e) {
    if (h->type != TG_JSON_OBJECT) {
        tg_err_set(e, "%s: header must be a JSON object (found %s)", path, tg_json_type_name(h->type));
        return -1;
    }
    size_t count = h->n;   /* entries, at most one of them metadata; bounded by the header size */
    st->tensors = calloc(count ? count : 1, sizeof *st->tensors);
    span *spans = calloc(count ? count : 1, sizeof *spans);
    *spans_out = spans;
    if (!st->tensors || !spans) {
        tg_err_set(e, "%s: out of memory for %zu header entries", path, count);
        return -1;
    }
    for (size_t i = 0; i < h->n; i++) {
        const char *key = h->keys[i];
        const tg_json *v = &h->items[i];
        if (strlen(key) != h->key_lens[i]) {
            tg_err_set(e, "%s: a header key contains a NUL byte", path);
            return -1;
        }
        if (strcmp(key, "__metadata__") == 0) {
            if (v->type != TG_JSON_OBJECT) {
                tg_err_set(e, "%s: __metadata__ must be an object of strings (found %s)", path,
                           tg_json_type_name(v->type));
                return -1;
            }
            st->meta_keys = calloc(v->n ? v->n : 1, sizeof *st->meta_keys);
            st->meta_vals = calloc(v->n ? v->n : 1, sizeof *st->meta_vals);
            if (!st->meta_keys || !st->meta_vals) {
                tg_err_set(e, "%s: out of memory for metadata", path);
                return -1;
            }
            for (size_t j = 0; j < v->n; j++) {
                const tg_json *mv = &v->items[j];
                if (mv->type != TG_JSON_STRING) {
                    tg_err_set(e, "%s: __metadata__ value of \"%.100s\" must be a string (found %s)", path, v->keys[j],
                               tg_json_type_name(mv->type));
                    return -1;
                }
                /* Keys and values are handed out as C strings: one with a NUL
                 * (from \u0000) would come back cut short, so refuse it. */
                bool nul_key = strlen(v->keys[j]) != v->key_lens[j];
                if (nul_key || strlen(mv->str) != mv->len) {
                    tg_err_set(e, "%s: __metadata__ %s \"%.100s\" contains a NUL byte", path,
                               nul_key ? "key" : "value of", v->keys[j]);
                    return -1;
                }
                st->meta_keys[j] = dup_str(v->keys[j]);
                st->meta_vals[j] = dup_str(mv->str);
                st->n_meta = (int)j + 1;
                if (!st->meta_keys[j] || !st->meta_vals[j]) {
                    tg_err_set(e, "%s: out of memory for metadata", path);
                    return -1;
                }
            }
            continue;
        }
        if (count > INT32_MAX) {
            tg_err_set(e, "%s: too many tensors", path);
            return -1;
        }
        tg_st_tensor *t = &st->tensors[st->n];
        if (parse_entry(path, key, v, data_len, &t->tensor, &spans[st->n], e)) return -1;
        spans[st->n].idx = st->n;
        t->name = dup_str(key);
        if (!t->name) {
            tg_err_set(e, "%s: out of memory", path);
            return -1;
        }
        st->n++;
    }
    /* The tensors, in offset order, must tile [0, data_len) exactly. */
    qsort(spans, (size_t)st->n, sizeof *spans, span_cmp);
    int64_t at = 0;
    for (int i = 0; i < st->n; i++) {
        if (spans[i].begin < at) {
            tg_err_set(e, "%s: tensor %s: data_offsets [%lld, %lld] overlap tensor %s", path,
                       st->tensors[spans[i].idx].name, (long long)spans[i].begin, (long long)spans[i].end,
                       st->tensors[spans[i - 1].idx].name);
            return -1;
        }
        if (spans[i].begin > at) {
            tg_err_set(e, "%s: bytes [%lld, %lld) of the data section belong to no tensor (before %s)", path,
                       (long long)at, (long long)spans[i].begin, st->tensors[spans[i].idx].name);
            return -1;
        }
        at = spans[i].end;
    }
    if (at != data_len) {
        tg_err_set(e, "%s: %lld bytes after the last tensor's data belong to no tensor", path,
                   (long long)(data_len - at));
        return -1;
    }
    return 0;
}

/* Where a safetensors file's bytes come from: an open file or a buffer. */
typedef struct {
    FILE *f;                    /* or NULL: */
    const unsigned char *mem;   /* (size) */
    size_t pos, size;
} source;

/* Reads the next n bytes into dst; false on a read error or short read. */
static bool src_read(source *src, void *dst, size_t n) {
    if (src->f) return fread(dst, 1, n, src->f) == n;
    if (n > src->size - src->pos) return false;
    if (n) memcpy(dst, src->mem + src->pos, n);
    src->pos += n;
    return true;
}

/* Reads and validates a safetensors file of `size` bytes from src into *st
 * (zeroed by the caller); messages start with path. */
static int st_read(source *src, int64_t size, const char *path, tg_safetensors *st, tg_err *e) {
    char *header = NULL, *hname = NULL;
    tg_json *h = NULL;
    span *spans = NULL;
    unsigned char len8[8];
    if (size < 8 || !src_read(src, len8, 8)) {
        tg_err_set(e, "%s: truncated: %lld bytes, too short for the 8-byte safetensors header length", path,
                   (long long)size);
        goto fail;
    }
    uint64_t hn = 0;
    for (int k = 0; k < 8; k++) hn |= (uint64_t)len8[k] << (8 * k);
    if (hn > (uint64_t)(size - 8)) {
        tg_err_set(e, "%s: header length %llu is beyond the file size (%lld bytes; not a safetensors file, or "
                   "truncated)", path, (unsigned long long)hn, (long long)size);
        goto fail;
    }
    if ((uint64_t)(size_t)hn != hn || !(header = malloc(hn ? (size_t)hn : 1))) {
        tg_err_set(e, "%s: out of memory for a header of %llu bytes", path, (unsigned long long)hn);
        goto fail;
    }
    if (!src_read(src, header, (size_t)hn)) {
        tg_err_set(e, "%s: read error or file shrank while reading the header", path);
        goto fail;
    }
    size_t hname_len = strlen(path) + 16;
    if (!(hname = malloc(hname_len))) {
        tg_err_set(e, "%s: out of memory", path);
        goto fail;
    }
    snprintf(hname, hname_len, "%s: header", path);
    if (!(h = tg_json_parse(header, (size_t)hn, hname, e))) goto fail;
    int64_t data_len = size - 8 - (int64_t)hn;
    if (parse_header(path, h, data_len, st, &spans, e)) goto fail;

    /* Storage: each tensor at an 8-byte aligned place; at most data_len + 8 n bytes. */
    size_t total = 0;
    for (int i = 0; i < st->n; i++) {
        size_t bytes = (size_t)(spans[i].end - spans[i].begin);
        total += (bytes + 7) & ~(size_t)7;
    }
    if (!(st->data = malloc(total ? total : 1))) {
        tg_err_set(e, "%s: out of memory for %zu bytes of tensor data", path, total);
        goto fail;
    }
    size_t off = 0;
    for (int i = 0; i < st->n; i++) {   /* in offset order: the file is read front to back */
        tg_tensor *t = &st->tensors[spans[i].idx].tensor;
        size_t bytes = (size_t)(spans[i].end - spans[i].begin);
        unsigned char *dst = (unsigned char *)st->data + off;
        if (!src_read(src, dst, bytes)) {
            tg_err_set(e, "%s: read error or file shrank while reading tensor %s", path, st->tensors[spans[i].idx].name);
            goto fail;
        }
        if (!host_is_le()) swap_elems(dst, bytes / tg_dtype_size(t->dtype), tg_dtype_size(t->dtype));
        *t = tg_tensor_wrap(t->dtype, t->shape, dst);
        off += (bytes + 7) & ~(size_t)7;
    }
    free(header), free(hname), free(spans);
    tg_json_free(h);
    return 0;

fail:
    free(header), free(hname), free(spans);
    tg_json_free(h);
    tg_safetensors_free(st);
    return -1;
}

int tg_safetensors_read(const char *path, tg_safetensors *st, tg_err *e) {
    memset(st, 0, sizeof *st);
    FILE *f = fopen(path, "rb");
    if (!f) {
        tg_err_set(e, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    int rc = -1;
    if (fstat(fileno(f), &sb) != 0) {
        tg_err_set(e, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        tg_err_set(e, "%s: not a regular file", path);
    } else {
        source src = {.f = f};
        rc = st_read(&src, (int64_t)sb.st_size, path, st, e);
    }
    fclose(f);
    return rc;
}

int tg_safetensors_parse(const void *buf, size_t n, const char *name, tg_safetensors *st, tg_err *e) {
    memset(st, 0, sizeof *st);
    if (n > (size_t)INT64_MAX) {
        tg_err_set(e, "%s: %zu bytes is too large", name, n);
        return -1;
    }
    source src = {.mem = buf, .size = n};
    return st_read(&src, (int64_t)n, name, st, e);
}
