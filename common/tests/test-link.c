/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host link against a fake QEMU socket: it connects, greets, probes only
 * after the agent's HELLO, feeds the channel, notices the hang-up and
 * reconnects.
 */
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "blkin-host-link.h"

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct seen {
    int connected, disconnected, hellos;
};

static void state_cb(void *user, bool connected, uint64_t now, size_t partial)
{
    struct seen *s = user;

    if (connected)
        s->connected++;
    else
        s->disconnected++;
}

static void event_cb(void *user, const struct blkin_event *ev)
{
    struct seen *s = user;

    if (ev->type == BLKIN_EV_HELLO)
        s->hellos++;
}

/* Runs the link's loop for ms milliseconds. */
static void spin(struct blkin_host_link *l, int ms)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;

    while (now_ns() < end) {
        struct pollfd p;
        int timeout;

        blkin_host_link_prepare(l, now_ns(), &p, &timeout);
        poll(&p, p.fd >= 0 ? 1 : 0, timeout > 10 ? 10 : timeout);
        blkin_host_link_dispatch(l, &p, now_ns());
    }
}

/* Reads every whole frame the link sent; counts them by type. */
static void read_frames(int fd, unsigned *counts)
{
    static struct blkin_decoder d;
    uint8_t buf[4096];
    ssize_t n;

    blkin_decoder_init(&d);
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        size_t off = 0;

        while (off < (size_t)n) {
            struct blkin_frame f;
            size_t used = 0;

            if (blkin_decoder_feed(&d, buf + off, (size_t)n - off, &used, &f))
                counts[f.type & 7]++;
            off += used;
        }
    }
}

static void test_link(void)
{
    g_autofree char *dir = g_dir_make_tmp("blkin-link-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "agent.sock", NULL);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct blkin_channel *ch = g_new0(struct blkin_channel, 1);
    struct blkin_host_link l;
    struct seen s = {0};
    unsigned counts[8] = {0};
    uint8_t frame[128];
    struct blkin_hello h = {.proto_version = 1, .software = "fake-agent"};
    int srv, c;

    g_assert_nonnull(dir);
    strcpy(sa.sun_path, path);
    blkin_channel_init(ch, NULL, event_cb, &s);
    g_assert_cmpint(
        blkin_host_link_init(&l, path, ch, 20000000ull, state_cb, &s), ==, 0);
    /* Nobody listening yet: it keeps trying, quietly. */
    spin(&l, 150);
    g_assert_false(blkin_host_link_connected(&l));

    srv = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(bind(srv, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(srv, 1), ==, 0);
    spin(&l, 250);
    g_assert_true(blkin_host_link_connected(&l));
    g_assert_cmpint(s.connected, ==, 1);
    c = accept(srv, NULL, NULL);
    g_assert_cmpint(c, >=, 0);

    /* A HELLO, but no probes before the agent has spoken. */
    spin(&l, 100);
    read_frames(c, counts);
    g_assert_cmpuint(counts[BLKIN_FRAME_HELLO], ==, 1);
    g_assert_cmpuint(counts[BLKIN_FRAME_CLOCK_PROBE], ==, 0);

    ssize_t n = blkin_encode_hello(frame, sizeof(frame), &h);
    g_assert_cmpint(send(c, frame, (size_t)n, 0), ==, n);
    spin(&l, 200);
    g_assert_cmpint(s.hellos, ==, 1);
    read_frames(c, counts);
    g_assert_cmpuint(counts[BLKIN_FRAME_CLOCK_PROBE], >=, 3);

    /* The far end goes away, comes back: the link follows. */
    close(c);
    spin(&l, 50);
    g_assert_cmpint(s.disconnected, ==, 1);
    g_assert_false(ch->conn_hello);
    spin(&l, 250);
    g_assert_cmpint(s.connected, ==, 2);
    c = accept(srv, NULL, NULL);
    g_assert_cmpint(c, >=, 0);
    close(c);
    close(srv);
    spin(&l, 50);
    blkin_host_link_close(&l);
    g_unlink(path);
    g_rmdir(dir);
    g_free(ch);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/link/connect-probe-reconnect", test_link);
    return g_test_run();
}
