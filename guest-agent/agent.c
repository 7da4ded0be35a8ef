/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <syslog.h>
#include <unistd.h>

#include "blk-events.h"
#include "blkin-proto.h"
#include "devmap.h"
#include "matcher.h"
#include "perf-rings.h"
#include "port.h"
#include "ptp.h"
#include "recq.h"
#include "tracefs.h"

#define MAX_PREFIXES   8
#define EVENT_BATCH    8192
#define MAX_REPLIES    16
#define DEVMAP_SCAN_NS 2000000000ull
#define SWEEP_NS       1000000000ull
#define STALE_NS       (120ull * 1000000000ull)
#define DROPS_EVERY_NS 1000000000ull
#define PORT_RETRY_NS  1000000000ull
#define CONN_CHECK_NS  100000000ull

bool agent_log_syslog;

void agent_log(int prio, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (agent_log_syslog) {
        vsyslog(prio, fmt, ap);
    } else {
        fputs("blkin-guest-agent: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}

void agent_default_options(struct agent_options *o)
{
    memset(o, 0, sizeof(*o));
    o->port_name = "org.blkin.agent.0";
    o->disks = "vd";
    o->buffer_records = 16384;
    o->inflight = 4096;
    o->ring_pages = 128;
    o->flush_ms = 100;
    o->batch = 1024;
    o->queue_events = true;
}

struct reply_slot {
    uint64_t probe_id;
    uint64_t host_send_ns;
    uint64_t guest_recv_ns;
};

struct agent {
    const struct agent_options *o;
    const char *prefixes[MAX_PREFIXES + 1];
    char prefix_buf[256];
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
    uint64_t disconnect_drops; /* records lost in a half-sent frame */
    uint64_t sent_records, connects, probes;
    uint64_t drain_ns; /* when the current drain started */
    /* Wall time spent in housekeeping, collecting, talking to the host:
     * getrusage's tick sampling misses short bursts like ours. */
    uint64_t busy_ns[3], loops;
    bool quit;
};

uint64_t agent_memory_bound(const struct agent_options *o, unsigned ncpus)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

    return (uint64_t)ncpus * (o->ring_pages + 1) * page +
           recq_memory(o->buffer_records) + matcher_memory(o->inflight) +
           EVENT_BATCH * sizeof(struct blk_event) +
           BLKIN_REQUESTS_PER_FRAME_MAX * sizeof(struct blkin_request) +
           BLKIN_FRAME_MAX + sizeof(struct blkin_decoder) +
           sizeof(struct agent);
}

/* ---- collecting -------------------------------------------------------- */

static void on_sample(void *user, uint64_t time, const uint8_t *raw,
                      uint32_t len)
{
    struct agent *a = user;
    struct blk_event ev;

    if (a->nbatch >= EVENT_BATCH || !blk_decode(&a->bd, time, raw, len, &ev))
        return;
    /* Only the mapped disks: the host cannot place anything else. */
    if (!devmap_has_dev(&a->map, ev.dev))
        return;
    a->batch[a->nbatch++] = ev;
}

static void on_request(void *user, const struct blkin_request *r)
{
    struct agent *a = user;

    /* One clock read per drain is precise enough for the flush timer. */
    recq_push(&a->q, r, a->drain_ns);
}

static int cmp_time(const void *x, const void *y)
{
    const struct blk_event *a = x, *b = y;

    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    /* Same instant: let an issue precede its completion. */
    return (int)a->kind - (int)b->kind;
}

static bool sorted(const struct blk_event *e, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++)
        if (cmp_time(&e[i - 1], &e[i]) > 0)
            return false;
    return true;
}

static void collect(struct agent *a)
{
    /* Each ring may fill its share of the batch; loop while they do. */
    unsigned per_ring = EVENT_BATCH / (unsigned)a->rings.nr;

    for (int round = 0; round < 8; round++) {
        unsigned got;

        a->nbatch = 0;
        a->drain_ns = mono_now();
        got = perf_rings_drain(&a->rings, per_ring, on_sample, a);
        /* One CPU's ring is already in time order: sort only a mix. */
        if (!sorted(a->batch, a->nbatch))
            qsort(a->batch, a->nbatch, sizeof(a->batch[0]), cmp_time);
        for (uint32_t i = 0; i < a->nbatch; i++)
            matcher_event(&a->match, &a->batch[i], on_request, a);
        matcher_retry_orphans(&a->match, on_request, a);
        if (got < per_ring)
            break;
    }
}

/* ---- the host connection ----------------------------------------------- */

static uint64_t drops_total(const struct agent *a)
{
    return a->q.dropped + a->disconnect_drops + a->rings.lost +
           a->match.unmatched + a->match.evicted;
}

static void on_connect(struct agent *a)
{
    a->connected = true;
    a->connects++;
    a->need_hello = a->need_devmap = a->need_drops = true;
    blkin_decoder_init(a->in);
    a->nreplies = 0;
    if (a->o->verbose)
        agent_log(LOG_INFO, "host connected");
}

static void on_disconnect(struct agent *a)
{
    if (!a->connected)
        return;
    a->connected = false;
    /* The host discards a partial frame; its records are lost. */
    if (a->out_off < a->out_len)
        a->disconnect_drops += a->out_records;
    a->out_len = a->out_off = a->out_records = 0;
    if (a->o->verbose)
        agent_log(LOG_INFO, "host disconnected");
}

static void close_port(struct agent *a)
{
    on_disconnect(a);
    if (a->port_fd >= 0)
        close(a->port_fd);
    a->port_fd = -1;
}

static void try_open_port(struct agent *a, uint64_t now)
{
    int fd;

    if (a->port_fd >= 0 || now - a->last_port_try_ns < PORT_RETRY_NS)
        return;
    a->last_port_try_ns = now;
    if (a->o->port_path)
        snprintf(a->port_path, sizeof(a->port_path), "%s", a->o->port_path);
    else if (port_find(a->o->port_name, a->port_path, sizeof(a->port_path)) < 0)
        return;
    fd = port_open(a->port_path);
    if (fd < 0) {
        if (a->o->verbose)
            agent_log(LOG_WARNING, "cannot open %s: %s", a->port_path,
                      strerror(-fd));
        return;
    }
    a->port_fd = fd;
    if (a->o->verbose)
        agent_log(LOG_INFO, "using port %s", a->port_path);
}

static void on_host_frame(struct agent *a, const struct blkin_frame *f,
                          uint64_t recv_ns)
{
    struct blkin_clock_probe p;

    switch (f->type) {
    case BLKIN_FRAME_CLOCK_PROBE:
        if (blkin_decode_clock_probe(f->payload, f->len, &p) < 0)
            break;
        a->probes++;
        if (a->nreplies < MAX_REPLIES)
            a->replies[a->nreplies++] =
                (struct reply_slot){p.probe_id, p.host_send_ns, recv_ns};
        break;
    case BLKIN_FRAME_HELLO:
        /* A (re)started host: it needs our state again. */
        a->need_hello = a->need_devmap = a->need_drops = true;
        break;
    default:
        break; /* unknown types are skipped */
    }
}

static void read_port(struct agent *a)
{
    uint8_t buf[4096];

    for (;;) {
        ssize_t n = read(a->port_fd, buf, sizeof(buf));
        uint64_t now = mono_now();
        size_t off = 0;

        if (n == 0) {
            on_disconnect(a);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                on_disconnect(a);
            return;
        }
        while (off < (size_t)n) {
            struct blkin_frame f;
            size_t used = 0;

            if (blkin_decoder_feed(a->in, buf + off, (size_t)n - off, &used,
                                   &f))
                on_host_frame(a, &f, now);
            off += used;
        }
    }
}

static ssize_t make_reply(struct agent *a)
{
    struct reply_slot s = a->replies[0];
    struct blkin_clock_reply r = {.probe_id = s.probe_id,
                                  .host_send_ns = s.host_send_ns,
                                  .guest_recv_ns = s.guest_recv_ns};

    memmove(a->replies, a->replies + 1, --a->nreplies * sizeof(a->replies[0]));
    if (ptp_read(&a->ptp, &r.ptp_ns, &r.ptp_mono_ns))
        r.flags |= BLKIN_CLOCK_PTP_VALID;
    /* Last, so the send time is as close to the write as it can be. */
    r.guest_send_ns = mono_now();
    return blkin_encode_clock_reply(a->out, BLKIN_FRAME_MAX, &r);
}

/* Puts the next frame to send into the (empty) out buffer. */
static void fill_out(struct agent *a, uint64_t now, bool force)
{
    ssize_t n = 0;

    a->out_off = a->out_len = a->out_records = 0;
    if (a->need_hello) {
        struct blkin_hello h = {
            .proto_version = BLKIN_PROTO_VERSION,
            .features = (a->bd.have[BLK_EV_INSERT] && a->o->queue_events
                             ? BLKIN_FEAT_QUEUE_TIMES
                             : 0) |
                        (a->ptp.fd >= 0 ? BLKIN_FEAT_PTP : 0),
            .ncpus = (uint32_t)a->rings.nr,
            .max_frame = BLKIN_FRAME_MAX,
            .session_id = a->session_id,
            .mono_ns = now,
        };

        snprintf(h.software, sizeof(h.software), "%s", AGENT_VERSION);
        n = blkin_encode_hello(a->out, BLKIN_FRAME_MAX, &h);
        a->need_hello = false;
    } else if (a->need_devmap) {
        n = blkin_encode_devmap(a->out, BLKIN_FRAME_MAX, &a->map);
        a->need_devmap = false;
    } else if (a->nreplies) {
        n = make_reply(a);
    } else if (a->need_drops || (drops_total(a) != a->reported_drops &&
                                 now - a->last_drops_ns >= DROPS_EVERY_NS)) {
        struct blkin_drops d = {
            .dropped_records = a->q.dropped + a->disconnect_drops,
            .lost_events = a->rings.lost,
            .unmatched = a->match.unmatched,
            .evicted = a->match.evicted,
            .next_seq = a->q.next_seq,
        };

        n = blkin_encode_drops(a->out, BLKIN_FRAME_MAX, &d);
        a->need_drops = false;
        a->reported_drops = drops_total(a);
        a->last_drops_ns = now;
    } else if (a->q.count && (force || a->q.count >= a->o->batch ||
                              now - recq_oldest_ns(&a->q) >=
                                  (uint64_t)a->o->flush_ms * 1000000ull)) {
        uint64_t first = 0;
        size_t cnt =
            recq_peek_run(&a->q, a->run, BLKIN_REQUESTS_PER_FRAME_MAX, &first);

        n = blkin_encode_requests(a->out, BLKIN_FRAME_MAX, first, a->run, cnt);
        if (n > 0) {
            /* Popped now: once handed to the port they are the host's. */
            recq_pop(&a->q, cnt);
            a->out_records = cnt;
        }
    }
    if (n > 0)
        a->out_len = (size_t)n;
}

static void flush_port(struct agent *a, uint64_t now, bool force)
{
    while (a->connected) {
        ssize_t w;

        if (a->out_off == a->out_len) {
            if (a->out_records)
                a->sent_records += a->out_records;
            fill_out(a, now, force);
            if (!a->out_len)
                return;
        }
        w = write(a->port_fd, a->out + a->out_off, a->out_len - a->out_off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return; /* host slow or gone: poll tells which */
            on_disconnect(a);
            return;
        }
        a->out_off += (size_t)w;
    }
}

/* ---- housekeeping ------------------------------------------------------ */

static void rescan_devices(struct agent *a, uint64_t now)
{
    a->last_scan_ns = now;
    if (devmap_scan("/sys/block", a->prefixes, &a->map, &a->scan) < 0)
        return;
    if (devmap_equal(&a->scan, &a->map))
        return;
    a->scan.generation = a->map.generation + 1;
    a->map = a->scan;
    a->need_devmap = true;
    if (a->o->verbose)
        agent_log(LOG_INFO, "device map generation %u: %u disks",
                  a->map.generation, a->map.count);
}

static void handle_signals(struct agent *a)
{
    struct signalfd_siginfo si;

    while (read(a->sfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP)
            a->last_scan_ns = 0;
        else
            a->quit = true;
    }
}

static void log_stats(const struct agent *a)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    agent_log(LOG_INFO,
              "stats: records=%llu sent=%llu queued=%u dropped=%llu "
              "lost=%llu unmatched=%llu evicted=%llu connects=%llu "
              "probes=%llu cpu_user_us=%lld cpu_sys_us=%lld maxrss_kb=%ld "
              "loops=%llu tick_us=%llu collect_us=%llu send_us=%llu",
              (unsigned long long)a->q.next_seq,
              (unsigned long long)a->sent_records, a->q.count,
              (unsigned long long)(a->q.dropped + a->disconnect_drops),
              (unsigned long long)a->rings.lost,
              (unsigned long long)a->match.unmatched,
              (unsigned long long)a->match.evicted,
              (unsigned long long)a->connects, (unsigned long long)a->probes,
              (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
              (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec,
              ru.ru_maxrss, (unsigned long long)a->loops,
              (unsigned long long)(a->busy_ns[0] / 1000),
              (unsigned long long)(a->busy_ns[1] / 1000),
              (unsigned long long)(a->busy_ns[2] / 1000));
}

/* ---- setup and the loop ------------------------------------------------ */

static int setup(struct agent *a, const struct agent_options *o)
{
    char tracefs[128];
    int ids[BLK_EV__N], nids = 0, r;
    sigset_t mask;
    char *save = NULL, *tok;
    unsigned np = 0;

    a->o = o;
    a->sfd = -1;
    a->port_fd = -1;
    a->ptp.fd = -1;

    snprintf(a->prefix_buf, sizeof(a->prefix_buf), "%s", o->disks);
    for (tok = strtok_r(a->prefix_buf, ",", &save); tok && np < MAX_PREFIXES;
         tok = strtok_r(NULL, ",", &save))
        a->prefixes[np++] = tok;
    a->prefixes[np] = NULL;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    /* A vanished host must not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    a->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a->sfd < 0)
        return -errno;

    r = tracefs_find(tracefs, sizeof(tracefs));
    if (r < 0) {
        agent_log(LOG_ERR, "no tracefs with block events: %s", strerror(-r));
        return r;
    }
    r = blk_decoder_init(&a->bd, tracefs);
    if (r < 0) {
        agent_log(LOG_ERR, "block tracepoints unusable: %s", strerror(-r));
        return r;
    }
    if (!o->queue_events) {
        a->bd.have[BLK_EV_INSERT] = false;
        a->bd.have[BLK_EV_REQUEUE] = false;
    }
    for (int k = 0; k < BLK_EV__N; k++)
        if (a->bd.have[k])
            ids[nids++] = a->bd.fmt[k].id;

    a->batch = calloc(EVENT_BATCH, sizeof(*a->batch));
    a->run = calloc(BLKIN_REQUESTS_PER_FRAME_MAX, sizeof(*a->run));
    a->out = malloc(BLKIN_FRAME_MAX);
    a->in = malloc(sizeof(*a->in));
    if (!a->batch || !a->run || !a->out || !a->in)
        return -ENOMEM;
    blkin_decoder_init(a->in);
    r = recq_init(&a->q, o->buffer_records);
    if (r < 0)
        return r;
    r = matcher_init(&a->match, o->inflight);
    if (r < 0)
        return r;

    rescan_devices(a, mono_now());
    r = perf_rings_open(&a->rings, ids, nids, o->ring_pages);
    if (r < 0) {
        agent_log(LOG_ERR, "perf_event_open on block tracepoints: %s",
                  strerror(-r));
        return r;
    }
    ptp_open(&a->ptp);

    /* A session id the host can tell restarts by; need not be secret. */
    {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

        if (fd < 0 || read(fd, &a->session_id, sizeof(a->session_id)) !=
                          (ssize_t)sizeof(a->session_id))
            a->session_id = mono_now() ^ ((uint64_t)getpid() << 32);
        if (fd >= 0)
            close(fd);
    }
    if (o->verbose)
        agent_log(
            LOG_INFO,
            "watching %u disks on %d cpus (%s queue events), memory "
            "bound %llu KiB",
            a->map.count, a->rings.nr,
            a->bd.have[BLK_EV_INSERT] ? "with" : "without",
            (unsigned long long)(agent_memory_bound(o, (unsigned)a->rings.nr) >>
                                 10));
    return 0;
}

static void teardown(struct agent *a)
{
    close_port(a);
    perf_rings_close(&a->rings);
    matcher_free(&a->match);
    recq_free(&a->q);
    ptp_close(&a->ptp);
    free(a->batch);
    free(a->run);
    free(a->out);
    free(a->in);
    if (a->sfd >= 0)
        close(a->sfd);
}

static void tick(struct agent *a, uint64_t now)
{
    if (now - a->last_scan_ns >= DEVMAP_SCAN_NS)
        rescan_devices(a, now);
    if (now - a->last_sweep_ns >= SWEEP_NS) {
        a->last_sweep_ns = now;
        matcher_sweep(&a->match, now, STALE_NS);
    }
    try_open_port(a, now);
    /* While the host is away the fd stays out of poll (it would report
     * POLLHUP continuously); look at it every CONN_CHECK_NS instead. */
    if (a->port_fd >= 0 && !a->connected &&
        now - a->last_conn_check_ns >= CONN_CHECK_NS) {
        a->last_conn_check_ns = now;
        if (port_host_connected(a->port_fd))
            on_connect(a);
    }
}

/* Gives a departing agent a short chance to hand over what it has. */
static void final_flush(struct agent *a)
{
    uint64_t deadline = mono_now() + 500000000ull;

    collect(a);
    while (a->connected && (a->q.count || a->out_off < a->out_len) &&
           mono_now() < deadline) {
        struct pollfd p = {.fd = a->port_fd, .events = POLLOUT};

        flush_port(a, mono_now(), true);
        if (a->q.count || a->out_off < a->out_len)
            poll(&p, 1, 20);
        if (p.revents & POLLHUP)
            on_disconnect(a);
    }
}

int agent_run(const struct agent_options *o)
{
    struct agent *a = calloc(1, sizeof(*a));
    struct pollfd *pfd = NULL;
    int r;

    if (!a)
        return -ENOMEM;
    r = setup(a, o);
    if (r < 0)
        goto out;
    pfd = calloc((size_t)a->rings.nr + 2, sizeof(*pfd));
    if (!pfd) {
        r = -ENOMEM;
        goto out;
    }
    while (!a->quit) {
        uint64_t now = mono_now();
        int n = 0, port_idx = -1, timeout = (int)o->flush_ms;

        tick(a, now);
        a->busy_ns[0] += mono_now() - now;
        pfd[n++] = (struct pollfd){.fd = a->sfd, .events = POLLIN};
        for (int i = 0; i < a->rings.nr; i++)
            pfd[n++] =
                (struct pollfd){.fd = a->rings.ring[i].fd, .events = POLLIN};
        if (a->connected) {
            port_idx = n;
            pfd[n++] = (struct pollfd){
                .fd = a->port_fd,
                .events = POLLIN | (a->out_off < a->out_len ? POLLOUT : 0)};
        }
        if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR) {
            r = -errno;
            goto out;
        }
        if (pfd[0].revents)
            handle_signals(a);
        now = mono_now();
        collect(a);
        a->busy_ns[1] += mono_now() - now;
        now = mono_now();
        if (port_idx >= 0) {
            if (pfd[port_idx].revents & (POLLHUP | POLLERR | POLLNVAL))
                on_disconnect(a);
            else if (pfd[port_idx].revents & POLLIN)
                read_port(a);
        }
        flush_port(a, mono_now(), false);
        a->busy_ns[2] += mono_now() - now;
        a->loops++;
    }
    final_flush(a);
    r = 0;
out:
    if (a->sfd >= 0 && a->rings.nr)
        log_stats(a);
    free(pfd);
    teardown(a);
    free(a);
    return r;
}
