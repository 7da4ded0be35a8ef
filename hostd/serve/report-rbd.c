/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * report-rbd.c: what reports and `blkin status` say about disks on Ceph
 * RBD and the collectors (docs/backend-ceph.md): per disk, how its spans
 * joined to librbd calls and OSD ops and the OSD clock's offset and bound;
 * per collector, its connection and its OSDs' outages.
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "hostd.h"

static void add_int(JsonBuilder *b, const char *k, int64_t v)
{
    json_builder_set_member_name(b, k);
    json_builder_add_int_value(b, v);
}

static void add_str(JsonBuilder *b, const char *k, const char *v)
{
    json_builder_set_member_name(b, k);
    if (v)
        json_builder_add_string_value(b, v);
    else
        json_builder_add_null_value(b);
}

static void add_bool(JsonBuilder *b, const char *k, gboolean v)
{
    json_builder_set_member_name(b, k);
    json_builder_add_boolean_value(b, v);
}

void hostd_report_add_rbd(JsonBuilder *b, HostdModel *m, const HostdDisk *d)
{
    const char *pool = NULL, *name = NULL;
    uint64_t gid = 0;
    const HostdRbdClock *clk;

    json_builder_set_member_name(b, "rbd");
    if (!d->rbd.seen) {
        json_builder_add_null_value(b);
        return;
    }
    hostd_rbd_join_disk_image(m->rbd, d, &pool, &name, &gid);
    json_builder_begin_object(b);
    add_str(b, "pool", pool);
    add_str(b, "image", name);
    add_int(b, "client", (int64_t)gid);
    /* The guest's requests, and of those joined down to an OSD op. */
    add_int(b, "guest_requests", d->rbd.guest);
    add_int(b, "guest_joined", d->rbd.guest_joined);
    add_int(b, "calls", d->rbd.calls);
    add_int(b, "joined", d->rbd.joined);
    add_int(b, "merged", d->rbd.merged);
    add_int(b, "no_osd_op", d->rbd.no_op);
    add_int(b, "osd_op_missing", d->rbd.op_missing);
    add_int(b, "no_librbd_call", d->rbd.no_call);
    /* Calls while an OSD did not answer its collector, or ops may have
     * left its history unread: their OSD phases may be missing or long. */
    add_int(b, "during_osd_gap", d->rbd.in_gap);
    add_int(b, "collectors", m->ceph_feeds->len);
    /* Distinct OSD ops joined: what the OSD's own counters count. */
    json_builder_set_member_name(b, "osd_ops");
    json_builder_begin_object(b);
    add_int(b, "reads", d->rbd.osd_reads);
    add_int(b, "writes", d->rbd.osd_writes);
    add_int(b, "read_bytes", d->rbd.osd_read_bytes);
    add_int(b, "write_bytes", d->rbd.osd_write_bytes);
    json_builder_end_object(b);
    /* The OSDs' clock as the last joined op's collector has it: offset
     * from their wall clock to ours, and its bound. */
    clk = m->ceph_feeds->len ? hostd_rbd_join_clock_of(m->rbd, d->rbd.collector)
                             : NULL;
    json_builder_set_member_name(b, "osd_clock");
    if (clk && clk->known) {
        json_builder_begin_object(b);
        add_int(b, "collector", d->rbd.collector);
        add_bool(b, "same_host", clk->same_host);
        add_int(b, "offset_ns", clk->offset_ns);
        add_int(b, "bound_ns", clk->bound_ns);
        add_int(b, "floor_out_ns", clk->floor_out_ns);
        add_int(b, "floor_back_ns", clk->floor_back_ns);
        add_int(b, "pairs", clk->pairs);
        add_int(b, "inconsistent", clk->inconsistent);
        json_builder_end_object(b);
    } else {
        json_builder_add_null_value(b);
    }
    json_builder_end_object(b);
}

void hostd_report_add_ceph(JsonBuilder *b, HostdModel *m)
{
    const HostdRbdCounters *c = hostd_rbd_join_counters(m->rbd);

    json_builder_set_member_name(b, "ceph");
    json_builder_begin_object(b);
    add_int(b, "images_open", m->rbd_open);
    json_builder_set_member_name(b, "collectors");
    json_builder_begin_array(b);
    for (guint i = 0; i < m->ceph_feeds->len; i++) {
        HostdCephFeedStatus s;

        hostd_ceph_feed_status(g_ptr_array_index(m->ceph_feeds, i), &s);
        json_builder_begin_object(b);
        add_str(b, "addr", s.addr);
        add_bool(b, "connected", s.connected);
        add_str(b, "host", s.host);
        add_bool(b, "same_host", s.same_host);
        add_int(b, "connects", s.connects);
        add_int(b, "lines", s.lines);
        add_int(b, "ops", s.ops);
        add_int(b, "bad_lines", s.bad_lines);
        add_int(b, "dropped", s.dropped);
        add_str(b, "last_error", s.last_error);
        json_builder_set_member_name(b, "osds");
        json_builder_begin_array(b);
        for (guint k = 0; k < s.osds->len; k++) {
            const HostdCephOsd *o = &g_array_index(s.osds, HostdCephOsd, k);

            json_builder_begin_object(b);
            add_int(b, "id", o->id);
            add_bool(b, "up", o->up);
            add_int(b, "since_ns", o->since_ns);
            add_str(b, "reason", o->reason);
            add_int(b, "outages", o->outages);
            add_int(b, "lost_windows", o->lost_windows);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "rbd");
    json_builder_begin_object(b);
    add_int(b, "calls", c->calls);
    add_int(b, "calls_unclaimed", c->calls_unclaimed);
    add_int(b, "ops", c->ops);
    add_int(b, "ops_data_unclaimed", c->ops_data_unclaimed);
    add_int(b, "ops_meta", c->ops_meta);
    add_int(b, "ops_unknown", c->ops_unknown);
    add_int(b, "overflow", c->overflow);
    add_int(b, "pending", hostd_rbd_join_pending(m->rbd));
    json_builder_end_object(b);
    json_builder_end_object(b);
}
