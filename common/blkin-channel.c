/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "blkin-channel.h"

#include <errno.h>
#include <string.h>

void blkin_channel_default_limits(struct blkin_channel_limits *l)
{
    l->max_request_bytes = 1u << 30;
    l->max_latency_ns = 3600ull * 1000000000ull;
}

void blkin_channel_init(struct blkin_channel *ch,
                        const struct blkin_channel_limits *limits,
                        blkin_channel_cb cb, void *user)
{
    memset(ch, 0, sizeof(*ch));
    if (limits)
        ch->limits = *limits;
    else
        blkin_channel_default_limits(&ch->limits);
    ch->cb = cb;
    ch->user = user;
    ch->probe_next_id = 1;
    blkin_decoder_init(&ch->dec);
    blkin_clock_init(&ch->clock);
}

void blkin_channel_reconnected(struct blkin_channel *ch)
{
    blkin_decoder_init(&ch->dec);
    ch->conn_hello = false;
    /* Replies to probes sent on the old connection can no longer come. */
    memset(ch->probes, 0, sizeof(ch->probes));
}

void blkin_channel_peer_changed(struct blkin_channel *ch)
{
    ch->have_seq = false;
    blkin_clock_init(&ch->clock);
    memset(ch->probes, 0, sizeof(ch->probes));
}

static void emit(struct blkin_channel *ch, const struct blkin_event *ev)
{
    if (ch->cb)
        ch->cb(ch->user, ev);
}

static void invalid(struct blkin_channel *ch, uint8_t type, const char *why)
{
    struct blkin_event ev = {.type = BLKIN_EV_INVALID};

    ev.invalid.reason = why;
    ev.invalid.frame_type = type;
    emit(ch, &ev);
}

const struct blkin_device *blkin_channel_device(const struct blkin_channel *ch,
                                                uint32_t major, uint32_t minor)
{
    if (!ch->have_devmap)
        return NULL;
    for (uint32_t i = 0; i < ch->devmap.count; i++)
        if (ch->devmap.dev[i].major == major &&
            ch->devmap.dev[i].minor == minor)
            return &ch->devmap.dev[i];
    return NULL;
}

static void on_hello(struct blkin_channel *ch, const struct blkin_frame *f)
{
    struct blkin_hello h;
    struct blkin_event ev = {.type = BLKIN_EV_HELLO};

    if (blkin_decode_hello(f->payload, f->len, &h) < 0 ||
        h.proto_version != BLKIN_PROTO_VERSION) {
        ch->stats.malformed_frames++;
        invalid(ch, f->type, "malformed hello");
        return;
    }
    if (ch->have_hello && h.session_id != ch->hello.session_id) {
        /* The agent restarted: its sequence and device map start over. */
        ch->have_seq = false;
        ch->have_devmap = false;
    }
    ch->hello = h;
    ch->have_hello = true;
    ch->conn_hello = true;
    ev.hello = &ch->hello;
    emit(ch, &ev);
}

static void on_devmap(struct blkin_channel *ch, const struct blkin_frame *f)
{
    struct blkin_event ev = {.type = BLKIN_EV_DEVMAP};

    if (blkin_decode_devmap(f->payload, f->len, &ch->devmap) < 0) {
        ch->stats.malformed_frames++;
        invalid(ch, f->type, "malformed device map");
        return;
    }
    ch->have_devmap = true;
    ev.devmap = &ch->devmap;
    emit(ch, &ev);
}

static const char *check_request(const struct blkin_channel *ch,
                                 const struct blkin_request *r,
                                 const struct blkin_device *d)
{
    if (!d)
        return "request for a device not in the device map";
    if (r->sector > UINT64_MAX / 512)
        return "request sector beyond any device";
    if (r->bytes > ch->limits.max_request_bytes)
        return "request larger than the limit";
    if (r->issue_ns == 0 || r->complete_ns < r->issue_ns)
        return "request completes before it is issued";
    if (r->queue_ns && r->queue_ns > r->issue_ns)
        return "request issued before it is queued";
    if (r->complete_ns - (r->queue_ns ? r->queue_ns : r->issue_ns) >
        ch->limits.max_latency_ns)
        return "request latency beyond the limit";
    if (r->op != BLKIN_OP_FLUSH && r->op != BLKIN_OP_OTHER && d->size_bytes &&
        (r->sector > d->size_bytes / 512 ||
         r->bytes / 512 > d->size_bytes / 512 - r->sector))
        return "request beyond the end of the device";
    return NULL;
}

static void on_requests(struct blkin_channel *ch, const struct blkin_frame *f)
{
    struct blkin_requests rs;

    if (blkin_decode_requests(f->payload, f->len, &rs) < 0) {
        ch->stats.malformed_frames++;
        invalid(ch, f->type, "malformed request batch");
        return;
    }
    if (ch->have_seq && rs.first_seq != ch->next_seq) {
        struct blkin_event ev = {.type = BLKIN_EV_GAP};

        ev.gap.expected = ch->next_seq;
        ev.gap.got = rs.first_seq;
        ch->stats.gaps++;
        if (rs.first_seq > ch->next_seq)
            ch->stats.missing_records += rs.first_seq - ch->next_seq;
        emit(ch, &ev);
    }
    ch->have_seq = true;
    ch->next_seq = rs.first_seq + rs.count;

    for (uint32_t i = 0; i < rs.count; i++) {
        struct blkin_request r;
        struct blkin_event ev = {.type = BLKIN_EV_REQUEST};
        const char *why;

        if (blkin_requests_get(&rs, i, &r) < 0) {
            why = "malformed request record";
        } else {
            ev.request.dev = blkin_channel_device(ch, r.major, r.minor);
            why = check_request(ch, &r, ev.request.dev);
        }
        if (why) {
            ch->stats.invalid_records++;
            invalid(ch, f->type, why);
            continue;
        }
        ch->stats.records++;
        ev.request.req = &r;
        ev.request.seq = rs.first_seq + i;
        emit(ch, &ev);
    }
}

static void on_reply(struct blkin_channel *ch, const struct blkin_frame *f,
                     uint64_t now_ns)
{
    struct blkin_clock_reply r;
    struct blkin_clock_sample s;
    struct blkin_clock_estimate est;
    struct blkin_event ev = {.type = BLKIN_EV_CLOCK};
    int slot = -1;

    if (blkin_decode_clock_reply(f->payload, f->len, &r) < 0) {
        ch->stats.malformed_frames++;
        invalid(ch, f->type, "malformed clock reply");
        return;
    }
    for (int i = 0; i < BLKIN_PROBES_INFLIGHT; i++)
        if (ch->probes[i].id && ch->probes[i].id == r.probe_id)
            slot = i;
    if (slot < 0) {
        ch->stats.stray_replies++;
        invalid(ch, f->type, "clock reply to no probe in flight");
        return;
    }
    /* Our own record of the send time, not the echo, is what counts. */
    s.host_send_ns = ch->probes[slot].send_ns;
    s.guest_recv_ns = r.guest_recv_ns;
    s.guest_send_ns = r.guest_send_ns;
    s.host_recv_ns = now_ns;
    ch->probes[slot].id = 0;
    if (blkin_clock_add(&ch->clock, &s) < 0) {
        invalid(ch, f->type, "clock reply with impossible timestamps");
        return;
    }
    ch->stats.replies++;
    blkin_clock_get(&ch->clock, &est);
    ev.clock.reply = &r;
    ev.clock.host_recv_ns = now_ns;
    ev.clock.est = &est;
    emit(ch, &ev);
}

static void on_drops(struct blkin_channel *ch, const struct blkin_frame *f)
{
    struct blkin_drops d;
    struct blkin_event ev = {.type = BLKIN_EV_DROPS};

    if (blkin_decode_drops(f->payload, f->len, &d) < 0) {
        ch->stats.malformed_frames++;
        invalid(ch, f->type, "malformed drop report");
        return;
    }
    ev.drops = &d;
    emit(ch, &ev);
}

void blkin_channel_feed(struct blkin_channel *ch, const uint8_t *p, size_t n,
                        uint64_t now_ns)
{
    while (n > 0) {
        struct blkin_frame f;
        size_t used = 0;
        int r = blkin_decoder_feed(&ch->dec, p, n, &used, &f);

        p += used;
        n -= used;
        if (r <= 0)
            continue;
        ch->stats.frames++;
        switch (f.type) {
        case BLKIN_FRAME_HELLO:
            on_hello(ch, &f);
            break;
        case BLKIN_FRAME_DEVMAP:
            on_devmap(ch, &f);
            break;
        case BLKIN_FRAME_REQUESTS:
            on_requests(ch, &f);
            break;
        case BLKIN_FRAME_CLOCK_REPLY:
            on_reply(ch, &f, now_ns);
            break;
        case BLKIN_FRAME_DROPS:
            on_drops(ch, &f);
            break;
        default:
            /* Newer agents may send more; skipping keeps us compatible. */
            ch->stats.unknown_frames++;
            break;
        }
    }
}

ssize_t blkin_channel_make_hello(struct blkin_channel *ch, uint8_t *buf,
                                 size_t cap, uint64_t now_ns)
{
    struct blkin_hello h = {
        .proto_version = BLKIN_PROTO_VERSION,
        .max_frame = BLKIN_FRAME_MAX,
        .mono_ns = now_ns,
        .software = "blkin-host",
    };

    return blkin_encode_hello(buf, cap, &h);
}

ssize_t blkin_channel_make_probe(struct blkin_channel *ch, uint8_t *buf,
                                 size_t cap, uint64_t now_ns)
{
    struct blkin_clock_probe pr = {.probe_id = ch->probe_next_id,
                                   .host_send_ns = now_ns};
    unsigned slot = (unsigned)(pr.probe_id % BLKIN_PROBES_INFLIGHT);
    ssize_t r = blkin_encode_clock_probe(buf, cap, &pr);

    if (r < 0)
        return r;
    /* The oldest probe in this slot is given up on: it is long overdue. */
    ch->probes[slot].id = pr.probe_id;
    ch->probes[slot].send_ns = now_ns;
    ch->probe_next_id++;
    ch->stats.probes_sent++;
    return r;
}
