/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * report-store.c: `blkin report --store URL`: the per-disk report computed
 * by ClickHouse from the rows every node's hostd wrote (store-clickhouse.h),
 * in the same JSON shape as hostd's own report, so one printer serves both.
 *
 * Percentiles are ClickHouse's exact ones over the stored requests; hostd's
 * own are within 0.8 % of exact (its histograms' resolution).
 */
#define G_LOG_DOMAIN "blkin"

#include "report-store.h"

#include "blkin-schema.h"

#include <gio/gio.h>
#include <string.h>

/* The phases in report order; each is a column <name>_ns of the store. */
#define N_PHASES BLKIN_PHASE__N
static const char *phase_name(size_t i)
{
    return blkin_phase_name(blkin_phase_report_order[i]);
}

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

static char *query_text(const char *vm, const char *disk, int64_t seconds)
{
    GString *q = g_string_new("SELECT domain, disk, op, count() AS n, "
                              "sum(bytes) AS b, min(end_unix_ns) AS t0, "
                              "max(end_unix_ns) AS t1, "
                              "countIf(bitAnd(flags, 3) = 3) AS matched, "
                              "countIf(bitAnd(flags, 8) != 0) AS ug, "
                              "countIf(bitAnd(flags, 16) != 0) AS us");

    for (size_t i = 0; i < N_PHASES; i++)
        g_string_append_printf(
            q,
            ", countIf(%1$s_ns >= 0) AS c_%1$s, maxIf(%1$s_ns, %1$s_ns >= 0) "
            "AS m_%1$s, quantilesExactIf(0.5, 0.9, 0.99, 0.999)(%1$s_ns, "
            "%1$s_ns >= 0) AS q_%1$s, sumIf(%1$s_ns, %1$s_ns >= 0) AS s_%1$s",
            phase_name(i));
    g_string_append(q, " FROM blkin.requests WHERE 1");
    if (seconds > 0)
        g_string_append_printf(q, " AND time >= now() - %" G_GINT64_FORMAT,
                               seconds);
    if (vm) {
        g_autofree char *v = sql_str(vm);
        g_string_append_printf(q, " AND domain = %s", v);
    }
    if (disk) {
        g_autofree char *d = sql_str(disk);
        g_string_append_printf(q, " AND disk = %s", d);
    }
    g_string_append(q, " GROUP BY domain, disk, op ORDER BY domain, disk, op "
                       "FORMAT JSON");
    return g_string_free(q, FALSE);
}

/* POSTs @sql to ClickHouse's HTTP interface; returns the response body. */
static char *clickhouse(const char *url, const char *sql, GError **err)
{
    g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_NONE, err);
    g_autoptr(GSocketClient) client = g_socket_client_new();
    g_autoptr(GSocketConnection) conn = NULL;
    g_autoptr(GByteArray) buf = g_byte_array_new();
    g_autofree char *head = NULL;
    char chunk[65536], *body;
    gssize n;

    if (!uri)
        return NULL;
    g_socket_client_set_timeout(client, 30);
    conn = g_socket_client_connect_to_host(
        client, g_uri_get_host(uri),
        g_uri_get_port(uri) > 0 ? g_uri_get_port(uri) : 8123, NULL, err);
    if (!conn)
        return NULL;
    head = g_strdup_printf("POST / HTTP/1.0\r\nHost: %s\r\n"
                           "Content-Length: %zu\r\n\r\n",
                           g_uri_get_host(uri), strlen(sql));
    if (!g_output_stream_write_all(
            g_io_stream_get_output_stream(G_IO_STREAM(conn)), head,
            strlen(head), NULL, NULL, err) ||
        !g_output_stream_write_all(
            g_io_stream_get_output_stream(G_IO_STREAM(conn)), sql, strlen(sql),
            NULL, NULL, err))
        return NULL;
    while ((n = g_input_stream_read(
                g_io_stream_get_input_stream(G_IO_STREAM(conn)), chunk,
                sizeof(chunk), NULL, err)) > 0)
        g_byte_array_append(buf, (guint8 *)chunk, n);
    if (n < 0)
        return NULL;
    g_byte_array_append(buf, (guint8 *)"", 1);
    body = strstr((char *)buf->data, "\r\n\r\n");
    if (!body || strncmp((char *)buf->data + 9, "200", 3)) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "ClickHouse: %s",
                    body ? body + 4 : (char *)buf->data);
        return NULL;
    }
    return g_strdup(body + 4);
}

/* ClickHouse quotes 64-bit integers in JSON. */
static gint64 num(JsonObject *row, const char *key)
{
    JsonNode *n = json_object_get_member(row, key);

    if (!n)
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

static gint64 qnum(JsonArray *a, guint i)
{
    JsonNode *n = json_array_get_element(a, i);

    return json_node_get_value_type(n) == G_TYPE_STRING
               ? g_ascii_strtoll(json_node_get_string(n), NULL, 10)
               : json_node_get_int(n);
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
    for (size_t i = 0; i < N_PHASES; i++) {
        g_autofree char *c = g_strdup_printf("c_%s", phase_name(i));
        g_autofree char *m = g_strdup_printf("m_%s", phase_name(i));
        g_autofree char *q = g_strdup_printf("q_%s", phase_name(i));
        g_autofree char *s = g_strdup_printf("s_%s", phase_name(i));
        JsonArray *qs = json_object_get_array_member(row, q);
        gint64 count = num(row, c);

        if (!count)
            continue;
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "phase");
        json_builder_add_string_value(b, phase_name(i));
        add_int(b, "count", count);
        add_int(b, "p50_ns", qnum(qs, 0));
        add_int(b, "p90_ns", qnum(qs, 1));
        add_int(b, "p99_ns", qnum(qs, 2));
        add_int(b, "p999_ns", qnum(qs, 3));
        add_int(b, "max_ns", num(row, m));
        add_int(b, "mean_ns", num(row, s) / count);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
}

JsonNode *blkin_store_report(const char *url, const char *vm, const char *disk,
                             const char *window, GError **err)
{
    int64_t seconds = g_str_equal(window, "1s")   ? 1
                      : g_str_equal(window, "1m") ? 60
                      : g_str_equal(window, "1h") ? 3600
                      : g_str_equal(window, "1d") ? 86400
                                                  : 0;
    g_autofree char *sql = query_text(vm, disk, seconds);
    g_autofree char *text = clickhouse(url, sql, err);
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(JsonBuilder) b = json_builder_new();
    JsonArray *rows;
    char *last_key = NULL;

    if (!text || !json_parser_load_from_data(p, text, -1, err))
        return NULL;
    rows = json_object_get_array_member(
        json_node_get_object(json_parser_get_root(p)), "data");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_set_member_name(b, "window");
    json_builder_add_string_value(b, window);
    json_builder_set_member_name(b, "source");
    json_builder_add_string_value(b, url);
    json_builder_set_member_name(b, "disks");
    json_builder_begin_array(b);
    /* Rows come ordered by domain, disk, op: one disk object per run. */
    for (guint i = 0; i < json_array_get_length(rows); i++) {
        JsonObject *row = json_array_get_object_element(rows, i);
        g_autofree char *key = g_strdup_printf(
            "%s/%s", json_object_get_string_member(row, "domain"),
            json_object_get_string_member(row, "disk"));
        guint j;
        gint64 matched = 0, ug = 0, us = 0;

        if (last_key && g_str_equal(last_key, key))
            continue;
        g_free(last_key);
        last_key = g_strdup(key);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "vm");
        json_builder_add_string_value(
            b, json_object_get_string_member(row, "domain"));
        json_builder_set_member_name(b, "disk");
        json_builder_add_string_value(
            b, json_object_get_string_member(row, "disk"));
        json_builder_set_member_name(b, "ops");
        json_builder_begin_array(b);
        for (j = i; j < json_array_get_length(rows); j++) {
            JsonObject *r = json_array_get_object_element(rows, j);
            g_autofree char *k = g_strdup_printf(
                "%s/%s", json_object_get_string_member(r, "domain"),
                json_object_get_string_member(r, "disk"));
            double span;

            if (!g_str_equal(k, key))
                break;
            span = seconds > 0 ? seconds : (num(r, "t1") - num(r, "t0")) / 1e9;
            add_op(b, r, span);
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
    g_free(last_key);
    json_builder_end_array(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}
