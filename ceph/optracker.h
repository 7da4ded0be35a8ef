/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * optracker.h: reads a Ceph OSD's op tracker, as its admin socket answers
 * `dump_historic_ops`, `dump_historic_ops_by_duration`,
 * `dump_historic_slow_ops` or `dump_ops_in_flight` (JSON, pretty or not), into
 * blkin_osd_op records (common/blkin-osd-op.h).
 *
 * Written for hostile input: the answer comes from a socket anyone with
 * the right permissions can put in the collector's path. A strict JSON
 * scanner with a depth limit and bounded string buffers, no allocation;
 * anything that is not the op tracker's shape is an error with its offset
 * and a reason, never a crash. Ops of other kinds (replication, PG
 * commands) and ops this parser cannot read are skipped and counted. The
 * fuzz target tests/fuzz/fuzz-optracker.c runs it on arbitrary bytes.
 *
 * Fast on what was seen before: a dump returns the whole history every
 * time, so the caller's @seen is asked with the op's key (reqid and
 * initiation time) as soon as both are read, and an op seen already is
 * skipped without decoding its stages.
 *
 * Plain libc, negative errno.
 */
#ifndef CEPH_OPTRACKER_H
#define CEPH_OPTRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blkin-osd-op.h"

/* JSON nesting the parser follows (the tracker's is 5). */
#define BLKIN_OPTRACKER_MAX_DEPTH 32
/* Longest op description read whole (longer ones are skipped, counted). */
#define BLKIN_OPTRACKER_DESC_MAX 4096

typedef struct blkin_optracker_result {
    uint64_t ops;             /* op objects in the answer */
    uint64_t client_ops;      /* of which client ops (osd_op of client.N) */
    uint64_t new_ops;         /* of which not seen before: given to @op */
    uint64_t unreadable;      /* client ops without a reqid, time or object */
    int64_t history_size;     /* the answer's "size" (-1: not given) */
    int64_t history_duration; /* its "duration", seconds (-1: not given) */
    /* On error: where and why. */
    size_t error_offset;
    const char *error; /* static string */
} blkin_optracker_result;

typedef struct blkin_optracker_cb {
    /* Has the op with this key been given before? (NULL: never) */
    bool (*seen)(void *opaque, uint64_t key);
    /* A client op not seen before, with its key. */
    void (*op)(void *opaque, const blkin_osd_op *op, uint64_t key);
    void *opaque;
} blkin_optracker_cb;

/*
 * Parses the answer @json of @len bytes from osd.@osd. Returns the number
 * of new ops given to @cb->op, or -EBADMSG (res->error says why; ops given
 * before the error stand).
 */
int blkin_optracker_parse(const char *json, size_t len, uint32_t osd,
                          const blkin_optracker_cb *cb,
                          blkin_optracker_result *res);

/*
 * Reads an op's description ("osd_op(client.4141.0:50 1.3 1:daf7e5cb:::
 * rbd_data.1029989306d5.000000000000003c:head [set-alloc-hint ...,write
 * 0~4096 [fadvise_sequential]] snapc 0=[] ondisk+write+... e9)") into @op's
 * gid, inc, tid, object, kind and extent. Returns 1 for a client op, 0 for
 * any other op, -EBADMSG for a client op it cannot read.
 */
int blkin_optracker_parse_description(const char *desc, size_t len,
                                      blkin_osd_op *op);

#endif
