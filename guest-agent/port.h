/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The agent's virtio-serial port. A guest write() blocks until the host
 * side is connected and read() returns 0 while it is not, so the port is
 * used non-blocking and its connection state is read from poll(): the
 * kernel reports POLLHUP for exactly as long as the host is absent.
 */
#ifndef AGENT_PORT_H
#define AGENT_PORT_H

#include <stdbool.h>
#include <stddef.h>

/* Finds /dev/vportNpM for the port whose name is name (via sysfs). */
int port_find(const char *name, char *path, size_t size);

/* Opens a port path non-blocking; returns the fd or -errno. */
int port_open(const char *path);

/* True while the host end is open. */
bool port_host_connected(int fd);

/*
 * Instead of a port: a UNIX stream socket the agent listens on, for running
 * the agent outside a VM (bench/agent-native.sh). A host end connects to it
 * as it would to QEMU's socket for the port; one connection at a time.
 * Returns the listening fd (non-blocking) or -errno.
 */
int port_listen(const char *path);

/* Accepts a waiting host end: its fd (non-blocking), or -errno (-EAGAIN
 * when none waits). */
int port_accept(int listen_fd);

#endif
