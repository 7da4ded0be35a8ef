/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The BPF collector's user-space side: loads the programs of
 * bpf/blkin-collect.bpf.c (embedded in the agent as a libbpf skeleton),
 * attaches them to the block tracepoints, tells them which disks to time,
 * and turns the records of their ring buffer into requests.
 *
 * Needs a kernel with BPF_SYSCALL, BTF (/sys/kernel/btf/vmlinux), tp_btf
 * programs, BPF ring buffers and compare-and-swap in BPF: Linux 5.12 or
 * later built with DEBUG_INFO_BTF, as Debian's are. bpf_collector_open()
 * fails cleanly anywhere else, and the agent falls back to perf.
 */
#ifndef AGENT_BPF_COLLECT_H
#define AGENT_BPF_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blkin-proto.h"

struct blkin_collect_bpf;
struct ring_buffer;
struct bpf_blk_bucket;
struct bpf_blk_slot;

typedef void (*bpf_request_fn)(void *user, const struct blkin_request *r);

/*
 * Ownership: owns the loaded skeleton (programs, maps, links), the ring
 * buffer reader and the mapping of the in-flight table.
 */
struct bpf_collector {
    struct blkin_collect_bpf *skel;
    struct ring_buffer *rb;
    struct bpf_blk_bucket *buckets; /* the in-flight table, mmapped */
    struct bpf_blk_slot *slots;
    uint32_t nbuckets;
    size_t ring_bytes;
    bool queue_events; /* block_rq_insert attached */
    uint64_t swept;    /* in-flight entries user space dropped as stale */
    /* The consumer of the drain in progress. */
    bpf_request_fn fn;
    void *user;
    uint32_t got;
};

/*
 * Loads and attaches. @inflight sizes the in-flight table (twice as many
 * slots, in a power of two of buckets), @ring_bytes the ring buffer (a power of
 * two, at least a page). @verbose lets libbpf's warnings through to stderr.
 * Returns 0 or a negative errno; on failure @c holds nothing.
 */
int bpf_collector_open(struct bpf_collector *c, uint32_t inflight,
                       size_t ring_bytes, bool queue_events, bool verbose);
void bpf_collector_close(struct bpf_collector *c);

/* Memory the collector maps (ring buffer and in-flight table), bytes. */
uint64_t bpf_collector_memory(uint32_t inflight, size_t ring_bytes);

/* The fd that polls readable when the programs wake user space. */
int bpf_collector_fd(const struct bpf_collector *c);

/* The disks to time, as the kernel's dev_t (major << 20 | minor). */
void bpf_collector_watch(struct bpf_collector *c, const uint32_t *devs,
                         unsigned n);

/* Hands every finished request in the ring to @fn; returns how many. */
unsigned bpf_collector_drain(struct bpf_collector *c, bpf_request_fn fn,
                             void *user);

/* Drops in-flight entries older than @max_age_ns (completion never seen). */
void bpf_collector_sweep(struct bpf_collector *c, uint64_t now_ns,
                         uint64_t max_age_ns);

/* Requests issued whose completion the programs have not seen (yet): in
 * flight, or completions the kernel did not run the programs for, which
 * are counted as evicted only when their request is reused or ages out. */
uint32_t bpf_collector_in_flight(const struct bpf_collector *c);

/* Cumulative counts: records lost to a full ring, completions without
 * their issue, issues that never completed. */
void bpf_collector_counts(const struct bpf_collector *c, uint64_t *lost,
                          uint64_t *unmatched, uint64_t *evicted);

/* blk_status_t (BLK_STS_*) as the negative errno blk_status_to_errno()
 * gives; -EIO for codes it does not know. */
int32_t bpf_blk_status_errno(uint8_t status);

#endif
