/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-remote-join.c: unit tests of the join of NBD client spans with the
 * serving node's spans (hostd/join/remote-join.c): no ids, an unknown clock
 * offset between the nodes, identical requests in flight, losses, steps.
 */
#include <glib.h>

#include "join/remote-join.h"
#include "span-fixture.h"

typedef struct Out {
    HostdSpan top;
    bool has_server;
    HostdSpan server;
    HostdBelow below;
} Out;

static void collect(void *opaque, const HostdRemoteMatch *m)
{
    GArray *out = opaque;
    Out o = {
        .top = *m->top, .has_server = m->server != NULL, .below = m->below};

    if (m->server)
        o.server = *m->server;
    g_array_append_val(out, o);
}

/* Node B's clock runs @d ahead of node A's; the wire takes 40 us each way,
 * the server 200 us of which 150 us are its storage. */
static void one_request(HostdRemoteJoin *j, uint64_t id, uint64_t off,
                        int64_t t, int64_t d)
{
    HostdSpan top = fixture_span(id, BLKIN_OP_READ, off, 4096, t, t + 400 * US);
    HostdSpan srv = fixture_span(1000000 + id, BLKIN_OP_READ, off, 4096,
                                 t + 60 * US + d, t + 260 * US + d);

    hostd_remote_join_add_server(j, &srv, 150 * US);
    hostd_remote_join_add_client(j, &top, &top);
}

static void test_offset_found(void)
{
    g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(Out));
    g_autoptr(HostdRemoteJoin) j = hostd_remote_join_new(collect, out);
    const int64_t d = 3600 * SEC + 123456; /* nodes booted an hour apart */
    const HostdRemoteClock *clk;

    for (int i = 0; i < 200; i++)
        one_request(j, i + 1, (uint64_t)i * 4096, 10 * SEC + i * MS, d);
    hostd_remote_join_flush(j, 20 * SEC, 20 * SEC + d, 100 * US);
    g_assert_cmpuint(out->len, ==, 200);
    for (guint i = 0; i < out->len; i++) {
        Out *o = &g_array_index(out, Out, i);

        g_assert_true(o->has_server);
        g_assert_cmpuint(o->server.span_id, ==, 1000000 + o->top.span_id);
        g_assert_true(o->below.remote);
        g_assert_cmpuint(o->below.network_ns, ==, 200 * US);
        g_assert_cmpuint(o->below.remote_ns, ==, 50 * US);
        g_assert_cmpuint(o->below.backend_ns, ==, 150 * US);
    }
    clk = hostd_remote_join_clock(j);
    g_assert_true(clk->valid);
    /* The true offset lies inside the interval, and the interval is what
     * causality gives: server end - client end .. server start - client
     * start, i.e. d - 140 us .. d + 60 us. */
    g_assert_cmpint(clk->lo_ns, <=, d);
    g_assert_cmpint(clk->hi_ns, >=, d);
    g_assert_cmpint(clk->hi_ns - clk->lo_ns, ==, 200 * US);
    g_assert_cmpuint(hostd_remote_join_counters(j)->matched, ==, 200);
    g_assert_cmpuint(hostd_remote_join_pending(j), ==, 0);
}

/* Identical requests in flight pair first-in first-out once the clock is
 * known, and are not guessed at before. */
static void test_identical_in_flight(void)
{
    g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(Out));
    g_autoptr(HostdRemoteJoin) j = hostd_remote_join_new(collect, out);
    const int64_t d = -5 * SEC;

    /* Two identical requests before anything else: ambiguous. */
    for (int i = 0; i < 2; i++) {
        int64_t t = 1 * SEC + i * 100 * US;
        HostdSpan top =
            fixture_span(i + 1, BLKIN_OP_WRITE, 0, 512, t, t + 1 * MS);
        HostdSpan srv = fixture_span(100 + i, BLKIN_OP_WRITE, 0, 512,
                                     t + 300 * US + d, t + 700 * US + d);

        hostd_remote_join_add_server(j, &srv, 0);
        hostd_remote_join_add_client(j, &top, &top);
    }
    hostd_remote_join_flush(j, 2 * SEC, 0, 10 * US);
    g_assert_cmpuint(out->len, ==, 0);
    /* A unique request fixes the clock; then both pair in order. */
    one_request(j, 50, 1 << 20, 1 * SEC + 5 * MS, d);
    hostd_remote_join_flush(j, 2 * SEC, 0, 10 * US);
    g_assert_cmpuint(out->len, ==, 3);
    for (guint i = 0; i < out->len; i++) {
        Out *o = &g_array_index(out, Out, i);

        g_assert_true(o->has_server);
        if (o->top.span_id != 50)
            g_assert_cmpuint(o->server.span_id, ==, 99 + o->top.span_id);
    }
}

/* A request whose server span never comes is emitted alone once node B's
 * trace is past it, and counted; the clock estimate is unharmed. */
static void test_lost_server_span(void)
{
    g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(Out));
    g_autoptr(HostdRemoteJoin) j = hostd_remote_join_new(collect, out);
    HostdSpan top =
        fixture_span(7, BLKIN_OP_READ, 8192 * 100, 4096, 3 * SEC, 3 * SEC + MS);

    one_request(j, 1, 0, 1 * SEC, 0);
    hostd_remote_join_add_client(j, &top, &top);
    /* Node B has not delivered that far yet: the request waits. */
    hostd_remote_join_flush(j, 4 * SEC, 2 * SEC, 100 * US);
    g_assert_cmpuint(out->len, ==, 1);
    g_assert_cmpint(hostd_remote_join_horizon(j), ==, 3 * SEC);
    hostd_remote_join_flush(j, 4 * SEC, 4 * SEC, 100 * US);
    g_assert_cmpuint(out->len, ==, 2);
    g_assert_false(g_array_index(out, Out, 1).has_server);
    g_assert_false(g_array_index(out, Out, 1).below.remote);
    g_assert_cmpuint(hostd_remote_join_counters(j)->unmatched_client, ==, 1);
    g_assert_cmpint(hostd_remote_join_horizon(j), ==, G_MAXINT64);
}

/* Node B's clock steps by a second: the estimate restarts from the new
 * evidence, counted, and requests keep joining. */
static void test_clock_step(void)
{
    g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(Out));
    g_autoptr(HostdRemoteJoin) j = hostd_remote_join_new(collect, out);
    const HostdRemoteClock *clk;

    for (int i = 0; i < 50; i++)
        one_request(j, i + 1, (uint64_t)i * 4096, 1 * SEC + i * MS, 0);
    hostd_remote_join_flush(j, 2 * SEC, 2 * SEC, 10 * US);
    /* After the step, one unique request is needed to re-anchor. */
    for (int i = 50; i < 100; i++)
        one_request(j, i + 1, (uint64_t)i * 4096, 3 * SEC + i * MS, SEC);
    hostd_remote_join_flush(j, 4 * SEC + 15 * SEC, 20 * SEC, 10 * US);
    clk = hostd_remote_join_clock(j);
    g_assert_true(clk->valid);
    g_assert_cmpint(clk->lo_ns, <=, SEC);
    g_assert_cmpint(clk->hi_ns, >=, SEC);
    g_assert_cmpuint(clk->resets, >=, 1);
    g_assert_cmpuint(out->len, ==, 100);
    /* Everything after the step that could be joined was. */
    g_assert_cmpuint(hostd_remote_join_counters(j)->matched, >=, 99);
}

/* Memory stays bounded when node A's spans never come (a flood from
 * node B's side). */
static void test_bounded(void)
{
    g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(Out));
    g_autoptr(HostdRemoteJoin) j = hostd_remote_join_new(collect, out);

    for (int64_t i = 0; i < 3 * HOSTD_REMOTE_MAX_PENDING; i++) {
        HostdSpan srv = fixture_span(i + 1, BLKIN_OP_READ, i * 512, 512, i * US,
                                     i * US + 10);

        hostd_remote_join_add_server(j, &srv, 0);
    }
    g_assert_cmpuint(hostd_remote_join_pending(j), <=,
                     HOSTD_REMOTE_MAX_PENDING);
    g_assert_cmpuint(hostd_remote_join_counters(j)->overflow, >=,
                     2 * HOSTD_REMOTE_MAX_PENDING);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/remote-join/offset-found", test_offset_found);
    g_test_add_func("/remote-join/identical-in-flight",
                    test_identical_in_flight);
    g_test_add_func("/remote-join/lost-server-span", test_lost_server_span);
    g_test_add_func("/remote-join/clock-step", test_clock_step);
    g_test_add_func("/remote-join/bounded", test_bounded);
    return g_test_run();
}
