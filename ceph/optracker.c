/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * optracker.c: the op tracker's JSON into blkin_osd_op records
 * (optracker.h).
 *
 * The shape read (Ceph 16, `dump_historic_ops`; members in any order,
 * unknown ones skipped):
 *   {"size": N, "duration": S, "ops": [
 *     {"description": "osd_op(client.G.I:T PG OBJ [SUBOPS] ...)",
 *      "initiated_at": "2026-12-06T21:25:54.004448+0000", "age": ..,
 *      "duration": .., "type_data": {"flag_point": "..",
 *        "client_info": {"client": "client.G", "client_addr": "..",
 *                        "tid": T},
 *        "events": [{"event": "initiated", "time": "..", "duration": ..},
 *                   ...]}}, ...]}
 * `dump_ops_in_flight` has "num_ops" instead of "size".
 */
#include "optracker.h"

#include <errno.h>
#include <string.h>

#define MIN_SZ(a, b) ((a) < (b) ? (a) : (b))

typedef struct Cur {
    const char *s, *p, *end;
    int depth;
    const char *error;
} Cur;

static int fail(Cur *c, const char *why)
{
    if (!c->error)
        c->error = why;
    return -EBADMSG;
}

static void ws(Cur *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static int take(Cur *c, char ch)
{
    ws(c);
    if (c->p >= c->end || *c->p != ch)
        return fail(c, ch == '{'   ? "expected '{'"
                       : ch == '[' ? "expected '['"
                       : ch == ':' ? "expected ':'"
                                   : "unexpected character");
    c->p++;
    return 0;
}

/* Is the next non-blank character @ch? (consumed if so) */
static bool peek_take(Cur *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static int hex4(Cur *c, unsigned *v)
{
    *v = 0;
    if (c->end - c->p < 4)
        return fail(c, "truncated \\u escape");
    for (int i = 0; i < 4; i++) {
        char h = *c->p++;

        *v <<= 4;
        if (h >= '0' && h <= '9')
            *v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f')
            *v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F')
            *v |= (unsigned)(h - 'A' + 10);
        else
            return fail(c, "bad \\u escape");
    }
    return 0;
}

/*
 * A string, decoded into @out (of @size bytes, NUL-terminated) when @out is
 * given; *len is its decoded length. A string longer than @size - 1 is
 * still consumed whole; *len then says how long it was.
 */
static int string(Cur *c, char *out, size_t size, size_t *len)
{
    const char *quote = NULL; /* the first '"' at or after c->p */
    size_t n = 0;

    ws(c);
    if (c->p >= c->end || *c->p != '"')
        return fail(c, "expected a string");
    c->p++;
    for (;;) {
        unsigned char ch;
        unsigned u;
        const char *q;

        /* The common case: a run of plain bytes up to the closing quote
         * or an escape, found with memchr (the bulk of what a dump is).
         * Control characters are taken as they are. Each byte is scanned
         * a bounded number of times, escapes or not. */
        if (!quote || quote < c->p)
            quote = memchr(c->p, '"', (size_t)(c->end - c->p));
        if (!quote)
            return fail(c, "unterminated string");
        q = memchr(c->p, '\\', (size_t)(quote - c->p));
        if (!q)
            q = quote;
        if (out && n < size) {
            size_t k = (size_t)(q - c->p);

            if (k > size - 1 - n)
                k = n < size - 1 ? size - 1 - n : 0;
            memcpy(out + n, c->p, k);
        }
        n += (size_t)(q - c->p);
        c->p = q;
        if (c->p >= c->end)
            return fail(c, "unterminated string");
        ch = (unsigned char)*c->p++;
        if (ch == '"')
            break;
        /* a backslash */
        if (c->p >= c->end)
            return fail(c, "unterminated string");
        ch = (unsigned char)*c->p++;
        switch (ch) {
        case '"':
        case '\\':
        case '/':
            break;
        case 'b':
            ch = '\b';
            break;
        case 'f':
            ch = '\f';
            break;
        case 'n':
            ch = '\n';
            break;
        case 'r':
            ch = '\r';
            break;
        case 't':
            ch = '\t';
            break;
        case 'u':
            if (hex4(c, &u) < 0)
                return -EBADMSG;
            /* Names and descriptions are ASCII; anything else stands in
             * as '?' (it can only make a name not match). */
            ch = u && u < 0x80 ? (unsigned char)u : '?';
            break;
        default:
            return fail(c, "bad escape");
        }
        if (out && n + 1 < size)
            out[n] = (char)ch;
        n++;
    }
    if (out && size)
        out[n < size ? n : size - 1] = '\0';
    if (len)
        *len = n;
    return 0;
}

/* A JSON number; its integer part in *v when it has no fraction or
 * exponent and fits (else *v = -1). */
static int number(Cur *c, int64_t *v)
{
    bool neg = false, integral = true, fits = true;
    int64_t x = 0;
    const char *start;

    ws(c);
    start = c->p;
    if (c->p < c->end && *c->p == '-') {
        neg = true;
        c->p++;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return fail(c, "expected a value");
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        if (x > (INT64_MAX - (*c->p - '0')) / 10)
            fits = false;
        else
            x = x * 10 + (*c->p - '0');
    }
    if (c->p < c->end && *c->p == '.') {
        integral = false;
        c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return fail(c, "bad number");
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        integral = false;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return fail(c, "bad number");
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    (void)start;
    if (v)
        *v = integral && fits ? (neg ? -x : x) : -1;
    return 0;
}

static int literal(Cur *c, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return fail(c, "expected a value");
    c->p += n;
    return 0;
}

static int skip_value(Cur *c);

/*
 * Skips a container without reading what is in it (most of a dump, for ops
 * seen before): brackets matched outside strings, a string ending at a
 * quote with an even run of backslashes before it. What is inside is not
 * checked, since nothing of it is used; the nesting limit still holds and
 * nothing is read past the end.
 */
static int skip_container(Cur *c, char open, char close)
{
    const char *p = c->p;
    int depth = 0;

    (void)open;
    (void)close;
    while (p < c->end) {
        char ch = *p;

        if (ch == '"') {
            const char *from = ++p;

            for (;;) {
                const char *q = memchr(p, '"', (size_t)(c->end - p));
                const char *b;

                if (!q) {
                    c->p = c->end;
                    return fail(c, "unterminated string");
                }
                for (b = q; b > from && b[-1] == '\\'; b--)
                    ;
                p = q + 1;
                if (((q - b) & 1) == 0)
                    break;
            }
            continue;
        }
        if (ch == '{' || ch == '[') {
            if (c->depth + ++depth > BLKIN_OPTRACKER_MAX_DEPTH) {
                c->p = p;
                return fail(c, "nested too deep");
            }
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0) {
                c->p = p + 1;
                return 0;
            }
        }
        p++;
    }
    c->p = c->end;
    return fail(c, "unterminated object or array");
}

static int skip_value(Cur *c)
{
    ws(c);
    if (c->p >= c->end)
        return fail(c, "expected a value");
    switch (*c->p) {
    case '{':
        return skip_container(c, '{', '}');
    case '[':
        return skip_container(c, '[', ']');
    case '"':
        return string(c, NULL, 0, NULL);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    default:
        return number(c, NULL);
    }
}

/* Iterates an object's members: call with *first = true. Returns 1 with
 * the key in @key, 0 at the closing brace, < 0 on error. */
static int next_member(Cur *c, bool *first, char *key, size_t size)
{
    if (*first) {
        if (take(c, '{') < 0)
            return -EBADMSG;
        *first = false;
        if (peek_take(c, '}'))
            return 0;
    } else {
        if (peek_take(c, '}'))
            return 0;
        if (take(c, ',') < 0)
            return fail(c, "expected ',' or '}'");
    }
    if (string(c, key, size, NULL) < 0 || take(c, ':') < 0)
        return -EBADMSG;
    return 1;
}

/* Iterates an array's elements like next_member. */
static int next_element(Cur *c, bool *first)
{
    if (*first) {
        if (take(c, '[') < 0)
            return -EBADMSG;
        *first = false;
        return peek_take(c, ']') ? 0 : 1;
    }
    if (peek_take(c, ']'))
        return 0;
    if (take(c, ',') < 0)
        return fail(c, "expected ',' or ']'");
    return 1;
}

/* ---- descriptions ------------------------------------------------------ */

static bool dec_u64(const char **p, const char *end, uint64_t *v)
{
    uint64_t x = 0;
    const char *s = *p;

    if (s >= end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *v = x;
    return true;
}

static int hexd(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/*
 * The object of an hobject_t as Ceph prints it:
 * POOL:HASH:NAMESPACE:KEY:NAME:SNAP, the three strings %-escaped (append_
 * escaped: '%' as "%p", ':' as "%c", '.' kept, others as %XX).
 */
static bool parse_object(const char *s, const char *end, blkin_osd_op *op)
{
    const char *f[6];
    int n = 0;
    size_t o = 0;

    f[n++] = s;
    for (const char *q = s; q < end && n < 6; q++)
        if (*q == ':')
            f[n++] = q + 1;
    if (n < 6)
        return false;
    /* NAME runs to the last ':' (it is escaped, so has none of its own). */
    const char *name = f[4], *name_end = end;

    while (name_end > name && name_end[-1] != ':')
        name_end--;
    if (name_end <= name)
        return false;
    name_end--; /* the ':' before SNAP */
    for (const char *q = name; q < name_end; q++) {
        char ch = *q;

        if (ch == '%') {
            if (q + 1 < name_end && q[1] == 'p') {
                ch = '%';
                q++;
            } else if (q + 1 < name_end && q[1] == 'c') {
                ch = ':';
                q++;
            } else if (q + 2 < name_end && hexd(q[1]) >= 0 && hexd(q[2]) >= 0) {
                ch = (char)(hexd(q[1]) << 4 | hexd(q[2]));
                q += 2;
            } else {
                return false;
            }
        }
        if (!ch || o + 1 >= BLKIN_OSD_OBJECT_MAX)
            return false;
        op->object[o++] = ch;
    }
    op->object[o] = '\0';
    return o > 0;
}

typedef struct SubOp {
    const char *name;
    unsigned kind;
    int extent; /* 2: "OFF~LEN", 1: "OFF" (to the end), 0: whole object */
} SubOp;

static const SubOp subops[] = {
    {"read", BLKIN_OSD_KIND_READ, 2},
    {"sparse-read", BLKIN_OSD_KIND_READ, 2},
    {"sync_read", BLKIN_OSD_KIND_READ, 2},
    {"cmpext", BLKIN_OSD_KIND_READ, 2},
    {"write", BLKIN_OSD_KIND_WRITE, 2},
    {"writefull", BLKIN_OSD_KIND_WRITE, 2},
    {"writesame", BLKIN_OSD_KIND_WRITE, 2},
    {"zero", BLKIN_OSD_KIND_ZERO, 2},
    {"truncate", BLKIN_OSD_KIND_ZERO, 1},
    {"delete", BLKIN_OSD_KIND_ZERO, 0},
};

/* One sub-op "NAME ARGS..." (within its ',' separators): folds its kind and
 * extent into @op. */
static void fold_subop(const char *s, const char *end, blkin_osd_op *op,
                       uint64_t *lo, uint64_t *hi)
{
    const char *sp = memchr(s, ' ', (size_t)(end - s));
    size_t nlen = (size_t)((sp ? sp : end) - s);
    uint64_t off = 0, len = BLKIN_OSD_TO_END, l;
    const char *q = sp ? sp + 1 : end;

    for (size_t i = 0; i < sizeof(subops) / sizeof(subops[0]); i++) {
        const SubOp *so = &subops[i];

        if (strlen(so->name) != nlen || memcmp(so->name, s, nlen) != 0)
            continue;
        if (so->extent >= 1 && !dec_u64(&q, end, &off))
            return;
        if (so->extent == 2) {
            if (q >= end || *q != '~' || (q++, !dec_u64(&q, end, &l)))
                return;
            len = l;
        }
        /* Reads and writes make the op's kind; a zeroing sub-op only
         * when there is nothing else. */
        if (op->kind == BLKIN_OSD_KIND_OTHER || so->kind != BLKIN_OSD_KIND_ZERO)
            op->kind = op->kind == BLKIN_OSD_KIND_WRITE ? op->kind : so->kind;
        if (off < *lo)
            *lo = off;
        if (len == BLKIN_OSD_TO_END || off > UINT64_MAX - len)
            *hi = BLKIN_OSD_TO_END;
        else if (off + len > *hi)
            *hi = off + len;
        return;
    }
}

int blkin_optracker_parse_description(const char *desc, size_t len,
                                      blkin_osd_op *op)
{
    static const char pfx[] = "osd_op(client.";
    const char *p = desc, *end = desc + len, *obj, *obj_end, *ops, *q;
    uint64_t lo = UINT64_MAX, hi = 0;
    int depth;

    if (len < sizeof(pfx) - 1 || memcmp(desc, pfx, sizeof(pfx) - 1) != 0)
        return 0;
    p += sizeof(pfx) - 1;
    /* client.GID.INC:TID */
    if (!dec_u64(&p, end, &op->gid) || p >= end || *p++ != '.' ||
        !dec_u64(&p, end, &op->inc) || p >= end || *p++ != ':' ||
        !dec_u64(&p, end, &op->tid) || p >= end || *p++ != ' ')
        return -EBADMSG;
    /* the PG, then the object */
    q = memchr(p, ' ', (size_t)(end - p));
    if (!q)
        return -EBADMSG;
    obj = q + 1;
    obj_end = memchr(obj, ' ', (size_t)(end - obj));
    if (!obj_end || !parse_object(obj, obj_end, op))
        return -EBADMSG;
    /* [SUBOP,SUBOP,...]: split at ',' outside inner brackets */
    ops = obj_end + 1;
    if (ops >= end || *ops != '[')
        return -EBADMSG;
    op->kind = BLKIN_OSD_KIND_OTHER;
    depth = 0;
    q = ops + 1;
    for (p = q; p < end; p++) {
        if (*p == '[') {
            depth++;
        } else if (*p == ']' && depth > 0) {
            depth--;
        } else if ((*p == ',' || *p == ']') && depth == 0) {
            fold_subop(q, p, op, &lo, &hi);
            q = p + 1;
            if (*p == ']')
                break;
        }
    }
    if (p >= end)
        return -EBADMSG; /* the sub-op list never closed */
    if (op->kind == BLKIN_OSD_KIND_OTHER || lo == UINT64_MAX) {
        op->offset = op->length = 0;
    } else {
        op->offset = lo;
        op->length = hi == BLKIN_OSD_TO_END ? BLKIN_OSD_TO_END : hi - lo;
    }
    return 1;
}

/* ---- the tracker's answer ---------------------------------------------- */

static int stamp_of(const char *name)
{
    static const struct {
        const char *name;
        int stamp;
    } names[] = {
        {"initiated", BLKIN_OSD_INITIATED}, {"queued_for_pg", BLKIN_OSD_QUEUED},
        {"reached_pg", BLKIN_OSD_REACHED},  {"started", BLKIN_OSD_STARTED},
        {"op_commit", BLKIN_OSD_COMMIT},    {"commit_sent", BLKIN_OSD_SENT},
        {"done", BLKIN_OSD_DONE},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(names[i].name, name))
            return names[i].stamp;
    return -1;
}

/* One {"event": .., "time": ..} of the events array. */
static int event(Cur *c, blkin_osd_op *op)
{
    char key[32], name[64], when[64];
    bool first = true;
    int r, st;
    size_t wlen = 0;
    int64_t ns;

    name[0] = when[0] = '\0';
    while ((r = next_member(c, &first, key, sizeof(key))) > 0) {
        if (!strcmp(key, "event")) {
            if (string(c, name, sizeof(name), NULL) < 0)
                return -EBADMSG;
        } else if (!strcmp(key, "time")) {
            if (string(c, when, sizeof(when), &wlen) < 0)
                return -EBADMSG;
        } else if (skip_value(c) < 0) {
            return -EBADMSG;
        }
    }
    if (r < 0)
        return r;
    st = stamp_of(name);
    if (st < 0 || op->stamp[st] || wlen >= sizeof(when))
        return 0; /* first of each kept (reached_pg recurs) */
    if (blkin_osd_parse_time(when, wlen, &ns) == 0)
        op->stamp[st] = ns;
    return 0;
}

static int type_data(Cur *c, blkin_osd_op *op)
{
    char key[32];
    bool first = true, efirst;
    int r, e;

    while ((r = next_member(c, &first, key, sizeof(key))) > 0) {
        if (strcmp(key, "events") != 0) {
            if (skip_value(c) < 0)
                return -EBADMSG;
            continue;
        }
        efirst = true;
        if (++c->depth > BLKIN_OPTRACKER_MAX_DEPTH)
            return fail(c, "nested too deep");
        while ((e = next_element(c, &efirst)) > 0)
            if (event(c, op) < 0)
                return -EBADMSG;
        c->depth--;
        if (e < 0)
            return e;
    }
    return r;
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The op's key: its description (which begins with its reqid; an OSD
 * builds it once per op) and when it was initiated, both as written, so
 * that an op seen before is known without decoding either. */
static uint64_t op_key(const char *desc, size_t dlen, const char *when,
                       size_t wlen)
{
    uint64_t h = 14695981039346656037ULL;
    const char *sp = memchr(desc, ' ', dlen);

    /* "osd_op(client.G.I:T": the reqid is enough, with the time. */
    if (sp)
        dlen = (size_t)(sp - desc);

    h = fnv(h, desc, dlen);
    h = fnv(h, "\0", 1);
    return fnv(h, when, wlen);
}

/* One element of "ops". */
static int one_op(Cur *c, uint32_t osd, const blkin_optracker_cb *cb,
                  blkin_optracker_result *res, char *desc)
{
    char key[32], when[64];
    bool first = true, client = false, have_desc = false, have_when = false;
    bool decided = false, skip = false;
    size_t dlen = 0, wlen = 0;
    int64_t initiated = 0;
    uint64_t k = 0;
    blkin_osd_op op;
    int r, d;

    memset(&op, 0, sizeof(op));
    op.osd = osd;
    res->ops++;
    if (++c->depth > BLKIN_OPTRACKER_MAX_DEPTH)
        return fail(c, "nested too deep");
    while ((r = next_member(c, &first, key, sizeof(key))) > 0) {
        if (!strcmp(key, "description")) {
            if (string(c, desc, BLKIN_OPTRACKER_DESC_MAX, &dlen) < 0)
                return -EBADMSG;
            have_desc = true;
            client = !strncmp(desc, "osd_op(client.", 14);
        } else if (!strcmp(key, "initiated_at")) {
            if (string(c, when, sizeof(when), &wlen) < 0)
                return -EBADMSG;
            have_when = true;
        } else if (!strcmp(key, "type_data") && !skip &&
                   (!have_desc || client)) {
            if (type_data(c, &op) < 0)
                return -EBADMSG;
        } else if (skip_value(c) < 0) {
            return -EBADMSG;
        }
        /* Both known (Ceph writes them first): seen before? Then the rest
         * is skipped, and nothing of it decoded. */
        if (have_desc && have_when && !decided) {
            decided = true;
            k = op_key(desc, MIN_SZ(dlen, BLKIN_OPTRACKER_DESC_MAX - 1), when,
                       MIN_SZ(wlen, sizeof(when) - 1));
            skip = client && cb && cb->seen && cb->seen(cb->opaque, k);
        }
    }
    if (r < 0)
        return r;
    c->depth--;
    if (!client)
        return 0;
    res->client_ops++;
    if (skip)
        return 0;
    d = dlen < BLKIN_OPTRACKER_DESC_MAX
            ? blkin_optracker_parse_description(desc, dlen, &op)
            : -EBADMSG;
    if (have_when && wlen < sizeof(when) &&
        blkin_osd_parse_time(when, wlen, &initiated) < 0)
        initiated = 0;
    if (d <= 0 || !initiated || !decided) {
        res->unreadable++;
        return 0;
    }
    if (!op.stamp[BLKIN_OSD_INITIATED])
        op.stamp[BLKIN_OSD_INITIATED] = initiated;
    res->new_ops++;
    if (cb && cb->op)
        cb->op(cb->opaque, &op, k);
    return 0;
}

int blkin_optracker_parse(const char *json, size_t len, uint32_t osd,
                          const blkin_optracker_cb *cb,
                          blkin_optracker_result *res)
{
    Cur c = {.s = json, .p = json, .end = json + len};
    char key[32], desc[BLKIN_OPTRACKER_DESC_MAX];
    bool first = true, afirst, have_ops = false;
    int r, e;

    memset(res, 0, sizeof(*res));
    res->history_size = -1;
    res->history_duration = -1;
    while ((r = next_member(&c, &first, key, sizeof(key))) > 0) {
        /* "Ops" in dump_historic_slow_ops. */
        if (!strcmp(key, "ops") || !strcmp(key, "Ops")) {
            have_ops = true;
            afirst = true;
            c.depth++;
            while ((e = next_element(&c, &afirst)) > 0)
                if (one_op(&c, osd, cb, res, desc) < 0)
                    goto err;
            c.depth--;
            if (e < 0)
                goto err;
        } else if (!strcmp(key, "size") || !strcmp(key, "num_ops") ||
                   !strcmp(key, "num to keep")) {
            if (number(&c, &res->history_size) < 0)
                goto err;
        } else if (!strcmp(key, "duration")) {
            if (number(&c, &res->history_duration) < 0)
                goto err;
        } else if (skip_value(&c) < 0) {
            goto err;
        }
    }
    if (r < 0)
        goto err;
    ws(&c);
    if (c.p != c.end) {
        /* The admin socket ends its answers with a newline at most. */
        fail(&c, "data after the answer");
        goto err;
    }
    if (!have_ops) {
        fail(&c, "no \"ops\" in the answer");
        goto err;
    }
    return (int)(res->new_ops > INT32_MAX ? INT32_MAX : res->new_ops);
err:
    res->error_offset = (size_t)(c.p - json);
    res->error = c.error ? c.error : "malformed";
    return -EBADMSG;
}
