/* One-pass scanner of YFCC100M metadata text: the compiled path of passkit.sources.yfcc (see
 * docs/select-scanner.md).
 *
 * scan(piece, n_fields, fields, terminated, known_pairs, all_rows, full_fields) walks a piece of whole lines once
 * (SSE2 where available): it splits lines and fields, flags NUL / CR / non-ASCII bytes, validates UTF-8 where
 * needed, runs the per-record checks of the reader (photo id, marker, coordinates, upload date, photo hash, text
 * fields after %-decoding), collects the light columns every record gets (key, photo id, license pair, creator
 * id, video flag, malformed code) and copies the raw fields of the records read in full (no problem, not a
 * video, a license pair the caller's known_pairs admit; or all if all_rows) into Arrow-layout buffers (int32
 * offsets + data). Records whose checks fall outside the cases decided here (an odd coordinate or creator id)
 * are left to the reference Python path ("slow" lines). When a piece holds a license pair not seen before, the
 * caller decides on it and Scan.gather() copies the full records in a second step.
 * The work runs without the GIL; the buffers are exposed zero-copy through the buffer protocol.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---------------------------------------------------------------- growable memory */

typedef struct {
    char *data;
    size_t len, cap;
    int role; /* which pool its memory returns to (-1: none) */
} Grow;

/* Memory handed back by finished scans, kept per role (the same buffer of the next piece has about the same
 * size): a fresh multi-megabyte allocation per piece costs page faults that took a third of the scan. Only
 * touched with the GIL held. */
#define POOL_ROLES 64
#define POOL_DEPTH 3

typedef struct {
    char *data;
    size_t cap;
} Block;

static Block pool[POOL_ROLES][POOL_DEPTH];
static int pool_count[POOL_ROLES];

static void pool_take(Grow *g, int role) {
    g->role = role < POOL_ROLES ? role : -1;
    g->len = 0;
    if (g->role >= 0 && pool_count[role] > 0) {
        Block block = pool[role][--pool_count[role]];
        g->data = block.data;
        g->cap = block.cap;
    }
}

static void pool_give(int role, char *data, size_t cap) {
    if (!data) return;
    if (role >= 0 && role < POOL_ROLES && pool_count[role] < POOL_DEPTH) {
        pool[role][pool_count[role]++] = (Block){data, cap};
    } else {
        free(data);
    }
}

static void grow_release(Grow *g) {
    pool_give(g->role, g->data, g->cap);
    g->data = NULL;
    g->len = g->cap = 0;
}

static int grow_reserve(Grow *g, size_t extra) {
    if (g->len + extra <= g->cap) return 0;
    size_t cap = g->cap ? g->cap : 4096;
    while (cap < g->len + extra) cap *= 2;
    char *data = realloc(g->data, cap);
    if (!data) return -1;
    g->data = data;
    g->cap = cap;
    return 0;
}

static inline int grow_put(Grow *g, const void *src, size_t n) {
    if (grow_reserve(g, n)) return -1;
    if (n) memcpy(g->data + g->len, src, n);
    g->len += n;
    return 0;
}

#define GROW_PUSH(g, type, value) \
    (grow_reserve((g), sizeof(type)) ? -1 : (*(type *)((g)->data + (g)->len) = (value), (g)->len += sizeof(type), 0))

/* ---------------------------------------------------------------- owned buffer (buffer protocol) */

typedef struct {
    PyObject_HEAD char *data;
    Py_ssize_t size;
    size_t cap;
    int role;
} OwnedBuffer;

static char empty_bytes[8];

static void owned_dealloc(OwnedBuffer *self) {
    pool_give(self->role, self->data, self->cap);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int owned_getbuffer(OwnedBuffer *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data ? self->data : empty_bytes, self->size, 1, flags);
}

static PyBufferProcs owned_as_buffer = {(getbufferproc)owned_getbuffer, NULL};

static PyTypeObject OwnedBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "passkit.sources._yfcc_scan.OwnedBuffer",
    .tp_basicsize = sizeof(OwnedBuffer),
    .tp_dealloc = (destructor)owned_dealloc,
    .tp_as_buffer = &owned_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Bytes produced by the scanner (read-only buffer).",
};

/* Hands the memory of g over to a new OwnedBuffer (g is emptied). */
static PyObject *owned_from(Grow *g) {
    OwnedBuffer *self = PyObject_New(OwnedBuffer, &OwnedBufferType);
    if (!self) return NULL;
    self->data = g->data;
    self->size = (Py_ssize_t)g->len;
    self->cap = g->cap;
    self->role = g->role;
    g->data = NULL;
    g->len = g->cap = 0;
    return (PyObject *)self;
}

/* ---------------------------------------------------------------- byte classes */

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int8_t hex_value[256];
static uint8_t is_lower_hex[256];

static void init_tables(void) {
    for (int i = 0; i < 256; i++) {
        hex_value[i] = -1;
        is_lower_hex[i] = (i >= '0' && i <= '9') || (i >= 'a' && i <= 'f');
    }
    for (int i = 0; i < 10; i++) hex_value['0' + i] = (int8_t)i;
    for (int i = 0; i < 6; i++) {
        hex_value['a' + i] = (int8_t)(10 + i);
        hex_value['A' + i] = (int8_t)(10 + i);
    }
}

/* UTF-8 check with the verdicts of CPython's decoder: 0 valid, else 1 "invalid start byte", 2 "invalid
 * continuation byte", 3 "unexpected end of data"; *where = offset of the sequence's first byte. */
enum { UTF8_OK = 0, UTF8_START = 1, UTF8_CONTINUATION = 2, UTF8_END = 3 };

static int utf8_check(const uint8_t *s, size_t n, size_t *where) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t low = 0x80, high = 0xBF; /* range of the second byte */
        if (c < 0xC2) {
            *where = i;
            return UTF8_START;
        } else if (c < 0xE0) {
            need = 2;
        } else if (c < 0xF0) {
            need = 3;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F;
        } else if (c < 0xF5) {
            need = 4;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        } else {
            *where = i;
            return UTF8_START;
        }
        for (size_t k = 1; k < need; k++) {
            if (i + k >= n) {
                *where = i;
                return UTF8_END;
            }
            uint8_t b = s[i + k];
            if (k == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xBF)) {
                *where = i;
                return UTF8_CONTINUATION;
            }
        }
        i += need;
    }
    return UTF8_OK;
}

static const char *utf8_reason[] = {"", "invalid start byte", "invalid continuation byte", "unexpected end of data"};

/* unquote_plus into out (room for n bytes); returns the decoded length. Malformed escapes stay as they are. */
static size_t percent_decode(const uint8_t *s, size_t n, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '+') {
            out[o++] = ' ';
        } else if (c == '%' && i + 2 < n && hex_value[s[i + 1]] >= 0 && hex_value[s[i + 2]] >= 0) {
            out[o++] = (uint8_t)(hex_value[s[i + 1]] * 16 + hex_value[s[i + 2]]);
            i += 2;
        } else {
            out[o++] = c;
        }
    }
    return o;
}

/* Whether the %-decoded value is not UTF-8 (the value itself is). Only an escape can make it so. */
static int decodes_to_bad_utf8(const uint8_t *s, size_t n, Grow *scratch) {
    if (!memchr(s, '%', n)) return 0;
    if (grow_reserve(scratch, n)) return -1;
    size_t where, len = percent_decode(s, n, (uint8_t *)scratch->data);
    return utf8_check((const uint8_t *)scratch->data, len, &where) != UTF8_OK;
}

/* ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ */
static int number_like(const uint8_t *s, size_t n) {
    size_t i = 0, digits = 0, fraction = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    while (i < n && is_digit(s[i])) i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i])) i++, fraction++;
    }
    if (!digits && !fraction) return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t exponent = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        while (i < n && is_digit(s[i])) i++, exponent++;
        if (!exponent) return 0;
    }
    return i == n;
}

/* 1: unparsable, 0: fine (empty or a number), -1: needs the reference check (surrounding whitespace or
 * non-ASCII at an end: Unicode trimming decides). */
static int coordinate_unparsable(const uint8_t *s, size_t n) {
    if (!n) return 0;
    if (s[0] < 0x21 || s[0] > 0x7E || s[n - 1] < 0x21 || s[n - 1] > 0x7E) return -1;
    return !number_like(s, n);
}

static inline int decimal(const uint8_t *s, size_t n, size_t longest) {
    if (!n || n > longest) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i])) return 0;
    return 1;
}

static inline int lower_hex(const uint8_t *s, size_t n) {
    if (n < 16 || n > 32) return 0;
    unsigned ok = 1;
    for (size_t i = 0; i < n; i++) ok &= is_lower_hex[s[i]]; /* no branch per byte: hex digits mix at random */
    return (int)ok;
}

/* Whether the reference clean_text leaves a (valid UTF-8) value as it is: printable ASCII and single inner
 * spaces only. Anything else goes to the reference path. */
static int plainly_clean(const uint8_t *s, size_t n) {
    if (!n) return 1;
    if (s[0] == ' ' || s[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7E) return 0;
        if (s[i] == ' ' && s[i + 1] == ' ') return 0; /* s[n-1] is not a space: i + 1 < n here */
    }
    return 1;
}


/* ---------------------------------------------------------------- YFCC100M's photo hash */

/* MD5 (RFC 1321) of short values, written from the specification; the sine table is computed at import. */
static uint32_t md5_k[64];
static const uint8_t md5_shift[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                      5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                      4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                      6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_init_table(void) {
    for (int i = 0; i < 64; i++) md5_k[i] = (uint32_t)(fabs(sin((double)(i + 1))) * 4294967296.0);
}

static inline uint32_t rotate_left(uint32_t x, unsigned c) { return (x << c) | (x >> (32 - c)); }

static void md5_block(uint32_t state[4], const uint8_t block[64]) {
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)block[4 * i] | (uint32_t)block[4 * i + 1] << 8 | (uint32_t)block[4 * i + 2] << 16 |
               (uint32_t)block[4 * i + 3] << 24;
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3], f, t;
    /* the four rounds, each with its own function and message order (no branch inside a loop) */
#define MD5_STEP(i, expression, g)                \
    f = (expression) + a + md5_k[i] + m[g];       \
    a = d;                                        \
    d = c;                                        \
    c = b;                                        \
    t = rotate_left(f, md5_shift[i]);             \
    b += t;
    for (int i = 0; i < 16; i++) {
        MD5_STEP(i, (b & c) | (~b & d), i)
    }
    for (int i = 16; i < 32; i++) {
        MD5_STEP(i, (d & b) | (~d & c), (5 * i + 1) & 15)
    }
    for (int i = 32; i < 48; i++) {
        MD5_STEP(i, b ^ c ^ d, (3 * i + 5) & 15)
    }
    for (int i = 48; i < 64; i++) {
        MD5_STEP(i, c ^ (b | ~d), (7 * i) & 15)
    }
#undef MD5_STEP
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

static void md5(const uint8_t *s, size_t n, uint8_t digest[16]) {
    uint32_t state[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    size_t whole = n & ~(size_t)63;
    for (size_t i = 0; i < whole; i += 64) md5_block(state, s + i);
    uint8_t last[128];
    size_t rest = n - whole, padded = rest < 56 ? 64 : 128;
    memset(last, 0, sizeof last);
    memcpy(last, s + whole, rest);
    last[rest] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) last[padded - 8 + i] = (uint8_t)(bits >> (8 * i));
    md5_block(state, last);
    if (padded == 128) md5_block(state, last + 64);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) digest[4 * i + j] = (uint8_t)(state[i] >> (8 * j));
}

/* 0 if offsets (int64) are a non-empty, non-decreasing run within data; else -1 with a ValueError naming caller. */
static int check_offsets(const char *caller, const Py_buffer *offsets, const Py_buffer *data) {
    size_t count = offsets->len / 8;
    const int64_t *offset = offsets->buf;
    if (offsets->len % 8 || count == 0 || offset[0] < 0 || offset[count - 1] > data->len) {
        PyErr_Format(PyExc_ValueError, "%s: offsets do not fit the data", caller);
        return -1;
    }
    for (size_t i = 1; i < count; i++)
        if (offset[i] < offset[i - 1]) {
            PyErr_Format(PyExc_ValueError, "%s: offsets must not decrease", caller);
            return -1;
        }
    return 0;
}

/* photo_hashes(offsets, data) -> (offsets, data): per value (int64 offsets into data) the MD5 printed with %x per
 * byte, no zero padding (YFCC100M's photo hash), as an Arrow string array's int32 offsets + data. */
static PyObject *photo_hashes(PyObject *module, PyObject *args) {
    Py_buffer offsets, data;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*y*", &offsets, &data)) return NULL;
    PyObject *result = NULL;
    Grow out_offsets = {0}, out_data = {0};
    pool_take(&out_offsets, 53);
    pool_take(&out_data, 54);
    size_t count = offsets.len / 8;
    const int64_t *offset = offsets.buf;
    if (check_offsets("photo_hashes", &offsets, &data) < 0) goto done;
    int failed;
    Py_BEGIN_ALLOW_THREADS;
    static const char digits[] = "0123456789abcdef";
    int32_t zero = 0;
    failed = grow_put(&out_offsets, &zero, 4) || grow_reserve(&out_data, (count - 1) * 32) ||
             grow_reserve(&out_offsets, (count - 1) * 4);
    for (size_t i = 0; i + 1 < count && !failed; i++) {
        uint8_t digest[16];
        md5((const uint8_t *)data.buf + offset[i], (size_t)(offset[i + 1] - offset[i]), digest);
        char *o = out_data.data + out_data.len;
        for (int j = 0; j < 16; j++) {
            if (digest[j] >> 4) *o++ = digits[digest[j] >> 4];
            *o++ = digits[digest[j] & 15];
        }
        out_data.len = (size_t)(o - out_data.data);
        *(int32_t *)(out_offsets.data + out_offsets.len) = (int32_t)out_data.len;
        out_offsets.len += 4;
    }
    Py_END_ALLOW_THREADS;
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_BuildValue("(NN)", owned_from(&out_offsets), owned_from(&out_data));
done:
    grow_release(&out_offsets);
    grow_release(&out_data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

/* The splitmix64 / murmur3 finaliser (passkit.stages.select._mix64). */
static inline uint64_t mix64(uint64_t v) {
    v ^= v >> 30;
    v *= 0xBF58476D1CE4E5B9ULL;
    v ^= v >> 27;
    v *= 0x94D049BB133111EBULL;
    return v ^ (v >> 31);
}

/* key_ranks(offsets, data, seed) -> bytes: per value (int64 offsets into data) a native uint64, FNV-1a-64 over its
 * bytes started from the offset basis xor mix64(seed), finished with mix64(state ^ length): the same values as
 * passkit.stages.select.key_rank's numpy path. */
static PyObject *key_ranks(PyObject *module, PyObject *args) {
    Py_buffer offsets, data;
    unsigned long long seed;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*y*K", &offsets, &data, &seed)) return NULL;
    PyObject *result = NULL;
    size_t count = offsets.len / 8;
    const int64_t *offset = offsets.buf;
    if (check_offsets("key_ranks", &offsets, &data) < 0) goto done;
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((count - 1) * 8));
    if (!result) goto done;
    uint64_t *out = (uint64_t *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS;
    const uint64_t basis = 0xCBF29CE484222325ULL ^ mix64((uint64_t)seed);
    const uint8_t *bytes = data.buf;
    for (size_t i = 0; i + 1 < count; i++) {
        uint64_t state = basis;
        for (int64_t j = offset[i]; j < offset[i + 1]; j++) state = (state ^ bytes[j]) * 0x100000001B3ULL;
        out[i] = mix64(state ^ (uint64_t)(offset[i + 1] - offset[i]));
    }
    Py_END_ALLOW_THREADS;
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

/* ---------------------------------------------------------------- web URLs */

static inline int url_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }

/* A host ([^/?#:@\s]+) followed by the end or by one of ":/?#" (the start of the rest). */
static int host_then_rest(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n && s[i] != '/' && s[i] != '?' && s[i] != '#' && s[i] != ':' && s[i] != '@') i++;
    return i > 0 && (i == n || s[i] != '@');
}

/* ^[Hh][Tt][Tt][Pp][Ss]?://([^/?#@\s]*@)?[^/?#:@\s]+([:/?#][^\s]*)?$ with RE2's \s = [\t\n\f\r ]. */
static int web_url(const uint8_t *s, size_t n) {
    if (n < 7 || (s[0] | 0x20) != 'h' || (s[1] | 0x20) != 't' || (s[2] | 0x20) != 't' || (s[3] | 0x20) != 'p')
        return 0;
    size_t i = 4;
    if ((s[i] | 0x20) == 's') i++;
    if (n - i < 3 || memcmp(s + i, "://", 3)) return 0;
    const uint8_t *rest = s + i + 3;
    size_t m = n - i - 3;
    for (size_t k = 0; k < m; k++)
        if (url_space(rest[k])) return 0;
    if (host_then_rest(rest, m)) return 1;
    size_t at = 0; /* with user info: up to the first '@', before any of "/?#" */
    while (at < m && rest[at] != '@') {
        if (rest[at] == '/' || rest[at] == '?' || rest[at] == '#') return 0;
        at++;
    }
    return at < m && host_then_rest(rest + at + 1, m - at - 1);
}

/* web_urls(offsets, data) -> bytes: 1 per value (int64 offsets into data) that is an http(s) URL with a host. */
static PyObject *web_urls(PyObject *module, PyObject *args) {
    Py_buffer offsets, data;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*y*", &offsets, &data)) return NULL;
    PyObject *result = NULL;
    size_t count = offsets.len / 8;
    const int64_t *offset = offsets.buf;
    if (check_offsets("web_urls", &offsets, &data) < 0) goto done;
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(count - 1));
    if (!result) goto done;
    char *out = PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS;
    for (size_t i = 0; i + 1 < count; i++)
        out[i] = (char)web_url((const uint8_t *)data.buf + offset[i], (size_t)(offset[i + 1] - offset[i]));
    Py_END_ALLOW_THREADS;
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

/* ---------------------------------------------------------------- the scan */

/* Indices into the field tuple given to scan(). */
enum {
    F_ID,
    F_HASH,
    F_NSID,
    F_NICKNAME,
    F_TAKEN,
    F_UPLOADED,
    F_TITLE,
    F_LONGITUDE,
    F_LATITUDE,
    F_PAGE,
    F_DOWNLOAD,
    F_LICENSE_NAME,
    F_LICENSE_URL,
    F_MARKER,
    F_COUNT
};

/* Malformed codes of records whose line is readable (earliest check wins); line problems are 8 + their index. */
enum {
    M_NONE,
    M_ID,
    M_MARKER,
    M_LONGITUDE,
    M_LATITUDE,
    M_UPLOADED,
    M_HASH,
    M_TEXT,
    M_LINE_BASE
};

enum { LINE_NUL = 1, LINE_CR = 2, LINE_HIGH = 4 };

typedef struct {
    const uint8_t *name, *url; /* into the piece, or into the known pairs' bytes (held by the scan) */
    uint32_t name_len, url_len;
    uint64_t hash;
    int verdict; /* 1: records with it are read in full, 0: light, -1: not known yet */
} Pair;

#define MAX_HEAVY 16

typedef struct {
    PyObject_HEAD Py_buffer piece;
    int have_piece;
    int n_fields;
    int field[F_COUNT];
    int terminated;
    /* per line: n_fields + 1 field starts (field i = [start[i], start[i+1] - 1)) */
    Grow starts;
    size_t lines;
    /* per emitted record */
    Grow line_no;   /* int64: line in the piece, from 1 */
    Grow line_of;   /* uint32: line index (for gather) */
    Grow pair;      /* int32: license pair, -1 = none */
    Grow malformed; /* int32: malformed code */
    Grow video;     /* uint8 */
    Grow has_id;    /* uint8: photo id valid */
    Grow readable;  /* uint8: the line was readable (creator id / license present) */
    Grow key_offsets, key_data, id_offsets, id_data, creator_offsets, creator_data;
    size_t records;
    /* lines left to the reference path: int64 (start, end) pairs and their line numbers */
    Grow slow;
    /* distinct license (name, url) pairs: open addressing over pair indices + 1 */
    Grow pairs;
    uint32_t *table;
    size_t table_size;
    /* details of unreadable lines, NUL-separated */
    Grow details;
    size_t detail_count;
    Grow scratch, creator_scratch;
    /* the records read in full, gathered in the same pass when their license pair's verdict is known */
    PyObject *known; /* tuple of (name bytes, url bytes, verdict) */
    size_t known_count;
    int all_rows;
    int n_heavy;
    int heavy[MAX_HEAVY];
    size_t pending; /* records that may be read in full but whose pair's verdict is not known yet */
    Grow full_rows, full_offsets[MAX_HEAVY], full_data[MAX_HEAVY];
} Scan;

#define SCAN_GROWS (20 + 2 * MAX_HEAVY)

/* The scan's growable buffers, in role order. */
static void scan_grows(Scan *self, Grow **all) {
    Grow *list[20] = {&self->starts,       &self->line_no,         &self->line_of,      &self->pair,
                   &self->malformed,    &self->video,           &self->has_id,       &self->readable,
                   &self->key_offsets,  &self->key_data,        &self->id_offsets,   &self->id_data,
                   &self->creator_offsets, &self->creator_data, &self->slow,         &self->pairs,
                   &self->details,      &self->scratch,         &self->creator_scratch, &self->full_rows};
    memcpy(all, list, sizeof list);
    for (int f = 0; f < MAX_HEAVY; f++) {
        all[20 + f] = &self->full_offsets[f];
        all[20 + MAX_HEAVY + f] = &self->full_data[f];
    }
}

static void scan_free_memory(Scan *self) {
    Grow *all[SCAN_GROWS];
    scan_grows(self, all);
    for (int i = 0; i < SCAN_GROWS; i++) grow_release(all[i]);
    free(self->table);
    self->table = NULL;
}

static void scan_dealloc(Scan *self) {
    scan_free_memory(self);
    if (self->have_piece) PyBuffer_Release(&self->piece);
    Py_XDECREF(self->known);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A cheap hash of a value: its length and up to 8 bytes at its end (where license names and URLs differ);
 * equal hashes are compared in full. */
static uint64_t tail_hash(const uint8_t *s, size_t n) {
    uint64_t tail = 0;
    size_t take = n < 8 ? n : 8;
    memcpy(&tail, s + n - take, take);
    uint64_t h = (tail ^ (n * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 31);
}

/* Index of the (name, url) pair, added if new; -1 on memory error. */
static int32_t pair_index(Scan *self, const uint8_t *name, size_t name_len, const uint8_t *url, size_t url_len,
                          int verdict) {
    uint64_t h = tail_hash(name, name_len) * 31 + tail_hash(url, url_len);
    h ^= h >> 29;
    size_t count = self->pairs.len / sizeof(Pair);
    if (!self->table || (count + 1) * 2 > self->table_size) {
        size_t size = self->table_size ? self->table_size * 2 : 64;
        uint32_t *table = calloc(size, sizeof(uint32_t));
        if (!table) return -1;
        Pair *pairs = (Pair *)self->pairs.data;
        for (size_t i = 0; i < count; i++) {
            size_t slot = pairs[i].hash & (size - 1);
            while (table[slot]) slot = (slot + 1) & (size - 1);
            table[slot] = (uint32_t)(i + 1);
        }
        free(self->table);
        self->table = table;
        self->table_size = size;
    }
    size_t slot = h & (self->table_size - 1);
    Pair *pairs = (Pair *)self->pairs.data;
    while (self->table[slot]) {
        Pair *p = &pairs[self->table[slot] - 1];
        if (p->hash == h && p->name_len == name_len && p->url_len == url_len && !memcmp(p->name, name, name_len) &&
            !memcmp(p->url, url, url_len))
            return (int32_t)(self->table[slot] - 1);
        slot = (slot + 1) & (self->table_size - 1);
    }
    Pair fresh = {name, url, (uint32_t)name_len, (uint32_t)url_len, h, verdict};
    if (grow_put(&self->pairs, &fresh, sizeof fresh)) return -1;
    self->table[slot] = (uint32_t)(count + 1);
    return (int32_t)count;
}

/* Appends one record's light columns. */
static int emit(Scan *self, int64_t line, uint32_t line_index, int32_t pair, int32_t code, uint8_t video,
                const uint8_t *id, size_t id_len, int id_valid, int readable, const uint8_t *creator,
                size_t creator_len) {
    if (GROW_PUSH(&self->line_no, int64_t, line) || GROW_PUSH(&self->line_of, uint32_t, line_index) ||
        GROW_PUSH(&self->pair, int32_t, pair) || GROW_PUSH(&self->malformed, int32_t, code) ||
        GROW_PUSH(&self->video, uint8_t, video) || GROW_PUSH(&self->has_id, uint8_t, (uint8_t)id_valid) ||
        GROW_PUSH(&self->readable, uint8_t, (uint8_t)readable))
        return -1;
    if (id_valid) {
        if (grow_put(&self->key_data, "yfcc-", 5) || grow_put(&self->key_data, id, id_len) ||
            grow_put(&self->id_data, id, id_len))
            return -1;
    }
    if (readable && grow_put(&self->creator_data, creator, creator_len)) return -1;
    if (GROW_PUSH(&self->key_offsets, int32_t, (int32_t)self->key_data.len) ||
        GROW_PUSH(&self->id_offsets, int32_t, (int32_t)self->id_data.len) ||
        GROW_PUSH(&self->creator_offsets, int32_t, (int32_t)self->creator_data.len))
        return -1;
    self->records++;
    return 0;
}

/* A line that cannot be read: its detail, and the photo id field if that is a number. */
static int unreadable_line(Scan *self, const uint8_t *base, const uint32_t *start, size_t line_end, size_t line,
                           int tabs, const char *detail) {
    int id_field = self->field[F_ID];
    const uint8_t *id = NULL;
    size_t id_len = 0;
    if (tabs >= id_field) {
        size_t from = start[id_field];
        size_t to = tabs > id_field ? start[id_field + 1] - 1 : line_end;
        id = base + from;
        id_len = to - from;
    }
    int valid = id && decimal(id, id_len, 20);
    int32_t code = (int32_t)(M_LINE_BASE + self->detail_count);
    if (grow_put(&self->details, detail, strlen(detail) + 1)) return -1;
    self->detail_count++;
    return emit(self, (int64_t)line + 1, (uint32_t)line, -1, code, 0, id, id_len, valid, 0, NULL, 0);
}

#define FIELD(i) (base + start[self->field[i]])
#define FIELD_LEN(i) (start[self->field[i] + 1] - 1 - start[self->field[i]])

/* The checks of one line [start[0], line_end); -1 on memory error. */
static int finish_line(Scan *self, const uint8_t *base, const uint32_t *start, size_t line_end, size_t line, int tabs,
                       int flags, int last) {
    char detail[160];
    detail[0] = 0;
    if (tabs != self->n_fields - 1) {
        snprintf(detail, sizeof detail, "expected %d tab-separated fields, found %d", self->n_fields, tabs + 1);
    } else if (flags & LINE_NUL) {
        snprintf(detail, sizeof detail, "NUL byte in the line");
    } else if (flags & LINE_CR) {
        snprintf(detail, sizeof detail, "carriage return in the line");
    } else if (flags & LINE_HIGH) {
        size_t where = 0;
        int verdict = utf8_check(base + start[0], line_end - start[0], &where);
        if (verdict != UTF8_OK)
            snprintf(detail, sizeof detail, "not valid UTF-8 (%s at byte %zu)", utf8_reason[verdict], where);
    }
    if (detail[0]) {
        if (last && !self->terminated) strcat(detail, " (last line has no newline: file truncated?)");
        return unreadable_line(self, base, start, line_end, line, tabs, detail);
    }

    const uint8_t *id = FIELD(F_ID);
    size_t id_len = FIELD_LEN(F_ID);
    int id_ok = decimal(id, id_len, 20);
    const uint8_t *marker = FIELD(F_MARKER);
    size_t marker_len = FIELD_LEN(F_MARKER);
    int marker_ok = marker_len == 1 && (marker[0] == '0' || marker[0] == '1');
    uint8_t video = marker_len == 1 && marker[0] == '1';
    int longitude = coordinate_unparsable(FIELD(F_LONGITUDE), FIELD_LEN(F_LONGITUDE));
    int latitude = coordinate_unparsable(FIELD(F_LATITUDE), FIELD_LEN(F_LATITUDE));
    size_t uploaded_len = FIELD_LEN(F_UPLOADED);
    int uploaded_ok = !uploaded_len || decimal(FIELD(F_UPLOADED), uploaded_len, 12);
    int hash_ok = self->field[F_HASH] < 0 || lower_hex(FIELD(F_HASH), FIELD_LEN(F_HASH));

    /* creator id: the %-decoded nsid ("" if that is not UTF-8) */
    const uint8_t *nsid = FIELD(F_NSID);
    size_t nsid_len = FIELD_LEN(F_NSID);
    const uint8_t *creator = nsid;
    size_t creator_len = nsid_len;
    int nsid_bad = 0;
    if (memchr(nsid, '%', nsid_len) || memchr(nsid, '+', nsid_len)) {
        if (grow_reserve(&self->creator_scratch, nsid_len)) return -1;
        creator = (const uint8_t *)self->creator_scratch.data;
        creator_len = percent_decode(nsid, nsid_len, (uint8_t *)self->creator_scratch.data);
        size_t where;
        if (utf8_check(creator, creator_len, &where) != UTF8_OK) {
            nsid_bad = 1;
            creator_len = 0;
        }
    }
    int nickname_bad = decodes_to_bad_utf8(FIELD(F_NICKNAME), FIELD_LEN(F_NICKNAME), &self->scratch);
    if (nickname_bad < 0) return -1;
    int text_bad = nsid_bad || nickname_bad;
    if (!text_bad) {
        int title_bad = decodes_to_bad_utf8(FIELD(F_TITLE), FIELD_LEN(F_TITLE), &self->scratch);
        if (title_bad < 0) return -1;
        text_bad = title_bad;
    }
    int creator_clean = nsid_bad || plainly_clean(creator, creator_len);
    if (longitude < 0 || latitude < 0 || !creator_clean) { /* the reference path decides this line */
        int64_t span[3] = {(int64_t)start[0], (int64_t)line_end, (int64_t)line + 1};
        return grow_put(&self->slow, span, sizeof span);
    }
    int32_t code = !id_ok          ? M_ID
                   : !marker_ok    ? M_MARKER
                   : longitude     ? M_LONGITUDE
                   : latitude      ? M_LATITUDE
                   : !uploaded_ok  ? M_UPLOADED
                   : !hash_ok      ? M_HASH
                   : text_bad      ? M_TEXT
                                   : M_NONE;
    int32_t pair = pair_index(self, FIELD(F_LICENSE_NAME), FIELD_LEN(F_LICENSE_NAME), FIELD(F_LICENSE_URL),
                              FIELD_LEN(F_LICENSE_URL), -1);
    if (pair < 0) return -1;
    int verdict = ((Pair *)self->pairs.data)[pair].verdict;
    int wanted = code == M_NONE && !video;
    if (!self->all_rows && wanted && verdict < 0) self->pending++;
    if (!self->pending && (self->all_rows || (wanted && verdict == 1))) {
        /* read in full: its raw fields are copied now, while the line is in cache */
        if (GROW_PUSH(&self->full_rows, int64_t, (int64_t)self->records)) return -1;
        for (int f = 0; f < self->n_heavy; f++) {
            size_t from = start[self->heavy[f]], to = start[self->heavy[f] + 1] - 1;
            if (grow_put(&self->full_data[f], base + from, to - from) ||
                GROW_PUSH(&self->full_offsets[f], int32_t, (int32_t)self->full_data[f].len))
                return -1;
        }
    }
    return emit(self, (int64_t)line + 1, (uint32_t)line, pair, code, video, id, id_len, id_ok, 1, creator, creator_len);
}

/* The whole piece; 0, or -1 on memory error. */
static int scan_piece(Scan *self) {
    const uint8_t *base = (const uint8_t *)self->piece.buf;
    size_t n = (size_t)self->piece.len;
    size_t width = (size_t)self->n_fields + 1;
    if (grow_reserve(&self->starts, width * sizeof(uint32_t))) return -1;
    uint32_t *start = (uint32_t *)self->starts.data;
    start[0] = 0;
    int tabs = 0, flags = 0;
    size_t line = 0;

#define ON_BYTE(at)                                                                                      \
    do {                                                                                                 \
        uint8_t c_ = base[at];                                                                           \
        if (c_ == '\t') {                                                                                \
            tabs++;                                                                                      \
            if (tabs < (int)width) start[tabs] = (uint32_t)((at) + 1);                                   \
        } else if (c_ == '\n') {                                                                         \
            if (tabs == self->n_fields - 1) start[self->n_fields] = (uint32_t)((at) + 1);                \
            if (finish_line(self, base, start, (at), line, tabs, flags, (at) + 1 == n)) return -1;       \
            line++;                                                                                      \
            self->starts.len = line * width * sizeof(uint32_t);                                          \
            if (grow_reserve(&self->starts, width * sizeof(uint32_t))) return -1;                        \
            start = (uint32_t *)(self->starts.data + self->starts.len);                                  \
            start[0] = (uint32_t)((at) + 1);                                                             \
            tabs = 0;                                                                                    \
            flags = 0;                                                                                   \
        } else if (c_ == 0) {                                                                            \
            flags |= LINE_NUL;                                                                           \
        } else if (c_ == '\r') {                                                                         \
            flags |= LINE_CR;                                                                            \
        } else {                                                                                         \
            flags |= LINE_HIGH;                                                                          \
        }                                                                                                \
    } while (0)

    size_t pos = 0;
#ifdef __SSE2__
    const __m128i tab = _mm_set1_epi8('\t'), newline = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    const __m128i zero = _mm_setzero_si128();
#define SPECIAL_MASK(v)                                                                                        \
    ((uint64_t)((unsigned)_mm_movemask_epi8(_mm_or_si128(                                                      \
                    _mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_cmpeq_epi8(v, newline)),                         \
                    _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, zero)))) |                           \
                (unsigned)_mm_movemask_epi8(v)))
    /* 64 bytes a step: one mask of their tabs, newlines, CR, NUL and non-ASCII bytes, handled in order */
    for (; pos + 64 <= n; pos += 64) {
        const __m128i *at = (const __m128i *)(base + pos);
        uint64_t mask = SPECIAL_MASK(_mm_loadu_si128(at)) | SPECIAL_MASK(_mm_loadu_si128(at + 1)) << 16 |
                        SPECIAL_MASK(_mm_loadu_si128(at + 2)) << 32 | SPECIAL_MASK(_mm_loadu_si128(at + 3)) << 48;
        while (mask) {
            unsigned bit = (unsigned)__builtin_ctzll(mask);
            mask &= mask - 1;
            ON_BYTE(pos + bit);
        }
    }
#undef SPECIAL_MASK
#endif
    for (; pos < n; pos++) {
        uint8_t c = base[pos];
        if (c == '\t' || c == '\n' || c == '\r' || c == 0 || c >= 0x80) ON_BYTE(pos);
    }
#undef ON_BYTE
    self->lines = line;
    return 0;
}

static PyTypeObject ScanType;

static PyObject *scan(PyObject *module, PyObject *args) {
    PyObject *piece, *fields, *known, *heavy;
    int n_fields, terminated, all_rows;
    if (!PyArg_ParseTuple(args, "OiO!pO!pO!", &piece, &n_fields, &PyTuple_Type, &fields, &terminated, &PyTuple_Type,
                          &known, &all_rows, &PyTuple_Type, &heavy))
        return NULL;
    if (PyTuple_GET_SIZE(heavy) > MAX_HEAVY) {
        PyErr_Format(PyExc_ValueError, "at most %d fields are read in full", MAX_HEAVY);
        return NULL;
    }
    if (PyTuple_GET_SIZE(fields) != F_COUNT) {
        PyErr_Format(PyExc_ValueError, "expected %d field indices", F_COUNT);
        return NULL;
    }
    if (n_fields < 2 || n_fields > 64) {
        PyErr_SetString(PyExc_ValueError, "n_fields out of range");
        return NULL;
    }
    Scan *self = PyObject_New(Scan, &ScanType);
    if (!self) return NULL;
    memset((char *)self + sizeof(PyObject), 0, sizeof(Scan) - sizeof(PyObject));
    Grow *all[SCAN_GROWS];
    scan_grows(self, all);
    for (int i = 0; i < SCAN_GROWS; i++) pool_take(all[i], i);
    self->n_fields = n_fields;
    self->terminated = terminated;
    self->all_rows = all_rows;
    Py_INCREF(known);
    self->known = known;
    self->n_heavy = (int)PyTuple_GET_SIZE(heavy);
    for (int f = 0; f < self->n_heavy; f++) {
        long value = PyLong_AsLong(PyTuple_GET_ITEM(heavy, f));
        if (value == -1 && PyErr_Occurred()) goto fail;
        if (value < 0 || value >= n_fields) {
            PyErr_SetString(PyExc_ValueError, "field index out of range");
            goto fail;
        }
        self->heavy[f] = (int)value;
    }
    /* the pairs seen in earlier pieces, with their verdicts: they keep their indices */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(known); i++) {
        PyObject *item = PyTuple_GET_ITEM(known, i);
        const char *name, *url;
        Py_ssize_t name_len, url_len;
        int verdict;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "y#y#i", &name, &name_len, &url, &url_len, &verdict))
            goto fail;
        int32_t index = pair_index(self, (const uint8_t *)name, (size_t)name_len, (const uint8_t *)url,
                                   (size_t)url_len, verdict ? 1 : 0);
        if (index < 0) {
            PyErr_NoMemory();
            goto fail;
        }
        if ((Py_ssize_t)index != i) {
            PyErr_SetString(PyExc_ValueError, "known license pairs must be distinct");
            goto fail;
        }
    }
    self->known_count = (size_t)PyTuple_GET_SIZE(known);
    for (int i = 0; i < F_COUNT; i++) {
        long value = PyLong_AsLong(PyTuple_GET_ITEM(fields, i));
        if (value == -1 && PyErr_Occurred()) goto fail;
        if (value >= n_fields || value < (i == F_HASH ? -1 : 0)) {
            PyErr_SetString(PyExc_ValueError, "field index out of range");
            goto fail;
        }
        self->field[i] = (int)value;
    }
    if (PyObject_GetBuffer(piece, &self->piece, PyBUF_SIMPLE)) goto fail;
    self->have_piece = 1;
    if (self->piece.len >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "piece too large for the scanner (2 GiB at most)");
        goto fail;
    }
    if (self->piece.len && ((const char *)self->piece.buf)[self->piece.len - 1] != '\n') {
        PyErr_SetString(PyExc_ValueError, "a piece must end with a newline");
        goto fail;
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS;
    int32_t zero = 0;
    failed = grow_put(&self->key_offsets, &zero, 4) || grow_put(&self->id_offsets, &zero, 4) ||
             grow_put(&self->creator_offsets, &zero, 4);
    for (int f = 0; f < self->n_heavy && !failed; f++) failed = grow_put(&self->full_offsets[f], &zero, 4);
    failed = failed || scan_piece(self);
    Py_END_ALLOW_THREADS;
    if (failed) {
        PyErr_NoMemory();
        goto fail;
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* Scan.light() -> dict of the light columns' buffers and the lists the reader needs. */
static PyObject *scan_light(Scan *self, PyObject *unused) {
    PyObject *details = PyList_New((Py_ssize_t)self->detail_count);
    if (!details) return NULL;
    const char *text = self->details.data;
    for (size_t i = 0; i < self->detail_count; i++) {
        size_t len = strlen(text);
        PyObject *item = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "strict");
        if (!item) {
            Py_DECREF(details);
            return NULL;
        }
        PyList_SET_ITEM(details, (Py_ssize_t)i, item);
        text += len + 1;
    }
    size_t pair_count = self->pairs.len / sizeof(Pair);
    PyObject *pairs = PyList_New((Py_ssize_t)(pair_count - self->known_count));
    if (!pairs) {
        Py_DECREF(details);
        return NULL;
    }
    Pair *pair = (Pair *)self->pairs.data;
    for (size_t i = self->known_count; i < pair_count; i++) {
        PyObject *item = Py_BuildValue("(s#s#)", (const char *)pair[i].name, (Py_ssize_t)pair[i].name_len,
                                       (const char *)pair[i].url, (Py_ssize_t)pair[i].url_len);
        if (!item) {
            Py_DECREF(details);
            Py_DECREF(pairs);
            return NULL;
        }
        PyList_SET_ITEM(pairs, (Py_ssize_t)(i - self->known_count), item);
    }
    PyObject *full = Py_None;
    Py_INCREF(full);
    if (!self->pending) {
        PyObject *fields = PyList_New(self->n_heavy);
        if (!fields) {
            Py_DECREF(details);
            Py_DECREF(pairs);
            Py_DECREF(full);
            return NULL;
        }
        for (int f = 0; f < self->n_heavy; f++)
            PyList_SET_ITEM(fields, f,
                            Py_BuildValue("(NN)", owned_from(&self->full_offsets[f]), owned_from(&self->full_data[f])));
        Py_DECREF(full);
        full = Py_BuildValue("(NN)", owned_from(&self->full_rows), fields);
        if (!full) {
            Py_DECREF(details);
            Py_DECREF(pairs);
            return NULL;
        }
    }
    return Py_BuildValue(
        "{s:N,s:n,s:n,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "full", full, "records",
        (Py_ssize_t)self->records,
        "lines", (Py_ssize_t)self->lines, "line", owned_from(&self->line_no), "pair", owned_from(&self->pair),
        "malformed", owned_from(&self->malformed), "video", owned_from(&self->video), "has_id",
        owned_from(&self->has_id), "readable", owned_from(&self->readable), "key_offsets",
        owned_from(&self->key_offsets), "key_data", owned_from(&self->key_data), "id_offsets",
        owned_from(&self->id_offsets), "id_data", owned_from(&self->id_data), "creator_offsets",
        owned_from(&self->creator_offsets), "creator_data", owned_from(&self->creator_data), "slow",
        owned_from(&self->slow), "details", details, "pairs", pairs);
}

/* Scan.gather(admitted, fields, all_rows) -> (rows, [(offsets, data), ...]): the records read in full (all
 * readable ones if all_rows, else those without a malformed code, not videos and with an admitted license pair:
 * admitted[pair] != 0) and, per field index, their raw values as int32 offsets + data. Call after light(): it
 * reads the per-record columns that light() handed over, so it keeps its own copy of what it needs. */
static PyObject *scan_gather(Scan *self, PyObject *args) {
    Py_buffer admitted, codes, pairs, video, readable;
    PyObject *fields;
    int all_rows;
    if (!PyArg_ParseTuple(args, "y*O!py*y*y*y*", &admitted, &PyTuple_Type, &fields, &all_rows, &codes, &pairs, &video,
                          &readable))
        return NULL;
    PyObject *result = NULL, *field_list = NULL;
    Py_ssize_t field_count = PyTuple_GET_SIZE(fields);
    int index[64];
    Grow rows = {0}, offsets[64], data[64];
    memset(offsets, 0, sizeof offsets);
    memset(data, 0, sizeof data);
    pool_take(&rows, 20);
    for (int f = 0; f < 64; f++) {
        pool_take(&offsets[f], f < 16 ? 21 + f : -1);
        pool_take(&data[f], f < 16 ? 37 + f : -1);
    }
    size_t records = self->records;
    if (field_count > 64 || (size_t)codes.len != records * 4 || (size_t)pairs.len != records * 4 ||
        (size_t)video.len != records || (size_t)readable.len != records) {
        PyErr_SetString(PyExc_ValueError, "gather: arguments do not match the scan");
        goto done;
    }
    for (Py_ssize_t i = 0; i < field_count; i++) {
        long value = PyLong_AsLong(PyTuple_GET_ITEM(fields, i));
        if (value == -1 && PyErr_Occurred()) goto done;
        if (value < 0 || value >= self->n_fields) {
            PyErr_SetString(PyExc_ValueError, "field index out of range");
            goto done;
        }
        index[i] = (int)value;
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS;
    const int32_t *code = codes.buf, *pair = pairs.buf;
    const uint8_t *is_video = video.buf, *is_readable = readable.buf, *admit = admitted.buf;
    const uint32_t *line_of = (const uint32_t *)self->line_of.data;
    const uint8_t *base = (const uint8_t *)self->piece.buf;
    size_t width = (size_t)self->n_fields + 1;
    int32_t zero = 0;
    for (Py_ssize_t f = 0; f < field_count && !failed; f++) failed = grow_put(&offsets[f], &zero, 4);
    for (size_t r = 0; r < records && !failed; r++) {
        if (!is_readable[r]) continue;
        if (!all_rows && (code[r] || is_video[r] || pair[r] < 0 || pair[r] >= admitted.len || !admit[pair[r]]))
            continue;
        failed = GROW_PUSH(&rows, int64_t, (int64_t)r);
        const uint32_t *start = (const uint32_t *)(self->starts.data) + line_of[r] * width;
        for (Py_ssize_t f = 0; f < field_count && !failed; f++) {
            size_t from = start[index[f]], to = start[index[f] + 1] - 1;
            failed = grow_put(&data[f], base + from, to - from) ||
                     GROW_PUSH(&offsets[f], int32_t, (int32_t)data[f].len);
        }
    }
    Py_END_ALLOW_THREADS;
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    field_list = PyList_New(field_count);
    if (!field_list) goto done;
    for (Py_ssize_t f = 0; f < field_count; f++) {
        PyObject *item = Py_BuildValue("(NN)", owned_from(&offsets[f]), owned_from(&data[f]));
        if (!item) goto done;
        PyList_SET_ITEM(field_list, f, item);
    }
    result = Py_BuildValue("(NO)", owned_from(&rows), field_list);
done:
    Py_XDECREF(field_list);
    grow_release(&rows);
    for (int f = 0; f < 64; f++) {
        grow_release(&offsets[f]);
        grow_release(&data[f]);
    }
    PyBuffer_Release(&admitted);
    PyBuffer_Release(&codes);
    PyBuffer_Release(&pairs);
    PyBuffer_Release(&video);
    PyBuffer_Release(&readable);
    return result;
}

static PyMethodDef scan_methods[] = {
    {"light", (PyCFunction)scan_light, METH_NOARGS, "The light columns (call once)."},
    {"gather", (PyCFunction)scan_gather, METH_VARARGS, "Raw fields of the records read in full."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "passkit.sources._yfcc_scan.Scan",
    .tp_basicsize = sizeof(Scan),
    .tp_dealloc = (destructor)scan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = scan_methods,
    .tp_doc = "One scanned piece of YFCC100M text.",
};

static PyMethodDef module_methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(piece, n_fields, fields, terminated, known_pairs, all_rows, full_fields) -> Scan: one pass over a piece "
     "of whole lines."},
    {"web_urls", web_urls, METH_VARARGS, "web_urls(offsets, data) -> bytes: 1 where a value is an http(s) URL."},
    {"photo_hashes", photo_hashes, METH_VARARGS,
     "photo_hashes(offsets, data) -> (offsets, data): YFCC100M photo hashes (MD5, %x per byte) of binary values."},
    {"key_ranks", key_ranks, METH_VARARGS,
     "key_ranks(offsets, data, seed) -> bytes: passkit.stages.select.key_rank of binary values (native uint64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_yfcc_scan", "Compiled one-pass scanner of YFCC100M metadata text.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__yfcc_scan(void) {
    init_tables();
    md5_init_table();
    if (PyType_Ready(&OwnedBufferType) < 0 || PyType_Ready(&ScanType) < 0) return NULL;
    return PyModule_Create(&module_def);
}
