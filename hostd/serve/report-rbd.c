/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * report-rbd.c: what reports and `blkin status` say about disks on Ceph
 * RBD and the collectors (docs/backend-ceph.md): per disk, how its spans
 * joined to librbd calls and OSD ops and the OSD clock's offset and bound;
 * per collector, its connection and its OSDs' outages.
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "hostd.h"
#include "json-members.h"

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
    hostd_json_add_str(b, "pool", pool);
    hostd_json_add_str(b, "image", name);
    hostd_json_add_int(b, "client", (int64_t)gid);
    /* The guest's requests, and of those joined down to an OSD op. */
    hostd_json_add_int(b, "guest_requests", d->rbd.guest);
    hostd_json_add_int(b, "guest_joined", d->rbd.guest_joined);
    hostd_json_add_int(b, "calls", d->rbd.calls);
    hostd_json_add_int(b, "joined", d->rbd.joined);
    hostd_json_add_int(b, "merged", d->rbd.merged);
    hostd_json_add_int(b, "no_osd_op", d->rbd.no_op);
    hostd_json_add_int(b, "osd_op_missing", d->rbd.op_missing);
    hostd_json_add_int(b, "no_librbd_call", d->rbd.no_call);
    /* Calls while an OSD did not answer its collector, or ops may have
     * left its history unread: their OSD phases may be missing or long. */
    hostd_json_add_int(b, "during_osd_gap", d->rbd.in_gap);
    hostd_json_add_int(b, "collectors", m->ceph_feeds->len);
    /* Distinct OSD ops joined: what the OSD's own counters count. */
    json_builder_set_member_name(b, "osd_ops");
    json_builder_begin_object(b);
    hostd_json_add_int(b, "reads", d->rbd.osd_reads);
    hostd_json_add_int(b, "writes", d->rbd.osd_writes);
    hostd_json_add_int(b, "read_bytes", d->rbd.osd_read_bytes);
    hostd_json_add_int(b, "write_bytes", d->rbd.osd_write_bytes);
    json_builder_end_object(b);
    /* The OSDs' clock as the last joined op's collector has it: offset
     * from their wall clock to ours, and its bound. */
    clk = m->ceph_feeds->len ? hostd_rbd_join_clock_of(m->rbd, d->rbd.collector)
                             : NULL;
    json_builder_set_member_name(b, "osd_clock");
    if (clk && clk->known) {
        json_builder_begin_object(b);
        hostd_json_add_int(b, "collector", d->rbd.collector);
        hostd_json_add_bool(b, "same_host", clk->same_host);
        hostd_json_add_int(b, "offset_ns", clk->offset_ns);
        hostd_json_add_int(b, "bound_ns", clk->bound_ns);
        hostd_json_add_int(b, "floor_out_ns", clk->floor_out_ns);
        hostd_json_add_int(b, "floor_back_ns", clk->floor_back_ns);
        hostd_json_add_int(b, "pairs", clk->pairs);
        hostd_json_add_int(b, "inconsistent", clk->inconsistent);
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
    hostd_json_add_int(b, "images_open", m->rbd_open);
    json_builder_set_member_name(b, "collectors");
    json_builder_begin_array(b);
    for (guint i = 0; i < m->ceph_feeds->len; i++) {
        HostdCephFeedStatus s;

        hostd_ceph_feed_status(g_ptr_array_index(m->ceph_feeds, i), &s);
        json_builder_begin_object(b);
        hostd_json_add_str(b, "addr", s.addr);
        hostd_json_add_bool(b, "connected", s.connected);
        hostd_json_add_str(b, "host", s.host);
        hostd_json_add_bool(b, "same_host", s.same_host);
        hostd_json_add_int(b, "connects", s.connects);
        hostd_json_add_int(b, "lines", s.lines);
        hostd_json_add_int(b, "ops", s.ops);
        hostd_json_add_int(b, "bad_lines", s.bad_lines);
        hostd_json_add_int(b, "dropped", s.dropped);
        hostd_json_add_str(b, "last_error", s.last_error);
        json_builder_set_member_name(b, "osds");
        json_builder_begin_array(b);
        for (guint k = 0; k < s.osds->len; k++) {
            const HostdCephOsd *o = &g_array_index(s.osds, HostdCephOsd, k);

            json_builder_begin_object(b);
            hostd_json_add_int(b, "id", o->id);
            hostd_json_add_bool(b, "up", o->up);
            hostd_json_add_int(b, "since_ns", o->since_ns);
            hostd_json_add_str(b, "reason", o->reason);
            hostd_json_add_int(b, "outages", o->outages);
            hostd_json_add_int(b, "lost_windows", o->lost_windows);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "rbd");
    json_builder_begin_object(b);
    hostd_json_add_int(b, "calls", c->calls);
    hostd_json_add_int(b, "calls_unclaimed", c->calls_unclaimed);
    hostd_json_add_int(b, "ops", c->ops);
    hostd_json_add_int(b, "ops_data_unclaimed", c->ops_data_unclaimed);
    hostd_json_add_int(b, "ops_meta", c->ops_meta);
    hostd_json_add_int(b, "ops_unknown", c->ops_unknown);
    hostd_json_add_int(b, "overflow", c->overflow);
    hostd_json_add_int(b, "pending", hostd_rbd_join_pending(m->rbd));
    json_builder_end_object(b);
    json_builder_end_object(b);
}
