/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The guest's disks as the host needs to know them: name, major:minor,
 * serial (how the host maps a guest disk to its own) and size, from sysfs.
 */
#ifndef AGENT_DEVMAP_H
#define AGENT_DEVMAP_H

#include <stdbool.h>

#include "blkin-proto.h"

/*
 * Scans /sys/block for disks whose names start with one of the prefixes
 * (NULL-terminated list). Keeps m->generation; returns 0 or -errno.
 * A disk already in prev (same name and major:minor) keeps its serial:
 * reading virtio-blk's serial attribute sends the device a request, and a
 * periodic rescan must not add I/O of its own to what it measures.
 */
int devmap_scan(const char *sysfs_block, const char *const *prefixes,
                const struct blkin_devmap *prev, struct blkin_devmap *m);

/* Same disks with the same attributes (generation ignored). */
bool devmap_equal(const struct blkin_devmap *a, const struct blkin_devmap *b);

/* The kernel's dev_t encoding of a mapped disk, as tracepoints report it. */
bool devmap_has_dev(const struct blkin_devmap *m, uint32_t kdev);

#endif
