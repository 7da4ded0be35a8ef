/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "agent-int.h"

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

#include "devmap.h"
#include "port.h"
#include "tracefs.h"

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
    o->mechanism = AGENT_MECH_AUTO;
    o->queue_events = true;
}

const char *agent_mechanism_name(enum agent_mechanism m)
{
    switch (m) {
    case AGENT_MECH_BPF:
        return "bpf";
    case AGENT_MECH_PERF:
        return "perf";
    default:
        return "auto";
    }
}

uint64_t agent_memory_bound(const struct agent_options *o, unsigned ncpus)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t perf = (uint64_t)ncpus * (o->ring_pages + 1) * page +
                    matcher_memory(o->inflight) +
                    EVENT_BATCH * sizeof(struct blk_event);
    uint64_t bpf = bpf_collector_memory(o->inflight, o->ring_pages * page);
    uint64_t common =
        recq_memory(o->buffer_records) +
        BLKIN_REQUESTS_PER_FRAME_MAX * sizeof(struct blkin_request) +
        BLKIN_FRAME_MAX + sizeof(struct blkin_decoder) + sizeof(struct agent);

    if (o->mechanism == AGENT_MECH_BPF)
        return common + bpf;
    if (o->mechanism == AGENT_MECH_PERF || !bpf)
        return common + perf;
    return common + (bpf > perf ? bpf : perf);
}

/* ---- housekeeping ------------------------------------------------------ */

/* The BPF programs time only the mapped disks. */
static void watch_devices(struct agent *a)
{
    uint32_t devs[BLKIN_DEVICES_MAX];

    if (a->mech != AGENT_MECH_BPF)
        return;
    for (uint32_t i = 0; i < a->map.count; i++)
        devs[i] = a->map.dev[i].major << 20 | a->map.dev[i].minor;
    bpf_collector_watch(&a->bpf, devs, a->map.count);
}

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
    watch_devices(a);
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
    uint64_t lost, unmatched, evicted;

    getrusage(RUSAGE_SELF, &ru);
    agent_collector_counts(a, &lost, &unmatched, &evicted);
    agent_log(
        LOG_INFO,
        "stats: records=%llu sent=%llu queued=%u dropped=%llu "
        "lost=%llu unmatched=%llu evicted=%llu in_flight=%u connects=%llu "
        "probes=%llu cpu_user_us=%lld cpu_sys_us=%lld maxrss_kb=%ld "
        "loops=%llu tick_us=%llu collect_us=%llu send_us=%llu "
        "setup_cpu_us=%lld",
        (unsigned long long)a->q.next_seq, (unsigned long long)a->sent_records,
        a->q.count, (unsigned long long)a->q.dropped, (unsigned long long)lost,
        (unsigned long long)unmatched, (unsigned long long)evicted,
        a->mech == AGENT_MECH_BPF ? bpf_collector_in_flight(&a->bpf) : 0,
        (unsigned long long)a->connects, (unsigned long long)a->probes,
        (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
        (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec,
        ru.ru_maxrss, (unsigned long long)a->loops,
        (unsigned long long)(a->busy_ns[0] / 1000),
        (unsigned long long)(a->busy_ns[1] / 1000),
        (unsigned long long)(a->busy_ns[2] / 1000), (long long)a->setup_cpu_us);
}

/* ---- setup and the loop ------------------------------------------------ */

/* The BPF collector (bpf-collect.c); fails where the kernel lacks it. */
static int open_bpf(struct agent *a)
{
    const struct agent_options *o = a->o;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int r;

    r = bpf_collector_open(&a->bpf, o->inflight, (size_t)o->ring_pages * page,
                           o->queue_events, o->verbose);
    if (r < 0)
        return r;
    a->mech = AGENT_MECH_BPF;
    a->ncpus = ncpu > 0 ? (int)ncpu : 1;
    a->queue_times = a->bpf.queue_events;
    watch_devices(a);
    return 0;
}

/* The perf collector: tracefs formats, one ring per CPU, the matcher. */
static int open_perf(struct agent *a)
{
    const struct agent_options *o = a->o;
    char tracefs[128];
    int ids[BLK_EV__N], nids = 0, r;

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
    if (!a->batch)
        return -ENOMEM;
    r = matcher_init(&a->match, o->inflight);
    if (r < 0)
        return r;
    r = perf_rings_open(&a->rings, ids, nids, o->ring_pages);
    if (r < 0) {
        agent_log(LOG_ERR, "perf_event_open on block tracepoints: %s",
                  strerror(-r));
        return r;
    }
    a->mech = AGENT_MECH_PERF;
    a->ncpus = a->rings.nr;
    a->queue_times = a->bd.have[BLK_EV_INSERT];
    return 0;
}

static int setup(struct agent *a, const struct agent_options *o)
{
    int r;
    sigset_t mask;
    char *save = NULL, *tok;
    unsigned np = 0;

    a->o = o;
    a->sfd = -1;
    a->port_fd = -1;
    a->listen_fd = -1;
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

    a->run = calloc(BLKIN_REQUESTS_PER_FRAME_MAX, sizeof(*a->run));
    a->out = malloc(BLKIN_FRAME_MAX);
    a->in = malloc(sizeof(*a->in));
    if (!a->run || !a->out || !a->in)
        return -ENOMEM;
    blkin_decoder_init(a->in);
    r = recq_init(&a->q, o->buffer_records);
    if (r < 0)
        return r;

    rescan_devices(a, mono_now());
    r = -EOPNOTSUPP;
    if (o->mechanism != AGENT_MECH_PERF) {
        r = open_bpf(a);
        if (r < 0 && o->mechanism == AGENT_MECH_BPF) {
            agent_log(LOG_ERR, "BPF collector: %s", strerror(-r));
            return r;
        }
        if (r < 0 && o->verbose)
            agent_log(LOG_INFO, "BPF collector unavailable (%s): using perf",
                      strerror(-r));
    }
    if (r < 0) {
        r = open_perf(a);
        if (r < 0)
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
    a->started = true;
    {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        a->setup_cpu_us =
            (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
            ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    }
    if (o->verbose) {
        struct agent_options ran = *o;

        ran.mechanism = a->mech;
        agent_log(
            LOG_INFO,
            "watching %u disks on %d cpus with the %s collector (%s "
            "queue events), memory bound %llu KiB",
            a->map.count, a->ncpus, agent_mechanism_name(a->mech),
            a->queue_times ? "with" : "without",
            (unsigned long long)(agent_memory_bound(&ran, (unsigned)a->ncpus) >>
                                 10));
    }
    return 0;
}

static void teardown(struct agent *a)
{
    agent_close_port(a);
    bpf_collector_close(&a->bpf);
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
        if (a->mech == AGENT_MECH_BPF)
            bpf_collector_sweep(&a->bpf, now, STALE_NS);
        else
            matcher_sweep(&a->match, now, STALE_NS);
    }
    agent_try_open_port(a, now);
    /* While the host is away the fd stays out of poll (it would report
     * POLLHUP continuously); look at it every CONN_CHECK_NS instead. */
    if (!a->connected && now - a->last_conn_check_ns >= CONN_CHECK_NS) {
        a->last_conn_check_ns = now;
        if (a->listen_fd >= 0) {
            int fd = port_accept(a->listen_fd);

            if (fd >= 0) {
                a->port_fd = fd;
                agent_host_connected(a);
            }
        } else if (a->port_fd >= 0 && port_host_connected(a->port_fd)) {
            agent_host_connected(a);
        }
    }
}

/* How long poll() may sleep: the flush period, but no longer than until
 * tick()'s next duty (a --flush-ms of a minute must not leave a host end
 * waiting a minute to be accepted, or the device map a minute old). */
static int poll_timeout_ms(const struct agent *a, uint64_t now,
                           uint32_t flush_ms)
{
    uint64_t next = now + (uint64_t)flush_ms * 1000000ull, due;

    due = a->last_scan_ns + DEVMAP_SCAN_NS;
    if (due < next)
        next = due;
    due = a->last_sweep_ns + SWEEP_NS;
    if (due < next)
        next = due;
    if (a->port_fd < 0 && a->listen_fd < 0) {
        due = a->last_port_try_ns + PORT_RETRY_NS;
        if (due < next)
            next = due;
    }
    if (!a->connected) {
        due = a->last_conn_check_ns + CONN_CHECK_NS;
        if (due < next)
            next = due;
    }
    return next <= now ? 0 : (int)((next - now + 999999) / 1000000);
}

/* Gives a departing agent a short chance to hand over what it has. */
static void final_flush(struct agent *a)
{
    uint64_t deadline = mono_now() + 500000000ull;

    agent_collect(a);
    while (a->connected && (a->q.count || a->out_off < a->out_len) &&
           mono_now() < deadline) {
        struct pollfd p = {.fd = a->port_fd, .events = POLLOUT};

        agent_flush_port(a, mono_now(), true);
        if (a->q.count || a->out_off < a->out_len)
            poll(&p, 1, 20);
        if (p.revents & POLLHUP)
            agent_host_gone(a);
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
    pfd = calloc((size_t)a->rings.nr + 3, sizeof(*pfd));
    if (!pfd) {
        r = -ENOMEM;
        goto out;
    }
    while (!a->quit) {
        uint64_t now = mono_now();
        int n = 0, port_idx = -1, timeout;

        tick(a, now);
        a->busy_ns[0] += mono_now() - now;
        timeout = poll_timeout_ms(a, mono_now(), o->flush_ms);
        pfd[n++] = (struct pollfd){.fd = a->sfd, .events = POLLIN};
        if (a->mech == AGENT_MECH_BPF)
            pfd[n++] = (struct pollfd){.fd = bpf_collector_fd(&a->bpf),
                                       .events = POLLIN};
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
        agent_collect(a);
        a->busy_ns[1] += mono_now() - now;
        now = mono_now();
        if (port_idx >= 0) {
            if (pfd[port_idx].revents & (POLLHUP | POLLERR | POLLNVAL))
                agent_host_gone(a);
            else if (pfd[port_idx].revents & POLLIN)
                agent_read_port(a);
        }
        agent_flush_port(a, mono_now(), false);
        a->busy_ns[2] += mono_now() - now;
        a->loops++;
    }
    final_flush(a);
    r = 0;
out:
    if (a->started)
        log_stats(a);
    free(pfd);
    teardown(a);
    free(a);
    return r;
}
