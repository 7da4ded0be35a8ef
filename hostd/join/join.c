/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * join.c: the per-disk join of guest requests and filter spans (join.h).
 *
 * Pending spans are kept sorted by start time. They arrive in completion
 * order, so inserting from the tail moves a new span back only past the
 * spans that started after it and ended before it: a handful, bounded by
 * the queue depth. Guest requests are matched in batches once the
 * watermark has passed their completion.
 */
#define G_LOG_DOMAIN "blkin-hostd-join"

#include "join.h"

#include <stdlib.h>
#include <string.h>

/*
 * How long after its end a span that no guest request has claimed is kept:
 * the guest may take this long to see the completion (interrupt delivery,
 * a busy vCPU, TCG) and still be matched to it.
 */
#define HOSTD_SPAN_KEEP_NS (2LL * 1000000000LL)

typedef struct PendingSpan {
    HostdSpan s;
    HostdBelow below;
    uint64_t served_bytes; /* bytes of guest requests matched to it */
    uint32_t served;       /* guest requests matched to it */
    bool expired;
} PendingSpan;

typedef struct CausalSlot {
    int64_t sec; /* host second of the constraints; 0 = empty */
    int64_t lo, hi;
} CausalSlot;

typedef struct Pair {
    HostdGuestReq g;
    PendingSpan *p;
} Pair;

struct HostdJoin {
    HostdJoinEmit emit;
    void *opaque;
    CausalSlot causal[HOSTD_CAUSAL_WINDOW_S];
    HostdClockCorrection corr;
    GArray *spans;  /* PendingSpan, sorted by (start_ns, span_id) */
    GArray *guests; /* HostdGuestReq, in arrival order */
    HostdJoinCounters c;
    guint spans_peak, guests_peak; /* longest since last shrunk */
    /* The guest clock's error bound given to the latest flush; 0 before a
     * clock estimate (the record's clock_error_ns). */
    uint64_t probe_bound_ns;
};

HostdJoin *hostd_join_new(HostdJoinEmit emit, void *opaque)
{
    HostdJoin *j = g_new0(HostdJoin, 1);

    j->emit = emit;
    j->opaque = opaque;
    j->spans = g_array_new(FALSE, FALSE, sizeof(PendingSpan));
    j->guests = g_array_new(FALSE, FALSE, sizeof(HostdGuestReq));
    return j;
}

void hostd_join_free(HostdJoin *j)
{
    if (!j)
        return;
    g_array_unref(j->spans);
    g_array_unref(j->guests);
    g_free(j);
}

const HostdClockCorrection *hostd_join_correction(const HostdJoin *j)
{
    return &j->corr;
}

const HostdJoinCounters *hostd_join_counters(const HostdJoin *j)
{
    return &j->c;
}

/*
 * GArray never gives back what it grew to: after a burst (a flood, a stalled
 * trace input) drained, the memory would stay held for good. Once an array
 * is down to a quarter of its peak, it is copied into one of its size.
 */
#define SHRINK_MIN 4096

static void shrink(GArray **a, guint elt, guint *peak)
{
    GArray *b;

    *peak = MAX(*peak, (*a)->len);
    if (*peak < SHRINK_MIN || (*a)->len > *peak / 4)
        return;
    b = g_array_sized_new(FALSE, FALSE, elt, (*a)->len);
    g_array_append_vals(b, (*a)->data, (*a)->len);
    g_array_unref(*a);
    *a = b;
    *peak = b->len;
}

size_t hostd_join_room(const HostdJoin *j)
{
    return MAX(j->spans_peak, j->spans->len) +
           MAX(j->guests_peak, j->guests->len);
}

size_t hostd_join_pending(const HostdJoin *j)
{
    return j->spans->len + j->guests->len;
}

/* Phases of a request being emitted, signed: NO_PHASE where one does not
 * apply. Only those measured across the guest/host clock boundary can come
 * out negative for real (within the clock error bound, cross_clock()). */
#define NO_PHASE INT64_MIN

typedef struct Phases {
    int64_t ns[BLKIN_PHASE__N];
} Phases;

static void phases_init(Phases *ph)
{
    for (int i = 0; i < BLKIN_PHASE__N; i++)
        ph->ns[i] = NO_PHASE;
}

/* The record's common part from what was seen of it: @g and/or @p. */
static void record_init(HostdJoin *j, HostdJoinedRequest *r,
                        const HostdGuestReq *g, const PendingSpan *p)
{
    memset(r, 0, sizeof(*r));
    r->merged = 1;
    if (p) {
        r->disk.vpid = p->s.vpid;
        r->disk.disk = p->s.disk;
        r->op = p->s.op;
        r->ret = p->s.ret;
        r->offset = p->s.offset;
        r->bytes = p->s.bytes;
        r->flags |= HOSTD_JR_HAS_SPAN;
        r->span_start_ns = p->s.start_ns;
        r->span_end_ns = p->s.end_ns;
        r->trace_id = p->s.trace_id;
        r->span_id = p->s.span_id;
        r->lower_total_ns = p->below.backend_ns;
        r->dev_start_ns = p->s.dev_start_ns;
        r->dev_end_ns = p->s.dev_end_ns;
        if (p->below.remote)
            r->lower_total_ns += p->below.network_ns + p->below.remote_ns;
        for (int i = 0; p->below.rbd && i < HOSTD_RBD_PHASES; i++)
            r->lower_total_ns += p->below.rbd_ns[i];
        if (p->below.rbd_osd)
            r->flags |= HOSTD_JR_OSD;
    }
    if (g) {
        r->op = g->op;
        r->ret = r->ret ? r->ret : g->error;
        r->offset = g->offset;
        r->bytes = g->bytes;
        r->flags |= HOSTD_JR_HAS_GUEST;
        r->guest_queue_ns = g->queue_ns;
        r->guest_issue_ns = g->issue_ns;
        r->guest_complete_ns = g->complete_ns;
        r->clock_error_ns = MAX(j->probe_bound_ns, g->bound_ns);
    }
    if (g && !p)
        r->flags |= HOSTD_JR_UNMATCHED_GUEST;
    if (p && !g)
        r->flags |= HOSTD_JR_UNMATCHED_SPAN;
    if (r->ret)
        r->flags |= HOSTD_JR_ERROR;
}

/* Measured across the guest/host clock boundary: can come out a little
 * below 0 for real (within the clock error bound). */
static bool cross_clock(int p)
{
    return p == BLKIN_PHASE_GUEST_TO_QEMU || p == BLKIN_PHASE_QEMU_TO_GUEST ||
           p == BLKIN_PHASE_GUEST_TO_DEVICE || p == BLKIN_PHASE_DEVICE_TO_GUEST;
}

/* Sets the record's phases from @ph and hands it on. */
static void record_emit(HostdJoin *j, HostdJoinedRequest *r, const Phases *ph)
{
    bool joined =
        (r->flags & HOSTD_JR_HAS_GUEST) && (r->flags & HOSTD_JR_HAS_SPAN);

    if (r->merged > 1)
        r->flags |= HOSTD_JR_MERGED;
    for (int p = 0; p < BLKIN_PHASE__N; p++) {
        if (ph->ns[p] == NO_PHASE ||
            (ph->ns[p] < 0 && !(cross_clock(p) && joined)))
            continue;
        /* Histograms count a cross-clock phase a little below 0 as 0; the
         * timestamps in the record stay exact. */
        r->phase_valid |= 1u << p;
        r->phase_ns[p] = ph->ns[p] > 0 ? (uint64_t)ph->ns[p] : 0;
    }
    if (!r->guest_queue_ns)
        r->phase_valid &= ~(1u << BLKIN_PHASE_GUEST_QUEUE);
    j->emit(j->opaque, r);
}

static void emit_guest_only(HostdJoin *j, const HostdGuestReq *g)
{
    HostdJoinedRequest r;
    Phases ph;
    int64_t first = g->queue_ns ? g->queue_ns : g->issue_ns;

    record_init(j, &r, g, NULL);
    phases_init(&ph);
    if (g->queue_ns)
        ph.ns[BLKIN_PHASE_GUEST_QUEUE] = g->issue_ns - g->queue_ns;
    ph.ns[BLKIN_PHASE_TOTAL] = g->complete_ns - first;
    j->c.unmatched_guest++;
    record_emit(j, &r, &ph);
}

/* Splits a span's duration @dur into QEMU and what was below it. */
static void below_phases(const HostdBelow *b, int64_t dur, int64_t *phase_ns)
{
    int64_t below = (int64_t)b->backend_ns;

    phase_ns[BLKIN_PHASE_BACKEND] =
        b->known || b->remote ? (int64_t)b->backend_ns : NO_PHASE;
    if (b->remote) {
        phase_ns[BLKIN_PHASE_NETWORK] = (int64_t)b->network_ns;
        phase_ns[BLKIN_PHASE_REMOTE] = (int64_t)b->remote_ns;
        below += (int64_t)(b->network_ns + b->remote_ns);
    }
    /* RBD: the librbd call, split by its OSD op (rbd-join.h). */
    for (int i = 0; b->rbd && i < HOSTD_RBD_PHASES; i++) {
        if (i && !b->rbd_osd)
            break;
        phase_ns[BLKIN_PHASE_LIBRBD + i] = (int64_t)b->rbd_ns[i];
        below += (int64_t)b->rbd_ns[i];
    }
    phase_ns[BLKIN_PHASE_QEMU] = dur - below;
}

/*
 * The host side of a span, on whatever the filter knew: from the device's
 * entry (virtio-blk; else the filter's entry) to the device's completion
 * (else the filter's exit), with QEMU's block layer and what was below it
 * in between. Sets the phases inside; returns [in, out] for the caller's.
 */
static void host_phases(const PendingSpan *p, int64_t *in, int64_t *out,
                        Phases *ph)
{
    int64_t start = (int64_t)p->s.start_ns, end = (int64_t)p->s.end_ns;

    *in = p->s.dev_start_ns ? (int64_t)p->s.dev_start_ns : start;
    *out = p->s.dev_end_ns ? (int64_t)p->s.dev_end_ns : end;
    if (p->s.dev_start_ns)
        ph->ns[BLKIN_PHASE_DEVICE] = start - *in;
    below_phases(&p->below, end - start, ph->ns);
    if (p->s.dev_end_ns)
        ph->ns[BLKIN_PHASE_DEVICE_COMPLETION] = *out - end;
    if (p->s.dev_start_ns && p->s.dev_end_ns)
        ph->ns[BLKIN_PHASE_IN_QEMU] = *out - *in;
}

/* Keeps what is below a span within it, so the phases add up. */
static void clamp_below(PendingSpan *p)
{
    uint64_t dur;

    if (p->s.end_ns < p->s.start_ns)
        p->s.end_ns = p->s.start_ns;
    dur = p->s.end_ns - p->s.start_ns;
    if (!p->below.remote) {
        p->below.network_ns = p->below.remote_ns = 0;
    }
    p->below.backend_ns = MIN(p->below.backend_ns, dur);
    p->below.remote_ns = MIN(p->below.remote_ns, dur - p->below.backend_ns);
    p->below.network_ns = MIN(p->below.network_ns,
                              dur - p->below.backend_ns - p->below.remote_ns);
    /* The librbd call within the span (rbd-join gives it so already). */
    uint64_t left =
        dur - p->below.backend_ns - p->below.remote_ns - p->below.network_ns;

    for (int i = 0; i < HOSTD_RBD_PHASES; i++) {
        if (!p->below.rbd)
            p->below.rbd_ns[i] = 0;
        p->below.rbd_ns[i] = MIN(p->below.rbd_ns[i], left);
        left -= p->below.rbd_ns[i];
    }
}

/*
 * A span no guest request joined. On a disk whose guest reports requests
 * (@guest_expected), its time is not a request's total: it is kept apart
 * (SPAN_ALONE). Without an agent the span is all there is of the request.
 */
static void emit_span_only(HostdJoin *j, const PendingSpan *p,
                           bool guest_expected)
{
    HostdJoinedRequest r;
    Phases ph;
    int64_t in, out;

    record_init(j, &r, NULL, p);
    r.merged = p->s.dev_merged > 1 ? p->s.dev_merged : 1;
    phases_init(&ph);
    host_phases(p, &in, &out, &ph);
    ph.ns[guest_expected ? BLKIN_PHASE_SPAN_ALONE : BLKIN_PHASE_TOTAL] =
        out - in;
    j->c.unmatched_span++;
    record_emit(j, &r, &ph);
}

static void emit_joined(HostdJoin *j, const HostdGuestReq *guest,
                        const PendingSpan *p, int64_t c)
{
    HostdGuestReq shifted = *guest;
    const HostdGuestReq *g = &shifted;
    HostdJoinedRequest r;
    Phases ph;
    int64_t in, out;

    if (shifted.queue_ns)
        shifted.queue_ns += c;
    shifted.issue_ns += c;
    shifted.complete_ns += c;
    record_init(j, &r, g, p);
    /* Merged by virtio-blk: the span says how many (device timing), else
     * a span larger than the guest's own range served several. */
    r.merged = p->s.dev_merged > 1     ? p->s.dev_merged
               : p->s.bytes > g->bytes ? 2
                                       : 1;
    phases_init(&ph);
    /* Each phase is a difference of consecutive timestamps: they add up. */
    ph.ns[BLKIN_PHASE_GUEST_QUEUE] =
        g->queue_ns ? g->issue_ns - g->queue_ns : NO_PHASE;
    host_phases(p, &in, &out, &ph);
    ph.ns[p->s.dev_start_ns ? BLKIN_PHASE_GUEST_TO_DEVICE
                            : BLKIN_PHASE_GUEST_TO_QEMU] = in - g->issue_ns;
    ph.ns[p->s.dev_end_ns ? BLKIN_PHASE_DEVICE_TO_GUEST
                          : BLKIN_PHASE_QEMU_TO_GUEST] = g->complete_ns - out;
    ph.ns[BLKIN_PHASE_TOTAL] =
        g->complete_ns - (g->queue_ns ? g->queue_ns : g->issue_ns);
    j->c.matched++;
    if (r.merged > 1)
        j->c.merged++;
    record_emit(j, &r, &ph);
}

static int span_cmp(const PendingSpan *a, const PendingSpan *b)
{
    if (a->s.start_ns != b->s.start_ns)
        return a->s.start_ns < b->s.start_ns ? -1 : 1;
    return a->s.span_id < b->s.span_id ? -1 : a->s.span_id > b->s.span_id;
}

void hostd_join_add_span(HostdJoin *j, const HostdSpan *s,
                         const HostdBelow *below)
{
    PendingSpan p = {.s = *s, .below = *below};
    PendingSpan *a;
    guint i;

    clamp_below(&p);

    if (j->spans->len >= HOSTD_JOIN_MAX_PENDING) {
        /* Expire the oldest in bulk: one move of the array, not one per
         * span, so an overloaded join stays linear. */
        guint n = HOSTD_JOIN_MAX_PENDING / 16;

        for (guint i = 0; i < n; i++) {
            a = &g_array_index(j->spans, PendingSpan, i);
            if (!a->served)
                emit_span_only(j, a, true);
        }
        j->c.overflow += n;
        g_array_remove_range(j->spans, 0, n);
    }
    g_array_append_val(j->spans, p);
    a = (PendingSpan *)j->spans->data;
    for (i = j->spans->len - 1; i > 0 && span_cmp(&a[i - 1], &p) > 0; i--)
        a[i] = a[i - 1];
    a[i] = p;
}

void hostd_join_span_alone(HostdJoin *j, const HostdSpan *s,
                           const HostdBelow *below)
{
    PendingSpan p = {.s = *s, .below = *below};

    clamp_below(&p);
    emit_span_only(j, &p, false);
}

void hostd_join_add_guest(HostdJoin *j, const HostdGuestReq *g)
{
    if (j->guests->len >= HOSTD_JOIN_MAX_PENDING) {
        guint n = HOSTD_JOIN_MAX_PENDING / 16;

        for (guint i = 0; i < n; i++)
            emit_guest_only(j, &g_array_index(j->guests, HostdGuestReq, i));
        j->c.overflow += n;
        g_array_remove_range(j->guests, 0, n);
    }
    g_array_append_val(j->guests, *g);
}

static int guest_cmp(const void *a, const void *b)
{
    const HostdGuestReq *x = a, *y = b;

    if (x->issue_ns != y->issue_ns)
        return x->issue_ns < y->issue_ns ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (int)x->op - (int)y->op;
}

/* First pending span starting at or after @t. */
static guint spans_lower_bound(HostdJoin *j, int64_t t)
{
    const PendingSpan *a = (const PendingSpan *)j->spans->data;
    guint lo = 0, hi = j->spans->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;

        if ((int64_t)a[mid].s.start_ns < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * How far apart this guest request's times and its span's may be: @tol_ns
 * is for the current clock estimate; a request converted with a worse one
 * (it waited for its connection's first) gets its own bound's width.
 */
static int64_t guest_tol(const HostdJoin *j, const HostdGuestReq *g,
                         int64_t tol_ns)
{
    if (g->bound_ns <= j->probe_bound_ns)
        return tol_ns;
    return tol_ns +
           2 * MIN(g->bound_ns - j->probe_bound_ns, HOSTD_GUEST_BOUND_MAX_NS);
}

static PendingSpan *find_span(HostdJoin *j, const HostdGuestReq *g,
                              int64_t tol_ns)
{
    PendingSpan *a = (PendingSpan *)j->spans->data;
    PendingSpan *containing = NULL;
    guint first = spans_lower_bound(j, g->issue_ns - tol_ns);

    for (guint i = first; i < j->spans->len &&
                          (int64_t)a[i].s.start_ns <= g->complete_ns + tol_ns;
         i++) {
        PendingSpan *p = &a[i];

        if (i - first >= HOSTD_JOIN_SCAN_MAX) {
            if (!containing)
                j->c.scan_limited++;
            break;
        }

        if (p->expired || p->s.op != g->op ||
            (int64_t)p->s.end_ns > g->complete_ns + tol_ns)
            continue;
        if (p->s.offset == g->offset && p->s.bytes == g->bytes) {
            if (!p->served)
                return p;
            continue;
        }
        /* Contained, written so that no sum can wrap. */
        if (!containing && p->s.offset <= g->offset && g->bytes <= p->s.bytes &&
            g->offset - p->s.offset <= p->s.bytes - g->bytes &&
            p->served_bytes + g->bytes <= p->s.bytes)
            containing = p;
    }
    return containing;
}

/* Adds a joined pair's constraints to the slot of its second. */
static void causal_add(HostdJoin *j, const HostdGuestReq *g,
                       const PendingSpan *p)
{
    int64_t sec = g->complete_ns / 1000000000LL;
    CausalSlot *s = &j->causal[sec % HOSTD_CAUSAL_WINDOW_S];
    /* QEMU's device times, where known, bound it tighter than the
     * filter's: the device sees a request before the filter does and
     * completes it after. */
    int64_t lo = (int64_t)(p->s.dev_end_ns ? p->s.dev_end_ns : p->s.end_ns) -
                 g->complete_ns;
    int64_t hi =
        (int64_t)(p->s.dev_start_ns ? p->s.dev_start_ns : p->s.start_ns) -
        g->issue_ns;

    if (s->sec != sec) {
        s->sec = sec;
        s->lo = lo;
        s->hi = hi;
        return;
    }
    s->lo = MAX(s->lo, lo);
    s->hi = MIN(s->hi, hi);
}

/* The correction from the last window's constraints and the probe bound. */
static int64_t causal_offset(HostdJoin *j, int64_t now_sec,
                             int64_t probe_bound_ns)
{
    int64_t lo = -probe_bound_ns, hi = probe_bound_ns;
    bool any = false;

    for (int i = 0; i < HOSTD_CAUSAL_WINDOW_S; i++) {
        const CausalSlot *s = &j->causal[i];

        if (!s->sec || s->sec <= now_sec - HOSTD_CAUSAL_WINDOW_S)
            continue;
        lo = MAX(lo, s->lo);
        hi = MIN(hi, s->hi);
        any = true;
    }
    if (!any)
        return j->corr.valid ? j->corr.offset_ns : 0;
    if (lo > hi) {
        j->corr.inconsistent++;
        j->corr.valid = false;
        return 0;
    }
    j->corr.valid = true;
    j->corr.lo_ns = lo;
    j->corr.hi_ns = hi;
    j->corr.offset_ns = lo + (hi - lo) / 2;
    return j->corr.offset_ns;
}

void hostd_join_flush(HostdJoin *j, int64_t watermark_ns, int64_t tol_ns,
                      int64_t probe_bound_ns, bool expect_guest)
{
    /* What the arrays grew to since the last flush (shrink()). */
    j->spans_peak = MAX(j->spans_peak, j->spans->len);
    j->guests_peak = MAX(j->guests_peak, j->guests->len);
    /* A bound this large means there is no estimate (yet). */
    j->probe_bound_ns = probe_bound_ns > 0 && probe_bound_ns < INT64_MAX / 4
                            ? probe_bound_ns
                            : 0;
    /* Without an agent no guest request will come: spans go out at once. */
    int64_t keep_ns = expect_guest ? HOSTD_SPAN_KEEP_NS : 0;
    g_autoptr(GArray) batch = g_array_new(FALSE, FALSE, sizeof(HostdGuestReq));
    g_autoptr(GArray) pairs = g_array_new(FALSE, FALSE, sizeof(Pair));
    int64_t newest_sec = 0, c;
    uint64_t causal_ref;
    guint kept = 0;

    /* Guest requests complete by the watermark form this batch; one whose
     * own clock bound widens its window waits as much longer, so that the
     * spans it may match have come (the watermark allows for tol_ns). */
    for (guint i = 0; i < j->guests->len; i++) {
        HostdGuestReq *g = &g_array_index(j->guests, HostdGuestReq, i);

        if (g->complete_ns + (guest_tol(j, g, tol_ns) - tol_ns) <= watermark_ns)
            g_array_append_val(batch, *g);
        else
            g_array_index(j->guests, HostdGuestReq, kept++) = *g;
    }
    g_array_set_size(j->guests, kept);
    if (batch->len)
        qsort(batch->data, batch->len, sizeof(HostdGuestReq), guest_cmp);
    /* What "about as good as the current estimate" means below; with no
     * current estimate (offline, or before a connection's first), the best
     * in this batch. */
    causal_ref = j->probe_bound_ns;
    if (!causal_ref) {
        for (guint i = 0; i < batch->len; i++) {
            uint64_t b = g_array_index(batch, HostdGuestReq, i).bound_ns;

            if (b && (!causal_ref || b < causal_ref))
                causal_ref = b;
        }
    }

    for (guint i = 0; i < batch->len; i++) {
        const HostdGuestReq *g = &g_array_index(batch, HostdGuestReq, i);
        PendingSpan *p = find_span(j, g, guest_tol(j, g, tol_ns));

        if (!p) {
            emit_guest_only(j, g);
            continue;
        }
        p->served++;
        p->served_bytes += g->bytes;
        /* Its constraints on the offset are about the estimate it was
         * converted with: only one about as good as the current says
         * something about the current. */
        if (g->bound_ns <= 2 * causal_ref)
            causal_add(j, g, p);
        newest_sec = MAX(newest_sec, g->complete_ns / 1000000000LL);
        g_array_append_val(pairs, ((Pair){*g, p}));
    }

    /* Pairs go out once the batch's own constraints are known too. */
    if (pairs->len) {
        c = causal_offset(j, newest_sec, probe_bound_ns);
        for (guint i = 0; i < pairs->len; i++) {
            Pair *pr = &g_array_index(pairs, Pair, i);

            emit_joined(j, &pr->g, pr->p, c);
        }
    }

    /* Spans no guest request can claim any more leave. */
    kept = 0;
    for (guint i = 0; i < j->spans->len; i++) {
        PendingSpan *p = &g_array_index(j->spans, PendingSpan, i);
        bool done = p->served && p->served_bytes >= p->s.bytes;

        if (!done && (int64_t)p->s.end_ns + keep_ns > watermark_ns) {
            g_array_index(j->spans, PendingSpan, kept++) = *p;
            continue;
        }
        if (!p->served)
            emit_span_only(j, p, expect_guest);
    }
    g_array_set_size(j->spans, kept);
    shrink(&j->spans, sizeof(PendingSpan), &j->spans_peak);
    shrink(&j->guests, sizeof(HostdGuestReq), &j->guests_peak);
}
