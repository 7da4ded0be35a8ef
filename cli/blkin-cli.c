/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-cli.c: `blkin`, the operator's command line for blkin-hostd.
 *
 *   blkin [--socket PATH] report [VM [DISK]] [--window 1s|1m|1h] [--json]
 *   blkin report [VM [DISK]] --html FILE [--window 1m|1h]
 *   blkin report --store URL [VM [DISK]] [--window 1s|1m|1h|1d|all]
 *   blkin top [VM [DISK]] [--interval SECONDS] [--count N]
 *   blkin tail [VM [DISK]] [--window ...] [--json]
 *   blkin trace TRACE-ID [--json]
 *   blkin history VM [DISK] [--minutes N] [--json]
 *   blkin status
 *   blkin register VM [--agent-socket PATH] --disk
 * TARGET=SERIAL=FILTER-ID[=REMOTE-ID]... blkin unregister VM blkin
 * enable|disable DOMAIN [--disk T...] [--dry-run]  (blkin-libvirt) blkin
 * enable|disable --live --qmp SOCK|--libvirt DOM --device ID ... (blkin-live)
 *
 * Talks the control protocol (docs/hostd.md) over hostd's UNIX socket.
 */
#define G_LOG_DOMAIN "blkin"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>

#include "blkin-view.h"
#include "report-store.h"
#include "vms/disk-spec.h"
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *opt_socket = NULL;
static char *opt_window = NULL;
static gboolean opt_json = FALSE;
static double opt_interval = 1.0;
static int opt_count = 0;
static int opt_minutes = 60;
static char *opt_agent_socket = NULL;
static char *opt_store = NULL;
static char *opt_config = NULL;
static char **opt_disks = NULL;
static int opt_timeout = 30;
static gboolean opt_buckets = FALSE;
static char *opt_html = NULL;
/* json-glib complained while an answer was read: it is not what hostd
 * sends (a member missing, a wrong type). */
static bool answer_malformed;

/* json-glib's and GLib's criticals while printing an answer mean that the
 * answer was not hostd's shape; they become one clear error and a non-zero
 * exit instead of GLib noise and success. */
static void on_critical(const gchar *domain, GLogLevelFlags level,
                        const gchar *message, gpointer user)
{
    answer_malformed = true;
}

static JsonNode *request(JsonNode *req, GError **err)
{
    g_autoptr(GSocketClient) client = g_socket_client_new();
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(
        opt_socket ? opt_socket : "/run/blkin/hostd.sock");
    g_autoptr(GSocketConnection) conn = NULL;
    g_autoptr(GDataInputStream) in = NULL;
    g_autofree char *text = json_to_string(req, FALSE);
    g_autofree char *line = NULL;
    g_autoptr(JsonParser) p = json_parser_new();
    GOutputStream *out;

    /* Connecting, sending and the answer: a stuck hostd is reported, not
     * waited for. */
    g_socket_client_set_timeout(client, (guint)opt_timeout);
    conn =
        g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, err);
    if (!conn) {
        g_prefix_error(err, "cannot reach blkin-hostd (is it running?): ");
        return NULL;
    }
    out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    if (!g_output_stream_write_all(out, text, strlen(text), NULL, NULL, err) ||
        !g_output_stream_write_all(out, "\n", 1, NULL, NULL, err))
        return NULL;
    in = g_data_input_stream_new(
        g_io_stream_get_input_stream(G_IO_STREAM(conn)));
    line = g_data_input_stream_read_line(in, NULL, NULL, err);
    if (!line) {
        if (err && *err &&
            g_error_matches(*err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
            g_clear_error(err);
            g_set_error(err, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                        "blkin-hostd did not answer within %d s "
                        "(--timeout)",
                        opt_timeout);
        } else if (err && !*err) {
            g_set_error(err, G_IO_ERROR, G_IO_ERROR_CLOSED,
                        "blkin-hostd closed the connection");
        }
        return NULL;
    }
    if (!json_parser_load_from_data(p, line, -1, err)) {
        g_prefix_error(err, "malformed answer from blkin-hostd: ");
        return NULL;
    }
    return json_node_copy(json_parser_get_root(p));
}

static JsonNode *build(const char *cmd, const char *vm, const char *disk)
{
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "cmd");
    json_builder_add_string_value(b, cmd);
    if (vm) {
        json_builder_set_member_name(b, "vm");
        json_builder_add_string_value(b, vm);
    }
    if (disk) {
        json_builder_set_member_name(b, "disk");
        json_builder_add_string_value(b, disk);
    }
    if (opt_window) {
        json_builder_set_member_name(b, "window");
        json_builder_add_string_value(b, opt_window);
    }
    if (opt_buckets) {
        json_builder_set_member_name(b, "buckets");
        json_builder_add_boolean_value(b, TRUE);
    }
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static gint64 get_int(JsonObject *o, const char *key)
{
    JsonNode *n = o ? json_object_get_member(o, key) : NULL;

    return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_int(n) : -1;
}

/* A string member, or "-" when absent or null (safe to print). */
static const char *get_str(JsonObject *o, const char *key)
{
    JsonNode *n = o ? json_object_get_member(o, key) : NULL;
    const char *s =
        n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_string(n) : NULL;

    return s ? s : "-";
}

/* A duration for people: ns, us, ms or s with three significant digits. */
static const char *dur(gint64 ns, char *buf, size_t len)
{
    double v = (double)ns;

    if (ns < 0)
        snprintf(buf, len, "-");
    else if (v < 1e3)
        snprintf(buf, len, "%.0fns", v);
    else if (v < 1e6)
        snprintf(buf, len, "%.3gus", v / 1e3);
    else if (v < 1e9)
        snprintf(buf, len, "%.3gms", v / 1e6);
    else
        snprintf(buf, len, "%.3gs", v / 1e9);
    return buf;
}

/* A disk another node serves: its clock as the joined pairs bound it. */
static void print_remote(JsonObject *d)
{
    JsonNode *rn = json_object_get_member(d, "remote");
    JsonObject *r, *clk;
    char a[32], b[32];

    if (!rn || !JSON_NODE_HOLDS_OBJECT(rn))
        return;
    r = json_node_get_object(rn);
    printf("  served by %s: ", get_str(r, "server_filter_id"));
    rn = json_object_get_member(r, "clock");
    if (rn && JSON_NODE_HOLDS_OBJECT(rn)) {
        clk = json_node_get_object(rn);
        printf("its clock %s%s +- %s",
               get_int(clk, "offset_ns") < 0 ? "-" : "+",
               dur(llabs(get_int(clk, "offset_ns")), a, sizeof(a)),
               dur(get_int(clk, "bound_ns"), b, sizeof(b)));
    } else {
        printf("its clock not known yet");
    }
    printf(", %" G_GINT64_FORMAT " joined, %" G_GINT64_FORMAT
           " without server span\n",
           get_int(r, "matched"), get_int(r, "unmatched_client"));
}

/* A disk on Ceph RBD: how its requests joined to librbd and the OSD ops,
 * and the OSDs' clock relative to this one (docs/backend-ceph.md). */
static void print_rbd(JsonObject *d)
{
    JsonNode *rn = json_object_get_member(d, "rbd");
    JsonObject *r, *clk;
    char a[32], b[32];

    if (!rn || !JSON_NODE_HOLDS_OBJECT(rn))
        return;
    r = json_node_get_object(rn);
    printf("  on RBD %s/%s (client.%" G_GINT64_FORMAT "): %" G_GINT64_FORMAT
           " of %" G_GINT64_FORMAT " guest requests joined to their OSD op, "
           "%" G_GINT64_FORMAT " merged; no OSD op %" G_GINT64_FORMAT
           ", OSD op missing %" G_GINT64_FORMAT
           ", no librbd call %" G_GINT64_FORMAT "\n",
           get_str(r, "pool"), get_str(r, "image"), get_int(r, "client"),
           get_int(r, "guest_joined"), get_int(r, "guest_requests"),
           get_int(r, "merged"), get_int(r, "no_osd_op"),
           get_int(r, "osd_op_missing"), get_int(r, "no_librbd_call"));
    if (get_int(r, "during_osd_gap") > 0)
        printf("  %" G_GINT64_FORMAT " requests while an OSD was down or its "
               "ops may have been lost (blkin status: ceph)\n",
               get_int(r, "during_osd_gap"));
    rn = json_object_get_member(r, "osd_clock");
    if (rn && JSON_NODE_HOLDS_OBJECT(rn)) {
        clk = json_node_get_object(rn);
        gint64 off = get_int(clk, "offset_ns");

        (void)a;
        /* Ours = its wall clock + offset: about minus the time since the
         * epoch at our boot, so in seconds, to the ns. */
        printf(
            "  OSD clock: ours = its wall clock %s %" G_GINT64_FORMAT
            ".%09" G_GINT64_FORMAT " s +- %s (%s)\n",
            off < 0 ? "-" : "+", (gint64)(llabs(off) / 1000000000),
            (gint64)(llabs(off) % 1000000000),
            dur(get_int(clk, "bound_ns"), b, sizeof(b)),
            json_object_get_boolean_member_with_default(clk, "same_host", FALSE)
                ? "collector on this host"
                : "another host: bounded by causality");
    } else if (get_int(r, "collectors") == 0) {
        printf("  OSD ops: no --ceph-collector given\n");
    } else {
        printf("  OSD clock: not known yet\n");
    }
}

/* Requests in flight past the filter's hung-ms, with ids to follow. */
static void print_hung(JsonObject *d)
{
    JsonArray *hung = json_object_has_member(d, "hung")
                          ? json_object_get_array_member(d, "hung")
                          : NULL;
    char a[32];

    for (guint i = 0; hung && i < json_array_get_length(hung); i++) {
        JsonObject *h = json_array_get_object_element(hung, i);

        printf("  HUNG %s offset %" G_GINT64_FORMAT " bytes %" G_GINT64_FORMAT
               " for %s  (trace %s span %s)\n",
               get_str(h, "op"), get_int(h, "offset"), get_int(h, "bytes"),
               dur(get_int(h, "age_ns"), a, sizeof(a)), get_str(h, "trace_id"),
               get_str(h, "span_id"));
    }
}

static void print_disk(JsonObject *d)
{
    JsonObject *c = json_object_get_object_member(d, "counters");
    JsonObject *clk = json_object_has_member(d, "clock")
                          ? json_object_get_object_member(d, "clock")
                          : NULL;
    JsonArray *ops = json_object_get_array_member(d, "ops");
    char a[32], b[32], e[32], f[32], g[32];

    printf("VM %s  disk %s  (serial %s, filter %s)", get_str(d, "vm"),
           get_str(d, "disk"), get_str(d, "serial"), get_str(d, "filter_id"));
    /* Older hostds say nothing of it: running. */
    if (json_object_has_member(d, "stopped_ago_ns"))
        printf("  stopped %" G_GINT64_FORMAT " s ago",
               get_int(d, "stopped_ago_ns") / 1000000000);
    printf("\n");
    if (clk && get_int(clk, "bound_ns") >= 0) {
        JsonObject *causal = json_object_has_member(clk, "causal") &&
                                     JSON_NODE_HOLDS_OBJECT(
                                         json_object_get_member(clk, "causal"))
                                 ? json_object_get_object_member(clk, "causal")
                                 : NULL;

        printf("  guest clock: probe error bound +-%s",
               dur(get_int(clk, "bound_ns"), b, sizeof(b)));
        if (causal)
            printf("; corrected by %s%s from causality, error bound +-%s\n",
                   get_int(causal, "correction_ns") < 0 ? "-" : "+",
                   dur(llabs(get_int(causal, "correction_ns")), a, sizeof(a)),
                   dur(get_int(causal, "bound_ns"), e, sizeof(e)));
        else
            printf(" (no causal correction)\n");
    } else
        printf("  guest clock: not synchronised (no agent data yet)\n");
    print_remote(d);
    print_rbd(d);
    print_hung(d);
    /* Whatever counters the source has (hostd's, or a store's). */
    {
        static const char *const shown[][2] = {
            {"matched", "joined"},
            {"merged", "merged"},
            {"unmatched_guest", "unmatched guest"},
            {"unmatched_span", "unmatched spans"},
            {"agent_drops", "agent drops"},
            {"agent_gap", "agent gaps"},
            {"lttng_discarded", "lttng discarded"},
            {"hung_reports", "hung reports"},
        };
        const char *sep = "  ";

        for (size_t k = 0; c && k < G_N_ELEMENTS(shown); k++) {
            if (!json_object_has_member(c, shown[k][0]))
                continue;
            printf("%s%s %" G_GINT64_FORMAT, sep, shown[k][1],
                   get_int(c, shown[k][0]));
            sep = ", ";
        }
        printf("\n");
    }
    printf("  %-13s %8s %9s %9s  %-17s %8s %8s %8s %8s %8s\n", "op", "count",
           "IOPS", "MB/s", "phase", "p50", "p90", "p99", "p99.9", "max");
    for (guint i = 0; ops && i < json_array_get_length(ops); i++) {
        JsonObject *op = json_array_get_object_element(ops, i);
        JsonArray *ph = json_object_get_array_member(op, "phases");

        for (guint k = 0; k < json_array_get_length(ph); k++) {
            JsonObject *p = json_array_get_object_element(ph, k);

            if (k == 0)
                printf("  %-13s %8" G_GINT64_FORMAT " %9.1f %9.2f  ",
                       get_str(op, "op"), get_int(op, "count"),
                       json_object_get_double_member(op, "iops"),
                       json_object_get_double_member(op, "mbps"));
            else
                printf("  %-13s %8s %9s %9s  ", "", "", "", "");
            printf("%-17s %8s %8s %8s %8s %8s", get_str(p, "phase"),
                   dur(get_int(p, "p50_ns"), a, sizeof(a)),
                   dur(get_int(p, "p90_ns"), b, sizeof(b)),
                   dur(get_int(p, "p99_ns"), e, sizeof(e)),
                   dur(get_int(p, "p999_ns"), f, sizeof(f)),
                   dur(get_int(p, "max_ns"), g, sizeof(g)));
            /* A phase only some requests passed through (backend: the
             * storage below qcow2) is over those, never 0 for the rest. */
            if (get_int(p, "count") != get_int(op, "count"))
                printf("  (%" G_GINT64_FORMAT " requests)",
                       get_int(p, "count"));
            printf("\n");
        }
    }
    printf("\n");
}

static int print_report(JsonNode *resp)
{
    JsonObject *o = json_node_get_object(resp);
    JsonArray *disks = json_object_get_array_member(o, "disks");

    printf("window %s\n\n", get_str(o, "window"));
    if (!json_array_get_length(disks))
        printf("no disks registered\n");
    for (guint i = 0; i < json_array_get_length(disks); i++)
        print_disk(json_array_get_object_element(disks, i));
    return 0;
}

static int print_timeline(JsonObject *r)
{
    char a[32], b[32];
    JsonArray *phases = json_object_get_array_member(r, "phases");

    printf("trace %s  span %s  %s %s offset %" G_GINT64_FORMAT
           " bytes %" G_GINT64_FORMAT "  VM %s disk %s\n",
           get_str(r, "trace_id"), get_str(r, "span_id"), get_str(r, "op"),
           get_int(r, "ret") ? "FAILED" : "ok", get_int(r, "offset"),
           get_int(r, "bytes"), get_str(r, "vm"), get_str(r, "disk"));
    for (guint i = 0; phases && i < json_array_get_length(phases); i++) {
        JsonObject *p = json_array_get_object_element(phases, i);

        printf("  +%-10s %-14s %s\n", dur(get_int(p, "at_ns"), a, sizeof(a)),
               get_str(p, "phase"), dur(get_int(p, "ns"), b, sizeof(b)));
    }
    return 0;
}

static int print_tail(JsonNode *resp)
{
    JsonArray *reqs =
        json_object_get_array_member(json_node_get_object(resp), "requests");

    for (guint i = 0; i < json_array_get_length(reqs); i++) {
        print_timeline(json_array_get_object_element(reqs, i));
        printf("\n");
    }
    if (!json_array_get_length(reqs))
        printf("no requests in this window\n");
    return 0;
}

static int run(JsonNode *req, int (*print)(JsonNode *))
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) resp = request(req, &err);
    JsonObject *o;
    int ret;

    if (!resp) {
        g_printerr("blkin: %s\n", err->message);
        return 1;
    }
    o = JSON_NODE_HOLDS_OBJECT(resp) ? json_node_get_object(resp) : NULL;
    if (!o || !json_object_get_boolean_member_with_default(o, "ok", FALSE)) {
        g_printerr("blkin: %s\n",
                   o ? json_object_get_string_member_with_default(
                           o, "error", "bad response")
                     : "bad response");
        return 1;
    }
    if (opt_json || !print) {
        g_autofree char *text = json_to_string(resp, TRUE);
        printf("%s\n", text);
        return 0;
    }
    answer_malformed = false;
    ret = print(resp);
    if (answer_malformed) {
        fflush(stdout);
        g_printerr("blkin: malformed answer from blkin-hostd (a member is "
                   "missing or of the wrong type); --json shows it as it "
                   "came\n");
        return 1;
    }
    return ret;
}

static int print_history(JsonNode *resp)
{
    JsonObject *o = json_node_get_object(resp);
    JsonArray *disks = json_object_get_array_member(o, "disks");

    printf("history, last %" G_GINT64_FORMAT " minutes\n\n",
           get_int(o, "minutes"));
    for (guint i = 0; i < json_array_get_length(disks); i++) {
        JsonObject *d = json_array_get_object_element(disks, i);

        /* Same table as a live report, without the live-only parts. */
        json_object_set_object_member(d, "counters", json_object_new());
        print_disk(d);
    }
    if (!json_array_get_length(disks))
        printf("no history for this VM\n");
    return 0;
}

static int print_trace(JsonNode *resp)
{
    JsonObject *o = json_node_get_object(resp);
    JsonNode *req = json_object_get_member(o, "request");
    JsonArray *spans = json_object_has_member(o, "backend_spans")
                           ? json_object_get_array_member(o, "backend_spans")
                           : NULL;
    char a[32];

    if (req && JSON_NODE_HOLDS_OBJECT(req))
        print_timeline(json_node_get_object(req));
    if (spans && json_array_get_length(spans))
        printf("storage services' spans of this trace:\n");
    for (guint i = 0; spans && i < json_array_get_length(spans); i++) {
        JsonObject *z = json_array_get_object_element(spans, i);

        printf("  span %s parent %s  %-20s %-10s %s%s\n", get_str(z, "span_id"),
               get_str(z, "parent_span_id"), get_str(z, "service"),
               get_str(z, "name"), dur(get_int(z, "duration_ns"), a, sizeof(a)),
               json_object_get_boolean_member(z, "complete")
                   ? ""
                   : " (never closed)");
    }
    return 0;
}

/*
 * `blkin enable|disable ...` belongs to the tools that change VMs: with
 * --live, blkin-live (a running QEMU, over QMP or libvirt); otherwise
 * blkin-libvirt (a libvirt domain's definition). They sit next to this
 * binary once installed, or in the build tree's sibling folders.
 */
static int hand_over(int argc, char **argv)
{
    gboolean live = FALSE;
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *dir = self ? g_path_get_dirname(self) : g_strdup(".");
    const char *tool;
    g_autofree char *path = NULL;

    for (int i = 2; i < argc; i++)
        live |= g_str_equal(argv[i], "--live");
    tool = live ? "blkin-live" : "blkin-libvirt";
    path = g_build_filename(dir, tool, NULL);
    if (!g_file_test(path, G_FILE_TEST_IS_EXECUTABLE)) {
        g_free(path);
        path = g_build_filename(dir, "..", live ? "live" : "libvirt-hooks",
                                tool, NULL);
    }
    if (!g_file_test(path, G_FILE_TEST_IS_EXECUTABLE)) {
        g_free(path);
        path = g_strdup(tool); /* from PATH */
    }
    g_ptr_array_add(args, (char *)tool);
    g_ptr_array_add(args, argv[1]);
    for (int i = 2; i < argc; i++)
        if (!g_str_equal(argv[i], "--live"))
            g_ptr_array_add(args, argv[i]);
    g_ptr_array_add(args, NULL);
    execvp(path, (char **)args->pdata);
    g_printerr("blkin: cannot run %s: %s\n", tool, g_strerror(errno));
    return 1;
}

/* ---- the verbs: each builds its request, sends it, prints the answer -- */

/*
 * report --html FILE: the view (docs/hostd.md, "The view") as a page that
 * needs no network, written whole or not at all.
 */
static int write_html(const char *a1, const char *a2)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) req = NULL;
    g_autoptr(JsonNode) resp = NULL;
    g_autofree char *json = NULL;
    g_autofree char *page = NULL;
    JsonObject *o;
    JsonNode *disks;
    size_t len;

    if (opt_store) {
        g_printerr("blkin: --html shows hostd's view, not a store's\n");
        return 2;
    }
    if (!opt_window)
        opt_window = g_strdup("1h");
    req = build("view", a1, a2);
    resp = request(req, &err);
    if (!resp) {
        g_printerr("blkin: %s\n", err->message);
        return 1;
    }
    o = JSON_NODE_HOLDS_OBJECT(resp) ? json_node_get_object(resp) : NULL;
    if (!o || !json_object_get_boolean_member_with_default(o, "ok", FALSE)) {
        g_printerr("blkin: %s\n",
                   o ? json_object_get_string_member_with_default(
                           o, "error", "bad response")
                     : "bad response");
        return 1;
    }
    disks = json_object_get_member(o, "disks");
    if (!disks || !JSON_NODE_HOLDS_ARRAY(disks)) {
        g_printerr("blkin: malformed answer from blkin-hostd (no disks)\n");
        return 1;
    }
    json = json_to_string(resp, FALSE);
    page = blkin_view_page(json, strlen(json), &len);
    if (!page || !g_file_set_contents(opt_html, page, (gssize)len, &err)) {
        g_printerr("blkin: %s\n", err ? err->message : "out of memory");
        return 1;
    }
    printf("%s: %u disks, window %s, %zu bytes\n", opt_html,
           json_array_get_length(json_node_get_array(disks)), opt_window, len);
    return 0;
}

static int cmd_report(const char *cmd, const char *a1, const char *a2)
{
    g_autoptr(GError) err = NULL;

    if (opt_html)
        return write_html(a1, a2);

    if (opt_store) {
        /* The store's TLS and auth: hostd's config, if this user may read
         * it (its secrets are in files only root may read, typically). */
        const char *conf = opt_config ? opt_config
                           : access("/etc/blkin/hostd.conf", R_OK) == 0
                               ? "/etc/blkin/hostd.conf"
                               : "";
        g_autoptr(JsonNode) r = blkin_store_report(
            opt_store, conf, a1, a2, opt_window ? opt_window : "1m", &err);

        if (!r) {
            g_printerr("blkin: %s\n", err->message);
            return 1;
        }
        if (opt_json) {
            g_autofree char *text = json_to_string(r, TRUE);
            printf("%s\n", text);
            return 0;
        }
        return print_report(r);
    }
    g_autoptr(JsonNode) r = build("report", a1, a2);
    return run(r, print_report);
}

static int cmd_tail(const char *cmd, const char *a1, const char *a2)
{
    g_autoptr(JsonNode) r = build("tail", a1, a2);
    return run(r, print_tail);
}

static int cmd_status(const char *cmd, const char *a1, const char *a2)
{
    g_autoptr(JsonNode) r = build("status", NULL, NULL);
    return run(r, NULL);
}

static int cmd_history(const char *cmd, const char *a1, const char *a2)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) r = NULL;

    if (!a1) {
        g_printerr("blkin: history needs a VM name\n");
        return 2;
    }
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "cmd");
    json_builder_add_string_value(b, "history");
    json_builder_set_member_name(b, "vm");
    json_builder_add_string_value(b, a1);
    if (a2) {
        json_builder_set_member_name(b, "disk");
        json_builder_add_string_value(b, a2);
    }
    json_builder_set_member_name(b, "minutes");
    json_builder_add_int_value(b, opt_minutes);
    json_builder_end_object(b);
    r = json_builder_get_root(b);
    return run(r, print_history);
}

static int cmd_top(const char *cmd, const char *a1, const char *a2)
{
    if (!opt_window)
        opt_window = g_strdup("1s");
    for (int n = 0; !opt_count || n < opt_count; n++) {
        g_autoptr(JsonNode) r = build("report", a1, a2);
        int ret;

        if (!opt_json)
            printf("\033[H\033[2J");
        ret = run(r, print_report);
        fflush(stdout);
        if (ret)
            return ret;
        if (opt_count && n + 1 == opt_count)
            break;
        g_usleep((gulong)(opt_interval * G_USEC_PER_SEC));
    }
    return 0;
}

static int cmd_trace(const char *cmd, const char *a1, const char *a2)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) r = NULL;

    if (!a1) {
        g_printerr("blkin: trace needs a trace id\n");
        return 2;
    }
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "cmd");
    json_builder_add_string_value(b, "trace");
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, a1);
    json_builder_end_object(b);
    r = json_builder_get_root(b);
    return run(r, print_trace);
}

/* register and unregister; the edge where --disk's text form is parsed. */
static int cmd_register(const char *cmd, const char *a1, const char *a2)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) r = NULL;

    if (!a1) {
        g_printerr("blkin: %s needs a VM name\n", cmd);
        return 2;
    }
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "cmd");
    json_builder_add_string_value(b, cmd);
    json_builder_set_member_name(b, "vm");
    json_builder_add_string_value(b, a1);
    if (opt_agent_socket) {
        json_builder_set_member_name(b, "agent_socket");
        json_builder_add_string_value(b, opt_agent_socket);
    }
    json_builder_set_member_name(b, "disks");
    json_builder_begin_array(b);
    for (char **d = opt_disks; d && *d; d++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(HostdDiskSpec) spec = hostd_disk_spec_parse(*d, &err);

        if (!spec) {
            g_printerr("blkin: --disk: %s\n", err->message);
            return 2;
        }
        hostd_disk_spec_to_json(spec, b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    r = json_builder_get_root(b);
    return run(r, NULL);
}

static const struct {
    const char *name;
    int (*run)(const char *cmd, const char *a1, const char *a2);
} verbs[] = {
    {"report", cmd_report},     {"tail", cmd_tail},
    {"history", cmd_history},   {"status", cmd_status},
    {"top", cmd_top},           {"trace", cmd_trace},
    {"register", cmd_register}, {"unregister", cmd_register},
};

int main(int argc, char **argv)
{
    gboolean show_version = FALSE;
    GOptionEntry entries[] = {
        {"socket", 's', 0, G_OPTION_ARG_FILENAME, &opt_socket,
         "hostd's control socket (default /run/blkin/hostd.sock)", "PATH"},
        {"window", 'w', 0, G_OPTION_ARG_STRING, &opt_window,
         "1s, 1m (default) or 1h", "W"},
        {"json", 'j', 0, G_OPTION_ARG_NONE, &opt_json, "JSON output", NULL},
        {"interval", 'i', 0, G_OPTION_ARG_DOUBLE, &opt_interval,
         "top: seconds between refreshes", "S"},
        {"count", 'n', 0, G_OPTION_ARG_INT, &opt_count,
         "top: stop after N refreshes", "N"},
        {"minutes", 'm', 0, G_OPTION_ARG_INT, &opt_minutes,
         "history: how many minutes back (default 60)", "N"},
        {"store", 0, 0, G_OPTION_ARG_STRING, &opt_store,
         "report: compute it from ClickHouse at URL, across nodes", "URL"},
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
         "report --store: the [store clickhouse] section of FILE gives TLS "
         "and auth (default /etc/blkin/hostd.conf if readable)",
         "FILE"},
        {"agent-socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_agent_socket,
         "register: the VM's agent channel socket", "PATH"},
        {"disk", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &opt_disks,
         "register: TARGET=SERIAL=FILTER-ID[=REMOTE-FILTER-ID] (repeat)",
         "SPEC"},
        {"html", 0, 0, G_OPTION_ARG_FILENAME, &opt_html,
         "report: write the view as an HTML page (heatmaps, phases, "
         "waterfalls; window 1m or 1h, default 1h) that needs no network",
         "FILE"},
        {"buckets", 0, 0, G_OPTION_ARG_NONE, &opt_buckets,
         "report --json: each phase's histogram buckets too", NULL},
        {"timeout", 't', 0, G_OPTION_ARG_INT, &opt_timeout,
         "Seconds to wait for blkin-hostd (default 30; 0: no limit)", "S"},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &show_version,
         "Print the version and exit", NULL},
        {NULL}};
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("report|top|tail|trace|history|status|register|"
                             "unregister "
                             "[ARGS]");
    g_autoptr(GError) err = NULL;

    setlocale(LC_ALL, "");
    if (argc > 1 &&
        (g_str_equal(argv[1], "enable") || g_str_equal(argv[1], "disable")))
        return hand_over(argc, argv);
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("blkin: %s\n", err->message);
        return 2;
    }
    if (show_version) {
        g_print("blkin %s\n", BLKIN_VERSION);
        return 0;
    }
    if (opt_timeout < 0) {
        g_printerr("blkin: --timeout must be 0 or more seconds\n");
        return 2;
    }
    g_log_set_handler("Json", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING,
                      on_critical, NULL);
    g_log_set_handler("GLib", G_LOG_LEVEL_CRITICAL, on_critical, NULL);
    if (argc < 2) {
        g_autofree char *help = g_option_context_get_help(ctx, TRUE, NULL);
        g_printerr("%s", help);
        return 2;
    }
    for (guint i = 0; i < G_N_ELEMENTS(verbs); i++)
        if (g_str_equal(argv[1], verbs[i].name))
            return verbs[i].run(argv[1], argc > 2 ? argv[2] : NULL,
                                argc > 3 ? argv[3] : NULL);
    g_printerr("blkin: unknown command '%s'\n", argv[1]);
    return 2;
}
