/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostd-span.h: what hostd reads from the QEMU filter's tracepoints
 * (provider blkin_qemu, docs/tracepoints.md), in decoded form.
 *
 * `op` is an enum blkin_op (blkin-schema.h): the trace source converts the
 * tracepoint schema's numbering as it decodes an event, so nothing past it
 * sees the schema's numbers.
 */
#ifndef HOSTD_SPAN_H
#define HOSTD_SPAN_H

#include <stdint.h>

#include "blkin-schema.h"

/* blkin_qemu:request and blkin_qemu:hung; end_ns is the event time. */
typedef struct HostdSpan {
    uint64_t trace_id;
    uint64_t span_id;
    uint64_t parent_span_id;
    uint64_t offset;
    uint64_t bytes;
    uint64_t start_ns; /* host CLOCK_MONOTONIC */
    uint64_t end_ns;
    uint32_t vpid;   /* the QEMU process, from the event payload */
    uint32_t disk;   /* process-local index: key disks by (vpid, disk) */
    uint16_t source; /* which trace input (node) it came from; set by hostd */
    uint32_t flags;
    uint32_t inflight;
    int32_t ret;
    uint8_t op; /* enum blkin_op */
    uint8_t why;
    /* A virtio-blk request (blkin_qemu:device_request): QEMU's own device
     * entry (block_acct_start) and completion (block_acct_done); 0 where not
     * known (another device, discards' entry in QEMU 7.2). end_ns is then
     * the filter's exit. */
    uint64_t dev_start_ns;
    uint64_t dev_end_ns;
    uint16_t dev_merged; /* device requests this block request served */
    /* Merged: QEMU completed them this far apart, in their order, the last
     * at dev_end_ns (docs/filter.md, "Device timing"); 0: all at it. */
    uint32_t dev_step_ns;
} HostdSpan;

/* One device request behind a block-layer span (virtio-blk merges up to 32
 * adjacent requests into one). */
#define HOSTD_DEV_MAX 32
typedef struct HostdDevReq {
    uint64_t start_ns; /* its device entry; 0 where not known */
    uint64_t offset;
    uint64_t bytes;
} HostdDevReq;

/* blkin_qemu:disk */
typedef struct HostdDiskMap {
    uint16_t source; /* as HostdSpan.source */
    uint32_t vpid;
    uint32_t disk;
    uint8_t state; /* enum blkin_disk_state */
    uint32_t sample;
    const char *id; /* borrowed: valid during the callback only */
    const char *node;
    const char *child;
    /* What the node's requests come from ("virtio-blk": device times on),
     * "" not known yet, NULL from a filter without the field. */
    const char *device;
} HostdDiskMap;

/* A guest request from a VM's agent channel, times already on the host
 * clock (the channel's probe estimate applied). */
typedef struct HostdGuestReq {
    uint64_t offset;
    uint64_t bytes;
    int64_t queue_ns; /* 0 when the guest saw no queue event */
    int64_t issue_ns;
    int64_t complete_ns;
    /* The error bound of the clock estimate that put these times on the
     * host clock: a record that waited for a connection's first estimate
     * was converted with it, however much better later ones are. 0:
     * unknown (a capture from before the field). */
    uint64_t bound_ns;
    int32_t error;
    uint8_t op; /* enum blkin_op */
} HostdGuestReq;

/*
 * One event of a storage service instrumented with blkin / libblkin
 * (provider zipkin: timestamp, keyval_string, keyval_integer; field names
 * as blkin's, docs/backend.md). Strings are borrowed for the callback.
 */
typedef enum HostdZipkinKind {
    HOSTD_ZIPKIN_TIMESTAMP, /* an annotation: key is the event (cs, sr...) */
    HOSTD_ZIPKIN_STRING,    /* key = str_val */
    HOSTD_ZIPKIN_INTEGER,   /* key = int_val */
} HostdZipkinKind;

typedef struct HostdZipkinEvent {
    HostdZipkinKind kind;
    uint16_t source;  /* as HostdSpan.source */
    uint64_t time_ns; /* the event's own timestamp */
    uint64_t trace_id;
    uint64_t span_id;
    uint64_t parent_span_id;
    int32_t port;
    const char *trace_name; /* the span's name */
    const char *service_name;
    const char *ip;
    const char *key;
    const char *str_val;
    int64_t int_val;
} HostdZipkinEvent;

/*
 * blkin_rbd:image (the librbd interposer, docs/tracepoints.md): an RBD
 * image a QEMU process opened (state: enum blkin_rbd_image_state, 0 open, 1
 * re-emitted, 2 closed), with the keys its OSD ops are known by. Strings
 * are borrowed for the callback.
 */
typedef struct HostdRbdImage {
    uint16_t source; /* as HostdSpan.source */
    uint32_t vpid;
    uint32_t image; /* process-local index */
    uint8_t state;
    uint64_t gid;   /* client.<gid> */
    uint32_t nonce; /* the client address's nonce */
    const char *addr;
    const char *pool;
    const char *name;
    const char *prefix; /* data objects: <prefix>.<object number, %016x> */
    uint64_t size;
    uint64_t object_size;
    uint64_t stripe_unit;
    uint64_t stripe_count;
} HostdRbdImage;

/* blkin_rbd:request: one librbd call, start to completion callback. */
typedef struct HostdRbdCall {
    uint16_t source;
    uint32_t vpid;
    uint32_t image;
    uint8_t op; /* enum blkin_op */
    int32_t ret;
    uint64_t offset;
    uint64_t length;
    uint64_t start_ns; /* host CLOCK_MONOTONIC */
    uint64_t end_ns;
} HostdRbdCall;

/*
 * Callbacks a trace source calls, in timestamp order, on the thread that
 * polls it. Any may be NULL.
 */
typedef struct HostdTraceSink {
    void (*span)(void *opaque, const HostdSpan *s);
    /* A virtio-blk request: its block-layer span and the @n device requests
     * it served (NULL: delivered to span, without them). */
    void (*device_span)(void *opaque, const HostdSpan *s,
                        const HostdDevReq *dev, unsigned n);
    void (*hung)(void *opaque, const HostdSpan *s, uint64_t age_ns);
    void (*disk)(void *opaque, const HostdDiskMap *m);
    /* LTTng reported @count events discarded (ring buffer full). */
    void (*discarded)(void *opaque, uint64_t count);
    void (*zipkin)(void *opaque, const HostdZipkinEvent *e);
    /* Trace input @source has been delivered up to @time_ns of its clock
     * (called by a feed, trace-feed.h, after each poll). */
    void (*delivered)(void *opaque, uint16_t source, int64_t time_ns);
    /* The librbd interposer's events (provider blkin_rbd). */
    void (*rbd_image)(void *opaque, const HostdRbdImage *im);
    void (*rbd_call)(void *opaque, const HostdRbdCall *c);
} HostdTraceSink;

#endif
