/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lttng-keeper.h: keeps the LTTng live session hostd reads in place
 * (hostd.conf `manage-session = true`, --manage-session).
 *
 * Whenever this node's live input cannot be read for a moment -- at start,
 * after lttng-sessiond was restarted (its sessions are gone), after the
 * session was destroyed, after the relay daemon was restarted (the session
 * lives on in lttng-sessiond but the relay no longer serves it) -- the keeper
 * runs the helper `blkin-lttng-session ensure --live URL` (scripts/), which
 * makes the session with the shipped channel, starts it, or makes it again
 * when the relay does not serve it, idempotently: it changes nothing when
 * the relay serves it. Runs are asynchronous (the main loop never waits for
 * them), at most one at a time, spaced by a backoff: 2 s .. 30 s while
 * something is down (lttng-sessiond, the relay), 5 s .. 60 s while the
 * session is in place but has nothing to read (no QEMU traced yet).
 *
 * One log line per change of what the helper says (created, started,
 * re-created, lttng-sessiond not running, relay unreachable, failed with a
 * reason), never one per retry.
 *
 * Ownership: the keeper borrows @health (the live feed's, which outlives
 * it) and owns its copies of the strings.
 */
#ifndef HOSTD_LTTNG_KEEPER_H
#define HOSTD_LTTNG_KEEPER_H

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ingest/live-health.h"

typedef struct HostdLttngKeeper HostdLttngKeeper;

/*
 * @live_url: hostd's live URL (net://HOST[:PORT]/host/HOSTNAME/SESSION), the
 * session's name is its last element. @relay_url: where the session streams
 * (lttng create --set-url), NULL: the helper's default, net://HOST of
 * @live_url. @helper: the
 * blkin-lttng-session program. NULL and an error if @live_url names no
 * session.
 */
HostdLttngKeeper *hostd_lttng_keeper_new(const char *live_url,
                                         const char *relay_url,
                                         const char *helper,
                                         const HostdLiveHealth *health,
                                         GError **err);
/* Stops watching; a helper still running is left to finish. NULL ok. */
void hostd_lttng_keeper_free(HostdLttngKeeper *k);

/* Adds a "session" member (managed, last outcome, runs) to an object being
 * built (blkin status). */
void hostd_lttng_keeper_json(const HostdLttngKeeper *k, JsonBuilder *b);

#endif
