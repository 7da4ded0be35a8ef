/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host end of one agent channel as a connection: a client of the UNIX
 * socket QEMU serves for the agent's port (-chardev socket,server=on,
 * wait=off). Connects, reconnects after the socket goes away, greets the
 * agent, sends clock probes once the agent has said HELLO, and feeds what
 * it reads into a blkin_channel. Poll-driven, so a daemon can run many.
 */
#ifndef BLKIN_HOST_LINK_H
#define BLKIN_HOST_LINK_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "blkin-channel.h"

typedef void (*blkin_link_state_cb)(void *user, bool connected, uint64_t now_ns,
                                    size_t partial_bytes);

struct blkin_host_link {
    char path[108]; /* sun_path */
    int fd;
    struct blkin_channel *ch;
    uint64_t probe_interval_ns; /* 0: no probes */
    uint64_t retry_ns;          /* between connection attempts */
    uint64_t next_connect_ns;
    uint64_t next_probe_ns;
    uint64_t connects;
    blkin_link_state_cb state_cb;
    void *user;
};

/* Returns 0 or -ENAMETOOLONG. Nothing is opened until the first dispatch. */
int blkin_host_link_init(struct blkin_host_link *l, const char *path,
                         struct blkin_channel *ch, uint64_t probe_interval_ns,
                         blkin_link_state_cb cb, void *user);

/* The pollfd to wait on (fd -1 while unconnected) and how long at most. */
void blkin_host_link_prepare(const struct blkin_host_link *l, uint64_t now_ns,
                             struct pollfd *p, int *timeout_ms);

/* Does what is due: connect, read and feed, probe, notice a hang-up. */
void blkin_host_link_dispatch(struct blkin_host_link *l, const struct pollfd *p,
                              uint64_t now_ns);

bool blkin_host_link_connected(const struct blkin_host_link *l);
void blkin_host_link_close(struct blkin_host_link *l);

#endif
