/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-osd-op.h: one client op as a Ceph OSD's op tracker recorded it, and
 * the line it travels as from blkin-ceph-collector to blkin-hostd
 * (docs/backend-ceph.md, "The collector's protocol").
 *
 * The collector reads op trackers (ceph/optracker.c) into this record;
 * hostd reads it back from the line and joins it to the librbd call that
 * sent it (hostd/join/rbd-join.c). Stamps are the OSD host's wall clock
 * (CLOCK_REALTIME) in ns, as the OSD wrote them (to the microsecond); 0 is
 * "the op tracker did not record this stage".
 *
 * Plain libc, negative errno (common/'s rule): the fuzzers link it.
 */
#ifndef BLKIN_OSD_OP_H
#define BLKIN_OSD_OP_H

#include <stddef.h>
#include <stdint.h>

/* The op tracker's stages, in the order an op passes them. */
enum blkin_osd_stamp {
    BLKIN_OSD_INITIATED = 0, /* the message began to arrive */
    BLKIN_OSD_QUEUED = 1,    /* queued_for_pg */
    BLKIN_OSD_REACHED = 2,   /* reached_pg (the first time) */
    BLKIN_OSD_STARTED = 3,   /* started: the PG executes it */
    BLKIN_OSD_COMMIT = 4,    /* op_commit (writes) */
    BLKIN_OSD_SENT = 5,      /* commit_sent (writes) */
    BLKIN_OSD_DONE = 6,      /* done: out of the tracker */
    BLKIN_OSD_STAMP__N = 7,
};

/* What an op does to its object's data (the union of its data sub-ops). */
enum blkin_osd_kind {
    BLKIN_OSD_KIND_OTHER = 0, /* no data sub-op: class calls, watch, stat */
    BLKIN_OSD_KIND_READ = 1,  /* read, sparse-read, cmpext */
    BLKIN_OSD_KIND_WRITE = 2, /* write, writefull, writesame */
    BLKIN_OSD_KIND_ZERO = 3,  /* zero, truncate, delete (discards) */
    BLKIN_OSD_KIND__MAX = 3,
};

/* An extent length meaning "to the object's end" (truncate, delete). */
#define BLKIN_OSD_TO_END UINT64_MAX

#define BLKIN_OSD_OBJECT_MAX 256 /* with the NUL */

typedef struct blkin_osd_op {
    uint32_t osd;  /* osd.N */
    uint64_t gid;  /* client.<gid> */
    uint64_t inc;  /* the client's incarnation (0 for librados clients) */
    uint64_t tid;  /* the client's transaction id */
    uint32_t kind; /* enum blkin_osd_kind */
    uint64_t offset;
    uint64_t length; /* BLKIN_OSD_TO_END: from offset to the object's end */
    int64_t stamp[BLKIN_OSD_STAMP__N];
    char object[BLKIN_OSD_OBJECT_MAX]; /* the object's name (unescaped) */
} blkin_osd_op;

/* "other", "read", "write", "zero"; "invalid" beyond. */
const char *blkin_osd_kind_name(unsigned kind);

/*
 * The wire line (no newline) of @op into @buf of @size bytes:
 *   op OSD GID INC TID KIND OFFSET LENGTH S0 .. S6 OBJECT
 * OBJECT last, %-escaped (space, '%', control bytes). Returns its length,
 * or -ENOBUFS when it does not fit.
 */
int blkin_osd_op_format(const blkin_osd_op *op, char *buf, size_t size);

/* Parses one such line (without its newline) of @len bytes. -EBADMSG on
 * anything else; @op is then undefined. */
int blkin_osd_op_parse(const char *line, size_t len, blkin_osd_op *op);

/*
 * Days since 1970-01-01 of a proleptic Gregorian date, and the op tracker's
 * time stamps ("2026-12-06T21:25:54.004448+0000", or with a space for the T,
 * fractions of 0 to 9 digits, an offset of +HHMM or -HHMM or Z) as ns since
 * the epoch, years 1970 to 2261 (64 bits of ns). -EBADMSG for anything
 * else.
 */
int64_t blkin_days_from_civil(int64_t y, unsigned m, unsigned d);
int blkin_osd_parse_time(const char *s, size_t len, int64_t *ns);

#endif
