/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * asok.h: one command to a Ceph daemon's admin socket, the protocol
 * `ceph daemon` speaks: the command as JSON, NUL-terminated; the answer as
 * a 4-byte big-endian length and that many bytes.
 *
 * Everything is bounded, because the socket may be slow, dead, or not an
 * admin socket at all: the whole exchange has a deadline, and an answer
 * longer than the caller's limit is refused without reading it. Errors
 * say which socket, which step and why (G_IO_ERROR_*).
 */
#ifndef CEPH_ASOK_H
#define CEPH_ASOK_H

#include <gio/gio.h>

/* Sends @command to the admin socket at @path; the answer, or NULL with
 * @error. A daemon's refusal ("ERROR: (22) ...") is an error too. */
GBytes *blkin_asok_command(const char *path, const char *command,
                           int timeout_ms, gsize max_bytes, GError **error);

#endif
