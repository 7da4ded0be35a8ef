/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-agent-dump: the host end of a guest agent's channel, for tests and
 * debugging. Connects to the UNIX socket QEMU serves for the agent's
 * virtio-serial port (-chardev socket,server=on,wait=off), reconnects when
 * it goes away, drives clock probes, validates everything through
 * common/blkin-channel and prints one JSON object per line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blkin-channel.h"
#include "blkin-host-link.h"

static volatile sig_atomic_t quit;
static FILE *out;
static bool no_requests; /* validate and count, but print no request lines */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void)sig;
    quit = 1;
}

/* Strings reaching here passed the decoder's printable-ASCII check. */
static void json_str(const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void print_flags(uint8_t f)
{
    static const char *const names[] = {"fua", "sync", "preflush", "meta",
                                        "readahead"};
    bool first = true;

    fputc('[', out);
    for (unsigned i = 0; i < 5; i++)
        if (f & (1u << i)) {
            fprintf(out, "%s\"%s\"", first ? "" : ",", names[i]);
            first = false;
        }
    fputc(']', out);
}

static void on_event(void *user, const struct blkin_event *ev)
{
    uint64_t t = *(const uint64_t *)user;

    switch (ev->type) {
    case BLKIN_EV_HELLO:
        fprintf(out,
                "{\"type\":\"hello\",\"t\":%" PRIu64
                ",\"session\":\"%016" PRIx64 "\",\"software\":",
                t, ev->hello->session_id);
        json_str(ev->hello->software);
        fprintf(out,
                ",\"features\":%u,\"ncpus\":%u,\"guest_mono_ns\":%" PRIu64
                "}\n",
                ev->hello->features, ev->hello->ncpus, ev->hello->mono_ns);
        break;
    case BLKIN_EV_DEVMAP:
        fprintf(out,
                "{\"type\":\"devmap\",\"t\":%" PRIu64
                ",\"generation\":%u,\"devices\":[",
                t, ev->devmap->generation);
        for (uint32_t i = 0; i < ev->devmap->count; i++) {
            const struct blkin_device *d = &ev->devmap->dev[i];

            fprintf(out, "%s{\"name\":", i ? "," : "");
            json_str(d->name);
            fprintf(out, ",\"major\":%u,\"minor\":%u,\"serial\":", d->major,
                    d->minor);
            json_str(d->serial);
            fprintf(out,
                    ",\"size_bytes\":%" PRIu64 ",\"logical_block_size\":%u}",
                    d->size_bytes, d->logical_block_size);
        }
        fputs("]}\n", out);
        break;
    case BLKIN_EV_REQUEST: {
        const struct blkin_request *r = ev->request.req;

        if (no_requests)
            break;
        fprintf(out,
                "{\"type\":\"request\",\"t\":%" PRIu64 ",\"seq\":%" PRIu64
                ",\"dev\":",
                t, ev->request.seq);
        json_str(ev->request.dev->name);
        fputs(",\"serial\":", out);
        json_str(ev->request.dev->serial);
        fprintf(out, ",\"op\":\"%s\",\"flags\":", blkin_op_name(r->op));
        print_flags(r->flags);
        fprintf(out,
                ",\"sector\":%" PRIu64 ",\"bytes\":%u,\"error\":%d"
                ",\"queue_ns\":%" PRIu64 ",\"issue_ns\":%" PRIu64
                ",\"complete_ns\":%" PRIu64 ",\"latency_ns\":%" PRIu64 "}\n",
                r->sector, r->bytes, r->error, r->queue_ns, r->issue_ns,
                r->complete_ns, r->complete_ns - r->issue_ns);
        break;
    }
    case BLKIN_EV_CLOCK: {
        const struct blkin_clock_estimate *e = ev->clock.est;
        const struct blkin_clock_reply *r = ev->clock.reply;

        fprintf(out,
                "{\"type\":\"clock\",\"t\":%" PRIu64 ",\"probe\":%" PRIu64
                ",\"rtt_ns\":%" PRId64 ",\"guest_recv_ns\":%" PRIu64
                ",\"guest_send_ns\":%" PRIu64 ",\"offset_ns\":%" PRId64
                ",\"bound_ns\":%" PRId64 ",\"best_rtt_ns\":%" PRId64
                ",\"samples\":%" PRIu64,
                t, r->probe_id,
                (int64_t)(ev->clock.host_recv_ns - r->host_send_ns),
                r->guest_recv_ns, r->guest_send_ns, e->offset_ns, e->bound_ns,
                e->best_rtt_ns, e->samples);
        if (e->drift_valid)
            fprintf(out, ",\"drift_ppb\":%.1f", e->drift_ppb);
        else
            fputs(",\"drift_ppb\":null", out);
        if (r->flags & BLKIN_CLOCK_PTP_VALID)
            fprintf(out, ",\"ptp_ns\":%" PRId64 ",\"ptp_mono_ns\":%" PRIu64,
                    r->ptp_ns, r->ptp_mono_ns);
        fputs("}\n", out);
        break;
    }
    case BLKIN_EV_DROPS:
        fprintf(out,
                "{\"type\":\"drops\",\"t\":%" PRIu64
                ",\"dropped_records\":%" PRIu64 ",\"lost_events\":%" PRIu64
                ",\"unmatched\":%" PRIu64 ",\"evicted\":%" PRIu64
                ",\"next_seq\":%" PRIu64 "}\n",
                t, ev->drops->dropped_records, ev->drops->lost_events,
                ev->drops->unmatched, ev->drops->evicted, ev->drops->next_seq);
        break;
    case BLKIN_EV_GAP:
        fprintf(out,
                "{\"type\":\"gap\",\"t\":%" PRIu64 ",\"expected\":%" PRIu64
                ",\"got\":%" PRIu64 "}\n",
                t, ev->gap.expected, ev->gap.got);
        break;
    case BLKIN_EV_INVALID:
        fprintf(out,
                "{\"type\":\"invalid\",\"t\":%" PRIu64 ",\"frame\":\"%s\""
                ",\"reason\":",
                t, blkin_frame_type_name(ev->invalid.frame_type));
        json_str(ev->invalid.reason);
        fputs("}\n", out);
        break;
    }
}

static void print_stats(const struct blkin_channel *ch)
{
    const struct blkin_channel_stats *s = &ch->stats;

    fprintf(out,
            "{\"type\":\"stats\",\"t\":%" PRIu64 ",\"frames\":%" PRIu64
            ",\"unknown_frames\":%" PRIu64 ",\"malformed_frames\":%" PRIu64
            ",\"records\":%" PRIu64 ",\"invalid_records\":%" PRIu64
            ",\"gaps\":%" PRIu64 ",\"missing_records\":%" PRIu64
            ",\"probes_sent\":%" PRIu64 ",\"replies\":%" PRIu64
            ",\"stray_replies\":%" PRIu64 ",\"bad_headers\":%" PRIu64
            ",\"skipped_bytes\":%" PRIu64 "}\n",
            now_ns(), s->frames, s->unknown_frames, s->malformed_frames,
            s->records, s->invalid_records, s->gaps, s->missing_records,
            s->probes_sent, s->replies, s->stray_replies,
            ch->dec.stats.bad_headers, ch->dec.stats.skipped_bytes);
}

struct dump {
    bool once;
    bool ended;
};

static void on_state(void *user, bool connected, uint64_t now, size_t partial)
{
    struct dump *d = user;

    if (connected) {
        fprintf(out, "{\"type\":\"connected\",\"t\":%" PRIu64 "}\n", now);
    } else {
        fprintf(out,
                "{\"type\":\"disconnected\",\"t\":%" PRIu64
                ",\"partial_bytes\":%zu}\n",
                now, partial);
        if (d->once)
            d->ended = true;
    }
    fflush(out);
}

/* A number from 0 to @max, nothing else; the duration may have decimals. */
static int parse_number(const char *s, double max, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (errno || end == s || *end || !(*out >= 0 && *out <= max))
        return -EINVAL;
    return 0;
}

static void bad_value(const char *option, const char *value)
{
    fprintf(stderr, "blkin-agent-dump: bad value for --%s: '%s'\n", option,
            value);
}

static void usage(FILE *f)
{
    fputs("Usage: blkin-agent-dump [OPTIONS] SOCKET\n"
          "\n"
          "Connects to the UNIX socket of a guest agent's virtio-serial "
          "port and prints\n"
          "what the agent sends as JSON lines (hello, devmap, request, "
          "clock, drops,\n"
          "gap, invalid, connected, disconnected, stats).\n"
          "\n"
          "  -i, --probe-interval-ms N  clock probe period (default 200; 0 = "
          "none)\n"
          "  -t, --duration SEC         exit after SEC seconds (default: "
          "run until signalled)\n"
          "  -o, --output FILE          write JSON lines here (default "
          "stdout)\n"
          "      --once                 exit when the connection ends "
          "instead of reconnecting\n"
          "      --no-requests          validate and count requests but do "
          "not print them\n"
          "  -V, --version              print the version and exit\n"
          "  -h, --help                 show this help\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"probe-interval-ms", required_argument, NULL, 'i'},
        {"duration", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"once", no_argument, NULL, 'O'},
        {"no-requests", no_argument, NULL, 'N'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct blkin_channel *ch;
    struct blkin_host_link link;
    struct dump d = {0};
    uint64_t probe_ns = 200000000ull, end_ns = 0, tnow = 0;
    double v;
    int c;
    struct sigaction sa = {.sa_handler = on_signal};

    out = stdout;
    while ((c = getopt_long(argc, argv, "i:t:o:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (parse_number(optarg, 3600000, &v) < 0) {
                bad_value("probe-interval-ms", optarg);
                return 2;
            }
            probe_ns = (uint64_t)v * 1000000ull;
            break;
        case 't':
            if (parse_number(optarg, 365 * 86400, &v) < 0) {
                bad_value("duration", optarg);
                return 2;
            }
            end_ns = now_ns() + (uint64_t)(v * 1e9);
            break;
        case 'o':
            out = fopen(optarg, "we");
            if (!out) {
                perror(optarg);
                return 1;
            }
            break;
        case 'O':
            d.once = true;
            break;
        case 'N':
            no_requests = true;
            break;
        case 'V':
            puts("blkin-agent-dump " BLKIN_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ch = calloc(1, sizeof(*ch));
    if (!ch)
        return 1;
    blkin_channel_init(ch, NULL, on_event, &tnow);
    if (blkin_host_link_init(&link, argv[optind], ch, probe_ns, on_state, &d) <
        0) {
        fprintf(stderr, "blkin-agent-dump: socket path too long\n");
        return 2;
    }
    while (!quit && !d.ended && (!end_ns || now_ns() < end_ns)) {
        struct pollfd p;
        int timeout;

        tnow = now_ns();
        blkin_host_link_prepare(&link, tnow, &p, &timeout);
        if (timeout > 100)
            timeout = 100; /* notice signals and the duration promptly */
        if (poll(&p, p.fd >= 0 ? 1 : 0, timeout) < 0 && errno != EINTR)
            break;
        tnow = now_ns();
        blkin_host_link_dispatch(&link, &p, tnow);
        fflush(out);
    }
    blkin_host_link_close(&link);
    print_stats(ch);
    fflush(out);
    free(ch);
    return 0;
}
