/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * registrar.h: keeps hostd's model in step with what a watcher finds
 * running (libvirt-watch.h, ganeti-watch.h).
 *
 * A watcher scans its source now and then and offers every traced VM it
 * sees; the registrar registers the ones that are new or changed (only
 * then: registering again resets a VM's statistics), and at the end of a
 * scan unregisters those it registered that were not offered again. One
 * log line per change. It only ever removes VMs it registered itself.
 *
 * Ownership: borrows the model, which must outlive it; freeing it
 * unregisters everything it registered.
 */
#ifndef HOSTD_REGISTRAR_H
#define HOSTD_REGISTRAR_H

#include <glib.h>

#include "model.h"

typedef struct HostdRegistrar HostdRegistrar;

/* @road names the watcher in log lines ("libvirt", "ganeti"). */
HostdRegistrar *hostd_registrar_new(HostdModel *model, const char *road);
void hostd_registrar_free(HostdRegistrar *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdRegistrar, hostd_registrar_free)

void hostd_registrar_scan_begin(HostdRegistrar *r);
/* A running VM with its disks (HostdDiskSpec *; borrowed) and agent socket
 * (NULL: none). */
void hostd_registrar_offer(HostdRegistrar *r, const char *vm,
                           const char *agent_socket, GPtrArray *disks);
/* Unregisters what was not offered since hostd_registrar_scan_begin(). */
void hostd_registrar_scan_end(HostdRegistrar *r);
/* Unregisters everything (the source went away). */
void hostd_registrar_forget_all(HostdRegistrar *r);

#endif
