/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * agent-conn.h: hostd's connection to one VM's guest agent.
 *
 * QEMU exposes the agent's virtio-serial port as a UNIX socket it listens
 * on; hostd connects as a client, and reconnects (every second) whenever
 * QEMU restarts or the socket is not there yet. Everything received goes
 * through common/blkin-channel (validation, device map, clock estimate); the
 * channel is the only identity: records land only on this VM's disks.
 * A channel that goes beyond its limits is closed with one log line and
 * retried later with a growing delay (docs/security.md).
 *
 * What the channel decodes goes to a HostdAgentSink, as a trace source's
 * events go to a HostdTraceSink: the connection knows nothing of VMs or
 * joins. Runs in the GLib main context of the thread that created it.
 */
#ifndef HOSTD_AGENT_CONN_H
#define HOSTD_AGENT_CONN_H

#include <glib.h>
#include <stdbool.h>

#include "blkin-clock.h"
#include "hostd-span.h"

typedef struct HostdAgentConn HostdAgentConn;

/* Requests one VM may have waiting in its joins (docs/security.md). */
#define HOSTD_AGENT_PENDING_PER_VM 196608
/* The node's default budget for all VMs together (--pending-budget): ~48
 * bytes each, ~37 MiB. */
#define HOSTD_AGENT_PENDING_NODE (4 * HOSTD_AGENT_PENDING_PER_VM)

/* Where a VM's channel delivers; called on the connection's thread. */
typedef struct HostdAgentSink {
    /* The VM's own disk that the guest's device map names by @serial, or
     * NULL (the record is then counted as foreign). Opaque here. */
    void *(*disk)(void *opaque, const char *serial);
    /* A guest request, on the host clock, for a disk disk() gave. */
    void (*request)(void *opaque, void *disk, const HostdGuestReq *g);
    /* The VM's requests waiting in its joins: they count against the
     * channel's pending limit (docs/security.md). */
    size_t (*pending)(void *opaque);
    /* Every VM's requests waiting in the node's joins, how many VMs hold
     * some, and the node's budget for them (docs/security.md). */
    size_t (*pending_total)(void *opaque, unsigned *vms, size_t *budget);
} HostdAgentSink;

/* What one VM's channel counted since it was created. */
typedef struct HostdAgentCounters {
    uint64_t foreign_records; /* devices not among the VM's disks */
    uint64_t agent_drops;     /* records the agent reported dropped */
    uint64_t agent_gap;       /* records missing in the stream */
    uint64_t invalid;         /* frames or records refused */
} HostdAgentCounters;

/* Connects to @socket_path (and keeps reconnecting); @vm_name is for log
 * lines. @sink is copied; @opaque is passed to its callbacks. */
HostdAgentConn *hostd_agent_conn_new(const char *vm_name,
                                     const char *socket_path,
                                     const HostdAgentSink *sink, void *opaque);
void hostd_agent_conn_free(HostdAgentConn *c);

/*
 * The channel closed (QEMU went away) at some point: what the agent had not
 * sent then is lost. *@after_ns is the newest completion it delivered
 * before, *@until_ns when the channel closed (host clock): requests that
 * started between the two were the gone QEMU's and have no guest record to
 * come, even once the channel is connected again (a restarted QEMU, whose
 * requests all start later). FALSE if it never closed.
 */
bool hostd_agent_conn_lost_after(const HostdAgentConn *c, int64_t *after_ns,
                                 int64_t *until_ns);

/* All zero for NULL (a VM without an agent). */
HostdAgentCounters hostd_agent_conn_counters(const HostdAgentConn *c);

bool hostd_agent_conn_connected(const HostdAgentConn *c);
/*
 * How far (host clock) the agent's records are known to be delivered while
 * it catches up after its channel was made or connected: the join must not
 * give up spans beyond it (a backlog the agent queued while no host end
 * read its port comes first). INT64_MAX once caught up (a record completed
 * after the connection came, or ten seconds passed), and for NULL.
 */
int64_t hostd_agent_conn_horizon_ns(HostdAgentConn *c, int64_t now);
/* Records that came before the clock estimate of their connection: they
 * wait for it (0 for NULL). */
guint hostd_agent_conn_waiting_for_clock(const HostdAgentConn *c);
/* The current guest clock estimate; false before the first exchange. */
bool hostd_agent_conn_clock(const HostdAgentConn *c,
                            struct blkin_clock_estimate *out);
/* How far apart guest and span times may be and still match (NULL: 2 ms). */
int64_t hostd_agent_conn_tolerance_ns(const HostdAgentConn *c);
/* The probe estimate's error bound; a large value before the first. */
int64_t hostd_agent_conn_bound_ns(const HostdAgentConn *c);
uint64_t hostd_agent_conn_reconnects(const HostdAgentConn *c);
uint64_t hostd_agent_conn_pre_sync_dropped(const HostdAgentConn *c);
/*
 * Times the channel was closed for going beyond a limit (frame, record or
 * byte rates, refused input, devices, pending requests; docs/security.md).
 */
uint64_t hostd_agent_conn_limit_breaches(const HostdAgentConn *c);
/* Frames to the agent lost because its socket had no room (a guest that
 * does not read its port): hostd never waits for a guest. */
uint64_t hostd_agent_conn_unsent(const HostdAgentConn *c);

#endif
