/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * serve-gate.h: admission and upkeep of the connections of hostd's
 * host-side surfaces (the control socket, the metrics endpoint), shared by
 * both so that the limits hold per surface and in total
 * (serve-limits.h, docs/security.md).
 *
 * - Listening: the gate accepts, up to HOSTD_SERVE_ACCEPT_BATCH per wake-up.
 *   At a limit, a new connection first pushes out the surface's oldest
 *   connection that is only waiting for its client (it has no request in
 *   progress and no answer pending: nothing is lost but an idle socket);
 *   with none, the new connection is closed at once. A listener that hits
 *   the process's fd limit rests instead of spinning on accept().
 * - Deadlines: each connection has one, moved by its owner on activity;
 *   a sweep once a second closes those past it.
 * - Logging: refusals, evictions and timeouts are counted and summed up
 *   in one line per HOSTD_SERVE_LOG_PERIOD_S, never a line per client.
 *
 * Main loop only; no locks.
 */
#ifndef HOSTD_SERVE_GATE_H
#define HOSTD_SERVE_GATE_H

#include <gio/gio.h>

#include "serve-limits.h"

typedef enum {
    HOSTD_SURFACE_CONTROL,
    HOSTD_SURFACE_METRICS,
    HOSTD_SURFACE__N,
} HostdSurface;

/* Why a connection ended early, for the periodic log line. */
typedef enum {
    HOSTD_SERVE_REFUSED,       /* at a limit, nothing to push out */
    HOSTD_SERVE_EVICTED,       /* idle, pushed out for a new connection */
    HOSTD_SERVE_TIMED_OUT,     /* past its deadline */
    HOSTD_SERVE_NOT_READING,   /* its unread answers went beyond the bound */
    HOSTD_SERVE_TOO_LONG,      /* a request beyond the size limit */
    HOSTD_SERVE_NOT_ALLOWED,   /* a peer the surface does not serve */
    HOSTD_SERVE_ACCEPT_FAILED, /* accept() failed (fd limit): paused */
    HOSTD_SERVE_BUSY,          /* answered "busy" (metrics: 503) */
    HOSTD_SERVE__N,
} HostdServeEvent;

typedef struct HostdServeGate HostdServeGate;
typedef struct HostdServeConn HostdServeConn;

/* Closes the connection and frees what owns it (without detaching: the
 * gate did). */
typedef void (*HostdServeCloseFunc)(HostdServeConn *c, HostdServeEvent why);

/* Embedded in a surface's client; the gate owns no memory of it. */
struct HostdServeConn {
    GList link; /* in its surface's idle or busy queue */
    HostdServeGate *gate;
    HostdSurface surface;
    gboolean idle;      /* may be pushed out for a new connection */
    gint64 deadline_us; /* monotonic; closed once past it */
    HostdServeCloseFunc close;
};

/*
 * A new connection, already counted: @fd is non-blocking and close-on-exec,
 * and now the callee's. It attaches @fd's client (hostd_serve_conn_attach)
 * or closes @fd.
 */
typedef void (*HostdServeAcceptFunc)(void *opaque, int fd);

/* @limits are clamped so that the total stays below half the fd limit. */
HostdServeGate *hostd_serve_gate_new(const HostdServeLimits *limits);
void hostd_serve_gate_free(HostdServeGate *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdServeGate, hostd_serve_gate_free)
const HostdServeLimits *hostd_serve_gate_limits(HostdServeGate *g);

/*
 * Serves @listener (bound and listening; the gate takes a reference) for
 * @surface: accepted connections go to @accept. The gate stops watching
 * it when freed, or on hostd_serve_gate_unlisten.
 */
void hostd_serve_gate_listen(HostdServeGate *g, HostdSurface surface,
                             GSocket *listener, HostdServeAcceptFunc accept,
                             void *opaque);
void hostd_serve_gate_unlisten(HostdServeGate *g, HostdSurface surface);

void hostd_serve_conn_attach(HostdServeGate *g, HostdServeConn *c,
                             HostdSurface surface, gint64 deadline_us,
                             HostdServeCloseFunc close);
/* The owner closes: the connection no longer counts. */
void hostd_serve_conn_detach(HostdServeConn *c);
/* Activity: @idle as above; the connection goes to the back of the line. */
void hostd_serve_conn_update(HostdServeConn *c, gboolean idle,
                             gint64 deadline_us);

/* Counts @why for @surface's next summary line. */
void hostd_serve_gate_note(HostdServeGate *g, HostdSurface surface,
                           HostdServeEvent why);
/* Connections open now (tests, status). */
guint hostd_serve_gate_count(HostdServeGate *g, HostdSurface surface);

/*
 * Raises RLIMIT_NOFILE's soft limit to the hard limit (at most
 * HOSTD_SERVE_NOFILE_MAX); returns the soft limit in force afterwards.
 */
guint64 hostd_serve_raise_fd_limit(void);

/* A listening stream socket on @addr (UNIX or TCP), non-blocking. */
GSocket *hostd_serve_listen_socket(GSocketAddress *addr, GError **err);

#endif
