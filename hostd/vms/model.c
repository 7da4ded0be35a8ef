/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * model.c: VMs and their disks: registration, lifecycle (a stopped VM
 * lingers), what each disk does with its joined requests, and the agent
 * channels' sink (model.h). Trace input is routed to them by route.c.
 */
#define G_LOG_DOMAIN "blkin-hostd-vms"

#include "model.h"
#include "model-priv.h"

#include "ingest/agent-conn.h"
#include "disk-record.h"

#include <gio/gio.h>
#include <string.h>

/* The lag windows: the current one and the one before it. */
#define HOSTD_LAG_WINDOW_NS (10 * (int64_t)HOSTD_NS_PER_SEC)
/* Beyond the lag: the guest clock estimate's own error, and then some. */
#define HOSTD_LAG_MARGIN_NS ((int64_t)1000000)

static void vm_note_lag(HostdVm *vm, const HostdJoinedRequest *r)
{
    int64_t w = (int64_t)r->guest_complete_ns / HOSTD_LAG_WINDOW_NS;
    uint64_t lag;

    if (!(r->flags & HOSTD_JR_HAS_GUEST) || !(r->flags & HOSTD_JR_HAS_SPAN) ||
        r->guest_complete_ns <= r->span_end_ns)
        return;
    lag = r->guest_complete_ns - r->span_end_ns;
    /* Disks emit in their own order: a request of the window before still
     * counts there; older ones, and time going back, move nothing. */
    if (w == vm->lag_window - 1) {
        vm->lag_max_ns[1] = MAX(vm->lag_max_ns[1], lag);
        return;
    }
    if (w < vm->lag_window)
        return;
    if (w > vm->lag_window) {
        vm->lag_max_ns[1] = w == vm->lag_window + 1 ? vm->lag_max_ns[0] : 0;
        vm->lag_max_ns[0] = 0;
        vm->lag_window = w;
    }
    vm->lag_max_ns[0] = MAX(vm->lag_max_ns[0], lag);
}

static int64_t vm_lag_ns(const HostdVm *vm)
{
    return (int64_t)MAX(vm->lag_max_ns[0], vm->lag_max_ns[1]) +
           HOSTD_LAG_MARGIN_NS;
}

static void disk_emit(void *opaque, const HostdJoinedRequest *req)
{
    HostdDisk *d = opaque;
    uint64_t end = hostd_joined_request_end_ns(req);
    HostdJoinedRequest lost;
    const HostdJoinedRequest *r = req;
    int64_t after, until;

    /* A span with no guest record whose guest completion would come after
     * the last record the agent delivered before its channel closed: the
     * guest's record was lost with that QEMU (it exited while hostd was not
     * reading), a gap in the agent's stream rather than a span the guest
     * never issued -- also when it joins only after the channel is
     * connected again to the next QEMU (a reboot). Its guest completion is
     * not known: its span's end plus at most the lag seen lately (with
     * requests in flight, lost ones can end before the last delivered
     * record completed in the guest). */
    vm_note_lag(d->vm, req);
    if ((req->flags & HOSTD_JR_UNMATCHED_SPAN) &&
        hostd_agent_conn_lost_after(d->vm->agent, &after, &until) &&
        (int64_t)req->span_end_ns + vm_lag_ns(d->vm) > after &&
        (int64_t)req->span_start_ns <= until) {
        lost = *req;
        lost.flags =
            (lost.flags & ~HOSTD_JR_UNMATCHED_SPAN) | HOSTD_JR_AGENT_GAP;
        r = &lost;
        d->agent_lost++;
    }

    if (d->rbd.seen && (r->flags & HOSTD_JR_HAS_GUEST)) {
        d->rbd.guest++;
        d->rbd.guest_joined += !!(r->flags & HOSTD_JR_OSD);
    }
    d->vm->model->latest_ns = MAX(d->vm->model->latest_ns, end);
    d->latest_ns = MAX(d->latest_ns, end);
    hostd_disk_record(
        d, r,
        d->vm->model->offline ? end : (uint64_t)g_get_monotonic_time() * 1000);
}

/* Minutes end on wall-clock minutes, the history store's keys: the
 * statistics' clock is the monotonic one shifted by @wall_offset_ns
 * (CLOCK_REALTIME - CLOCK_MONOTONIC) modulo a minute. */
static uint64_t minute_align_ns(int64_t wall_offset_ns)
{
    int64_t m = 60 * (int64_t)HOSTD_NS_PER_SEC;

    return ((wall_offset_ns % m) + m) % m;
}

static void disk_minute_closed(void *opaque, const HostdStatsRollup *minute)
{
    HostdDisk *d = opaque;
    g_autoptr(GError) err = NULL;

    /* The view's heatmap keeps its own summary of the minute (timeline.h). */
    hostd_timeline_minute(d->timeline, minute);
    if (!d->vm || !d->vm->model->history)
        return;
    HostdStatsRollup wall = *minute; /* shallow: histograms stay borrowed */
    int64_t delta = g_get_real_time() * 1000 - g_get_monotonic_time() * 1000;
    g_autofree char *name = g_strdup_printf("%s/%s", d->vm->name, d->target);
    HostdHistoryRow row = {.disk = name, .rollup = &wall};

    /* The store keys minutes on the wall clock. A minute's start is on a
     * wall-clock minute only as of minute_align_ns(): this delta, read
     * again, may be a microsecond (more, if preempted between the two
     * reads) less, and the start would fall in the minute before -- the
     * same requests then in two rows. The interval's middle is well
     * inside its minute. */
    wall.start_ns = minute->start_ns + delta;
    wall.end_ns = minute->end_ns + delta;
    row.minute = (wall.start_ns + (wall.end_ns - wall.start_ns) / 2) /
                 (60 * HOSTD_NS_PER_SEC);
    if (!hostd_history_write(d->vm->model->history, &row, 1, &err))
        g_warning("history: %s: %s", name, err->message);
}

static void disk_free(gpointer p)
{
    HostdDisk *d = p;

    hostd_remote_join_free(d->remote);
    if (d->hung)
        g_array_unref(d->hung);
    g_free(d->remote_id);
    hostd_join_free(d->join);
    hostd_disk_stats_free(d->stats);
    hostd_tail_capture_free(d->tail);
    hostd_timeline_free(d->timeline);
    for (int op = 0; op < BLKIN_OP__N; op++)
        for (int p = 0; p < BLKIN_PHASE__N; p++)
            hostd_latency_hist_free(d->cum[op][p]);
    g_free(d->target);
    g_free(d->serial);
    g_free(d->filter_id);
    g_free(d->device);
    g_free(d);
}

/* The VM's agent channel delivers here (HostdAgentSink). */
static void *agent_disk(void *opaque, const char *serial)
{
    return hostd_vm_disk_by_serial(opaque, serial);
}

static void agent_request(void *opaque, void *disk, const HostdGuestReq *g)
{
    HostdVm *vm = opaque;

    hostd_model_guest(vm->model, disk, g);
}

static size_t agent_pending(void *opaque)
{
    HostdVm *vm = opaque;
    size_t n = 0;

    for (guint i = 0; i < vm->disks->len; i++)
        n += hostd_join_pending(
            ((HostdDisk *)g_ptr_array_index(vm->disks, i))->join);
    return n;
}

static size_t agent_pending_total(void *opaque, unsigned *vms, size_t *budget)
{
    HostdVm *vm = opaque;
    GHashTableIter it;
    gpointer v;
    size_t total = 0;

    *vms = 0;
    *budget = vm->model->pending_budget;
    g_hash_table_iter_init(&it, vm->model->vms);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        size_t n = agent_pending(v);

        total += n;
        *vms += n > 0;
    }
    return total;
}

static const HostdAgentSink agent_sink = {
    .disk = agent_disk,
    .request = agent_request,
    .pending = agent_pending,
    .pending_total = agent_pending_total,
};

static void vm_free(gpointer p)
{
    HostdVm *vm = p;

    hostd_agent_conn_free(vm->agent);
    g_ptr_array_unref(vm->disks);
    g_free(vm->name);
    g_free(vm->agent_socket);
    g_free(vm);
}

static void service_free(gpointer p)
{
    HostdService *sv = p;

    hostd_latency_hist_free(sv->hist);
    g_free(sv->name);
    g_free(sv);
}

HostdModel *hostd_model_new(void)
{
    HostdModel *m = g_new0(HostdModel, 1);

    m->vms = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, vm_free);
    m->by_filter = g_hash_table_new(g_str_hash, g_str_equal);
    m->by_remote = g_hash_table_new(g_str_hash, g_str_equal);
    m->qemu_disks =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    m->children = hostd_span_tree_new();
    m->early = g_array_new(FALSE, FALSE, sizeof(HostdSpan));
    m->dev_lists =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    m->unmapped = g_array_new(FALSE, FALSE, sizeof(HostdSpan));
    m->unmappable =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    m->zipkin = hostd_zipkin_spans_new(hostd_route_zipkin_emit, m);
    m->services =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, service_free);
    m->started_ns = g_get_monotonic_time() * 1000;
    m->pending_budget = HOSTD_AGENT_PENDING_NODE;
    m->linger_ns = HOSTD_LINGER_DEFAULT_S * HOSTD_NS_PER_SEC;
    hostd_model_rbd_init(m);
    return m;
}

void hostd_model_free(HostdModel *m)
{
    if (!m)
        return;
    hostd_model_rbd_free(m);
    g_hash_table_unref(m->by_filter);
    g_hash_table_unref(m->by_remote);
    g_array_unref(m->early);
    g_hash_table_unref(m->dev_lists);
    g_array_unref(m->unmapped);
    g_hash_table_unref(m->unmappable);
    hostd_zipkin_spans_free(m->zipkin);
    g_free(m->recent);
    g_hash_table_unref(m->services);
    g_hash_table_unref(m->vms);
    g_hash_table_unref(m->qemu_disks);
    hostd_span_tree_free(m->children);
    g_free(m->history_error);
    g_free(m);
}

HostdVm *hostd_model_vm(HostdModel *m, const char *name)
{
    return g_hash_table_lookup(m->vms, name);
}

HostdDisk *hostd_vm_disk(HostdVm *vm, const char *target)
{
    for (guint i = 0; i < vm->disks->len; i++) {
        HostdDisk *d = g_ptr_array_index(vm->disks, i);

        if (g_str_equal(d->target, target))
            return d;
    }
    return NULL;
}

HostdDisk *hostd_vm_disk_by_serial(HostdVm *vm, const char *serial)
{
    for (guint i = 0; i < vm->disks->len; i++) {
        HostdDisk *d = g_ptr_array_index(vm->disks, i);

        if (d->serial && g_str_equal(d->serial, serial))
            return d;
    }
    return NULL;
}

static gboolean valid_name(const char *s)
{
    if (!s || !*s || strlen(s) > 255)
        return FALSE;
    for (; *s; s++)
        if (!g_ascii_isgraph(*s))
            return FALSE;
    return TRUE;
}

static gboolean same_vm(const HostdVm *vm, const char *agent_socket,
                        const GPtrArray *disks)
{
    if (g_strcmp0(vm->agent_socket,
                  agent_socket && *agent_socket ? agent_socket : NULL) ||
        vm->disks->len != disks->len)
        return FALSE;
    for (guint i = 0; i < disks->len; i++) {
        const HostdDisk *a = g_ptr_array_index(vm->disks, i);
        const HostdDisk *b = g_ptr_array_index(disks, i);

        if (g_strcmp0(a->target, b->target) ||
            g_strcmp0(a->serial, b->serial) ||
            g_strcmp0(a->filter_id, b->filter_id) ||
            g_strcmp0(a->remote_id, b->remote_id))
            return FALSE;
    }
    return TRUE;
}

/* Spans that came before their disk was registered, now that more are. */
static void replay_early(HostdModel *m)
{
    g_autoptr(GArray) early = m->early;

    m->early = g_array_new(FALSE, FALSE, sizeof(HostdSpan));
    for (guint i = 0; i < early->len; i++)
        hostd_route_span(m, &g_array_index(early, HostdSpan, i));
}

HostdVm *hostd_model_add_vm(HostdModel *m, const char *name,
                            const char *agent_socket, GPtrArray *specs,
                            GError **err)
{
    g_autoptr(GPtrArray) disks = g_ptr_array_new_with_free_func(disk_free);
    uint64_t t0 = m->offline ? 0 : g_get_monotonic_time() * 1000;
    /* Read once: every disk's windows map onto the wall clock the same way,
     * and what the exporters write (HostdDisk.wall_offset_ns) with them. */
    int64_t wall_offset =
        g_get_real_time() * 1000 - g_get_monotonic_time() * 1000;
    uint64_t align = minute_align_ns(wall_offset);
    HostdVm *vm;

    if (!valid_name(name)) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "invalid VM name");
        return NULL;
    }
    for (guint i = 0; i < specs->len; i++) {
        const HostdDiskSpec *spec = g_ptr_array_index(specs, i);
        HostdDisk *d, *other;

        if (spec->remote_id) {
            other = g_hash_table_lookup(m->by_remote, spec->remote_id);
            if ((other && !g_str_equal(other->vm->name, name)) ||
                g_hash_table_lookup(m->by_filter, spec->remote_id)) {
                g_set_error(err, G_IO_ERROR, G_IO_ERROR_EXISTS,
                            "remote filter id '%s' is already in use",
                            spec->remote_id);
                return NULL;
            }
        }
        other = g_hash_table_lookup(m->by_filter, spec->filter_id);
        /* A stopped VM's disk gives way to a running one's. */
        if (other && other->vm->stopped_ns &&
            !g_str_equal(other->vm->name, name)) {
            g_message("VM %s (stopped) gives filter id '%s' to VM %s",
                      other->vm->name, spec->filter_id, name);
            hostd_model_remove_vm(m, other->vm->name);
            other = NULL;
        }
        if (other && !g_str_equal(other->vm->name, name)) {
            g_set_error(err, G_IO_ERROR, G_IO_ERROR_EXISTS,
                        "filter id '%s' already belongs to VM '%s'",
                        spec->filter_id, other->vm->name);
            return NULL;
        }
        d = g_new0(HostdDisk, 1);
        d->target = g_strdup(spec->target);
        d->serial = g_strdup(spec->serial);
        d->filter_id = g_strdup(spec->filter_id);
        d->hung = g_array_new(FALSE, FALSE, sizeof(HostdSpan));
        if (spec->remote_id) {
            d->remote_id = g_strdup(spec->remote_id);
            d->remote = hostd_remote_join_new(hostd_route_remote_emit, d);
        }
        d->join = hostd_join_new(disk_emit, d);
        d->wall_offset_ns = wall_offset;
        d->stats = hostd_disk_stats_new(t0, align, disk_minute_closed, d);
        d->tail = hostd_tail_capture_new(HOSTD_TAIL_K, t0, align);
        d->timeline = hostd_timeline_new(align);
        g_ptr_array_add(disks, d);
    }

    /* Registering the same VM again (a hook firing twice, a restarted
     * registrar) keeps its statistics and channel. */
    vm = hostd_model_vm(m, name);
    if (vm && same_vm(vm, agent_socket, disks)) {
        vm->stopped_ns = 0; /* a reboot, or a hook firing twice */
        return vm;
    }
    hostd_model_remove_vm(m, name);
    vm = g_new0(HostdVm, 1);
    vm->model = m;
    vm->name = g_strdup(name);
    vm->agent_socket =
        agent_socket && *agent_socket ? g_strdup(agent_socket) : NULL;
    vm->disks = g_steal_pointer(&disks);
    for (guint i = 0; i < vm->disks->len; i++) {
        HostdDisk *d = g_ptr_array_index(vm->disks, i);

        d->vm = vm;
        g_hash_table_insert(m->by_filter, d->filter_id, d);
        if (d->remote_id)
            g_hash_table_insert(m->by_remote, d->remote_id, d);
    }
    g_hash_table_insert(m->vms, vm->name, vm);
    if (agent_socket && *agent_socket)
        vm->agent =
            hostd_agent_conn_new(vm->name, vm->agent_socket, &agent_sink, vm);
    replay_early(m);
    return vm;
}

gboolean hostd_model_stop_vm(HostdModel *m, const char *name)
{
    HostdVm *vm = g_hash_table_lookup(m->vms, name);

    if (!vm)
        return FALSE;
    if (m->offline || m->linger_ns <= 0)
        return hostd_model_remove_vm(m, name);
    if (!vm->stopped_ns)
        vm->stopped_ns = g_get_monotonic_time() * 1000;
    return TRUE;
}

/* Stopped VMs whose linger is over: their last minute to the history, then
 * they go. */
void hostd_model_expire_stopped(HostdModel *m, int64_t now_ns)
{
    g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, m->vms);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        HostdVm *vm = v;

        if (!vm->stopped_ns || now_ns - vm->stopped_ns < m->linger_ns)
            continue;
        for (guint i = 0; i < vm->disks->len; i++)
            hostd_disk_stats_flush(
                ((HostdDisk *)g_ptr_array_index(vm->disks, i))->stats,
                (uint64_t)now_ns);
        g_ptr_array_add(gone, g_strdup(vm->name));
    }
    for (guint i = 0; i < gone->len; i++) {
        g_message("VM %s: stopped %" G_GINT64_FORMAT " s ago, forgotten",
                  (char *)gone->pdata[i], m->linger_ns / 1000000000);
        hostd_model_remove_vm(m, gone->pdata[i]);
    }
}

gboolean hostd_model_remove_vm(HostdModel *m, const char *name)
{
    HostdVm *vm = g_hash_table_lookup(m->vms, name);

    if (!vm)
        return FALSE;
    for (guint i = 0; i < vm->disks->len; i++) {
        HostdDisk *d = g_ptr_array_index(vm->disks, i);

        if (g_hash_table_lookup(m->by_filter, d->filter_id) == d)
            g_hash_table_remove(m->by_filter, d->filter_id);
        if (d->remote_id &&
            g_hash_table_lookup(m->by_remote, d->remote_id) == d)
            g_hash_table_remove(m->by_remote, d->remote_id);
        hostd_rbd_join_forget(m->rbd, d);
    }
    return g_hash_table_remove(m->vms, name);
}

void hostd_model_guest(HostdModel *m, HostdDisk *d, const HostdGuestReq *g)
{
    d->guest_records++;
    if (m->capture)
        fprintf(m->capture,
                "G %s %s %s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                " %d %" G_GUINT64_FORMAT "\n",
                d->vm->name, d->target, blkin_op_name(g->op), g->offset,
                g->bytes, g->queue_ns, g->issue_ns, g->complete_ns, g->error,
                g->bound_ns);
    hostd_join_add_guest(d->join, g);
}

gboolean hostd_model_replay_line(HostdModel *m, const char *line)
{
    char vm_name[256], target[256], op_name[32];
    int op;
    HostdGuestReq g = {0};
    HostdVm *vm;
    HostdDisk *d;

    if (sscanf(line,
               "G %255s %255s %31s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
               " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
               " %d %" G_GUINT64_FORMAT,
               vm_name, target, op_name, &g.offset, &g.bytes, &g.queue_ns,
               &g.issue_ns, &g.complete_ns, &g.error, &g.bound_ns) < 9 ||
        (op = blkin_op_from_name(op_name)) < 0 || op >= BLKIN_OP__N)
        return FALSE;
    g.op = op;
    vm = hostd_model_vm(m, vm_name);
    d = vm ? hostd_vm_disk(vm, target) : NULL;
    if (d)
        hostd_model_guest(m, d, &g);
    return TRUE;
}

/* ---- the trace sink: feeds deliver here -------------------------------- */

uint64_t hostd_disk_unmatched_spans(const HostdDisk *d)
{
    uint64_t n = hostd_join_counters(d->join)->unmatched_span;

    return n > d->agent_lost ? n - d->agent_lost : 0;
}

uint64_t hostd_disk_agent_gap(const HostdDisk *d)
{
    return hostd_agent_conn_counters(d->vm->agent).agent_gap + d->agent_lost;
}
