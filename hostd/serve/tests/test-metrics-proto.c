/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-metrics-proto.c: /metrics' protobuf format (serve/metrics-proto.c):
 * which Accept headers ask for it, the native bucket index at its bounds,
 * and a histogram's message read back: counts, classic buckets, native
 * spans and deltas that add up to the values put in.
 */
#include "serve/metrics-proto.h"
#include "prom-metrics.pb-c.h"

#include <glib.h>
#include <math.h>
#include <string.h>

static gboolean wanted(const char *head)
{
    return hostd_prom_proto_wanted(head, strlen(head));
}

static void test_accept(void)
{
    /* What Prometheus 2.42 sends with native histograms on, and off. */
    g_assert_true(wanted("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: "
                         "application/vnd.google.protobuf;proto=io.prometheus."
                         "client.MetricFamily;encoding=delimited;q=0.7,text/"
                         "plain;version=0.0.4;q=0.3,*/*;q=0.2\r\n\r\n"));
    g_assert_false(wanted("GET /metrics HTTP/1.1\r\nAccept: application/"
                          "openmetrics-text;version=1.0.0,text/plain;version="
                          "0.0.4;q=0.5,*/*;q=0.1\r\n\r\n"));
    g_assert_false(wanted("GET /metrics HTTP/1.0\r\n\r\n"));
    /* Refused with q=0; another message type or encoding is not ours. */
    g_assert_false(wanted("GET /metrics HTTP/1.1\r\nAccept: application/vnd."
                          "google.protobuf;proto=io.prometheus.client."
                          "MetricFamily;encoding=delimited;q=0\r\n\r\n"));
    g_assert_false(wanted("GET /metrics HTTP/1.1\r\nAccept: application/vnd."
                          "google.protobuf;proto=other.Msg;encoding=delimited"
                          "\r\n\r\n"));
    g_assert_false(wanted("GET /metrics HTTP/1.1\r\nX-Accept: application/vnd."
                          "google.protobuf;proto=io.prometheus.client."
                          "MetricFamily;encoding=delimited\r\n\r\n"));
    g_assert_true(wanted("GET /metrics HTTP/1.1\naccept:application/vnd.google."
                         "protobuf; proto=io.prometheus.client.MetricFamily; "
                         "encoding=delimited\n\n"));
    g_assert_false(hostd_prom_proto_wanted("Accept:", 7));
}

static void test_index(void)
{
    /* Schema 3: bucket i is (2^((i-1)/8), 2^(i/8)]; 1 is a bound. */
    g_assert_cmpint(hostd_prom_native_index(1.0, 3), ==, 0);
    g_assert_cmpint(hostd_prom_native_index(1.0000001, 3), ==, 1);
    g_assert_cmpint(hostd_prom_native_index(2.0, 3), ==, 8);
    g_assert_cmpint(hostd_prom_native_index(0.5, 3), ==, -8);
    g_assert_cmpint(hostd_prom_native_index(0.49, 3), ==, -8);
    for (int i = -200; i < 40; i++) {
        double up = exp2(i / 8.0);

        g_assert_cmpint(hostd_prom_native_index(up, 3), ==, i);
        g_assert_cmpint(hostd_prom_native_index(up * 1.0001, 3), ==, i + 1);
    }
}

/* Reads the first delimited message of @b. */
static Blkin__Prom__MetricFamily *first(GBytes *b, gsize *used)
{
    gsize n;
    const guint8 *d = g_bytes_get_data(b, &n);
    uint64_t len = 0;
    unsigned shift = 0;
    gsize i = 0;

    do {
        len |= (uint64_t)(d[i] & 0x7f) << shift;
        shift += 7;
    } while (d[i++] & 0x80);
    g_assert_cmpuint(i + len, <=, n);
    *used = i + len;
    return blkin__prom__metric_family__unpack(NULL, len, d + i);
}

static void test_histogram(void)
{
    g_autoptr(HostdLatencyHist) h = hostd_latency_hist_new();
    const double ladder[] = {1e-6, 1e-5, 1e-4};
    const char *const labels[] = {"disk", "vda", "op", "read", NULL};
    HostdPromProto *p = hostd_prom_proto_new();
    g_autoptr(GBytes) out = NULL;
    Blkin__Prom__MetricFamily *f;
    Blkin__Prom__Histogram *hi;
    uint64_t total = 0, c = 0;
    gsize used;

    hostd_latency_hist_add_n(h, 500, 10);   /* 0.5 us */
    hostd_latency_hist_add_n(h, 5000, 20);  /* 5 us */
    hostd_latency_hist_add_n(h, 5100, 5);   /* same native bucket */
    hostd_latency_hist_add_n(h, 50000, 30); /* 50 us */
    hostd_latency_hist_add_n(h, 900000, 1); /* 0.9 ms: above the ladder */
    hostd_prom_proto_histogram_family(p, "x_seconds", "help");
    hostd_prom_proto_histogram(p, labels, h, ladder, 3, 3);
    g_assert_true(hostd_prom_proto_add_text(
        p,
        "# HELP y_total A counter.\n# TYPE y_total counter\n"
        "y_total{a=\"q\\\"x\"} 7\n",
        "x_seconds"));
    out = hostd_prom_proto_finish(p);
    f = first(out, &used);
    g_assert_nonnull(f);
    g_assert_cmpstr(f->name, ==, "x_seconds");
    g_assert_cmpint(f->type, ==, BLKIN__PROM__METRIC_TYPE__HISTOGRAM);
    g_assert_cmpuint(f->n_metric, ==, 1);
    g_assert_cmpuint(f->metric[0]->n_label, ==, 2);
    g_assert_cmpstr(f->metric[0]->label[1]->value, ==, "read");
    hi = f->metric[0]->histogram;
    g_assert_cmpuint(hi->sample_count, ==, 66);
    g_assert_cmpfloat_with_epsilon(
        hi->sample_sum, (5000 + 100000 + 25500 + 1500000 + 900000) / 1e9,
        1e-12);
    g_assert_cmpuint(hi->n_bucket, ==, 3);
    g_assert_cmpuint(hi->bucket[0]->cumulative_count, ==, 10);
    g_assert_cmpuint(hi->bucket[1]->cumulative_count, ==, 35);
    g_assert_cmpuint(hi->bucket[2]->cumulative_count, ==, 65);
    g_assert_cmpint(hi->schema, ==, 3);
    g_assert_cmpuint(hi->zero_count, ==, 0);
    /* Spans and deltas give back 4 buckets: 10, 25, 30, 1. */
    g_assert_cmpuint(hi->n_positive_delta, ==, 4);
    for (size_t i = 0; i < hi->n_positive_delta; i++) {
        c += hi->positive_delta[i];
        total += c;
    }
    g_assert_cmpuint(total, ==, 66);
    g_assert_cmpuint(hi->n_positive_span, ==, 4);
    g_assert_cmpint(hi->positive_span[0]->offset, ==,
                    hostd_prom_native_index(500e-9, 3));
    blkin__prom__metric_family__free_unpacked(f, NULL);
    /* The counter converted from the text, escapes undone. */
    {
        gsize n, used2;
        g_autoptr(GBytes) rest = NULL;

        g_bytes_get_data(out, &n);
        rest = g_bytes_new_from_bytes(out, used, n - used);
        f = first(rest, &used2);
        g_assert_cmpstr(f->name, ==, "y_total");
        g_assert_cmpstr(f->help, ==, "A counter.");
        g_assert_cmpint(f->type, ==, BLKIN__PROM__METRIC_TYPE__COUNTER);
        g_assert_cmpstr(f->metric[0]->label[0]->value, ==, "q\"x");
        g_assert_cmpfloat(f->metric[0]->counter->value, ==, 7);
        g_assert_cmpuint(used2, ==, n - used);
        blkin__prom__metric_family__free_unpacked(f, NULL);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/metrics-proto/accept", test_accept);
    g_test_add_func("/metrics-proto/native-index", test_index);
    g_test_add_func("/metrics-proto/histogram", test_histogram);
    return g_test_run();
}
