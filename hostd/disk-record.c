/*
 * disk-record.c: joined request -> statistics and tail capture.
 */
#include "disk-record.h"

#include "agent-conn.h"
#include "span-export.h"

#include <string.h>

uint64_t hostd_joined_end_ns(const HostdJoined *j)
{
    return j->has_guest ? (uint64_t)j->guest.complete_ns : j->span.end_ns;
}

bool hostd_joined_to_request(const HostdDisk *d, const HostdJoined *j,
                             HostdJoinedRequest *r)
{
    int op = hostd_stats_op_from_schema(j->op);
    struct blkin_clock_estimate est;

    G_STATIC_ASSERT((int)HOSTD_PHASE__N == (int)HOSTD_STATS_PHASE__N);
    if (op < 0)
        return false;
    memset(r, 0, sizeof(*r));
    r->disk.vpid = j->span.vpid;
    r->disk.disk = j->span.disk;
    r->op = op;
    r->merged = j->merged;
    r->ret = j->ret;
    r->offset = j->offset;
    r->bytes = j->bytes;
    r->flags = (j->has_guest ? HOSTD_JR_HAS_GUEST : 0) |
               (j->has_span ? HOSTD_JR_HAS_SPAN : 0) |
               (j->merged > 1 ? HOSTD_JR_MERGED : 0) |
               (j->has_guest && !j->has_span ? HOSTD_JR_UNMATCHED_GUEST : 0) |
               (j->has_span && !j->has_guest ? HOSTD_JR_UNMATCHED_SPAN : 0) |
               (j->ret ? HOSTD_JR_ERROR : 0);
    if (j->has_guest) {
        r->guest_queue_ns = j->guest.queue_ns;
        r->guest_issue_ns = j->guest.issue_ns;
        r->guest_complete_ns = j->guest.complete_ns;
        if (hostd_agent_conn_clock(d->vm->agent, &est))
            r->clock_error_ns = est.bound_ns;
    }
    if (j->has_span) {
        r->span_start_ns = j->span.start_ns;
        r->span_end_ns = j->span.end_ns;
        r->trace_id = j->span.trace_id;
        r->span_id = j->span.span_id;
        r->lower_total_ns = j->backend_ns;
        if (j->below.remote)
            r->lower_total_ns += j->below.network_ns + j->below.remote_ns;
    }
    for (int p = 0; p < HOSTD_PHASE__N; p++) {
        /* -1: the phase does not apply. Only the two phases measured across
         * the guest/host clock boundary can come out negative for real. */
        bool cross_clock =
            p == HOSTD_PHASE_TO_QEMU || p == HOSTD_PHASE_TO_GUEST;

        if (j->phase_ns[p] < 0 && !(cross_clock && j->has_guest && j->has_span))
            continue;
        /* Guest-side phases can come out slightly negative within the
         * clock error bound; histograms count them as 0, the timestamps
         * kept in the record stay exact. */
        r->phase_valid |= 1u << p;
        r->phase_ns[p] = j->phase_ns[p] > 0 ? (uint64_t)j->phase_ns[p] : 0;
    }
    if (!j->guest.queue_ns)
        r->phase_valid &= ~(1u << HOSTD_STATS_PHASE_GUEST_QUEUE);
    return true;
}

void hostd_disk_record(HostdDisk *d, const HostdJoined *j, uint64_t now_ns)
{
    HostdJoinedRequest r;

    if (!hostd_joined_to_request(d, j, &r))
        return;
    hostd_disk_stats_add(d->stats, now_ns, &r);
    hostd_tail_capture_add(d->tail, now_ns, &r);
    for (guint i = 0;
         d->vm->model->exporters && i < d->vm->model->exporters->len; i++)
        hostd_span_export_offer(g_ptr_array_index(d->vm->model->exporters, i),
                                d->vm->name, d->target, &r);
    d->cum_requests[r.op]++;
    d->cum_bytes[r.op] += r.bytes;
    for (int p = 0; p < HOSTD_STATS_PHASE__N; p++) {
        if (!(r.phase_valid & (1u << p)))
            continue;
        if (!d->cum[r.op][p])
            d->cum[r.op][p] = hostd_latency_hist_new();
        hostd_latency_hist_add(d->cum[r.op][p], r.phase_ns[p]);
    }
}
