/*
 * disk-record.h: what happens to each joined request of a disk: it is
 * accounted in the disk's windowed statistics and offered to its tail
 * capture (the slowest requests, kept whole).
 */
#ifndef HOSTD_DISK_RECORD_H
#define HOSTD_DISK_RECORD_H

#include "join.h"
#include "model.h"

/* Slowest requests kept per disk and window. */
#define HOSTD_TAIL_K 16

/*
 * @now_ns is when it is accounted: live, the time the join emits it (the
 * windows then end now); offline, its completion time.
 */
void hostd_disk_record(HostdDisk *d, const HostdJoined *j, uint64_t now_ns);
/* The request's completion on the host clock: guest's, else the span's. */
uint64_t hostd_joined_end_ns(const HostdJoined *j);
/* Converts for the statistics modules; false for an op they do not know. */
bool hostd_joined_to_request(const HostdDisk *d, const HostdJoined *j,
                             HostdJoinedRequest *out);

#endif
