/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * collector.h: what blkin-ceph-collector's parts share: the options, the
 * clients the hostds asked for (by gid and address), and the messages each
 * OSD's reader thread (osd-reader.c) sends to the main loop (collector.c),
 * which ships them to the hostds that asked.
 *
 * Ownership: the Collector owns its readers, its queue and the filter set;
 * readers borrow the Collector for their lifetime (joined before it goes).
 */
#ifndef CEPH_COLLECTOR_H
#define CEPH_COLLECTOR_H

#include <gio/gio.h>
#include <stdint.h>

#include "blkin-osd-op.h"

typedef struct CollectorOptions {
    int interval_ms;        /* between two reads of one OSD */
    int asok_timeout_ms;    /* one admin-socket command, whole */
    gsize max_answer;       /* bytes of one answer */
    int64_t history_size;   /* the op history size we set, at least */
    int history_duration_s; /* osd_op_history_duration we set */
    gboolean all_clients;   /* --print: every client, no hostd needed */
} CollectorOptions;

typedef enum CollectorMsgType {
    COLLECTOR_MSG_OP,       /* a new op */
    COLLECTOR_MSG_PROGRESS, /* the OSD's ops done before `wall_ns` are out */
    COLLECTOR_MSG_UP,       /* the OSD answers (again) */
    COLLECTOR_MSG_DOWN,     /* it does not: `text` says why */
    COLLECTOR_MSG_LOST,     /* ops between `from_ns` and `wall_ns` may have
                               left its history unread */
} CollectorMsgType;

typedef struct CollectorMsg {
    CollectorMsgType type;
    uint32_t osd;
    int64_t wall_ns;
    int64_t from_ns;
    char *text;      /* DOWN: owned */
    blkin_osd_op op; /* OP */
} CollectorMsg;

void collector_msg_free(gpointer p);

typedef struct Collector Collector;

/* The admin-socket filters ("any:ADDR") of the clients asked for, as a
 * JSON array for `filterstr`; NULL when no client is asked for (the reader
 * then reads nothing), "" with --print (all clients, no filter). */
char *collector_filter_json(Collector *c);
const CollectorOptions *collector_options(Collector *c);
/* Thread-safe: a reader hands a message over (taking ownership). */
void collector_post(Collector *c, CollectorMsg *m);

/* ---- osd-reader.c -------------------------------------------------------- */

typedef struct OsdReader OsdReader;

/* Starts reading osd.@id's op tracker at @path in a thread of its own. */
OsdReader *osd_reader_start(Collector *c, uint32_t id, const char *path);
/* Stops it, restores the history size it raised (if it can), frees it. */
void osd_reader_stop(OsdReader *r);
const char *osd_reader_path(const OsdReader *r);
uint32_t osd_reader_id(const OsdReader *r);

typedef struct OsdReaderStats {
    uint64_t polls, failures, ops_new, ops_read, bytes, lost_windows;
    int64_t history_size; /* what we set; 0 before */
    gboolean up;
} OsdReaderStats;

void osd_reader_stats(OsdReader *r, OsdReaderStats *s);

#endif
