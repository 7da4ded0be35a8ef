/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * domxml.h: blkin's changes to a libvirt domain definition, as pure XML
 * transformations (no libvirt connection), so they can be tested alone.
 *
 * Enabling tracing on a disk adds, to the persistent definition:
 *   - a `-drive` of the blkin filter on top of the disk's format node
 *     (<qemu:commandline>), the filter's preload object (<qemu:env>),
 *   - the device pointed at the filter (<qemu:override>, libvirt >= 8.2),
 *     which needs a user alias (ua-...) on the disk,
 *   - a <serial> when the disk has none (hostd matches guest disks by serial),
 *   - the agent's virtio-serial channel,
 *   - <metadata><blkin:libvirt>: what was enabled, and the definition as it was
 *     before, so that `disable` restores it exactly.
 *
 * Preparing a domain (EnableOptions.prepare_only, `blkin-libvirt prepare`)
 * adds the same minus the filter: the preload, serials, the agent channel
 * and the metadata (at-start="no"), no -drive and no override. QEMU then
 * starts with the blkin driver registered and every disk as libvirt made
 * it, and `blkin-live enable --libvirt` puts the filter on a disk while the
 * domain runs, with the filter id the metadata records.
 */
#pragma once

#include <glib.h>
#include <libxml/tree.h>
#include <stdbool.h>

#define BLKIN_QEMU_NS      "http://libvirt.org/schemas/domain/qemu/1.0"
#define BLKIN_META_NS      "http://blkin.org/libvirt/1"
#define BLKIN_AGENT_PORT   "org.blkin.agent.0"
#define BLKIN_DOMXML_ERROR (blkin_domxml_error_quark())

GQuark blkin_domxml_error_quark(void);

/* One disk of a domain definition, in definition order. */
typedef struct DomDisk {
    char *target;   /* vda */
    char *device;   /* disk, cdrom, floppy, lun */
    char *bus;      /* virtio, sata, ... */
    char *source;   /* file or block device path; NULL otherwise */
    char *serial;   /* NULL when the disk has none */
    char *alias;    /* user alias (ua-...), NULL when none */
    char *node;     /* the node the device is attached to at start */
    unsigned index; /* libvirt-<index>-format */
} DomDisk;

/* One traced disk as recorded in the metadata. */
typedef struct TracedDisk {
    char *target;
    char *serial;
    char *filter_id; /* the blkin filter's id: <domain name>/<target>
                      * (disk-id.h); definitions enabled before that rule
                      * have <uuid>/<target>, used as recorded */
    char *node;      /* the node the filter sits on */
    char *drive;     /* the filter's -drive id */
    bool serial_added;
    bool alias_added;
} TracedDisk;

/* What the metadata of an enabled domain says. */
typedef struct BlkinState {
    char *agent_socket;
    char *preload;
    char *original;    /* the definition before blkin, as libvirt printed it */
    char *fingerprint; /* domxml_fingerprint() of blkin's definition */
    bool prepared;     /* prepared only: no filter at start (at-start="no") */
    GPtrArray *disks;  /* TracedDisk */
} BlkinState;

typedef struct EnableOptions {
    const char *preload;      /* LD_PRELOAD object */
    const char *agent_socket; /* NULL: /run/blkin/agents/<name>.sock */
    bool prepare_only;        /* no filter at start: blkin-live adds it */
} EnableOptions;

void dom_disk_free(DomDisk *d);
void traced_disk_free(TracedDisk *d);
void blkin_state_free(BlkinState *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomDisk, dom_disk_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TracedDisk, traced_disk_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlkinState, blkin_state_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)

/* Parses a domain definition (formatting kept). */
xmlDoc *domxml_parse(const char *xml, GError **error);

/* The domain's name and UUID (NULL when absent). */
char *domxml_name(xmlDoc *doc);
char *domxml_uuid(xmlDoc *doc);

/* All disks in definition order, with the node names libvirt 9.0 gives them
 * when the domain starts. */
GPtrArray *domxml_disks(xmlDoc *doc);

/* The blkin metadata of a definition; NULL (and no error) when blkin is not
 * enabled on it. */
BlkinState *domxml_state(xmlDoc *doc, GError **error);

/* The disks `enable` traces when none are named: every virtio-blk disk. */
GPtrArray *domxml_default_targets(xmlDoc *doc);

/* Checks that every target names a virtio-blk disk of the definition. */
gboolean domxml_check_targets(xmlDoc *doc, GPtrArray *targets, GError **error);

/* The definition `base` (without blkin) with tracing enabled on `targets`,
 * which must not be empty. `original` is stored in the metadata for
 * `disable`; it is usually `base` itself. Refused when the domain's name or
 * a target cannot be part of a disk identity (disk-id.h). */
char *domxml_enable(const char *base, const char *original, GPtrArray *targets,
                    const EnableOptions *opts, GError **error);

/* The definition without anything blkin added (for definitions edited since
 * blkin was enabled, when the stored original is out of date). */
char *domxml_strip(const char *xml, GError **error);

/* True when the two definitions mean the same (whitespace, quoting and
 * namespace declaration placement aside). */
gboolean domxml_equal(const char *a, const char *b);

/* A digest of what the definition means, leaving blkin's metadata out: it
 * tells whether a definition is still the one blkin defined. */
char *domxml_fingerprint(const char *xml);

/* The definition with `fingerprint` recorded in blkin's metadata. */
char *domxml_set_fingerprint(const char *xml, const char *fingerprint,
                             GError **error);

/* A line diff of the two definitions in one normalised layout: lines only in
 * `a` start with '-', lines only in `b` with '+', with some context. */
char *domxml_diff(const char *a, const char *b);
