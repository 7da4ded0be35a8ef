/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The agent proper: collects block request timings from perf rings, keeps
 * them in bounded memory and streams them to the host when it is there.
 */
#ifndef AGENT_H
#define AGENT_H

#include <stdbool.h>
#include <stdint.h>

#define AGENT_VERSION "blkin-guest-agent " BLKIN_VERSION

/* How requests are timed (docs/guest-agent.md, "Collectors"). */
enum agent_mechanism {
    AGENT_MECH_AUTO, /* BPF where the kernel allows it, else perf */
    AGENT_MECH_BPF,
    AGENT_MECH_PERF,
};

const char *agent_mechanism_name(enum agent_mechanism m);

struct agent_options {
    const char *port_name;
    const char *port_path;   /* overrides port_name */
    const char *socket_path; /* listen here instead of using a port */
    const char *disks;       /* comma-separated name prefixes */
    uint32_t buffer_records;
    uint32_t inflight;
    uint32_t ring_pages;
    uint32_t flush_ms;
    uint32_t batch;
    enum agent_mechanism mechanism;
    bool queue_events;
    bool verbose;
};

void agent_default_options(struct agent_options *o);

/* Fixed memory the agent will use at most with these options, in bytes
 * (for AGENT_MECH_AUTO, the larger of the two collectors' bounds). */
uint64_t agent_memory_bound(const struct agent_options *o, unsigned ncpus);

/* Runs until SIGTERM/SIGINT; returns 0 or a negative errno. */
int agent_run(const struct agent_options *o);

void agent_log(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
extern bool agent_log_syslog;

#endif
