/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The few kernel types the agent's BPF programs read, declared with only the
 * fields they use. preserve_access_index makes every access a CO-RE
 * relocation: libbpf finds each field in the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) by name and patches its offset at load time, so
 * one object runs on any kernel with BTF whatever its layout, and nothing
 * depends on the build machine's kernel (no generated vmlinux.h).
 */
#ifndef AGENT_BPF_BLK_KERNEL_H
#define AGENT_BPF_BLK_KERNEL_H

#include <linux/types.h>

#pragma clang attribute push(__attribute__((preserve_access_index)),           \
                             apply_to = record)

struct gendisk {
    int major;
    int first_minor;
};

struct request_queue {
    struct gendisk *disk; /* Linux 5.15 and later */
};

struct request {
    struct request_queue *q;
    unsigned int cmd_flags;
    unsigned int __data_len;
    __u64 __sector;
    struct gendisk *rq_disk; /* before Linux 5.15 */
};

#pragma clang attribute pop

/*
 * The operation: the low 8 bits of cmd_flags (REQ_OP_MASK). These numbers
 * have not changed since Linux 4.11, while the enum holding them was
 * renamed (req_opf, then req_op): constants here.
 */
#define KREQ_OP_MASK         0xffu
#define KREQ_OP_READ         0u
#define KREQ_OP_WRITE        1u
#define KREQ_OP_FLUSH        2u
#define KREQ_OP_DISCARD      3u
#define KREQ_OP_SECURE_ERASE 5u
#define KREQ_OP_WRITE_ZEROES 9u
#define KREQ_OP_DRV_IN       34u
#define KREQ_OP_DRV_OUT      35u

/* The flag bits did move between versions: their values are relocated by
 * name (bpf_core_enum_value); the numbers here are placeholders. */
enum req_flag_bits {
    __REQ_SYNC,
    __REQ_META,
    __REQ_FUA,
    __REQ_PREFLUSH,
    __REQ_RAHEAD,
};

#endif
