/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * live-health.h: how the LTTng live input has fared: connected or not, how
 * often it was lost and read again, and how long hostd was without it.
 *
 * Spans recorded while hostd cannot read the live session (the relay daemon
 * or the session daemon gone, the session destroyed) never reach it, so the
 * reports have a gap; this is what tells an operator when and how long.
 * Shown by `blkin status` and /metrics.
 */
#ifndef HOSTD_LIVE_HEALTH_H
#define HOSTD_LIVE_HEALTH_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdint.h>

typedef enum {
    HOSTD_LIVE_CONNECTING, /* never read yet since start */
    HOSTD_LIVE_CONNECTED,  /* reading the session */
    HOSTD_LIVE_LOST,       /* was read, is gone, retrying */
} HostdLiveState;

typedef struct HostdLiveHealth {
    HostdLiveState state;
    uint64_t losses;     /* times a connected session was lost */
    uint64_t reconnects; /* times it was read again after a loss */
    uint64_t attempts_failed;
    int64_t down_since_ns; /* monotonic; start of the current outage */
    int64_t down_total_ns; /* finished outages (after a first connection) */
    int64_t last_lost_ns;  /* monotonic, 0: never */
    int64_t last_back_ns;  /* monotonic, 0: never */
    int64_t last_down_ns;  /* length of the last finished outage */
    char *last_error;
} HostdLiveHealth;

HostdLiveHealth *hostd_live_health_new(int64_t now_ns);
void hostd_live_health_free(HostdLiveHealth *lh);

/* The session delivers (idempotent while connected). */
void hostd_live_health_up(HostdLiveHealth *lh, int64_t now_ns);
/* Reading failed or ended; @why may be NULL. A failed attempt while down
 * only counts and keeps the reason. */
void hostd_live_health_down(HostdLiveHealth *lh, int64_t now_ns,
                            const char *why);
/* Time spent lost, the current outage included. */
int64_t hostd_live_health_down_ns(const HostdLiveHealth *lh, int64_t now_ns);
const char *hostd_live_state_name(HostdLiveState s);

/* Adds a "trace" object member to an object being built. */
void hostd_live_health_json(const HostdLiveHealth *lh, JsonBuilder *b,
                            int64_t now_ns);
/* Appends the Prometheus families. */
void hostd_live_health_metrics(const HostdLiveHealth *lh, GString *s,
                               int64_t now_ns);

#endif
