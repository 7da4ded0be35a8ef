/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-rbd-join.c: the RBD join (rbd-join.h) on synthetic spans, librbd
 * calls and OSD ops: Ceph's striping, each hop's matching, merges, the
 * reasons a request is not joined, the phases adding up, and the OSD
 * clock from a same-host measurement or from causality alone.
 */
#include <glib.h>
#include <string.h>

#include "join/rbd-join.h"

#define MS 1000000LL
/* The OSD host's wall clock at our monotonic 0: made up, except where a
 * test needs it to be our own (another host's, before any pair). */
static int64_t W = 1796592354000000000LL;
/* Our monotonic clock when each test starts: times below are from here
 * (a clock that has not run a second is not a real one). */
#define B (100LL * 1000000000LL)

typedef struct Got {
    HostdRbdOutcome outcome;
    bool merged, in_gap;
    unsigned ops, new_reads, new_writes;
    HostdBelow below;
    uint64_t call_len; /* the call's duration; 0 without a call */
    uint64_t offset;
} Got;

static GArray *got;

static void emit(void *opaque, const HostdRbdMatch *m)
{
    Got g = {.outcome = m->outcome,
             .merged = m->merged,
             .in_gap = m->in_gap,
             .ops = m->ops,
             .new_reads = m->new_reads,
             .new_writes = m->new_writes,
             .below = m->below,
             .offset = m->client->offset};

    if (m->call)
        g.call_len = m->call->end_ns - m->call->start_ns;
    g_array_append_val(got, g);
}

static HostdRbdJoin *setup(bool same_host)
{
    HostdRbdJoin *j = hostd_rbd_join_new(emit, NULL);
    HostdRbdImage im = {.vpid = 42,
                        .image = 0,
                        .gid = 10,
                        .nonce = 7,
                        .addr = "127.0.0.1:0/7",
                        .pool = "rbd",
                        .name = "vm0",
                        .prefix = "rbd_data.abc",
                        .size = 64 << 20,
                        .object_size = 4 << 20,
                        .stripe_unit = 4 << 20,
                        .stripe_count = 1};

    if (got)
        g_array_unref(got);
    got = g_array_new(FALSE, TRUE, sizeof(Got));
    hostd_rbd_join_image(j, &im);
    hostd_rbd_join_collectors(j, 1);
    hostd_rbd_join_connected(j, 0, true);
    /* Same host: OSD wall = our mono + W, to 1 us. */
    hostd_rbd_join_clock(j, 0, W, 1000, same_host);
    return j;
}

static HostdRbdCall call(uint8_t op, uint64_t off, uint64_t len, int64_t s,
                         int64_t e)
{
    return (HostdRbdCall){.vpid = 42,
                          .image = 0,
                          .op = op,
                          .offset = off,
                          .length = len,
                          .start_ns = (uint64_t)(B + s),
                          .end_ns = (uint64_t)(B + e)};
}

static HostdSpan span(uint8_t op, uint64_t off, uint64_t len, int64_t s,
                      int64_t e)
{
    return (HostdSpan){.vpid = 42,
                       .disk = 1,
                       .op = op,
                       .offset = off,
                       .bytes = len,
                       .start_ns = (uint64_t)(B + s),
                       .end_ns = (uint64_t)(B + e),
                       .span_id = (uint64_t)s};
}

/* An op of client 10 on object @objno, stamps on our clock (+ W). */
static blkin_osd_op op(uint32_t kind, uint64_t objno, uint64_t off,
                       uint64_t len, int64_t init, int64_t started,
                       int64_t commit, int64_t done, uint64_t tid)
{
    blkin_osd_op o = {
        .gid = 10, .tid = tid, .kind = kind, .offset = off, .length = len};

    hostd_rbd_object_name("rbd_data.abc", objno, o.object, sizeof(o.object));
    o.stamp[BLKIN_OSD_INITIATED] = W + B + init;
    o.stamp[BLKIN_OSD_STARTED] = W + B + started;
    if (commit)
        o.stamp[BLKIN_OSD_COMMIT] = W + B + commit;
    o.stamp[BLKIN_OSD_DONE] = W + B + done;
    return o;
}

/* Span and call together, as the trace delivers them. */
static void request(HostdRbdJoin *j, void *disk, uint8_t type, uint64_t off,
                    uint64_t len, int64_t s, int64_t e)
{
    HostdRbdCall c = call(type, off, len, s + 10000, e - 10000);
    HostdSpan sp = span(type, off, len, s, e);

    hostd_rbd_join_call(j, &c);
    g_assert_true(hostd_rbd_join_client(j, disk, &sp, &sp));
}

static uint64_t below_sum(const HostdBelow *b)
{
    uint64_t s = 0;

    for (int i = 0; i < HOSTD_RBD_PHASES; i++)
        s += b->rbd_ns[i];
    return s;
}

typedef struct Ext {
    uint64_t objno, off, len;
} Ext;

static void ext_cb(void *opaque, uint64_t objno, uint64_t off, uint64_t len)
{
    g_array_append_val((GArray *)opaque, ((Ext){objno, off, len}));
}

static void test_striping(void)
{
    g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(Ext));
    char name[64];
    Ext *e;

    /* Default layout: one object after the other. */
    g_assert_cmpuint(
        hostd_rbd_extents(4 << 20, 0, 0, (4 << 20) - 4096, 8192, ext_cb, a), ==,
        2);
    e = (Ext *)a->data;
    g_assert_cmpuint(e[0].objno, ==, 0);
    g_assert_cmpuint(e[0].off, ==, (4 << 20) - 4096);
    g_assert_cmpuint(e[0].len, ==, 4096);
    g_assert_cmpuint(e[1].objno, ==, 1);
    g_assert_cmpuint(e[1].off, ==, 0);
    /* Fancy striping: 64 KiB units over 4 objects of 4 MiB. */
    g_array_set_size(a, 0);
    g_assert_cmpuint(
        hostd_rbd_extents(4 << 20, 65536, 4, 0, 5 * 65536, ext_cb, a), ==, 5);
    e = (Ext *)a->data;
    for (int i = 0; i < 4; i++) {
        g_assert_cmpuint(e[i].objno, ==, (guint64)i);
        g_assert_cmpuint(e[i].off, ==, 0);
    }
    g_assert_cmpuint(e[4].objno, ==, 0);
    g_assert_cmpuint(e[4].off, ==, 65536);
    /* The second object set starts at 4 objects x 4 MiB. */
    g_array_set_size(a, 0);
    hostd_rbd_extents(4 << 20, 65536, 4, 16 << 20, 4096, ext_cb, a);
    g_assert_cmpuint(((Ext *)a->data)[0].objno, ==, 4);
    /* A layout that makes no sense gives nothing. */
    g_assert_cmpuint(hostd_rbd_extents(0, 0, 0, 0, 4096, ext_cb, a), ==, 0);
    g_assert_cmpuint(hostd_rbd_extents(4 << 20, 3 << 20, 1, 0, 4096, ext_cb, a),
                     ==, 0);

    hostd_rbd_object_name("rbd_data.abc", 0x3c, name, sizeof(name));
    g_assert_cmpstr(name, ==, "rbd_data.abc.000000000000003c");
    hostd_rbd_object_name("rb.0.1234.5678", 0x3c, name, sizeof(name));
    g_assert_cmpstr(name, ==, "rb.0.1234.5678.00000000003c");
}

static void test_joined(void)
{
    g_autoptr(HostdRbdJoin) j = setup(true);
    int disk;
    blkin_osd_op w, r;
    const Got *g;

    /* A write: span [1, 3] ms, call [1.01, 2.99] ms, op inside. */
    request(j, &disk, BLKIN_OP_WRITE, 8192, 4096, 1 * MS, 3 * MS);
    w = op(BLKIN_OSD_KIND_WRITE, 0, 8192, 4096, 1100000, 1300000, 2600000,
           2700000, 1);
    hostd_rbd_join_op(j, 0, &w);
    /* A read, joined the same way. */
    request(j, &disk, BLKIN_OP_READ, 4 << 20, 65536, 4 * MS, 6 * MS);
    r = op(BLKIN_OSD_KIND_READ, 1, 0, 65536, 4200000, 4300000, 0, 5500000, 2);
    hostd_rbd_join_op(j, 0, &r);
    hostd_rbd_join_flush(j, B + 10 * MS);
    g_assert_cmpuint(got->len, ==, 2);
    g = &g_array_index(got, Got, 0);
    g_assert_cmpint(g->outcome, ==, HOSTD_RBD_JOINED);
    g_assert_true(g->below.rbd && g->below.rbd_osd);
    g_assert_false(g->merged);
    g_assert_cmpuint(g->new_writes, ==, 1);
    /* The phases add up to the call, each where the stamps put it. */
    g_assert_cmpuint(below_sum(&g->below), ==, g->call_len);
    g_assert_cmpuint(g->below.rbd_ns[2], ==, 200000);  /* osd_queue */
    g_assert_cmpuint(g->below.rbd_ns[3], ==, 1300000); /* osd_exec */
    /* The fastest halves so far are this write's own: all network. */
    g_assert_cmpuint(g->below.rbd_ns[1], ==, 1100000 - 1010000);
    g_assert_cmpuint(g->below.rbd_ns[4], ==, 2990000 - 2600000);
    g_assert_cmpuint(g->below.rbd_ns[0], ==, 0);
    g = &g_array_index(got, Got, 1);
    g_assert_cmpint(g->outcome, ==, HOSTD_RBD_JOINED);
    g_assert_cmpuint(g->new_reads, ==, 1);
    g_assert_cmpuint(below_sum(&g->below), ==, g->call_len);
    /* Its halves are 100 us above the write's: that is librbd's. */
    g_assert_cmpuint(g->below.rbd_ns[1], ==, 1100000 - 1010000);
    g_assert_cmpuint(g->below.rbd_ns[4], ==, 2990000 - 2600000);
    g_assert_cmpuint(g->below.rbd_ns[0], ==, 200000);
    g_assert_cmpuint(hostd_rbd_join_pending(j), ==, 2); /* ops kept a while */
    g_assert_true(hostd_rbd_join_clock_of(j, 0)->known);
    g_assert_cmpint(hostd_rbd_join_clock_of(j, 0)->bound_ns, <=, 1000);
}

static void test_merged(void)
{
    g_autoptr(HostdRbdJoin) j = setup(true);
    int disk;
    blkin_osd_op m;

    /* Two adjacent writes in flight together; librbd sent one op. */
    request(j, &disk, BLKIN_OP_WRITE, 0, 4096, 1 * MS, 4 * MS);
    request(j, &disk, BLKIN_OP_WRITE, 4096, 4096, 1 * MS + 1000, 4 * MS + 1000);
    m = op(BLKIN_OSD_KIND_WRITE, 0, 0, 8192, 2000000, 2100000, 3000000, 3100000,
           5);
    hostd_rbd_join_op(j, 0, &m);
    hostd_rbd_join_flush(j, B + 10 * MS);
    g_assert_cmpuint(got->len, ==, 2);
    for (guint i = 0; i < 2; i++) {
        const Got *g = &g_array_index(got, Got, i);

        g_assert_cmpint(g->outcome, ==, HOSTD_RBD_JOINED);
        g_assert_true(g->merged);
        g_assert_cmpuint(below_sum(&g->below), ==, g->call_len);
    }
    /* The op is counted once. */
    g_assert_cmpuint(g_array_index(got, Got, 0).new_writes +
                         g_array_index(got, Got, 1).new_writes,
                     ==, 1);
}

static void test_identical_fifo(void)
{
    g_autoptr(HostdRbdJoin) j = setup(true);
    int disk;
    blkin_osd_op a, b;

    request(j, &disk, BLKIN_OP_READ, 0, 4096, 1 * MS, 5 * MS);
    request(j, &disk, BLKIN_OP_READ, 0, 4096, 2 * MS, 6 * MS);
    a = op(BLKIN_OSD_KIND_READ, 0, 0, 4096, 1500000, 1600000, 0, 4000000, 1);
    b = op(BLKIN_OSD_KIND_READ, 0, 0, 4096, 2500000, 2600000, 0, 5000000, 2);
    hostd_rbd_join_op(j, 0, &b);
    hostd_rbd_join_op(j, 0, &a);
    hostd_rbd_join_flush(j, B + 10 * MS);
    g_assert_cmpuint(got->len, ==, 2);
    g_assert_cmpint(g_array_index(got, Got, 0).outcome, ==, HOSTD_RBD_JOINED);
    g_assert_cmpint(g_array_index(got, Got, 1).outcome, ==, HOSTD_RBD_JOINED);
    /* Each its own op: neither counted as merged, two ops counted. */
    g_assert_false(g_array_index(got, Got, 0).merged);
    g_assert_cmpuint(g_array_index(got, Got, 0).new_reads +
                         g_array_index(got, Got, 1).new_reads,
                     ==, 2);
}

static void test_not_joined(void)
{
    g_autoptr(HostdRbdJoin) j = setup(true);
    int disk, other;
    HostdSpan sp = span(BLKIN_OP_READ, 0, 4096, 1 * MS, 2 * MS);

    /* No call, no image bound: not an RBD disk. */
    g_assert_false(hostd_rbd_join_client(j, &other, &sp, &sp));
    /* A flush needs no op. */
    request(j, &disk, BLKIN_OP_FLUSH, 0, 0, 1 * MS, 2 * MS);
    /* A read of an object never written: no op, and the collector has
     * read past it: librbd answered itself. */
    request(j, &disk, BLKIN_OP_READ, 0, 4096, 3 * MS, 4 * MS);
    hostd_rbd_join_flush(j, B + 10 * MS);
    g_assert_cmpuint(got->len, ==, 1); /* the read waits for the collector */
    hostd_rbd_join_progress(j, 0, W + B + 6 * MS);
    hostd_rbd_join_flush(j, B + 10 * MS);
    g_assert_cmpuint(got->len, ==, 2);
    g_assert_cmpint(g_array_index(got, Got, 0).outcome, ==, HOSTD_RBD_NO_OP);
    g_assert_cmpint(g_array_index(got, Got, 1).outcome, ==, HOSTD_RBD_NO_OP);
    g_assert_false(g_array_index(got, Got, 1).below.rbd_osd);
    g_assert_cmpuint(g_array_index(got, Got, 1).below.rbd_ns[0], ==,
                     g_array_index(got, Got, 1).call_len);

    /* The same while the OSD was down: missing, in the gap. */
    hostd_rbd_join_gap(j, 0, W + B + 20 * MS, INT64_MAX);
    request(j, &disk, BLKIN_OP_READ, 0, 4096, 21 * MS, 22 * MS);
    hostd_rbd_join_gap(j, 0, W + B + 20 * MS, W + B + 30 * MS);
    hostd_rbd_join_progress(j, 0, W + B + 40 * MS);
    hostd_rbd_join_flush(j, B + 50 * MS);
    g_assert_cmpuint(got->len, ==, 3);
    g_assert_cmpint(g_array_index(got, Got, 2).outcome, ==,
                    HOSTD_RBD_OP_MISSING);
    g_assert_true(g_array_index(got, Got, 2).in_gap);

    /* Another OSD does not answer: not proof either. */
    hostd_rbd_join_unreadable(j, 0, 1);
    request(j, &disk, BLKIN_OP_READ, 0, 4096, 41 * MS, 42 * MS);
    hostd_rbd_join_progress(j, 0, W + B + 60 * MS);
    hostd_rbd_join_flush(j, B + 70 * MS);
    g_assert_cmpint(g_array_index(got, Got, 3).outcome, ==,
                    HOSTD_RBD_OP_MISSING);
    g_assert_false(g_array_index(got, Got, 3).in_gap);

    /* The collector gone: the span waits HOSTD_RBD_MAX_WAIT_NS at most. */
    hostd_rbd_join_unreadable(j, 0, 0);
    hostd_rbd_join_connected(j, 0, false);
    request(j, &disk, BLKIN_OP_READ, 0, 4096, 81 * MS, 82 * MS);
    hostd_rbd_join_flush(j, B + 90 * MS);
    g_assert_cmpuint(got->len, ==, 4);
    g_assert_cmpint(hostd_rbd_join_horizon(j, &disk), ==, B + 81 * MS);
    hostd_rbd_join_flush(j, B + 82 * MS + HOSTD_RBD_MAX_WAIT_NS + 1);
    g_assert_cmpuint(got->len, ==, 5);
    g_assert_cmpint(g_array_index(got, Got, 4).outcome, ==,
                    HOSTD_RBD_OP_MISSING);
    g_assert_cmpint(hostd_rbd_join_horizon(j, &disk), ==, INT64_MAX);

    /* A span of the bound disk whose call never comes. */
    hostd_rbd_join_connected(j, 0, true);
    sp = span(BLKIN_OP_WRITE, 0, 4096, 100 * MS, 101 * MS);
    g_assert_true(hostd_rbd_join_client(j, &disk, &sp, &sp));
    hostd_rbd_join_flush(j, B + 500 * MS);
    g_assert_cmpint(g_array_index(got, Got, 5).outcome, ==, HOSTD_RBD_NO_CALL);
    g_assert_false(g_array_index(got, Got, 5).below.rbd);
}

/* Another host: its wall clock is off by 3 ms from ours; only the pairs
 * tell, and the estimate must contain the truth within its bound. */
static void test_remote_clock(void)
{
    g_autoptr(HostdRbdJoin) j = NULL;
    int disk;
    const int64_t skew = 3 * MS; /* OSD wall = our mono + W + skew */
    const HostdRbdClock *c;

    /* Until pairs tell, another host's wall clock is taken as ours (NTP):
     * the made-up one must be ours here, give or take the skew. */
    W = g_get_real_time() * 1000 - g_get_monotonic_time() * 1000;
    j = setup(false);
    hostd_rbd_join_progress(j, 0, W + B + skew + 100 * MS);
    for (int i = 0; i < 20; i++) {
        int64_t t = (10 + 4 * i) * MS;
        blkin_osd_op o;

        request(j, &disk, BLKIN_OP_WRITE, (uint64_t)i * 4096, 4096, t,
                t + 3 * MS);
        /* Sent 60 us after the call began, replied 40 us before its end. */
        o = op(BLKIN_OSD_KIND_WRITE, 0, (uint64_t)i * 4096, 4096,
               t + 10000 + 60000 + skew, t + 200000 + skew,
               t + 3 * MS - 10000 - 40000 + skew, t + 3 * MS + skew, 10 + i);
        hostd_rbd_join_op(j, 0, &o);
        hostd_rbd_join_flush(j, B + t + 3 * MS);
    }
    hostd_rbd_join_flush(j, B + 200 * MS);
    g_assert_cmpuint(got->len, ==, 20);
    for (guint i = 0; i < got->len; i++)
        g_assert_cmpint(g_array_index(got, Got, i).outcome, ==,
                        HOSTD_RBD_JOINED);
    c = hostd_rbd_join_clock_of(j, 0);
    g_assert_true(c->known);
    g_assert_false(c->same_host);
    /* Truth: offset -(W + skew); the pairs allow 50 us either side. */
    g_assert_cmpint(c->offset_ns - c->bound_ns, <=, -(W + skew));
    g_assert_cmpint(c->offset_ns + c->bound_ns, >=, -(W + skew));
    g_assert_cmpint(c->bound_ns, <=, 60000);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rbd-join/striping", test_striping);
    g_test_add_func("/rbd-join/joined", test_joined);
    g_test_add_func("/rbd-join/merged", test_merged);
    g_test_add_func("/rbd-join/identical-fifo", test_identical_fifo);
    g_test_add_func("/rbd-join/not-joined", test_not_joined);
    g_test_add_func("/rbd-join/remote-clock", test_remote_clock);
    return g_test_run();
}
