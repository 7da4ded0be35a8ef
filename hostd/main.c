/*
 * main.c: blkin-hostd, the BlkKin host daemon.
 *
 * Reads the QEMU filter's spans (LTTng live, or a recorded trace), the guest
 * agents' channels, joins them per request and serves per-disk reports on a
 * control socket (docs/hostd.md).
 */
#include "hostd.h"
#include "ganeti-discovery.h"
#include "libvirt-watch.h"
#include "privileges.h"
#include "store-clickhouse.h"

#include <errno.h>
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

static void sink_span(void *opaque, const HostdSpan *s)
{
    Hostd *h = opaque;

    hostd_model_span(h->model, s, now_ns());
}

static void sink_hung(void *opaque, const HostdSpan *s, uint64_t age_ns)
{
    Hostd *h = opaque;

    hostd_model_hung(h->model, s, age_ns);
}

static void sink_disk(void *opaque, const HostdDiskMap *m)
{
    Hostd *h = opaque;

    hostd_model_disk_map(h->model, m);
}

static void sink_zipkin(void *opaque, const HostdZipkinEvent *e)
{
    Hostd *h = opaque;

    hostd_model_zipkin(h->model, e);
}

static void sink_discarded(void *opaque, uint64_t count)
{
    Hostd *h = opaque;

    h->model->lttng_discarded += count;
}

static const HostdTraceSink hostd_sink = {
    .span = sink_span,
    .hung = sink_hung,
    .disk = sink_disk,
    .discarded = sink_discarded,
    .zipkin = sink_zipkin,
};

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
                i, dir, &hostd_sink, h, h->model, feed_ended, err);

            if (!f)
                return FALSE;
            g_ptr_array_add(h->feeds, f);
        }
        h->feeds_open = h->feeds->len;
        return TRUE;
    }
    g_ptr_array_add(h->feeds, hostd_trace_feed_new_live(
                                  0, h->live_url, &hostd_sink, h, h->model));
    for (guint i = 0; h->remote_live && h->remote_live[i]; i++)
        g_ptr_array_add(h->feeds,
                        hostd_trace_feed_new_live(i + 1, h->remote_live[i],
                                                  &hostd_sink, h, h->model));
    return TRUE;
}

/* ---- the join tick and history ---------------------------------------- */

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

    /* Spans up to the trace's own time have arrived; if the relay lags more
     * than the hold time, wait for it rather than call guests unmatched. */
    if (h->feeds && h->feeds->len) {
        HostdTraceSource *src =
            hostd_trace_feed_source(g_ptr_array_index(h->feeds, 0));
        int64_t tt = src ? (int64_t)hostd_trace_source_time_ns(src) : 0;

        if (tt > 0 && tt < watermark)
            watermark = tt;
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

/* ---- Ganeti discovery (--ganeti-runtime) ------------------------------- */

#define GANETI_SCAN_MS 2000

typedef struct GanetiScan {
    Hostd *h;
    char *root;
    GHashTable *known; /* instance -> what it was registered with */
} GanetiScan;

/* Registers instances that appeared or changed, unregisters those gone. */
static gboolean ganeti_scan(gpointer user)
{
    GanetiScan *g = user;
    g_autoptr(GPtrArray) insts = NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTableIter it;
    gpointer name;

    if (blkin_ganeti_discover(g->root, &insts) < 0)
        insts = g_ptr_array_new();
    for (guint i = 0; i < insts->len; i++) {
        BlkinGanetiInstance *inst = g_ptr_array_index(insts, i);
        g_auto(GStrv) specs = blkin_ganeti_disk_specs(inst);
        g_autofree char *joined = g_strjoinv(",", specs);
        g_autofree char *sig = g_strdup_printf(
            "%s|%s", inst->agent_socket ? inst->agent_socket : "", joined);
        g_autoptr(GError) err = NULL;

        g_hash_table_add(seen, inst->name);
        /* Re-adding resets the VM's statistics: only on a change. */
        if (g_strcmp0(g_hash_table_lookup(g->known, inst->name), sig) == 0)
            continue;
        if (!hostd_model_add_vm(g->h->model, inst->name, inst->agent_socket,
                                specs, &err)) {
            g_warning("ganeti: %s: %s", inst->name, err->message);
            continue;
        }
        g_message("ganeti: registered %s (%s)", inst->name, joined);
        g_hash_table_replace(g->known, g_strdup(inst->name),
                             g_steal_pointer(&sig));
    }
    g_hash_table_iter_init(&it, g->known);
    while (g_hash_table_iter_next(&it, &name, NULL)) {
        if (g_hash_table_contains(seen, name))
            continue;
        g_message("ganeti: %s stopped, unregistered", (char *)name);
        hostd_model_remove_vm(g->h->model, name);
        g_hash_table_iter_remove(&it);
    }
    return G_SOURCE_CONTINUE;
}

/* ---- start-up --------------------------------------------------------- */

/* "NAME:SOCKET:vda=serial=id,vdb=serial=id" (SOCKET may be empty). */
static gboolean add_vm_spec(Hostd *h, const char *spec, GError **err)
{
    g_auto(GStrv) f = g_strsplit(spec, ":", 3);
    g_auto(GStrv) disks = NULL;

    if (g_strv_length(f) != 3) {
        g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--vm %s: expected NAME:SOCKET:TARGET=SERIAL=ID,...", spec);
        return FALSE;
    }
    disks = g_strsplit(f[2], ",", -1);
    return hostd_model_add_vm(h->model, f[0], *f[1] ? f[1] : NULL, disks,
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

int main(int argc, char **argv)
{
    g_autofree char *socket_path = NULL, *state_dir = NULL, *config = NULL;
    g_autofree char *capture = NULL, *replay_path = NULL, *metrics = NULL;
    g_autofree char *zipkin = NULL, *otlp = NULL, *store = NULL;
    gint export_sample = 100, export_slow_ms = 100, export_queue = 0;
    g_auto(GStrv) vms = NULL;
    g_autofree char *ganeti_root = NULL;
    g_autofree char *libvirt_uri = NULL;
    g_autoptr(HostdLibvirtWatch) libvirt_watch = NULL;
    g_autoptr(GHashTable) ganeti_known = NULL;
    GanetiScan ganeti = {0};
    gboolean print_report = FALSE, no_history = FALSE, keep_privileges = FALSE;
    gint hold_ms = 800, retention_days = 30;
    HostdServeLimits limits = HOSTD_SERVE_LIMITS_DEFAULT;
    g_autoptr(GError) err = NULL;
    g_autoptr(GOptionContext) ctx = NULL;
    Hostd h = {0};
    gboolean show_version = FALSE;
    GOptionEntry entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
         "Config file (default /etc/blkin/hostd.conf if it exists)", "FILE"},
        {"socket", 's', 0, G_OPTION_ARG_FILENAME, &socket_path,
         "Control socket (default /run/blkin/hostd.sock)", "PATH"},
        {"state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
         "History database directory (default /var/lib/blkin)", "DIR"},
        {"live", 'l', 0, G_OPTION_ARG_STRING, &h.live_url,
         "LTTng live session: net://HOST/host/HOSTNAME/SESSION", "URL"},
        {"offline", 0, 0, G_OPTION_ARG_FILENAME, &h.offline_dir,
         "Read a recorded trace instead, then exit", "DIR"},
        {"remote-live", 0, 0, G_OPTION_ARG_STRING_ARRAY, &h.remote_live,
         "Also read another node's session (it serves disks over NBD); "
         "repeatable",
         "URL"},
        {"remote-offline", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &h.remote_offline,
         "With --offline: another node's recorded trace; repeatable", "DIR"},
        {"vm", 0, 0, G_OPTION_ARG_STRING_ARRAY, &vms,
         "A VM: NAME:AGENT-SOCKET:TARGET=SERIAL=FILTER-ID,... (repeatable)",
         "SPEC"},
        {"hold-ms", 0, 0, G_OPTION_ARG_INT, &hold_ms,
         "How long to wait for late data before joining (default 800)", "MS"},
        {"metrics", 0, 0, G_OPTION_ARG_STRING, &metrics,
         "Serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9477)", "ADDR"},
        {"export-zipkin", 0, 0, G_OPTION_ARG_STRING, &zipkin,
         "Send spans as Zipkin v2 JSON to URL (http://HOST:PORT/api/v2/spans)",
         "URL"},
        {"export-otlp", 0, 0, G_OPTION_ARG_STRING, &otlp,
         "Send spans as OTLP/HTTP JSON to URL (http://HOST:PORT/v1/traces)",
         "URL"},
        {"store", 0, 0, G_OPTION_ARG_STRING, &store,
         "Write every joined request to ClickHouse at URL (http://HOST:8123/)",
         "URL"},
        {"export-sample", 0, 0, G_OPTION_ARG_INT, &export_sample,
         "Export one joined request in N (default 100; 0: only slow ones)",
         "N"},
        {"export-slow-ms", 0, 0, G_OPTION_ARG_INT, &export_slow_ms,
         "Always export requests slower than this (default 100; 0: off)", "MS"},
        {"export-queue", 0, 0, G_OPTION_ARG_INT, &export_queue,
         "Requests waiting for export at most (default 20000)", "N"},
        {"capture", 0, 0, G_OPTION_ARG_FILENAME, &capture,
         "Log guest requests here, for --offline --replay", "FILE"},
        {"replay", 0, 0, G_OPTION_ARG_FILENAME, &replay_path,
         "With --offline: guest requests captured by --capture", "FILE"},
        {"report", 0, 0, G_OPTION_ARG_NONE, &print_report,
         "With --offline: print the 1 h report as JSON at the end", NULL},
        {"retention-days", 0, 0, G_OPTION_ARG_INT, &retention_days,
         "Keep per-minute history this long (default 30)", "DAYS"},
        {"no-history", 0, 0, G_OPTION_ARG_NONE, &no_history,
         "Keep no SQLite history", NULL},
        {"libvirt", 0, 0, G_OPTION_ARG_STRING, &libvirt_uri,
         "Register blkin-enabled libvirt domains while they run", "URI"},
        {"keep-privileges", 0, 0, G_OPTION_ARG_NONE, &keep_privileges,
         "Keep every capability (default: drop all but CAP_DAC_OVERRIDE "
         "after set-up)",
         NULL},
        {"ganeti-runtime", 0, 0, G_OPTION_ARG_FILENAME, &ganeti_root,
         "Register Ganeti's running KVM instances from this directory "
         "(/var/run/ganeti/kvm-hypervisor)",
         "DIR"},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &show_version,
         "Print the version and exit", NULL},
        {NULL}};

    setlocale(LC_ALL, "");
    ctx = g_option_context_new("- BlkKin host daemon");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("blkin-hostd: %s\n", err->message);
        return 2;
    }
    if (show_version) {
        g_print("blkin-hostd %s\n", BLKIN_VERSION);
        return 0;
    }
    if (!hostd_config_load(config, &socket_path, &state_dir, &h.live_url,
                           &metrics, &hold_ms, &retention_days, &vms, &err) ||
        !hostd_config_load_bool(config, "keep-privileges", &keep_privileges,
                                &err) ||
        !hostd_config_load_limits(config, &limits, &err)) {
        g_printerr("blkin-hostd: %s\n", err->message);
        return 2;
    }
    if (!!h.live_url == !!h.offline_dir) {
        g_printerr("blkin-hostd: give exactly one of --live and --offline\n");
        return 2;
    }
    if ((h.remote_live && !h.live_url) ||
        (h.remote_offline && !h.offline_dir)) {
        g_printerr("blkin-hostd: --remote-live goes with --live, "
                   "--remote-offline with --offline\n");
        return 2;
    }
    if ((h.remote_live ? g_strv_length(h.remote_live) : 0) +
            (h.remote_offline ? g_strv_length(h.remote_offline) : 0) >=
        HOSTD_MAX_SOURCES) {
        g_printerr("blkin-hostd: at most %d remote trace inputs\n",
                   HOSTD_MAX_SOURCES - 1);
        return 2;
    }
    if (hold_ms < 0 || retention_days < 1) {
        g_printerr("blkin-hostd: --hold-ms and --retention-days must be "
                   "positive\n");
        return 2;
    }

    /* Before GIO starts GLib's worker thread: threads inherit this. */
    if (!h.offline_dir && !keep_privileges) {
        int r = hostd_privileges_limit(hostd_privileges_setup_needs(metrics));

        if (r < 0) {
            g_printerr("blkin-hostd: dropping privileges: %s\n",
                       g_strerror(-r));
            return 1;
        }
    }
    h.hold_ns = (int64_t)hold_ms * 1000000;
    h.model = hostd_model_new();
    h.model->offline = h.offline_dir != NULL;
    h.loop = g_main_loop_new(NULL, FALSE);
    for (char **v = vms; v && *v; v++)
        if (!add_vm_spec(&h, *v, &err)) {
            g_printerr("blkin-hostd: %s\n", err->message);
            return 2;
        }
    if (capture) {
        h.capture = fopen(capture, "a");
        if (!h.capture) {
            g_printerr("blkin-hostd: %s: %s\n", capture, g_strerror(errno));
            return 1;
        }
        h.model->capture = h.capture;
    }
    if (!no_history) {
        g_autofree char *db = g_build_filename(
            state_dir ? state_dir : "/var/lib/blkin", "history.sqlite", NULL);

        HostdHistoryOptions hopts = {.retention_minutes =
                                         (uint32_t)retention_days * 24 * 60};

        h.history = hostd_history_open(db, &hopts, &err);
        h.model->history = h.history;
        if (!h.history) {
            g_printerr("blkin-hostd: %s\n", err->message);
            return 1;
        }
    }
    if (!h.offline_dir) {
        /* systemd and most shells start services with a soft limit of 1,024
         * descriptors and a far higher hard one: take what is allowed, so
         * that the clients' share (half, serve-gate.h) is not tight. */
        hostd_serve_raise_fd_limit();
        h.gate = hostd_serve_gate_new(&limits);
        h.control = hostd_control_new(socket_path ? socket_path
                                                  : "/run/blkin/hostd.sock",
                                      h.gate, hostd_handle_request, &h, &err);
        if (!h.control) {
            g_printerr("blkin-hostd: control socket: %s\n", err->message);
            return 1;
        }
        if (metrics) {
            h.metrics = hostd_metrics_new(h.model, h.gate, metrics, &err);
            if (!h.metrics) {
                g_printerr("blkin-hostd: metrics on %s: %s\n", metrics,
                           err->message);
                return 1;
            }
        }
        h.exporters = g_ptr_array_new_with_free_func(
            (GDestroyNotify)hostd_span_export_free);
        h.model->exporters = h.exporters;
        for (int f = 0; f < 2; f++) {
            const char *url = f ? otlp : zipkin;
            HostdSpanExport *e;

            if (!url)
                continue;
            if (export_sample < 0 || export_slow_ms < 0 || export_queue < 0) {
                g_printerr("blkin-hostd: export options must be >= 0\n");
                return 2;
            }
            e = hostd_span_export_new(
                f ? HOSTD_EXPORT_OTLP : HOSTD_EXPORT_ZIPKIN, url, export_sample,
                (uint64_t)export_slow_ms * 1000000, &err);
            if (!e) {
                g_printerr("blkin-hostd: %s\n", err->message);
                return 2;
            }
            if (export_queue)
                hostd_span_export_set_queue_max(e, export_queue);
            g_ptr_array_add(h.exporters, e);
        }
        if (store) {
            HostdSpanExport *e = hostd_store_clickhouse_new(store, &err);

            if (!e) {
                g_printerr("blkin-hostd: %s\n", err->message);
                return 2;
            }
            if (export_queue)
                hostd_span_export_set_queue_max(e, export_queue);
            g_ptr_array_add(h.exporters, e);
        }
        open_feeds(&h, NULL);
        h.model->live = hostd_trace_feed_health(g_ptr_array_index(h.feeds, 0));
        g_timeout_add(FLUSH_MS, flush_tick, &h);
        if (ganeti_root) {
            ganeti_known =
                g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
            ganeti = (GanetiScan){&h, ganeti_root, ganeti_known};
            ganeti_scan(&ganeti);
            g_timeout_add(GANETI_SCAN_MS, ganeti_scan, &ganeti);
        }
        if (libvirt_uri) {
            libvirt_watch = hostd_libvirt_watch_new(h.model, libvirt_uri, &err);
            if (!libvirt_watch) {
                g_printerr("blkin-hostd: %s\n", err->message);
                return 2;
            }
        }
    } else {
        if (replay_path && !replay(&h, replay_path, &err)) {
            g_printerr("blkin-hostd: %s\n", err->message);
            return 1;
        }
        if (!open_feeds(&h, &err)) {
            g_printerr("blkin-hostd: %s\n", err->message);
            return 1;
        }
    }
    /* Set up: the sockets are bound, the files open; what set-up needed
     * goes. */
    if (!h.offline_dir && !keep_privileges) {
        int r = hostd_privileges_drop();

        if (r < 0) {
            g_printerr("blkin-hostd: dropping privileges: %s\n",
                       g_strerror(-r));
            return 1;
        }
    }
    g_unix_signal_add(SIGTERM, on_quit_signal, &h);
    g_unix_signal_add(SIGINT, on_quit_signal, &h);
    g_main_loop_run(h.loop);

    if (h.offline_dir) {
        /* Everything has arrived: join it all. */
        hostd_model_flush(h.model, INT64_MAX, now_ns());
        if (print_report) {
            g_autoptr(JsonNode) r = hostd_report(&h, NULL, NULL, "all", &err);
            g_autofree char *text = r ? json_to_string(r, TRUE) : NULL;

            if (!r) {
                g_printerr("blkin-hostd: %s\n", err->message);
                return 1;
            }
            printf("%s\n", text);
        }
    } else {
        /* Join what can still be joined before the last history write. */
        hostd_model_flush(h.model, now_ns() - h.hold_ns, now_ns());
        checkpoint(&h, now_ns());
    }
    /* Before the model: it unregisters the domains it registered. */
    g_clear_pointer(&libvirt_watch, hostd_libvirt_watch_free);
    if (h.feeds)
        g_ptr_array_unref(h.feeds);
    hostd_control_free(h.control);
    hostd_metrics_free(h.metrics);
    hostd_serve_gate_free(h.gate);
    if (h.exporters)
        g_ptr_array_unref(h.exporters);
    hostd_model_free(h.model);
    hostd_history_close(h.history);
    if (h.capture)
        fclose(h.capture);
    g_main_loop_unref(h.loop);
    return h.exit_code;
}
