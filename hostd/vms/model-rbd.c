/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * model-rbd.c: the model's part for disks on Ceph RBD (docs/backend-ceph.md).
 *
 * The librbd interposer's events (images, calls) and the collectors' lines
 * (OSD ops, clocks, progress, gaps) go to one RBD join (join/rbd-join.h);
 * a top span of a disk goes there first while any image is open, and comes
 * back to the disk's own join with the librbd and OSD phases below it.
 * Which clients the collectors are to watch follows the images the QEMUs
 * open: each open image's client (gid, address) is watched on every
 * collector, and unwatched HOSTD_RBD_KEEP_NS after its last image closed
 * (its last ops still come).
 */
#define G_LOG_DOMAIN "blkin-hostd-vms"

#include "model.h"
#include "model-priv.h"

#include <inttypes.h>

typedef struct RbdOpen {
    uint64_t gid;
    char *addr;
    int64_t closed_ns; /* our monotonic; 0 while open */
} RbdOpen;

static void rbd_open_free(gpointer p)
{
    RbdOpen *o = p;

    g_free(o->addr);
    g_free(o);
}

static uint64_t key_of(const HostdRbdImage *im)
{
    return (uint64_t)(im->source & 0xff) << 56 |
           (uint64_t)(im->vpid & 0xffffffu) << 24 | (im->image & 0xffffff);
}

static int64_t mono_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

/* A span joined (or not) below: on to its disk's join. */
static void rbd_emit(void *opaque, const HostdRbdMatch *r)
{
    HostdModel *m = opaque;
    HostdDisk *d = r->disk;
    HostdBelow below = r->below;

    switch (r->outcome) {
    case HOSTD_RBD_JOINED:
        d->rbd.joined++;
        d->rbd.merged += r->merged;
        d->rbd.collector = r->collector;
        d->rbd.osd_reads += r->new_reads;
        d->rbd.osd_writes += r->new_writes;
        d->rbd.osd_read_bytes += r->new_read_bytes;
        d->rbd.osd_write_bytes += r->new_write_bytes;
        break;
    case HOSTD_RBD_NO_OP:
        d->rbd.no_op++;
        break;
    case HOSTD_RBD_OP_MISSING:
        d->rbd.op_missing++;
        break;
    case HOSTD_RBD_NO_CALL:
        d->rbd.no_call++;
        break;
    }
    if (r->call)
        d->rbd.calls++;
    d->rbd.in_gap += r->in_gap;
    /* librbd's phases replace the lower spans': no backend phase. */
    below.known = false;
    below.backend_ns = 0;
    (void)m;
    hostd_route_disk_join(d, r->top, &below);
}

void hostd_model_rbd_init(HostdModel *m)
{
    m->rbd = hostd_rbd_join_new(rbd_emit, m);
    m->rbd_images = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                          rbd_open_free);
    m->ceph_feeds =
        g_ptr_array_new_with_free_func((GDestroyNotify)hostd_ceph_feed_free);
}

void hostd_model_rbd_free(HostdModel *m)
{
    g_ptr_array_unref(m->ceph_feeds);
    hostd_rbd_join_free(m->rbd);
    g_hash_table_unref(m->rbd_images);
}

void hostd_model_ceph_collectors(HostdModel *m, char **addrs)
{
    for (guint i = 0; addrs && addrs[i]; i++)
        g_ptr_array_add(
            m->ceph_feeds,
            hostd_ceph_feed_new(i, addrs[i], &hostd_model_ceph_sink, m));
    hostd_rbd_join_collectors(m->rbd, m->ceph_feeds->len);
}

static gboolean gid_open(HostdModel *m, uint64_t gid)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, m->rbd_images);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((RbdOpen *)v)->gid == gid && !((RbdOpen *)v)->closed_ns)
            return TRUE;
    return FALSE;
}

void hostd_model_rbd_image(HostdModel *m, const HostdRbdImage *im)
{
    uint64_t key = key_of(im);
    RbdOpen *o = g_hash_table_lookup(m->rbd_images, &key);

    hostd_rbd_join_image(m->rbd, im);
    if (im->state == 2) {
        if (o && !o->closed_ns) {
            o->closed_ns = mono_ns();
            m->rbd_open--;
        }
        return;
    }
    if (o && !o->closed_ns && o->gid == im->gid)
        return; /* a re-emission */
    if (o && !o->closed_ns)
        m->rbd_open--;
    o = g_new0(RbdOpen, 1);
    o->gid = im->gid;
    o->addr = g_strdup(im->addr);
    g_hash_table_replace(m->rbd_images, g_memdup2(&key, sizeof(key)), o);
    m->rbd_open++;
    g_message("QEMU %u opened RBD image %s/%s as client.%" PRIu64
              " (%s); watching its OSD ops on %u collector(s)",
              im->vpid, im->pool, im->name, im->gid, im->addr,
              m->ceph_feeds->len);
    for (guint i = 0; i < m->ceph_feeds->len; i++)
        hostd_ceph_feed_watch(g_ptr_array_index(m->ceph_feeds, i), im->gid,
                              im->addr);
}

void hostd_model_rbd_call(HostdModel *m, const HostdRbdCall *c)
{
    hostd_rbd_join_call(m->rbd, c);
}

gboolean hostd_model_rbd_span(HostdModel *m, HostdDisk *d, const HostdSpan *s,
                              const HostdSpan *client)
{
    if (!hostd_rbd_join_client(m->rbd, d, s, client))
        return FALSE;
    if (!d->rbd.seen) {
        const char *pool = "?", *name = "?";
        uint64_t gid = 0;

        hostd_rbd_join_disk_image(m->rbd, d, &pool, &name, &gid);
        g_message("VM %s disk %s is on RBD image %s/%s (client.%" PRIu64 ")",
                  d->vm->name, d->target, pool, name, gid);
        d->rbd.seen = TRUE;
    }
    return TRUE;
}

void hostd_model_rbd_flush(HostdModel *m, int64_t watermark_ns)
{
    GHashTableIter it;
    gpointer v;
    int64_t now = mono_ns();

    hostd_rbd_join_flush(m->rbd, watermark_ns);
    /* Images closed a while ago: their clients need not be watched. */
    g_hash_table_iter_init(&it, m->rbd_images);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        RbdOpen *o = v;

        if (!o->closed_ns || now - o->closed_ns < HOSTD_RBD_KEEP_NS)
            continue;
        if (!gid_open(m, o->gid))
            for (guint i = 0; i < m->ceph_feeds->len; i++)
                hostd_ceph_feed_unwatch(g_ptr_array_index(m->ceph_feeds, i),
                                        o->gid);
        g_hash_table_iter_remove(&it);
    }
}

int64_t hostd_model_rbd_horizon(HostdModel *m, HostdDisk *d)
{
    return hostd_rbd_join_horizon(m->rbd, d);
}

/* ---- the collectors deliver here --------------------------------------- */

static void ceph_op(void *opaque, unsigned collector, const blkin_osd_op *op)
{
    HostdModel *m = opaque;

    hostd_rbd_join_op(m->rbd, collector, op);
}

static void ceph_clock(void *opaque, unsigned collector,
                       int64_t wall_minus_mono, int64_t bound_ns,
                       bool same_host)
{
    HostdModel *m = opaque;

    hostd_rbd_join_clock(m->rbd, collector, wall_minus_mono, bound_ns,
                         same_host);
}

static void ceph_progress(void *opaque, unsigned collector, int64_t wall_ns)
{
    HostdModel *m = opaque;

    hostd_rbd_join_progress(m->rbd, collector, wall_ns);
}

static void ceph_connected(void *opaque, unsigned collector, bool up)
{
    HostdModel *m = opaque;

    hostd_rbd_join_connected(m->rbd, collector, up);
}

static void ceph_gap(void *opaque, unsigned collector, uint32_t osd,
                     int64_t from_ns, int64_t to_ns)
{
    HostdModel *m = opaque;

    hostd_rbd_join_gap(m->rbd, collector, from_ns, to_ns);
}

static void ceph_unreadable(void *opaque, unsigned collector, unsigned n)
{
    HostdModel *m = opaque;

    hostd_rbd_join_unreadable(m->rbd, collector, n);
}

const HostdCephSink hostd_model_ceph_sink = {
    .unreadable = ceph_unreadable,
    .op = ceph_op,
    .clock = ceph_clock,
    .progress = ceph_progress,
    .connected = ceph_connected,
    .gap = ceph_gap,
};
