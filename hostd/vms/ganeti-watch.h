/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ganeti-watch.h: follows the KVM instances Ganeti runs on this node
 * (--ganeti-runtime; ganeti/ganeti-discovery.h reads Ganeti's runtime
 * files) and registers the traced ones through a registrar (registrar.h),
 * as the libvirt watcher does for domains.
 */
#ifndef HOSTD_GANETI_WATCH_H
#define HOSTD_GANETI_WATCH_H

#include <glib.h>

#include "model.h"

typedef struct HostdGanetiWatch HostdGanetiWatch;

/* Scans @runtime_dir (/var/run/ganeti/kvm-hypervisor) now and every 2 s. */
HostdGanetiWatch *hostd_ganeti_watch_new(HostdModel *model,
                                         const char *runtime_dir);
/* Unregisters the instances it registered. */
void hostd_ganeti_watch_free(HostdGanetiWatch *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdGanetiWatch, hostd_ganeti_watch_free)

#endif
