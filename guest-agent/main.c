/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-guest-agent: command line, daemon mode, then agent_run().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "agent.h"
#include "blkin-proto.h"

static void usage(FILE *f, const struct agent_options *d)
{
    fprintf(f,
            "Usage: blkin-guest-agent [OPTIONS]\n"
            "\n"
            "Timestamps this guest's block requests (BPF programs on the "
            "block tracepoints,\n"
            "or perf sampling of them where the kernel has no BPF with "
            "BTF)\n"
            "and streams them to the host over a virtio-serial port "
            "(BlkKin protocol v1).\n"
            "Never blocks guest I/O: records wait in a fixed buffer and are "
            "dropped and\n"
            "counted when the host is absent or slow.\n"
            "\n"
            "  -p, --port NAME          virtio-serial port name (default "
            "%s)\n"
            "      --port-path PATH     use this character device instead\n"
            "      --socket PATH        listen on this UNIX socket instead "
            "of a port\n"
            "                           (running outside a VM; one host "
            "end at a time)\n"
            "      --disks PREFIXES     comma-separated disk name prefixes "
            "(default %s)\n"
            "      --buffer-records N   records kept while the host is "
            "away (default %u, at most %u)\n"
            "      --inflight N         requests tracked between issue and "
            "completion (default %u)\n"
            "      --ring-pages N       perf ring pages per CPU, or the BPF "
            "ring's pages (all\n"
            "                           CPUs), a power of two (default "
            "%u)\n"
            "      --flush-ms N         longest a record waits before it is "
            "sent (default %u)\n"
            "      --batch N            send early once this many are "
            "waiting (default %u)\n"
            "      --no-queue-events    skip block_rq_insert (no queue "
            "times, less overhead)\n"
            "      --mechanism M        auto (default: bpf where the kernel "
            "allows it, else\n"
            "                           perf), bpf (fail without it) or "
            "perf\n"
            "  -d, --daemon             detach and log to syslog\n"
            "      --pidfile PATH       write the daemon's pid here\n"
            "  -v, --verbose            log connections and statistics\n"
            "      --memory-bound       print the memory bound in bytes and "
            "exit\n"
            "  -V, --version            print the version and exit\n"
            "  -h, --help               show this help\n"
            "\n"
            "SIGTERM/SIGINT: flush briefly and exit 0. SIGHUP: rescan "
            "disks.\n",
            d->port_name, d->disks, d->buffer_records, BLKIN_BACKLOG_MAX,
            d->inflight, d->ring_pages, d->flush_ms, d->batch);
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v == 0 || v > 100000000ul)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int daemonize(const char *pidfile)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        return -errno;
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    if (pidfile) {
        FILE *f = fopen(pidfile, "we");

        if (!f)
            return -errno;
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }
    openlog("blkin-guest-agent", LOG_PID, LOG_DAEMON);
    agent_log_syslog = true;
    return 0;
}

enum {
    OPT_PORT_PATH = 256,
    OPT_SOCKET,
    OPT_DISKS,
    OPT_BUFFER,
    OPT_INFLIGHT,
    OPT_RING,
    OPT_FLUSH,
    OPT_BATCH,
    OPT_NOQUEUE,
    OPT_MECHANISM,
    OPT_PIDFILE,
    OPT_MEMBOUND,
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"port-path", required_argument, NULL, OPT_PORT_PATH},
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"disks", required_argument, NULL, OPT_DISKS},
        {"buffer-records", required_argument, NULL, OPT_BUFFER},
        {"inflight", required_argument, NULL, OPT_INFLIGHT},
        {"ring-pages", required_argument, NULL, OPT_RING},
        {"flush-ms", required_argument, NULL, OPT_FLUSH},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"no-queue-events", no_argument, NULL, OPT_NOQUEUE},
        {"mechanism", required_argument, NULL, OPT_MECHANISM},
        {"daemon", no_argument, NULL, 'd'},
        {"pidfile", required_argument, NULL, OPT_PIDFILE},
        {"verbose", no_argument, NULL, 'v'},
        {"memory-bound", no_argument, NULL, OPT_MEMBOUND},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct agent_options o, defaults;
    bool daemon_mode = false, membound = false;
    const char *pidfile = NULL;
    int c, r, li = -1;

    agent_default_options(&o);
    defaults = o;
    while ((c = getopt_long(argc, argv, "p:dvVh", opts, &li)) != -1) {
        r = 0;
        switch (c) {
        case 'p':
            o.port_name = optarg;
            break;
        case OPT_PORT_PATH:
            o.port_path = optarg;
            break;
        case OPT_SOCKET:
            o.socket_path = optarg;
            break;
        case OPT_DISKS:
            o.disks = optarg;
            break;
        case OPT_BUFFER:
            r = parse_u32(optarg, &o.buffer_records);
            if (r == 0 && o.buffer_records > BLKIN_BACKLOG_MAX) {
                /* The host would close the channel on every reconnect. */
                fprintf(stderr,
                        "blkin-guest-agent: --buffer-records is at most %u: "
                        "the host takes no larger backlog before the first "
                        "clock exchange (docs/protocol.md)\n",
                        BLKIN_BACKLOG_MAX);
                return 2;
            }
            break;
        case OPT_INFLIGHT:
            r = parse_u32(optarg, &o.inflight);
            break;
        case OPT_RING:
            r = parse_u32(optarg, &o.ring_pages);
            if (!r && (o.ring_pages & (o.ring_pages - 1)))
                r = -EINVAL;
            break;
        case OPT_FLUSH:
            r = parse_u32(optarg, &o.flush_ms);
            break;
        case OPT_BATCH:
            r = parse_u32(optarg, &o.batch);
            break;
        case OPT_NOQUEUE:
            o.queue_events = false;
            break;
        case OPT_MECHANISM:
            if (!strcmp(optarg, "auto"))
                o.mechanism = AGENT_MECH_AUTO;
            else if (!strcmp(optarg, "bpf"))
                o.mechanism = AGENT_MECH_BPF;
            else if (!strcmp(optarg, "perf"))
                o.mechanism = AGENT_MECH_PERF;
            else
                r = -EINVAL;
            break;
        case 'd':
            daemon_mode = true;
            break;
        case OPT_PIDFILE:
            pidfile = optarg;
            break;
        case 'v':
            o.verbose = true;
            break;
        case OPT_MEMBOUND:
            membound = true;
            break;
        case 'V':
            puts(AGENT_VERSION);
            return 0;
        case 'h':
            usage(stdout, &defaults);
            return 0;
        default:
            usage(stderr, &defaults);
            return 2;
        }
        if (r < 0) {
            /* Only long options take numbers: @li names the one given. */
            fprintf(stderr, "blkin-guest-agent: bad value for --%s: '%s'\n",
                    li >= 0 ? opts[li].name : "?", optarg);
            return 2;
        }
        li = -1;
    }
    if (optind < argc) {
        usage(stderr, &defaults);
        return 2;
    }
    if (membound) {
        long ncpu = sysconf(_SC_NPROCESSORS_CONF);

        printf("%llu\n", (unsigned long long)agent_memory_bound(
                             &o, (unsigned)(ncpu > 0 ? ncpu : 1)));
        return 0;
    }
    if (daemon_mode) {
        r = daemonize(pidfile);
        if (r < 0) {
            fprintf(stderr, "blkin-guest-agent: daemonize: %s\n", strerror(-r));
            return 1;
        }
    }
    r = agent_run(&o);
    if (r < 0) {
        agent_log(LOG_ERR, "exiting: %s", strerror(-r));
        return 1;
    }
    return 0;
}
