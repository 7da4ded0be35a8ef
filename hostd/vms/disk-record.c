/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * disk-record.c: a disk's joined requests into its statistics, tail capture
 * and exporters (disk-record.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-vms"

#include "disk-record.h"

#include "serve/span-export.h"

void hostd_disk_record(HostdDisk *d, const HostdJoinedRequest *r,
                       uint64_t now_ns)
{
    GPtrArray *exporters = d->vm->model->exporters;

    if (r->op >= BLKIN_OP__N)
        return;
    hostd_disk_stats_add(d->stats, now_ns, r);
    hostd_tail_capture_add(d->tail, now_ns, r);
    for (guint i = 0; exporters && i < exporters->len; i++)
        hostd_span_export_offer_counted(
            g_ptr_array_index(exporters, i), d->vm->name, d->target,
            (int64_t)now_ns + d->wall_offset_ns,
            (int64_t)hostd_disk_stats_since(d->stats) + d->wall_offset_ns, r);
    d->cum_requests[r->op]++;
    d->cum_bytes[r->op] += r->bytes;
    for (int p = 0; p < BLKIN_PHASE__N; p++) {
        if (!(r->phase_valid & (1u << p)))
            continue;
        if (!d->cum[r->op][p])
            d->cum[r->op][p] = hostd_latency_hist_new();
        hostd_latency_hist_add(d->cum[r->op][p], r->phase_ns[p]);
    }
}
