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
 * Runs in the GLib main context of the thread that created it. Owned by its
 * HostdVm.
 */
#ifndef HOSTD_AGENT_CONN_H
#define HOSTD_AGENT_CONN_H

#include <glib.h>
#include <stdbool.h>

#include "blkin-clock.h"

typedef struct HostdVm HostdVm;
typedef struct HostdAgentConn HostdAgentConn;

HostdAgentConn *hostd_agent_conn_new(HostdVm *vm);
void hostd_agent_conn_free(HostdAgentConn *c);

bool hostd_agent_conn_connected(const HostdAgentConn *c);
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
