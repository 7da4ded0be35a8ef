/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-span-export.c: the span exporter's queue is shared by every VM of
 * the host; with the collector down and one VM busy, another VM's requests
 * still find room, and the queue ends up split evenly between them.
 */
#include "serve/span-export.h"

#include <glib.h>

/* Nothing listens on port 1 here: every POST fails and the queue fills. */
#define DOWN_URL "http://127.0.0.1:1/api/v2/spans"

static void offer(HostdSpanExport *e, const char *vm, unsigned n)
{
    HostdJoinedRequest r = {.span_start_ns = 1000, .span_end_ns = 2000};

    for (unsigned i = 0; i < n; i++)
        hostd_span_export_offer(e, vm, "vda", &r);
}

static void test_fair_share(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(HostdSpanExport) e =
        hostd_span_export_new(HOSTD_EXPORT_ZIPKIN, DOWN_URL, 1, 0, &err);
    HostdExportStats st;
    const uint64_t offered = 500 + 10 + 60 + 5 + 40;

    g_assert_no_error(err);
    hostd_span_export_set_queue_max(e, 100);
    /* All offers happen well within the worker's first second, so the
     * queue holds exactly what is offered and not yet dropped. */
    offer(e, "busy", 500);
    hostd_span_export_stats(e, &st);
    g_assert_cmpuint(st.pending, ==, 100);
    g_assert_cmpuint(st.dropped, ==, 400);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "busy"), ==, 100);

    /* A quiet VM's requests take the busy one's oldest places. */
    offer(e, "quiet", 10);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "quiet"), ==, 10);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "busy"), ==, 90);

    /* ... up to an even split, and no further. */
    offer(e, "quiet", 60);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "quiet"), ==, 50);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "busy"), ==, 50);
    offer(e, "busy", 5);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "busy"), ==, 50);

    /* A third VM gets its share from the two. */
    offer(e, "third", 40);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "third"), ==, 33);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "busy") +
                         hostd_span_export_pending_of(e, "quiet"),
                     ==, 67);

    /* Every request is accounted for: queued ones are pending or were
     * evicted; a drop is a refused offer or an eviction. */
    hostd_span_export_stats(e, &st);
    g_assert_cmpuint(st.pending, ==, 100);
    g_assert_cmpuint(st.sent, ==, 0);
    g_assert_cmpuint(st.queued - st.pending + (offered - st.queued), ==,
                     st.dropped);
    g_assert_cmpuint(hostd_span_export_pending_of(e, "nobody"), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/span-export/fair-share", test_fair_share);
    return g_test_run();
}
