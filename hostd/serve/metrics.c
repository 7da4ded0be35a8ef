/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metrics.c: hostd's Prometheus endpoint (metrics.h).
 *
 * A deliberately small HTTP/1.0 responder: it answers GET /metrics (and
 * hands other paths to a route, the view's: view-serve.c), reads at most
 * one request head of bounded size, and closes the connection after each
 * answer. Prometheus needs no more. Connections
 * are admitted, limited and timed out by the gate (serve-gate.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "metrics.h"

#include "ingest/agent-conn.h"
#include "metrics-http.h"
#include "metrics-proto.h"
#include "serve-buf.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <sys/socket.h>
#include <unistd.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

/*
 * The classic histogram's bucket bounds (seconds), then +Inf: coarse, 19
 * bounds from 10 us to 10 s in 1-2.5-5 steps, so that a disk costs a few
 * hundred series; --metrics-buckets sets others. A scraper that asks for
 * the protobuf format gets native histograms too (metrics-proto.h), one
 * series each at 9 % resolution.
 */
static const double default_ladder[] = {
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3,
    25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1,     2.5,  5,      10,
};
#define PHASE_HELP                                                             \
    "Time VM disk requests spent in each phase (docs/hostd.md, "              \
    "\"Phases\")."

struct HostdMetrics {
    GSocket *listener;
    HostdServeGate *gate;
    GList *scrapes;         /* Scrape *, to close them at the end */
    HostdHttpRouteFn route; /* the other paths (the view), or NULL */
    void *route_opaque;
    gsize queued; /* bytes of answers not yet written, all scrapes */
    HostdModel *model;
    double *ladder; /* ascending, seconds */
    size_t n_ladder;
};

/* Label values are operator names and ids: escape as the format says. */
static void label(GString *s, const char *k, const char *v, bool comma)
{
    g_string_append_printf(s, "%s%s=\"", comma ? "," : "", k);
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            g_string_append_c(s, '\\');
        if (*v == '\n') {
            g_string_append(s, "\\n");
            continue;
        }
        g_string_append_c(s, *v);
    }
    g_string_append_c(s, '"');
}

static void disk_labels(GString *s, const HostdDisk *d)
{
    label(s, "domain", d->vm->name, false);
    label(s, "disk", d->target, true);
}

static void histogram(HostdMetrics *m, GString *s, const HostdDisk *d, int op,
                      int phase, const HostdLatencyHist *h)
{
    HostdLatencyHistIter it;
    HostdLatencyBucket b;
    bool more;
    uint64_t below = 0;

    hostd_latency_hist_iter_init(&it, h);
    more = hostd_latency_hist_iter_next(&it, &b);
    for (size_t k = 0; k < m->n_ladder; k++) {
        uint64_t le_ns = (uint64_t)(m->ladder[k] * 1e9);

        /* A fine bucket counts below a bound when its upper end does; the
         * fine buckets are 1.6 % wide, far narrower than the ladder. */
        while (more && b.upper <= le_ns) {
            below = b.cumulative;
            more = hostd_latency_hist_iter_next(&it, &b);
        }
        g_string_append(s, "blkin_request_phase_seconds_bucket{");
        disk_labels(s, d);
        label(s, "op", blkin_op_name(op), true);
        label(s, "phase", blkin_phase_name(phase), true);
        g_string_append_printf(s, ",le=\"%.6g\"} %" PRIu64 "\n", m->ladder[k],
                               below);
    }
    g_string_append(s, "blkin_request_phase_seconds_bucket{");
    disk_labels(s, d);
    label(s, "op", blkin_op_name(op), true);
    label(s, "phase", blkin_phase_name(phase), true);
    g_string_append_printf(s, ",le=\"+Inf\"} %" PRIu64 "\n",
                           hostd_latency_hist_count(h));
    g_string_append(s, "blkin_request_phase_seconds_sum{");
    disk_labels(s, d);
    label(s, "op", blkin_op_name(op), true);
    label(s, "phase", blkin_phase_name(phase), true);
    g_string_append_printf(s, "} %.9f\n", hostd_latency_hist_sum(h) / 1e9);
    g_string_append(s, "blkin_request_phase_seconds_count{");
    disk_labels(s, d);
    label(s, "op", blkin_op_name(op), true);
    label(s, "phase", blkin_phase_name(phase), true);
    g_string_append_printf(s, "} %" PRIu64 "\n", hostd_latency_hist_count(h));
}

static void disk_counter(GString *s, const char *name, const HostdDisk *d,
                         uint64_t v)
{
    g_string_append_printf(s, "%s{", name);
    disk_labels(s, d);
    g_string_append_printf(s, "} %" PRIu64 "\n", v);
}

static GPtrArray *sorted_disks(HostdModel *model)
{
    GPtrArray *disks = g_ptr_array_new();
    g_autoptr(GList) names = g_hash_table_get_keys(model->vms);

    names = g_list_sort(names, (GCompareFunc)g_strcmp0);
    for (GList *l = names; l; l = l->next) {
        HostdVm *vm = g_hash_table_lookup(model->vms, l->data);

        for (guint i = 0; i < vm->disks->len; i++)
            g_ptr_array_add(disks, g_ptr_array_index(vm->disks, i));
    }
    return disks;
}

char *hostd_metrics_render(HostdMetrics *m)
{
    GString *s = g_string_new(NULL);
    g_autoptr(GPtrArray) disks = sorted_disks(m->model);

    g_string_append(s, "# HELP blkin_request_phase_seconds " PHASE_HELP "\n"
                       "# TYPE blkin_request_phase_seconds histogram\n");
    for (guint i = 0; i < disks->len; i++) {
        const HostdDisk *d = g_ptr_array_index(disks, i);

        for (int op = 0; op < BLKIN_OP__N; op++)
            for (int p = 0; p < BLKIN_PHASE__N; p++)
                if (d->cum[op][p])
                    histogram(m, s, d, op, p, d->cum[op][p]);
    }

    g_string_append(s, "# HELP blkin_requests_total Requests per VM disk "
                       "and op.\n# TYPE blkin_requests_total counter\n");
    for (guint i = 0; i < disks->len; i++) {
        const HostdDisk *d = g_ptr_array_index(disks, i);

        for (int op = 0; op < BLKIN_OP__N; op++) {
            if (!d->cum_requests[op])
                continue;
            g_string_append(s, "blkin_requests_total{");
            disk_labels(s, d);
            label(s, "op", blkin_op_name(op), true);
            g_string_append_printf(s, "} %" PRIu64 "\n", d->cum_requests[op]);
        }
    }
    g_string_append(s, "# HELP blkin_request_bytes_total Bytes per VM disk "
                       "and op.\n# TYPE blkin_request_bytes_total counter\n");
    for (guint i = 0; i < disks->len; i++) {
        const HostdDisk *d = g_ptr_array_index(disks, i);

        for (int op = 0; op < BLKIN_OP__N; op++) {
            if (!d->cum_requests[op])
                continue;
            g_string_append(s, "blkin_request_bytes_total{");
            disk_labels(s, d);
            label(s, "op", blkin_op_name(op), true);
            g_string_append_printf(s, "} %" PRIu64 "\n", d->cum_bytes[op]);
        }
    }

    struct {
        const char *name, *help;
        int which;
    } counters[] = {
        {"blkin_unmatched_guest_requests_total",
         "Guest requests no QEMU span was found for.", 0},
        {"blkin_unmatched_spans_total",
         "QEMU spans no guest request was found for.", 1},
        {"blkin_agent_dropped_records_total",
         "Records the guest agent reported dropped.", 2},
        {"blkin_agent_missing_records_total",
         "Records missing from the agent's stream (sequence gaps).", 3},
        {"blkin_hung_reports_total",
         "Reports of requests in flight past the filter's hung-ms.", 4},
        {"blkin_agent_limit_breaches_total",
         "Times the VM's agent channel broke a limit and was closed.", 5},
    };
    for (size_t c = 0; c < G_N_ELEMENTS(counters); c++) {
        g_string_append_printf(s, "# HELP %s %s\n# TYPE %s counter\n",
                               counters[c].name, counters[c].help,
                               counters[c].name);
        for (guint i = 0; i < disks->len; i++) {
            const HostdDisk *d = g_ptr_array_index(disks, i);
            const HostdJoinCounters *jc = hostd_join_counters(d->join);
            HostdAgentCounters ac = hostd_agent_conn_counters(d->vm->agent);
            uint64_t v[] = {jc->unmatched_guest,
                            hostd_disk_unmatched_spans(d),
                            ac.agent_drops,
                            hostd_disk_agent_gap(d),
                            d->hung_reports,
                            hostd_agent_conn_limit_breaches(d->vm->agent)};

            disk_counter(s, counters[c].name, d, v[counters[c].which]);
        }
    }

    g_string_append(s, "# HELP blkin_guest_clock_error_bound_seconds Bound "
                       "on the error of the guest clock correction.\n"
                       "# TYPE blkin_guest_clock_error_bound_seconds gauge\n");
    for (guint i = 0; i < disks->len; i++) {
        const HostdDisk *d = g_ptr_array_index(disks, i);
        const HostdClockCorrection *corr = hostd_join_correction(d->join);
        struct blkin_clock_estimate est;
        double bound;

        if (corr->valid)
            bound = (corr->hi_ns - corr->lo_ns) / 2 / 1e9;
        else if (hostd_agent_conn_clock(d->vm->agent, &est))
            bound = est.bound_ns / 1e9;
        else
            continue;
        g_string_append(s, "blkin_guest_clock_error_bound_seconds{");
        disk_labels(s, d);
        g_string_append_printf(s, "} %.9f\n", bound);
    }
    g_string_append_printf(
        s,
        "# HELP blkin_history_up 1 while the per-minute history can be "
        "written (0: degraded, tracing goes on)\n"
        "# TYPE blkin_history_up gauge\n"
        "blkin_history_up %d\n"
        "# HELP blkin_lttng_discarded_events_total Events LTTng discarded "
        "(ring buffer full).\n"
        "# TYPE blkin_lttng_discarded_events_total counter\n"
        "blkin_lttng_discarded_events_total %" PRIu64 "\n",
        m->model->history_error ? 0 : 1, m->model->lttng_discarded);
    if (m->model->live)
        hostd_live_health_metrics(m->model->live, s,
                                  g_get_monotonic_time() * 1000);
    return g_string_free(s, FALSE);
}

/* The exposition in the protobuf format, with native histograms. */
static GBytes *render_protobuf(HostdMetrics *m)
{
    g_autofree char *text = hostd_metrics_render(m);
    g_autoptr(GPtrArray) disks = sorted_disks(m->model);
    HostdPromProto *p = hostd_prom_proto_new();

    hostd_prom_proto_histogram_family(p, "blkin_request_phase_seconds",
                                      PHASE_HELP);
    for (guint i = 0; i < disks->len; i++) {
        const HostdDisk *d = g_ptr_array_index(disks, i);

        for (int op = 0; op < BLKIN_OP__N; op++)
            for (int ph = 0; ph < BLKIN_PHASE__N; ph++) {
                const char *const labels[] = {
                    "domain", d->vm->name,        "disk",  d->target,
                    "op",     blkin_op_name(op),  "phase", blkin_phase_name(ph),
                    NULL};

                if (d->cum[op][ph])
                    hostd_prom_proto_histogram(p, labels, d->cum[op][ph],
                                               m->ladder, m->n_ladder,
                                               HOSTD_PROM_NATIVE_SCHEMA);
            }
    }
    if (!hostd_prom_proto_add_text(p, text, "blkin_request_phase_seconds"))
        g_warning("metrics: the text exposition could not be converted");
    return hostd_prom_proto_finish(p);
}

/*
 * One scrape, on a non-blocking socket: a peer that trickles its request
 * or does not read the answer costs a bounded buffer, never the main
 * loop's time, and is dropped at the deadline (serve-gate.h). While it has
 * sent no complete request it may also be closed to make room for a new
 * scrape when the connection limit is reached.
 */
typedef struct Scrape {
    HostdServeConn conn; /* first: the gate hands it back */
    HostdMetrics *m;
    GList *node; /* in m->scrapes */
    int fd;
    guint watch;
    HostdHttpReader req;
    HostdOutQueue answer;
    gsize queued; /* counted in m->queued */
} Scrape;

static void scrape_free(Scrape *c)
{
    hostd_serve_conn_detach(&c->conn);
    g_clear_handle_id(&c->watch, g_source_remove);
    c->m->scrapes = g_list_delete_link(c->m->scrapes, c->node);
    c->m->queued -= c->queued;
    close(c->fd);
    hostd_out_queue_clear(&c->answer);
    g_free(c);
}

static void scrape_close(HostdServeConn *conn, HostdServeEvent why)
{
    scrape_free((Scrape *)conn);
}

static gssize write_fd(void *opaque, const void *buf, gsize n)
{
    return send(GPOINTER_TO_INT(opaque), buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer user)
{
    Scrape *c = user;
    int r = hostd_out_queue_flush(&c->answer, write_fd, GINT_TO_POINTER(fd));

    if (r == 0)
        return G_SOURCE_CONTINUE;
    /* Written, or the peer is gone. */
    c->watch = 0;
    scrape_free(c);
    return G_SOURCE_REMOVE;
}

static void answer(Scrape *c, HostdHttpDecision d)
{
    const char *status, *type = "text/plain";
    g_autofree char *body = NULL, *head = NULL;

    /* Answers nobody reads must not pile up: past the bound, a scrape (or
     * a request for the view) is told to come back instead of rendering
     * another answer. */
    if ((d == HOSTD_HTTP_METRICS ||
         (d == HOSTD_HTTP_NOT_FOUND && c->m->route)) &&
        c->m->queued >= HOSTD_SERVE_METRICS_QUEUE_MAX) {
        hostd_serve_gate_note(c->m->gate, HOSTD_SURFACE_METRICS,
                              HOSTD_SERVE_BUSY);
        d = HOSTD_HTTP_BUSY;
    }
    status = hostd_metrics_http_status(d);
    if (d == HOSTD_HTTP_METRICS &&
        hostd_prom_proto_wanted(c->req.buf, c->req.got)) {
        g_autoptr(GBytes) pb = render_protobuf(c->m);
        gsize n;
        const void *data = g_bytes_get_data(pb, &n);

        head = g_strdup_printf("HTTP/1.0 %s\r\nContent-Type: %s\r\n"
                               "Content-Length: %zu\r\nConnection: close"
                               "\r\n\r\n",
                               status, HOSTD_PROM_PROTO_TYPE, n);
        hostd_out_queue_push(&c->answer, head, strlen(head));
        hostd_out_queue_push(&c->answer, data, n);
        goto queued;
    }
    if (d == HOSTD_HTTP_METRICS) {
        type = "text/plain; version=0.0.4";
        body = hostd_metrics_render(c->m);
    } else if (d == HOSTD_HTTP_NOT_FOUND && c->m->route &&
               (body = c->m->route(c->m->route_opaque, c->req.buf, c->req.got,
                                   &status, &type))) {
        /* The view's (view-serve.c). */
    } else if (d == HOSTD_HTTP_NOT_FOUND) {
        body = g_strdup(c->m->route ? "not found: /metrics, and the view at "
                                      "/ and /view.json\n"
                                    : "only /metrics here\n");
    } else if (d == HOSTD_HTTP_BUSY) {
        body = g_strdup("busy, try again\n");
    } else {
        body = g_strdup("bad request\n");
    }
    head = g_strdup_printf("HTTP/1.0 %s\r\nContent-Type: %s\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n"
                           "Cache-Control: no-store\r\n"
                           "X-Content-Type-Options: nosniff\r\n"
                           "X-Frame-Options: DENY\r\n\r\n",
                           status, type, strlen(body));
    /* An empty queue takes any answer; it is this connection's only one. */
    hostd_out_queue_push(&c->answer, head, strlen(head));
    hostd_out_queue_push(&c->answer, body, strlen(body));
queued:
    c->queued = hostd_out_queue_len(&c->answer);
    c->m->queued += c->queued;
    g_clear_handle_id(&c->watch, g_source_remove);
    hostd_serve_conn_update(&c->conn, FALSE, c->conn.deadline_us);
    c->watch = g_unix_fd_add(c->fd, G_IO_OUT, on_writable, c);
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer user)
{
    Scrape *c = user;
    size_t room;
    char *at = hostd_http_reader_space(&c->req, &room);
    gssize n = recv(fd, at, room, MSG_DONTWAIT);
    HostdHttpDecision d;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return G_SOURCE_CONTINUE;
    if (n <= 0) {
        c->watch = 0;
        scrape_free(c);
        return G_SOURCE_REMOVE;
    }
    d = hostd_http_reader_commit(&c->req, n);
    if (d == HOSTD_HTTP_MORE)
        return G_SOURCE_CONTINUE;
    c->watch = 0;
    answer(c, d);
    return G_SOURCE_REMOVE;
}

static void on_accept(void *opaque, int fd)
{
    HostdMetrics *m = opaque;
    Scrape *c = g_new0(Scrape, 1);

    c->m = m;
    c->fd = fd;
    hostd_http_reader_init(&c->req);
    /* Bounded by the answer's size, which hostd makes; the total is
     * bounded in answer(). */
    hostd_out_queue_init(&c->answer, G_MAXSIZE);
    m->scrapes = g_list_prepend(m->scrapes, c);
    c->node = m->scrapes;
    hostd_serve_conn_attach(m->gate, &c->conn, HOSTD_SURFACE_METRICS,
                            g_get_monotonic_time() +
                                HOSTD_SERVE_METRICS_DEADLINE_S * G_USEC_PER_SEC,
                            scrape_close);
    c->watch = g_unix_fd_add(fd, G_IO_IN, on_readable, c);
}

HostdMetrics *hostd_metrics_new(HostdModel *model, HostdServeGate *gate,
                                const char *listen, GError **err)
{
    g_autoptr(GSocketConnectable) addr = NULL;
    g_autoptr(GSocketAddressEnumerator) en = NULL;
    g_autoptr(GSocketAddress) sa = NULL;
    HostdMetrics *m;

    addr = g_network_address_parse(listen, 0, err);
    if (!addr)
        return NULL;
    en = g_socket_connectable_enumerate(addr);
    sa = g_socket_address_enumerator_next(en, NULL, err);
    if (!sa) {
        if (err && !*err)
            g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                        "cannot resolve %s", listen);
        return NULL;
    }
    m = g_new0(HostdMetrics, 1);
    m->model = model;
    hostd_metrics_set_ladder(m, default_ladder, G_N_ELEMENTS(default_ladder));
    m->gate = gate;
    m->listener = hostd_serve_listen_socket(sa, err);
    if (!m->listener) {
        hostd_metrics_free(m);
        return NULL;
    }
    hostd_serve_gate_listen(gate, HOSTD_SURFACE_METRICS, m->listener, on_accept,
                            m);
    return m;
}

void hostd_metrics_set_ladder(HostdMetrics *m, const double *bounds, size_t n)
{
    g_free(m->ladder);
    m->ladder = g_memdup2(bounds, n * sizeof(double));
    m->n_ladder = n;
}

GArray *hostd_metrics_parse_ladder(const char *text, GError **err)
{
    g_auto(GStrv) parts = g_strsplit(text, ",", -1);
    g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(double));

    for (char **p = parts; *p; p++) {
        char *s = g_strstrip(*p), *end;
        double v = g_ascii_strtod(s, &end);

        if (!*s || *end || !(v > 0) || isinf(v) ||
            (a->len && v <= g_array_index(a, double, a->len - 1))) {
            g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "metrics buckets: '%s' is not a number of seconds "
                        "above the one before",
                        s);
            return NULL;
        }
        g_array_append_val(a, v);
    }
    if (!a->len || a->len > HOSTD_METRICS_LADDER_MAX) {
        g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "metrics buckets: 1 to %d bounds",
                    HOSTD_METRICS_LADDER_MAX);
        return NULL;
    }
    return g_steal_pointer(&a);
}

void hostd_metrics_set_route(HostdMetrics *m, HostdHttpRouteFn fn, void *opaque)
{
    m->route = fn;
    m->route_opaque = opaque;
}

void hostd_metrics_free(HostdMetrics *m)
{
    if (!m)
        return;
    if (m->listener) {
        hostd_serve_gate_unlisten(m->gate, HOSTD_SURFACE_METRICS);
        g_socket_close(m->listener, NULL);
        g_object_unref(m->listener);
    }
    while (m->scrapes)
        scrape_free(m->scrapes->data);
    g_free(m->ladder);
    g_free(m);
}
