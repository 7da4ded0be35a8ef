/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the agent's BPF programs (bpf/blkin-collect.bpf.c) and its user-space
 * side (bpf-collect.c) share: the record one finished request becomes in the
 * BPF ring buffer, and the slot a request in flight occupies in the
 * in-flight table. Both sides compile this header, so it uses only the
 * kernel's fixed-width types.
 */
#ifndef AGENT_BPF_RECORD_H
#define AGENT_BPF_RECORD_H

#include <linux/types.h>

/*
 * The request's operation and flags travel as the kernel's own trace string
 * (blk_fill_rwbs: "R", "WS", "FWFS", ...), written by the program the way the
 * kernel writes it for the tracepoints' rwbs field, so that user space reads
 * both collectors' requests with one parser (blk_parse_rwbs). Unlike 6.1's
 * blk_fill_rwbs, write-zeroes is written 'Z' instead of 'N'.
 */
#define BPF_RWBS_LEN 7 /* not NUL-terminated when full */

/* One finished request, 48 bytes (+ 8 of ring-buffer header). */
struct bpf_blk_record {
    __u64 queue_ns; /* block_rq_insert, 0 when not seen */
    __u64 issue_ns; /* block_rq_issue */
    __u64 complete_ns;
    __u64 sector; /* 512-byte units; 0 for flushes and passthrough */
    __u32 dev;    /* major << 20 | minor, the kernel's dev_t */
    __u32 bytes;
    char rwbs[BPF_RWBS_LEN];
    __u8 status; /* blk_status_t: 0 or a BLK_STS_* code */
};

/*
 * The in-flight table: requests between insert (or issue) and completion,
 * keyed by the address of their struct request. Keys live in buckets of
 * BPF_BUCKET_KEYS, one cache line each, so that looking a request up reads
 * one line of keys and then its one slot: key i of bucket b owns slot
 * b * BPF_BUCKET_KEYS + i. A zero key is a free slot. A request whose
 * bucket is full is not timed (counted as evicted). Both arrays are mmapped
 * by user space, which frees keys older than the agent's age limit
 * (requests whose completion it never saw).
 */
#define BPF_BUCKET_KEYS 8

struct bpf_blk_bucket {
    __u64 rq[BPF_BUCKET_KEYS];
};

struct bpf_blk_slot {
    __u64 queue_ns;
    __u64 issue_ns;
    __u64 sector;
    __u32 dev;
    __u32 bytes;
    char rwbs[BPF_RWBS_LEN];
    __u8 requeued; /* block_rq_requeue: the next insert keeps queue_ns */
};

/* Counters the programs keep in their .bss; user space reads them. */
struct bpf_blk_counters {
    __u64 lost;      /* ring buffer full: a finished request was lost */
    __u64 unmatched; /* completion of a watched disk without its issue */
    __u64 evicted;   /* no free slot, or a slot reused before completion */
};

#define BPF_WATCH_MAX 64

#endif
