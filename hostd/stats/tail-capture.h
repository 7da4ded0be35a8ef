/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tail-capture.h: the K slowest requests of one disk per window, kept whole
 * (every layer's timestamps), for "why was this one slow" questions.
 *
 * "Slow" is hostd_joined_request_latency(): the guest's total when known,
 * else the filter span's duration. Windows and time handling are exactly
 * those of disk-stats.h (1 s, 1 min, 1 h made of complete seconds, time
 * passed in, aligned with align_ns), so a tail and the histograms beside it
 * describe the same requests.
 *
 * How: the second in progress keeps its K slowest in a min-heap (insert
 * O(log K), no allocation). Closed seconds keep theirs in a ring of 60
 * slots; each minute's K slowest (of its 60 seconds) go to a ring of 5,
 * each 5-minute block's to a ring of 12. A window's answer merges the
 * slots it covers. Because every window ends now, a record with K strictly
 * slower records in newer slots of its ring can never be shown again and
 * is dropped when a slot closes: with a steady latency distribution a ring
 * then holds about K * (1 + ln slots) records instead of K * slots.
 *
 * Memory per disk is bounded by (1 + 60 + 5 + 12) * K records
 * (sizeof(HostdJoinedRequest) = 160 bytes) plus ~700 bytes: 99 KB for K = 8,
 * reached only when latencies fall steadily for an hour. Measured by
 * /tail-capture/memory with K = 8: 19 KB for a disk doing 1000 requests/s
 * with lognormal latencies, after an hour; 2 KB idle.
 *
 * Ownership: the capture owns copies of what is added; results are copied
 * into caller-provided arrays. Not thread-safe.
 */
#ifndef HOSTD_STATS_TAIL_CAPTURE_H
#define HOSTD_STATS_TAIL_CAPTURE_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "disk-stats.h"
#include "join/joined-request.h"

#define HOSTD_TAIL_CAPTURE_MAX_K 1024

typedef struct HostdTailCapture HostdTailCapture;

/* @k in 1 .. HOSTD_TAIL_CAPTURE_MAX_K, else NULL. */
HostdTailCapture *hostd_tail_capture_new(unsigned k, uint64_t now_ns,
                                         uint64_t align_ns);
/* Accepts NULL. */
void hostd_tail_capture_free(HostdTailCapture *tc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdTailCapture, hostd_tail_capture_free)

unsigned hostd_tail_capture_k(const HostdTailCapture *tc);
void hostd_tail_capture_advance(HostdTailCapture *tc, uint64_t now_ns);
/* Offers one request; it is copied if among the K slowest of its second. */
void hostd_tail_capture_add(HostdTailCapture *tc, uint64_t now_ns,
                            const HostdJoinedRequest *r);
/*
 * Copies the slowest requests of window @w as of @now_ns into @out (room
 * for @max), slowest first, and returns how many (at most K). @start_ns and
 * @end_ns (may be NULL) receive the window's interval, as in disk-stats.
 * Requests of equal latency at the K-th place may be either.
 */
size_t hostd_tail_capture_get(HostdTailCapture *tc, uint64_t now_ns,
                              HostdStatsWindow w, HostdJoinedRequest *out,
                              size_t max, uint64_t *start_ns, uint64_t *end_ns);
/* Heap bytes held (allocator overhead excluded). */
size_t hostd_tail_capture_memory(const HostdTailCapture *tc);

#endif
