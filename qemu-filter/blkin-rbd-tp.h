/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-rbd-tp.h: the LTTng-UST tracepoint provider `blkin_rbd`: what the
 * librbd interposer (blkin-rbd.c) records of QEMU's calls into librbd's C
 * API, for hostd to join a filter span to the OSD ops that served it
 * (docs/tracepoints.md, "Provider blkin_rbd"; docs/backend-ceph.md).
 *
 * A provider of its own, not events of blkin_qemu: the filter's schema
 * stays as it is, and the probes live in blkin-rbd-tp.so, which the
 * interposer loads only when QEMU opens an RBD image.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER blkin_rbd

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./blkin-rbd-tp.h"

#if !defined(BLKIN_RBD_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define BLKIN_RBD_TP_H

#include <lttng/tracepoint.h>
#include "blkin-rbd-record.h"

// clang-format off

/*
 * One librbd call (rbd_aio_readv, _writev, _discard, _write_zeroes,
 * _flush), at its completion: the event's timestamp is when librbd called
 * the completion back. Packed like blkin_qemu:request (two arrays).
 */
LTTNG_UST_TRACEPOINT_EVENT(
    blkin_rbd, request, LTTNG_UST_TP_ARGS(const struct blkin_rbd_req *, r),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_array(uint64_t, io, BLKIN_RBD_REQ_IO(r),
                              BLKIN_RBD_REQ_NIO)
        lttng_ust_field_array(int32_t, req, BLKIN_RBD_REQ_REQ(r),
                              BLKIN_RBD_REQ_NREQ)))

/*
 * An image the process opened (state 0), re-emitted (1: periodically and
 * when a session starts recording this event) or closed (2): the keys the
 * OSDs' op trackers know the client and its objects by.
 */
LTTNG_UST_TRACEPOINT_EVENT(
    blkin_rbd, image, LTTNG_UST_TP_ARGS(const struct blkin_rbd_image *, im,
                                        uint8_t, state),
    LTTNG_UST_TP_FIELDS(
        lttng_ust_field_integer(int32_t, vpid, im->vpid)
        lttng_ust_field_integer(uint32_t, image, im->index)
        lttng_ust_field_integer(uint8_t, state, state)
        lttng_ust_field_integer(uint64_t, gid, im->gid)
        lttng_ust_field_integer(uint32_t, nonce, im->nonce)
        lttng_ust_field_string(addr, im->addr)
        lttng_ust_field_string(pool, im->pool)
        lttng_ust_field_string(image_name, im->name)
        lttng_ust_field_string(prefix, im->prefix)
        lttng_ust_field_integer(uint64_t, size, im->size)
        lttng_ust_field_integer(uint64_t, object_size, im->object_size)
        lttng_ust_field_integer(uint64_t, stripe_unit, im->stripe_unit)
        lttng_ust_field_integer(uint64_t, stripe_count, im->stripe_count)))
// clang-format on

#endif /* BLKIN_RBD_TP_H */

#include <lttng/tracepoint-event.h>
