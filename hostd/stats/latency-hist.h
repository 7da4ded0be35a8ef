/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * latency-hist.h: log-linear histogram of nanosecond latencies.
 *
 * Buckets: values below 64 ns have a bucket each; above, every power of two
 * [2^e, 2^(e+1)) is split into 64 equal buckets. The whole uint64_t range
 * fits in HOSTD_LATENCY_HIST_BUCKETS (3776) buckets. A quantile is reported
 * as the middle of the bucket holding the exact rank, clamped to the exact
 * min and max, so it is within half a bucket of the true value: at most
 * 1/128 = 0.78 % relative error at any magnitude (1 ns .. 584 years).
 * 64 sub-buckets rather than 128 halve the memory while keeping the 1 %
 * promise with margin.
 *
 * Storage is sparse: a sorted array of occupied buckets, 8 bytes each
 * (bucket index and count packed in one word), grown on demand. A typical
 * disk's minute spans a few hundred buckets; an empty histogram costs only
 * its 48-byte header. Counts per bucket saturate at 2^52 - 1 and the sum at
 * UINT64_MAX; neither is reachable by a real disk within years.
 *
 * Serialized form (SQLite blobs, frozen window slots): a version byte, the
 * sub-bucket bits, then LEB128 varints: bucket count, total count, sum, min,
 * max, and per bucket the index delta (shifted left, low bit set when a
 * count follows) and, unless it is 1, the count minus 2: a sparse bucket
 * costs one byte, a dense one two or three. Deserialization treats the
 * bytes as hostile: every field is range- and consistency-checked and the
 * whole input must be consumed.
 *
 * Ownership: a HostdLatencyHist owns its bucket array; functions taking a
 * const histogram only read it. Not thread-safe; callers serialize access.
 * Integer returns are 0 or a negative errno.
 */
#ifndef HOSTD_STATS_LATENCY_HIST_H
#define HOSTD_STATS_LATENCY_HIST_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOSTD_LATENCY_HIST_SUB_BITS 6
#define HOSTD_LATENCY_HIST_BUCKETS  3776
/* Largest count a single bucket holds (saturates there). */
#define HOSTD_LATENCY_HIST_COUNT_MAX ((UINT64_C(1) << 52) - 1)

typedef struct HostdLatencyHist HostdLatencyHist;

/* One occupied bucket, as iteration reports it. */
typedef struct HostdLatencyBucket {
    uint64_t lower;      /* smallest value of the bucket */
    uint64_t upper;      /* largest value of the bucket (inclusive: the
                            Prometheus "le" bound) */
    uint64_t count;      /* samples in this bucket */
    uint64_t cumulative; /* samples in this and all lower buckets */
} HostdLatencyBucket;

HostdLatencyHist *hostd_latency_hist_new(void);
/* Accepts NULL. */
void hostd_latency_hist_free(HostdLatencyHist *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdLatencyHist, hostd_latency_hist_free)
/* Deep copy. */
HostdLatencyHist *hostd_latency_hist_copy(const HostdLatencyHist *h);
/* Empties @h and releases its bucket array. */
void hostd_latency_hist_reset(HostdLatencyHist *h);

/* Records @n samples of value @ns. -ENOMEM never happens (GLib aborts). */
void hostd_latency_hist_add_n(HostdLatencyHist *h, uint64_t ns, uint64_t n);
static inline void hostd_latency_hist_add(HostdLatencyHist *h, uint64_t ns)
{
    hostd_latency_hist_add_n(h, ns, 1);
}
/* @dst += @src. */
void hostd_latency_hist_merge(HostdLatencyHist *dst,
                              const HostdLatencyHist *src);
/*
 * @h -= @part, where @part is a histogram previously merged into @h (a
 * window slot that expires). -ERANGE, leaving @h unchanged, if some bucket
 * of @part holds more than @h's. Exact min/max cannot be subtracted: when
 * @part may have held @h's min or max, they are replaced by the bounds of
 * @h's lowest/highest occupied bucket and 1 is returned, so that a caller
 * who knows the remaining parts' extremes can restore them with
 * hostd_latency_hist_set_extremes(); otherwise 0.
 */
int hostd_latency_hist_subtract(HostdLatencyHist *h,
                                const HostdLatencyHist *part);
/* Restores exact extremes; -EINVAL unless @min lies in the lowest and @max
 * in the highest occupied bucket. */
int hostd_latency_hist_set_extremes(HostdLatencyHist *h, uint64_t min,
                                    uint64_t max);

uint64_t hostd_latency_hist_count(const HostdLatencyHist *h);
uint64_t hostd_latency_hist_sum(const HostdLatencyHist *h);
/* 0 when empty. */
uint64_t hostd_latency_hist_min(const HostdLatencyHist *h);
uint64_t hostd_latency_hist_max(const HostdLatencyHist *h);
/* Occupied buckets. */
size_t hostd_latency_hist_n_buckets(const HostdLatencyHist *h);
/* Heap bytes held, header included (allocator overhead excluded). */
size_t hostd_latency_hist_memory(const HostdLatencyHist *h);

/*
 * The value at rank ceil(@q * count) (nearest-rank definition, rank at
 * least 1), within 1/128 relative error; @q = 0 gives min, 1 gives max.
 * 0 when empty. @q outside [0, 1] is clamped.
 */
uint64_t hostd_latency_hist_quantile(const HostdLatencyHist *h, double q);
/* The rank hostd_latency_hist_quantile() looks up, for callers (and tests)
 * that need the exact definition. */
uint64_t hostd_latency_hist_rank(double q, uint64_t count);

/*
 * Iteration over occupied buckets in increasing order (Prometheus export:
 * "le" = upper, value = cumulative):
 *     HostdLatencyHistIter it;
 *     hostd_latency_hist_iter_init(&it, h);
 *     while (hostd_latency_hist_iter_next(&it, &bucket)) ...
 * @h must not change meanwhile. The iterator borrows @h.
 */
typedef struct HostdLatencyHistIter {
    const HostdLatencyHist *h;
    size_t i;
    uint64_t cumulative;
} HostdLatencyHistIter;

void hostd_latency_hist_iter_init(HostdLatencyHistIter *it,
                                  const HostdLatencyHist *h);
bool hostd_latency_hist_iter_next(HostdLatencyHistIter *it,
                                  HostdLatencyBucket *out);
/* Bounds of the bucket @ns falls in (for exporters with fixed layouts). */
void hostd_latency_hist_bucket_bounds(uint64_t ns, uint64_t *lower,
                                      uint64_t *upper);

/* Appends @h's serialized form to @out. */
void hostd_latency_hist_serialize(const HostdLatencyHist *h, GByteArray *out);
/*
 * Parses exactly @len bytes. On success *@out is a new histogram (caller
 * owns). -EBADMSG for anything malformed or inconsistent.
 */
int hostd_latency_hist_deserialize(const void *data, size_t len,
                                   HostdLatencyHist **out);
/* Reads only the header of a serialized histogram (no allocation, light
 * checks). -EBADMSG if it cannot be parsed. */
int hostd_latency_hist_peek(const void *data, size_t len, uint64_t *count,
                            uint64_t *min, uint64_t *max);

#endif
