/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tracepoint metadata from tracefs: event ids and the byte offsets of the
 * fields in the raw sample, read from each event's format file so that the
 * agent follows whatever layout the running kernel uses.
 */
#ifndef AGENT_TRACEFS_H
#define AGENT_TRACEFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tp_field {
    bool present;
    uint16_t offset;
    uint16_t size;
};

struct tp_format {
    int id;
    struct tp_field dev, sector, nr_sector, bytes, error, rwbs;
};

/* Finds tracefs, mounting it at /sys/kernel/tracing if needed. */
int tracefs_find(char *path, size_t size);

/*
 * Reads events/<system>/<event>/{id,format}. Returns 0, -ENOENT when the
 * kernel lacks the event, or another negative errno.
 */
int tracefs_read_format(const char *tracefs, const char *system,
                        const char *event, struct tp_format *fmt);

/* Reads an unsigned field of 1, 2, 4 or 8 bytes; absent fields read 0. */
uint64_t tp_get_u(const struct tp_field *f, const uint8_t *raw, uint32_t len);
int64_t tp_get_s(const struct tp_field *f, const uint8_t *raw, uint32_t len);

#endif
