/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp.h: a minimal synchronous QMP client over a UNIX socket (JSON lines),
 * enough for blkin-live: capabilities negotiation, commands, HMP passthrough.
 *
 * QEMU's monitor serves one client at a time; a second one is accepted by
 * the kernel but gets no greeting until the first leaves. Every read has a
 * deadline so that a busy monitor is an error, not a hang.
 *
 * Errors are GErrors in BLKIN_QMP_ERROR, their messages ready for the user.
 */
#ifndef BLKIN_LIVE_QMP_H
#define BLKIN_LIVE_QMP_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

#define BLKIN_QMP_ERROR (blkin_qmp_error_quark())
GQuark blkin_qmp_error_quark(void);

typedef enum {
    BLKIN_QMP_ERROR_NOENT,       /* no such socket, domain or disk */
    BLKIN_QMP_ERROR_CONNECT,     /* cannot connect (QMP, libvirt) */
    BLKIN_QMP_ERROR_TIMEOUT,     /* QEMU did not answer in time */
    BLKIN_QMP_ERROR_PROTOCOL,    /* not QMP, or an answer out of form */
    BLKIN_QMP_ERROR_COMMAND,     /* QEMU answered with an error */
    BLKIN_QMP_ERROR_NOT_RUNNING, /* the libvirt domain is not running */
    BLKIN_QMP_ERROR_UNSUPPORTED, /* built without libvirt */
    BLKIN_QMP_ERROR_FAILED,      /* anything else (I/O, libvirt) */
} BlkinQmpError;

typedef struct BlkinQmp BlkinQmp;

/* BLKIN_QMP_ERROR_NOENT when there is no socket at @path. */
BlkinQmp *blkin_qmp_open(const char *path, int timeout_ms, GError **error);
/*
 * The same through libvirt (virDomainQemuMonitorCommand), for domains whose
 * monitor belongs to libvirtd; @uri NULL = libvirt's default.
 * BLKIN_QMP_ERROR_UNSUPPORTED when built without libvirt. libvirt marks the
 * domain tainted (custom-monitor).
 */
BlkinQmp *blkin_qmp_open_libvirt(const char *uri, const char *domain,
                                 GError **error);
void blkin_qmp_close(BlkinQmp *q);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlkinQmp, blkin_qmp_close)

/* The QEMU process on the other end (SO_PEERCRED), or 0 if unknown. */
pid_t blkin_qmp_peer_pid(BlkinQmp *q);

/* The libvirt domain's name; NULL when @q talks to a QMP socket. */
const char *blkin_qmp_libvirt_domain(BlkinQmp *q);

/*
 * The target dev (vda) of the libvirt domain's disk whose device alias is
 * @alias (virtio-disk0), from the running domain's definition; NULL with
 * @error set when there is none or @q is not a libvirt domain.
 */
char *blkin_qmp_libvirt_target(BlkinQmp *q, const char *alias, GError **error);

/*
 * Runs @command with @args (a JSON object or NULL; borrowed). On success
 * returns TRUE and, if @result is not NULL, sets *@result to the "return"
 * member (owned by the caller). A QMP error is BLKIN_QMP_ERROR_COMMAND with
 * QEMU's description as the message.
 */
gboolean blkin_qmp_execute(BlkinQmp *q, const char *command, JsonNode *args,
                           JsonNode **result, GError **error);

/* HMP through human-monitor-command; returns what HMP printed. */
char *blkin_qmp_hmp(BlkinQmp *q, const char *command_line, GError **error);

#endif
