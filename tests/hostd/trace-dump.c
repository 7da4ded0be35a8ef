/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * trace-dump: prints what a HostdTraceSource hands its sink, one JSON object
 * a line, for the tests; with --count only counts (the ingest benchmark's
 * driver: the cost measured is the source's, not printing's).
 *
 *   trace-dump [--count] [--timeout SEC] TRACE_DIR
 *   trace-dump [--count] [--timeout SEC] --live net://HOST:PORT/host/H/S
 *
 * Last line: {"ev":"end",...stats} when the trace ended (exit 0), or
 * {"ev":"error","message":...} (exit 1), or {"ev":"timeout",...} (exit 3).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "ingest/trace-source.h"

typedef struct Counts {
    uint64_t spans, hung, disks, discarded, bytes;
} Counts;

static void put_json_string(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_span_fields(const HostdSpan *s)
{
    printf("\"vpid\":%" PRIu32 ",\"disk\":%" PRIu32 ",\"trace_id\":%" PRIu64
           ",\"span_id\":%" PRIu64 ",\"parent_span_id\":%" PRIu64
           ",\"op\":\"%s\",\"flags\":%" PRIu32 ",\"offset\":%" PRIu64
           ",\"bytes\":%" PRIu64 ",\"start_ns\":%" PRIu64 ",\"end_ns\":%" PRIu64
           ",\"ret\":%" PRId32 ",\"inflight\":%" PRIu32 ",\"why\":%u",
           s->vpid, s->disk, s->trace_id, s->span_id, s->parent_span_id,
           blkin_op_name(s->op), s->flags, s->offset, s->bytes, s->start_ns,
           s->end_ns, s->ret, s->inflight, s->why);
}

static void on_span(void *opaque, const HostdSpan *s)
{
    printf("{\"ev\":\"span\",");
    print_span_fields(s);
    printf("}\n");
}

/* A virtio-blk request: the span (its end the filter's exit), the device's
 * completion and the device requests it served. */
static void on_device_span(void *opaque, const HostdSpan *s,
                           const HostdDevReq *dev, unsigned n)
{
    printf("{\"ev\":\"span\",");
    print_span_fields(s);
    printf(",\"dev_end_ns\":%" PRIu64 ",\"dev\":[", s->dev_end_ns);
    for (unsigned i = 0; i < n; i++)
        printf("%s[%" PRIu64 ",%" PRIu64 ",%" PRIu64 "]", i ? "," : "",
               dev[i].start_ns, dev[i].offset, dev[i].bytes);
    printf("]}\n");
}

static void on_hung(void *opaque, const HostdSpan *s, uint64_t age_ns)
{
    printf("{\"ev\":\"hung\",");
    print_span_fields(s);
    printf(",\"age_ns\":%" PRIu64 "}\n", age_ns);
}

static void on_disk(void *opaque, const HostdDiskMap *m)
{
    printf("{\"ev\":\"disk\",\"vpid\":%" PRIu32 ",\"disk\":%" PRIu32
           ",\"state\":%u,\"sample\":%" PRIu32 ",\"id\":",
           m->vpid, m->disk, m->state, m->sample);
    put_json_string(m->id);
    printf(",\"node\":");
    put_json_string(m->node);
    printf(",\"child\":");
    put_json_string(m->child);
    if (m->device) {
        printf(",\"device\":");
        put_json_string(m->device);
    }
    printf("}\n");
}

static void on_zipkin(void *opaque, const HostdZipkinEvent *e)
{
    static const char *const kinds[] = {"timestamp", "keyval_string",
                                        "keyval_integer"};

    printf("{\"ev\":\"zipkin\",\"kind\":\"%s\",\"time_ns\":%" PRIu64
           ",\"trace_id\":%" PRIu64 ",\"span_id\":%" PRIu64
           ",\"parent_span_id\":%" PRIu64 ",\"port\":%" PRId32
           ",\"trace_name\":",
           kinds[e->kind], e->time_ns, e->trace_id, e->span_id,
           e->parent_span_id, e->port);
    put_json_string(e->trace_name);
    printf(",\"service_name\":");
    put_json_string(e->service_name);
    printf(",\"ip\":");
    put_json_string(e->ip);
    printf(",\"key\":");
    put_json_string(e->key);
    if (e->kind == HOSTD_ZIPKIN_STRING) {
        printf(",\"val\":");
        put_json_string(e->str_val);
    } else if (e->kind == HOSTD_ZIPKIN_INTEGER) {
        printf(",\"val\":%" PRId64, e->int_val);
    }
    printf("}\n");
}

static void on_discarded(void *opaque, uint64_t count)
{
    printf("{\"ev\":\"discarded\",\"count\":%" PRIu64 "}\n", count);
}

/* --count: touch what a consumer would, so nothing is optimized away. */
static void count_span(void *opaque, const HostdSpan *s)
{
    Counts *c = opaque;

    c->spans++;
    c->bytes += s->bytes;
}

static void count_hung(void *opaque, const HostdSpan *s, uint64_t age_ns)
{
    ((Counts *)opaque)->hung++;
}

static void count_disk(void *opaque, const HostdDiskMap *m)
{
    ((Counts *)opaque)->disks++;
}

static void count_discarded(void *opaque, uint64_t count)
{
    ((Counts *)opaque)->discarded += count;
}

static void print_stats(const char *ev, HostdTraceSource *src, double secs)
{
    HostdTraceStats st;

    hostd_trace_source_get_stats(src, &st);
    printf("{\"ev\":\"%s\",\"events\":%" PRIu64 ",\"spans\":%" PRIu64
           ",\"hung\":%" PRIu64 ",\"disks\":%" PRIu64 ",\"rejected\":%" PRIu64
           ",\"ignored\":%" PRIu64 ",\"discarded\":%" PRIu64
           ",\"batches\":%" PRIu64 ",\"batches_lost\":%" PRIu64
           ",\"time_ns\":%" PRIu64 ",\"seconds\":%.6f,\"events_per_s\":%.0f"
           ",\"spans_per_s\":%.0f}\n",
           ev, st.events, st.spans, st.hung, st.disks, st.rejected, st.ignored,
           st.discarded, st.batches, st.batches_lost,
           hostd_trace_source_time_ns(src), secs,
           secs > 0 ? st.events / secs : 0.0, secs > 0 ? st.spans / secs : 0.0);
}

int main(int argc, char **argv)
{
    gboolean count = FALSE;
    char *live = NULL;
    double timeout = 0;
    GOptionEntry entries[] = {
        {"count", 0, 0, G_OPTION_ARG_NONE, &count, "only count events", NULL},
        {"live", 0, 0, G_OPTION_ARG_STRING, &live, "LTTng live URL", "URL"},
        {"timeout", 0, 0, G_OPTION_ARG_DOUBLE, &timeout,
         "give up after SEC seconds", "SEC"},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("[TRACE_DIR]");
    g_autoptr(GError) err = NULL;
    g_autoptr(HostdTraceSource) src = NULL;
    HostdTraceSink sink = {.span = on_span,
                           .device_span = on_device_span,
                           .hung = on_hung,
                           .disk = on_disk,
                           .discarded = on_discarded,
                           .zipkin = on_zipkin};
    HostdTraceSink counter = {.span = count_span,
                              .hung = count_hung,
                              .disk = count_disk,
                              .discarded = count_discarded};
    Counts counts = {0};
    gint64 t0, deadline;
    uint64_t last_ns = 0;
    int r;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err) ||
        (!live && argc != 2)) {
        fprintf(stderr, "usage: trace-dump [--count] [--timeout SEC] "
                        "TRACE_DIR | --live URL\n");
        return 2;
    }
    /* Line-buffered: a live test reads events while the session runs. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    t0 = g_get_monotonic_time();
    deadline = timeout > 0 ? t0 + (gint64)(timeout * G_USEC_PER_SEC) : 0;
    if (live)
        src = hostd_trace_source_new_live(live, count ? &counter : &sink,
                                          &counts, &err);
    else
        src = hostd_trace_source_new_offline(argv[1], count ? &counter : &sink,
                                             &counts, &err);
    if (!src) {
        printf("{\"ev\":\"error\",\"message\":");
        put_json_string(err->message);
        printf("}\n");
        fprintf(stderr, "trace-dump: %s\n", err->message);
        return 1;
    }
    while ((r = hostd_trace_source_poll(src)) > 0) {
        if (deadline && g_get_monotonic_time() > deadline) {
            print_stats("timeout", src, (g_get_monotonic_time() - t0) / 1e6);
            return 3;
        }
        if (r == HOSTD_TRACE_IDLE) {
            uint64_t ns = hostd_trace_source_time_ns(src);

            /* Idle live: show the source's time still advancing. */
            if (!count && ns != last_ns)
                printf("{\"ev\":\"time\",\"ns\":%" PRIu64 "}\n", ns);
            last_ns = ns;
            g_usleep(HOSTD_TRACE_IDLE_MS * 1000);
        }
    }
    /* The API's promises, checked on every run the tests make. */
    hostd_trace_source_free(NULL);
    if (hostd_trace_source_poll(src) != r) {
        fprintf(stderr, "trace-dump: poll after %s did not return %d again\n",
                r < 0 ? "an error" : "the end", r);
        return 4;
    }
    if (r < 0) {
        const char *m = hostd_trace_source_error(src);

        printf("{\"ev\":\"error\",\"errno\":%d,\"message\":", -r);
        put_json_string(m ? m : "");
        printf("}\n");
        fprintf(stderr, "trace-dump: %s\n", m ? m : g_strerror(-r));
        return 1;
    }
    print_stats("end", src, (g_get_monotonic_time() - t0) / 1e6);
    return 0;
}
