/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * report-store.c: `blkin report --store URL`: the per-disk report computed
 * by ClickHouse from the rows every node's hostd wrote (store-clickhouse.h),
 * in the same JSON shape as hostd's own report, so one printer serves both.
 *
 * The definitions are hostd's (docs/clickhouse.md):
 * - percentiles: the nearest rank, the value of rank ceil(q * n) among a
 *   phase's n values (latency-hist.h, hostd_latency_hist_rank()); hostd
 *   reports that rank's histogram bucket (within 0.8 %), the store the
 *   value itself. max is the largest value, mean the integer mean.
 * - windows: complete seconds, ending with the last complete second: 1s,
 *   1m, and 1h = the complete minutes of the last hour plus the seconds
 *   since (hostd's runs 60 to 65 minutes, by 5-minute blocks); a request
 *   belongs to the window in which hostd counted it (joined_unix_ns).
 * - rates (iops, mbps): the window's requests over the window's duration,
 *   the window starting no earlier than when the disk's statistics began
 *   (since_unix_ns; across nodes, the earliest).
 * Rows written before those columns existed count by their completion and
 * are not clamped.
 */
#define G_LOG_DOMAIN "blkin"

#include "report-store.h"

#include <gio/gio.h>
#include <inttypes.h>
#include <string.h>

#include "blkin-schema.h"
#include "export-config.h"

#define NS INT64_C(1000000000)

/* The percentiles hostd reports, and their members. */
static const struct {
    const char *q, *member;
} quantiles[] = {
    {"0.5", "p50_ns"},
    {"0.9", "p90_ns"},
    {"0.99", "p99_ns"},
    {"0.999", "p999_ns"},
};

/* A string literal for SQL: quotes and backslashes escaped. */
static char *sql_str(const char *s)
{
    GString *o = g_string_new("'");

    for (; *s; s++) {
        if (*s == '\'' || *s == '\\')
            g_string_append_c(o, '\\');
        g_string_append_c(o, *s);
    }
    g_string_append_c(o, '\'');
    return g_string_free(o, FALSE);
}

/*
 * The window [start, end) in Unix ns for @window at @now_ns; start 0: no
 * bound (all). FALSE for an unknown window.
 */
static gboolean window_bounds(const char *window, int64_t now_ns,
                              int64_t *start, int64_t *end)
{
    int64_t s = now_ns / NS; /* the second in progress is not shown */

    *end = s * NS;
    if (g_str_equal(window, "1s"))
        *start = (s - 1) * NS;
    else if (g_str_equal(window, "1m"))
        *start = (s - 60) * NS;
    else if (g_str_equal(window, "1h"))
        *start = (s / 60 * 60 - 3600) * NS;
    else if (g_str_equal(window, "1d"))
        *start = (s - 86400) * NS;
    else if (g_str_equal(window, "all"))
        *start = 0;
    else
        return FALSE;
    return TRUE;
}

static char *query_text(const char *vm, const char *disk, int64_t start,
                        int64_t end)
{
    /* When hostd counted the request (older rows: when it completed). */
    static const char jt[] =
        "if(joined_unix_ns > 0, joined_unix_ns, end_unix_ns)";
    GString *in = g_string_new(NULL), *q = g_string_new(NULL);

    /* Inner: per disk and op, each phase's sorted values. */
    g_string_append(in, "SELECT domain, disk, op, count() AS n, "
                        "sum(bytes) AS b, "
                        "minIf(since_unix_ns, since_unix_ns > 0) AS since, ");
    g_string_append_printf(in, "min(%s) AS t0, ", jt);
    g_string_append(in, "countIf(bitAnd(flags, 3) = 3) AS matched, "
                        "countIf(bitAnd(flags, 8) != 0) AS ug, "
                        "countIf(bitAnd(flags, 16) != 0) AS us");
    for (int p = 0; p < BLKIN_PHASE__N; p++)
        g_string_append_printf(in,
                               ", arraySort(groupArrayIf(%1$s_ns, %1$s_ns >= "
                               "0)) AS a_%1$s, sumIf(%1$s_ns, %1$s_ns >= 0) "
                               "AS s_%1$s",
                               blkin_phase_name(p));
    g_string_append_printf(in, " FROM blkin.requests WHERE %s < %" PRId64, jt,
                           end);
    if (start > 0)
        /* time (completion, seconds) prunes partitions: a request is
         * counted after it completed, never an hour later. */
        g_string_append_printf(
            in, " AND %s >= %" PRId64 " AND time >= toDateTime(%" PRId64 ")",
            jt, start, start / NS - 3600);
    if (vm) {
        g_autofree char *v = sql_str(vm);
        g_string_append_printf(in, " AND domain = %s", v);
    }
    if (disk) {
        g_autofree char *d = sql_str(disk);
        g_string_append_printf(in, " AND disk = %s", d);
    }
    g_string_append(in, " GROUP BY domain, disk, op");

    /* Outer: counts, nearest-rank percentiles, max, mean. */
    g_string_append(q, "SELECT domain, disk, op, n, b, since, t0, matched, "
                       "ug, us");
    for (int p = 0; p < BLKIN_PHASE__N; p++) {
        const char *ph = blkin_phase_name(p);

        g_string_append_printf(q, ", length(a_%1$s) AS c_%1$s, s_%1$s", ph);
        for (size_t i = 0; i < G_N_ELEMENTS(quantiles); i++)
            g_string_append_printf(
                q,
                ", if(length(a_%1$s) > 0, arrayElement(a_%1$s, "
                "toUInt64(greatest(1, ceil(%2$s * length(a_%1$s))))), 0) "
                "AS q%3$zu_%1$s",
                ph, quantiles[i].q, i);
        g_string_append_printf(q,
                               ", if(length(a_%1$s) > 0, "
                               "arrayElement(a_%1$s, length(a_%1$s)), 0) "
                               "AS m_%1$s",
                               ph);
    }
    g_string_append_printf(q,
                           " FROM (%s) ORDER BY domain, disk, op "
                           "FORMAT JSON",
                           in->str);
    g_string_free(in, TRUE);
    return g_string_free(q, FALSE);
}

/* POSTs @sql to ClickHouse's HTTP interface (TLS and auth from the
 * [store clickhouse] section of @config, export-config.h); returns the
 * response body. */
static char *clickhouse(const char *url, const char *config, const char *sql,
                        GError **err)
{
    g_autoptr(HostdHttpConfig) conf = NULL;
    g_autoptr(HostdHttp) http = NULL;
    g_autoptr(GByteArray) body = g_byte_array_new();
    long status;

    if (!hostd_export_config_load(config, "store clickhouse", url, &conf, NULL,
                                  err))
        return NULL;
    conf->timeout_s = MAX(conf->timeout_s, 60);
    http = hostd_http_new(conf, err);
    if (!http)
        return NULL;
    if (!hostd_http_post(http, NULL, "text/plain; charset=utf-8", sql,
                         strlen(sql), &status, body, err)) {
        g_prefix_error(err, "ClickHouse: ");
        return NULL;
    }
    g_byte_array_append(body, (guint8 *)"", 1);
    return g_strdup((char *)body->data);
}

/* ClickHouse quotes 64-bit integers in JSON. */
static gint64 num(JsonObject *row, const char *key)
{
    JsonNode *n = json_object_get_member(row, key);

    if (!n || JSON_NODE_TYPE(n) != JSON_NODE_VALUE)
        return 0;
    if (json_node_get_value_type(n) == G_TYPE_STRING)
        return g_ascii_strtoll(json_node_get_string(n), NULL, 10);
    return json_node_get_int(n);
}

static void add_int(JsonBuilder *b, const char *k, gint64 v)
{
    json_builder_set_member_name(b, k);
    json_builder_add_int_value(b, v);
}

static gint64 phase_num(JsonObject *row, const char *fmt, const char *phase)
{
    g_autofree char *k = g_strdup_printf(fmt, phase);

    return num(row, k);
}

static void add_op(JsonBuilder *b, JsonObject *row, double seconds)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "op");
    json_builder_add_string_value(b, json_object_get_string_member(row, "op"));
    add_int(b, "count", num(row, "n"));
    add_int(b, "bytes", num(row, "b"));
    json_builder_set_member_name(b, "iops");
    json_builder_add_double_value(b, seconds > 0 ? num(row, "n") / seconds : 0);
    json_builder_set_member_name(b, "mbps");
    json_builder_add_double_value(b, seconds > 0 ? num(row, "b") / seconds / 1e6
                                                 : 0);
    json_builder_set_member_name(b, "phases");
    json_builder_begin_array(b);
    /* hostd's order (the one report order): total first. */
    for (int i = 0; i < BLKIN_PHASE__N; i++) {
        const char *ph = blkin_phase_name(blkin_phase_report_order[i]);
        gint64 count = phase_num(row, "c_%s", ph);

        if (!count)
            continue;
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "phase");
        json_builder_add_string_value(b, ph);
        add_int(b, "count", count);
        add_int(b, "sum_ns", phase_num(row, "s_%s", ph));
        for (size_t q = 0; q < G_N_ELEMENTS(quantiles); q++) {
            g_autofree char *k = g_strdup_printf("q%zu_%%s", q);

            add_int(b, quantiles[q].member, phase_num(row, k, ph));
        }
        add_int(b, "max_ns", phase_num(row, "m_%s", ph));
        add_int(b, "mean_ns", phase_num(row, "s_%s", ph) / count);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
}

static const char *str_member(JsonObject *o, const char *k)
{
    JsonNode *n = json_object_get_member(o, k);

    return n && json_node_get_value_type(n) == G_TYPE_STRING
               ? json_node_get_string(n)
               : "";
}

/* One disk: its rows [@i, @j), all of one domain and disk. */
static void add_disk(JsonBuilder *b, JsonArray *rows, guint i, guint j,
                     int64_t start, int64_t end)
{
    JsonObject *first = json_array_get_object_element(rows, i);
    gint64 matched = 0, ug = 0, us = 0, since = 0, t0 = G_MAXINT64;
    int64_t from;

    /* The window starts when the disk's statistics began, if later. */
    for (guint k = i; k < j; k++) {
        JsonObject *r = json_array_get_object_element(rows, k);

        if (num(r, "since") && (!since || num(r, "since") < since))
            since = num(r, "since");
        t0 = MIN(t0, num(r, "t0"));
    }
    from = start;
    if (since > from)
        from = since;
    if (!from) /* all, and rows older than since_unix_ns */
        from = t0 / NS * NS;
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "vm");
    json_builder_add_string_value(b, str_member(first, "domain"));
    json_builder_set_member_name(b, "disk");
    json_builder_add_string_value(b, str_member(first, "disk"));
    add_int(b, "window_start_unix_ns", from);
    add_int(b, "window_end_unix_ns", end);
    json_builder_set_member_name(b, "ops");
    json_builder_begin_array(b);
    for (guint k = i; k < j; k++) {
        JsonObject *r = json_array_get_object_element(rows, k);

        add_op(b, r, end > from ? (double)(end - from) / NS : 0);
        matched += num(r, "matched");
        ug += num(r, "ug");
        us += num(r, "us");
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "counters");
    json_builder_begin_object(b);
    add_int(b, "matched", matched);
    add_int(b, "unmatched_guest", ug);
    add_int(b, "unmatched_span", us);
    json_builder_end_object(b);
    json_builder_end_object(b);
}

JsonNode *blkin_store_report(const char *url, const char *config,
                             const char *vm, const char *disk,
                             const char *window, GError **err)
{
    int64_t start, end;
    g_autofree char *sql = NULL, *text = NULL;
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(JsonBuilder) b = json_builder_new();
    JsonNode *root;
    JsonArray *rows;
    guint n;

    if (!window_bounds(window, g_get_real_time() * 1000, &start, &end)) {
        g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "unknown window '%s' (1s, 1m, 1h, 1d or all)", window);
        return NULL;
    }
    sql = query_text(vm, disk, start, end);
    text = clickhouse(url, config, sql, err);
    if (!text || !json_parser_load_from_data(p, text, -1, err))
        return NULL;
    root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root) ||
        !json_object_has_member(json_node_get_object(root), "data")) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "ClickHouse answered something that is not a result");
        return NULL;
    }
    rows = json_object_get_array_member(json_node_get_object(root), "data");
    n = json_array_get_length(rows);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_set_member_name(b, "window");
    json_builder_add_string_value(b, window);
    json_builder_set_member_name(b, "source");
    json_builder_add_string_value(b, url);
    json_builder_set_member_name(b, "disks");
    json_builder_begin_array(b);
    /* Rows come ordered by domain, disk, op: one disk per run. */
    for (guint i = 0, j; i < n; i = j) {
        JsonObject *r = json_array_get_object_element(rows, i);

        for (j = i + 1; j < n; j++) {
            JsonObject *o = json_array_get_object_element(rows, j);

            if (g_strcmp0(str_member(o, "domain"), str_member(r, "domain")) ||
                g_strcmp0(str_member(o, "disk"), str_member(r, "disk")))
                break;
        }
        add_disk(b, rows, i, j, start, end);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}
