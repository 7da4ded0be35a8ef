/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * disk-stats.h: one VM disk's latency statistics over sliding windows.
 *
 * Per op (read, write, flush, discard, write-zeroes) and per phase (guest
 * queue, guest -> QEMU, QEMU, backend, QEMU -> guest, total) a latency
 * histogram, plus per op request and byte counts, plus counters of what
 * could not be joined or was lost (unmatched guest requests, unmatched
 * spans, agent drops, LTTng discarded events).
 *
 * Time is never read here: every call takes the host CLOCK_MONOTONIC time
 * "now", so tests (and offline trace replays) are deterministic. Time is cut
 * into whole seconds and minutes of (now + align_ns); hostd passes
 * align_ns = (CLOCK_REALTIME - CLOCK_MONOTONIC) mod 60 s so that minutes end
 * on wall-clock minutes, which is how the history store keys them.
 *
 * Accounting: a request (or counter increment) is accounted in the second
 * containing the "now" passed with it; a "now" before the current second
 * (time never goes back here) counts in the current second. hostd passes
 * the request's completion time, or the time the join emitted it.
 *
 * Windows, all made of complete seconds (the second in progress is never
 * shown, so a window never changes shape while it is being read):
 *   1 s   the last complete second: [S-1 s, S), where S is the start of the
 *         current second.
 *   1 min the last 60 complete seconds: [S-60 s, S). Slides every second.
 *   1 h   the last 12 complete 5-minute blocks plus the complete minutes and
 *         seconds since: [B-60 min, S), where B is the start of the current
 *         5-minute block; between 60 and 65 minutes long. Its content
 *         changes every second, its start every 5 minutes.
 * A returned rollup carries its exact [start_ns, end_ns) (never before the
 * disk stats were created), so rates (IOPS, bytes/s) divide by the true
 * duration.
 *
 * How: the current second accumulates in mutable histograms; when it ends
 * it is frozen into a compact serialized blob in a ring of 60 per-second
 * slots, and folded into a running 1-minute sum (the slot leaving the ring
 * is subtracted, the new one added). When a minute ends, the 1-minute sum
 * *is* that minute: it is handed to the minute callback (-> history store)
 * and kept; every 5 minutes the minutes collapse into one block in a ring
 * of 12, with a running 1-hour sum. Frozen blobs cost 1-3 bytes per
 * occupied bucket instead of 8, so the two running sums are frozen too and
 * thawed only when they change (once a second, once in 5 minutes): CPU is
 * cheap here (~0.4 us per request at 1000 IOPS, stats and tail capture
 * together, -O2), memory is what 400 disks multiply. Blocks of 5 minutes
 * rather than 60 per-minute slots for the hour: a busy minute fills most
 * buckets its distribution spans, so 60 minute slots cost ~4x the 12
 * blocks plus <= 5 minutes.
 *
 * Memory per disk is bounded: 60 + 5 + 12 frozen slots, 2 frozen sums and
 * the current second's 5 x 6 sparse histograms, each at most 3776 buckets.
 * Measured by the test /disk-stats/memory (every op and phase fed lognormal
 * latencies, 70 % reads, both windows full): ~1 KB for an idle disk,
 * ~245 KB for a disk doing 100 IOPS, ~600 KB at 1000 IOPS (reads and writes
 * only: ~180 KB and ~430 KB). At 1000 IOPS the 60 second slots are 40 % of
 * it. The worst case, every histogram spanning all 64 octaves, is some
 * 30 MB and takes distributions no disk produces.
 *
 * Ownership: HostdDiskStats owns everything inside; rollups returned to the
 * caller are the caller's (free with hostd_stats_rollup_clear()); the
 * rollup passed to the minute callback is borrowed for the callback only.
 * Not thread-safe. Integer returns are 0 or a negative errno.
 */
#ifndef HOSTD_STATS_DISK_STATS_H
#define HOSTD_STATS_DISK_STATS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "join/joined-request.h"
#include "latency-hist.h"

#define HOSTD_NS_PER_SEC UINT64_C(1000000000)

/* Append only: serialized rollups index counters by these numbers. */
typedef enum HostdStatsCounter {
    HOSTD_STATS_UNMATCHED_GUEST, /* guest requests no span was found for */
    HOSTD_STATS_UNMATCHED_SPAN,  /* spans no guest request was found for */
    HOSTD_STATS_AGENT_DROPS,     /* records the guest agent dropped */
    HOSTD_STATS_LTTNG_DISCARDED, /* events LTTng discarded */
    HOSTD_STATS_COUNTER__N,
} HostdStatsCounter;

typedef enum HostdStatsWindow {
    HOSTD_STATS_WINDOW_1S,
    HOSTD_STATS_WINDOW_1M,
    HOSTD_STATS_WINDOW_1H,
    HOSTD_STATS_WINDOW__N,
} HostdStatsWindow;

extern const char *const hostd_stats_counter_names[HOSTD_STATS_COUNTER__N];
extern const char *const hostd_stats_window_names[HOSTD_STATS_WINDOW__N];

/*
 * Everything known about one disk over one interval. Zero-initialize
 * (= empty) before first use; release with hostd_stats_rollup_clear().
 */
typedef struct HostdStatsRollup {
    uint64_t start_ns; /* [start_ns, end_ns), host CLOCK_MONOTONIC (history:
                          whatever time base the writer used) */
    uint64_t end_ns;
    uint64_t requests[BLKIN_OP__N];
    uint64_t bytes[BLKIN_OP__N];
    uint64_t counters[HOSTD_STATS_COUNTER__N];
    /* Owned; NULL when the op/phase has no sample. */
    HostdLatencyHist *hist[BLKIN_OP__N][BLKIN_PHASE__N];
} HostdStatsRollup;

/* Frees the histograms and zeroes @r (NULL accepted). */
void hostd_stats_rollup_clear(HostdStatsRollup *r);
bool hostd_stats_rollup_is_empty(const HostdStatsRollup *r);
/* @dst += @src; the interval becomes the smallest covering both (an empty
 * interval, start == end == 0, does not count). */
void hostd_stats_rollup_merge(HostdStatsRollup *dst,
                              const HostdStatsRollup *src);
/* Deep copy into @dst, which is cleared first. */
void hostd_stats_rollup_copy(HostdStatsRollup *dst,
                             const HostdStatsRollup *src);
/* Requests of @op per second over [start_ns, end_ns); 0 if empty. */
double hostd_stats_rollup_iops(const HostdStatsRollup *r, enum blkin_op op);
double hostd_stats_rollup_bytes_per_sec(const HostdStatsRollup *r,
                                        enum blkin_op op);

/*
 * Serialized form (without the interval, which the container keys):
 * version byte, LEB128 varints for the numbers of ops, phases and counters
 * the writer knew, the requests, bytes and counters, then per non-empty
 * histogram its op, phase, length and hostd_latency_hist_serialize() bytes.
 * A reader accepts blobs written with as many or fewer ops/phases/counters
 * than it knows (growing the enums stays readable).
 */
void hostd_stats_rollup_serialize(const HostdStatsRollup *r, GByteArray *out);
/* Parses exactly @len untrusted bytes into @out (cleared first, left
 * empty on failure). -EBADMSG if malformed. */
int hostd_stats_rollup_deserialize(const void *data, size_t len,
                                   HostdStatsRollup *out);

typedef struct HostdDiskStats HostdDiskStats;

/*
 * Called from within add/count/advance/window when a minute closes, with
 * that minute's rollup (only for minutes that saw anything), and from
 * hostd_disk_stats_flush(). The rollup's interval is the part of the minute
 * actually observed: it starts no earlier than the disk stats were created
 * and, for a checkpoint, ends at its time. The callback must not call into
 * the same HostdDiskStats (it runs in the middle of closing a second).
 */
typedef void (*HostdMinuteClosedFn)(void *opaque,
                                    const HostdStatsRollup *minute);

/* @now_ns: the current host CLOCK_MONOTONIC time. */
HostdDiskStats *hostd_disk_stats_new(uint64_t now_ns, uint64_t align_ns,
                                     HostdMinuteClosedFn minute_closed,
                                     void *opaque);
/* Accepts NULL. The minute in progress is dropped: call
 * hostd_disk_stats_flush() first to keep it. */
void hostd_disk_stats_free(HostdDiskStats *ds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdDiskStats, hostd_disk_stats_free)

/* Moves time forward, closing seconds and minutes (and calling the minute
 * callback). Every other call taking now_ns does this first. */
void hostd_disk_stats_advance(HostdDiskStats *ds, uint64_t now_ns);
/*
 * Accounts one joined request: requests and bytes of its op, a sample in
 * each phase's histogram whose bit is set in phase_valid, and the
 * UNMATCHED_GUEST / UNMATCHED_SPAN counters for requests flagged so (do not
 * count those again with hostd_disk_stats_count()). -EINVAL for an unknown
 * op, nothing accounted.
 */
int hostd_disk_stats_add(HostdDiskStats *ds, uint64_t now_ns,
                         const HostdJoinedRequest *r);
void hostd_disk_stats_count(HostdDiskStats *ds, uint64_t now_ns,
                            HostdStatsCounter c, uint64_t n);
/* A copy of window @w as of @now_ns into @out (cleared first). */
/* When the statistics began (the caller's monotonic clock, as @now_ns of
 * hostd_disk_stats_new()): no window starts before it. */
uint64_t hostd_disk_stats_since(const HostdDiskStats *ds);
int hostd_disk_stats_window(HostdDiskStats *ds, uint64_t now_ns,
                            HostdStatsWindow w, HostdStatsRollup *out);
/*
 * The closed seconds of the 1-minute window as of @now_ns, oldest first,
 * each that saw anything, as a rollup borrowed for the call whose interval
 * is that second: their sum is hostd_disk_stats_window(1 min). Returns the
 * windows' end (the start of the second in progress). For views over time
 * (timeline.h).
 */
typedef void (*HostdStatsSecondFn)(void *opaque, const HostdStatsRollup *sec);
uint64_t hostd_disk_stats_seconds(HostdDiskStats *ds, uint64_t now_ns,
                                  HostdStatsSecondFn fn, void *opaque);
/*
 * Checkpoint: hands the minute in progress, as seen so far (complete
 * seconds of the minute plus the second in progress), to the minute
 * callback, with end_ns = @now_ns + 1. Nothing changes inside: the minute is
 * handed over again, complete, when it closes, and the history store
 * replaces the checkpoint then (a writer's later write of a minute replaces
 * its earlier one: history-store.h). Call periodically and at
 * shutdown to bound what a crash loses.
 */
void hostd_disk_stats_flush(HostdDiskStats *ds, uint64_t now_ns);
/* Heap bytes held (allocator overhead excluded). */
size_t hostd_disk_stats_memory(const HostdDiskStats *ds);

#endif
