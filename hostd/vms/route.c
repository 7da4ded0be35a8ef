/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * route.c: trace input to the disks it belongs to (model.h). QEMU's disk
 * maps name a filter disk (process, index) by its filter id; a span goes to
 * the registered disk of that id (or waits: for its map after hostd
 * attached late, for its VM's registration, for its parent span), with what
 * was seen below it, into the disk's join; the join tick flushes the joins
 * and ages out what waited in vain.
 */
#define G_LOG_DOMAIN "blkin-hostd-vms"

#include "model.h"
#include "model-priv.h"

#include "ingest/agent-conn.h"

#include <string.h>

/* Lower spans whose parent did not come within this long are dropped. */
#define HOSTD_CHILD_KEEP_NS (10LL * 1000000000LL)

/* Filter disk indexes are per process, pids per node: key by all three.
 * pid_max is at most 2^22 and a process opens far fewer than 2^24 nodes. */
static uint64_t qemu_disk_key(uint16_t source, uint32_t vpid, uint32_t disk)
{
    return (uint64_t)(source & 0xff) << 56 | (uint64_t)vpid << 24 |
           (disk & 0xffffff);
}
/* Tolerance between two blkin spans of one request (no guest clock). */
#define HOSTD_REMOTE_TOL_NS (100LL * 1000)

/*
 * The device requests behind a block-layer span that served several
 * (virtio-blk merged them), by span id, until the span reaches its disk's
 * join (model.h: dev_lists).
 */
typedef struct DevList {
    int64_t at_ns; /* the span's end: for expiry */
    unsigned n;
    HostdDevReq dev[HOSTD_DEV_MAX];
} DevList;
/* Into the disk's join: one span per device request, each with its own
 * range, device entry and device completion, all sharing the block-layer
 * span's other times, ids and what was below it; the guest requests then
 * join them one to one. */
static void disk_join_span(HostdDisk *d, const HostdSpan *s,
                           const HostdBelow *below)
{
    HostdModel *m = d->vm->model;
    bool guest = hostd_vm_expects_guest(d->vm);
    g_autofree DevList *dl = NULL;
    HostdSpan part = *s;

    if (s->dev_merged > 1 &&
        g_hash_table_steal_extended(m->dev_lists, &s->span_id, NULL,
                                    (gpointer *)&dl)) {
        for (unsigned i = 0; i < dl->n; i++) {
            uint64_t before = (uint64_t)(dl->n - 1 - i) * s->dev_step_ns;

            part.offset = dl->dev[i].offset;
            part.bytes = dl->dev[i].bytes;
            part.dev_start_ns = dl->dev[i].start_ns;
            /* Its own completion: QEMU completed them in this order. */
            if (s->dev_end_ns)
                part.dev_end_ns = before < s->dev_end_ns - s->end_ns
                                      ? s->dev_end_ns - before
                                      : s->end_ns;
            if (guest)
                hostd_join_add_span(d->join, &part, below);
            else
                hostd_join_span_alone(d->join, &part, below);
        }
        return;
    }
    if (guest)
        hostd_join_add_span(d->join, s, below);
    else
        hostd_join_span_alone(d->join, s, below);
}
void hostd_route_disk_join(HostdDisk *d, const HostdSpan *s,
                           const HostdBelow *below)
{
    disk_join_span(d, s, below);
}

/* A client span joined (or not) to the server's: on to the main join. */
void hostd_route_remote_emit(void *opaque, const HostdRemoteMatch *r)
{
    HostdDisk *d = opaque;

    if (r->server)
        d->remote_spans++;
    disk_join_span(d, r->top, &r->below);
}
/* A storage service's span is complete (or timed out): it is a lower span
 * of its parent -- a filter span that passed its context on, or another
 * service's -- and is kept for `blkin trace`. */
void hostd_route_zipkin_emit(void *opaque, const HostdZipkinSpan *zs)
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
        hostd_route_span(m, &g_array_index(mapped, HostdSpan, i));
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
    /* The top node's word on its device (the filter learns it from the
     * first request; it comes again with every refresh). */
    HostdDisk *d = map->device && *map->device
                       ? g_hash_table_lookup(m->by_filter, map->id)
                       : NULL;
    if (d && g_strcmp0(d->device, map->device)) {
        g_free(d->device);
        d->device = g_strdup(map->device);
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
    hostd_route_span(m, s);
}
void hostd_route_span(HostdModel *m, const HostdSpan *s)
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
    /* Only requests that passed through something below have a backend
     * time (a qcow2 read of an unallocated cluster did not): the others
     * are not counted as 0 in it. */
    below.known = n > 0;
    /* On RBD: the librbd call below and its OSD ops first (model-rbd.c);
     * as for NBD, a single lower span is the client's own view. */
    if (!d->remote && m->rbd_open &&
        hostd_model_rbd_span(m, d, s, n == 1 ? &only : s))
        return;
    if (d->remote) {
        /* A single lower span is the NBD client's own view; without it
         * the top span stands for the client. */
        hostd_remote_join_add_client(d->remote, s, n == 1 ? &only : s);
        return;
    }
    disk_join_span(d, s, &below);
}
void hostd_model_device_span(HostdModel *m, const HostdSpan *s,
                             const HostdDevReq *dev, unsigned n)
{
    HostdSpan top = *s;

    top.dev_merged = (uint16_t)n;
    top.dev_start_ns = dev[0].start_ns;
    for (unsigned i = 1; i < n; i++)
        if (dev[i].start_ns && dev[i].start_ns < top.dev_start_ns)
            top.dev_start_ns = dev[i].start_ns;
    if (n > 1 && g_hash_table_size(m->dev_lists) < HOSTD_DEV_LISTS_MAX) {
        DevList *dl = g_new(DevList, 1);
        uint64_t *key = g_memdup2(&s->span_id, sizeof(s->span_id));

        dl->at_ns = (int64_t)s->end_ns;
        dl->n = n;
        memcpy(dl->dev, dev, n * sizeof(*dev));
        g_hash_table_replace(m->dev_lists, key, dl);
    }
    hostd_route_span(m, &top);
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

    hostd_model_rbd_flush(m, watermark_ns);
    g_hash_table_iter_init(&it, m->vms);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        HostdVm *vm = v;
        int64_t tol = hostd_agent_conn_tolerance_ns(vm->agent);
        int64_t catchup = hostd_agent_conn_horizon_ns(vm->agent, now_ns);

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
            if (d->rbd.seen)
                wm = MIN(wm, hostd_model_rbd_horizon(m, d) - tol - 1);
            /* Likewise for spans waiting for their disk's map: they may be
             * this disk's. */
            if (unmapped_from != INT64_MAX)
                wm = MIN(wm, unmapped_from - tol - 1);
            /* And for an agent's backlog after it (re)connected; not in
             * hostd's last flush (live: the last history write), nor in
             * one that flushes everything (INT64_MAX: offline, tests). */
            if (catchup != INT64_MAX && !m->stopping &&
                watermark_ns != INT64_MAX)
                wm = MIN(wm, catchup - tol - 1);
            hostd_join_flush(d->join, wm, tol,
                             hostd_agent_conn_bound_ns(vm->agent),
                             hostd_vm_expects_guest(vm));
        }
    }
    if (!m->offline)
        hostd_model_expire_stopped(m, now_ns);
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
    /* Device lists of spans that never reached a disk's join. */
    if (g_hash_table_size(m->dev_lists)) {
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, m->dev_lists);
        while (g_hash_table_iter_next(&it, NULL, &v))
            if (((DevList *)v)->at_ns < watermark_ns - HOSTD_UNMAPPED_KEEP_NS)
                g_hash_table_iter_remove(&it);
    }
}
void hostd_model_source_time(HostdModel *m, unsigned source, int64_t time_ns)
{
    if (source < HOSTD_MAX_SOURCES)
        m->source_time_ns[source] = time_ns;
}
static void sink_span(void *opaque, const HostdSpan *s)
{
    hostd_model_span(opaque, s, g_get_monotonic_time() * 1000);
}
static void sink_device_span(void *opaque, const HostdSpan *s,
                             const HostdDevReq *dev, unsigned n)
{
    hostd_model_device_span(opaque, s, dev, n);
}
static void sink_hung(void *opaque, const HostdSpan *s, uint64_t age_ns)
{
    hostd_model_hung(opaque, s, age_ns);
}
static void sink_disk(void *opaque, const HostdDiskMap *map)
{
    hostd_model_disk_map(opaque, map);
}
static void sink_zipkin(void *opaque, const HostdZipkinEvent *e)
{
    hostd_model_zipkin(opaque, e);
}
static void sink_discarded(void *opaque, uint64_t count)
{
    HostdModel *m = opaque;

    m->lttng_discarded += count;
}
static void sink_delivered(void *opaque, uint16_t source, int64_t time_ns)
{
    hostd_model_source_time(opaque, source, time_ns);
}
static void sink_rbd_image(void *opaque, const HostdRbdImage *im)
{
    hostd_model_rbd_image(opaque, im);
}
static void sink_rbd_call(void *opaque, const HostdRbdCall *c)
{
    hostd_model_rbd_call(opaque, c);
}
const HostdTraceSink hostd_model_trace_sink = {
    .rbd_image = sink_rbd_image,
    .rbd_call = sink_rbd_call,
    .span = sink_span,
    .device_span = sink_device_span,
    .hung = sink_hung,
    .disk = sink_disk,
    .discarded = sink_discarded,
    .zipkin = sink_zipkin,
    .delivered = sink_delivered,
};
