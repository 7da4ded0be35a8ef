/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostd.h: the daemon's top-level state, shared by main.c, the control
 * command handlers (commands.c) and the report builders (report.c).
 *
 * Everything runs on the main thread's GLib main loop: trace polling, agent
 * channels, the join tick, the control socket. No locks.
 */
#ifndef HOSTD_HOSTD_H
#define HOSTD_HOSTD_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "lttng-keeper.h"
#include "serve/control.h"
#include "serve/metrics.h"
#include "serve/serve-gate.h"
#include "serve/span-export.h"
#include "vms/model.h"
#include "stats/history-store.h"
#include "ingest/trace-feed.h"
#include "ingest/trace-source.h"

typedef struct Hostd {
    HostdModel *model;
    GPtrArray *feeds; /* HostdTraceFeed *, owned; [0] is this node's */
    guint feeds_open; /* offline: feeds not yet read to their end */
    HostdControl *control;
    HostdMetrics *metrics;
    /* Admits and limits the control socket's and the metrics' clients. */
    HostdServeGate *gate;
    GPtrArray *exporters;  /* HostdSpanExport *, owned */
    HostdHistory *history; /* NULL: no history, or it cannot be written */
    char *history_path;    /* NULL with --no-history */
    HostdHistoryOptions history_opts;
    struct HostdLibvirtWatch *libvirt_watch; /* --libvirt, or NULL */
    struct HostdGanetiWatch *ganeti_watch;   /* --ganeti-runtime, or NULL */
    HostdLttngKeeper *lttng_keeper;          /* --manage-session, or NULL */
    GMainLoop *loop;
    char *live_url;          /* LTTng live session to read, or NULL */
    char *offline_dir;       /* recorded trace to read, or NULL */
    char **remote_live;      /* other nodes' live sessions (feeds 1..) */
    char **remote_offline;   /* other nodes' recorded traces (feeds 1..) */
    int64_t hold_ns;         /* how long to wait for both sources to deliver */
    int64_t last_checkpoint; /* when the history was last checkpointed */
    FILE *capture;           /* guest requests, for offline replay (or NULL) */
    gboolean trace_ended;
    int exit_code;
} Hostd;

/* report.c */
/* @buckets: each phase's occupied buckets too. */
JsonNode *hostd_report(Hostd *h, const char *vm, const char *disk,
                       const char *window, bool buckets, GError **err);
JsonNode *hostd_report_tail(Hostd *h, const char *vm, const char *disk,
                            const char *window, GError **err);
JsonNode *hostd_report_trace(Hostd *h, uint64_t trace_id, GError **err);
JsonNode *hostd_report_status(Hostd *h);
JsonNode *hostd_report_history(Hostd *h, const char *vm, const char *disk,
                               int64_t minutes, GError **err);

/* Pieces of reports other answers build on (serve/view.c): the instant
 * reports are read at, a window's name, one disk's report object, one
 * request's timeline object (as `tail` gives them). */
uint64_t hostd_report_now(Hostd *h);
gboolean hostd_report_parse_window(const char *name, HostdStatsWindow *w,
                                   GError **err);
void hostd_report_add_disk(Hostd *h, JsonBuilder *b, HostdDisk *d,
                           HostdStatsWindow w, uint64_t now);
void hostd_report_add_request(JsonBuilder *b, const HostdDisk *d,
                              const HostdJoinedRequest *r);

/* serve/view.c: the view, per disk its report, its timeline (the heatmap)
 * and its slowest requests, as of one instant (docs/hostd.md, "The view").
 * @window: "1m" or "1h". At most HOSTD_VIEW_MAX_DISKS disks. */
#define HOSTD_VIEW_MAX_DISKS 64
JsonNode *hostd_view(Hostd *h, const char *vm, const char *disk,
                     const char *window, GError **err);

/* serve/view-serve.c: the view's paths on the metrics port (a
 * HostdHttpRouteFn, @opaque the Hostd). */
char *hostd_view_http(void *opaque, const char *head, size_t len,
                      const char **status, const char **type);

/* report-rbd.c: disks on Ceph RBD and the collectors (members "rbd" of a
 * disk's report, "ceph" of the status). */
void hostd_report_add_rbd(JsonBuilder *b, HostdModel *m, const HostdDisk *d);
void hostd_report_add_ceph(JsonBuilder *b, HostdModel *m);

/* commands.c */
JsonNode *hostd_handle_request(void *opaque, JsonObject *req);

#endif
