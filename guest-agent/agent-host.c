/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The agent's side of the port: finding and opening it, following the
 * host's comings and goings, answering probes and writing frames without
 * ever blocking.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "agent-int.h"
#include "port.h"

static uint64_t drops_total(const struct agent *a)
{
    uint64_t lost, unmatched, evicted;

    agent_collector_counts(a, &lost, &unmatched, &evicted);
    return a->q.dropped + lost + unmatched + evicted;
}

void agent_host_connected(struct agent *a)
{
    a->connected = true;
    a->connects++;
    a->need_hello = a->need_devmap = a->need_drops = true;
    blkin_decoder_init(a->in);
    a->nreplies = 0;
    if (a->o->verbose)
        agent_log(LOG_INFO, "host connected");
}

void agent_host_gone(struct agent *a)
{
    if (!a->connected)
        return;
    a->connected = false;
    /* The host discards a partial frame; its records are still at the head
     * of the queue (popped only once their frame is written whole) and go
     * again, with their sequence numbers, to the next host end. */
    a->out_len = a->out_off = a->out_records = 0;
    /* A socket's connection is over; the next host end is accepted anew. */
    if (a->listen_fd >= 0 && a->port_fd >= 0) {
        close(a->port_fd);
        a->port_fd = -1;
    }
    if (a->o->verbose)
        agent_log(LOG_INFO, "host disconnected");
}

void agent_close_port(struct agent *a)
{
    agent_host_gone(a);
    if (a->port_fd >= 0)
        close(a->port_fd);
    a->port_fd = -1;
    if (a->listen_fd >= 0) {
        close(a->listen_fd);
        unlink(a->o->socket_path);
    }
    a->listen_fd = -1;
}

void agent_try_open_port(struct agent *a, uint64_t now)
{
    int fd;

    if (a->port_fd >= 0 || a->listen_fd >= 0 ||
        now - a->last_port_try_ns < PORT_RETRY_NS)
        return;
    a->last_port_try_ns = now;
    if (a->o->socket_path) {
        fd = port_listen(a->o->socket_path);
        if (fd < 0) {
            agent_log(LOG_WARNING, "cannot listen on %s: %s", a->o->socket_path,
                      strerror(-fd));
            return;
        }
        a->listen_fd = fd;
        if (a->o->verbose)
            agent_log(LOG_INFO, "listening on %s", a->o->socket_path);
        return;
    }
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

void agent_read_port(struct agent *a)
{
    uint8_t buf[4096];

    for (;;) {
        ssize_t n = read(a->port_fd, buf, sizeof(buf));
        uint64_t now = mono_now();
        size_t off = 0;

        if (n == 0) {
            agent_host_gone(a);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                agent_host_gone(a);
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
            .features = (a->queue_times ? BLKIN_FEAT_QUEUE_TIMES : 0) |
                        (a->ptp.fd >= 0 ? BLKIN_FEAT_PTP : 0) |
                        (a->mech == AGENT_MECH_BPF ? BLKIN_FEAT_BPF : 0),
            .ncpus = (uint32_t)a->ncpus,
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
            .dropped_records = a->q.dropped,
            .next_seq = a->q.next_seq,
        };

        agent_collector_counts(a, &d.lost_events, &d.unmatched, &d.evicted);
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
        /* Left at the head of the queue until the whole frame is written
         * (agent_flush_port): a frame the host end only partly got is sent
         * again whole. Nothing else takes from the head meanwhile. */
        if (n > 0)
            a->out_records = cnt;
    }
    if (n > 0)
        a->out_len = (size_t)n;
}

void agent_flush_port(struct agent *a, uint64_t now, bool force)
{
    while (a->connected) {
        ssize_t w;

        if (a->out_off == a->out_len) {
            if (a->out_records) {
                recq_pop(&a->q, a->out_records);
                a->sent_records += a->out_records;
            }
            fill_out(a, now, force);
            if (!a->out_len)
                return;
        }
        w = write(a->port_fd, a->out + a->out_off, a->out_len - a->out_off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return; /* host slow or gone: poll tells which */
            agent_host_gone(a);
            return;
        }
        a->out_off += (size_t)w;
    }
}
