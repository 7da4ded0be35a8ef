/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-test-proto.h: the request format between blkin-test-client and
 * blkin-test-service (docs/backend.md), a stand-in for a storage protocol
 * that carries blkin's packed trace context in each message.
 *
 * Request (48 bytes, big-endian), then `length` bytes of data for a write:
 *   0  ctx[24]  the sender's packed trace context (blkin_trace_pack)
 *   24 u32 op   1 read, 2 write
 *   28 u32      0
 *   32 u64 offset
 *   40 u64 length (at most BTP_MAX_LENGTH)
 * Reply (16 bytes), then `length` bytes of data for a successful read:
 *   0  s32 status   bytes done, or a negative errno
 *   4  u32          0
 *   8  u64 length   bytes of data that follow
 */
#ifndef BLKIN_TEST_PROTO_H
#define BLKIN_TEST_PROTO_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "blkin.h"

#define BTP_REQUEST_SIZE 48
#define BTP_REPLY_SIZE   16
#define BTP_MAX_LENGTH   (1u << 20)

enum { BTP_READ = 1, BTP_WRITE = 2 };

struct btp_request {
    uint8_t ctx[BLKIN_TRACE_INFO_PACKED_SIZE];
    uint32_t op;
    uint64_t offset;
    uint64_t length;
};

struct btp_reply {
    int32_t status;
    uint64_t length;
};

static inline void btp_put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t btp_get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void btp_request_encode(const struct btp_request *r,
                                      uint8_t out[BTP_REQUEST_SIZE])
{
    memcpy(out, r->ctx, sizeof(r->ctx));
    btp_put(out + 24, r->op, 4);
    btp_put(out + 28, 0, 4);
    btp_put(out + 32, r->offset, 8);
    btp_put(out + 40, r->length, 8);
}

static inline void btp_request_decode(const uint8_t in[BTP_REQUEST_SIZE],
                                      struct btp_request *r)
{
    memcpy(r->ctx, in, sizeof(r->ctx));
    r->op = (uint32_t)btp_get(in + 24, 4);
    r->offset = btp_get(in + 32, 8);
    r->length = btp_get(in + 40, 8);
}

static inline void btp_reply_encode(const struct btp_reply *r,
                                    uint8_t out[BTP_REPLY_SIZE])
{
    btp_put(out, (uint32_t)r->status, 4);
    btp_put(out + 4, 0, 4);
    btp_put(out + 8, r->length, 8);
}

static inline void btp_reply_decode(const uint8_t in[BTP_REPLY_SIZE],
                                    struct btp_reply *r)
{
    r->status = (int32_t)(uint32_t)btp_get(in, 4);
    r->length = btp_get(in + 8, 8);
}

/* Whole-buffer I/O on a stream socket: 0, -errno, or -EPIPE at EOF. */
static inline int btp_read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static inline int btp_write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#endif
