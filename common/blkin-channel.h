/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host side of one agent channel: bytes from the guest in, validated events
 * out. Owns the stream decoder, the guest's current device map, the clock
 * probes in flight and the offset estimator, so that every host program
 * (blkin-agent-dump today, the host daemon later) applies the same checks.
 *
 * Nothing the guest sends is trusted: malformed frames and records are
 * counted and reported, never passed on; memory stays fixed.
 */
#ifndef BLKIN_CHANNEL_H
#define BLKIN_CHANNEL_H

#include "blkin-clock.h"
#include "blkin-proto.h"

struct blkin_channel_limits {
    uint32_t max_request_bytes; /* larger records are invalid */
    uint64_t max_latency_ns;    /* complete - queue/issue beyond: invalid */
};

enum blkin_event_type {
    BLKIN_EV_HELLO,
    BLKIN_EV_DEVMAP,
    BLKIN_EV_REQUEST,
    BLKIN_EV_CLOCK,
    BLKIN_EV_DROPS,
    BLKIN_EV_GAP,     /* records missing between two REQUESTS frames */
    BLKIN_EV_INVALID, /* something was refused; reason says what */
};

struct blkin_event {
    enum blkin_event_type type;
    union {
        const struct blkin_hello *hello;
        const struct blkin_devmap *devmap;
        struct {
            const struct blkin_request *req;
            const struct blkin_device *dev;
            uint64_t seq;
        } request;
        struct {
            const struct blkin_clock_reply *reply;
            uint64_t host_recv_ns;
            const struct blkin_clock_estimate *est;
        } clock;
        const struct blkin_drops *drops;
        struct {
            uint64_t expected;
            uint64_t got;
        } gap;
        struct {
            const char *reason;
            uint8_t frame_type;
        } invalid;
    };
};

typedef void (*blkin_channel_cb)(void *user, const struct blkin_event *ev);

struct blkin_channel_stats {
    uint64_t frames;
    uint64_t unknown_frames;
    uint64_t malformed_frames;
    uint64_t records;
    uint64_t invalid_records;
    uint64_t gaps;
    uint64_t missing_records; /* total size of the gaps */
    uint64_t probes_sent;
    uint64_t replies;
    uint64_t stray_replies; /* no matching probe in flight */
};

#define BLKIN_PROBES_INFLIGHT 16

struct blkin_channel {
    struct blkin_channel_limits limits;
    blkin_channel_cb cb;
    void *user;
    struct blkin_decoder dec;
    bool have_hello;
    bool conn_hello; /* a HELLO arrived on the current connection */
    struct blkin_hello hello;
    bool have_devmap;
    struct blkin_devmap devmap;
    bool have_seq;
    uint64_t next_seq;
    uint64_t probe_next_id;
    struct {
        uint64_t id;
        uint64_t send_ns;
    } probes[BLKIN_PROBES_INFLIGHT];
    struct blkin_clock_estimator clock;
    struct blkin_channel_stats stats;
};

void blkin_channel_default_limits(struct blkin_channel_limits *l);

/* Heap-free: the caller provides the (large, ~97 KiB) struct. */
void blkin_channel_init(struct blkin_channel *ch,
                        const struct blkin_channel_limits *limits,
                        blkin_channel_cb cb, void *user);

/*
 * A new connection: the byte stream starts over. Device map, sequence and
 * clock state are kept until the agent's HELLO says it restarted.
 */
void blkin_channel_reconnected(struct blkin_channel *ch);

/*
 * The connection before this one ended because its QEMU went away, so the
 * channel is now served by another QEMU (the VM restarted, or came back from
 * another node). The agent may be the same and keep its sequence, but what
 * it sent meanwhile went elsewhere, not missing here, and the guest clock
 * may have stepped (a migration stops it): sequence and clock start over.
 * The device map is kept until the agent sends its own.
 */
void blkin_channel_peer_changed(struct blkin_channel *ch);

/* Feeds bytes received at host time now_ns; events go to the callback. */
void blkin_channel_feed(struct blkin_channel *ch, const uint8_t *p, size_t n,
                        uint64_t now_ns);

/* Frames the host sends: a HELLO on connect, CLOCK_PROBEs periodically. */
ssize_t blkin_channel_make_hello(struct blkin_channel *ch, uint8_t *buf,
                                 size_t cap, uint64_t now_ns);
ssize_t blkin_channel_make_probe(struct blkin_channel *ch, uint8_t *buf,
                                 size_t cap, uint64_t now_ns);

const struct blkin_device *blkin_channel_device(const struct blkin_channel *ch,
                                                uint32_t major, uint32_t minor);

#endif
