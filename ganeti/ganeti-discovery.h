/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ganeti-discovery.h: the KVM instances a Ganeti 3.0 node runs, found from
 * Ganeti's own state directory (default /var/run/ganeti/kvm-hypervisor):
 *
 *   conf/<instance>.runtime  Ganeti's serialized KVM runtime: [kvm_cmd,
 *                            nics, hvparams, [[disk, link, uri], ...]];
 *                            each disk has iv_name (disk/0) and hvinfo.id,
 *                            the -drive and -device id (disk-<uuid part>)
 *   pid/<instance>           QEMU's pid (Ganeti starts it -daemonize); as
 *                            for Ganeti, it counts only while that process's
 *                            command line has -name <instance>
 *   ctrl/<instance>.qmp      the QMP socket
 *
 * Disk serials and the agent channel are what QEMU actually runs with, read
 * from /proc/<pid>/cmdline (the kvm_path wrapper adds both; see
 * docs/ganeti.md), so an instance started without them is reported as such.
 */
#ifndef BLKIN_GANETI_DISCOVERY_H
#define BLKIN_GANETI_DISCOVERY_H

#include <glib.h>
#include <sys/types.h>

#define BLKIN_GANETI_DEFAULT_ROOT "/var/run/ganeti/kvm-hypervisor"
#define BLKIN_GANETI_ERROR        (blkin_ganeti_error_quark())

GQuark blkin_ganeti_error_quark(void);

typedef enum {
    BLKIN_GANETI_ERROR_NOT_FOUND, /* no runtime file: not running here */
    BLKIN_GANETI_ERROR_FORMAT,    /* the runtime file is not Ganeti's */
    BLKIN_GANETI_ERROR_IDENTITY,  /* a name no disk identity can have */
} BlkinGanetiError;

typedef struct BlkinGanetiDisk {
    char *target;    /* Ganeti's name: disk/0 */
    char *drive_id;  /* -drive id and -device id: disk-<uuid part> */
    char *uuid;      /* the disk's Ganeti UUID */
    char *serial;    /* the virtio serial QEMU runs with, or NULL */
    char *filter_id; /* the disk identity (libvirt-hooks/disk-id.h,
                      * docs/hostd.md): <instance>/disk/0 */
} BlkinGanetiDisk;

typedef struct BlkinGanetiInstance {
    char *name;
    pid_t pid;          /* 0: not running (stale files, zombie, reused pid) */
    char *qmp_socket;   /* ctrl/<instance>.qmp */
    char *agent_socket; /* the org.blkin.agent.0 channel's socket, or NULL */
    /* Why the running QEMU cannot be traced, or NULL (it can, or it is not
     * running): it does not map blkin's preload object (seen in
     * /proc/<pid>/maps where readable: hostd, with fewer capabilities than
     * QEMU, may not read it), or, from its command line, blkin-kvm started it
     * without the preload (the agent chardev is "blkinagent-nopreload"), or
     * it has no agent channel of blkin-kvm's (its kvm_path is not blkin-kvm).
     * Static text. */
    const char *untraced;
    GPtrArray *disks; /* BlkinGanetiDisk *, owned */
} BlkinGanetiInstance;

void blkin_ganeti_instance_free(BlkinGanetiInstance *inst);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlkinGanetiInstance, blkin_ganeti_instance_free)

/*
 * Reads one instance's runtime file; NULL with @error set (BLKIN_GANETI_ERROR)
 * when there is none, it is not Ganeti's format, or the instance's or a
 * disk's name cannot be part of a disk identity.
 */
BlkinGanetiInstance *
blkin_ganeti_load_instance(const char *root, const char *name, GError **error);

/*
 * The same with a negative errno (-ENOENT no runtime file, -EBADMSG not
 * Ganeti's format, -EINVAL no disk identity), for hostd until it takes the
 * GError form.
 */
int blkin_ganeti_read_instance(const char *root, const char *name,
                               BlkinGanetiInstance **ret);

/*
 * Every instance with a runtime file whose QEMU is running, sorted by name.
 * *@ret is a GPtrArray of BlkinGanetiInstance * (owns them). Unreadable
 * runtime files are skipped. -ENOENT if @root does not exist.
 */
int blkin_ganeti_discover(const char *root, GPtrArray **ret);

/* hostd's disk specs ("target=serial=filter-id"), NULL-terminated. Disks
 * without a serial use the drive id, which no guest will report. */
char **blkin_ganeti_disk_specs(const BlkinGanetiInstance *inst);

#endif
