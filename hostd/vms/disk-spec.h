/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * disk-spec.h: a traced disk as it is registered with hostd, typed.
 *
 * Every registration road (the config file, --vm, `blkin register` over the
 * control socket, the libvirt and Ganeti watchers) builds these at its edge;
 * strings are parsed only there, and the model never sees one. The rule for
 * filter ids is in docs/hostd.md ("Disk identity").
 */
#ifndef HOSTD_DISK_SPEC_H
#define HOSTD_DISK_SPEC_H

#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct HostdDiskSpec {
    char *target;    /* the guest-visible name operators use: vda */
    char *serial;    /* what the agent's device map reports for it */
    char *filter_id; /* the blkin filter node's id option */
    /* A disk another node serves: the filter id of the server-side blkin
     * node there (remote-join.h), or NULL. */
    char *remote_id;
} HostdDiskSpec;

/* Validates each part (printable, no spaces, at most 255 bytes; remote_id
 * may be NULL); copies them. */
HostdDiskSpec *hostd_disk_spec_new(const char *target, const char *serial,
                                   const char *filter_id, const char *remote_id,
                                   GError **err);
void hostd_disk_spec_free(HostdDiskSpec *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdDiskSpec, hostd_disk_spec_free)

/* The operators' text form: TARGET=SERIAL=FILTER-ID[=REMOTE-FILTER-ID]
 * (--vm, the config file, `blkin register --disk`). */
HostdDiskSpec *hostd_disk_spec_parse(const char *text, GError **err);
/* The control protocol's form: {"target", "serial", "filter_id",
 * "remote_id" (optional)}, all strings (docs/hostd.md). */
HostdDiskSpec *hostd_disk_spec_from_json(JsonObject *o, GError **err);
/* Adds @s as the control protocol's object to @b (at a value position). */
void hostd_disk_spec_to_json(const HostdDiskSpec *s, JsonBuilder *b);
/* Back to the text form, for log lines. */
char *hostd_disk_spec_to_string(const HostdDiskSpec *s);
gboolean hostd_disk_spec_equal(const HostdDiskSpec *a, const HostdDiskSpec *b);

/* A GPtrArray of HostdDiskSpec * that frees them. */
GPtrArray *hostd_disk_specs_new(void);

#endif
