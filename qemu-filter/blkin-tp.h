/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-tp.h: the LTTng-UST tracepoint provider `blkin_qemu`.
 *
 * The schema (event names, field names, types, meaning) is a contract with
 * hostd and any other reader: docs/tracepoints.md documents it, and both
 * change together. Probes are compiled into blkin-tp.c only.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER blkin_qemu

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./blkin-tp.h"

#if !defined(BLKIN_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define BLKIN_TP_H

#include <lttng/tracepoint.h>
#include "blkin-record.h"

/* The macro arguments read best as one field a line. */
// clang-format off

/*
 * One event per traced request, at its completion: the event's own
 * timestamp is the end. Three arrays rather than thirteen named integers
 * and no context: each field is a separate write call in LTTng-UST, and this
 * event is on every request's path (docs/performance.md).
 */
LTTNG_UST_TRACEPOINT_EVENT(
    blkin_qemu, request, LTTNG_UST_TP_ARGS(const struct blkin_span *, s),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_array_hex(uint64_t, ids, BLKIN_SPAN_IDS(s),
                                  BLKIN_SPAN_NIDS)
        lttng_ust_field_array(uint64_t, io, BLKIN_SPAN_IO(s), BLKIN_SPAN_NIO)
        lttng_ust_field_array(int32_t, req, BLKIN_SPAN_REQ(s),
                              BLKIN_SPAN_NREQ)))

/*
 * A recorded request of a virtio-blk device, at the device's completion
 * (the event's timestamp), instead of `request`: the block-layer span, its
 * exit from the filter, and the device requests it served (docs/tracepoints.md).
 */
LTTNG_UST_TRACEPOINT_EVENT(
    blkin_qemu, device_request,
    LTTNG_UST_TP_ARGS(const struct blkin_dev_record *, d),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_array_hex(uint64_t, ids, BLKIN_SPAN_IDS(&d->span),
                                  BLKIN_SPAN_NIDS)
        lttng_ust_field_array(uint64_t, io, BLKIN_SPAN_IO(&d->span),
                              BLKIN_SPAN_NIO)
        lttng_ust_field_array(int32_t, req, BLKIN_SPAN_REQ(&d->span),
                              BLKIN_SPAN_NREQ)
        lttng_ust_field_integer(uint64_t, exit_ns, d->exit_ns)
        lttng_ust_field_sequence(uint64_t, dev, d->dev, uint32_t,
                                 3 * d->ndev)))

/*
 * Up to `batch` completed requests of one thread (blkin-batch.c): what
 * `request` and `device_request` carry, as 64-bit words
 * (docs/tracepoints.md). The event's own time is only when it went out.
 */
LTTNG_UST_TRACEPOINT_EVENT(
    blkin_qemu, batch,
    LTTNG_UST_TP_ARGS(const struct blkin_batch_head *, h, const uint64_t *,
                      data, uint32_t, words),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(int32_t, vpid, h->vpid)
        lttng_ust_field_integer(int32_t, tid, h->tid)
        lttng_ust_field_integer(uint64_t, seq, h->seq)
        lttng_ust_field_integer(uint32_t, count, h->count)
        lttng_ust_field_sequence(uint64_t, data, data, uint32_t, words)))

/* A request still in flight past hung-ms; repeated every hung-ms. */
LTTNG_UST_TRACEPOINT_EVENT(
    blkin_qemu, hung,
    LTTNG_UST_TP_ARGS(const struct blkin_span *, s, uint64_t, now_ns),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer_hex(uint64_t, trace_id, s->trace_id)
        lttng_ust_field_integer_hex(uint64_t, span_id, s->span_id)
        lttng_ust_field_integer_hex(uint64_t, parent_span_id,
                                    s->parent_span_id)
        lttng_ust_field_integer(int32_t, vpid, s->vpid)
        lttng_ust_field_integer(uint32_t, disk, s->disk)
        lttng_ust_field_integer(uint8_t, op, s->op)
        lttng_ust_field_integer_hex(uint32_t, flags, s->flags)
        lttng_ust_field_integer(uint64_t, offset, s->offset)
        lttng_ust_field_integer(uint64_t, bytes, s->bytes)
        lttng_ust_field_integer(uint64_t, start_ns, s->start_ns)
        lttng_ust_field_integer(uint64_t, age_ns, now_ns - s->start_ns)))

/* The map from a disk index to the operator's name for it. */
LTTNG_UST_TRACEPOINT_EVENT(
    blkin_qemu, disk,
    LTTNG_UST_TP_ARGS(int32_t, vpid, uint32_t, disk, uint8_t, state,
                      const char *, id, const char *, node,
                      const char *, child, uint32_t, sample,
                      const char *, device),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(int32_t, vpid, vpid)
        lttng_ust_field_integer(uint32_t, disk, disk)
        lttng_ust_field_integer(uint8_t, state, state)
        lttng_ust_field_string(id, id)
        lttng_ust_field_string(node, node)
        lttng_ust_field_string(child, child)
        lttng_ust_field_integer(uint32_t, sample, sample)
        /* What the node's requests come from: "virtio-blk" (device
         * timing on), "" not known yet, else the device's type or why
         * device timing is off. */
        lttng_ust_field_string(device, device)))
// clang-format on

#endif /* BLKIN_TP_H */

#include <lttng/tracepoint-event.h>
