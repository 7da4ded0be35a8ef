/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * disk-id.h: blkin's disk identity, the `id` option of a disk's blkin filter
 * node, by which hostd attaches QEMU's spans to a registered disk
 * (docs/hostd.md, "Disk identity"):
 *
 *     <vm>/<target>
 *
 * <vm> is the VM's name as hostd registers and reports it (the libvirt
 * domain's name, the Ganeti instance's name, QEMU's -name); <target> is the
 * guest-visible disk name the report shows (libvirt's target dev "vda",
 * Ganeti's "disk/0"). blkin-libvirt, Ganeti discovery and blkin-live all make
 * ids with blkin_disk_id(), so a disk traced by any of them has one identity.
 *
 * Header only, so that every user has it without linking anything:
 * libvirt-hooks/domxml.c is compiled into hostd as well as into
 * blkin-libvirt, and ganeti/ and live/ are built apart from libvirt-hooks/.
 */
#pragma once

#include <glib.h>
#include <string.h>

/* hostd's limit for a name or a filter id. */
#define BLKIN_DISK_ID_MAX   255
#define BLKIN_DISK_ID_ERROR (blkin_disk_id_error_quark())

typedef enum {
    BLKIN_DISK_ID_ERROR_INVALID, /* a piece breaks the rule */
} BlkinDiskIdError;

static inline GQuark blkin_disk_id_error_quark(void)
{
    return g_quark_from_static_string("blkin-disk-id-error-quark");
}

/*
 * Whether @piece may be the <vm> (@target FALSE) or the <target> (@target
 * TRUE) of a disk identity. Allowed: ASCII letters, digits, '.', '_' and
 * '-'; in a target also '/' between two of those (Ganeti's "disk/0"). So
 * the VM is everything before the id's first '/', and nothing in an id needs
 * quoting where ids travel: QemuOpts (-drive, drive_add: ',' and spaces),
 * the JSON of a json: filename ('"', '\\'), hostd's disk specs
 * (TARGET=SERIAL=ID, ';' and ',' between disks, ':' in --vm), and
 * tab-separated listings. @what names the piece in the error ("VM name").
 */
static inline gboolean blkin_disk_id_check(const char *what, const char *piece,
                                           gboolean target, GError **error)
{
    const char *allowed = target ? "letters, digits, '.', '_', '-', and '/' "
                                   "between them"
                                 : "letters, digits, '.', '_' and '-'";
    size_t len = piece ? strlen(piece) : 0;

    if (len == 0) {
        g_set_error(error, BLKIN_DISK_ID_ERROR, BLKIN_DISK_ID_ERROR_INVALID,
                    "the %s is empty; blkin's disk identity is "
                    "<vm>/<target>",
                    what);
        return FALSE;
    }
    for (size_t i = 0; i < len; i++) {
        char c = piece[i];

        if (g_ascii_isalnum(c) || c == '.' || c == '_' || c == '-')
            continue;
        if (c == '/' && target && i > 0 && i + 1 < len && piece[i + 1] != '/')
            continue;
        if (g_ascii_isgraph(c))
            g_set_error(error, BLKIN_DISK_ID_ERROR, BLKIN_DISK_ID_ERROR_INVALID,
                        "%s '%s' cannot be part of blkin's disk identity "
                        "<vm>/<target>: '%c' at offset %zu (allowed: %s)",
                        what, piece, c, i, allowed);
        else
            g_set_error(error, BLKIN_DISK_ID_ERROR, BLKIN_DISK_ID_ERROR_INVALID,
                        "%s '%s' cannot be part of blkin's disk identity "
                        "<vm>/<target>: byte 0x%02x at offset %zu (allowed: "
                        "%s)",
                        what, piece, (unsigned char)c, i, allowed);
        return FALSE;
    }
    return TRUE;
}

/*
 * The disk identity "<vm>/<target>", or NULL with @error set when a piece
 * breaks the rule or the id is longer than BLKIN_DISK_ID_MAX.
 */
static inline char *blkin_disk_id(const char *vm, const char *target,
                                  GError **error)
{
    char *id;

    if (!blkin_disk_id_check("VM name", vm, FALSE, error) ||
        !blkin_disk_id_check("disk name", target, TRUE, error))
        return NULL;
    id = g_strdup_printf("%s/%s", vm, target);
    if (strlen(id) > BLKIN_DISK_ID_MAX) {
        g_set_error(error, BLKIN_DISK_ID_ERROR, BLKIN_DISK_ID_ERROR_INVALID,
                    "blkin's disk identity %s is %zu bytes long; hostd "
                    "takes at most %d",
                    id, strlen(id), BLKIN_DISK_ID_MAX);
        g_free(id);
        return NULL;
    }
    return id;
}
