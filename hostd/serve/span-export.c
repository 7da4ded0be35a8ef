/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * span-export.c: Zipkin v2 / OTLP (JSON or protobuf) span export and the
 * ClickHouse writer's queue and delivery (span-export.h), over HTTP(S) with
 * the libcurl client (http-client.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "span-export.h"

#include <gio/gio.h>
#include <inttypes.h>
#include <string.h>

#include "http-client.h"
#include "otlp-proto.h"
#include "stats/disk-stats.h"

#define BACKOFF_MIN_S 1
#define BACKOFF_MAX_S 30

typedef struct ExportItem {
    char *domain;
    char *disk;
    int64_t wall_delta_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC when offered */
    /* Unix ns by the disk's own wall mapping (hostd_span_export_offer_counted),
     * 0 when not given: */
    int64_t counted_unix_ns; /* when hostd counted it */
    int64_t since_unix_ns;   /* when its disk's statistics began */
    HostdJoinedRequest r;
} ExportItem;

struct HostdSpanExport {
    HostdExportFormat fmt;
    HostdHttpConfig *conf; /* owned */
    HostdHttp *http;       /* owned; the worker's only */
    char *hostname;
    unsigned sample;
    uint64_t slow_ns;
    uint64_t offered; /* main thread only: the sampling counter */
    unsigned queue_max;

    GMutex lock; /* protects queue, held and stop */
    GCond cond;
    GQueue queue;     /* ExportItem *, oldest first */
    GHashTable *held; /* domain -> unsigned *: its items in queue */
    gboolean stop;
    GThread *worker;
    gboolean need_schema; /* ClickHouse: create tables before inserting */
    /* The worker's: what it last logged (one line per change). */
    gboolean failing;
    long rejected_status;

    /* Read by any thread, written with atomics. */
    uint64_t queued, sent, dropped, failures, rejected;
};

static const char *format_name(HostdExportFormat f)
{
    switch (f) {
    case HOSTD_EXPORT_ZIPKIN:
        return "zipkin";
    case HOSTD_EXPORT_OTLP:
    case HOSTD_EXPORT_OTLP_PROTOBUF:
        return "otlp";
    case HOSTD_EXPORT_CLICKHOUSE:
        return "clickhouse";
    }
    return "?";
}

static void item_free(gpointer p)
{
    ExportItem *it = p;

    g_free(it->domain);
    g_free(it->disk);
    g_free(it);
}

static void held_add(HostdSpanExport *e, const char *domain, int delta)
{
    unsigned *n = g_hash_table_lookup(e->held, domain);

    if (!n) {
        n = g_new0(unsigned, 1);
        g_hash_table_insert(e->held, g_strdup(domain), n);
    }
    *n += delta;
    if (!*n)
        g_hash_table_remove(e->held, domain);
}

static unsigned held_of(HostdSpanExport *e, const char *domain)
{
    const unsigned *n = g_hash_table_lookup(e->held, domain);

    return n ? *n : 0;
}

static ExportItem *queue_pop(HostdSpanExport *e)
{
    ExportItem *it = g_queue_pop_head(&e->queue);

    held_add(e, it->domain, -1);
    return it;
}

/*
 * The queue is full and @domain offers one more. The queue is shared by
 * every VM: a VM holding fewer items than the one holding most takes the
 * place of that VM's oldest item, so a busy VM (or a collector that is down
 * while one VM is busy) cannot crowd the others out. False: drop the offer.
 */
static bool make_room_for(HostdSpanExport *e, const char *domain)
{
    unsigned mine = held_of(e, domain);
    unsigned most = 0;
    const char *heaviest = NULL;
    GHashTableIter iter;
    gpointer k, v;

    g_hash_table_iter_init(&iter, e->held);
    while (g_hash_table_iter_next(&iter, &k, &v)) {
        if (*(unsigned *)v > most) {
            most = *(unsigned *)v;
            heaviest = k;
        }
    }
    if (!heaviest || mine + 1 >= most)
        return false;
    /* Holding the most, it is found early among the oldest. */
    for (GList *l = e->queue.head; l; l = l->next) {
        ExportItem *it = l->data;

        if (strcmp(it->domain, heaviest) == 0) {
            g_queue_delete_link(&e->queue, l);
            held_add(e, it->domain, -1);
            item_free(it);
            return true;
        }
    }
    return false;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void json_escaped(GString *s, const char *v)
{
    g_string_append_c(s, '"');
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            g_string_append_c(s, '\\');
        if ((unsigned char)*v < 0x20) {
            g_string_append_printf(s, "\\u%04x", *v);
            continue;
        }
        g_string_append_c(s, *v);
    }
    g_string_append_c(s, '"');
}

/* The ids and times one exported request is made of. */
typedef struct SpanIds {
    uint64_t trace, guest, qemu;
    int64_t g_start, g_end, q_start, q_end; /* realtime ns; 0 = absent */
} SpanIds;

static SpanIds span_ids(const ExportItem *it)
{
    const HostdJoinedRequest *r = &it->r;
    SpanIds ids = {0};
    bool span = r->flags & HOSTD_JR_HAS_SPAN;
    bool guest = r->flags & HOSTD_JR_HAS_GUEST;

    /* The filter's trace id is the trace; a guest-only request gets one
     * derived from its own times. The guest span's id is derived from the
     * trace id, so the same request always exports the same ids. */
    ids.trace = span ? r->trace_id
                     : mix64(r->guest_issue_ns ^ (r->offset << 1) ^ r->op);
    ids.trace = ids.trace ? ids.trace : 1;
    if (guest) {
        ids.guest = mix64(ids.trace ^ 0x6775657374ULL) | 1;
        ids.g_start =
            (r->guest_queue_ns ? r->guest_queue_ns : r->guest_issue_ns) +
            it->wall_delta_ns;
        ids.g_end = r->guest_complete_ns + it->wall_delta_ns;
    }
    if (span) {
        ids.qemu = r->span_id;
        ids.q_start = r->span_start_ns + it->wall_delta_ns;
        ids.q_end = r->span_end_ns + it->wall_delta_ns;
    }
    return ids;
}

static void zipkin_span(GString *s, const ExportItem *it, const char *host,
                        uint64_t id, uint64_t parent, const char *service,
                        const char *kind, int64_t start, int64_t end,
                        uint64_t trace)
{
    const HostdJoinedRequest *r = &it->r;
    int64_t dur_us = (end - start) / 1000;

    if (s->len > 1)
        g_string_append_c(s, ',');
    g_string_append_printf(
        s, "{\"traceId\":\"%016" PRIx64 "\",\"id\":\"%016" PRIx64 "\",", trace,
        id);
    if (parent)
        g_string_append_printf(s, "\"parentId\":\"%016" PRIx64 "\",", parent);
    g_string_append_printf(
        s, "\"name\":\"%s\",\"kind\":\"%s\",\"timestamp\":%" PRId64,
        blkin_op_name(r->op), kind, start / 1000);
    if (dur_us > 0)
        g_string_append_printf(s, ",\"duration\":%" PRId64, dur_us);
    g_string_append(s, ",\"localEndpoint\":{\"serviceName\":");
    json_escaped(s, service);
    g_string_append(s, "},\"tags\":{\"blkin.host\":");
    json_escaped(s, host);
    g_string_append(s, ",\"blkin.domain\":");
    json_escaped(s, it->domain);
    g_string_append(s, ",\"blkin.disk\":");
    json_escaped(s, it->disk);
    g_string_append_printf(s,
                           ",\"blkin.offset\":\"%" PRIu64
                           "\",\"blkin.bytes\":\"%" PRIu64
                           "\",\"blkin.ret\":\"%d\"",
                           r->offset, r->bytes, r->ret);
    for (int p = 0; p < BLKIN_PHASE__N; p++)
        if (r->phase_valid & (1u << p))
            g_string_append_printf(s, ",\"blkin.%s_ns\":\"%" PRIu64 "\"",
                                   blkin_phase_name(p), r->phase_ns[p]);
    if (r->flags & HOSTD_JR_HAS_SPAN)
        g_string_append_printf(s, ",\"blkin.backend_ns\":\"%" PRIu64 "\"",
                               r->lower_total_ns);
    if (r->ret)
        g_string_append(s, ",\"error\":\"true\"");
    g_string_append(s, "}}");
}

static void otlp_attr(GString *s, bool first, const char *k, const char *v)
{
    g_string_append_printf(s, "%s{\"key\":\"%s\",\"value\":{\"stringValue\":",
                           first ? "" : ",", k);
    json_escaped(s, v);
    g_string_append(s, "}}");
}

static void otlp_span(GString *s, bool first, const ExportItem *it, uint64_t id,
                      uint64_t parent, const char *layer, int kind,
                      int64_t start, int64_t end, uint64_t trace)
{
    const HostdJoinedRequest *r = &it->r;

    /* OTLP trace ids are 16 bytes: BlkKin's 64-bit id in the low half. */
    g_string_append_printf(s,
                           "%s{\"traceId\":\"0000000000000000%016" PRIx64
                           "\",\"spanId\":\"%016" PRIx64 "\",",
                           first ? "" : ",", trace, id);
    if (parent)
        g_string_append_printf(s, "\"parentSpanId\":\"%016" PRIx64 "\",",
                               parent);
    g_string_append_printf(
        s,
        "\"name\":\"%s %s\",\"kind\":%d,\"startTimeUnixNano\":\"%" PRId64
        "\",\"endTimeUnixNano\":\"%" PRId64 "\",\"attributes\":[",
        layer, blkin_op_name(r->op), kind, start, end);
    otlp_attr(s, true, "blkin.layer", layer);
    g_string_append_printf(
        s,
        ",{\"key\":\"blkin.offset\",\"value\":{\"intValue\":\"%" PRIu64
        "\"}},{\"key\":\"blkin.bytes\",\"value\":{\"intValue\":\"%" PRIu64
        "\"}}",
        r->offset, r->bytes);
    for (int p = 0; p < BLKIN_PHASE__N; p++)
        if (r->phase_valid & (1u << p))
            g_string_append_printf(
                s,
                ",{\"key\":\"blkin.%s_ns\",\"value\":{\"intValue\":\"%" PRIu64
                "\"}}",
                blkin_phase_name(p), r->phase_ns[p]);
    g_string_append_printf(s, "],\"status\":{\"code\":%d}}", r->ret ? 2 : 0);
}

static char *render(HostdSpanExport *e, GPtrArray *batch)
{
    GString *s = g_string_new(
        e->fmt == HOSTD_EXPORT_ZIPKIN ? "[" : "{\"resourceSpans\":[");

    for (guint i = 0; i < batch->len; i++) {
        const ExportItem *it = g_ptr_array_index(batch, i);
        SpanIds ids = span_ids(it);

        if (e->fmt == HOSTD_EXPORT_ZIPKIN) {
            if (ids.guest)
                zipkin_span(s, it, e->hostname, ids.guest, 0, "guest", "CLIENT",
                            ids.g_start, ids.g_end, ids.trace);
            if (ids.qemu)
                zipkin_span(s, it, e->hostname, ids.qemu, ids.guest, "qemu",
                            "SERVER", ids.q_start, ids.q_end, ids.trace);
            continue;
        }
        /* One resource per request: it names the host, domain and disk. */
        g_string_append_printf(s, "%s{\"resource\":{\"attributes\":[",
                               i ? "," : "");
        otlp_attr(s, true, "service.name", "blkin");
        otlp_attr(s, false, "host.name", e->hostname);
        otlp_attr(s, false, "blkin.domain", it->domain);
        otlp_attr(s, false, "blkin.disk", it->disk);
        g_string_append(s, "]},\"scopeSpans\":[{\"scope\":{\"name\":"
                           "\"blkin-hostd\"},\"spans\":[");
        if (ids.guest)
            otlp_span(s, true, it, ids.guest, 0, "guest", 3, ids.g_start,
                      ids.g_end, ids.trace);
        if (ids.qemu)
            otlp_span(s, !ids.guest, it, ids.qemu, ids.guest, "qemu", 2,
                      ids.q_start, ids.q_end, ids.trace);
        g_string_append(s, "]}]}");
    }
    g_string_append(s, e->fmt == HOSTD_EXPORT_ZIPKIN ? "]" : "]}");
    return g_string_free(s, FALSE);
}

/* The same spans as render()'s OTLP JSON, in OTLP protobuf. */
static GBytes *render_protobuf(HostdSpanExport *e, GPtrArray *batch)
{
    HostdOtlpProto *p = hostd_otlp_proto_new();

    for (guint i = 0; i < batch->len; i++) {
        const ExportItem *it = g_ptr_array_index(batch, i);
        const HostdJoinedRequest *r = &it->r;
        SpanIds ids = span_ids(it);
        const char *const attrs[] = {
            "service.name", "blkin",        "host.name",
            e->hostname,    "blkin.domain", it->domain,
            "blkin.disk",   it->disk,       NULL};

        hostd_otlp_proto_resource(p, "blkin-hostd", attrs);
        for (int l = 0; l < 2; l++) {
            uint64_t id = l ? ids.qemu : ids.guest;
            g_autofree char *name = NULL;

            if (!id)
                continue;
            name = g_strdup_printf("%s %s", l ? "qemu" : "guest",
                                   blkin_op_name(r->op));
            hostd_otlp_proto_span(p, ids.trace, id, l ? ids.guest : 0, name,
                                  l ? 2 : 3, l ? ids.q_start : ids.g_start,
                                  l ? ids.q_end : ids.g_end, r->ret ? 2 : 0);
            hostd_otlp_proto_attr_str(p, "blkin.layer", l ? "qemu" : "guest");
            hostd_otlp_proto_attr_int(p, "blkin.offset", (int64_t)r->offset);
            hostd_otlp_proto_attr_int(p, "blkin.bytes", (int64_t)r->bytes);
            for (int ph = 0; ph < BLKIN_PHASE__N; ph++) {
                g_autofree char *k = NULL;

                if (!(r->phase_valid & (1u << ph)))
                    continue;
                k = g_strdup_printf("blkin.%s_ns", blkin_phase_name(ph));
                hostd_otlp_proto_attr_int(p, k, (int64_t)r->phase_ns[ph]);
            }
        }
    }
    return hostd_otlp_proto_finish(p);
}

/* One POST; TRUE on a 2xx answer, *@status the HTTP status (0: none). */
static gboolean post(HostdSpanExport *e, const char *query, const char *body,
                     long *status, GError **err)
{
    return hostd_http_post(e->http, query,
                           e->fmt == HOSTD_EXPORT_CLICKHOUSE
                               ? "text/plain; charset=utf-8"
                               : "application/json",
                           body, strlen(body), status, NULL, err);
}

/*
 * ClickHouse: rows as JSONEachRow, one INSERT per table. Phases are Int64
 * nanoseconds, -1 where they do not apply; times are Unix nanoseconds.
 */
static void clickhouse_rows(HostdSpanExport *e, GPtrArray *batch, GString *req,
                            GString *spans)
{
    for (guint i = 0; i < batch->len; i++) {
        const ExportItem *it = g_ptr_array_index(batch, i);
        const HostdJoinedRequest *r = &it->r;
        SpanIds ids = span_ids(it);
        int64_t end = ids.g_end ? ids.g_end : ids.q_end;

        g_string_append(req, "{\"host\":");
        json_escaped(req, e->hostname);
        g_string_append(req, ",\"domain\":");
        json_escaped(req, it->domain);
        g_string_append(req, ",\"disk\":");
        json_escaped(req, it->disk);
        g_string_append_printf(
            req,
            ",\"op\":\"%s\",\"time\":%" PRId64 ",\"end_unix_ns\":%" PRId64
            ",\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64
            ",\"ret\":%d,\"flags\":%u,\"merged\":%u,\"trace_id\":%" PRIu64
            ",\"span_id\":%" PRIu64 ",\"joined_unix_ns\":%" PRId64
            ",\"since_unix_ns\":%" PRId64,
            blkin_op_name(r->op), end / 1000000000, end, r->offset, r->bytes,
            r->ret, r->flags, r->merged, ids.trace,
            (r->flags & HOSTD_JR_HAS_SPAN) ? r->span_id : 0,
            it->counted_unix_ns, it->since_unix_ns);
        for (int p = 0; p < BLKIN_PHASE__N; p++)
            g_string_append_printf(
                req, ",\"%s_ns\":%" PRId64, blkin_phase_name(p),
                (r->phase_valid & (1u << p)) ? (int64_t)r->phase_ns[p] : -1);
        g_string_append(req, "}\n");

        for (int l = 0; l < 2; l++) {
            uint64_t id = l ? ids.qemu : ids.guest;

            if (!id)
                continue;
            g_string_append_printf(
                spans,
                "{\"trace_id\":%" PRIu64 ",\"span_id\":%" PRIu64
                ",\"parent_id\":%" PRIu64 ",\"layer\":\"%s\",\"host\":",
                ids.trace, id, l ? ids.guest : 0, l ? "qemu" : "guest");
            json_escaped(spans, e->hostname);
            g_string_append(spans, ",\"domain\":");
            json_escaped(spans, it->domain);
            g_string_append(spans, ",\"disk\":");
            json_escaped(spans, it->disk);
            g_string_append_printf(spans,
                                   ",\"op\":\"%s\",\"start_unix_ns\":%" PRId64
                                   ",\"end_unix_ns\":%" PRId64 "}\n",
                                   blkin_op_name(r->op),
                                   l ? ids.q_start : ids.g_start,
                                   l ? ids.q_end : ids.g_end);
        }
    }
}

/*
 * The schema (docs/clickhouse.md): made if missing, and a table made by an
 * older hostd gets the columns it lacks (new phases are appended to
 * enum blkin_phase), so that rows with every phase insert.
 */
#define CH_REQUESTS_HEAD                                                       \
    "host String, domain String, disk String, op String, time DateTime, "      \
    "end_unix_ns UInt64, offset UInt64, bytes UInt64, ret Int32, "             \
    "flags UInt32, merged UInt8, trace_id UInt64, span_id UInt64"
/* Columns after the phases: name, type. */
static const char *const ch_more_columns[][2] = {
    {"joined_unix_ns", "UInt64 DEFAULT 0"}, /* when hostd counted it */
    {"since_unix_ns", "UInt64 DEFAULT 0"},  /* its disk's stats began */
};

static char *clickhouse_requests_table(void)
{
    GString *s = g_string_new(
        "CREATE TABLE IF NOT EXISTS blkin.requests (" CH_REQUESTS_HEAD);

    for (int p = 0; p < BLKIN_PHASE__N; p++)
        g_string_append_printf(s, ", %s_ns Int64 DEFAULT -1",
                               blkin_phase_name(p));
    for (size_t i = 0; i < G_N_ELEMENTS(ch_more_columns); i++)
        g_string_append_printf(s, ", %s %s", ch_more_columns[i][0],
                               ch_more_columns[i][1]);
    g_string_append(s, ") ENGINE = MergeTree() PARTITION BY toYYYYMMDD(time) "
                       "ORDER BY (domain, disk, time)");
    return g_string_free(s, FALSE);
}

static const char *const clickhouse_schema[] = {
    "CREATE DATABASE IF NOT EXISTS blkin",
    NULL, /* blkin.requests: clickhouse_requests_table() */
    "CREATE TABLE IF NOT EXISTS blkin.spans (trace_id UInt64, "
    "span_id UInt64, parent_id UInt64, layer String, host String, "
    "domain String, disk String, op String, start_unix_ns UInt64, "
    "end_unix_ns UInt64) ENGINE = MergeTree() ORDER BY (domain, disk, "
    "start_unix_ns)",
};

/* Adds the columns blkin.requests lacks. */
static gboolean clickhouse_upgrade(HostdSpanExport *e, long *status,
                                   GError **err)
{
    static const char q[] = "DESCRIBE TABLE blkin.requests FORMAT TabSeparated";
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GHashTable) have =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_auto(GStrv) lines = NULL;

    if (!hostd_http_post(e->http, NULL, "text/plain; charset=utf-8", q,
                         strlen(q), status, out, err))
        return FALSE;
    g_byte_array_append(out, (guint8 *)"", 1);
    lines = g_strsplit((char *)out->data, "\n", -1);
    for (char **l = lines; *l; l++)
        if (**l)
            g_hash_table_add(have, g_strndup(*l, strcspn(*l, "\t")));
    for (int p = 0; p < BLKIN_PHASE__N + (int)G_N_ELEMENTS(ch_more_columns);
         p++) {
        g_autofree char *col =
            p < BLKIN_PHASE__N
                ? g_strdup_printf("%s_ns", blkin_phase_name(p))
                : g_strdup(ch_more_columns[p - BLKIN_PHASE__N][0]);
        g_autofree char *alter = NULL;

        if (g_hash_table_contains(have, col))
            continue;
        alter = g_strdup_printf(
            "ALTER TABLE blkin.requests ADD COLUMN %s %s", col,
            p < BLKIN_PHASE__N ? "Int64 DEFAULT -1"
                               : ch_more_columns[p - BLKIN_PHASE__N][1]);
        if (!post(e, NULL, alter, status, err))
            return FALSE;
        g_message("store clickhouse: added column %s to blkin.requests", col);
    }
    return TRUE;
}

/* Delivers @batch; *@status is the HTTP status of the request that
 * failed (0: no answer). */
static gboolean deliver(HostdSpanExport *e, GPtrArray *batch, long *status,
                        GError **err)
{
    g_autoptr(GString) req = NULL, spans = NULL;
    g_autofree char *body = NULL;

    if (e->fmt == HOSTD_EXPORT_OTLP_PROTOBUF) {
        g_autoptr(GBytes) pb = render_protobuf(e, batch);
        gsize n;
        const void *data = g_bytes_get_data(pb, &n);

        return hostd_http_post(e->http, NULL, "application/x-protobuf", data, n,
                               status, NULL, err);
    }
    if (e->fmt != HOSTD_EXPORT_CLICKHOUSE) {
        body = render(e, batch);
        return post(e, NULL, body, status, err);
    }
    if (e->need_schema) {
        for (size_t i = 0; i < G_N_ELEMENTS(clickhouse_schema); i++) {
            g_autofree char *table =
                clickhouse_schema[i] ? NULL : clickhouse_requests_table();

            if (!post(e, NULL, table ? table : clickhouse_schema[i], status,
                      err))
                return FALSE;
        }
        if (!clickhouse_upgrade(e, status, err))
            return FALSE;
        e->need_schema = FALSE;
    }
    req = g_string_new(NULL);
    spans = g_string_new(NULL);
    clickhouse_rows(e, batch, req, spans);
    return post(e,
                "query=INSERT%20INTO%20blkin.requests%20FORMAT%20"
                "JSONEachRow",
                req->str, status, err) &&
           (!spans->len ||
            post(e, "query=INSERT%20INTO%20blkin.spans%20FORMAT%20JSONEachRow",
                 spans->str, status, err));
}

/* A status the collector will answer the same way next time: the batch is
 * dropped (counted as rejected) rather than retried for ever. 408 and 429
 * ask for a retry. */
static gboolean permanent(long status)
{
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

static gpointer worker(gpointer user)
{
    HostdSpanExport *e = user;
    g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func(item_free);
    unsigned backoff = 0;

    for (;;) {
        gint64 deadline =
            g_get_monotonic_time() + (backoff ? backoff : 1) * G_USEC_PER_SEC;

        g_mutex_lock(&e->lock);
        /* Wait for a full batch, the next second, or stop. */
        while (!e->stop && e->queue.length < HOSTD_EXPORT_BATCH &&
               g_cond_wait_until(&e->cond, &e->lock, deadline))
            ;
        if (e->stop) {
            g_mutex_unlock(&e->lock);
            break;
        }
        while (batch->len < HOSTD_EXPORT_BATCH && e->queue.length)
            g_ptr_array_add(batch, queue_pop(e));
        g_mutex_unlock(&e->lock);
        if (!batch->len)
            continue;

        g_autoptr(GError) err = NULL;
        long status = 0;

        if (deliver(e, batch, &status, &err)) {
            __atomic_fetch_add(&e->sent, batch->len, __ATOMIC_RELAXED);
            g_ptr_array_set_size(batch, 0);
            backoff = 0;
            if (e->failing || e->rejected_status)
                g_message("export %s: delivering again", format_name(e->fmt));
            e->failing = FALSE;
            e->rejected_status = 0;
        } else if (permanent(status)) {
            /* Retrying would only be refused again: drop the batch, say so
             * once per status. */
            __atomic_fetch_add(&e->rejected, batch->len, __ATOMIC_RELAXED);
            if (status != e->rejected_status)
                g_warning("export %s: the collector refused a batch (%s); "
                          "dropping refused batches (counted as rejected)",
                          format_name(e->fmt), err->message);
            e->rejected_status = status;
            e->need_schema = e->fmt == HOSTD_EXPORT_CLICKHOUSE;
            g_ptr_array_set_size(batch, 0);
        } else {
            /* Keep the batch and retry it later; the queue keeps filling
             * (and dropping) meanwhile. */
            __atomic_fetch_add(&e->failures, 1, __ATOMIC_RELAXED);
            if (!e->failing)
                g_warning("export %s: %s; retrying with backoff (%d s .. %d "
                          "s), logged once until it works again",
                          format_name(e->fmt), err ? err->message : "failed",
                          BACKOFF_MIN_S, BACKOFF_MAX_S);
            e->failing = TRUE;
            backoff = backoff ? MIN(backoff * 2, BACKOFF_MAX_S) : BACKOFF_MIN_S;
        }
    }
    return NULL;
}

HostdSpanExport *hostd_span_export_new(HostdExportFormat fmt, const char *url,
                                       unsigned sample, uint64_t slow_ns,
                                       GError **err)
{
    HostdHttpConfig *conf = hostd_http_config_new(url, err);

    return conf ? hostd_span_export_new_http(fmt, conf, sample, slow_ns, err)
                : NULL;
}

HostdSpanExport *hostd_span_export_new_http(HostdExportFormat fmt,
                                            HostdHttpConfig *conf,
                                            unsigned sample, uint64_t slow_ns,
                                            GError **err)
{
    HostdHttp *http = hostd_http_new(conf, err);
    HostdSpanExport *e;

    if (!http) {
        hostd_http_config_free(conf);
        return NULL;
    }
    e = g_new0(HostdSpanExport, 1);
    e->fmt = fmt;
    e->conf = conf;
    e->http = http;
    e->hostname = g_strdup(g_get_host_name());
    e->sample = sample;
    e->slow_ns = slow_ns;
    e->queue_max = HOSTD_EXPORT_QUEUE_MAX;
    e->need_schema = fmt == HOSTD_EXPORT_CLICKHOUSE;
    g_mutex_init(&e->lock);
    g_cond_init(&e->cond);
    g_queue_init(&e->queue);
    e->held = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    e->worker = g_thread_new("blkin-export", worker, e);
    return e;
}

void hostd_span_export_free(HostdSpanExport *e)
{
    if (!e)
        return;
    g_mutex_lock(&e->lock);
    e->stop = TRUE;
    g_cond_signal(&e->cond);
    g_mutex_unlock(&e->lock);
    g_thread_join(e->worker);
    g_queue_clear_full(&e->queue, item_free);
    g_hash_table_destroy(e->held);
    g_mutex_clear(&e->lock);
    g_cond_clear(&e->cond);
    hostd_http_free(e->http);
    hostd_http_config_free(e->conf);
    g_free(e->hostname);
    g_free(e);
}

void hostd_span_export_offer(HostdSpanExport *e, const char *domain,
                             const char *disk, const HostdJoinedRequest *r)
{
    int64_t now = g_get_real_time() * 1000;

    hostd_span_export_offer_counted(e, domain, disk, now, 0, r);
}

void hostd_span_export_offer_counted(HostdSpanExport *e, const char *domain,
                                     const char *disk, int64_t counted_unix_ns,
                                     int64_t since_unix_ns,
                                     const HostdJoinedRequest *r)
{
    bool sampled = e->sample && e->offered++ % e->sample == 0;
    /* Slow by the filter span's duration, which the host measured: the
     * queue is shared by every VM, and a guest's own times (its word) must
     * not let it crowd the others' requests out. */
    bool slow = e->slow_ns && r->span_end_ns > r->span_start_ns &&
                r->span_end_ns - r->span_start_ns >= e->slow_ns;
    ExportItem *it;

    if (!sampled && !slow)
        return;
    g_mutex_lock(&e->lock);
    /* Either way one request is lost: the offer or an older one. */
    if (e->queue.length >= e->queue_max) {
        __atomic_fetch_add(&e->dropped, 1, __ATOMIC_RELAXED);
        if (!make_room_for(e, domain)) {
            g_mutex_unlock(&e->lock);
            return;
        }
    }
    it = g_new(ExportItem, 1);
    it->domain = g_strdup(domain);
    it->disk = g_strdup(disk);
    it->wall_delta_ns =
        g_get_real_time() * 1000 - g_get_monotonic_time() * 1000;
    it->counted_unix_ns = counted_unix_ns;
    it->since_unix_ns = since_unix_ns;
    it->r = *r;
    g_queue_push_tail(&e->queue, it);
    held_add(e, domain, 1);
    if (e->queue.length >= HOSTD_EXPORT_BATCH)
        g_cond_signal(&e->cond);
    g_mutex_unlock(&e->lock);
    __atomic_fetch_add(&e->queued, 1, __ATOMIC_RELAXED);
}

unsigned hostd_span_export_pending_of(HostdSpanExport *e, const char *domain)
{
    unsigned n;

    g_mutex_lock(&e->lock);
    n = held_of(e, domain);
    g_mutex_unlock(&e->lock);
    return n;
}

void hostd_span_export_set_queue_max(HostdSpanExport *e, unsigned n)
{
    g_mutex_lock(&e->lock);
    e->queue_max = n ? n : 1;
    g_mutex_unlock(&e->lock);
}

const char *hostd_span_export_name(const HostdSpanExport *e)
{
    return format_name(e->fmt);
}

void hostd_span_export_stats(HostdSpanExport *e, HostdExportStats *out)
{
    out->queued = __atomic_load_n(&e->queued, __ATOMIC_RELAXED);
    out->sent = __atomic_load_n(&e->sent, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&e->dropped, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&e->failures, __ATOMIC_RELAXED);
    out->rejected = __atomic_load_n(&e->rejected, __ATOMIC_RELAXED);
    g_mutex_lock(&e->lock);
    out->pending = e->queue.length;
    g_mutex_unlock(&e->lock);
}
