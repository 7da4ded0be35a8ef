/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rbd-join.h: joins a VM disk's filter spans on Ceph RBD with the librbd
 * calls below them (the interposer's blkin_rbd events, same host, same
 * clock) and with the OSD ops that served those calls (the collectors'
 * op-tracker records, the OSD host's wall clock): guest -> QEMU -> librbd
 * -> OSD op (docs/backend-ceph.md).
 *
 * Hop 1, span -> call: same QEMU process, op, offset and length; the call
 * lies inside the span (both CLOCK_MONOTONIC of this host). The image the
 * call was made on is then bound to the span's disk; a disk's later spans
 * take calls of that image only. Identical calls in flight pair first-in
 * first-out.
 *
 * Hop 2, call -> OSD ops: the call's byte range is cut into object extents
 * by the image's layout (Ceph's striping: object size, stripe unit and
 * count; object <prefix>.<number>), and each extent takes an op of the
 * image's client (gid) on that object whose kind fits (read; write;
 * zero/truncate/delete for discards) and whose extent contains it, and that
 * ran inside the call once the OSD's clock is put on ours. An exact extent
 * is preferred; a larger op is librbd having merged adjacent writes: it is
 * given to each request it served, and each of them counts as merged.
 *
 * The OSD's clock. Its stamps are its host's wall clock; ours are
 * CLOCK_MONOTONIC. Each collector says its host's wall-minus-monotonic
 * offset, measured between two clock reads; when the collector runs on this
 * host (same boot id) that is the mapping, good to its bound (a microsecond
 * or two). Independently every joined pair bounds it by causality: the OSD
 * cannot receive an op before librbd was called, nor commit it (start a
 * read) after librbd completed the call. Over the last HOSTD_RBD_WINDOW_NS
 * these intersect to [lo, hi]; with the collector's own measurement (same
 * host) or alone (another host: NTP is not trusted), the middle is the
 * offset and half the width its bound, which reports show.
 *
 * Phases of a joined request, the critical op being the one that committed
 * last; each a difference of consecutive timestamps (clamped into the call),
 * so they sum to the call's duration:
 *   out = initiated - call start; osd_queue = started - initiated;
 *   osd_exec = commit - started (reads: done - started);
 *   back = call end - commit;
 *   net_out, net_back = out, back up to the least of each seen over the
 *   last HOSTD_RBD_WINDOW_NS (the fastest round trip's halves: wire and
 *   messenger); librbd = the rest of out and back (librbd's own queueing,
 *   its scheduler, throttles, lock and object-map work).
 *
 * Ownership: the join owns copies of everything added; emitted matches are
 * borrowed for the callback. Bounded: calls, ops and waiting spans each at
 * most HOSTD_RBD_MAX_PENDING; beyond, the oldest go, counted.
 */
#ifndef HOSTD_RBD_JOIN_H
#define HOSTD_RBD_JOIN_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "blkin-osd-op.h"
#include "ingest/hostd-span.h"
#include "join.h"

#define HOSTD_RBD_MAX_PENDING    262144
#define HOSTD_RBD_MAX_COLLECTORS 16
#define HOSTD_RBD_WINDOW_NS      (30LL * 1000000000LL)
/* A span waits this long (after the watermark passed it) for its ops. */
#define HOSTD_RBD_MAX_WAIT_NS (10LL * 1000000000LL)
/* A call no span claimed, an op no call claimed, are kept this long. */
#define HOSTD_RBD_KEEP_NS (20LL * 1000000000LL)

typedef enum HostdRbdOutcome {
    HOSTD_RBD_JOINED,     /* call and OSD op(s) */
    HOSTD_RBD_NO_OP,      /* a call that needs no op (flush), or none came
                             though every collector had read past it (librbd
                             answered itself: a read of an unwritten object) */
    HOSTD_RBD_OP_MISSING, /* no op, and a collector was down, behind or had
                             lost ops then: a gap, not an answer */
    HOSTD_RBD_NO_CALL,    /* a span of an RBD disk without its librbd call */
} HostdRbdOutcome;

typedef struct HostdRbdMatch {
    void *disk;               /* as given to hostd_rbd_join_client() */
    const HostdSpan *top;     /* the disk's top span */
    const HostdSpan *client;  /* the span the call was matched in */
    const HostdRbdCall *call; /* NULL: NO_CALL */
    HostdRbdOutcome outcome;
    unsigned ops; /* OSD ops joined (one per object extent) */
    bool in_gap;  /* the call overlapped an OSD outage or a lost window */
    bool merged;  /* an op also served other requests */
    uint32_t osd; /* the critical op's OSD, client tid */
    uint64_t tid;
    uint16_t collector;
    /* Ops this request was the first to claim (each op is counted once,
     * however many requests it served): reads and writes (of any kind
     * that modifies data), with their bytes. */
    unsigned new_reads, new_writes;
    uint64_t new_read_bytes, new_write_bytes;
    HostdBelow below;
} HostdRbdMatch;

typedef void (*HostdRbdEmit)(void *opaque, const HostdRbdMatch *m);

/* One collector's clock: OSD wall time + offset_ns = our CLOCK_MONOTONIC. */
typedef struct HostdRbdClock {
    bool known;     /* a measurement or pairs: offset_ns is usable */
    bool same_host; /* the collector's host is ours (same boot id) */
    int64_t offset_ns;
    int64_t bound_ns;
    int64_t floor_out_ns, floor_back_ns; /* fastest halves seen */
    uint64_t pairs;                      /* joined ops that bounded it */
    uint64_t inconsistent;               /* pairs outside the measured bound */
} HostdRbdClock;

typedef struct HostdRbdCounters {
    uint64_t calls;              /* librbd calls recorded */
    uint64_t calls_unclaimed;    /* no span took them in time */
    uint64_t ops;                /* OSD ops received */
    uint64_t ops_data_unclaimed; /* ops on image data no call took */
    uint64_t ops_meta;           /* ops on other objects (header, object map) */
    uint64_t ops_unknown;        /* ops of no known client */
    uint64_t overflow;           /* dropped early: a pending limit */
} HostdRbdCounters;

typedef struct HostdRbdJoin HostdRbdJoin;

HostdRbdJoin *hostd_rbd_join_new(HostdRbdEmit emit, void *opaque);
void hostd_rbd_join_free(HostdRbdJoin *j);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdRbdJoin, hostd_rbd_join_free)

/* The interposer's image events (open, refresh, close). */
void hostd_rbd_join_image(HostdRbdJoin *j, const HostdRbdImage *im);
void hostd_rbd_join_call(HostdRbdJoin *j, const HostdRbdCall *c);
/*
 * A top span of @disk and the span below it the call is looked for in
 * (== @top without a lower blkin node). FALSE: no call fits and @disk has
 * no image bound, so it is not an RBD disk; the caller goes on without.
 */
bool hostd_rbd_join_client(HostdRbdJoin *j, void *disk, const HostdSpan *top,
                           const HostdSpan *client);
/* A disk goes away: its waiting spans are dropped, its images unbound. */
void hostd_rbd_join_forget(HostdRbdJoin *j, void *disk);
/* Which image (name, gid) is bound to @disk; FALSE: none. */
bool hostd_rbd_join_disk_image(const HostdRbdJoin *j, const void *disk,
                               const char **pool, const char **name,
                               uint64_t *gid);

/* From the collectors (ceph-feed.h). */
void hostd_rbd_join_collectors(HostdRbdJoin *j, unsigned n);
void hostd_rbd_join_op(HostdRbdJoin *j, unsigned collector,
                       const blkin_osd_op *op);
void hostd_rbd_join_clock(HostdRbdJoin *j, unsigned collector,
                          int64_t wall_minus_mono_ns, int64_t bound_ns,
                          bool same_host);
void hostd_rbd_join_progress(HostdRbdJoin *j, unsigned collector,
                             int64_t wall_ns);
void hostd_rbd_join_connected(HostdRbdJoin *j, unsigned collector, bool up);
/* How many of the collector's OSDs do not answer now. */
void hostd_rbd_join_unreadable(HostdRbdJoin *j, unsigned collector, unsigned n);
/* Ops between @from_ns and @to_ns (OSD wall) may be missing, or an OSD
 * was down then: calls in that time without an op are OP_MISSING. */
void hostd_rbd_join_gap(HostdRbdJoin *j, unsigned collector, int64_t from_ns,
                        int64_t to_ns);

/* Joins what can be; what waited too long goes alone. @watermark_ns: our
 * clock, as the main join's. */
void hostd_rbd_join_flush(HostdRbdJoin *j, int64_t watermark_ns);
/* Start of @disk's oldest waiting span (INT64_MAX: none). */
int64_t hostd_rbd_join_horizon(const HostdRbdJoin *j, const void *disk);
const HostdRbdClock *hostd_rbd_join_clock_of(const HostdRbdJoin *j,
                                             unsigned collector);
const HostdRbdCounters *hostd_rbd_join_counters(const HostdRbdJoin *j);
size_t hostd_rbd_join_pending(const HostdRbdJoin *j);

/*
 * Ceph's striping: the object extents of @length bytes at @offset of an
 * image (object size, stripe unit and count; a unit or count of 0 means
 * the default, one object after the other). Calls @fn with each object
 * number, offset in it and length; returns how many.
 */
unsigned hostd_rbd_extents(uint64_t object_size, uint64_t stripe_unit,
                           uint64_t stripe_count, uint64_t offset,
                           uint64_t length,
                           void (*fn)(void *opaque, uint64_t objno,
                                      uint64_t off, uint64_t len),
                           void *opaque);
/* The data object's name: format 2 "<prefix>.%016x", format 1 "%012x". */
void hostd_rbd_object_name(const char *prefix, uint64_t objno, char *buf,
                           size_t size);

#endif
