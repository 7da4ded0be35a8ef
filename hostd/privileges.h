/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * privileges.h: blkin-hostd gives up what it does not need once it is set
 * up (docs/security.md, "hostd's privileges").
 *
 * hostd runs as root because the sockets it must reach are not its own:
 * QEMU's agent channels are created by QEMU or libvirt, often as another
 * user in 0700/0750 directories. After the control socket and the metrics
 * listener are bound, all it still does is read the trace over TCP, connect
 * to those UNIX sockets, write its state directory (root's) and talk HTTP.
 * So it keeps CAP_DAC_OVERRIDE (to connect to a socket it does not own
 * through directories it cannot search) and drops every other capability
 * from its effective, permitted, inheritable, ambient and bounding sets,
 * and sets no_new_privs: a compromised hostd cannot load modules, trace
 * other processes, change owners, bind privileged ports, or gain anything
 * by executing a set-uid program.
 */
#ifndef HOSTD_PRIVILEGES_H
#define HOSTD_PRIVILEGES_H

#include <glib.h>
#include <stdint.h>

/* The capabilities hostd keeps (bit mask of CAP_* numbers). */
uint64_t hostd_privileges_kept(void);

/*
 * What set-up needs on top: CAP_CHOWN when the group `blkin` exists (the
 * control socket is given to it), CAP_NET_BIND_SERVICE when
 * @metrics_listen ("HOST:PORT", or NULL) names a port below 1024.
 */
uint64_t hostd_privileges_setup_needs(const char *metrics_listen);

/*
 * Capabilities belong to threads, not processes, and a thread starts with
 * its creator's: GLib starts its worker thread as soon as GIO is first used
 * (binding the control socket), and hostd its export threads. So the drop
 * is done in two steps, both from the main thread:
 *
 * hostd_privileges_limit(), before any thread exists: sets no_new_privs,
 * locks the securebits (noroot, no-setuid-fixup, keep-caps) and reduces the
 * bounding, permitted, effective, inheritable and ambient sets to
 * hostd_privileges_kept() | @setup. Every thread inherits that.
 *
 * hostd_privileges_drop(), after set-up: the main thread gives up @setup
 * too. Threads started before keep @setup (empty unless the conditions
 * above hold).
 *
 * Both return 0 or a negative errno; on failure privileges may have been
 * dropped in part, never gained. The bounding set and securebits need
 * CAP_SETPCAP: without it (an unprivileged hostd, or systemd's bounding
 * set) those steps are skipped.
 */
int hostd_privileges_limit(uint64_t setup);
int hostd_privileges_drop(void);

#endif
