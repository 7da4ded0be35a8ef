/*
 * agent-conn.c: one VM's agent channel (agent-conn.h).
 */
#include "agent-conn.h"

#include "blkin-channel.h"
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#define RECONNECT_MS 1000
#define PROBE_MS     200
/* Requests that arrive before the first clock estimate wait, up to this. */
#define PRE_SYNC_MAX 65536
/* Scheduling slack on top of the clock bound (vCPU and TCG delays). */
#define SLACK_NS (2LL * 1000000)

typedef struct PendingReq {
    HostdDisk *disk;
    struct blkin_request r;
} PendingReq;

struct HostdAgentConn {
    HostdVm *vm;
    int fd;
    guint io_watch;
    guint reconnect_timer;
    guint probe_timer;
    uint64_t reconnects;
    uint64_t pre_sync_dropped;
    GArray *pre_sync; /* PendingReq */
    struct blkin_clock_estimate est;
    struct blkin_channel ch; /* large: keep last */
};

static int64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

static uint8_t schema_op(uint8_t proto_op)
{
    switch (proto_op) {
    case BLKIN_OP_READ:
        return 1;
    case BLKIN_OP_WRITE:
        return 2;
    case BLKIN_OP_WRITE_ZEROES:
        return 3;
    case BLKIN_OP_DISCARD:
        return 4;
    case BLKIN_OP_FLUSH:
        return 5;
    default:
        return 0;
    }
}

static void add_guest(HostdAgentConn *c, HostdDisk *d,
                      const struct blkin_request *r)
{
    HostdGuestReq g = {
        .offset = r->sector * 512,
        .bytes = r->bytes,
        .error = r->error,
        .op = schema_op(r->op),
    };

    if (!g.op)
        return;
    g.issue_ns = blkin_clock_to_host(&c->est, r->issue_ns);
    g.complete_ns = blkin_clock_to_host(&c->est, r->complete_ns);
    g.queue_ns = r->queue_ns ? blkin_clock_to_host(&c->est, r->queue_ns) : 0;
    hostd_model_guest(c->vm->model, d, &g);
}

static void on_request(HostdAgentConn *c, const struct blkin_event *ev)
{
    HostdDisk *d = NULL;

    if (ev->request.dev && ev->request.dev->serial[0])
        d = hostd_vm_disk_by_serial(c->vm, ev->request.dev->serial);
    if (!d) {
        c->vm->foreign_records++;
        return;
    }
    if (c->est.valid) {
        add_guest(c, d, ev->request.req);
        return;
    }
    if (c->pre_sync->len >= PRE_SYNC_MAX) {
        c->pre_sync_dropped++;
        return;
    }
    PendingReq p = {.disk = d, .r = *ev->request.req};
    g_array_append_val(c->pre_sync, p);
}

static void on_event(void *user, const struct blkin_event *ev)
{
    HostdAgentConn *c = user;

    switch (ev->type) {
    case BLKIN_EV_REQUEST:
        on_request(c, ev);
        break;
    case BLKIN_EV_CLOCK:
        c->est = *ev->clock.est;
        if (c->est.valid && c->pre_sync->len) {
            for (guint i = 0; i < c->pre_sync->len; i++) {
                PendingReq *p = &g_array_index(c->pre_sync, PendingReq, i);
                add_guest(c, p->disk, &p->r);
            }
            g_array_set_size(c->pre_sync, 0);
        }
        break;
    case BLKIN_EV_DROPS:
        c->vm->agent_drops =
            ev->drops->dropped_records + ev->drops->lost_events;
        break;
    case BLKIN_EV_GAP:
        c->vm->agent_gap += ev->gap.got - ev->gap.expected;
        break;
    case BLKIN_EV_INVALID:
        c->vm->invalid++;
        break;
    default:
        break;
    }
}

static void send_all(HostdAgentConn *c, const uint8_t *buf, ssize_t n)
{
    /* Small frames on a local socket; a short write means the peer is
     * stuck or gone, and the probe is simply lost. */
    if (n > 0 && c->fd >= 0 && send(c->fd, buf, n, MSG_NOSIGNAL) < 0 &&
        errno != EAGAIN)
        g_debug("agent %s: send: %s", c->vm->name, g_strerror(errno));
}

static gboolean probe_cb(gpointer user)
{
    HostdAgentConn *c = user;
    uint8_t buf[256];

    send_all(c, buf,
             blkin_channel_make_probe(&c->ch, buf, sizeof(buf), now_ns()));
    return G_SOURCE_CONTINUE;
}

static gboolean try_connect(gpointer user);

static void disconnect(HostdAgentConn *c)
{
    g_clear_handle_id(&c->io_watch, g_source_remove);
    g_clear_handle_id(&c->probe_timer, g_source_remove);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (!c->reconnect_timer)
        c->reconnect_timer = g_timeout_add(RECONNECT_MS, try_connect, c);
}

static gboolean readable_cb(gint fd, GIOCondition cond, gpointer user)
{
    HostdAgentConn *c = user;
    uint8_t buf[65536];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n > 0) {
        blkin_channel_feed(&c->ch, buf, n, now_ns());
        return G_SOURCE_CONTINUE;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return G_SOURCE_CONTINUE;
    g_info("agent %s: channel closed", c->vm->name);
    c->io_watch = 0;
    disconnect(c);
    return G_SOURCE_REMOVE;
}

static gboolean try_connect(gpointer user)
{
    HostdAgentConn *c = user;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    uint8_t buf[256];
    int fd;

    c->reconnect_timer = 0;
    if (strlen(c->vm->agent_socket) >= sizeof(sa.sun_path)) {
        g_warning("agent %s: socket path too long", c->vm->name);
        return G_SOURCE_REMOVE;
    }
    strcpy(sa.sun_path, c->vm->agent_socket);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        c->reconnect_timer = g_timeout_add(RECONNECT_MS, try_connect, c);
        return G_SOURCE_REMOVE;
    }
    c->fd = fd;
    c->reconnects++;
    g_info("agent %s: connected to %s", c->vm->name, c->vm->agent_socket);
    blkin_channel_reconnected(&c->ch);
    c->io_watch =
        g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, readable_cb, c);
    send_all(c, buf,
             blkin_channel_make_hello(&c->ch, buf, sizeof(buf), now_ns()));
    c->probe_timer = g_timeout_add(PROBE_MS, probe_cb, c);
    probe_cb(c);
    return G_SOURCE_REMOVE;
}

HostdAgentConn *hostd_agent_conn_new(HostdVm *vm)
{
    HostdAgentConn *c = g_malloc0(sizeof(*c));
    struct blkin_channel_limits lim;

    c->vm = vm;
    c->fd = -1;
    c->pre_sync = g_array_new(FALSE, FALSE, sizeof(PendingReq));
    blkin_channel_default_limits(&lim);
    blkin_channel_init(&c->ch, &lim, on_event, c);
    try_connect(c);
    return c;
}

void hostd_agent_conn_free(HostdAgentConn *c)
{
    if (!c)
        return;
    g_clear_handle_id(&c->io_watch, g_source_remove);
    g_clear_handle_id(&c->probe_timer, g_source_remove);
    g_clear_handle_id(&c->reconnect_timer, g_source_remove);
    if (c->fd >= 0)
        close(c->fd);
    g_array_unref(c->pre_sync);
    g_free(c);
}

bool hostd_agent_conn_connected(const HostdAgentConn *c)
{
    return c && c->fd >= 0;
}

bool hostd_agent_conn_clock(const HostdAgentConn *c,
                            struct blkin_clock_estimate *out)
{
    if (!c || !c->est.valid)
        return false;
    *out = c->est;
    return true;
}

int64_t hostd_agent_conn_tolerance_ns(const HostdAgentConn *c)
{
    if (!c || !c->est.valid)
        return SLACK_NS;
    return 2 * c->est.bound_ns + SLACK_NS;
}

int64_t hostd_agent_conn_bound_ns(const HostdAgentConn *c)
{
    if (!c || !c->est.valid)
        return INT64_MAX / 4;
    return c->est.bound_ns;
}

uint64_t hostd_agent_conn_reconnects(const HostdAgentConn *c)
{
    return c ? c->reconnects : 0;
}

uint64_t hostd_agent_conn_pre_sync_dropped(const HostdAgentConn *c)
{
    return c ? c->pre_sync_dropped : 0;
}
