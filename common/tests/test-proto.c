/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Wire protocol v1: round trips, and a decoder that survives hostile input
 * (truncated, oversized, corrupted, unknown, random) without crashing,
 * reading out of bounds (the test is built with ASan/UBSan) or growing.
 */
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "blkin-channel.h"
#include "blkin-proto.h"

static uint8_t frame[BLKIN_FRAME_MAX];

static struct blkin_devmap *sample_devmap(void)
{
    static struct blkin_devmap m;

    memset(&m, 0, sizeof(m));
    m.generation = 7;
    m.count = 2;
    m.dev[0] = (struct blkin_device){.major = 254,
                                     .minor = 0,
                                     .size_bytes = 64 << 20,
                                     .logical_block_size = 512,
                                     .name = "vda",
                                     .serial = "blkin-a"};
    m.dev[1] = (struct blkin_device){.major = 254,
                                     .minor = 16,
                                     .size_bytes = 32 << 20,
                                     .logical_block_size = 4096,
                                     .name = "vdb",
                                     .serial = "disk two"};
    return &m;
}

static struct blkin_request sample_req(unsigned i)
{
    return (struct blkin_request){.major = 254,
                                  .minor = (i & 1) ? 16 : 0,
                                  .sector = 8 * i,
                                  .bytes = 4096,
                                  .op = (uint8_t)(i % 2),
                                  .flags = BLKIN_REQ_SYNC,
                                  .error = i == 3 ? -EIO : 0,
                                  .queue_ns = 1000 + i,
                                  .issue_ns = 2000 + i,
                                  .complete_ns = 900000 + i};
}

static void assert_req_eq(const struct blkin_request *a,
                          const struct blkin_request *b)
{
    g_assert_cmpuint(a->major, ==, b->major);
    g_assert_cmpuint(a->minor, ==, b->minor);
    g_assert_cmpuint(a->sector, ==, b->sector);
    g_assert_cmpuint(a->bytes, ==, b->bytes);
    g_assert_cmpuint(a->op, ==, b->op);
    g_assert_cmpuint(a->flags, ==, b->flags);
    g_assert_cmpint(a->error, ==, b->error);
    g_assert_cmpuint(a->queue_ns, ==, b->queue_ns);
    g_assert_cmpuint(a->issue_ns, ==, b->issue_ns);
    g_assert_cmpuint(a->complete_ns, ==, b->complete_ns);
}

/* Feeds a whole buffer, collecting frames of the given type into out. */
static unsigned feed_all(struct blkin_decoder *d, const uint8_t *p, size_t n,
                         size_t chunk, struct blkin_frame *last)
{
    unsigned frames = 0;

    while (n > 0) {
        size_t c = n < chunk ? n : chunk, off = 0;

        while (off < c) {
            size_t used = 0;
            struct blkin_frame f;

            if (blkin_decoder_feed(d, p + off, c - off, &used, &f)) {
                frames++;
                if (last)
                    *last = f;
            }
            g_assert_cmpuint(used, <=, c - off);
            off += used;
            if (!used && off < c)
                g_assert_not_reached();
        }
        p += c;
        n -= c;
    }
    return frames;
}

static void test_roundtrip(void)
{
    struct blkin_decoder *d = g_new0(struct blkin_decoder, 1);
    struct blkin_frame f;
    ssize_t n;

    /* hello */
    struct blkin_hello h = {.proto_version = 1,
                            .features = 3,
                            .ncpus = 2,
                            .max_frame = BLKIN_FRAME_MAX,
                            .session_id = 0x1122334455667788ull,
                            .mono_ns = 42,
                            .software = "blkin-guest-agent"};
    struct blkin_hello h2;
    n = blkin_encode_hello(frame, sizeof(frame), &h);
    g_assert_cmpint(n, >, 0);
    /* Explicit little-endian: the magic's first byte is 'B'. */
    g_assert_cmpint(frame[0], ==, 'B');
    g_assert_cmpint(frame[3], ==, 'N');
    blkin_decoder_init(d);
    g_assert_cmpuint(feed_all(d, frame, (size_t)n, 1, &f), ==, 1);
    g_assert_cmpint(f.type, ==, BLKIN_FRAME_HELLO);
    g_assert_cmpint(blkin_decode_hello(f.payload, f.len, &h2), ==, 0);
    g_assert_cmpuint(h2.session_id, ==, h.session_id);
    g_assert_cmpstr(h2.software, ==, h.software);

    /* devmap */
    struct blkin_devmap *m = sample_devmap();
    struct blkin_devmap *m2 = g_new0(struct blkin_devmap, 1);
    n = blkin_encode_devmap(frame, sizeof(frame), m);
    g_assert_cmpint(n, >, 0);
    g_assert_cmpuint(feed_all(d, frame, (size_t)n, 7, &f), ==, 1);
    g_assert_cmpint(blkin_decode_devmap(f.payload, f.len, m2), ==, 0);
    g_assert_cmpuint(m2->count, ==, 2);
    g_assert_cmpstr(m2->dev[1].serial, ==, "disk two");
    g_assert_cmpuint(m2->dev[1].minor, ==, 16);
    g_assert_cmpuint(m2->dev[0].size_bytes, ==, 64 << 20);

    /* requests, a full frame of them */
    size_t max = BLKIN_REQUESTS_PER_FRAME_MAX;
    struct blkin_request *rs = g_new0(struct blkin_request, max);
    for (size_t i = 0; i < max; i++)
        rs[i] = sample_req((unsigned)i);
    n = blkin_encode_requests(frame, sizeof(frame), 99, rs, max);
    g_assert_cmpint(n, ==, (ssize_t)blkin_requests_frame_size(max));
    g_assert_cmpint(n, <=, BLKIN_FRAME_MAX);
    g_assert_cmpint(blkin_encode_requests(frame, sizeof(frame), 0, rs, max + 1),
                    ==, -EINVAL);
    g_assert_cmpuint(feed_all(d, frame, (size_t)n, 4096, &f), ==, 1);
    struct blkin_requests batch;
    g_assert_cmpint(blkin_decode_requests(f.payload, f.len, &batch), ==, 0);
    g_assert_cmpuint(batch.count, ==, max);
    g_assert_cmpuint(batch.first_seq, ==, 99);
    for (uint32_t i = 0; i < batch.count; i++) {
        struct blkin_request r;
        g_assert_cmpint(blkin_requests_get(&batch, i, &r), ==, 0);
        assert_req_eq(&r, &rs[i]);
    }
    g_assert_cmpint(blkin_requests_get(&batch, batch.count, NULL), ==, -EINVAL);

    /* clock probe and reply, drops */
    struct blkin_clock_reply cr = {.probe_id = 5,
                                   .host_send_ns = 1,
                                   .guest_recv_ns = 2,
                                   .guest_send_ns = 3,
                                   .flags = BLKIN_CLOCK_PTP_VALID,
                                   .ptp_ns = -7,
                                   .ptp_mono_ns = 9},
                             cr2;
    n = blkin_encode_clock_reply(frame, sizeof(frame), &cr);
    g_assert_cmpuint(feed_all(d, frame, (size_t)n, 3, &f), ==, 1);
    g_assert_cmpint(blkin_decode_clock_reply(f.payload, f.len, &cr2), ==, 0);
    g_assert_cmpuint(cr2.probe_id, ==, 5);
    g_assert_cmpuint(cr2.guest_send_ns, ==, 3);
    g_assert_cmpuint(cr2.flags, ==, BLKIN_CLOCK_PTP_VALID);
    g_assert_cmpint(cr2.ptp_ns, ==, -7);
    g_assert_cmpuint(cr2.ptp_mono_ns, ==, 9);

    struct blkin_drops dr = {1, 2, 3, 4, 5}, dr2;
    n = blkin_encode_drops(frame, sizeof(frame), &dr);
    g_assert_cmpuint(feed_all(d, frame, (size_t)n, 100, &f), ==, 1);
    g_assert_cmpint(blkin_decode_drops(f.payload, f.len, &dr2), ==, 0);
    g_assert_cmpmem(&dr, sizeof(dr), &dr2, sizeof(dr2));

    struct blkin_clock_probe pr = {.probe_id = 77, .host_send_ns = 88}, pr2;
    n = blkin_encode_clock_probe(frame, sizeof(frame), &pr);
    g_assert_cmpuint(feed_all(d, frame, (size_t)n, 100, &f), ==, 1);
    g_assert_cmpint(blkin_decode_clock_probe(f.payload, f.len, &pr2), ==, 0);
    g_assert_cmpuint(pr2.probe_id, ==, 77);

    g_assert_cmpuint(d->stats.bad_headers, ==, 0);
    g_assert_cmpuint(d->stats.skipped_bytes, ==, 0);
    g_free(rs);
    g_free(m2);
    g_free(d);
}

static void test_encoder_limits(void)
{
    struct blkin_hello h = {.proto_version = 1};
    struct blkin_devmap *m = sample_devmap();

    /* Too small a buffer is refused, never overrun. */
    g_assert_cmpint(blkin_encode_hello(frame, 20, &h), ==, -ENOSPC);
    g_assert_cmpint(blkin_encode_devmap(frame, 30, m), ==, -ENOSPC);
    /* Unterminated or empty names are refused. */
    memset(m->dev[0].name, 'x', sizeof(m->dev[0].name));
    g_assert_cmpint(blkin_encode_devmap(frame, sizeof(frame), m), ==, -EINVAL);
    m->dev[0].name[0] = '\0';
    g_assert_cmpint(blkin_encode_devmap(frame, sizeof(frame), m), ==, -EINVAL);
    g_assert_cmpint(
        blkin_encode_raw(frame, sizeof(frame), 9, frame, BLKIN_PAYLOAD_MAX + 1),
        ==, -EINVAL);
}

static void test_truncated(void)
{
    struct blkin_decoder *d = g_new0(struct blkin_decoder, 1);
    struct blkin_devmap *m = sample_devmap();
    struct blkin_devmap *m2 = g_new0(struct blkin_devmap, 1);
    ssize_t n = blkin_encode_devmap(frame, sizeof(frame), m);

    /* Every strict prefix of a frame yields nothing and waits. */
    for (ssize_t k = 0; k < n; k++) {
        blkin_decoder_init(d);
        g_assert_cmpuint(feed_all(d, frame, (size_t)k, 5, NULL), ==, 0);
        g_assert_cmpuint(blkin_decoder_pending(d), ==, (size_t)k);
    }
    /* Every truncated payload is refused by its parser. */
    const uint8_t *pl = frame + BLKIN_FRAME_HDR_SIZE;
    size_t plen = (size_t)n - BLKIN_FRAME_HDR_SIZE;
    /* ... and leaves the map it would have replaced as it was. */
    *m2 = *m;
    m2->generation++;
    for (size_t k = 0; k < plen; k++) {
        g_assert_cmpint(blkin_decode_devmap(pl, k, m2), ==, -EBADMSG);
        g_assert_cmpuint(m2->generation, ==, m->generation + 1);
        g_assert_cmpmem(m2->dev, sizeof(m2->dev), m->dev, sizeof(m->dev));
    }

    struct blkin_request r = sample_req(1);
    struct blkin_requests b;
    n = blkin_encode_requests(frame, sizeof(frame), 0, &r, 1);
    plen = (size_t)n - BLKIN_FRAME_HDR_SIZE;
    for (size_t k = 0; k < plen; k++)
        g_assert_cmpint(blkin_decode_requests(pl, k, &b), ==, -EBADMSG);

    struct blkin_hello h = {.proto_version = 1, .software = "abc"}, h2;
    n = blkin_encode_hello(frame, sizeof(frame), &h);
    plen = (size_t)n - BLKIN_FRAME_HDR_SIZE;
    for (size_t k = 0; k < plen; k++)
        g_assert_cmpint(blkin_decode_hello(pl, k, &h2), ==, -EBADMSG);

    struct blkin_clock_reply cr;
    struct blkin_clock_probe cp;
    struct blkin_drops dr;
    g_assert_cmpint(blkin_decode_clock_reply(pl, 55, &cr), ==, -EBADMSG);
    g_assert_cmpint(blkin_decode_clock_probe(pl, 15, &cp), ==, -EBADMSG);
    g_assert_cmpint(blkin_decode_drops(pl, 39, &dr), ==, -EBADMSG);
    g_free(m2);
    g_free(d);
}

static void test_oversized_and_garbage(void)
{
    struct blkin_decoder *d = g_new0(struct blkin_decoder, 1);
    static uint8_t stream[3 * BLKIN_FRAME_MAX];
    size_t off = 0;
    struct blkin_frame f;
    struct blkin_clock_probe pr = {.probe_id = 1234};

    /* A header claiming 4 GiB, then one just past the limit. */
    memcpy(stream + off, "BLKN\x01\x03\0\0\xff\xff\xff\xff", 12);
    off += 12;
    memcpy(stream + off, "BLKN\x01\x03\0\0", 8);
    stream[off + 8] = (uint8_t)(BLKIN_PAYLOAD_MAX + 1);
    stream[off + 9] = (uint8_t)((BLKIN_PAYLOAD_MAX + 1) >> 8);
    stream[off + 10] = 0;
    stream[off + 11] = 0;
    off += 12;
    /* A wrong version, then plain noise that contains B's. */
    memcpy(stream + off, "BLKN\x02\x03\0\0\0\0\0\0", 12);
    off += 12;
    memcpy(stream + off, "xxBBBLKBLK", 10);
    off += 10;
    /* Finally a good frame. */
    off += (size_t)blkin_encode_clock_probe(stream + off, 64, &pr);

    blkin_decoder_init(d);
    g_assert_cmpuint(feed_all(d, stream, off, 1, &f), ==, 1);
    g_assert_cmpint(f.type, ==, BLKIN_FRAME_CLOCK_PROBE);
    g_assert_cmpuint(d->stats.bad_headers, >=, 3);
    g_assert_cmpuint(d->stats.skipped_bytes, ==, off - 28);

    blkin_decoder_init(d);
    g_assert_cmpuint(feed_all(d, stream, off, off, &f), ==, 1);
    g_assert_cmpint(f.type, ==, BLKIN_FRAME_CLOCK_PROBE);

    /* The largest allowed frame is accepted. */
    ssize_t n = blkin_encode_raw(stream, sizeof(stream), 200,
                                 stream + BLKIN_FRAME_MAX, BLKIN_PAYLOAD_MAX);
    g_assert_cmpint(n, ==, BLKIN_FRAME_MAX);
    blkin_decoder_init(d);
    g_assert_cmpuint(feed_all(d, stream, (size_t)n, 999, &f), ==, 1);
    g_assert_cmpuint(f.len, ==, BLKIN_PAYLOAD_MAX);
    g_assert_cmpint(f.type, ==, 200);
    g_free(d);
}

static void test_malformed_payloads(void)
{
    struct blkin_devmap *m = g_new0(struct blkin_devmap, 1);
    uint8_t p[256];
    struct blkin_requests b;

    /* Device count far beyond what the payload holds. */
    memset(p, 0, sizeof(p));
    p[4] = 0xff;
    p[5] = 0xff;
    p[6] = 0xff;
    p[7] = 0xff;
    g_assert_cmpint(blkin_decode_devmap(p, sizeof(p), m), ==, -EBADMSG);
    /* One device whose name holds a NUL and a control byte. */
    p[4] = 1;
    p[5] = p[6] = p[7] = 0;
    p[8 + 20] = 3;
    p[8 + 21] = 0;
    memcpy(p + 32, "v\0a", 3);
    g_assert_cmpint(blkin_decode_devmap(p, 35, m), ==, -EBADMSG);
    memcpy(p + 32, "v\na", 3);
    g_assert_cmpint(blkin_decode_devmap(p, 35, m), ==, -EBADMSG);
    memcpy(p + 32, "vda", 3);
    g_assert_cmpint(blkin_decode_devmap(p, 35, m), ==, 0);
    /* Trailing junk after the last device. */
    g_assert_cmpint(blkin_decode_devmap(p, 36, m), ==, -EBADMSG);
    /* Duplicate devices: the same one twice, the same name under another
     * major, the same major:minor under another name. A refused map
     * leaves the last good one in place. */
    memcpy(p + 35, p + 8, 27);
    p[4] = 2;
    g_assert_cmpint(blkin_decode_devmap(p, 62, m), ==, -EBADMSG);
    p[35] = 9;
    g_assert_cmpint(blkin_decode_devmap(p, 62, m), ==, -EBADMSG);
    g_assert_cmpuint(m->count, ==, 1);
    memcpy(p + 59, "vdb", 3);
    g_assert_cmpint(blkin_decode_devmap(p, 62, m), ==, 0);
    g_assert_cmpuint(m->count, ==, 2);
    g_assert_cmpuint(m->dev[1].major, ==, 9);
    g_assert_cmpstr(m->dev[1].name, ==, "vdb");
    p[35] = p[8];
    g_assert_cmpint(blkin_decode_devmap(p, 62, m), ==, -EBADMSG);
    g_assert_cmpuint(m->dev[1].major, ==, 9);

    /* Request batches: count*size overflow and mismatch, tiny records. */
    memset(p, 0, sizeof(p));
    p[0] = p[1] = p[2] = p[3] = 0xff;
    p[4] = 56;
    g_assert_cmpint(blkin_decode_requests(p, sizeof(p), &b), ==, -EBADMSG);
    p[0] = 1;
    p[1] = p[2] = p[3] = 0;
    p[4] = 8;
    g_assert_cmpint(blkin_decode_requests(p, 24, &b), ==, -EBADMSG);
    p[4] = 56;
    g_assert_cmpint(blkin_decode_requests(p, 72, &b), ==, 0);
    g_assert_cmpint(blkin_decode_requests(p, 73, &b), ==, -EBADMSG);
    /* A record with an unknown op, stray flags or a positive error. */
    struct blkin_request r;
    p[16 + 20] = 9;
    g_assert_cmpint(blkin_requests_get(&b, 0, &r), ==, -EBADMSG);
    p[16 + 20] = 0;
    p[16 + 21] = 0x80;
    g_assert_cmpint(blkin_requests_get(&b, 0, &r), ==, -EBADMSG);
    p[16 + 21] = 0;
    p[16 + 24] = 5;
    g_assert_cmpint(blkin_requests_get(&b, 0, &r), ==, -EBADMSG);
    p[16 + 24] = 0;
    g_assert_cmpint(blkin_requests_get(&b, 0, &r), ==, 0);

    /* A larger record size from a future version: extra bytes ignored. */
    memset(p, 0, sizeof(p));
    p[0] = 2;
    p[4] = 64;
    g_assert_cmpint(blkin_decode_requests(p, 16 + 128, &b), ==, 0);
    g_assert_cmpint(blkin_requests_get(&b, 1, &r), ==, 0);
    g_free(m);
}

/* ---- channel: unknown types skipped, bad records refused -------------- */

struct counts {
    unsigned ev[BLKIN_EV_INVALID + 1];
    uint64_t last_gap;
};

static void count_cb(void *user, const struct blkin_event *ev)
{
    struct counts *c = user;

    c->ev[ev->type]++;
    if (ev->type == BLKIN_EV_GAP)
        c->last_gap = ev->gap.got - ev->gap.expected;
}

static size_t put(uint8_t *buf, ssize_t n)
{
    g_assert_cmpint(n, >, 0);
    (void)buf;
    return (size_t)n;
}

static void test_channel(void)
{
    struct blkin_channel *ch = g_new0(struct blkin_channel, 1);
    static uint8_t s[4 * BLKIN_FRAME_MAX];
    size_t off = 0;
    struct counts c = {0};
    struct blkin_hello h = {
        .proto_version = 1, .session_id = 1, .software = "t"};
    struct blkin_request r[4] = {sample_req(0), sample_req(1), sample_req(2),
                                 sample_req(3)};

    blkin_channel_init(ch, NULL, count_cb, &c);
    off += put(s, blkin_encode_hello(s + off, sizeof(s) - off, &h));
    /* Unknown type 77 with a payload: skipped, the stream continues. */
    off += put(s, blkin_encode_raw(s + off, sizeof(s) - off, 77, "zzzz", 4));
    /* Requests before the device map: refused. */
    off += put(s, blkin_encode_requests(s + off, sizeof(s) - off, 0, r, 1));
    off +=
        put(s, blkin_encode_devmap(s + off, sizeof(s) - off, sample_devmap()));
    /* Good records; one beyond the device end; a time reversal. */
    r[2].sector = (64 << 20) / 512;
    r[3].complete_ns = r[3].issue_ns - 1;
    off += put(s, blkin_encode_requests(s + off, sizeof(s) - off, 1, r, 4));
    /* Sequence jumps by 10: a gap. */
    off += put(s, blkin_encode_requests(s + off, sizeof(s) - off, 15, r, 2));
    /* A flush (no end-of-device check) at a sector whose byte offset
     * would wrap: refused. */
    r[0].op = BLKIN_OP_FLUSH;
    r[0].sector = UINT64_MAX / 256;
    off += put(s, blkin_encode_requests(s + off, sizeof(s) - off, 17, r, 1));
    blkin_channel_feed(ch, s, off, 1000);

    g_assert_cmpuint(c.ev[BLKIN_EV_HELLO], ==, 1);
    g_assert_cmpuint(c.ev[BLKIN_EV_DEVMAP], ==, 1);
    g_assert_cmpuint(c.ev[BLKIN_EV_REQUEST], ==, 4);
    g_assert_cmpuint(c.ev[BLKIN_EV_INVALID], ==, 4);
    g_assert_cmpuint(c.ev[BLKIN_EV_GAP], ==, 1);
    g_assert_cmpuint(c.last_gap, ==, 10);
    g_assert_cmpuint(ch->stats.unknown_frames, ==, 1);

    /* A reply to a probe never sent is refused; a real one is used. */
    struct blkin_clock_reply rep = {
        .probe_id = 999, .guest_recv_ns = 5000, .guest_send_ns = 5100};
    off = put(s, blkin_encode_clock_reply(s, sizeof(s), &rep));
    blkin_channel_feed(ch, s, off, 2000);
    g_assert_cmpuint(ch->stats.stray_replies, ==, 1);
    uint8_t pb[64];
    g_assert_cmpint(blkin_channel_make_probe(ch, pb, sizeof(pb), 4000), >, 0);
    rep.probe_id = 1;
    off = put(s, blkin_encode_clock_reply(s, sizeof(s), &rep));
    blkin_channel_feed(ch, s, off, 6000);
    g_assert_cmpuint(c.ev[BLKIN_EV_CLOCK], ==, 1);
    /* The same reply again: the probe is no longer in flight. */
    blkin_channel_feed(ch, s, off, 6100);
    g_assert_cmpuint(c.ev[BLKIN_EV_CLOCK], ==, 1);
    g_free(ch);
}

/*
 * The same agent behind another QEMU (the VM migrated away and back): the
 * records it sent meanwhile are not a gap here, and the clock starts over.
 * A reconnection to the same QEMU keeps both.
 */
static void test_channel_peer_changed(void)
{
    struct blkin_channel *ch = g_new0(struct blkin_channel, 1);
    static uint8_t s[4 * BLKIN_FRAME_MAX];
    struct counts c = {0};
    struct blkin_hello h = {
        .proto_version = 1, .session_id = 7, .software = "t"};
    struct blkin_request r[2] = {sample_req(0), sample_req(1)};
    struct blkin_clock_reply rep = {
        .probe_id = 1, .guest_recv_ns = 5000, .guest_send_ns = 5100};
    uint8_t pb[64];
    size_t off = 0;

    blkin_channel_init(ch, NULL, count_cb, &c);
    off += put(s, blkin_encode_hello(s + off, sizeof(s) - off, &h));
    off +=
        put(s, blkin_encode_devmap(s + off, sizeof(s) - off, sample_devmap()));
    off += put(s, blkin_encode_requests(s + off, sizeof(s) - off, 1, r, 2));
    blkin_channel_feed(ch, s, off, 1000);
    g_assert_cmpint(blkin_channel_make_probe(ch, pb, sizeof(pb), 4000), >, 0);
    off = put(s, blkin_encode_clock_reply(s, sizeof(s), &rep));
    blkin_channel_feed(ch, s, off, 6000);
    g_assert_cmpuint(c.ev[BLKIN_EV_CLOCK], ==, 1);
    g_assert_cmpuint(ch->clock.samples, ==, 1);

    /* Same QEMU: records 3..9 missing are a gap. */
    blkin_channel_reconnected(ch);
    off = put(s, blkin_encode_hello(s, sizeof(s), &h));
    off += put(s, blkin_encode_requests(s + off, sizeof(s) - off, 10, r, 2));
    blkin_channel_feed(ch, s, off, 7000);
    g_assert_cmpuint(c.ev[BLKIN_EV_GAP], ==, 1);
    g_assert_cmpuint(c.last_gap, ==, 7);
    g_assert_cmpuint(ch->clock.samples, ==, 1);

    /* Another QEMU: what went to the other one is no gap here, the clock
     * is estimated afresh, and the device map stays. */
    blkin_channel_reconnected(ch);
    blkin_channel_peer_changed(ch);
    g_assert_cmpuint(ch->clock.samples, ==, 0);
    off = put(s, blkin_encode_hello(s, sizeof(s), &h));
    off += put(s, blkin_encode_requests(s + off, sizeof(s) - off, 500, r, 2));
    blkin_channel_feed(ch, s, off, 8000);
    g_assert_cmpuint(c.ev[BLKIN_EV_GAP], ==, 1);
    g_assert_cmpuint(c.ev[BLKIN_EV_REQUEST], ==, 6);
    g_free(ch);
}

/* ---- fuzz-ish: random and mutated streams through the channel --------- */

static void noop_cb(void *user, const struct blkin_event *ev)
{
    (void)user;
    (void)ev;
}

static size_t valid_stream(uint8_t *s, size_t cap, GRand *rng)
{
    size_t off = 0;
    struct blkin_hello h = {.proto_version = 1, .software = "fz"};
    struct blkin_request r[64];

    off += (size_t)blkin_encode_hello(s, cap, &h);
    off += (size_t)blkin_encode_devmap(s + off, cap - off, sample_devmap());
    for (int i = 0; i < 64; i++)
        r[i] = sample_req((unsigned)i);
    while (off + blkin_requests_frame_size(64) + 200 < cap) {
        unsigned n = (unsigned)g_rand_int_range(rng, 0, 65);
        struct blkin_drops d = {1, 2, 3, 4, 5};
        struct blkin_clock_reply cr = {.probe_id = 1};

        off += (size_t)blkin_encode_requests(s + off, cap - off, off, r, n);
        if (g_rand_boolean(rng))
            off += (size_t)blkin_encode_drops(s + off, cap - off, &d);
        else
            off += (size_t)blkin_encode_clock_reply(s + off, cap - off, &cr);
    }
    return off;
}

static void test_fuzz(void)
{
    struct blkin_channel *ch = g_new0(struct blkin_channel, 1);
    GRand *rng = g_rand_new_with_seed(20261128);
    size_t cap = 256 * 1024;
    uint8_t *s = g_malloc(cap);
    int rounds = g_test_slow() ? 2000 : 200;

    for (int round = 0; round < rounds; round++) {
        size_t n;

        if (round % 2) {
            n = (size_t)g_rand_int_range(rng, 1, (gint32)cap);
            for (size_t i = 0; i < n; i++)
                s[i] = (uint8_t)g_rand_int(rng);
            /* Sprinkle plausible headers so the deep paths get exercised. */
            for (int k = 0; k < 50; k++) {
                size_t at = (size_t)g_rand_int_range(rng, 0, (gint32)n);
                if (at + 12 <= n) {
                    memcpy(s + at, "BLKN\x01", 5);
                    s[at + 5] = (uint8_t)g_rand_int_range(rng, 0, 8);
                    s[at + 10] = s[at + 11] = 0;
                }
            }
        } else {
            n = valid_stream(s, cap, rng);
            int flips = g_rand_int_range(rng, 1, 64);
            for (int k = 0; k < flips; k++)
                s[g_rand_int_range(rng, 0, (gint32)n)] ^=
                    (uint8_t)(1u << g_rand_int_range(rng, 0, 8));
        }
        blkin_channel_init(ch, NULL, noop_cb, NULL);
        for (size_t off = 0; off < n;) {
            size_t c = (size_t)g_rand_int_range(rng, 1, 9000);
            if (c > n - off)
                c = n - off;
            blkin_channel_feed(ch, s + off, c, off);
            off += c;
            g_assert_cmpuint(blkin_decoder_pending(&ch->dec), <=,
                             BLKIN_FRAME_MAX);
        }
    }
    g_free(s);
    g_rand_free(rng);
    g_free(ch);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/proto/roundtrip", test_roundtrip);
    g_test_add_func("/proto/encoder-limits", test_encoder_limits);
    g_test_add_func("/proto/truncated", test_truncated);
    g_test_add_func("/proto/oversized-and-garbage", test_oversized_and_garbage);
    g_test_add_func("/proto/malformed-payloads", test_malformed_payloads);
    g_test_add_func("/proto/channel", test_channel);
    g_test_add_func("/proto/channel-peer-changed", test_channel_peer_changed);
    g_test_add_func("/proto/fuzz", test_fuzz);
    return g_test_run();
}
