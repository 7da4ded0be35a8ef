/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Block tracepoint samples decoded into one small event form, using the
 * field offsets tracefs gave for the running kernel.
 */
#ifndef AGENT_BLK_EVENTS_H
#define AGENT_BLK_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "tracefs.h"

enum blk_ev_kind {
    BLK_EV_INSERT,
    BLK_EV_ISSUE,
    BLK_EV_REQUEUE,
    BLK_EV_COMPLETE,
    BLK_EV__N,
};

struct blk_event {
    uint64_t time;
    uint64_t sector;
    uint32_t dev; /* the kernel's dev_t: major << 20 | minor */
    uint32_t bytes;
    int32_t error;
    uint8_t kind;
    uint8_t op;
    uint8_t flags;
};

struct blk_decoder {
    struct tp_format fmt[BLK_EV__N];
    bool have[BLK_EV__N];
};

/* Reads the formats; issue and complete are required, the rest optional. */
int blk_decoder_init(struct blk_decoder *d, const char *tracefs);

/* Decodes one raw sample; false for other events or truncated payloads. */
bool blk_decode(const struct blk_decoder *d, uint64_t time, const uint8_t *raw,
                uint32_t len, struct blk_event *out);

/* The kernel's rwbs string ("FWFS", "R", "D", ...) to op and flags. */
void blk_parse_rwbs(const char *rwbs, size_t len, uint8_t *op, uint8_t *flags);

static inline uint32_t blk_dev_major(uint32_t dev)
{
    return dev >> 20;
}

static inline uint32_t blk_dev_minor(uint32_t dev)
{
    return dev & 0xfffff;
}

#endif
