/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * model-priv.h: what model.c (VMs, disks) and route.c (trace input to
 * them) share. Not for other files.
 */
#ifndef HOSTD_MODEL_PRIV_H
#define HOSTD_MODEL_PRIV_H

#include "model.h"

/* Guest requests can come: from an agent channel, or from a replay. */
static inline bool hostd_vm_expects_guest(const HostdVm *vm)
{
    return vm->agent || vm->model->offline;
}

/* route.c: a top span to its disk (or where it waits); the join outputs
 * the model's objects feed. */
void hostd_route_span(HostdModel *m, const HostdSpan *s);
void hostd_route_remote_emit(void *opaque, const HostdRemoteMatch *r);
void hostd_route_zipkin_emit(void *opaque, const HostdZipkinSpan *zs);
/* A top span, with what was below it, into its disk's join (one per device
 * request when virtio-blk merged several). model-rbd.c's joins end here. */
void hostd_route_disk_join(HostdDisk *d, const HostdSpan *s,
                           const HostdBelow *below);

/* model.c: stopped VMs whose linger is over go (the join tick). */
void hostd_model_expire_stopped(HostdModel *m, int64_t now_ns);

#endif
