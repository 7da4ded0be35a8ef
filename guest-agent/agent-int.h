/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The agent's state, shared by its three parts: agent.c (set-up, the loop,
 * housekeeping), agent-collect.c (the collector -- BPF records, or perf
 * samples matched here -- -> the record queue) and agent-host.c (the port:
 * connection state, frames out, probes in).
 */
#ifndef AGENT_INT_H
#define AGENT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "blk-events.h"
#include "blkin-proto.h"
#include "bpf-collect.h"
#include "matcher.h"
#include "perf-rings.h"
#include "ptp.h"
#include "recq.h"

#define MAX_PREFIXES   8
#define EVENT_BATCH    8192
#define MAX_REPLIES    16
#define DEVMAP_SCAN_NS 2000000000ull
#define SWEEP_NS       1000000000ull
#define STALE_NS       (120ull * 1000000000ull)
#define DROPS_EVERY_NS 1000000000ull
#define PORT_RETRY_NS  1000000000ull
#define CONN_CHECK_NS  100000000ull

struct reply_slot {
    uint64_t probe_id;
    uint64_t host_send_ns;
    uint64_t guest_recv_ns;
};

struct agent {
    const struct agent_options *o;
    const char *prefixes[MAX_PREFIXES + 1];
    char prefix_buf[256];
    /* The collector that runs: AGENT_MECH_BPF (bpf) or AGENT_MECH_PERF
     * (bd, rings, match, batch). */
    enum agent_mechanism mech;
    struct bpf_collector bpf;
    int ncpus;
    bool queue_times;
    struct blk_decoder bd;
    struct perf_rings rings;
    struct matcher match;
    struct recq q;
    struct ptp_clock ptp;
    struct blkin_devmap map, scan;
    struct blk_event *batch;
    uint32_t nbatch;
    struct blkin_request *run; /* scratch for one REQUESTS frame */

    int sfd;
    int port_fd;
    int listen_fd; /* --socket: the listening socket, else -1 */
    char port_path[256];
    bool connected;
    bool need_hello, need_devmap, need_drops;
    struct blkin_decoder *in;
    struct reply_slot replies[MAX_REPLIES];
    unsigned nreplies;

    uint8_t *out;
    size_t out_len, out_off, out_records;

    uint64_t session_id;
    uint64_t reported_drops; /* dropped+lost+unmatched+evicted last sent */
    uint64_t last_drops_ns, last_scan_ns, last_sweep_ns, last_port_try_ns;
    uint64_t last_conn_check_ns;
    uint64_t sent_records, connects, probes;
    uint64_t drain_ns; /* when the current drain started */
    /* Wall time spent in housekeeping, collecting, talking to the host:
     * getrusage's tick sampling misses short bursts like ours. */
    uint64_t busy_ns[3], loops;
    int64_t setup_cpu_us; /* CPU time start-up took (loading BPF: most) */
    bool quit, started;
};

/* The collector's cumulative losses (DROPS, the final statistics). */
void agent_collector_counts(const struct agent *a, uint64_t *lost,
                            uint64_t *unmatched, uint64_t *evicted);

/* agent-collect.c: drains the collector, queues finished requests. */
void agent_collect(struct agent *a);

/* agent-host.c */
void agent_try_open_port(struct agent *a, uint64_t now);
void agent_close_port(struct agent *a);
void agent_host_connected(struct agent *a);
void agent_host_gone(struct agent *a);
void agent_read_port(struct agent *a);
void agent_flush_port(struct agent *a, uint64_t now, bool force);

#endif
