/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * BlkKin agent wire protocol v1: encoder and incremental stream decoder.
 *
 * Shared by the guest agent (which must stay plain libc so it links
 * statically) and the host side (which must treat every byte as hostile).
 * docs/protocol.md is the normative description; this header mirrors it.
 *
 * Every multi-byte integer on the wire is little-endian regardless of the
 * host's byte order.
 */
#ifndef BLKIN_PROTO_H
#define BLKIN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "blkin-schema.h"

/* "BLKN" read as a little-endian u32: lets a reader resynchronise. */
#define BLKIN_PROTO_MAGIC   0x4e4b4c42u
#define BLKIN_PROTO_VERSION 1

#define BLKIN_FRAME_HDR_SIZE 12u
/* Hard limit on a whole frame (header + payload); larger ones are refused. */
#define BLKIN_FRAME_MAX   65536u
#define BLKIN_PAYLOAD_MAX (BLKIN_FRAME_MAX - BLKIN_FRAME_HDR_SIZE)

enum blkin_frame_type {
    BLKIN_FRAME_HELLO = 1,       /* both directions */
    BLKIN_FRAME_DEVMAP = 2,      /* guest -> host */
    BLKIN_FRAME_REQUESTS = 3,    /* guest -> host */
    BLKIN_FRAME_CLOCK_PROBE = 4, /* host -> guest */
    BLKIN_FRAME_CLOCK_REPLY = 5, /* guest -> host */
    BLKIN_FRAME_DROPS = 6,       /* guest -> host */
};

/* ---- frame payloads, decoded form -------------------------------------- */

#define BLKIN_NAME_MAX    32 /* including the terminating NUL */
#define BLKIN_SERIAL_MAX  64 /* including the terminating NUL */
#define BLKIN_DEVICES_MAX 256

enum blkin_hello_features {
    BLKIN_FEAT_QUEUE_TIMES = 1u << 0, /* queue_ns filled where known */
    BLKIN_FEAT_PTP = 1u << 1,         /* clock replies may carry PTP */
    /* Requests are timed by BPF programs in the guest kernel; without it,
     * by perf sampling of the block tracepoints (docs/guest-agent.md). */
    BLKIN_FEAT_BPF = 1u << 2,
};

struct blkin_hello {
    uint32_t proto_version;
    uint32_t features;
    uint32_t ncpus;
    uint32_t max_frame;
    uint64_t session_id; /* random per agent start; changes => restarted */
    uint64_t mono_ns;    /* sender's CLOCK_MONOTONIC when sent */
    char software[BLKIN_NAME_MAX];
};

struct blkin_device {
    uint32_t major;
    uint32_t minor;
    uint64_t size_bytes;
    uint32_t logical_block_size;
    char name[BLKIN_NAME_MAX];
    char serial[BLKIN_SERIAL_MAX];
};

struct blkin_devmap {
    uint32_t generation;
    uint32_t count;
    struct blkin_device dev[BLKIN_DEVICES_MAX];
};

enum blkin_req_flags {
    BLKIN_REQ_FUA = 1u << 0,
    BLKIN_REQ_SYNC = 1u << 1,
    BLKIN_REQ_PREFLUSH = 1u << 2,
    BLKIN_REQ_META = 1u << 3,
    BLKIN_REQ_RAHEAD = 1u << 4,
    BLKIN_REQ__ALL = 0x1f,
};

struct blkin_request {
    uint32_t major;
    uint32_t minor;
    uint64_t sector; /* 512-byte units */
    uint32_t bytes;
    uint8_t op;        /* enum blkin_op */
    uint8_t flags;     /* enum blkin_req_flags */
    int32_t error;     /* 0 or a negative errno */
    uint64_t queue_ns; /* 0 when the guest saw no queue event */
    uint64_t issue_ns;
    uint64_t complete_ns;
};

/*
 * The most records an agent buffers while the host is away, and so sends at
 * once on reconnect, before it has answered the host's first clock probe.
 * The host holds twice as many records that arrive before that answer (those
 * completing meanwhile come on top), and closes a channel that sends more.
 */
#define BLKIN_BACKLOG_MAX 16384u

#define BLKIN_REQ_RECORD_SIZE   56u
#define BLKIN_REQUESTS_HDR_SIZE 16u
#define BLKIN_REQUESTS_PER_FRAME_MAX                                           \
    ((BLKIN_PAYLOAD_MAX - BLKIN_REQUESTS_HDR_SIZE) / BLKIN_REQ_RECORD_SIZE)

/* The fixed part of a REQUESTS payload; records are read one at a time. */
struct blkin_requests {
    uint32_t count;
    uint32_t record_size; /* >= BLKIN_REQ_RECORD_SIZE; extra bytes ignored */
    uint64_t first_seq;   /* sequence number of the first record */
    const uint8_t *records;
};

struct blkin_clock_probe {
    uint64_t probe_id;
    uint64_t host_send_ns;
};

enum blkin_clock_reply_flags {
    BLKIN_CLOCK_PTP_VALID = 1u << 0,
};

struct blkin_clock_reply {
    uint64_t probe_id;
    uint64_t host_send_ns; /* echoed from the probe */
    uint64_t guest_recv_ns;
    uint64_t guest_send_ns;
    uint32_t flags;
    int64_t ptp_ns;       /* KVM PTP clock reading (host CLOCK_REALTIME) */
    uint64_t ptp_mono_ns; /* guest CLOCK_MONOTONIC at that reading */
};

struct blkin_drops {
    uint64_t dropped_records; /* cumulative: buffer full or host absent */
    uint64_t lost_events;     /* cumulative: perf ring overruns */
    uint64_t unmatched;       /* cumulative: completions without an issue */
    uint64_t evicted;         /* cumulative: issues never completed */
    uint64_t next_seq;        /* sequence number of the next record */
};

/* ---- encoder ----------------------------------------------------------- */

/*
 * Each encoder writes one whole frame into buf and returns its length, or
 * -ENOSPC when cap is too small, or -EINVAL for unrepresentable input.
 */
ssize_t blkin_encode_hello(uint8_t *buf, size_t cap,
                           const struct blkin_hello *h);
ssize_t blkin_encode_devmap(uint8_t *buf, size_t cap,
                            const struct blkin_devmap *m);
ssize_t blkin_encode_requests(uint8_t *buf, size_t cap, uint64_t first_seq,
                              const struct blkin_request *r, size_t n);
ssize_t blkin_encode_clock_probe(uint8_t *buf, size_t cap,
                                 const struct blkin_clock_probe *p);
ssize_t blkin_encode_clock_reply(uint8_t *buf, size_t cap,
                                 const struct blkin_clock_reply *r);
ssize_t blkin_encode_drops(uint8_t *buf, size_t cap,
                           const struct blkin_drops *d);
/* A frame of any type with an opaque payload (tests, forward compat). */
ssize_t blkin_encode_raw(uint8_t *buf, size_t cap, uint8_t type,
                         const void *payload, size_t len);

/* Bytes a REQUESTS frame of n records takes. */
static inline size_t blkin_requests_frame_size(size_t n)
{
    return BLKIN_FRAME_HDR_SIZE + BLKIN_REQUESTS_HDR_SIZE +
           n * BLKIN_REQ_RECORD_SIZE;
}

/* ---- decoder ----------------------------------------------------------- */

struct blkin_frame {
    uint8_t type;
    uint16_t flags;
    uint32_t len;
    const uint8_t *payload; /* valid until the next decoder call */
};

struct blkin_decoder_stats {
    uint64_t frames;
    uint64_t bytes;
    uint64_t skipped_bytes; /* discarded while hunting for a header */
    uint64_t bad_headers;   /* wrong magic/version or oversized length */
};

/*
 * Incremental decoder: bytes in, whole frames out. Memory is the fixed
 * buffer below, whatever the input. A header with a wrong magic, version or
 * an oversized length makes it drop one byte and hunt for the next magic.
 */
struct blkin_decoder {
    uint32_t have;
    uint32_t need; /* total bytes of the frame being assembled, 0 = header */
    struct blkin_decoder_stats stats;
    uint8_t buf[BLKIN_FRAME_MAX];
};

void blkin_decoder_init(struct blkin_decoder *d);

/*
 * Consumes up to n bytes from p; *consumed says how many. Returns 1 when a
 * whole frame is in *f (its payload points into the decoder), 0 when more
 * input is needed. Call again with the rest of the input until it is used
 * up and 0 is returned.
 */
int blkin_decoder_feed(struct blkin_decoder *d, const uint8_t *p, size_t n,
                       size_t *consumed, struct blkin_frame *f);

/* Bytes held for a partial frame (e.g. to report truncation at EOF). */
static inline size_t blkin_decoder_pending(const struct blkin_decoder *d)
{
    return d->have;
}

/*
 * Payload parsers: return 0 or -EBADMSG for anything malformed (short,
 * counts that do not fit, unterminated or overlong strings, bad enums).
 */
int blkin_decode_hello(const uint8_t *p, size_t n, struct blkin_hello *h);
/* On error @m is left as it was: a bad map never replaces a good one. */
int blkin_decode_devmap(const uint8_t *p, size_t n, struct blkin_devmap *m);
int blkin_decode_requests(const uint8_t *p, size_t n, struct blkin_requests *r);
/* Record i (< r->count) of a payload that blkin_decode_requests accepted. */
int blkin_requests_get(const struct blkin_requests *r, uint32_t i,
                       struct blkin_request *out);
int blkin_decode_clock_probe(const uint8_t *p, size_t n,
                             struct blkin_clock_probe *c);
int blkin_decode_clock_reply(const uint8_t *p, size_t n,
                             struct blkin_clock_reply *c);
int blkin_decode_drops(const uint8_t *p, size_t n, struct blkin_drops *d);

const char *blkin_frame_type_name(unsigned type);

#endif
