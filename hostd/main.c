/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * main.c: blkin-hostd, the BlkKin host daemon: options, set-up, the main
 * loop's tick, shut-down. The data path is in the wings (docs/architecture.md).
 *
 * Reads the QEMU filter's spans (LTTng live, or a recorded trace), the guest
 * agents' channels, joins them per request and serves per-disk reports on a
 * control socket (docs/hostd.md).
 */
#define G_LOG_DOMAIN "blkin-hostd"

#include "hostd.h"
#include "vms/ganeti-watch.h"
#include "vms/libvirt-watch.h"
#include "privileges.h"
#include "lttng-keeper.h"
#include "export-config.h"
#include "serve/store-clickhouse.h"

#include <errno.h>
#include <stdarg.h>
#include <glib-unix.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_MS     100
#define CHECKPOINT_S 10

static int64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

/* ---- trace input ------------------------------------------------------ */

static void feed_ended(void *opaque, HostdTraceFeed *f)
{
    Hostd *h = opaque;

    if (--h->feeds_open == 0) {
        h->trace_ended = TRUE;
        g_main_loop_quit(h->loop);
    }
}

/* Feed 0 reads this node's session (or trace), feeds 1.. other nodes'. */
static gboolean open_feeds(Hostd *h, GError **err)
{
    h->feeds =
        g_ptr_array_new_with_free_func((GDestroyNotify)hostd_trace_feed_free);
    if (h->offline_dir) {
        guint n =
            1 + (h->remote_offline ? g_strv_length(h->remote_offline) : 0);

        for (guint i = 0; i < n; i++) {
            const char *dir = i ? h->remote_offline[i - 1] : h->offline_dir;
            HostdTraceFeed *f = hostd_trace_feed_new_offline(
                i, dir, &hostd_model_trace_sink, h->model, feed_ended, h, err);

            if (!f)
                return FALSE;
            g_ptr_array_add(h->feeds, f);
        }
        h->feeds_open = h->feeds->len;
        return TRUE;
    }
    g_ptr_array_add(h->feeds, hostd_trace_feed_new_live(0, h->live_url,
                                                        &hostd_model_trace_sink,
                                                        h->model));
    for (guint i = 0; h->remote_live && h->remote_live[i]; i++)
        g_ptr_array_add(h->feeds, hostd_trace_feed_new_live(
                                      i + 1, h->remote_live[i],
                                      &hostd_model_trace_sink, h->model));
    return TRUE;
}

/* ---- the join tick and history ---------------------------------------- */

/*
 * Opens the history store. When it cannot be (its directory is full or not
 * writable), hostd traces on without history rather than refuse to start:
 * under systemd a refusal is a restart loop and no tracing at all. One log
 * line when history goes, one when it is back; the checkpoint tick retries.
 */
static void history_reopen(Hostd *h)
{
    g_autoptr(GError) err = NULL;

    h->history = hostd_history_open(h->history_path, &h->history_opts, &err);
    h->model->history = h->history;
    if (h->history) {
        if (h->model->history_error)
            g_message("history: %s is writable again", h->history_path);
        g_clear_pointer(&h->model->history_error, g_free);
        return;
    }
    if (!h->model->history_error)
        g_warning("history: %s: %s; tracing goes on without history, "
                  "retrying every %d s",
                  h->history_path, err->message, CHECKPOINT_S);
    g_free(h->model->history_error);
    h->model->history_error = g_strdup(err->message);
}

/*
 * Hands every disk's minute in progress to the history store, so that a
 * crash loses at most a checkpoint interval; the complete minute replaces
 * the checkpoint when it closes.
 */
static void checkpoint(Hostd *h, uint64_t now)
{
    GError *err = NULL;
    GHashTableIter it;
    gpointer v;

    if (!h->history && h->history_path)
        history_reopen(h);
    if (!h->history)
        return;
    if (!hostd_history_prune(h->history, g_get_real_time() / 60000000, NULL,
                             &err)) {
        g_warning("history: %s", err->message);
        g_clear_error(&err);
    }
    g_hash_table_iter_init(&it, h->model->vms);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        HostdVm *vm = v;

        for (guint i = 0; i < vm->disks->len; i++)
            hostd_disk_stats_flush(
                ((HostdDisk *)g_ptr_array_index(vm->disks, i))->stats, now);
    }
}

static gboolean flush_tick(gpointer user)
{
    Hostd *h = user;
    int64_t now = now_ns();
    int64_t tick = now / (CHECKPOINT_S * 1000000000LL);

    int64_t watermark = now - h->hold_ns;

    /* The trace's own time says only that some event that late arrived: a
     * batch of another QEMU thread (or another VM's events) moves it on
     * while a thread still holds requests that completed before it, for up
     * to the filter's batch-ms (100 ms by default), longer when QEMU is
     * starved of CPU. So a guest record also waits for the trace to be half
     * the hold time past it (when the relay lags by more than the other
     * half; else the clock's hold decides, as before); a relay that lags is
     * waited for rather than guests called unmatched. */
    if (h->feeds && h->feeds->len) {
        HostdTraceSource *src =
            hostd_trace_feed_source(g_ptr_array_index(h->feeds, 0));
        int64_t tt = src ? (int64_t)hostd_trace_source_time_ns(src) : 0;

        if (tt > 0 && tt - h->hold_ns / 2 < watermark)
            watermark = tt - h->hold_ns / 2;
    }
    hostd_model_flush(h->model, watermark, now);
    if (tick != h->last_checkpoint) {
        checkpoint(h, now);
        h->last_checkpoint = tick;
    }
    if (h->capture)
        fflush(h->capture);
    return G_SOURCE_CONTINUE;
}

static gboolean on_quit_signal(gpointer user)
{
    Hostd *h = user;

    g_message("stopping");
    g_main_loop_quit(h->loop);
    return G_SOURCE_REMOVE;
}

/* ---- start-up --------------------------------------------------------- */

/* "NAME:SOCKET:vda=serial=id,vdb=serial=id" (SOCKET may be empty): --vm
 * and the config file's VM sections. */
static gboolean add_vm_spec(Hostd *h, const char *text, GError **err)
{
    g_auto(GStrv) f = g_strsplit(text, ":", 3);
    g_auto(GStrv) disks = NULL;
    g_autoptr(GPtrArray) specs = hostd_disk_specs_new();

    if (g_strv_length(f) != 3) {
        g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--vm %s: expected NAME:SOCKET:TARGET=SERIAL=ID,...", text);
        return FALSE;
    }
    disks = g_strsplit(f[2], ",", -1);
    for (char **d = disks; *d; d++) {
        HostdDiskSpec *spec = hostd_disk_spec_parse(*d, err);

        if (!spec)
            return FALSE;
        g_ptr_array_add(specs, spec);
    }
    return hostd_model_add_vm(h->model, f[0], *f[1] ? f[1] : NULL, specs,
                              err) != NULL;
}

static gboolean replay(Hostd *h, const char *path, GError **err)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    unsigned bad = 0;

    if (!g_file_get_contents(path, &text, NULL, err))
        return FALSE;
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++)
        if (**l && !hostd_model_replay_line(h->model, *l))
            bad++;
    if (bad)
        g_warning("replay: %u malformed lines in %s skipped", bad, path);
    return TRUE;
}

/* Everything the command line (and the config file) can set. */
typedef struct HostdOptions {
    char *config, *socket_path, *state_dir, *capture, *replay_path;
    char *metrics, *zipkin, *otlp, *store, *ganeti_root, *libvirt_uri;
    char *lttng_relay; /* with manage_session: lttng create --set-url */
    char *otlp_encoding;
    char *metrics_buckets; /* seconds, comma-separated */
    char **vms;
    char **ceph_collectors; /* blkin-ceph-collector HOST:PORT (RBD) */
    int export_sample, export_slow_ms, export_queue;
    int hold_ms, retention_days, pending_budget, linger_s;
    gboolean print_report, no_history, keep_privileges, show_version;
    gboolean manage_session;
    HostdServeLimits limits; /* the clients' (config file) */
} HostdOptions;

static void options_clear(HostdOptions *o)
{
    g_free(o->config);
    g_free(o->socket_path);
    g_free(o->state_dir);
    g_free(o->capture);
    g_free(o->replay_path);
    g_free(o->metrics);
    g_free(o->zipkin);
    g_free(o->otlp);
    g_free(o->store);
    g_free(o->ganeti_root);
    g_free(o->libvirt_uri);
    g_free(o->lttng_relay);
    g_free(o->otlp_encoding);
    g_free(o->metrics_buckets);
    g_strfreev(o->vms);
    g_strfreev(o->ceph_collectors);
}

/* Prints why hostd cannot start; returns the exit code @code. */
static G_GNUC_PRINTF(2, 3) int fail(int code, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_printerr("blkin-hostd: %s\n", msg);
    return code;
}

/* "%H" in a live URL is this host's name, as lttng-sessiond names it in
 * the relay's paths (net://127.0.0.1/host/%H/blkin): one config file
 * serves every node. */
static void expand_hostname(char **url)
{
    g_auto(GStrv) parts = NULL;

    if (!*url || !strstr(*url, "%H"))
        return;
    parts = g_strsplit(*url, "%H", -1);
    g_free(*url);
    *url = g_strjoinv(g_get_host_name(), parts);
}

/* Parses the command line, then the config file under it; 0, or the exit
 * code (-1: --version printed, exit 0). */
static int parse_options(Hostd *h, HostdOptions *o, int *argc, char ***argv)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GOptionContext) ctx = NULL;
    GOptionEntry entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &o->config,
         "Config file (default /etc/blkin/hostd.conf if it exists)", "FILE"},
        {"socket", 's', 0, G_OPTION_ARG_FILENAME, &o->socket_path,
         "Control socket (default /run/blkin/hostd.sock)", "PATH"},
        {"state-dir", 0, 0, G_OPTION_ARG_FILENAME, &o->state_dir,
         "History database directory (default /var/lib/blkin)", "DIR"},
        {"live", 'l', 0, G_OPTION_ARG_STRING, &h->live_url,
         "LTTng live session: net://HOST/host/HOSTNAME/SESSION", "URL"},
        {"offline", 0, 0, G_OPTION_ARG_FILENAME, &h->offline_dir,
         "Read a recorded trace instead, then exit", "DIR"},
        {"remote-live", 0, 0, G_OPTION_ARG_STRING_ARRAY, &h->remote_live,
         "Also read another node's session (it serves disks over NBD); "
         "repeatable",
         "URL"},
        {"remote-offline", 0, 0, G_OPTION_ARG_FILENAME_ARRAY,
         &h->remote_offline,
         "With --offline: another node's recorded trace; repeatable", "DIR"},
        {"vm", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->vms,
         "A VM: NAME:AGENT-SOCKET:TARGET=SERIAL=FILTER-ID,... (repeatable)",
         "SPEC"},
        {"hold-ms", 0, 0, G_OPTION_ARG_INT, &o->hold_ms,
         "How long to wait for late data before joining (default 800)", "MS"},
        {"metrics", 0, 0, G_OPTION_ARG_STRING, &o->metrics,
         "Serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9477)", "ADDR"},
        {"metrics-buckets", 0, 0, G_OPTION_ARG_STRING, &o->metrics_buckets,
         "The histograms' bucket bounds in seconds, comma-separated "
         "(default 10 us to 10 s in 1-2.5-5 steps)",
         "LIST"},
        {"export-zipkin", 0, 0, G_OPTION_ARG_STRING, &o->zipkin,
         "Send spans as Zipkin v2 JSON to URL (http://HOST:PORT/api/v2/spans)",
         "URL"},
        {"export-otlp", 0, 0, G_OPTION_ARG_STRING, &o->otlp,
         "Send spans as OTLP/HTTP JSON to URL (http://HOST:PORT/v1/traces)",
         "URL"},
        {"export-otlp-encoding", 0, 0, G_OPTION_ARG_STRING, &o->otlp_encoding,
         "OTLP/HTTP body: json (default) or protobuf", "ENC"},
        {"store", 0, 0, G_OPTION_ARG_STRING, &o->store,
         "Write every joined request to ClickHouse at URL (http://HOST:8123/)",
         "URL"},
        {"export-sample", 0, 0, G_OPTION_ARG_INT, &o->export_sample,
         "Export one joined request in N (default 100; 0: only slow ones)",
         "N"},
        {"export-slow-ms", 0, 0, G_OPTION_ARG_INT, &o->export_slow_ms,
         "Always export requests slower than this (default 100; 0: off)", "MS"},
        {"export-queue", 0, 0, G_OPTION_ARG_INT, &o->export_queue,
         "Requests waiting for export at most (default 20000)", "N"},
        {"capture", 0, 0, G_OPTION_ARG_FILENAME, &o->capture,
         "Log guest requests here, for --offline --replay", "FILE"},
        {"replay", 0, 0, G_OPTION_ARG_FILENAME, &o->replay_path,
         "With --offline: guest requests captured by --capture", "FILE"},
        {"report", 0, 0, G_OPTION_ARG_NONE, &o->print_report,
         "With --offline: print the 1 h report as JSON at the end", NULL},
        {"pending-budget", 0, 0, G_OPTION_ARG_INT, &o->pending_budget,
         "Guest requests all VMs together may have waiting to be joined "
         "(default 786432, ~37 MiB)",
         "N"},
        {"linger", 0, 0, G_OPTION_ARG_INT, &o->linger_s,
         "Keep a stopped VM's report this long, in s (default 600; its last "
         "requests reach the history only if it lingers longer than "
         "--hold-ms + 12 s)",
         "S"},
        {"retention-days", 0, 0, G_OPTION_ARG_INT, &o->retention_days,
         "Keep per-minute history this long (default 30)", "DAYS"},
        {"no-history", 0, 0, G_OPTION_ARG_NONE, &o->no_history,
         "Keep no SQLite history", NULL},
        {"libvirt", 0, 0, G_OPTION_ARG_STRING, &o->libvirt_uri,
         "Register blkin-enabled libvirt domains while they run", "URI"},
        {"keep-privileges", 0, 0, G_OPTION_ARG_NONE, &o->keep_privileges,
         "Keep every capability (default: drop all but CAP_DAC_OVERRIDE "
         "after set-up)",
         NULL},
        {"ganeti-runtime", 0, 0, G_OPTION_ARG_FILENAME, &o->ganeti_root,
         "Register Ganeti's running KVM instances from this directory "
         "(/var/run/ganeti/kvm-hypervisor)",
         "DIR"},
        {"manage-session", 0, 0, G_OPTION_ARG_NONE, &o->manage_session,
         "Set up the live session (and set it up again when it is gone) "
         "with blkin-lttng-session",
         NULL},
        {"lttng-relay", 0, 0, G_OPTION_ARG_STRING, &o->lttng_relay,
         "With --manage-session: where the session streams (default "
         "net://HOST of --live)",
         "URL"},
        {"ceph-collector", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->ceph_collectors,
         "A Ceph storage node's blkin-ceph-collector, for the OSD ops of "
         "this node's RBD disks (repeatable, at most 16)",
         "HOST:PORT"},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &o->show_version,
         "Print the version and exit", NULL},
        {NULL}};

    ctx = g_option_context_new("- BlkKin host daemon");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, argc, argv, &err))
        return fail(2, "%s", err->message);
    if (o->show_version) {
        g_print("blkin-hostd %s\n", BLKIN_VERSION);
        return -1;
    }
    if (!hostd_config_load(o->config, &o->socket_path, &o->state_dir,
                           &h->live_url, &o->metrics, &o->hold_ms,
                           &o->retention_days, &o->vms, &err) ||
        !hostd_config_load_bool(o->config, "keep-privileges",
                                &o->keep_privileges, &err) ||
        !hostd_config_load_bool(o->config, "manage-session", &o->manage_session,
                                &err) ||
        !hostd_config_load_string(o->config, "lttng-relay", &o->lttng_relay,
                                  &err) ||
        !hostd_config_load_string(o->config, "metrics-buckets",
                                  &o->metrics_buckets, &err) ||
        !hostd_config_load_limits(o->config, &o->limits, &err))
        return fail(2, "%s", err->message);
    if (!!h->live_url == !!h->offline_dir)
        return fail(2, "give exactly one of --live and --offline");
    expand_hostname(&h->live_url);
    if (o->manage_session && !h->live_url)
        return fail(2, "--manage-session goes with --live");
    if ((h->remote_live && !h->live_url) ||
        (h->remote_offline && !h->offline_dir))
        return fail(2, "--remote-live goes with --live, "
                       "--remote-offline with --offline");
    if ((h->remote_live ? g_strv_length(h->remote_live) : 0) +
            (h->remote_offline ? g_strv_length(h->remote_offline) : 0) >=
        HOSTD_MAX_SOURCES)
        return fail(2, "at most %d remote trace inputs", HOSTD_MAX_SOURCES - 1);
    if (o->ceph_collectors &&
        g_strv_length(o->ceph_collectors) > HOSTD_RBD_MAX_COLLECTORS)
        return fail(2, "at most %d --ceph-collector", HOSTD_RBD_MAX_COLLECTORS);
    for (char **c = o->ceph_collectors; c && *c; c++)
        if (!strrchr(*c, ':') || !strrchr(*c, ':')[1])
            return fail(2, "--ceph-collector %s: not HOST:PORT", *c);
    if (o->linger_s < -1)
        return fail(2, "--linger must be 0 or more seconds");
    if (o->pending_budget < 0)
        return fail(2, "--pending-budget must be positive");
    if (o->hold_ms < 0 || o->retention_days < 1)
        return fail(2, "--hold-ms and --retention-days must be positive");
    return 0;
}

/* The model, the VMs given at start, the capture file and the history. */
static int open_state(Hostd *h, const HostdOptions *o)
{
    g_autoptr(GError) err = NULL;

    h->hold_ns = (int64_t)o->hold_ms * 1000000;
    h->model = hostd_model_new();
    h->model->offline = h->offline_dir != NULL;
    if (o->pending_budget)
        h->model->pending_budget = (size_t)o->pending_budget;
    if (o->linger_s >= 0)
        h->model->linger_ns = (int64_t)o->linger_s * 1000000000;
    h->loop = g_main_loop_new(NULL, FALSE);
    for (char **v = o->vms; v && *v; v++)
        if (!add_vm_spec(h, *v, &err))
            return fail(2, "%s", err->message);
    if (o->capture) {
        h->capture = fopen(o->capture, "a");
        if (!h->capture)
            return fail(1, "%s: %s", o->capture, g_strerror(errno));
        h->model->capture = h->capture;
    }
    if (!o->no_history) {
        h->history_path =
            g_build_filename(o->state_dir ? o->state_dir : "/var/lib/blkin",
                             "history.sqlite", NULL);
        h->history_opts.retention_minutes =
            (uint32_t)o->retention_days * 24 * 60;
        history_reopen(h);
    }
    return 0;
}

/* Span exporters and the ClickHouse store, each with its bounded queue:
 * from the command line's URLs and the config file's sections. */
static int open_exporters(Hostd *h, const HostdOptions *o)
{
    static const char *const groups[] = {"export zipkin", "export otlp",
                                         "store clickhouse"};
    g_autoptr(GError) err = NULL;

    h->exporters =
        g_ptr_array_new_with_free_func((GDestroyNotify)hostd_span_export_free);
    h->model->exporters = h->exporters;
    if (o->export_sample < 0 || o->export_slow_ms < 0 || o->export_queue < 0)
        return fail(2, "export options must be >= 0");
    for (int f = 0; f < 3; f++) {
        const char *url = f == 0 ? o->zipkin : f == 1 ? o->otlp : o->store;
        g_autofree char *encoding = NULL;
        HostdHttpConfig *conf = NULL;
        HostdExportFormat fmt = f == 0   ? HOSTD_EXPORT_ZIPKIN
                                : f == 1 ? HOSTD_EXPORT_OTLP
                                         : HOSTD_EXPORT_CLICKHOUSE;
        HostdSpanExport *e;

        if (!hostd_export_config_load(o->config, groups[f], url, &conf,
                                      &encoding, &err))
            return fail(2, "%s", err->message);
        if (!conf)
            continue;
        if (f == 1 && o->otlp_encoding) {
            g_free(encoding);
            encoding = g_strdup(o->otlp_encoding);
        }
        if (encoding && (f != 1 || (g_strcmp0(encoding, "json") &&
                                    g_strcmp0(encoding, "protobuf")))) {
            hostd_http_config_free(conf);
            return fail(2,
                        "[%s] encoding: only OTLP has one, json or "
                        "protobuf",
                        groups[f]);
        }
        if (f == 1 && !g_strcmp0(encoding, "protobuf"))
            fmt = HOSTD_EXPORT_OTLP_PROTOBUF;
        e = f == 2 ? hostd_store_clickhouse_new_http(conf, &err)
                   : hostd_span_export_new_http(
                         fmt, conf, o->export_sample,
                         (uint64_t)o->export_slow_ms * 1000000, &err);
        if (!e)
            return fail(2, "%s", err->message);
        if (o->export_queue)
            hostd_span_export_set_queue_max(e, o->export_queue);
        g_ptr_array_add(h->exporters, e);
    }
    return 0;
}

/* Live: the control socket, metrics, exports, the feeds, the join tick and
 * the watchers that register VMs. */
static int start_live(Hostd *h, const HostdOptions *o)
{
    g_autoptr(GError) err = NULL;
    int r;

    /* systemd and most shells start services with a soft limit of 1,024
     * descriptors and a far higher hard one: take what is allowed, so that
     * the clients' share (half, serve-gate.h) is not tight. */
    hostd_serve_raise_fd_limit();
    h->gate = hostd_serve_gate_new(&o->limits);
    h->control = hostd_control_new(o->socket_path ? o->socket_path
                                                  : "/run/blkin/hostd.sock",
                                   h->gate, hostd_handle_request, h, &err);
    if (!h->control)
        return fail(1, "control socket: %s", err->message);
    if (o->metrics) {
        g_autoptr(GArray) ladder = NULL;

        if (o->metrics_buckets &&
            !(ladder = hostd_metrics_parse_ladder(o->metrics_buckets, &err)))
            return fail(2, "%s", err->message);
        h->metrics = hostd_metrics_new(h->model, h->gate, o->metrics, &err);
        if (!h->metrics)
            return fail(1, "metrics on %s: %s", o->metrics, err->message);
        if (ladder)
            hostd_metrics_set_ladder(h->metrics, (double *)ladder->data,
                                     ladder->len);
        /* The view (the live page, /view.json) on the same port. */
        hostd_metrics_set_route(h->metrics, hostd_view_http, h);
    }
    if ((r = open_exporters(h, o)))
        return r;
    open_feeds(h, NULL);
    h->model->live = hostd_trace_feed_health(g_ptr_array_index(h->feeds, 0));
    if (o->manage_session) {
        const char *helper = g_getenv("BLKIN_LTTNG_SESSION");

        h->lttng_keeper = hostd_lttng_keeper_new(
            h->live_url, o->lttng_relay,
            helper && *helper ? helper : BLKIN_SBINDIR "/blkin-lttng-session",
            h->model->live, &err);
        if (!h->lttng_keeper)
            return fail(2, "%s", err->message);
    }
    hostd_model_ceph_collectors(h->model, o->ceph_collectors);
    g_timeout_add(FLUSH_MS, flush_tick, h);
    if (o->ganeti_root)
        h->ganeti_watch = hostd_ganeti_watch_new(h->model, o->ganeti_root);
    if (o->libvirt_uri) {
        h->libvirt_watch =
            hostd_libvirt_watch_new(h->model, o->libvirt_uri, &err);
        if (!h->libvirt_watch)
            return fail(2, "%s", err->message);
    }
    return 0;
}

/* Offline: the captured guest requests, then the recorded traces. */
static int start_offline(Hostd *h, const HostdOptions *o)
{
    g_autoptr(GError) err = NULL;

    if (o->replay_path && !replay(h, o->replay_path, &err))
        return fail(1, "%s", err->message);
    if (!open_feeds(h, &err))
        return fail(1, "%s", err->message);
    return 0;
}

/* After the main loop: the last joins, the report or the last history
 * write. */
static int finish(Hostd *h, const HostdOptions *o)
{
    g_autoptr(GError) err = NULL;

    h->model->stopping = TRUE;
    if (!h->offline_dir) {
        /* Join what can still be joined before the last history write. */
        hostd_model_flush(h->model, now_ns() - h->hold_ns, now_ns());
        checkpoint(h, now_ns());
        return 0;
    }
    /* Everything has arrived: join it all. */
    hostd_model_flush(h->model, INT64_MAX, now_ns());
    if (o->print_report) {
        g_autoptr(JsonNode) r = hostd_report(h, NULL, NULL, "all", false, &err);
        g_autofree char *text = r ? json_to_string(r, TRUE) : NULL;

        if (!r)
            return fail(1, "%s", err->message);
        printf("%s\n", text);
    }
    return 0;
}

static void hostd_clear(Hostd *h)
{
    /* Before the model: they unregister the VMs they registered. */
    g_clear_pointer(&h->libvirt_watch, hostd_libvirt_watch_free);
    g_clear_pointer(&h->ganeti_watch, hostd_ganeti_watch_free);
    g_clear_pointer(&h->lttng_keeper, hostd_lttng_keeper_free);
    if (h->feeds)
        g_ptr_array_unref(h->feeds);
    hostd_control_free(h->control);
    hostd_metrics_free(h->metrics);
    hostd_serve_gate_free(h->gate);
    if (h->exporters)
        g_ptr_array_unref(h->exporters);
    hostd_model_free(h->model);
    hostd_history_close(h->history);
    g_free(h->history_path);
    if (h->capture)
        fclose(h->capture);
    if (h->loop)
        g_main_loop_unref(h->loop);
    g_free(h->live_url);
    g_free(h->offline_dir);
    g_strfreev(h->remote_live);
    g_strfreev(h->remote_offline);
}

/* Drops what set-up needed; @metrics: whether a metrics port is bound. */
static int drop_privileges(gboolean limit_only, const char *metrics)
{
    int r = limit_only
                ? hostd_privileges_limit(hostd_privileges_setup_needs(metrics))
                : hostd_privileges_drop();

    return r < 0 ? fail(1, "dropping privileges: %s", g_strerror(-r)) : 0;
}

int main(int argc, char **argv)
{
    HostdOptions o = {.limits = HOSTD_SERVE_LIMITS_DEFAULT,
                      .linger_s = -1,
                      .export_sample = 100,
                      .export_slow_ms = 100,
                      .hold_ms = 800,
                      .retention_days = 30};
    Hostd h = {0};
    int r;

    setlocale(LC_ALL, "");
    r = parse_options(&h, &o, &argc, &argv);
    /* Before GIO starts GLib's worker thread: threads inherit this. */
    if (!r && !h.offline_dir && !o.keep_privileges)
        r = drop_privileges(TRUE, o.metrics);
    if (!r)
        r = open_state(&h, &o);
    if (!r)
        r = h.offline_dir ? start_offline(&h, &o) : start_live(&h, &o);
    /* Set up: the sockets are bound, the files open; what set-up needed
     * goes. */
    if (!r && !h.offline_dir && !o.keep_privileges)
        r = drop_privileges(FALSE, NULL);
    if (!r) {
        g_unix_signal_add(SIGTERM, on_quit_signal, &h);
        g_unix_signal_add(SIGINT, on_quit_signal, &h);
        g_main_loop_run(h.loop);
        r = finish(&h, &o);
        if (!r)
            r = h.exit_code;
    }
    hostd_clear(&h);
    options_clear(&o);
    return r < 0 ? 0 : r;
}
