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
 * Sets no_new_privs and reduces every capability set to
 * hostd_privileges_kept() (intersected with what the process has).
 * Returns 0 or a negative errno; on failure the process may have dropped
 * part of its privileges, never gained any. Dropping the bounding set needs
 * CAP_SETPCAP: without it (an unprivileged hostd) that step is skipped.
 */
int hostd_privileges_drop(void);

#endif
