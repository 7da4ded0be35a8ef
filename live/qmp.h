/*
 * qmp.h: a minimal synchronous QMP client over a UNIX socket (JSON lines),
 * enough for blkin-live: capabilities negotiation, commands, HMP passthrough.
 *
 * QEMU's monitor serves one client at a time; a second one is accepted by
 * the kernel but gets no greeting until the first leaves. Every read has a
 * deadline so that a busy monitor is an error, not a hang.
 */
#ifndef BLKIN_LIVE_QMP_H
#define BLKIN_LIVE_QMP_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

typedef struct BlkinQmp BlkinQmp;

/* Negative errno: -ENOENT (no socket), -ECONNREFUSED, -ETIMEDOUT, -EPROTO. */
int blkin_qmp_open(const char *path, int timeout_ms, BlkinQmp **ret,
                   char **errmsg);
/*
 * The same through libvirt (virDomainQemuMonitorCommand), for domains whose
 * monitor belongs to libvirtd; @uri NULL = libvirt's default. -ENOTSUP when
 * built without libvirt. libvirt marks the domain tainted (custom-monitor).
 */
int blkin_qmp_open_libvirt(const char *uri, const char *domain, BlkinQmp **ret,
                           char **errmsg);
void blkin_qmp_close(BlkinQmp *q);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlkinQmp, blkin_qmp_close)

/* The QEMU process on the other end (SO_PEERCRED), or 0 if unknown. */
pid_t blkin_qmp_peer_pid(BlkinQmp *q);

/*
 * Runs @command with @args (a JSON object or NULL; borrowed). On success
 * *@result is the "return" member (owned by the caller). A QMP error is
 * -EREMOTEIO with *@errmsg set to QEMU's description.
 */
int blkin_qmp_execute(BlkinQmp *q, const char *command, JsonNode *args,
                      JsonNode **result, char **errmsg);

/* HMP through human-monitor-command; *@output is what HMP printed. */
int blkin_qmp_hmp(BlkinQmp *q, const char *command_line, char **output,
                  char **errmsg);

#endif
