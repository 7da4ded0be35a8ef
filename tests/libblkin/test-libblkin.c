/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-libblkin: libblkin's API without a tracing session: ids, the packed
 * context, span relations, sampling, and bad input.
 */
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "blkin.h"
#include "blkin-span-id.h"

#define THREADS        4
#define IDS_PER_THREAD 50000

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Sorts ids[0..n-1] and fails on a 0 or a repeat. */
static void assert_nonzero_distinct(uint64_t *ids, size_t n)
{
    qsort(ids, n, sizeof(*ids), cmp_u64);
    g_assert_cmpuint(ids[0], !=, 0);
    for (size_t i = 1; i < n; i++)
        if (ids[i] == ids[i - 1])
            g_error("id %#" G_GINT64_MODIFIER "x repeats", ids[i]);
}

struct id_job {
    uint64_t *out;
    bool via_api; /* root traces instead of the raw generator */
};

static void *draw_ids(void *arg)
{
    struct id_job *job = arg;
    struct blkin_endpoint ep;

    blkin_endpoint_init(&ep, NULL, 0, "t");
    for (unsigned i = 0; i < IDS_PER_THREAD; i += 2) {
        if (job->via_api) {
            struct blkin_trace t;
            blkin_trace_init_root(&t, "t", &ep, true);
            job->out[i] = t.info.trace_id;
            job->out[i + 1] = t.info.span_id;
        } else {
            blkin_span_ids(job->out + i, 2);
        }
    }
    return NULL;
}

static void run_id_threads(bool via_api)
{
    uint64_t *ids = g_new0(uint64_t, THREADS * IDS_PER_THREAD);
    struct id_job jobs[THREADS];
    pthread_t t[THREADS];

    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (struct id_job){ids + i * IDS_PER_THREAD, via_api};
        g_assert_cmpint(pthread_create(&t[i], NULL, draw_ids, &jobs[i]), ==, 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_nonzero_distinct(ids, THREADS * IDS_PER_THREAD);
    g_free(ids);
}

static void test_ids_threads(void)
{
    run_id_threads(false);
}

static void test_ids_api_threads(void)
{
    run_id_threads(true);
}

/* Ids must not follow a pattern a rand()-style generator would show: both
 * halves and the top bit take both values. */
static void test_ids_spread(void)
{
    uint64_t ids[1024], or_all = 0, and_all = ~0ULL;

    blkin_span_ids(ids, 1024);
    for (int i = 0; i < 1024; i++) {
        or_all |= ids[i];
        and_all &= ids[i];
    }
    g_assert_cmpuint(or_all, ==, ~0ULL);
    g_assert_cmpuint(and_all, ==, 0);
}

static const struct blkin_trace_info vector = {
    .trace_id = 0x0102030405060708ULL,
    .span_id = 0xfedcba9876543210ULL,
    .parent_span_id = 0x1111ULL,
};
static const uint8_t vector_packed[24] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xfe, 0xdc, 0xba, 0x98,
    0x76, 0x54, 0x32, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x11,
};

static void test_pack_vector(void)
{
    uint8_t buf[1 + 24 + 1];
    struct blkin_trace_info back;

    memset(buf, 0xaa, sizeof(buf));
    /* Unaligned on purpose: packed contexts sit anywhere in messages. */
    g_assert_cmpint(blkin_trace_info_pack(&vector, buf + 1, 24), ==, 24);
    g_assert_cmpmem(buf + 1, 24, vector_packed, 24);
    g_assert_cmpuint(buf[0], ==, 0xaa);
    g_assert_cmpuint(buf[25], ==, 0xaa);

    g_assert_cmpint(blkin_trace_info_unpack(buf + 1, 24, &back), ==, 24);
    g_assert_cmpmem(&back, sizeof(back), &vector, sizeof(vector));
}

static void test_pack_roundtrip(void)
{
    for (int i = 0; i < 1000; i++) {
        struct blkin_trace_info in, out;
        uint8_t buf[BLKIN_TRACE_INFO_PACKED_SIZE];
        uint64_t ids[3];

        blkin_span_ids(ids, 3);
        in = (struct blkin_trace_info){ids[0], ids[1], i ? ids[2] : 0};
        g_assert_cmpint(blkin_trace_info_pack(&in, buf, sizeof(buf)), ==, 24);
        g_assert_cmpint(blkin_trace_info_unpack(buf, sizeof(buf), &out), ==,
                        24);
        g_assert_cmpmem(&in, sizeof(in), &out, sizeof(out));
    }
}

static void test_pack_bad_input(void)
{
    uint8_t buf[32];
    struct blkin_trace_info info = {1, 2, 3};

    g_assert_cmpint(blkin_trace_info_pack(NULL, buf, 24), ==, -EINVAL);
    g_assert_cmpint(blkin_trace_info_pack(&vector, NULL, 24), ==, -EINVAL);
    memset(buf, 0x55, sizeof(buf));
    g_assert_cmpint(blkin_trace_info_pack(&vector, buf, 23), ==, -ENOBUFS);
    g_assert_cmpint(blkin_trace_info_pack(&vector, buf, 0), ==, -ENOBUFS);
    for (size_t i = 0; i < sizeof(buf); i++)
        g_assert_cmpuint(buf[i], ==, 0x55);

    g_assert_cmpint(blkin_trace_info_unpack(NULL, 24, &info), ==, -EINVAL);
    g_assert_cmpint(blkin_trace_info_unpack(vector_packed, 24, NULL), ==,
                    -EINVAL);
    g_assert_cmpint(blkin_trace_info_unpack(vector_packed, 23, &info), ==,
                    -EINVAL);
    g_assert_cmpuint(info.trace_id, ==, 1); /* untouched */
    g_assert_cmpuint(info.span_id, ==, 2);
    g_assert_cmpuint(info.parent_span_id, ==, 3);
    g_assert_cmpint(blkin_trace_pack(NULL, buf, 24), ==, -EINVAL);
}

static void test_endpoint(void)
{
    struct blkin_endpoint ep;
    char big[BLKIN_NAME_MAX + 2];

    g_assert_cmpint(blkin_endpoint_init(&ep, "10.1.2.3", 6789, "osd.1"), ==, 0);
    g_assert_cmpstr(ep.ip, ==, "10.1.2.3");
    g_assert_cmpint(ep.port, ==, 6789);
    g_assert_cmpstr(ep.name, ==, "osd.1");
    g_assert_cmpint(blkin_endpoint_init(&ep, NULL, 0, NULL), ==, 0);
    g_assert_cmpstr(ep.ip, ==, "0.0.0.0");
    g_assert_cmpstr(ep.name, ==, "");

    g_assert_cmpint(blkin_endpoint_init(NULL, "1.2.3.4", 1, "x"), ==, -EINVAL);
    g_assert_cmpint(blkin_endpoint_init(&ep, "1.2.3.4", -1, "x"), ==, -EINVAL);
    g_assert_cmpint(blkin_endpoint_init(&ep, "1.2.3.4", 65536, "x"), ==,
                    -EINVAL);
    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    g_assert_cmpint(blkin_endpoint_init(&ep, "1.2.3.4", 1, big), ==,
                    -ENAMETOOLONG);
    g_assert_cmpint(blkin_endpoint_init(&ep, big, 1, "x"), ==, -ENAMETOOLONG);
    big[BLKIN_NAME_MAX] = '\0'; /* exactly the limit is fine */
    g_assert_cmpint(blkin_endpoint_init(&ep, "1.2.3.4", 1, big), ==, 0);
}

static void test_spans(void)
{
    struct blkin_endpoint a, b;
    struct blkin_trace root, child, remote, from_packed;
    uint8_t buf[BLKIN_TRACE_INFO_PACKED_SIZE];

    blkin_endpoint_init(&a, "10.0.0.1", 1, "a");
    blkin_endpoint_init(&b, "10.0.0.2", 2, "b");

    g_assert_cmpint(blkin_trace_init_root(&root, "op", &a, true), ==, 0);
    g_assert_true(root.sampled);
    g_assert_cmpuint(root.info.trace_id, !=, 0);
    g_assert_cmpuint(root.info.span_id, !=, 0);
    g_assert_cmpuint(root.info.parent_span_id, ==, 0);
    g_assert_cmpstr(root.name, ==, "op");
    g_assert_true(root.endpoint == &a);

    /* Local child: inherits the endpoint unless given one. */
    g_assert_cmpint(blkin_trace_init_child(&child, &root, "sub", NULL), ==, 0);
    g_assert_cmpuint(child.info.trace_id, ==, root.info.trace_id);
    g_assert_cmpuint(child.info.parent_span_id, ==, root.info.span_id);
    g_assert_cmpuint(child.info.span_id, !=, root.info.span_id);
    g_assert_cmpuint(child.info.span_id, !=, 0);
    g_assert_true(child.endpoint == &a);
    g_assert_true(child.sampled);

    /* Remote child from the packed form, as a peer service does it. */
    g_assert_cmpint(blkin_trace_pack(&child, buf, sizeof(buf)), ==, 24);
    g_assert_cmpint(
        blkin_trace_init_packed(&from_packed, buf, sizeof(buf), "peer", &b), ==,
        0);
    g_assert_cmpuint(from_packed.info.trace_id, ==, root.info.trace_id);
    g_assert_cmpuint(from_packed.info.parent_span_id, ==, child.info.span_id);
    g_assert_cmpuint(from_packed.info.span_id, !=, child.info.span_id);
    g_assert_true(from_packed.endpoint == &b);
    g_assert_true(from_packed.sampled);

    g_assert_cmpint(blkin_trace_init_child_info(&remote, &vector, "peer", &b),
                    ==, 0);
    g_assert_cmpuint(remote.info.trace_id, ==, vector.trace_id);
    g_assert_cmpuint(remote.info.parent_span_id, ==, vector.span_id);

    /* Bad input. */
    g_assert_cmpint(blkin_trace_init_root(NULL, "x", &a, true), ==, -EINVAL);
    g_assert_cmpint(blkin_trace_init_root(&root, "x", NULL, true), ==, -EINVAL);
    g_assert_cmpint(blkin_trace_init_child(&child, NULL, "x", &a), ==, -EINVAL);
    g_assert_cmpint(blkin_trace_init_child(NULL, &root, "x", &a), ==, -EINVAL);
    g_assert_cmpint(blkin_trace_init_child_info(&child, NULL, "x", &a), ==,
                    -EINVAL);
    g_assert_cmpint(blkin_trace_init_child_info(&child, &vector, "x", NULL), ==,
                    -EINVAL);
    g_assert_cmpint(blkin_trace_init_root(&root, NULL, &a, true), ==, 0);
    g_assert_cmpstr(root.name, ==, "");
    {
        char big[BLKIN_NAME_MAX + 2];
        memset(big, 'n', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        g_assert_cmpint(blkin_trace_init_root(&root, big, &a, true), ==,
                        -ENAMETOOLONG);
    }

    /* A short or missing context: an error, but a usable unsampled span. */
    g_assert_cmpint(blkin_trace_init_packed(&from_packed, buf, 23, "p", &b), ==,
                    -EINVAL);
    g_assert_false(from_packed.sampled);
    g_assert_cmpuint(from_packed.info.trace_id, ==, 0);
    g_assert_cmpint(blkin_annotate_event(&from_packed, "x"), ==, 0);
    g_assert_cmpint(blkin_trace_init_packed(&from_packed, NULL, 24, "p", &b),
                    ==, -EINVAL);
    g_assert_false(from_packed.sampled);
}

static void test_unsampled(void)
{
    struct blkin_endpoint a;
    struct blkin_trace root, child, remote;
    uint8_t buf[BLKIN_TRACE_INFO_PACKED_SIZE], zero[24] = {0};

    blkin_endpoint_init(&a, NULL, 0, "a");
    g_assert_cmpint(blkin_trace_init_root(&root, "op", &a, false), ==, 0);
    g_assert_false(root.sampled);
    g_assert_cmpuint(root.info.trace_id, ==, 0);
    g_assert_cmpuint(root.info.span_id, ==, 0);

    g_assert_cmpint(blkin_trace_init_child(&child, &root, "c", NULL), ==, 0);
    g_assert_false(child.sampled);
    g_assert_cmpuint(child.info.trace_id, ==, 0);

    /* Unsampled travels as 24 zero bytes, and comes back unsampled. */
    memset(buf, 0xff, sizeof(buf));
    g_assert_cmpint(blkin_trace_pack(&root, buf, sizeof(buf)), ==, 24);
    g_assert_cmpmem(buf, 24, zero, 24);
    g_assert_cmpint(blkin_trace_init_packed(&remote, buf, 24, "r", &a), ==, 0);
    g_assert_false(remote.sampled);

    /* A hand-made unsampled struct with ids is still not packed. */
    root.info = vector;
    g_assert_cmpint(blkin_trace_pack(&root, buf, sizeof(buf)), ==, 24);
    g_assert_cmpmem(buf, 24, zero, 24);
}

static void test_sample(void)
{
    unsigned hits = 0;

    for (int i = 0; i < 100; i++) {
        g_assert_false(blkin_sample(0));
        g_assert_true(blkin_sample(1));
    }
    for (int i = 0; i < 40000; i++)
        hits += blkin_sample(4);
    /* 10000 expected; 1000 is over 10 standard deviations. */
    g_assert_cmpuint(hits, >, 9000);
    g_assert_cmpuint(hits, <, 11000);
}

static void test_annotate_edges(void)
{
    struct blkin_endpoint a = {0};
    struct blkin_trace t, hand;
    size_t huge = 1 << 20;
    char *big = g_malloc(huge + 1);

    memset(big, 'v', huge);
    big[huge] = '\0';
    blkin_endpoint_init(&a, "10.0.0.1", 1, "a");
    blkin_trace_init_root(&t, "op", &a, true);

    g_assert_cmpint(blkin_annotate_event(NULL, "x"), ==, -EINVAL);
    g_assert_cmpint(blkin_annotate_event(&t, NULL), ==, -EINVAL);
    g_assert_cmpint(blkin_annotate_string(NULL, "k", "v"), ==, -EINVAL);
    g_assert_cmpint(blkin_annotate_string(&t, NULL, "v"), ==, -EINVAL);
    g_assert_cmpint(blkin_annotate_string(&t, "k", NULL), ==, -EINVAL);
    g_assert_cmpint(blkin_annotate_integer(NULL, "k", 1), ==, -EINVAL);
    g_assert_cmpint(blkin_annotate_integer(&t, NULL, 1), ==, -EINVAL);

    g_assert_cmpint(blkin_annotate_event(&t, big), ==, 0);
    g_assert_cmpint(blkin_annotate_string(&t, big, big), ==, 0);
    g_assert_cmpint(blkin_annotate_integer(&t, big, INT64_MIN), ==, 0);
    g_assert_cmpint(blkin_annotate_event(&t, ""), ==, 0);
    g_assert_cmpint(blkin_annotate_string(&t, "", ""), ==, 0);

    /* Filled by hand, bypassing the init functions' checks. */
    hand = (struct blkin_trace){.info = vector, .sampled = true};
    g_assert_cmpint(blkin_annotate_event(&hand, "x"), ==, -EINVAL);
    g_assert_cmpint(blkin_annotate_string(&hand, "k", "v"), ==, -EINVAL);
    g_assert_cmpint(blkin_annotate_integer(&hand, "k", 1), ==, -EINVAL);
    a = (struct blkin_endpoint){.ip = NULL, .name = big};
    hand.endpoint = &a;
    hand.name = big;
    g_assert_cmpint(blkin_annotate_event(&hand, "x"), ==, 0);
    g_assert_cmpint(blkin_annotate_string(&hand, "k", "v"), ==, 0);
    g_assert_cmpint(blkin_annotate_integer(&hand, "k", 1), ==, 0);
    g_free(big);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/libblkin/ids/threads", test_ids_threads);
    g_test_add_func("/libblkin/ids/api-threads", test_ids_api_threads);
    g_test_add_func("/libblkin/ids/spread", test_ids_spread);
    g_test_add_func("/libblkin/pack/vector", test_pack_vector);
    g_test_add_func("/libblkin/pack/roundtrip", test_pack_roundtrip);
    g_test_add_func("/libblkin/pack/bad-input", test_pack_bad_input);
    g_test_add_func("/libblkin/endpoint", test_endpoint);
    g_test_add_func("/libblkin/spans", test_spans);
    g_test_add_func("/libblkin/unsampled", test_unsampled);
    g_test_add_func("/libblkin/sample", test_sample);
    g_test_add_func("/libblkin/annotate/edges", test_annotate_edges);
    return g_test_run();
}
