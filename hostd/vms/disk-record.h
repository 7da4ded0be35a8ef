/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * disk-record.h: what happens to each joined request of a disk: it is
 * accounted in the disk's windowed and cumulative statistics, offered to its
 * tail capture (the slowest requests, kept whole) and to the exporters.
 */
#ifndef HOSTD_DISK_RECORD_H
#define HOSTD_DISK_RECORD_H

#include "join/joined-request.h"
#include "model.h"

/* Slowest requests kept per disk and window. */
#define HOSTD_TAIL_K 16

/*
 * @now_ns is when it is accounted: live, the time the join emits it (the
 * windows then end now); offline, its completion time. Requests of an op
 * hostd keeps no statistics for (BLKIN_OP_OTHER) are not accounted.
 */
void hostd_disk_record(HostdDisk *d, const HostdJoinedRequest *r,
                       uint64_t now_ns);

#endif
