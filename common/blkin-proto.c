/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Wire protocol v1. Byte layouts are spelled out here with explicit offsets
 * and little-endian helpers, never by casting structs onto the buffer, so
 * padding, alignment and host byte order cannot leak onto the wire.
 */
#include "blkin-proto.h"

#include <errno.h>
#include <string.h>

/*
 * Little-endian stores and loads. On a little-endian machine they are one
 * unaligned move each (the byte-by-byte form costs ~10x under emulation);
 * elsewhere the shifts spell out the wire order.
 */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define DEFINE_LE(bits)                                                        \
    static inline void put##bits(uint8_t *p, uint##bits##_t v)                 \
    {                                                                          \
        memcpy(p, &v, sizeof(v));                                              \
    }                                                                          \
    static inline uint##bits##_t get##bits(const uint8_t *p)                   \
    {                                                                          \
        uint##bits##_t v;                                                      \
        memcpy(&v, p, sizeof(v));                                              \
        return v;                                                              \
    }
#else
#define DEFINE_LE(bits)                                                        \
    static inline void put##bits(uint8_t *p, uint##bits##_t v)                 \
    {                                                                          \
        for (unsigned i = 0; i < sizeof(v); i++)                               \
            p[i] = (uint8_t)(v >> (8 * i));                                    \
    }                                                                          \
    static inline uint##bits##_t get##bits(const uint8_t *p)                   \
    {                                                                          \
        uint##bits##_t v = 0;                                                  \
        for (unsigned i = 0; i < sizeof(v); i++)                               \
            v |= (uint##bits##_t)p[i] << (8 * i);                              \
        return v;                                                              \
    }
#endif
DEFINE_LE(16)
DEFINE_LE(32)
DEFINE_LE(64)

/* ---- encoder ----------------------------------------------------------- */

static void put_header(uint8_t *buf, uint8_t type, uint32_t len)
{
    put32(buf, BLKIN_PROTO_MAGIC);
    buf[4] = BLKIN_PROTO_VERSION;
    buf[5] = type;
    put16(buf + 6, 0);
    put32(buf + 8, len);
}

ssize_t blkin_encode_raw(uint8_t *buf, size_t cap, uint8_t type,
                         const void *payload, size_t len)
{
    if (len > BLKIN_PAYLOAD_MAX)
        return -EINVAL;
    if (cap < BLKIN_FRAME_HDR_SIZE + len)
        return -ENOSPC;
    put_header(buf, type, (uint32_t)len);
    if (len)
        memcpy(buf + BLKIN_FRAME_HDR_SIZE, payload, len);
    return (ssize_t)(BLKIN_FRAME_HDR_SIZE + len);
}

/* Length of a string field, or -EINVAL if it does not fit max-1 bytes. */
static ssize_t field_len(const char *s, size_t max)
{
    size_t n = strnlen(s, max);

    return n >= max ? -EINVAL : (ssize_t)n;
}

#define HELLO_FIXED 36u

ssize_t blkin_encode_hello(uint8_t *buf, size_t cap,
                           const struct blkin_hello *h)
{
    ssize_t sl = field_len(h->software, BLKIN_NAME_MAX);
    size_t len;
    uint8_t *p;

    if (sl < 0)
        return sl;
    len = HELLO_FIXED + (size_t)sl;
    if (cap < BLKIN_FRAME_HDR_SIZE + len)
        return -ENOSPC;
    put_header(buf, BLKIN_FRAME_HELLO, (uint32_t)len);
    p = buf + BLKIN_FRAME_HDR_SIZE;
    put32(p + 0, h->proto_version);
    put32(p + 4, h->features);
    put32(p + 8, h->ncpus);
    put32(p + 12, h->max_frame);
    put64(p + 16, h->session_id);
    put64(p + 24, h->mono_ns);
    put16(p + 32, (uint16_t)sl);
    put16(p + 34, 0);
    memcpy(p + 36, h->software, (size_t)sl);
    return (ssize_t)(BLKIN_FRAME_HDR_SIZE + len);
}

#define DEVMAP_FIXED 8u
#define DEVICE_FIXED 24u

ssize_t blkin_encode_devmap(uint8_t *buf, size_t cap,
                            const struct blkin_devmap *m)
{
    size_t len = DEVMAP_FIXED;
    uint8_t *p;

    if (m->count > BLKIN_DEVICES_MAX)
        return -EINVAL;
    for (uint32_t i = 0; i < m->count; i++) {
        ssize_t nl = field_len(m->dev[i].name, BLKIN_NAME_MAX);
        ssize_t sl = field_len(m->dev[i].serial, BLKIN_SERIAL_MAX);

        if (nl <= 0 || sl < 0)
            return -EINVAL;
        len += DEVICE_FIXED + (size_t)nl + (size_t)sl;
    }
    if (len > BLKIN_PAYLOAD_MAX)
        return -EINVAL;
    if (cap < BLKIN_FRAME_HDR_SIZE + len)
        return -ENOSPC;
    put_header(buf, BLKIN_FRAME_DEVMAP, (uint32_t)len);
    p = buf + BLKIN_FRAME_HDR_SIZE;
    put32(p, m->generation);
    put32(p + 4, m->count);
    p += DEVMAP_FIXED;
    for (uint32_t i = 0; i < m->count; i++) {
        const struct blkin_device *d = &m->dev[i];
        size_t nl = strlen(d->name), sl = strlen(d->serial);

        put32(p, d->major);
        put32(p + 4, d->minor);
        put64(p + 8, d->size_bytes);
        put32(p + 16, d->logical_block_size);
        p[20] = (uint8_t)nl;
        p[21] = (uint8_t)sl;
        put16(p + 22, 0);
        memcpy(p + DEVICE_FIXED, d->name, nl);
        memcpy(p + DEVICE_FIXED + nl, d->serial, sl);
        p += DEVICE_FIXED + nl + sl;
    }
    return (ssize_t)(BLKIN_FRAME_HDR_SIZE + len);
}

ssize_t blkin_encode_requests(uint8_t *buf, size_t cap, uint64_t first_seq,
                              const struct blkin_request *r, size_t n)
{
    uint8_t *p;

    if (n > BLKIN_REQUESTS_PER_FRAME_MAX)
        return -EINVAL;
    if (cap < blkin_requests_frame_size(n))
        return -ENOSPC;
    put_header(buf, BLKIN_FRAME_REQUESTS,
               (uint32_t)(blkin_requests_frame_size(n) - BLKIN_FRAME_HDR_SIZE));
    p = buf + BLKIN_FRAME_HDR_SIZE;
    put32(p, (uint32_t)n);
    put32(p + 4, BLKIN_REQ_RECORD_SIZE);
    put64(p + 8, first_seq);
    p += BLKIN_REQUESTS_HDR_SIZE;
    for (size_t i = 0; i < n; i++, p += BLKIN_REQ_RECORD_SIZE) {
        put32(p, r[i].major);
        put32(p + 4, r[i].minor);
        put64(p + 8, r[i].sector);
        put32(p + 16, r[i].bytes);
        p[20] = r[i].op;
        p[21] = r[i].flags;
        put16(p + 22, 0);
        put32(p + 24, (uint32_t)r[i].error);
        put32(p + 28, 0);
        put64(p + 32, r[i].queue_ns);
        put64(p + 40, r[i].issue_ns);
        put64(p + 48, r[i].complete_ns);
    }
    return (ssize_t)blkin_requests_frame_size(n);
}

#define PROBE_SIZE 16u

ssize_t blkin_encode_clock_probe(uint8_t *buf, size_t cap,
                                 const struct blkin_clock_probe *c)
{
    uint8_t pl[PROBE_SIZE];

    put64(pl, c->probe_id);
    put64(pl + 8, c->host_send_ns);
    return blkin_encode_raw(buf, cap, BLKIN_FRAME_CLOCK_PROBE, pl, sizeof(pl));
}

#define REPLY_SIZE 56u

ssize_t blkin_encode_clock_reply(uint8_t *buf, size_t cap,
                                 const struct blkin_clock_reply *c)
{
    uint8_t pl[REPLY_SIZE];

    put64(pl, c->probe_id);
    put64(pl + 8, c->host_send_ns);
    put64(pl + 16, c->guest_recv_ns);
    put64(pl + 24, c->guest_send_ns);
    put32(pl + 32, c->flags);
    put32(pl + 36, 0);
    put64(pl + 40, (uint64_t)c->ptp_ns);
    put64(pl + 48, c->ptp_mono_ns);
    return blkin_encode_raw(buf, cap, BLKIN_FRAME_CLOCK_REPLY, pl, sizeof(pl));
}

#define DROPS_SIZE 40u

ssize_t blkin_encode_drops(uint8_t *buf, size_t cap,
                           const struct blkin_drops *d)
{
    uint8_t pl[DROPS_SIZE];

    put64(pl, d->dropped_records);
    put64(pl + 8, d->lost_events);
    put64(pl + 16, d->unmatched);
    put64(pl + 24, d->evicted);
    put64(pl + 32, d->next_seq);
    return blkin_encode_raw(buf, cap, BLKIN_FRAME_DROPS, pl, sizeof(pl));
}

/* ---- decoder ----------------------------------------------------------- */

void blkin_decoder_init(struct blkin_decoder *d)
{
    d->have = 0;
    d->need = 0;
    memset(&d->stats, 0, sizeof(d->stats));
}

static bool header_ok(const uint8_t *h)
{
    return get32(h) == BLKIN_PROTO_MAGIC && h[4] == BLKIN_PROTO_VERSION &&
           get32(h + 8) <= BLKIN_PAYLOAD_MAX;
}

/*
 * Drops the first byte of a rejected header and everything up to the next
 * byte that could start a magic, so garbage costs linear time.
 */
static void resync(struct blkin_decoder *d)
{
    uint32_t skip = 1;

    while (skip < d->have && d->buf[skip] != (BLKIN_PROTO_MAGIC & 0xff))
        skip++;
    memmove(d->buf, d->buf + skip, d->have - skip);
    d->have -= skip;
    d->stats.skipped_bytes += skip;
}

int blkin_decoder_feed(struct blkin_decoder *d, const uint8_t *p, size_t n,
                       size_t *consumed, struct blkin_frame *f)
{
    size_t used = 0;

    for (;;) {
        uint32_t want = d->need ? d->need : BLKIN_FRAME_HDR_SIZE;

        if (d->have < want) {
            size_t take = want - d->have;

            if (take > n - used)
                take = n - used;
            memcpy(d->buf + d->have, p + used, take);
            d->have += (uint32_t)take;
            used += take;
            d->stats.bytes += take;
            if (d->have < want) {
                *consumed = used;
                return 0;
            }
        }
        if (!d->need) {
            if (!header_ok(d->buf)) {
                d->stats.bad_headers++;
                resync(d);
                continue;
            }
            d->need = BLKIN_FRAME_HDR_SIZE + get32(d->buf + 8);
            if (d->have < d->need)
                continue;
        }
        /* A whole frame: hand it out, restart on the next call. */
        f->type = d->buf[5];
        f->flags = get16(d->buf + 6);
        f->len = d->need - BLKIN_FRAME_HDR_SIZE;
        f->payload = d->buf + BLKIN_FRAME_HDR_SIZE;
        d->have = 0;
        d->need = 0;
        d->stats.frames++;
        *consumed = used;
        return 1;
    }
}

/* Copies a length-counted string field, refusing NULs and control bytes. */
static int get_str(char *dst, size_t dstsz, const uint8_t *src, size_t len,
                   bool allow_space)
{
    if (len >= dstsz)
        return -EBADMSG;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = src[i];

        if (c > 0x7e || c < 0x20 || (c == ' ' && !allow_space))
            return -EBADMSG;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

int blkin_decode_hello(const uint8_t *p, size_t n, struct blkin_hello *h)
{
    size_t sl;

    if (n < HELLO_FIXED)
        return -EBADMSG;
    h->proto_version = get32(p);
    h->features = get32(p + 4);
    h->ncpus = get32(p + 8);
    h->max_frame = get32(p + 12);
    h->session_id = get64(p + 16);
    h->mono_ns = get64(p + 24);
    sl = get16(p + 32);
    if (sl > n - HELLO_FIXED)
        return -EBADMSG;
    return get_str(h->software, sizeof(h->software), p + HELLO_FIXED, sl, true);
}

/* One device entry at @off: its fields into @d, the offset after it. */
static int decode_device(const uint8_t *p, size_t n, size_t *off,
                         struct blkin_device *d)
{
    const uint8_t *e = p + *off;
    size_t nl, sl;

    if (n - *off < DEVICE_FIXED)
        return -EBADMSG;
    nl = e[20];
    sl = e[21];
    if (nl == 0 || n - *off - DEVICE_FIXED < nl + sl)
        return -EBADMSG;
    d->major = get32(e);
    d->minor = get32(e + 4);
    d->size_bytes = get64(e + 8);
    d->logical_block_size = get32(e + 16);
    if (get_str(d->name, sizeof(d->name), e + DEVICE_FIXED, nl, false) < 0 ||
        get_str(d->serial, sizeof(d->serial), e + DEVICE_FIXED + nl, sl, true) <
            0)
        return -EBADMSG;
    *off += DEVICE_FIXED + nl + sl;
    return 0;
}

/* Whether the entries at @a and @b name the same device twice. */
static bool same_device(const uint8_t *p, size_t a, size_t b)
{
    size_t nl = p[a + 20];

    if (get32(p + a) == get32(p + b) && get32(p + a + 4) == get32(p + b + 4))
        return true;
    return nl == p[b + 20] &&
           !memcmp(p + a + DEVICE_FIXED, p + b + DEVICE_FIXED, nl);
}

/*
 * Two passes: the whole map is checked before any of @m is written, so a
 * bad map never replaces a good one and callers keep no second copy (a map
 * is ~30 KiB).
 */
int blkin_decode_devmap(const uint8_t *p, size_t n, struct blkin_devmap *m)
{
    uint32_t at[BLKIN_DEVICES_MAX];
    struct blkin_device d;
    uint32_t count;
    size_t off = DEVMAP_FIXED;

    if (n < DEVMAP_FIXED)
        return -EBADMSG;
    count = get32(p + 4);
    if (count > BLKIN_DEVICES_MAX)
        return -EBADMSG;
    for (uint32_t i = 0; i < count; i++) {
        at[i] = (uint32_t)off;
        if (decode_device(p, n, &off, &d) < 0)
            return -EBADMSG;
        for (uint32_t j = 0; j < i; j++)
            if (same_device(p, at[j], at[i]))
                return -EBADMSG;
    }
    if (off != n)
        return -EBADMSG;

    m->generation = get32(p);
    m->count = count;
    off = DEVMAP_FIXED;
    for (uint32_t i = 0; i < count; i++)
        decode_device(p, n, &off, &m->dev[i]);
    return 0;
}

/* Records may grow in later versions; beyond this a size is nonsense. */
#define RECORD_SIZE_MAX 1024u

int blkin_decode_requests(const uint8_t *p, size_t n, struct blkin_requests *r)
{
    if (n < BLKIN_REQUESTS_HDR_SIZE)
        return -EBADMSG;
    r->count = get32(p);
    r->record_size = get32(p + 4);
    r->first_seq = get64(p + 8);
    r->records = p + BLKIN_REQUESTS_HDR_SIZE;
    if (r->record_size < BLKIN_REQ_RECORD_SIZE ||
        r->record_size > RECORD_SIZE_MAX)
        return -EBADMSG;
    /* 64-bit product: count and size are both bounded 32-bit values. */
    if ((uint64_t)r->count * r->record_size != n - BLKIN_REQUESTS_HDR_SIZE)
        return -EBADMSG;
    return 0;
}

int blkin_requests_get(const struct blkin_requests *r, uint32_t i,
                       struct blkin_request *o)
{
    const uint8_t *p;

    if (i >= r->count)
        return -EINVAL;
    p = r->records + (size_t)i * r->record_size;
    o->major = get32(p);
    o->minor = get32(p + 4);
    o->sector = get64(p + 8);
    o->bytes = get32(p + 16);
    o->op = p[20];
    o->flags = p[21];
    o->error = (int32_t)get32(p + 24);
    o->queue_ns = get64(p + 32);
    o->issue_ns = get64(p + 40);
    o->complete_ns = get64(p + 48);
    if (o->op > BLKIN_OP__MAX || (o->flags & ~BLKIN_REQ__ALL) || o->error > 0 ||
        o->error < -4095)
        return -EBADMSG;
    return 0;
}

int blkin_decode_clock_probe(const uint8_t *p, size_t n,
                             struct blkin_clock_probe *c)
{
    if (n < PROBE_SIZE)
        return -EBADMSG;
    c->probe_id = get64(p);
    c->host_send_ns = get64(p + 8);
    return 0;
}

int blkin_decode_clock_reply(const uint8_t *p, size_t n,
                             struct blkin_clock_reply *c)
{
    if (n < REPLY_SIZE)
        return -EBADMSG;
    c->probe_id = get64(p);
    c->host_send_ns = get64(p + 8);
    c->guest_recv_ns = get64(p + 16);
    c->guest_send_ns = get64(p + 24);
    c->flags = get32(p + 32);
    c->ptp_ns = (int64_t)get64(p + 40);
    c->ptp_mono_ns = get64(p + 48);
    return 0;
}

int blkin_decode_drops(const uint8_t *p, size_t n, struct blkin_drops *d)
{
    if (n < DROPS_SIZE)
        return -EBADMSG;
    d->dropped_records = get64(p);
    d->lost_events = get64(p + 8);
    d->unmatched = get64(p + 16);
    d->evicted = get64(p + 24);
    d->next_seq = get64(p + 32);
    return 0;
}

const char *blkin_frame_type_name(unsigned type)
{
    switch (type) {
    case BLKIN_FRAME_HELLO:
        return "hello";
    case BLKIN_FRAME_DEVMAP:
        return "devmap";
    case BLKIN_FRAME_REQUESTS:
        return "requests";
    case BLKIN_FRAME_CLOCK_PROBE:
        return "clock-probe";
    case BLKIN_FRAME_CLOCK_REPLY:
        return "clock-reply";
    case BLKIN_FRAME_DROPS:
        return "drops";
    default:
        return "unknown";
    }
}
