/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * control.h: hostd's control socket, a UNIX stream socket speaking one JSON
 * object per line each way (docs/hostd.md, "Control protocol").
 *
 * Access: the socket is created mode 0660, owned by root and by the `blkin`
 * group when it exists; peers are also checked with SO_PEERCRED (root or
 * the blkin group) so a wrong umask or a pre-created directory cannot open
 * it up. Requests are limited to HOSTD_CONTROL_MAX_LINE bytes, clients in
 * number, idle time and unread answers (serve-limits.h).
 */
#ifndef HOSTD_CONTROL_H
#define HOSTD_CONTROL_H

#include <glib.h>
#include <json-glib/json-glib.h>

#include "serve-gate.h"

#define HOSTD_CONTROL_MAX_LINE HOSTD_SERVE_CONTROL_LINE_MAX

/* Returns the response object (owned by the caller), never NULL. */
typedef JsonNode *(*HostdControlHandler)(void *opaque, JsonObject *request);

typedef struct HostdControl HostdControl;

/* Connections are admitted and limited by @gate, which must outlive the
 * control socket. */
HostdControl *hostd_control_new(const char *path, HostdServeGate *gate,
                                HostdControlHandler h, void *opaque,
                                GError **err);
void hostd_control_free(HostdControl *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdControl, hostd_control_free)

/* Helpers for handlers. */
JsonNode *hostd_control_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
