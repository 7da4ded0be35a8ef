/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * model.h: what hostd knows about the node: VMs, their disks, and how the
 * identities of each source lead to a disk.
 *
 * Identity rules (the guest is untrusted):
 * - A guest request belongs to the VM whose agent channel it came on; its
 *   device is looked up only among that VM's registered disks, by the serial
 *   the agent's device map gave for it. A serial another VM registered, or
 *   none, leads nowhere (counted), whatever the guest claims.
 * - A filter span belongs to the disk whose registered filter id the span's
 *   (vpid, disk index) was mapped to by a blkin_qemu:disk event.
 *
 * Ownership: HostdModel owns its VMs, a VM owns its disks; lookups return
 * borrowed pointers valid until the VM is removed.
 */
#ifndef HOSTD_MODEL_H
#define HOSTD_MODEL_H

#include <glib.h>
#include <stdint.h>
#include <stdio.h>

#include "blkin-channel.h"
#include "disk-spec.h"
#include "join/join.h"
#include "join/rbd-join.h"
#include "join/remote-join.h"
#include "ingest/ceph-feed.h"
#include "ingest/live-health.h"
#include "join/span-tree.h"
#include "join/zipkin-spans.h"
#include "stats/disk-stats.h"
#include "stats/history-store.h"
#include "stats/tail-capture.h"
#include "stats/timeline.h"

/* Trace inputs (one per node's LTTng session); HostdSpan.source. */
#define HOSTD_MAX_SOURCES 16

#define HOSTD_EARLY_MAX     4096
#define HOSTD_EARLY_KEEP_NS (10LL * 1000000000LL)
#define HOSTD_HUNG_MAX      64
#define HOSTD_DEV_LISTS_MAX 65536
#define HOSTD_HUNG_KEEP_NS  (30LL * 1000000000LL)
/* How long a stopped VM stays readable by default (--linger); at least the
 * join's hold plus a history checkpoint, so its last requests reach the
 * history. */
#define HOSTD_LINGER_DEFAULT_S 600

/* Top spans of a disk whose map hostd has not seen: the filter re-emits the
 * map every map-interval (default 10 s) plus its 250 ms tick. After a
 * restart a busy host has every disk's spans of those seconds waiting. */
#define HOSTD_UNMAPPED_KEEP_NS (15LL * 1000000000LL)
#define HOSTD_UNMAPPED_MAX     65536
#define HOSTD_UNMAPPABLE_MAX   4096

/* Storage services' spans kept for `blkin trace`, and services counted. */
#define HOSTD_RECENT_BACKEND 4096
#define HOSTD_MAX_SERVICES   256

/* One storage service (zipkin service name): its spans since start. */
typedef struct HostdService {
    char *name;
    uint64_t spans, incomplete;
    HostdLatencyHist *hist; /* span durations (server: sr..ss) */
} HostdService;

typedef struct HostdVm HostdVm;
typedef struct HostdModel HostdModel;

typedef struct HostdDisk {
    HostdVm *vm;
    char *target;    /* the guest-visible name operators use: vda */
    char *serial;    /* what the agent's device map reports */
    char *filter_id; /* the blkin filter's id option */
    /* A disk served by another node: the filter id of the server-side
     * blkin node there (in qemu-nbd), or NULL. */
    char *remote_id;
    HostdRemoteJoin *remote; /* when remote_id */
    uint16_t remote_source;  /* trace input the server spans came from */
    char *device; /* what its filter says the requests come from, or NULL */
    uint64_t remote_spans;
    HostdJoin *join;
    HostdDiskStats *stats;
    /* CLOCK_REALTIME - CLOCK_MONOTONIC when its statistics began: their
     * seconds and minutes are the wall clock's as of then (to the
     * nanosecond, not re-read), and what exporters write as when a request
     * was counted is on the same seconds. */
    int64_t wall_offset_ns;
    HostdTailCapture *tail;
    HostdTimeline *timeline; /* its minutes, for the view's heatmap */
    /* The guest device (major:minor) the agent mapped to this disk. */
    gboolean have_dev;
    uint32_t major, minor;
    uint64_t guest_records;
    uint64_t spans;
    uint64_t hung_reports;
    /* Spans whose guest record was lost with the agent's channel
     * (HOSTD_JR_AGENT_GAP): counted as agent gaps, not unmatched spans. */
    uint64_t agent_lost;
    /* Requests the filter reports still in flight (blkin_qemu:hung), until
     * their span completes or they go unreported for HOSTD_HUNG_KEEP_NS:
     * HostdSpan with end_ns = the latest report's time. */
    GArray *hung;
    uint64_t latest_ns; /* newest completion accounted: "current as of" */
    /* Since hostd started (Prometheus counters and histograms). */
    HostdLatencyHist *cum[BLKIN_OP__N][BLKIN_PHASE__N];
    uint64_t cum_requests[BLKIN_OP__N];
    uint64_t cum_bytes[BLKIN_OP__N];
    /* On Ceph RBD (model-rbd.c, rbd-join.h): since hostd started, its
     * spans' librbd calls and the OSD ops that served them. */
    struct {
        gboolean seen;       /* a span of it had a librbd call below */
        uint64_t calls;      /* spans with their librbd call */
        uint64_t joined;     /* of which joined to OSD ops */
        uint64_t merged;     /* of which sharing an op with others */
        uint64_t no_op;      /* librbd needed no op (flush, unwritten) */
        uint64_t op_missing; /* an op was due but not seen (gap) */
        uint64_t no_call;    /* spans without their librbd call */
        uint64_t in_gap;     /* calls during an OSD outage or lost window */
        uint16_t collector;  /* of the last joined op */
        /* Guest requests of the disk, and of those joined down to an OSD
         * op (HOSTD_JR_OSD): the join rate users read. */
        uint64_t guest, guest_joined;
        /* Distinct OSD ops joined (one serving several requests once). */
        uint64_t osd_reads, osd_writes, osd_read_bytes, osd_write_bytes;
    } rbd;
} HostdDisk;

typedef struct HostdAgentConn HostdAgentConn;

struct HostdVm {
    HostdModel *model;
    char *name;
    char *agent_socket;    /* NULL: no agent for this VM */
    GPtrArray *disks;      /* HostdDisk *, owned */
    HostdAgentConn *agent; /* its counters: hostd_agent_conn_counters() */
    /* When it was unregistered; 0 while registered. A stopped VM lingers
     * (HostdModel.linger_ns): its last requests still join and reach the
     * history, and its report stays readable. */
    int64_t stopped_ns;
    /* The longest a joined request's guest completion came after its span's
     * end, over the last one or two HOSTD_LAG_WINDOW_NS (model.c): how far
     * before the agent's last delivered record a span whose record was lost
     * with the channel can have ended. */
    uint64_t lag_max_ns[2];
    int64_t lag_window;
};

struct HostdModel {
    GHashTable *vms;        /* name -> HostdVm *, owned */
    GHashTable *by_filter;  /* filter id -> HostdDisk * */
    GHashTable *by_remote;  /* server-side filter id -> HostdDisk * */
    GHashTable *qemu_disks; /* (source, vpid, index) -> char *filter id */
    /* How far each trace input has been delivered, in its own clock. */
    int64_t source_time_ns[HOSTD_MAX_SOURCES];
    HostdSpanTree *children; /* lower spans waiting for their parent */
    uint64_t lttng_discarded;
    /* borrowed: the local live input's outages (trace-feed 0), NULL offline */
    const HostdLiveHealth *live;
    uint64_t spans_unknown_disk; /* top spans of no registered disk */
    /* Top spans of mapped disks not registered yet (a VM's first requests
     * race its registration): replayed when it comes, else dropped.
     * HostdSpan, oldest first, at most HOSTD_EARLY_MAX. */
    GArray *early;
    /* The device requests of block-layer spans that served several
     * (virtio-blk merges), until the span reaches its disk's join:
     * span id -> DevList (model.c). At most HOSTD_DEV_LISTS_MAX. */
    GHashTable *dev_lists;
    /* Top spans of a QEMU disk whose `blkin_qemu:disk` map has not come yet:
     * hostd attached after the disk was opened (it started, or restarted,
     * later; lttng-live starts a new reader at the end of each stream) and
     * waits for the map's periodic re-emission. Replayed when it comes, and
     * the join waits for them (the guest requests they serve are held);
     * dropped after HOSTD_UNMAPPED_KEEP_NS. HostdSpan, oldest first, at most
     * HOSTD_UNMAPPED_MAX. */
    GArray *unmapped;
    /* (source, vpid, index) keys whose spans waited in vain (a filter with
     * map-interval 0): their spans no longer wait. */
    GHashTable *unmappable;
    HostdZipkinSpans *zipkin; /* services' annotations into spans */
    HostdZipkinSpan *recent;  /* ring of HOSTD_RECENT_BACKEND */
    guint recent_next, recent_len;
    GHashTable *services;      /* name -> HostdService * */
    uint64_t services_dropped; /* spans of services beyond the limit */
    FILE *capture; /* borrowed: guest requests are logged here for replay */
    HostdHistory *history; /* borrowed: closed minutes go here */
    /* How long an unregistered VM lingers (--linger). */
    int64_t linger_ns;
    /* Guest requests all VMs together may have waiting in their joins. */
    size_t pending_budget;
    /* Why the history store cannot be opened (hostd traces on without it
     * and retries), or NULL. Owned. */
    char *history_error;
    GPtrArray *exporters; /* borrowed HostdSpanExport *: joined requests */
    /* Ceph RBD (model-rbd.c): spans -> librbd calls -> OSD ops. */
    HostdRbdJoin *rbd;
    GPtrArray *ceph_feeds;  /* HostdCephFeed *, owned: the collectors */
    GHashTable *rbd_images; /* image key -> RbdOpen *: gids watched */
    guint rbd_open;         /* images open: spans are checked for calls */
    uint64_t latest_ns;     /* newest request completion accounted */
    /* Reading a recorded trace: statistics start at time 0 instead of
     * now, since the requests to come are from the past. */
    gboolean offline;
    /* Set for hostd's last flush: nothing waits any more. */
    gboolean stopping;
    int64_t started_ns;
};

HostdModel *hostd_model_new(void);
void hostd_model_free(HostdModel *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdModel, hostd_model_free)

/*
 * Registers VM @name with its disks (HostdDiskSpec *, borrowed) and agent
 * socket (NULL or "": none). Replaces a VM of the same name, unless it is
 * registered exactly so already (then its statistics are kept).
 */
HostdVm *hostd_model_add_vm(HostdModel *m, const char *name,
                            const char *agent_socket, GPtrArray *specs,
                            GError **err);
/* A VM stopped (unregistered): it lingers for m->linger_ns, then goes;
 * registering it again meanwhile takes it up where it was. Offline, or with
 * no linger, it goes at once. FALSE when there is no such VM. */
gboolean hostd_model_stop_vm(HostdModel *m, const char *name);
/* Removes a VM at once (replaced, or hostd stops). */
gboolean hostd_model_remove_vm(HostdModel *m, const char *name);
HostdVm *hostd_model_vm(HostdModel *m, const char *name);
HostdDisk *hostd_vm_disk(HostdVm *vm, const char *target);
HostdDisk *hostd_vm_disk_by_serial(HostdVm *vm, const char *serial);

/* What reports and metrics call unmatched spans and agent gaps of a disk:
 * the join's unmatched spans less those lost with the agent's channel,
 * which count as gaps. */
uint64_t hostd_disk_unmatched_spans(const HostdDisk *d);
uint64_t hostd_disk_agent_gap(const HostdDisk *d);

/* Trace input: feeds deliver to this sink, with the model as opaque. */
extern const HostdTraceSink hostd_model_trace_sink;

/* ---- model-rbd.c: disks on Ceph RBD ------------------------------------ */

/* The collectors (blkin-ceph-collector) deliver here (model as opaque). */
extern const HostdCephSink hostd_model_ceph_sink;
void hostd_model_rbd_init(HostdModel *m);
void hostd_model_rbd_free(HostdModel *m);
/* Connects to the collectors at @addrs ("HOST:PORT" each). */
void hostd_model_ceph_collectors(HostdModel *m, char **addrs);
void hostd_model_rbd_image(HostdModel *m, const HostdRbdImage *im);
void hostd_model_rbd_call(HostdModel *m, const HostdRbdCall *c);
/* A top span of @d: TRUE when it went to the RBD join (it comes back to
 * the disk's join from there). */
gboolean hostd_model_rbd_span(HostdModel *m, HostdDisk *d, const HostdSpan *s,
                              const HostdSpan *client);
/* Before the disks' joins flush; and how far @d's join may go. */
void hostd_model_rbd_flush(HostdModel *m, int64_t watermark_ns);
int64_t hostd_model_rbd_horizon(HostdModel *m, HostdDisk *d);

void hostd_model_disk_map(HostdModel *m, const HostdDiskMap *map);
void hostd_model_span(HostdModel *m, const HostdSpan *s, int64_t now_ns);
/* A virtio-blk request: its block-layer span and the device requests it
 * served, each joined on its own (docs/hostd.md, "Phases"). */
void hostd_model_device_span(HostdModel *m, const HostdSpan *s,
                             const HostdDevReq *dev, unsigned n);
void hostd_model_hung(HostdModel *m, const HostdSpan *s, uint64_t age_ns);
void hostd_model_zipkin(HostdModel *m, const HostdZipkinEvent *e);

/*
 * A guest request (host clock) for a disk; logged to the capture file when
 * there is one, so `--offline --replay` can redo the same join.
 */
void hostd_model_guest(HostdModel *m, HostdDisk *d, const HostdGuestReq *g);
/* Replays one capture line; returns FALSE for a malformed line. */
gboolean hostd_model_replay_line(HostdModel *m, const char *line);

/* Trace input @source has been delivered up to @time_ns (its clock). */
void hostd_model_source_time(HostdModel *m, unsigned source, int64_t time_ns);

/* Matches what is older than @watermark_ns; ages out stale children. */
void hostd_model_flush(HostdModel *m, int64_t watermark_ns, int64_t now_ns);

#endif
