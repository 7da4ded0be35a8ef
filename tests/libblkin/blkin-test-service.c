/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-test-service: a small storage service instrumented with libblkin.
 *
 * Serves reads and writes of a backing file over a UNIX stream socket
 * (blkin-test-proto.h). Each request carries its sender's packed trace
 * context; the service makes a child span of it, records sr, does the
 * pread/pwrite, records ss and replies. A stand-in for a real backend
 * (an Archipelago peer, a Ceph OSD) in tests of the trace join.
 *
 *   blkin-test-service --socket PATH --file PATH [--service-name NAME]
 *                      [--ip IP] [--port N]
 *
 * Prints "ready PID" on stdout once it accepts connections; one thread per
 * connection; SIGTERM or SIGINT remove the socket and end it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "blkin.h"
#include "blkin-test-proto.h"

static struct blkin_endpoint endpoint;
static int backing_fd = -1;
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    stopping = 1;
}

/* One request: the span, the I/O, the reply. Returns <0 to drop the
 * connection (protocol error or peer gone). */
static int serve_one(int fd, uint8_t *data)
{
    uint8_t hdr[BTP_REQUEST_SIZE], rhdr[BTP_REPLY_SIZE];
    struct btp_request req;
    struct btp_reply rep = {0};
    struct blkin_trace span;
    const char *opname;
    ssize_t n;
    int r;

    r = btp_read_full(fd, hdr, sizeof(hdr));
    if (r < 0)
        return r;
    btp_request_decode(hdr, &req);
    if ((req.op != BTP_READ && req.op != BTP_WRITE) ||
        req.length > BTP_MAX_LENGTH)
        return -EPROTO;
    opname = req.op == BTP_READ ? "read" : "write";

    /* A bad or zero context gives an unsampled span: nothing recorded. */
    blkin_trace_init_packed(&span, req.ctx, sizeof(req.ctx), opname, &endpoint);
    blkin_annotate_event(&span, BLKIN_SERVER_RECV);
    blkin_annotate_string(&span, "op", opname);
    blkin_annotate_integer(&span, "offset", (int64_t)req.offset);
    blkin_annotate_integer(&span, "length", (int64_t)req.length);

    if (req.op == BTP_WRITE) {
        r = btp_read_full(fd, data, req.length);
        if (r < 0)
            return r;
        n = pwrite(backing_fd, data, req.length, (off_t)req.offset);
    } else {
        n = pread(backing_fd, data, req.length, (off_t)req.offset);
    }
    rep.status = n < 0 ? -errno : (int32_t)n;
    rep.length = req.op == BTP_READ && n > 0 ? (uint64_t)n : 0;
    blkin_annotate_integer(&span, "status", rep.status);
    blkin_annotate_event(&span, BLKIN_SERVER_SEND);

    btp_reply_encode(&rep, rhdr);
    r = btp_write_full(fd, rhdr, sizeof(rhdr));
    if (r == 0 && rep.length > 0)
        r = btp_write_full(fd, data, rep.length);
    return r;
}

static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint8_t *data = malloc(BTP_MAX_LENGTH);

    if (data)
        while (serve_one(fd, data) == 0)
            ;
    free(data);
    close(fd);
    return NULL;
}

static int listen_on(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 16) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: blkin-test-service --socket PATH --file PATH "
               "[--service-name NAME] [--ip IP] [--port N]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"file", required_argument, NULL, 'f'},
        {"service-name", required_argument, NULL, 'n'},
        {"ip", required_argument, NULL, 'i'},
        {"port", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *sock = NULL, *file = NULL;
    const char *name = "blkin-test-service", *ip = "127.0.0.1";
    struct sigaction sa = {.sa_handler = on_signal};
    int port = 0, lfd, c, r;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            sock = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'i':
            ip = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!sock || !file) {
        usage(stderr);
        return 2;
    }
    r = blkin_endpoint_init(&endpoint, ip, port, name);
    if (r < 0) {
        fprintf(stderr, "blkin-test-service: endpoint: %s\n", strerror(-r));
        return 2;
    }
    backing_fd = open(file, O_RDWR | O_CLOEXEC);
    if (backing_fd < 0) {
        fprintf(stderr, "blkin-test-service: %s: %m\n", file);
        return 1;
    }
    lfd = listen_on(sock);
    if (lfd < 0) {
        fprintf(stderr, "blkin-test-service: %s: %s\n", sock, strerror(-lfd));
        return 1;
    }
    /* No SA_RESTART: a signal interrupts accept() so that we clean up. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);

    while (!stopping) {
        pthread_t t;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "blkin-test-service: accept: %m\n");
            break;
        }
        if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
    unlink(sock);
    close(lfd);
    return 0;
}
