/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * agent-conn.c: one VM's agent channel (agent-conn.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-ingest"

#include "agent-conn.h"

#include "blkin-channel.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#define RECONNECT_MS 1000
/* How long a (re)connected agent's backlog may hold its VM's join back:
 * records it queued while no host end read its port (a migration, a
 * hostd restart, a registration that came late) come first, and the spans
 * they match must not be given up meanwhile. */
#define CATCHUP_MAX_NS (10LL * 1000000000)
#define PROBE_MS       200
/* Scheduling slack on top of the clock bound (vCPU and TCG delays). */
#define SLACK_NS (2LL * 1000000)

/*
 * Limits on what one guest may make hostd do (docs/security.md). The guest
 * is untrusted and hostd serves every VM of the node from one thread, so a
 * channel that goes beyond any of them is closed and retried later with a
 * growing delay; the other VMs never notice. Each is several times what a
 * real agent sends: it batches up to 1,024 records a frame every 100 ms,
 * answers 5 probes a second and re-sends its map only when disks change.
 */
/* Sustained rate and burst of each token bucket, per second. */
#define LIMIT_BYTES_RATE    (16u << 20) /* 16 MiB/s: ~280k records/s */
#define LIMIT_BYTES_BURST   (32u << 20)
#define LIMIT_FRAMES_RATE   1000
#define LIMIT_FRAMES_BURST  4000
#define LIMIT_RECORDS_RATE  100000
#define LIMIT_RECORDS_BURST 65536 /* the agent's whole backlog, 4 times */
/* Refused frames, records and headers: a real agent sends none. */
#define LIMIT_INVALID_RATE  100
#define LIMIT_INVALID_BURST 1000
/* Bytes skipped while hunting for a frame header, a bad header counting
 * 1 KiB. A new connection may start inside a frame (up to 64 KiB). */
#define LIMIT_JUNK_RATE  (64u << 10)
#define LIMIT_JUNK_BURST (1u << 20)
/* Devices in the guest's map (the protocol allows 256). */
#define LIMIT_DEVICES 64
/* Requests that arrive before the first clock estimate wait, up to this:
 * an agent's whole backlog and what completes while it answers the probe. */
#define PRE_SYNC_MAX (2 * BLKIN_BACKLOG_MAX)
/* Guest requests (and their spans) waiting in this VM's joins. The node's
 * budget for all VMs together is the sink's (--pending-budget). */
#define LIMIT_PENDING HOSTD_AGENT_PENDING_PER_VM
/* A record completing further than this in the host's future is refused:
 * it would sit in the join until then. */
#define FUTURE_NS (60LL * 1000000000)
/* Reconnect delay after a breach: doubles per breach up to the maximum,
 * and starts over once a connection stayed within limits this long. */
#define BACKOFF_MIN_MS   2000
#define BACKOFF_MAX_MS   120000
#define BACKOFF_RESET_NS (60LL * 1000000000)

/* Token bucket: @rate per second, at most @burst saved up. */
typedef struct Bucket {
    double tokens;
    int64_t at_ns;
} Bucket;

typedef struct PendingReq {
    void *disk; /* the sink's */
    struct blkin_request r;
} PendingReq;

struct HostdAgentConn {
    char *vm_name;
    char *socket_path;
    HostdAgentSink sink;
    void *opaque;
    HostdAgentCounters counters;
    /* Newest completion (host clock) of a record delivered, and whether the
     * channel has closed since; when it last closed, the newest completion
     * delivered before and the time (hostd_agent_conn_lost_after()). */
    int64_t last_record_ns;
    /* Catching up since catchup_from_ns (the channel was made or connected
     * then): until a record completed after it comes, or CATCHUP_MAX_NS
     * pass; conn_newest_ns is the newest completion since
     * (hostd_agent_conn_horizon_ns()). */
    bool catching_up;
    int64_t catchup_from_ns, conn_newest_ns;
    bool lost;
    bool closed_once;
    int64_t lost_after_ns, lost_at_ns;
    int fd;
    guint io_watch;
    guint reconnect_timer;
    guint probe_timer;
    uint64_t reconnects;
    uint64_t pre_sync_dropped;
    GArray *pre_sync; /* PendingReq */
    /* Limits of the current connection (reset on connect). */
    Bucket bytes, frames, records, invalid, junk;
    int64_t connected_ns;
    bool said_hello, said_clock; /* logged on this connection */
    const char *breach;          /* set while a feed runs into a limit */
    uint64_t breaches;
    uint64_t unsent;     /* frames the socket had no room for */
    unsigned backoff_ms; /* next delay after a breach */
    struct blkin_clock_estimate est;
    struct blkin_channel ch; /* large: keep last */
};

static int64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

static void bucket_fill(Bucket *b, double burst, int64_t now)
{
    b->tokens = burst;
    b->at_ns = now;
}

/* Takes @n tokens; false when the bucket cannot give them. */
static bool bucket_take(Bucket *b, double rate, double burst, uint64_t n,
                        int64_t now)
{
    if (now > b->at_ns) {
        b->tokens = MIN(burst, b->tokens + rate * (now - b->at_ns) / 1e9);
        b->at_ns = now;
    }
    b->tokens -= n;
    return b->tokens >= 0;
}

static void breach(HostdAgentConn *c, const char *why)
{
    if (!c->breach)
        c->breach = why;
}

/* blkin_clock_to_host(), refusing what does not fit a host time. */
static bool to_host(const HostdAgentConn *c, uint64_t guest_ns, int64_t *out)
{
    if (guest_ns > INT64_MAX ||
        __builtin_sub_overflow((int64_t)guest_ns, c->est.offset_ns, out))
        return false;
    return *out > 0;
}

static void add_guest(HostdAgentConn *c, void *d, const struct blkin_request *r)
{
    HostdGuestReq g = {
        .offset = r->sector * 512,
        .bytes = r->bytes,
        .error = r->error,
        .op = r->op,
        .bound_ns = c->est.bound_ns,
    };

    /* A type the agent could not tell: nothing to account it under. */
    if (g.op >= BLKIN_OP__N)
        return;
    /* Both the times and the offset come from the guest: a conversion that
     * would overflow, or lands before boot or far in the future, is a
     * record no real guest sends. */
    if (!to_host(c, r->issue_ns, &g.issue_ns) ||
        !to_host(c, r->complete_ns, &g.complete_ns) ||
        (r->queue_ns && !to_host(c, r->queue_ns, &g.queue_ns)) ||
        g.complete_ns > now_ns() + FUTURE_NS) {
        c->counters.invalid++;
        return;
    }
    c->last_record_ns = MAX(c->last_record_ns, g.complete_ns);
    c->conn_newest_ns = MAX(c->conn_newest_ns, g.complete_ns);
    if (g.complete_ns >= c->catchup_from_ns)
        c->catching_up = false;
    c->sink.request(c->opaque, d, &g);
}

static void on_request(HostdAgentConn *c, const struct blkin_event *ev)
{
    void *d = NULL;

    if (ev->request.dev && ev->request.dev->serial[0])
        d = c->sink.disk(c->opaque, ev->request.dev->serial);
    if (!d) {
        c->counters.foreign_records++;
        return;
    }
    if (c->est.valid) {
        add_guest(c, d, ev->request.req);
        return;
    }
    if (c->pre_sync->len >= PRE_SYNC_MAX) {
        /* An agent answers probes within a round trip; one that floods
         * records instead would make hostd hold them all. */
        c->pre_sync_dropped++;
        breach(c, "records without answering clock probes");
        return;
    }
    PendingReq p = {.disk = d, .r = *ev->request.req};
    g_array_append_val(c->pre_sync, p);
}

static gboolean probe_cb(gpointer user);

static void on_event(void *user, const struct blkin_event *ev)
{
    HostdAgentConn *c = user;

    /* The rest of a read that ran into a limit is not looked at. */
    if (c->breach)
        return;
    switch (ev->type) {
    case BLKIN_EV_HELLO:
        /* The agent is there: the clock exchange can start at once. */
        /* Once per connection: a guest may send HELLO in a loop. */
        if (!c->said_hello)
            g_message("agent %s: hello after %" G_GINT64_FORMAT
                      " ms on this connection",
                      c->vm_name, (now_ns() - c->connected_ns) / 1000000);
        c->said_hello = true;
        probe_cb(c);
        break;
    case BLKIN_EV_DEVMAP:
        if (ev->devmap->count > LIMIT_DEVICES) {
            breach(c, "too many devices");
            /* The channel took the map already; it must not outlive the
             * breach and serve the next connection's records. */
            c->ch.have_devmap = false;
            c->ch.devmap.count = 0;
        }
        break;
    case BLKIN_EV_REQUEST:
        on_request(c, ev);
        break;
    case BLKIN_EV_CLOCK:
        if (!c->said_clock && ev->clock.est->valid)
            g_message("agent %s: clock estimated %" G_GINT64_FORMAT
                      " ms after connecting (bound %" G_GINT64_FORMAT
                      " us), %u records waited for it",
                      c->vm_name, (now_ns() - c->connected_ns) / 1000000,
                      (int64_t)ev->clock.est->bound_ns / 1000,
                      c->pre_sync->len);
        c->said_clock |= ev->clock.est->valid;
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
        c->counters.agent_drops =
            ev->drops->dropped_records + ev->drops->lost_events;
        break;
    case BLKIN_EV_GAP:
        /* Only a jump forward loses records; a step back is the guest's
         * nonsense, not a loss (and must not wrap the counter). */
        if (ev->gap.got > ev->gap.expected)
            c->counters.agent_gap += ev->gap.got - ev->gap.expected;
        break;
    case BLKIN_EV_INVALID:
        c->counters.invalid++;
        if (!bucket_take(&c->invalid, LIMIT_INVALID_RATE, LIMIT_INVALID_BURST,
                         1, now_ns()))
            breach(c, "too many invalid frames or records");
        break;
    default:
        break;
    }
}

/*
 * Never waits: hostd's one thread serves every VM, and a guest that stops
 * taking data from its port makes QEMU stop reading this socket, whose
 * buffer then fills. A frame that does not fit is lost (a probe: the next
 * one comes); the frames are small enough (< 256 bytes) that a stream
 * socket takes each whole or not at all.
 */
static void send_frame(HostdAgentConn *c, const uint8_t *buf, ssize_t n)
{
    if (n <= 0 || c->fd < 0)
        return;
    if (send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        if (errno == EAGAIN)
            c->unsent++;
        else
            g_debug("agent %s: send: %s", c->vm_name, g_strerror(errno));
    }
}

static gboolean probe_cb(gpointer user)
{
    HostdAgentConn *c = user;
    uint8_t buf[256];

    /* Before the agent's HELLO nobody may read the port (docs/protocol.md:
     * the connection's life cycle). */
    if (c->ch.conn_hello)
        send_frame(
            c, buf,
            blkin_channel_make_probe(&c->ch, buf, sizeof(buf), now_ns()));
    return G_SOURCE_CONTINUE;
}

static gboolean try_connect(gpointer user);

static void disconnect(HostdAgentConn *c, unsigned delay_ms)
{
    g_clear_handle_id(&c->io_watch, g_source_remove);
    g_clear_handle_id(&c->probe_timer, g_source_remove);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (!c->reconnect_timer)
        c->reconnect_timer = g_timeout_add(delay_ms, try_connect, c);
}

static size_t vm_pending(HostdAgentConn *c)
{
    return c->pre_sync->len + c->sink.pending(c->opaque);
}

/*
 * The node's pending requests are over its budget, and this VM holds at
 * least its even share of them: hostile VMs together cannot make hostd hold
 * more than the budget, and a quiet VM is never the one cut.
 */
static bool over_node_budget(HostdAgentConn *c)
{
    unsigned vms = 0;
    size_t budget = 0;
    size_t total = c->sink.pending_total(c->opaque, &vms, &budget);

    return total > budget && vms && vm_pending(c) >= total / vms;
}

/* The channel was made or connected at @t: catching up starts over. */
static void catch_up_from(HostdAgentConn *c, int64_t t)
{
    c->catching_up = true;
    c->catchup_from_ns = t;
    c->conn_newest_ns = 0;
}

static bool over_half_node_budget(HostdAgentConn *c)
{
    unsigned vms = 0;
    size_t budget = 0;

    return c->sink.pending_total(c->opaque, &vms, &budget) > budget / 2;
}

/* Feeds one read and checks the connection's limits; false on breach. */
static bool feed(HostdAgentConn *c, const uint8_t *buf, size_t n)
{
    int64_t now = now_ns();
    uint64_t frames = c->ch.stats.frames;
    uint64_t records = c->ch.stats.records + c->ch.stats.invalid_records;
    uint64_t junk =
        c->ch.dec.stats.bad_headers * 1024 + c->ch.dec.stats.skipped_bytes;

    /* Bytes are charged before decoding: garbage costs the decoder too. */
    if (!bucket_take(&c->bytes, LIMIT_BYTES_RATE, LIMIT_BYTES_BURST, n, now))
        breach(c, "bytes per second over the limit");
    else
        blkin_channel_feed(&c->ch, buf, n, now);
    if (!c->breach &&
        !bucket_take(&c->frames, LIMIT_FRAMES_RATE, LIMIT_FRAMES_BURST,
                     c->ch.stats.frames - frames, now))
        breach(c, "frames per second over the limit");
    if (!c->breach &&
        !bucket_take(
            &c->records, LIMIT_RECORDS_RATE, LIMIT_RECORDS_BURST,
            c->ch.stats.records + c->ch.stats.invalid_records - records, now))
        breach(c, "records per second over the limit");
    if (!c->breach && !bucket_take(&c->junk, LIMIT_JUNK_RATE, LIMIT_JUNK_BURST,
                                   c->ch.dec.stats.bad_headers * 1024 +
                                       c->ch.dec.stats.skipped_bytes - junk,
                                   now))
        breach(c, "too many bytes that are not frames");
    if (!c->breach && vm_pending(c) > LIMIT_PENDING)
        breach(c, "too many requests pending");
    if (!c->breach && over_node_budget(c))
        breach(c, "too many requests pending on the node");
    if (!c->breach)
        return true;

    c->breaches++;
    if (now - c->connected_ns > BACKOFF_RESET_NS)
        c->backoff_ms = BACKOFF_MIN_MS;
    /* The one line a breach logs; the counter says how often. */
    g_warning("agent %s: %s: channel closed (breach %" PRIu64
              "), retrying in %u s",
              c->vm_name, c->breach, c->breaches, c->backoff_ms / 1000);
    disconnect(c, c->backoff_ms);
    /* What waited for a clock is given up, and its memory returned. */
    c->pre_sync_dropped += c->pre_sync->len;
    g_array_unref(c->pre_sync);
    c->pre_sync = g_array_new(FALSE, FALSE, sizeof(PendingReq));
    c->backoff_ms = MIN(c->backoff_ms * 2, BACKOFF_MAX_MS);
    c->breach = NULL;
    return false;
}

static gboolean readable_cb(gint fd, GIOCondition cond, gpointer user)
{
    HostdAgentConn *c = user;
    uint8_t buf[65536];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n > 0) {
        if (feed(c, buf, n))
            return G_SOURCE_CONTINUE;
        /* disconnect() removed this source already. */
        return G_SOURCE_REMOVE;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return G_SOURCE_CONTINUE;
    g_info("agent %s: channel closed", c->vm_name);
    /* QEMU closed it (it exited, or the VM stopped): what the agent had
     * not sent yet is lost with the guest. */
    c->lost = true;
    c->closed_once = true;
    c->lost_after_ns = c->last_record_ns;
    c->lost_at_ns = now_ns();
    c->io_watch = 0;
    disconnect(c, RECONNECT_MS);
    return G_SOURCE_REMOVE;
}

static gboolean try_connect(gpointer user)
{
    HostdAgentConn *c = user;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    uint8_t buf[256];
    int fd;

    c->reconnect_timer = 0;
    if (strlen(c->socket_path) >= sizeof(sa.sun_path)) {
        g_warning("agent %s: socket path too long", c->vm_name);
        return G_SOURCE_REMOVE;
    }
    strcpy(sa.sun_path, c->socket_path);
    /* Non-blocking, connect() included: QEMU's listen backlog can be full. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        c->reconnect_timer = g_timeout_add(RECONNECT_MS, try_connect, c);
        return G_SOURCE_REMOVE;
    }
    c->fd = fd;
    c->reconnects++;
    c->connected_ns = now_ns();
    c->said_hello = c->said_clock = false;
    catch_up_from(c, c->connected_ns);
    if (c->lost) {
        /* Another QEMU: a reboot, or the VM back from another node
         * (blkin_channel_peer_changed()). Until the clock is estimated
         * again its records wait in pre_sync. */
        blkin_channel_peer_changed(&c->ch);
        c->est.valid = false;
    }
    c->lost = false;
    bucket_fill(&c->bytes, LIMIT_BYTES_BURST, c->connected_ns);
    bucket_fill(&c->frames, LIMIT_FRAMES_BURST, c->connected_ns);
    bucket_fill(&c->records, LIMIT_RECORDS_BURST, c->connected_ns);
    bucket_fill(&c->invalid, LIMIT_INVALID_BURST, c->connected_ns);
    bucket_fill(&c->junk, LIMIT_JUNK_BURST, c->connected_ns);
    g_info("agent %s: connected to %s", c->vm_name, c->socket_path);
    blkin_channel_reconnected(&c->ch);
    c->io_watch =
        g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, readable_cb, c);
    send_frame(c, buf,
               blkin_channel_make_hello(&c->ch, buf, sizeof(buf), now_ns()));
    c->probe_timer = g_timeout_add(PROBE_MS, probe_cb, c);
    return G_SOURCE_REMOVE;
}

HostdAgentConn *hostd_agent_conn_new(const char *vm_name,
                                     const char *socket_path,
                                     const HostdAgentSink *sink, void *opaque)
{
    HostdAgentConn *c = g_malloc0(sizeof(*c));
    struct blkin_channel_limits lim;

    c->vm_name = g_strdup(vm_name);
    c->socket_path = g_strdup(socket_path);
    c->sink = *sink;
    c->opaque = opaque;
    c->fd = -1;
    c->pre_sync = g_array_new(FALSE, FALSE, sizeof(PendingReq));
    c->backoff_ms = BACKOFF_MIN_MS;
    /* Spans that came before the VM was registered wait for the agent's
     * first connection too. */
    catch_up_from(c, now_ns());
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
    g_free(c->vm_name);
    g_free(c->socket_path);
    g_free(c);
}

bool hostd_agent_conn_lost_after(const HostdAgentConn *c, int64_t *after_ns,
                                 int64_t *until_ns)
{
    if (!c || !c->closed_once)
        return false;
    *after_ns = c->lost_after_ns;
    *until_ns = c->lost_at_ns;
    return true;
}

HostdAgentCounters hostd_agent_conn_counters(const HostdAgentConn *c)
{
    return c ? c->counters : (HostdAgentCounters){0};
}

bool hostd_agent_conn_connected(const HostdAgentConn *c)
{
    return c && c->fd >= 0;
}

int64_t hostd_agent_conn_horizon_ns(HostdAgentConn *c, int64_t now)
{
    if (!c || !c->catching_up)
        return INT64_MAX;
    /* Nor may it make the VM (or the node) hold so much that its channel
     * is closed for it, which would lose the very backlog waited for. */
    if (now - c->catchup_from_ns > CATCHUP_MAX_NS ||
        vm_pending(c) > LIMIT_PENDING / 2 || over_half_node_budget(c)) {
        c->catching_up = false;
        return INT64_MAX;
    }
    /* Records come in completion order: the newest so far bounds what has
     * been delivered; before the first, anything since long before the
     * connection may still come. */
    return c->conn_newest_ns ? c->conn_newest_ns
                             : c->catchup_from_ns - CATCHUP_MAX_NS;
}

guint hostd_agent_conn_waiting_for_clock(const HostdAgentConn *c)
{
    return c ? c->pre_sync->len : 0;
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

uint64_t hostd_agent_conn_limit_breaches(const HostdAgentConn *c)
{
    return c ? c->breaches : 0;
}

uint64_t hostd_agent_conn_unsent(const HostdAgentConn *c)
{
    return c ? c->unsent : 0;
}
