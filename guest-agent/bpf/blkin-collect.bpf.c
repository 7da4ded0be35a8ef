/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The agent's BPF collector: programs on the block tracepoints that time
 * each request inside the guest kernel and hand user space one finished
 * record per request through a BPF ring buffer.
 *
 * Why this shape (docs/guest-agent.md, "Collectors"):
 * - tp_btf programs receive the tracepoint's arguments (the struct request)
 *   directly: nothing is formatted, no trace entry is built, as a perf
 *   sample or a classic tracepoint program would need.
 * - Issue and completion are joined here, by the request's address, the one
 *   exact identity of a request in flight; user space neither sorts nor
 *   matches, and wakes up only on its timer or when the ring is half full.
 * - The in-flight table is a pair of arrays (lookups of array maps are
 *   inlined by the verifier): a hash of buckets of keys, one cache line
 *   each, claimed with a compare-and-swap, and the slots they own; instead
 *   of a BPF hash map, whose update takes a bucket lock and a free-list
 *   element per request.
 * Only the disks user space lists in watch_dev[] are timed.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "blk-kernel.h"
#include "bpf-record.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before loading. */
const volatile __u32 bucket_mask = 0;  /* buckets in the table - 1 */
const volatile __u64 wakeup_bytes = 0; /* wake user space past this */
const volatile __u32 wakeup_shift = 0; /* ... and at each 2^shift beyond */

/* Written by user space while the programs run. */
__u32 watch_dev[BPF_WATCH_MAX];
__u32 nwatch;

struct bpf_blk_counters counters;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __type(key, __u32);
    __type(value, struct bpf_blk_bucket);
    __uint(max_entries, 1); /* sized by user space */
} buckets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __type(key, __u32);
    __type(value, struct bpf_blk_slot);
    __uint(max_entries, 1); /* sized by user space: buckets x 8 */
} slots SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096); /* sized by user space */
} records SEC(".maps");

static __always_inline __u32 rq_dev(const struct request *rq)
{
    struct gendisk *disk;

    if (bpf_core_field_exists(rq->q->disk))
        disk = rq->q->disk;
    else
        disk = rq->rq_disk;
    if (!disk)
        return 0;
    return (__u32)disk->major << 20 | (__u32)disk->first_minor;
}

static __always_inline bool watched(__u32 dev)
{
    __u32 n = nwatch;

    for (__u32 i = 0; i < BPF_WATCH_MAX; i++) {
        if (i >= n)
            break;
        if (watch_dev[i] == dev)
            return true;
    }
    return false;
}

/*
 * The request's address as a number. The verifier allows no arithmetic on a
 * pointer, and reads a spilled pointer back as the pointer; but memory an
 * atomic instruction wrote holds, to it, a plain number. (A privileged
 * program may write an address to memory.)
 */
static __always_inline __u64 rq_key(const struct request *rq)
{
    __u64 v = 0;

    __sync_fetch_and_add(&v, (__u64)rq);
    return *(volatile __u64 *)&v;
}

static __always_inline __u32 bucket_of(__u64 rq)
{
    /* struct request addresses are at least 64-byte aligned. */
    return (__u32)((rq >> 6) * 0x9e3779b97f4a7c15ull >> 32) & bucket_mask;
}

static __always_inline struct bpf_blk_slot *slot_at(__u32 b, __u32 i)
{
    __u32 k = b * BPF_BUCKET_KEYS + i;

    return bpf_map_lookup_elem(&slots, &k);
}

/* The slot holding @rq, or NULL; *key gets its key's address. */
static __always_inline struct bpf_blk_slot *slot_find(__u64 rq, __u64 **key)
{
    __u32 b = bucket_of(rq);
    struct bpf_blk_bucket *bk = bpf_map_lookup_elem(&buckets, &b);

    if (!bk)
        return NULL;
    for (__u32 i = 0; i < BPF_BUCKET_KEYS; i++) {
        if (bk->rq[i] == rq) {
            *key = &bk->rq[i];
            return slot_at(b, i);
        }
    }
    return NULL;
}

/* The slot holding @rq, or a free one claimed for it, or NULL when its
 * bucket is full. *fresh tells which. */
static __always_inline struct bpf_blk_slot *slot_get(__u64 rq, bool *fresh)
{
    __u32 b = bucket_of(rq);
    struct bpf_blk_bucket *bk = bpf_map_lookup_elem(&buckets, &b);

    *fresh = false;
    if (!bk)
        return NULL;
    for (__u32 i = 0; i < BPF_BUCKET_KEYS; i++)
        if (bk->rq[i] == rq)
            return slot_at(b, i);
    for (__u32 i = 0; i < BPF_BUCKET_KEYS; i++) {
        if (bk->rq[i] == 0 &&
            __sync_val_compare_and_swap(&bk->rq[i], 0, rq) == 0) {
            *fresh = true;
            return slot_at(b, i);
        }
    }
    __sync_fetch_and_add(&counters.evicted, 1);
    return NULL;
}

/* blk_fill_rwbs(), except that write-zeroes is 'Z'. */
static __always_inline void fill_rwbs(char *rwbs, __u32 opf)
{
    __u32 op = opf & KREQ_OP_MASK;
    int i = 0;

    if (opf & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_PREFLUSH)))
        rwbs[i++] = 'F';
    switch (op) {
    case KREQ_OP_WRITE:
        rwbs[i++] = 'W';
        break;
    case KREQ_OP_DISCARD:
        rwbs[i++] = 'D';
        break;
    case KREQ_OP_SECURE_ERASE:
        rwbs[i++] = 'D';
        rwbs[i++] = 'E';
        break;
    case KREQ_OP_FLUSH:
        rwbs[i++] = 'F';
        break;
    case KREQ_OP_READ:
        rwbs[i++] = 'R';
        break;
    case KREQ_OP_WRITE_ZEROES:
        rwbs[i++] = 'Z';
        break;
    default:
        rwbs[i++] = 'N';
    }
    if (opf & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_FUA)))
        rwbs[i++] = 'F';
    if (opf & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_RAHEAD)))
        rwbs[i++] = 'A';
    if (opf & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_SYNC)))
        rwbs[i++] = 'S';
    if (opf & (1u << bpf_core_enum_value(enum req_flag_bits, __REQ_META)))
        rwbs[i++] = 'M';
    if (i < BPF_RWBS_LEN)
        rwbs[i] = '\0';
}

/*
 * Whether this record wakes user space: as the unread data crosses
 * wakeup_bytes, and again at each 2^wakeup_shift bytes beyond (in case two
 * CPUs' records crossed together and neither saw its own crossing); not on
 * every record past it. A forced wakeup is an irq_work, i.e. a self-IPI (a
 * VM exit under KVM) and a wakeup of the agent: on every record while the
 * agent waited for a CPU it cost a loaded guest ~10 % of its IOPS.
 * @avail counts this record (reserved before the query).
 */
static __always_inline bool wake_now(__u64 avail)
{
    /* Its space in the ring: 8-byte header, length rounded up to 8. */
    const __u64 rec = ((sizeof(struct bpf_blk_record) + 7) & ~7ull) + 8;

    if (avail < wakeup_bytes || avail < rec)
        return false;
    /* Near full (the last two sixteenths: the ring is 2 x wakeup_bytes),
     * every record: should both marks before have been missed, a full ring
     * takes no more records, so no more chances to wake anyone. */
    if (avail >= 2 * wakeup_bytes - (2ull << wakeup_shift))
        return true;
    return avail - rec < wakeup_bytes ||
           (avail >> wakeup_shift) != ((avail - rec) >> wakeup_shift);
}

SEC("tp_btf/block_rq_insert")
int BPF_PROG(on_insert, struct request *rq)
{
    struct bpf_blk_slot *s;
    bool fresh;

    if (!watched(rq_dev(rq)))
        return 0;
    s = slot_get(rq_key(rq), &fresh);
    if (!s)
        return 0;
    if (!fresh && s->requeued) {
        /* Back in the queue after a requeue: keeps its first queue time. */
        s->requeued = 0;
        return 0;
    }
    if (!fresh && s->issue_ns)
        __sync_fetch_and_add(&counters.evicted, 1); /* never completed */
    s->queue_ns = bpf_ktime_get_ns();
    s->issue_ns = 0;
    s->requeued = 0;
    return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(on_issue, struct request *rq)
{
    struct bpf_blk_slot *s;
    __u32 dev = rq_dev(rq), opf;
    __u64 sector;
    bool fresh;

    if (!watched(dev))
        return 0;
    s = slot_get(rq_key(rq), &fresh);
    if (!s)
        return 0;
    if (fresh) {
        s->queue_ns = 0; /* issued without passing the queue */
    } else if (s->issue_ns && !s->requeued) {
        __sync_fetch_and_add(&counters.evicted, 1); /* never completed */
        s->queue_ns = 0;
    }
    opf = rq->cmd_flags;
    /* blk_rq_trace_sector(): no position for passthrough and flushes. */
    sector = rq->__sector;
    if ((opf & KREQ_OP_MASK) == KREQ_OP_DRV_IN ||
        (opf & KREQ_OP_MASK) == KREQ_OP_DRV_OUT || sector == (__u64)-1)
        sector = 0;
    s->sector = sector;
    s->dev = dev;
    s->bytes = rq->__data_len;
    fill_rwbs(s->rwbs, opf);
    s->requeued = 0;
    s->issue_ns = bpf_ktime_get_ns();
    return 0;
}

SEC("tp_btf/block_rq_requeue")
int BPF_PROG(on_requeue, struct request *rq)
{
    __u64 *key = NULL;
    struct bpf_blk_slot *s = slot_find(rq_key(rq), &key);

    if (s)
        s->requeued = 1;
    return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(on_complete, struct request *rq, __u8 status,
             unsigned int nr_bytes)
{
    __u64 *key = NULL;
    struct bpf_blk_slot *s = slot_find(rq_key(rq), &key);
    struct bpf_blk_record *r;
    __u64 now = bpf_ktime_get_ns(), avail;

    if (!s || !s->issue_ns) {
        if (s && key)
            *key = 0;
        /* Not a loss: the data-less request behind a flush (an empty flush,
         * an fdatasync's zero-byte write), which the flush machinery
         * completes without issuing it (it issued its own flush request). */
        if (nr_bytes && (rq->cmd_flags & KREQ_OP_MASK) != KREQ_OP_FLUSH &&
            watched(rq_dev(rq)))
            __sync_fetch_and_add(&counters.unmatched, 1);
        return 0;
    }
    r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
    if (!r) {
        if (key)
            *key = 0;
        __sync_fetch_and_add(&counters.lost, 1);
        return 0;
    }
    r->queue_ns = s->queue_ns;
    r->issue_ns = s->issue_ns;
    r->complete_ns = now;
    r->sector = s->sector;
    r->dev = s->dev;
    r->bytes = s->bytes;
    __builtin_memcpy(r->rwbs, s->rwbs, BPF_RWBS_LEN);
    r->status = status;
    /* Free the slot only once everything is copied out of it (the store
     * stays after the loads: compiler barrier; the JIT keeps the order). */
    asm volatile("" ::: "memory");
    if (key)
        *(volatile __u64 *)key = 0;
    /* User space drains on a timer; wake it early only when the ring
     * fills up. */
    avail = bpf_ringbuf_query(&records, BPF_RB_AVAIL_DATA);
    bpf_ringbuf_submit(r, wake_now(avail) ? BPF_RB_FORCE_WAKEUP
                                          : BPF_RB_NO_WAKEUP);
    return 0;
}
