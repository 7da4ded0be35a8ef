/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * report.c: the reports hostd serves (docs/hostd.md, "Reports"), as JSON.
 *
 * Live, requests are accounted when the join emits them (a hold time after
 * they complete), so windows are read at now; each disk says how current
 * it is (latest_ns: the newest completion accounted).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "hostd.h"
#include "json-members.h"

#include "ingest/agent-conn.h"
#include "vms/disk-record.h"
#include "span-export.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static int64_t mono_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

/* The time reports are read at. Offline: the latest request seen. */
static uint64_t report_now(Hostd *h)
{
    if (h->offline_dir)
        return h->model->latest_ns + 2 * HOSTD_NS_PER_SEC;
    return mono_ns();
}

static gboolean parse_window(const char *name, HostdStatsWindow *w,
                             GError **err)
{
    if (g_str_equal(name, "1s"))
        *w = HOSTD_STATS_WINDOW_1S;
    else if (g_str_equal(name, "1m"))
        *w = HOSTD_STATS_WINDOW_1M;
    else if (g_str_equal(name, "1h") || g_str_equal(name, "all"))
        *w = HOSTD_STATS_WINDOW_1H;
    else {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "unknown window '%s' (1s, 1m or 1h)", name);
        return FALSE;
    }
    return TRUE;
}

/* A phase's distribution. Its count is of the requests that passed through
 * it, which for some phases (backend, device) is not every request. With
 * @buckets the occupied buckets too, [upper bound ns, count]. */
static void add_phase(JsonBuilder *b, enum blkin_phase p,
                      const HostdLatencyHist *hist, bool buckets)
{
    json_builder_begin_object(b);
    hostd_json_add_str(b, "phase", blkin_phase_name(p));
    hostd_json_add_int(b, "count", hostd_latency_hist_count(hist));
    hostd_json_add_int(b, "sum_ns", hostd_latency_hist_sum(hist));
    if (buckets) {
        HostdLatencyHistIter it;
        HostdLatencyBucket bk;

        json_builder_set_member_name(b, "buckets");
        json_builder_begin_array(b);
        hostd_latency_hist_iter_init(&it, hist);
        while (hostd_latency_hist_iter_next(&it, &bk)) {
            json_builder_begin_array(b);
            json_builder_add_int_value(b, (gint64)bk.upper);
            json_builder_add_int_value(b, (gint64)bk.count);
            json_builder_end_array(b);
        }
        json_builder_end_array(b);
    }
    hostd_json_add_int(b, "p50_ns", hostd_latency_hist_quantile(hist, 0.50));
    hostd_json_add_int(b, "p90_ns", hostd_latency_hist_quantile(hist, 0.90));
    hostd_json_add_int(b, "p99_ns", hostd_latency_hist_quantile(hist, 0.99));
    hostd_json_add_int(b, "p999_ns", hostd_latency_hist_quantile(hist, 0.999));
    hostd_json_add_int(b, "max_ns", hostd_latency_hist_max(hist));
    hostd_json_add_int(b, "mean_ns",
                       hostd_latency_hist_count(hist)
                           ? hostd_latency_hist_sum(hist) /
                                 hostd_latency_hist_count(hist)
                           : 0);
    json_builder_end_object(b);
}

static void add_clock(JsonBuilder *b, HostdVm *vm, const HostdJoin *join)
{
    const HostdClockCorrection *corr = hostd_join_correction(join);
    struct blkin_clock_estimate est;

    json_builder_set_member_name(b, "clock");
    if (!hostd_agent_conn_clock(vm->agent, &est)) {
        json_builder_add_null_value(b);
        return;
    }
    json_builder_begin_object(b);
    hostd_json_add_int(b, "offset_ns", est.offset_ns);
    hostd_json_add_int(b, "bound_ns", est.bound_ns);
    hostd_json_add_int(b, "best_rtt_ns", est.best_rtt_ns);
    hostd_json_add_int(b, "samples", est.samples);
    if (est.drift_valid) {
        json_builder_set_member_name(b, "drift_ppb");
        json_builder_add_double_value(b, est.drift_ppb);
    }
    /* What causality narrowed it to (join.h); null when it could not. */
    json_builder_set_member_name(b, "causal");
    if (corr->valid) {
        json_builder_begin_object(b);
        hostd_json_add_int(b, "correction_ns", corr->offset_ns);
        hostd_json_add_int(b, "bound_ns", (corr->hi_ns - corr->lo_ns) / 2);
        json_builder_end_object(b);
    } else {
        json_builder_add_null_value(b);
    }
    hostd_json_add_int(b, "causal_inconsistent", corr->inconsistent);
    json_builder_end_object(b);
}

/*
 * A disk another node serves: the server-side filter it is joined with,
 * and that node's clock relative to this one as the joined pairs bound it
 * (remote-join.h), shown rather than hidden. null for local disks.
 */
static void add_remote(JsonBuilder *b, const HostdDisk *d)
{
    const HostdRemoteClock *clk;
    const HostdRemoteCounters *rc;

    json_builder_set_member_name(b, "remote");
    if (!d->remote) {
        json_builder_add_null_value(b);
        return;
    }
    clk = hostd_remote_join_clock(d->remote);
    rc = hostd_remote_join_counters(d->remote);
    json_builder_begin_object(b);
    hostd_json_add_str(b, "server_filter_id", d->remote_id);
    hostd_json_add_int(b, "trace_input", d->remote_source);
    json_builder_set_member_name(b, "clock");
    if (clk->valid) {
        json_builder_begin_object(b);
        hostd_json_add_int(b, "offset_ns", clk->offset_ns);
        hostd_json_add_int(b, "bound_ns", (clk->hi_ns - clk->lo_ns) / 2);
        hostd_json_add_int(b, "resets", clk->resets);
        json_builder_end_object(b);
    } else {
        json_builder_add_null_value(b);
    }
    hostd_json_add_int(b, "matched", rc->matched);
    hostd_json_add_int(b, "unmatched_client", rc->unmatched_client);
    hostd_json_add_int(b, "unmatched_server", rc->unmatched_server);
    hostd_json_add_int(b, "overflow", rc->overflow);
    hostd_json_add_int(b, "pending", hostd_remote_join_pending(d->remote));
    json_builder_end_object(b);
}

static void add_hex(JsonBuilder *b, const char *k, uint64_t v)
{
    char id[32];

    g_snprintf(id, sizeof(id), "%016" PRIx64, v);
    hostd_json_add_str(b, k, id);
}

/* Requests in flight now past the filter's hung-ms: what an operator
 * hunting a stuck disk wants first, with the ids to follow them. */
static void add_hung(JsonBuilder *b, const HostdDisk *d)
{
    json_builder_set_member_name(b, "hung");
    json_builder_begin_array(b);
    for (guint i = 0; d->hung && i < d->hung->len; i++) {
        const HostdSpan *s = &g_array_index(d->hung, HostdSpan, i);

        json_builder_begin_object(b);
        add_hex(b, "trace_id", s->trace_id);
        add_hex(b, "span_id", s->span_id);
        hostd_json_add_str(b, "op", blkin_op_name(s->op));
        hostd_json_add_int(b, "offset", s->offset);
        hostd_json_add_int(b, "bytes", s->bytes);
        hostd_json_add_int(b, "start_ns", s->start_ns);
        hostd_json_add_int(b, "age_ns", s->end_ns - s->start_ns);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
}

/* Per op: counts, rates and per-phase percentiles of a rollup. */
static void add_ops(JsonBuilder *b, const HostdStatsRollup *r, bool buckets)
{
    json_builder_set_member_name(b, "ops");
    json_builder_begin_array(b);
    for (int op = 0; op < BLKIN_OP__N; op++) {
        if (!r->requests[op])
            continue;
        json_builder_begin_object(b);
        hostd_json_add_str(b, "op", blkin_op_name(op));
        hostd_json_add_int(b, "count", r->requests[op]);
        hostd_json_add_int(b, "bytes", r->bytes[op]);
        json_builder_set_member_name(b, "iops");
        json_builder_add_double_value(b, hostd_stats_rollup_iops(r, op));
        json_builder_set_member_name(b, "mbps");
        json_builder_add_double_value(
            b, hostd_stats_rollup_bytes_per_sec(r, op) / 1e6);
        json_builder_set_member_name(b, "phases");
        json_builder_begin_array(b);
        /* Total first: it is what an operator reads first. */
        for (int i = 0; i < BLKIN_PHASE__N; i++) {
            enum blkin_phase p = blkin_phase_report_order[i];

            if (r->hist[op][p])
                add_phase(b, p, r->hist[op][p], buckets);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
}

static void add_disk(Hostd *h, JsonBuilder *b, HostdDisk *d, HostdStatsWindow w,
                     uint64_t now, bool buckets)
{
    HostdStatsRollup r = {0};
    const HostdJoinCounters *jc = hostd_join_counters(d->join);

    hostd_disk_stats_window(d->stats, now, w, &r);
    json_builder_begin_object(b);
    hostd_json_add_str(b, "vm", d->vm->name);
    hostd_json_add_str(b, "disk", d->target);
    hostd_json_add_str(b, "serial", d->serial);
    /* A stopped VM lingers (model.h): its report stays readable. */
    hostd_json_add_str(b, "vm_state",
                       d->vm->stopped_ns ? "stopped" : "running");
    if (d->vm->stopped_ns)
        hostd_json_add_int(b, "stopped_ago_ns", mono_ns() - d->vm->stopped_ns);
    hostd_json_add_str(b, "filter_id", d->filter_id);
    /* "virtio-blk": device phases; else the device's type, or why device
     * timing is off (docs/hostd.md, "Phases"); null before the filter
     * said. */
    hostd_json_add_str(b, "device", d->device);
    hostd_json_add_int(b, "latest_ns", d->latest_ns);
    hostd_json_add_int(b, "window_start_ns", r.start_ns);
    hostd_json_add_int(b, "window_end_ns", r.end_ns);

    json_builder_set_member_name(b, "agent");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "connected");
    json_builder_add_boolean_value(b, hostd_agent_conn_connected(d->vm->agent));
    hostd_json_add_int(b, "reconnects",
                       hostd_agent_conn_reconnects(d->vm->agent));
    hostd_json_add_int(b, "waiting_for_clock",
                       hostd_agent_conn_waiting_for_clock(d->vm->agent));
    json_builder_end_object(b);
    add_clock(b, d->vm, d->join);
    add_remote(b, d);
    hostd_report_add_rbd(b, h->model, d);

    HostdAgentCounters ac = hostd_agent_conn_counters(d->vm->agent);

    /* Since hostd started, so nothing lost hides behind a window edge. */
    json_builder_set_member_name(b, "counters");
    json_builder_begin_object(b);
    hostd_json_add_int(b, "guest_records", d->guest_records);
    hostd_json_add_int(b, "spans", d->spans);
    hostd_json_add_int(b, "matched", jc->matched);
    hostd_json_add_int(b, "merged", jc->merged);
    hostd_json_add_int(b, "unmatched_guest", jc->unmatched_guest);
    hostd_json_add_int(b, "unmatched_span", hostd_disk_unmatched_spans(d));
    hostd_json_add_int(b, "pending", hostd_join_pending(d->join));
    hostd_json_add_int(b, "overflow", jc->overflow);
    hostd_json_add_int(b, "scan_limited", jc->scan_limited);
    hostd_json_add_int(b, "agent_drops", ac.agent_drops);
    hostd_json_add_int(b, "agent_gap", hostd_disk_agent_gap(d));
    hostd_json_add_int(b, "agent_lost_at_close", d->agent_lost);
    hostd_json_add_int(b, "agent_invalid", ac.invalid);
    hostd_json_add_int(b, "agent_limit_breaches",
                       hostd_agent_conn_limit_breaches(d->vm->agent));
    hostd_json_add_int(b, "agent_unsent",
                       hostd_agent_conn_unsent(d->vm->agent));
    hostd_json_add_int(b, "foreign_records", ac.foreign_records);
    hostd_json_add_int(b, "lttng_discarded", h->model->lttng_discarded);
    hostd_json_add_int(b, "hung_reports", d->hung_reports);
    json_builder_end_object(b);

    json_builder_set_member_name(b, "window_counters");
    json_builder_begin_object(b);
    for (int c = 0; c < HOSTD_STATS_COUNTER__N; c++)
        hostd_json_add_int(b, hostd_stats_counter_names[c], r.counters[c]);
    json_builder_end_object(b);

    add_hung(b, d);
    add_ops(b, &r, buckets);
    json_builder_end_object(b);
    hostd_stats_rollup_clear(&r);
}

/* Calls @fn for each selected disk; FALSE (with @err) if none matches. */
static gboolean for_disks(Hostd *h, const char *vm_name, const char *target,
                          void (*fn)(Hostd *, HostdDisk *, void *),
                          void *opaque, GError **err)
{
    g_autoptr(GList) names = g_hash_table_get_keys(h->model->vms);

    if (vm_name && !hostd_model_vm(h->model, vm_name)) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no VM '%s'",
                    vm_name);
        return FALSE;
    }
    if (vm_name && target &&
        !hostd_vm_disk(hostd_model_vm(h->model, vm_name), target)) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "VM '%s' has no disk '%s'", vm_name, target);
        return FALSE;
    }
    names = g_list_sort(names, (GCompareFunc)g_strcmp0);
    for (GList *l = names; l; l = l->next) {
        HostdVm *vm = hostd_model_vm(h->model, l->data);

        if (vm_name && !g_str_equal(vm_name, vm->name))
            continue;
        for (guint i = 0; i < vm->disks->len; i++) {
            HostdDisk *d = g_ptr_array_index(vm->disks, i);

            if (!target || g_str_equal(target, d->target))
                fn(h, d, opaque);
        }
    }
    return TRUE;
}

/* What a per-disk builder needs: where to write, which window, when. */
typedef struct WindowCtx {
    JsonBuilder *b;
    HostdStatsWindow w;
    uint64_t now;
    bool buckets; /* report: each phase's buckets too */
} WindowCtx;

typedef void (*PerDiskFn)(Hostd *h, HostdDisk *d, void *opaque);

/* {"ok": true, "window": W, @member: [@fn's output for each disk]} */
static JsonNode *windowed_response(Hostd *h, const char *vm, const char *disk,
                                   const char *window, const char *member,
                                   PerDiskFn fn, bool buckets, GError **err)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    WindowCtx c = {.b = b, .now = report_now(h), .buckets = buckets};

    if (!parse_window(window, &c.w, err))
        return NULL;
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, TRUE);
    hostd_json_add_str(b, "window", window);
    json_builder_set_member_name(b, member);
    json_builder_begin_array(b);
    if (!for_disks(h, vm, disk, fn, &c, err))
        return NULL;
    json_builder_end_array(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static void report_one(Hostd *h, HostdDisk *d, void *opaque)
{
    WindowCtx *c = opaque;

    add_disk(h, c->b, d, c->w, c->now, c->buckets);
}

JsonNode *hostd_report(Hostd *h, const char *vm, const char *disk,
                       const char *window, bool buckets, GError **err)
{
    return windowed_response(h, vm, disk, window, "disks", report_one, buckets,
                             err);
}

/* One request as a timeline: each phase with its start relative to the
 * first timestamp, from the exact (signed) timestamps. */
static void add_request(JsonBuilder *b, const HostdDisk *d,
                        const HostdJoinedRequest *r)
{
    bool guest = r->flags & HOSTD_JR_HAS_GUEST;
    bool span = r->flags & HOSTD_JR_HAS_SPAN;
    int64_t t0 = guest ? (int64_t)(r->guest_queue_ns ? r->guest_queue_ns
                                                     : r->guest_issue_ns)
                       : (int64_t)r->span_start_ns;
    struct {
        const char *name;
        int64_t from, to;
    } ph[BLKIN_PHASE__N];
    int n = 0;
    char id[32];

    if (guest && r->guest_queue_ns)
        ph[n++] = (typeof(ph[0])){blkin_phase_name(BLKIN_PHASE_GUEST_QUEUE),
                                  r->guest_queue_ns, r->guest_issue_ns};
    /* On a virtio-blk disk the host side starts at the device's entry and
     * ends at its completion (QEMU's own accounting), else at the filter. */
    int64_t in =
        r->dev_start_ns ? (int64_t)r->dev_start_ns : (int64_t)r->span_start_ns;
    int64_t out =
        r->dev_end_ns ? (int64_t)r->dev_end_ns : (int64_t)r->span_end_ns;

    if (guest && span)
        ph[n++] = (typeof(ph[0])){
            blkin_phase_name(r->dev_start_ns ? BLKIN_PHASE_GUEST_TO_DEVICE
                                             : BLKIN_PHASE_GUEST_TO_QEMU),
            r->guest_issue_ns, in};
    if (span && r->dev_start_ns)
        ph[n++] = (typeof(ph[0])){blkin_phase_name(BLKIN_PHASE_DEVICE), in,
                                  r->span_start_ns};
    if (span) {
        /* Below QEMU, in order: network, remote service, backend I/O. The
         * network's two halves are shown as one, before the server. */
        static const enum blkin_phase below[] = {
            BLKIN_PHASE_NETWORK,  BLKIN_PHASE_REMOTE,  BLKIN_PHASE_BACKEND,
            BLKIN_PHASE_LIBRBD,   BLKIN_PHASE_NET_OUT, BLKIN_PHASE_OSD_QUEUE,
            BLKIN_PHASE_OSD_EXEC, BLKIN_PHASE_NET_BACK};
        int64_t t = (int64_t)(r->span_end_ns - r->lower_total_ns);

        ph[n++] = (typeof(ph[0])){blkin_phase_name(BLKIN_PHASE_QEMU),
                                  r->span_start_ns, t};
        for (size_t i = 0; i < G_N_ELEMENTS(below); i++) {
            enum blkin_phase p = below[i];
            int64_t len = (int64_t)r->phase_ns[p];

            if (!(r->phase_valid & (1u << p)))
                continue;
            if (p == BLKIN_PHASE_BACKEND)
                len = (int64_t)r->span_end_ns - t;
            ph[n++] = (typeof(ph[0])){blkin_phase_name(p), t, t + len};
            t += len;
        }
    }
    if (span && r->dev_end_ns)
        ph[n++] =
            (typeof(ph[0])){blkin_phase_name(BLKIN_PHASE_DEVICE_COMPLETION),
                            r->span_end_ns, out};
    if (guest && span)
        ph[n++] = (typeof(ph[0])){
            blkin_phase_name(r->dev_end_ns ? BLKIN_PHASE_DEVICE_TO_GUEST
                                           : BLKIN_PHASE_QEMU_TO_GUEST),
            out, r->guest_complete_ns};

    json_builder_begin_object(b);
    hostd_json_add_str(b, "vm", d->vm->name);
    hostd_json_add_str(b, "disk", d->target);
    hostd_json_add_str(b, "op", blkin_op_name(r->op));
    hostd_json_add_int(b, "offset", r->offset);
    hostd_json_add_int(b, "bytes", r->bytes);
    hostd_json_add_int(b, "ret", r->ret);
    hostd_json_add_int(b, "merged", r->merged);
    g_snprintf(id, sizeof(id), "%016" PRIx64, r->trace_id);
    hostd_json_add_str(b, "trace_id", span ? id : NULL);
    g_snprintf(id, sizeof(id), "%016" PRIx64, r->span_id);
    hostd_json_add_str(b, "span_id", span ? id : NULL);
    json_builder_set_member_name(b, "has_guest");
    json_builder_add_boolean_value(b, guest);
    json_builder_set_member_name(b, "has_span");
    json_builder_add_boolean_value(b, span);
    hostd_json_add_int(b, "clock_error_ns", r->clock_error_ns);
    hostd_json_add_int(b, "guest_issue_ns", r->guest_issue_ns);
    hostd_json_add_int(b, "guest_complete_ns", r->guest_complete_ns);
    hostd_json_add_int(b, "span_start_ns", r->span_start_ns);
    hostd_json_add_int(b, "span_end_ns", r->span_end_ns);
    hostd_json_add_int(b, "device_start_ns", r->dev_start_ns);
    hostd_json_add_int(b, "device_end_ns", r->dev_end_ns);
    hostd_json_add_int(b, "total_ns", hostd_joined_request_latency(r));
    json_builder_set_member_name(b, "phases");
    json_builder_begin_array(b);
    for (int i = 0; i < n; i++) {
        json_builder_begin_object(b);
        hostd_json_add_str(b, "phase", ph[i].name);
        hostd_json_add_int(b, "at_ns", ph[i].from - t0);
        hostd_json_add_int(b, "ns", ph[i].to - ph[i].from);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
}

static void tail_one(Hostd *h, HostdDisk *d, void *opaque)
{
    WindowCtx *c = opaque;
    HostdJoinedRequest reqs[HOSTD_TAIL_K];
    size_t n = hostd_tail_capture_get(d->tail, c->now, c->w, reqs,
                                      G_N_ELEMENTS(reqs), NULL, NULL);

    for (size_t i = 0; i < n; i++)
        add_request(c->b, d, &reqs[i]);
}

JsonNode *hostd_report_tail(Hostd *h, const char *vm, const char *disk,
                            const char *window, GError **err)
{
    return windowed_response(h, vm, disk, window, "requests", tail_one, false,
                             err);
}

typedef struct TraceCtx {
    uint64_t id;
    uint64_t now;
    HostdDisk *disk;
    HostdJoinedRequest found;
} TraceCtx;

static void trace_one(Hostd *h, HostdDisk *d, void *opaque)
{
    TraceCtx *c = opaque;
    HostdJoinedRequest reqs[HOSTD_TAIL_K];
    size_t n;

    if (c->disk)
        return;
    n = hostd_tail_capture_get(d->tail, c->now, HOSTD_STATS_WINDOW_1H, reqs,
                               G_N_ELEMENTS(reqs), NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        HostdJoinedRequest *r = &reqs[i];

        if (r->trace_id == c->id) {
            c->disk = d;
            c->found = *r;
            return;
        }
    }
}

static void add_backend_span(JsonBuilder *b, const HostdZipkinSpan *z)
{
    static const struct {
        const char *name;
        size_t off;
    } core[] = {
        {"cs_ns", offsetof(HostdZipkinSpan, cs_ns)},
        {"sr_ns", offsetof(HostdZipkinSpan, sr_ns)},
        {"ss_ns", offsetof(HostdZipkinSpan, ss_ns)},
        {"cr_ns", offsetof(HostdZipkinSpan, cr_ns)},
    };

    json_builder_begin_object(b);
    add_hex(b, "trace_id", z->trace_id);
    add_hex(b, "span_id", z->span_id);
    add_hex(b, "parent_span_id", z->parent_span_id);
    hostd_json_add_str(b, "name", z->name);
    hostd_json_add_str(b, "service", z->service);
    hostd_json_add_str(b, "ip", z->ip);
    hostd_json_add_int(b, "port", z->port);
    hostd_json_add_int(b, "trace_input", z->source);
    json_builder_set_member_name(b, "complete");
    json_builder_add_boolean_value(b, z->complete);
    hostd_json_add_int(b, "start_ns", z->start_ns);
    hostd_json_add_int(b, "end_ns", z->end_ns);
    hostd_json_add_int(b, "duration_ns", z->end_ns - z->start_ns);
    for (size_t i = 0; i < G_N_ELEMENTS(core); i++) {
        uint64_t t = *(const uint64_t *)((const char *)z + core[i].off);

        if (t)
            hostd_json_add_int(b, core[i].name, t);
    }
    hostd_json_add_int(b, "annotations", z->annotations);
    json_builder_end_object(b);
}

JsonNode *hostd_report_trace(Hostd *h, uint64_t trace_id, GError **err)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    TraceCtx c = {.id = trace_id, .now = report_now(h)};

    HostdModel *m = h->model;
    guint backend = 0;

    for_disks(h, NULL, NULL, trace_one, &c, NULL);
    for (guint i = 0; i < m->recent_len; i++)
        backend += m->recent[i].trace_id == trace_id;
    if (!c.disk && !backend) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    "trace %016" PRIx64 " is not among the requests kept "
                    "(the slowest of each disk over the last hour) nor "
                    "the storage services' latest spans",
                    trace_id);
        return NULL;
    }
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_set_member_name(b, "request");
    if (c.disk)
        add_request(b, c.disk, &c.found);
    else
        json_builder_add_null_value(b);
    /* The storage services' spans of the same trace, oldest first. */
    json_builder_set_member_name(b, "backend_spans");
    json_builder_begin_array(b);
    for (guint k = 0; k < m->recent_len; k++) {
        guint i = (m->recent_next + HOSTD_RECENT_BACKEND - m->recent_len + k) %
                  HOSTD_RECENT_BACKEND;

        if (m->recent[i].trace_id == trace_id)
            add_backend_span(b, &m->recent[i]);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

/* Storage services seen in zipkin:* events (docs/backend.md). */
static void add_services(JsonBuilder *b, HostdModel *m)
{
    const HostdZipkinCounters *zc = hostd_zipkin_spans_counters(m->zipkin);
    g_autoptr(GList) names = g_hash_table_get_keys(m->services);

    json_builder_set_member_name(b, "services");
    json_builder_begin_array(b);
    names = g_list_sort(names, (GCompareFunc)strcmp);
    for (GList *l = names; l; l = l->next) {
        const HostdService *sv = g_hash_table_lookup(m->services, l->data);

        json_builder_begin_object(b);
        hostd_json_add_str(b, "service", sv->name);
        hostd_json_add_int(b, "spans", sv->spans);
        hostd_json_add_int(b, "incomplete", sv->incomplete);
        hostd_json_add_int(b, "p50_ns",
                           hostd_latency_hist_quantile(sv->hist, 0.50));
        hostd_json_add_int(b, "p99_ns",
                           hostd_latency_hist_quantile(sv->hist, 0.99));
        hostd_json_add_int(b, "max_ns", hostd_latency_hist_max(sv->hist));
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    hostd_json_add_int(b, "zipkin_events", zc->events);
    hostd_json_add_int(b, "zipkin_open", hostd_zipkin_spans_open(m->zipkin));
    hostd_json_add_int(b, "zipkin_overflow", zc->overflow);
    hostd_json_add_int(b, "services_dropped", m->services_dropped);
}

/* Each node's trace input: whether it is read, and every gap it had. */
static void add_trace_inputs(JsonBuilder *b, Hostd *h)
{
    json_builder_set_member_name(b, "trace_inputs");
    json_builder_begin_array(b);
    for (guint i = 0; h->feeds && i < h->feeds->len; i++) {
        HostdTraceFeed *f = g_ptr_array_index(h->feeds, i);
        HostdTraceFeedStats st;

        hostd_trace_feed_get_stats(f, &st);
        json_builder_begin_object(b);
        hostd_json_add_int(b, "index", hostd_trace_feed_index(f));
        hostd_json_add_str(b, "url", hostd_trace_feed_url(f));
        hostd_json_add_str(b, "state", st.reading ? "reading" : "waiting");
        if (hostd_trace_feed_health(f)) {
            const HostdLiveHealth *lh = hostd_trace_feed_health(f);

            hostd_json_add_int(b, "losses", lh->losses);
            hostd_json_add_int(b, "reconnects", lh->reconnects);
            hostd_json_add_int(b, "down_ns",
                               hostd_live_health_down_ns(lh, mono_ns()));
        }
        hostd_json_add_int(b, "zipkin_events", st.source.zipkin);
        hostd_json_add_int(b, "time_ns", st.time_ns);
        hostd_json_add_int(b, "events", st.source.events);
        hostd_json_add_int(b, "spans", st.source.spans);
        hostd_json_add_int(b, "rejected", st.source.rejected);
        hostd_json_add_int(b, "discarded", st.source.discarded);
        hostd_json_add_int(b, "batches", st.source.batches);
        hostd_json_add_int(b, "batches_lost", st.source.batches_lost);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
}

JsonNode *hostd_report_status(Hostd *h)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    GHashTableIter it;
    gpointer v;
    int64_t disks = 0, connected = 0;

    g_hash_table_iter_init(&it, h->model->vms);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        HostdVm *vm = v;

        disks += vm->disks->len;
        connected += hostd_agent_conn_connected(vm->agent);
    }
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, TRUE);
    hostd_json_add_int(b, "vms", g_hash_table_size(h->model->vms));
    hostd_json_add_int(b, "disks", disks);
    hostd_json_add_int(b, "agents_connected", connected);
    hostd_json_add_str(b, "live", h->live_url);
    /* A live source is open (attached, or attaching); `trace` says whether
     * messages flow. */
    json_builder_set_member_name(b, "trace_connected");
    json_builder_add_boolean_value(
        b, h->feeds && h->feeds->len &&
               hostd_trace_feed_source(g_ptr_array_index(h->feeds, 0)));
    add_trace_inputs(b, h);
    add_services(b, h->model);
    hostd_report_add_ceph(b, h->model);
    if (h->model->live)
        hostd_live_health_json(h->model->live, b, mono_ns());
    if (h->live_url)
        hostd_lttng_keeper_json(h->lttng_keeper, b);
    hostd_json_add_int(b, "lttng_discarded", h->model->lttng_discarded);
    /* "ok", "off" (--no-history) or "down" with the reason. */
    json_builder_set_member_name(b, "history");
    json_builder_begin_object(b);
    hostd_json_add_str(b, "state",
                       h->history        ? "ok"
                       : h->history_path ? "down"
                                         : "off");
    if (h->model->history_error)
        hostd_json_add_str(b, "error", h->model->history_error);
    json_builder_end_object(b);
    hostd_json_add_int(b, "spans_unknown_disk", h->model->spans_unknown_disk);
    hostd_json_add_int(b, "children_pending",
                       hostd_span_tree_size(h->model->children));
    json_builder_set_member_name(b, "export");
    json_builder_begin_array(b);
    for (guint i = 0; h->exporters && i < h->exporters->len; i++) {
        HostdExportStats es;

        hostd_span_export_stats(g_ptr_array_index(h->exporters, i), &es);
        json_builder_begin_object(b);
        hostd_json_add_str(
            b, "format",
            hostd_span_export_name(g_ptr_array_index(h->exporters, i)));
        hostd_json_add_int(b, "queued", es.queued);
        hostd_json_add_int(b, "sent", es.sent);
        hostd_json_add_int(b, "dropped", es.dropped);
        hostd_json_add_int(b, "failures", es.failures);
        hostd_json_add_int(b, "rejected", es.rejected);
        hostd_json_add_int(b, "pending", es.pending);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    hostd_json_add_int(b, "uptime_s",
                       (mono_ns() - h->model->started_ns) /
                           (int64_t)HOSTD_NS_PER_SEC);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

/*
 * The per-minute history of a VM's disks (or one disk) over the last
 * @minutes, merged: survives hostd restarts, counts nothing twice
 * (history-store.h). Disks are named by VM and target in the store, so the
 * VM need not be registered any more.
 */
JsonNode *hostd_report_history(Hostd *h, const char *vm, const char *disk,
                               int64_t minutes, GError **err)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_auto(GStrv) names = NULL;
    g_autofree char *prefix = g_strdup_printf("%s/", vm);
    int64_t now_minute = g_get_real_time() / G_USEC_PER_SEC / 60;

    if (!h->history && h->history_path) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED,
                    "hostd's history cannot be written now: %s",
                    h->model->history_error);
        return NULL;
    }
    if (!h->history) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                    "hostd keeps no history (--no-history)");
        return NULL;
    }
    names = hostd_history_disks(h->history, err);
    if (!names)
        return NULL;
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, TRUE);
    hostd_json_add_int(b, "minutes", minutes);
    json_builder_set_member_name(b, "disks");
    json_builder_begin_array(b);
    for (char **n = names; *n; n++) {
        HostdStatsRollup r = {0};
        uint64_t rows = 0;

        if (!g_str_has_prefix(*n, prefix) ||
            (disk && !g_str_equal(*n + strlen(prefix), disk)))
            continue;
        if (!hostd_history_query(h->history, *n, now_minute - minutes + 1,
                                 now_minute + 1, &r, &rows, err))
            return NULL;
        json_builder_begin_object(b);
        hostd_json_add_str(b, "vm", vm);
        hostd_json_add_str(b, "disk", *n + strlen(prefix));
        hostd_json_add_int(b, "rows", rows);
        json_builder_set_member_name(b, "counters");
        json_builder_begin_object(b);
        for (int c = 0; c < HOSTD_STATS_COUNTER__N; c++)
            hostd_json_add_int(b, hostd_stats_counter_names[c], r.counters[c]);
        json_builder_end_object(b);
        add_ops(b, &r, false);
        json_builder_end_object(b);
        hostd_stats_rollup_clear(&r);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

/* ---- pieces other answers build on (the view, view.c) ---- */

uint64_t hostd_report_now(Hostd *h)
{
    return report_now(h);
}

gboolean hostd_report_parse_window(const char *name, HostdStatsWindow *w,
                                   GError **err)
{
    return parse_window(name, w, err);
}

void hostd_report_add_disk(Hostd *h, JsonBuilder *b, HostdDisk *d,
                           HostdStatsWindow w, uint64_t now)
{
    add_disk(h, b, d, w, now, false);
}

void hostd_report_add_request(JsonBuilder *b, const HostdDisk *d,
                              const HostdJoinedRequest *r)
{
    add_request(b, d, r);
}
