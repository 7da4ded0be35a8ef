/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvirt-watch.h: registers blkin-enabled libvirt domains with hostd's
 * model while they run (--libvirt URI), so no hook or `blkin register` is
 * needed. Without libvirt at build time, hostd_libvirt_watch_new() fails.
 */
#ifndef HOSTD_LIBVIRT_WATCH_H
#define HOSTD_LIBVIRT_WATCH_H

#include "model.h"

#include <glib.h>

typedef struct HostdLibvirtWatch HostdLibvirtWatch;

/* Starts watching on the default main context; never blocks on libvirtd. */
HostdLibvirtWatch *hostd_libvirt_watch_new(HostdModel *model, const char *uri,
                                           GError **err);
void hostd_libvirt_watch_free(HostdLibvirtWatch *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdLibvirtWatch, hostd_libvirt_watch_free)

#endif
