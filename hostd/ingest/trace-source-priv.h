/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * trace-source-priv.h: what trace-source.c (the babeltrace2 graph and its
 * life cycle) and trace-decode.c (checking event classes against the
 * schema, decoding events into the sink) share. Not for other files.
 *
 * Ownership: a HostdTraceSource owns its graph, its class cache (EvClass,
 * each holding a strong reference to its bt_event_class) and its error
 * string; the sink's opaque is borrowed.
 */
#ifndef HOSTD_TRACE_SOURCE_PRIV_H
#define HOSTD_TRACE_SOURCE_PRIV_H

#include <babeltrace2/babeltrace.h>
#include <stdbool.h>

#include "trace-source.h"

/* One event class, resolved against the schema on first sight
 * (trace-decode.c). */
typedef struct EvClass EvClass;

struct HostdTraceSource {
    /* (vpid, tid) -> the thread's last batch number (trace-decode.c). */
    GHashTable *batch_seq;
    bt_graph *graph;
    HostdTraceSink sink;
    void *opaque;
    GHashTable *classes; /* bt_event_class * -> EvClass * */
    EvClass *last;       /* consecutive events mostly share a class */
    HostdTraceStats stats;
    int status; /* 0 running, 1 ended, < 0 failed */
    char *error;
    uint64_t budget;  /* messages left in this poll */
    uint64_t time_ns; /* newest event/inactivity time delivered */
    uint16_t index;   /* stamped into what it decodes (HostdSpan.source) */
};

/* trace-decode.c: one message each, on the graph's sink. */
void hostd_trace_decode_event(HostdTraceSource *src, const bt_message *msg);
void hostd_trace_decode_discarded(HostdTraceSource *src, const bt_message *msg);
/* Advances the source's time to an event's or an inactivity beacon's. */
void hostd_trace_note_time(HostdTraceSource *src, const bt_message *msg);
/* The class cache's value destructor. */
void hostd_trace_ev_class_free(gpointer p);

#endif
