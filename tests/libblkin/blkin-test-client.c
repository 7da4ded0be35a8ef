/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-test-client: drives blkin-test-service as a traced client would.
 *
 * Each request is one client span: a new root trace, or, with --parent, a
 * child of the given span of an existing trace. It records cs, sends its
 * packed context with the request, and records cr when the reply is in.
 *
 *   blkin-test-client --socket PATH [--op read|write|rw] [--count N]
 *                     [--size BYTES] [--offset BYTES]
 *                     [--parent TRACE_ID:SPAN_ID] [--unsampled]
 *                     [--service-name NAME]
 *
 * --op rw writes each block and reads it back, checking the data. Prints
 * one line per request:
 *   op=write offset=0 length=4096 status=4096 trace_id=0x... span_id=0x...
 *   parent_span_id=0x...
 * (ids as unsigned 64-bit hex; 0 for an unsampled request). Exits 1 on a
 * failed request or a data mismatch.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "blkin.h"
#include "blkin-test-proto.h"

struct client {
    int fd;
    struct blkin_endpoint endpoint;
    struct blkin_trace_info parent; /* trace_id 0: new root traces */
    bool sampled;
};

static int connect_to(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* The data block i carries: distinct per offset, so misplaced I/O shows. */
static void fill(uint8_t *buf, size_t len, uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)((offset + i) * 31 + (offset >> 12));
}

/* One traced request; returns its status (bytes or -errno) or <0 on a
 * broken connection. */
static int request(struct client *c, uint32_t op, uint64_t offset, uint64_t len,
                   uint8_t *data)
{
    const char *opname = op == BTP_READ ? "read" : "write";
    struct btp_request req = {.op = op, .offset = offset, .length = len};
    struct btp_reply rep;
    uint8_t hdr[BTP_REQUEST_SIZE], rhdr[BTP_REPLY_SIZE];
    struct blkin_trace span;
    int r;

    if (c->parent.trace_id)
        r = blkin_trace_init_child_info(&span, &c->parent, opname,
                                        &c->endpoint);
    else
        r = blkin_trace_init_root(&span, opname, &c->endpoint, c->sampled);
    if (r < 0)
        return r;
    blkin_trace_pack(&span, req.ctx, sizeof(req.ctx));
    btp_request_encode(&req, hdr);

    blkin_annotate_event(&span, BLKIN_CLIENT_SEND);
    r = btp_write_full(c->fd, hdr, sizeof(hdr));
    if (r == 0 && op == BTP_WRITE)
        r = btp_write_full(c->fd, data, len);
    if (r == 0)
        r = btp_read_full(c->fd, rhdr, sizeof(rhdr));
    if (r < 0)
        return r;
    btp_reply_decode(rhdr, &rep);
    if (rep.length > len)
        return -EPROTO;
    r = btp_read_full(c->fd, data, rep.length);
    if (r < 0)
        return r;
    blkin_annotate_event(&span, BLKIN_CLIENT_RECV);

    printf("op=%s offset=%" PRIu64 " length=%" PRIu64 " status=%d "
           "trace_id=0x%016" PRIx64 " span_id=0x%016" PRIx64
           " parent_span_id=0x%016" PRIx64 "\n",
           opname, offset, len, rep.status, span.info.trace_id,
           span.info.span_id, span.info.parent_span_id);
    return rep.status;
}

static int parse_parent(const char *s, struct blkin_trace_info *p)
{
    char *end;

    errno = 0;
    p->trace_id = strtoull(s, &end, 16);
    if (errno || *end != ':' || p->trace_id == 0)
        return -EINVAL;
    p->span_id = strtoull(end + 1, &end, 16);
    if (errno || *end || p->span_id == 0)
        return -EINVAL;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: blkin-test-client --socket PATH [--op read|write|rw] "
               "[--count N] [--size BYTES] [--offset BYTES]\n"
               "       [--parent TRACE_ID:SPAN_ID] [--unsampled] "
               "[--service-name NAME]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"op", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 'z'},
        {"offset", required_argument, NULL, 'O'},
        {"parent", required_argument, NULL, 'P'},
        {"unsampled", no_argument, NULL, 'u'},
        {"service-name", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct client cl = {.fd = -1, .sampled = true};
    const char *sock = NULL, *op = "rw", *name = "blkin-test-client";
    unsigned long count = 1;
    uint64_t size = 4096, offset = 0;
    uint8_t *data = NULL, *want = NULL;
    int c, r, ret = 1;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            sock = optarg;
            break;
        case 'o':
            op = optarg;
            break;
        case 'c':
            count = strtoul(optarg, NULL, 0);
            break;
        case 'z':
            size = strtoull(optarg, NULL, 0);
            break;
        case 'O':
            offset = strtoull(optarg, NULL, 0);
            break;
        case 'P':
            if (parse_parent(optarg, &cl.parent) < 0) {
                fprintf(stderr, "blkin-test-client: bad --parent %s\n", optarg);
                return 2;
            }
            break;
        case 'u':
            cl.sampled = false;
            break;
        case 'n':
            name = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!sock || size == 0 || size > BTP_MAX_LENGTH ||
        (strcmp(op, "read") && strcmp(op, "write") && strcmp(op, "rw"))) {
        usage(stderr);
        return 2;
    }
    if (blkin_endpoint_init(&cl.endpoint, "127.0.0.1", 0, name) < 0) {
        fprintf(stderr, "blkin-test-client: bad --service-name\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    data = malloc(size);
    want = malloc(size);
    if (!data || !want)
        goto out;
    cl.fd = connect_to(sock);
    if (cl.fd < 0) {
        fprintf(stderr, "blkin-test-client: %s: %s\n", sock, strerror(-cl.fd));
        goto out;
    }

    for (unsigned long i = 0; i < count; i++) {
        uint64_t off = offset + i * size;

        if (strcmp(op, "read")) {
            fill(data, size, off);
            r = request(&cl, BTP_WRITE, off, size, data);
            if (r != (int)size) {
                fprintf(stderr, "blkin-test-client: write at %" PRIu64 ": %d\n",
                        off, r);
                goto out;
            }
        }
        if (strcmp(op, "write")) {
            r = request(&cl, BTP_READ, off, size, data);
            if (r < 0) {
                fprintf(stderr, "blkin-test-client: read at %" PRIu64 ": %d\n",
                        off, r);
                goto out;
            }
            fill(want, size, off);
            if (!strcmp(op, "rw") &&
                (r != (int)size || memcmp(data, want, size))) {
                fprintf(stderr,
                        "blkin-test-client: data mismatch at %" PRIu64 "\n",
                        off);
                goto out;
            }
        }
    }
    ret = 0;
out:
    fflush(stdout);
    if (cl.fd >= 0)
        close(cl.fd);
    free(data);
    free(want);
    return ret;
}
