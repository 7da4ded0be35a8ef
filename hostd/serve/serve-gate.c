/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * serve-gate.c: connection limits, deadlines and their log (serve-gate.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "serve-gate.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib-unix.h>

#define LISTEN_BACKLOG 128

typedef struct Listener {
    HostdServeGate *gate;
    HostdSurface surface;
    GSocket *socket;
    HostdServeAcceptFunc accept;
    void *opaque;
    guint watch;
    guint pause; /* resting after accept() failed for want of fds */
} Listener;

struct HostdServeGate {
    HostdServeLimits limits;
    Listener *listeners[HOSTD_SURFACE__N];
    /* Per surface: connections only waiting for their client, oldest
     * activity first (the ones to push out), and the others. */
    GQueue idle[HOSTD_SURFACE__N];
    GQueue busy[HOSTD_SURFACE__N];
    guint sweep;
    guint64 events[HOSTD_SURFACE__N][HOSTD_SERVE__N];
    guint64 events_total;
    guint log_timer;
};

static const char *const surface_names[] = {"control", "metrics"};
static const char *const event_names[] = {
    "refused at the connection limit",
    "closed to make room",
    "timed out",
    "closed for not reading answers",
    "closed for a request too long",
    "refused (peer not allowed)",
    "accept() failures",
    "answered busy",
};
G_STATIC_ASSERT(G_N_ELEMENTS(event_names) == HOSTD_SERVE__N);

static guint surface_max(HostdServeGate *g, HostdSurface s)
{
    return s == HOSTD_SURFACE_CONTROL ? g->limits.max_control_clients
                                      : g->limits.max_metrics_clients;
}

static guint count(HostdServeGate *g, HostdSurface s)
{
    return g->idle[s].length + g->busy[s].length;
}

guint hostd_serve_gate_count(HostdServeGate *g, HostdSurface s)
{
    return count(g, s);
}

static guint total(HostdServeGate *g)
{
    guint n = 0;

    for (int s = 0; s < HOSTD_SURFACE__N; s++)
        n += count(g, s);
    return n;
}

/* ---- the log: one line per period ------------------------------------- */

/* The events since the last line, as "metrics: 1873 refused at the
 * connection limit, 3 timed out; control: ...". */
static char *summary(HostdServeGate *g)
{
    GString *s = g_string_new(NULL);

    for (int f = 0; f < HOSTD_SURFACE__N; f++) {
        const char *sep = ": ";

        for (int e = 0; e < HOSTD_SERVE__N; e++) {
            if (!g->events[f][e])
                continue;
            if (sep[0] == ':')
                g_string_append_printf(s, "%s%s", s->len ? "; " : "",
                                       surface_names[f]);
            g_string_append_printf(s, "%s%" G_GUINT64_FORMAT " %s", sep,
                                   g->events[f][e], event_names[e]);
            sep = ", ";
        }
    }
    memset(g->events, 0, sizeof(g->events));
    g->events_total = 0;
    return g_string_free(s, FALSE);
}

static void log_line(HostdServeGate *g, const char *when)
{
    g_autofree char *what = summary(g);

    g_message("clients%s: %s (limits: %u control, %u metrics, %u in all; "
              "open now: %u control, %u metrics)",
              when, what, g->limits.max_control_clients,
              g->limits.max_metrics_clients, g->limits.max_clients,
              count(g, HOSTD_SURFACE_CONTROL), count(g, HOSTD_SURFACE_METRICS));
}

static gboolean log_tick(gpointer user)
{
    HostdServeGate *g = user;

    if (!g->events_total) {
        /* A quiet period: the next event is logged at once again. */
        g->log_timer = 0;
        return G_SOURCE_REMOVE;
    }
    log_line(g, " in the last " G_STRINGIFY(HOSTD_SERVE_LOG_PERIOD_S) " s");
    return G_SOURCE_CONTINUE;
}

void hostd_serve_gate_note(HostdServeGate *g, HostdSurface s,
                           HostdServeEvent why)
{
    g->events[s][why]++;
    g->events_total++;
    if (g->log_timer)
        return;
    /* The first event after a quiet period is told at once; what follows
     * is summed up at the end of each period that had any. */
    log_line(g, "");
    g->log_timer = g_timeout_add_seconds(HOSTD_SERVE_LOG_PERIOD_S, log_tick, g);
}

/* ---- connections ------------------------------------------------------ */

static GQueue *queue_of(HostdServeConn *c)
{
    return c->idle ? &c->gate->idle[c->surface] : &c->gate->busy[c->surface];
}

static gboolean sweep(gpointer user);

void hostd_serve_conn_attach(HostdServeGate *g, HostdServeConn *c,
                             HostdSurface surface, gint64 deadline_us,
                             HostdServeCloseFunc close)
{
    c->gate = g;
    c->surface = surface;
    c->idle = TRUE;
    c->deadline_us = deadline_us;
    c->close = close;
    c->link.data = c;
    c->link.prev = c->link.next = NULL;
    g_queue_push_tail_link(queue_of(c), &c->link);
    if (!g->sweep)
        g->sweep = g_timeout_add_seconds(1, sweep, g);
}

void hostd_serve_conn_detach(HostdServeConn *c)
{
    if (!c->gate)
        return;
    g_queue_unlink(queue_of(c), &c->link);
    c->gate = NULL;
}

void hostd_serve_conn_update(HostdServeConn *c, gboolean idle,
                             gint64 deadline_us)
{
    g_queue_unlink(queue_of(c), &c->link);
    c->idle = idle;
    c->deadline_us = deadline_us;
    g_queue_push_tail_link(queue_of(c), &c->link);
}

static void close_conn(HostdServeConn *c, HostdServeEvent why)
{
    HostdServeGate *g = c->gate;

    hostd_serve_gate_note(g, c->surface, why);
    hostd_serve_conn_detach(c);
    c->close(c, why);
}

static gboolean sweep(gpointer user)
{
    HostdServeGate *g = user;
    gint64 now = g_get_monotonic_time();

    for (int s = 0; s < HOSTD_SURFACE__N; s++) {
        GQueue *qs[] = {&g->idle[s], &g->busy[s]};

        for (int i = 0; i < 2; i++) {
            GList *l = qs[i]->head;

            while (l) {
                HostdServeConn *c = l->data;

                l = l->next; /* before @c goes */
                if (c->deadline_us <= now)
                    close_conn(c, HOSTD_SERVE_TIMED_OUT);
            }
        }
    }
    if (total(g) == 0) {
        g->sweep = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

/*
 * Room for one more connection on @s: true at once below the limits, or
 * after pushing out the oldest idle connection (of @s, or of any surface
 * when only the total is reached).
 */
static gboolean make_room(HostdServeGate *g, HostdSurface s)
{
    HostdServeConn *victim = NULL;

    if (count(g, s) < surface_max(g, s) && total(g) < g->limits.max_clients)
        return TRUE;
    if (g->idle[s].head)
        victim = g->idle[s].head->data;
    else if (count(g, s) < surface_max(g, s))
        for (int o = 0; o < HOSTD_SURFACE__N && !victim; o++)
            if (g->idle[o].head)
                victim = g->idle[o].head->data;
    if (!victim)
        return FALSE;
    close_conn(victim, HOSTD_SERVE_EVICTED);
    return TRUE;
}

/* ---- listening -------------------------------------------------------- */

static gboolean on_listener(gint fd, GIOCondition cond, gpointer user);

static gboolean resume(gpointer user)
{
    Listener *l = user;

    l->pause = 0;
    l->watch =
        g_unix_fd_add(g_socket_get_fd(l->socket), G_IO_IN, on_listener, l);
    return G_SOURCE_REMOVE;
}

static gboolean on_listener(gint lfd, GIOCondition cond, gpointer user)
{
    Listener *l = user;
    HostdServeGate *g = l->gate;

    for (int i = 0; i < HOSTD_SERVE_ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays in
             * the backlog, so watching on would spin. Rest, then retry. */
            hostd_serve_gate_note(g, l->surface, HOSTD_SERVE_ACCEPT_FAILED);
            l->watch = 0;
            l->pause = g_timeout_add(HOSTD_SERVE_ACCEPT_PAUSE_MS, resume, l);
            return G_SOURCE_REMOVE;
        }
        if (!make_room(g, l->surface)) {
            /* Accepted and closed rather than left in the backlog: the
             * client learns at once, and the listener does not stay
             * readable. */
            close(fd);
            hostd_serve_gate_note(g, l->surface, HOSTD_SERVE_REFUSED);
            continue;
        }
        l->accept(l->opaque, fd);
    }
    return G_SOURCE_CONTINUE;
}

void hostd_serve_gate_listen(HostdServeGate *g, HostdSurface surface,
                             GSocket *listener, HostdServeAcceptFunc accept,
                             void *opaque)
{
    Listener *l = g_new0(Listener, 1);

    hostd_serve_gate_unlisten(g, surface);
    l->gate = g;
    l->surface = surface;
    l->socket = g_object_ref(listener);
    l->accept = accept;
    l->opaque = opaque;
    g->listeners[surface] = l;
    resume(l);
}

void hostd_serve_gate_unlisten(HostdServeGate *g, HostdSurface surface)
{
    Listener *l = g->listeners[surface];

    if (!l)
        return;
    g_clear_handle_id(&l->watch, g_source_remove);
    g_clear_handle_id(&l->pause, g_source_remove);
    g_object_unref(l->socket);
    g_free(l);
    g->listeners[surface] = NULL;
}

/* ---- the gate --------------------------------------------------------- */

guint64 hostd_serve_raise_fd_limit(void)
{
    struct rlimit rl;
    rlim_t want;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    want = rl.rlim_max;
    if (want == RLIM_INFINITY || want > HOSTD_SERVE_NOFILE_MAX)
        want = HOSTD_SERVE_NOFILE_MAX;
    if (want > rl.rlim_cur) {
        rlim_t was = rl.rlim_cur;

        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            g_message("open file limit raised from %llu to %llu",
                      (unsigned long long)was, (unsigned long long)want);
            return want;
        }
        g_warning("cannot raise the open file limit to %llu: %s",
                  (unsigned long long)want, g_strerror(errno));
        return was;
    }
    return rl.rlim_cur == RLIM_INFINITY ? HOSTD_SERVE_NOFILE_MAX : rl.rlim_cur;
}

HostdServeGate *hostd_serve_gate_new(const HostdServeLimits *limits)
{
    HostdServeGate *g = g_new0(HostdServeGate, 1);
    struct rlimit rl;
    guint fd_share = G_MAXUINT;

    g->limits = *limits;
    /* Half the descriptors stay for the agent channels, the trace input,
     * the history database and the exports, whatever the configuration. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        fd_share = (guint)MIN(rl.rlim_cur / 2, G_MAXUINT);
    if (g->limits.max_clients > fd_share) {
        g_warning("max-clients %u is over half the open file limit; "
                  "using %u",
                  g->limits.max_clients, fd_share);
        g->limits.max_clients = fd_share;
    }
    g->limits.max_clients = MAX(g->limits.max_clients, 2);
    g->limits.max_control_clients =
        CLAMP(g->limits.max_control_clients, 1, g->limits.max_clients);
    g->limits.max_metrics_clients =
        CLAMP(g->limits.max_metrics_clients, 1, g->limits.max_clients);
    for (int s = 0; s < HOSTD_SURFACE__N; s++) {
        g_queue_init(&g->idle[s]);
        g_queue_init(&g->busy[s]);
    }
    return g;
}

const HostdServeLimits *hostd_serve_gate_limits(HostdServeGate *g)
{
    return &g->limits;
}

void hostd_serve_gate_free(HostdServeGate *g)
{
    if (!g)
        return;
    for (int s = 0; s < HOSTD_SURFACE__N; s++) {
        hostd_serve_gate_unlisten(g, s);
        /* The surfaces closed theirs; any left are closed here. */
        while (g->idle[s].head || g->busy[s].head) {
            GList *l = g->idle[s].head ? g->idle[s].head : g->busy[s].head;
            HostdServeConn *c = l->data;

            hostd_serve_conn_detach(c);
            c->close(c, HOSTD_SERVE_TIMED_OUT);
        }
    }
    g_clear_handle_id(&g->sweep, g_source_remove);
    g_clear_handle_id(&g->log_timer, g_source_remove);
    g_free(g);
}

GSocket *hostd_serve_listen_socket(GSocketAddress *addr, GError **err)
{
    g_autoptr(GSocket) s = NULL;
    GSocketFamily family = g_socket_address_get_family(addr);

    s = g_socket_new(family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT,
                     err);
    if (!s)
        return NULL;
    /* TCP: SO_REUSEADDR, so a restart does not wait out TIME_WAIT. */
    if (!g_socket_bind(s, addr, family != G_SOCKET_FAMILY_UNIX, err))
        return NULL;
    g_socket_set_listen_backlog(s, LISTEN_BACKLOG);
    if (!g_socket_listen(s, err))
        return NULL;
    return g_steal_pointer(&s);
}
