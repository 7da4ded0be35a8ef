/*
 * model.c: VMs, disks and the routing of trace input to them (model.h).
 */
#include "model.h"

#include "agent-conn.h"
#include "disk-record.h"

#include <gio/gio.h>
#include <string.h>

/* Lower spans whose parent did not come within this long are dropped. */
#define HOSTD_CHILD_KEEP_NS (10LL * 1000000000LL)

/* Guest requests can come: from an agent channel, or from a replay. */
static bool hostd_vm_expects_guest(const HostdVm *vm)
{
    return vm->agent || vm->model->offline;
}

/* Filter disk indexes are per process, pids per node: key by all three.
 * pid_max is at most 2^22 and a process opens far fewer than 2^24 nodes. */
static uint64_t qemu_disk_key(uint16_t source, uint32_t vpid, uint32_t disk)
{
    return (uint64_t)(source & 0xff) << 56 | (uint64_t)vpid << 24 |
           (disk & 0xffffff);
}

/* Tolerance between two blkin spans of one request (no guest clock). */
#define HOSTD_REMOTE_TOL_NS (100LL * 1000)

static void disk_emit(void *opaque, const HostdJoined *j)
{
    HostdDisk *d = opaque;

    uint64_t end = hostd_joined_end_ns(j);

    d->vm->model->latest_ns = MAX(d->vm->model->latest_ns, end);
    d->latest_ns = MAX(d->latest_ns, end);
    hostd_disk_record(
        d, j,
        d->vm->model->offline ? end : (uint64_t)g_get_monotonic_time() * 1000);
}

/* Minutes end on wall-clock minutes, the history store's keys. */
static uint64_t minute_align_ns(void)
{
    int64_t delta = g_get_real_time() * 1000 - g_get_monotonic_time() * 1000;
    int64_t m = 60 * (int64_t)HOSTD_NS_PER_SEC;

    return ((delta % m) + m) % m;
}

static void disk_minute_closed(void *opaque, const HostdStatsRollup *minute)
{
    HostdDisk *d = opaque;
    g_autoptr(GError) err = NULL;

    if (!d->vm || !d->vm->model->history)
        return;
    HostdStatsRollup wall = *minute; /* shallow: histograms stay borrowed */
    int64_t delta = g_get_real_time() * 1000 - g_get_monotonic_time() * 1000;
    g_autofree char *name = g_strdup_printf("%s/%s", d->vm->name, d->target);
    HostdHistoryRow row = {.disk = name, .rollup = &wall};

    /* The store keys minutes on the wall clock. */
    wall.start_ns = minute->start_ns + delta;
    wall.end_ns = minute->end_ns + delta;
    row.minute = wall.start_ns / (60 * HOSTD_NS_PER_SEC);
    if (!hostd_history_write(d->vm->model->history, &row, 1, &err))
        g_warning("history: %s: %s", name, err->message);
}

/* A client span joined (or not) to the server's: on to the main join. */
static void remote_emit(void *opaque, const HostdRemoteMatch *r)
{
    HostdDisk *d = opaque;

    if (r->server)
        d->remote_spans++;
    if (hostd_vm_expects_guest(d->vm))
        hostd_join_add_span(d->join, r->top, &r->below);
    else
        hostd_join_span_alone(d->join, r->top, &r->below);
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
    for (int op = 0; op < HOSTD_STATS_OP__N; op++)
        for (int p = 0; p < HOSTD_STATS_PHASE__N; p++)
            hostd_latency_hist_free(d->cum[op][p]);
    g_free(d->target);
    g_free(d->serial);
    g_free(d->filter_id);
    g_free(d);
}

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

/* A storage service's span is complete (or timed out): it is a lower span
 * of its parent -- a filter span that passed its context on, or another
 * service's -- and is kept for `blkin trace`. */
static void zipkin_emit(void *opaque, const HostdZipkinSpan *zs)
{
    HostdModel *m = opaque;
    HostdService *sv = g_hash_table_lookup(m->services, zs->service);

    /* Allocated at the first service span: most nodes have none. */
    if (!m->recent)
        m->recent = g_new(HostdZipkinSpan, HOSTD_RECENT_BACKEND);
    m->recent[m->recent_next] = *zs;
    m->recent_next = (m->recent_next + 1) % HOSTD_RECENT_BACKEND;
    m->recent_len = MIN(m->recent_len + 1, HOSTD_RECENT_BACKEND);
    if (!sv && g_hash_table_size(m->services) < HOSTD_MAX_SERVICES) {
        sv = g_new0(HostdService, 1);
        sv->name = g_strdup(zs->service);
        sv->hist = hostd_latency_hist_new();
        g_hash_table_insert(m->services, sv->name, sv);
    }
    if (sv) {
        if (zs->complete) {
            sv->spans++;
            hostd_latency_hist_add(sv->hist, zs->end_ns - zs->start_ns);
        } else {
            sv->incomplete++;
        }
    } else {
        m->services_dropped++;
    }
    if (zs->parent_span_id) {
        HostdSpan child = {
            .trace_id = zs->trace_id,
            .span_id = zs->span_id,
            .parent_span_id = zs->parent_span_id,
            .start_ns = zs->start_ns,
            .end_ns = zs->end_ns,
            .source = zs->source,
        };

        hostd_span_tree_add(m->children, &child);
    }
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
    m->unmapped = g_array_new(FALSE, FALSE, sizeof(HostdSpan));
    m->unmappable =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    m->zipkin = hostd_zipkin_spans_new(zipkin_emit, m);
    m->services =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, service_free);
    m->started_ns = g_get_monotonic_time() * 1000;
    return m;
}

void hostd_model_free(HostdModel *m)
{
    if (!m)
        return;
    g_hash_table_unref(m->by_filter);
    g_hash_table_unref(m->by_remote);
    g_array_unref(m->early);
    g_array_unref(m->unmapped);
    g_hash_table_unref(m->unmappable);
    hostd_zipkin_spans_free(m->zipkin);
    g_free(m->recent);
    g_hash_table_unref(m->services);
    g_hash_table_unref(m->vms);
    g_hash_table_unref(m->qemu_disks);
    hostd_span_tree_free(m->children);
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

static void model_span_at(HostdModel *m, const HostdSpan *s);

/* Spans that came before their disk was registered, now that more are. */
static void replay_early(HostdModel *m)
{
    g_autoptr(GArray) early = m->early;

    m->early = g_array_new(FALSE, FALSE, sizeof(HostdSpan));
    for (guint i = 0; i < early->len; i++)
        model_span_at(m, &g_array_index(early, HostdSpan, i));
}

HostdVm *hostd_model_add_vm(HostdModel *m, const char *name,
                            const char *agent_socket, char **disk_specs,
                            GError **err)
{
    g_autoptr(GPtrArray) disks = g_ptr_array_new_with_free_func(disk_free);
    uint64_t t0 = m->offline ? 0 : g_get_monotonic_time() * 1000;
    HostdVm *vm;

    if (!valid_name(name)) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "invalid VM name");
        return NULL;
    }
    for (char **s = disk_specs; s && *s; s++) {
        g_auto(GStrv) f = g_strsplit(*s, "=", 4);
        guint nf = g_strv_length(f);
        HostdDisk *d, *other;

        if ((nf != 3 && nf != 4) || !valid_name(f[0]) || !valid_name(f[1]) ||
            !valid_name(f[2]) || (nf == 4 && !valid_name(f[3]))) {
            g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "disk '%s': expected TARGET=SERIAL=FILTER-ID"
                        "[=REMOTE-FILTER-ID]",
                        *s);
            return NULL;
        }
        if (nf == 4) {
            other = g_hash_table_lookup(m->by_remote, f[3]);
            if ((other && !g_str_equal(other->vm->name, name)) ||
                g_hash_table_lookup(m->by_filter, f[3])) {
                g_set_error(err, G_IO_ERROR, G_IO_ERROR_EXISTS,
                            "remote filter id '%s' is already in use", f[3]);
                return NULL;
            }
        }
        other = g_hash_table_lookup(m->by_filter, f[2]);
        if (other && !g_str_equal(other->vm->name, name)) {
            g_set_error(err, G_IO_ERROR, G_IO_ERROR_EXISTS,
                        "filter id '%s' already belongs to VM '%s'", f[2],
                        other->vm->name);
            return NULL;
        }
        d = g_new0(HostdDisk, 1);
        d->target = g_strdup(f[0]);
        d->serial = g_strdup(f[1]);
        d->filter_id = g_strdup(f[2]);
        d->hung = g_array_new(FALSE, FALSE, sizeof(HostdSpan));
        if (nf == 4) {
            d->remote_id = g_strdup(f[3]);
            d->remote = hostd_remote_join_new(remote_emit, d);
        }
        d->join = hostd_join_new(disk_emit, d);
        d->stats =
            hostd_disk_stats_new(t0, minute_align_ns(), disk_minute_closed, d);
        d->tail = hostd_tail_capture_new(HOSTD_TAIL_K, t0, minute_align_ns());
        g_ptr_array_add(disks, d);
    }

    /* Registering the same VM again (a hook firing twice, a restarted
     * registrar) keeps its statistics and channel. */
    vm = hostd_model_vm(m, name);
    if (vm && same_vm(vm, agent_socket, disks))
        return vm;
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
        vm->agent = hostd_agent_conn_new(vm);
    replay_early(m);
    return vm;
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
    }
    return g_hash_table_remove(m->vms, name);
}

/* Spans that came before their disk's map, now that it came. */
static void replay_unmapped(HostdModel *m, uint64_t key)
{
    g_autoptr(GArray) mapped = g_array_new(FALSE, FALSE, sizeof(HostdSpan));
    guint kept = 0;

    for (guint i = 0; i < m->unmapped->len; i++) {
        const HostdSpan *s = &g_array_index(m->unmapped, HostdSpan, i);

        if (qemu_disk_key(s->source, s->vpid, s->disk) == key)
            g_array_append_val(mapped, *s);
        else
            g_array_index(m->unmapped, HostdSpan, kept++) = *s;
    }
    g_array_set_size(m->unmapped, kept);
    for (guint i = 0; i < mapped->len; i++)
        model_span_at(m, &g_array_index(mapped, HostdSpan, i));
}

void hostd_model_disk_map(HostdModel *m, const HostdDiskMap *map)
{
    uint64_t key = qemu_disk_key(map->source, map->vpid, map->disk);
    const char *old = g_hash_table_lookup(m->qemu_disks, &key);

    /* Not a periodic re-emission of what is known: spans may wait for it
     * (a closing disk's event names it too). */
    if (!old || strcmp(old, map->id)) {
        g_hash_table_insert(m->qemu_disks, g_memdup2(&key, sizeof(key)),
                            g_strdup(map->id));
        g_hash_table_remove(m->unmappable, &key);
        if (m->unmapped->len)
            replay_unmapped(m, key);
    }
    if (map->state == 2)
        g_hash_table_remove(m->qemu_disks, &key);
}

static const char *span_filter_id(HostdModel *m, const HostdSpan *s)
{
    uint64_t key = qemu_disk_key(s->source, s->vpid, s->disk);

    return g_hash_table_lookup(m->qemu_disks, &key);
}

static HostdDisk *span_disk(HostdModel *m, const HostdSpan *s)
{
    const char *id = span_filter_id(m, s);

    return id ? g_hash_table_lookup(m->by_filter, id) : NULL;
}

static guint hung_find(const HostdDisk *d, uint64_t span_id)
{
    for (guint i = 0; i < d->hung->len; i++)
        if (g_array_index(d->hung, HostdSpan, i).span_id == span_id)
            return i;
    return G_MAXUINT;
}

static void hung_done(HostdDisk *d, const HostdSpan *s)
{
    guint i = d->hung->len ? hung_find(d, s->span_id) : G_MAXUINT;

    if (i != G_MAXUINT)
        g_array_remove_index_fast(d->hung, i);
}

void hostd_model_span(HostdModel *m, const HostdSpan *s, int64_t now_ns)
{
    model_span_at(m, s);
}

static void model_span_at(HostdModel *m, const HostdSpan *s)
{
    const char *id = span_filter_id(m, s);
    HostdDisk *d = id ? g_hash_table_lookup(m->by_filter, id) : NULL;
    HostdBelow below = {0};
    HostdSpan only;
    unsigned n;

    if (!d && id && (d = g_hash_table_lookup(m->by_remote, id))) {
        /* The export's server-side span, on the node serving it. */
        below.backend_ns = hostd_span_tree_take(m->children, s, NULL, NULL);
        d->remote_source = s->source;
        hostd_remote_join_add_server(d->remote, s, below.backend_ns);
        return;
    }
    if (!d) {
        /* A lower node's span (or an unregistered disk's): keep it for
         * its parent, if it has one. */
        uint64_t key = qemu_disk_key(s->source, s->vpid, s->disk);

        if (s->parent_span_id)
            hostd_span_tree_add(m->children, s);
        else if (id && m->early->len < HOSTD_EARLY_MAX)
            g_array_append_val(m->early, *s);
        else if (!id && m->unmapped->len < HOSTD_UNMAPPED_MAX &&
                 !g_hash_table_contains(m->unmappable, &key))
            g_array_append_val(m->unmapped, *s);
        else
            m->spans_unknown_disk++;
        return;
    }
    d->spans++;
    hung_done(d, s);
    below.backend_ns = hostd_span_tree_take(m->children, s, &n, &only);
    if (n)
        d->has_lower = true;
    below.known = d->has_lower;
    if (d->remote) {
        /* A single lower span is the NBD client's own view; without it
         * the top span stands for the client. */
        hostd_remote_join_add_client(d->remote, s, n == 1 ? &only : s);
        return;
    }
    if (hostd_vm_expects_guest(d->vm))
        hostd_join_add_span(d->join, s, &below);
    else
        hostd_join_span_alone(d->join, s, &below);
}

void hostd_model_hung(HostdModel *m, const HostdSpan *s, uint64_t age_ns)
{
    HostdDisk *d = span_disk(m, s);
    guint i;

    if (!d)
        return;
    d->hung_reports++;
    i = hung_find(d, s->span_id);
    if (i != G_MAXUINT)
        g_array_index(d->hung, HostdSpan, i) = *s;
    else if (d->hung->len < HOSTD_HUNG_MAX)
        g_array_append_val(d->hung, *s);
}

void hostd_model_zipkin(HostdModel *m, const HostdZipkinEvent *e)
{
    hostd_zipkin_spans_add(m->zipkin, e);
}

void hostd_model_flush(HostdModel *m, int64_t watermark_ns, int64_t now_ns)
{
    GHashTableIter it;
    gpointer v;
    guint n;
    int64_t unmapped_from = INT64_MAX;

    /* Given up on: counted, and their disks' later spans wait no more. */
    for (n = 0; n < m->unmapped->len &&
                (int64_t)g_array_index(m->unmapped, HostdSpan, n).end_ns <
                    watermark_ns - HOSTD_UNMAPPED_KEEP_NS;
         n++) {
        const HostdSpan *s = &g_array_index(m->unmapped, HostdSpan, n);
        uint64_t key = qemu_disk_key(s->source, s->vpid, s->disk);

        if (g_hash_table_size(m->unmappable) >= HOSTD_UNMAPPABLE_MAX)
            g_hash_table_remove_all(m->unmappable);
        g_hash_table_add(m->unmappable, g_memdup2(&key, sizeof(key)));
    }
    if (n) {
        m->spans_unknown_disk += n;
        g_array_remove_range(m->unmapped, 0, n);
    }
    for (n = 0; n < m->unmapped->len; n++)
        unmapped_from =
            MIN(unmapped_from,
                (int64_t)g_array_index(m->unmapped, HostdSpan, n).start_ns);

    g_hash_table_iter_init(&it, m->vms);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        HostdVm *vm = v;
        int64_t tol = hostd_agent_conn_tolerance_ns(vm->agent);

        for (guint i = 0; i < vm->disks->len; i++) {
            HostdDisk *d = g_ptr_array_index(vm->disks, i);

            int64_t wm = watermark_ns;

            /* A hung request nobody reports any more (QEMU went away). */
            for (guint k = d->hung->len; k-- > 0;)
                if ((int64_t)g_array_index(d->hung, HostdSpan, k).end_ns <
                    watermark_ns - HOSTD_HUNG_KEEP_NS)
                    g_array_remove_index_fast(d->hung, k);

            if (d->remote) {
                hostd_remote_join_flush(
                    d->remote, watermark_ns,
                    m->source_time_ns[d->remote_source % HOSTD_MAX_SOURCES],
                    HOSTD_REMOTE_TOL_NS);
                /* Guest requests after a span still held there wait. */
                wm = MIN(wm, hostd_remote_join_horizon(d->remote) - tol - 1);
            }
            /* Likewise for spans waiting for their disk's map: they may be
             * this disk's. */
            if (unmapped_from != INT64_MAX)
                wm = MIN(wm, unmapped_from - tol - 1);
            hostd_join_flush(d->join, wm, tol,
                             hostd_agent_conn_bound_ns(vm->agent),
                             hostd_vm_expects_guest(vm));
        }
    }
    if (watermark_ns > HOSTD_CHILD_KEEP_NS)
        hostd_span_tree_expire(m->children, watermark_ns - HOSTD_CHILD_KEEP_NS);
    for (unsigned src = 0; src < HOSTD_MAX_SOURCES; src++)
        if (m->source_time_ns[src] || watermark_ns == INT64_MAX)
            hostd_zipkin_spans_expire(
                m->zipkin, src,
                watermark_ns == INT64_MAX ? INT64_MAX : m->source_time_ns[src]);
    /* Not registered in time: the disk is not one hostd is asked about. */
    for (n = 0; n < m->early->len &&
                (int64_t)g_array_index(m->early, HostdSpan, n).end_ns <
                    watermark_ns - HOSTD_EARLY_KEEP_NS;
         n++)
        ;
    if (n) {
        m->spans_unknown_disk += n;
        g_array_remove_range(m->early, 0, n);
    }
}

void hostd_model_source_time(HostdModel *m, unsigned source, int64_t time_ns)
{
    if (source < HOSTD_MAX_SOURCES)
        m->source_time_ns[source] = time_ns;
}

void hostd_model_guest(HostdModel *m, HostdDisk *d, const HostdGuestReq *g)
{
    d->guest_records++;
    if (m->capture)
        fprintf(m->capture,
                "G %s %s %u %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                " %d\n",
                d->vm->name, d->target, g->op, g->offset, g->bytes, g->queue_ns,
                g->issue_ns, g->complete_ns, g->error);
    hostd_join_add_guest(d->join, g);
}

gboolean hostd_model_replay_line(HostdModel *m, const char *line)
{
    char vm_name[256], target[256];
    unsigned op;
    HostdGuestReq g = {0};
    HostdVm *vm;
    HostdDisk *d;

    if (sscanf(line,
               "G %255s %255s %u %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
               " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
               " %d",
               vm_name, target, &op, &g.offset, &g.bytes, &g.queue_ns,
               &g.issue_ns, &g.complete_ns, &g.error) != 9 ||
        op < 1 || op > 5)
        return FALSE;
    g.op = op;
    vm = hostd_model_vm(m, vm_name);
    d = vm ? hostd_vm_disk(vm, target) : NULL;
    if (d)
        hostd_model_guest(m, d, &g);
    return TRUE;
}
