/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * timeline.h: one VM disk's latency over time, in columns, for the heatmap
 * and the percentile lines of the HTML view (docs/hostd.md, "The view").
 *
 * A column is one interval of a window: a second of the 1-minute window, or
 * a minute of the 1-hour window (the minute in progress as its complete
 * seconds). Per op it holds the requests and bytes, the total phase's p50,
 * p90, p99 and max, and the total phase's histogram folded into heatmap
 * rows. Rows are log-linear, four per power of two, from 1,024 ns to 2^34
 * ns (17.2 s), with one row below and one above: their bounds are bounds of
 * latency-hist's buckets (64 per power of two), so a row's count is exactly
 * the sum of the buckets it covers, and the columns of a window add up to
 * what the report of that window counts (disk-stats.h), bucket for bucket.
 *
 * Where columns come from: seconds are read from disk-stats' ring of
 * closed seconds when asked for; minutes are summarised here when
 * disk-stats closes them (its minute callback), because disk-stats keeps
 * only 5-minute blocks of the hour. A minute is kept as a few hundred
 * bytes (only the ops it saw, 5 bytes per occupied row): an idle disk costs
 * 0.5 KB, one doing 100 IOPS of reads and writes 26 KB for the hour
 * (/timeline/memory), a tenth of what its disk-stats hold; at most 65 x (5
 * ops x 98 rows x 5 + 370) bytes, 183 KB.
 *
 * Ownership: HostdTimeline owns its summaries; columns handed out are the
 * caller's (hostd_timeline_column_clear). Not thread-safe.
 */
#ifndef HOSTD_STATS_TIMELINE_H
#define HOSTD_STATS_TIMELINE_H

#include <glib.h>
#include <stdint.h>

#include "disk-stats.h"

/* Row 0: below 2^10 ns; rows 1..96: [2^e (1 + q/4), 2^e (1 + (q+1)/4))
 * for e = 10..33, q = 0..3; row 97: 2^34 ns and above. */
#define HOSTD_TIMELINE_ROWS    98
#define HOSTD_TIMELINE_ROW_MIN 10 /* log2 of row 1's lower bound */
#define HOSTD_TIMELINE_ROW_MAX 34 /* log2 of the last row's lower bound */
/* Minutes kept: the 1-hour window is 60 to 65 minutes long. */
#define HOSTD_TIMELINE_MINUTES 65

/* The row of a latency, and a row's smallest latency. */
unsigned hostd_timeline_row(uint64_t ns);
uint64_t hostd_timeline_row_lower(unsigned row);

typedef struct HostdTimelineCell {
    uint32_t row;
    uint32_t count; /* saturates at UINT32_MAX */
} HostdTimelineCell;

typedef struct HostdTimelineOp {
    uint64_t requests, bytes;
    uint64_t samples; /* requests with a total phase: the cells' sum */
    uint64_t p50_ns, p90_ns, p99_ns, max_ns;
    uint32_t n_cells;
    HostdTimelineCell *cells; /* owned; by row, counts > 0 */
} HostdTimelineOp;

typedef struct HostdTimelineColumn {
    uint64_t start_ns, end_ns; /* host CLOCK_MONOTONIC, as the rollup's */
    HostdTimelineOp ops[BLKIN_OP__N];
} HostdTimelineColumn;

/* Summarises @r into @c (overwritten; clear it afterwards). */
void hostd_timeline_column_init(HostdTimelineColumn *c,
                                const HostdStatsRollup *r);
void hostd_timeline_column_clear(HostdTimelineColumn *c);
/* A GArray of HostdTimelineColumn that clears them when freed. */
GArray *hostd_timeline_columns_new(void);

typedef struct HostdTimeline HostdTimeline;

/* @align_ns: the disk stats' alignment (disk-stats.h), so that minutes are
 * the same minutes. */
HostdTimeline *hostd_timeline_new(uint64_t align_ns);
void hostd_timeline_free(HostdTimeline *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdTimeline, hostd_timeline_free)

/*
 * A minute from the disk stats' minute callback: closed, or a checkpoint of
 * the minute in progress. A later one of the same minute replaces an
 * earlier one, as in the history store.
 */
void hostd_timeline_minute(HostdTimeline *t, const HostdStatsRollup *minute);

/*
 * Appends to @out (hostd_timeline_columns_new) the columns of window @w of
 * @ds as of @now_ns, oldest first, only those that saw anything: for
 * HOSTD_STATS_WINDOW_1M its seconds, for HOSTD_STATS_WINDOW_1H its closed
 * minutes and the seconds of the minute in progress. -EINVAL for 1s.
 */
int hostd_timeline_columns(HostdTimeline *t, HostdDiskStats *ds,
                           uint64_t now_ns, HostdStatsWindow w, GArray *out);

/* Heap bytes held (allocator overhead excluded). */
size_t hostd_timeline_memory(const HostdTimeline *t);

#endif
