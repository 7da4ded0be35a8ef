/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "blkin-host-link.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int blkin_host_link_init(struct blkin_host_link *l, const char *path,
                         struct blkin_channel *ch, uint64_t probe_interval_ns,
                         blkin_link_state_cb cb, void *user)
{
    memset(l, 0, sizeof(*l));
    if (strlen(path) >= sizeof(l->path))
        return -ENAMETOOLONG;
    strcpy(l->path, path);
    l->fd = -1;
    l->ch = ch;
    l->probe_interval_ns = probe_interval_ns;
    l->retry_ns = 100000000ull;
    l->state_cb = cb;
    l->user = user;
    return 0;
}

bool blkin_host_link_connected(const struct blkin_host_link *l)
{
    return l->fd >= 0;
}

static void hang_up(struct blkin_host_link *l, uint64_t now)
{
    size_t partial = blkin_decoder_pending(&l->ch->dec);

    close(l->fd);
    l->fd = -1;
    l->ch->conn_hello = false;
    l->next_connect_ns = now + l->retry_ns;
    if (l->state_cb)
        l->state_cb(l->user, false, now, partial);
}

void blkin_host_link_close(struct blkin_host_link *l)
{
    if (l && l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

/* Small control frames; with a full socket buffer a probe is just skipped. */
static void send_frame(struct blkin_host_link *l, const uint8_t *buf, ssize_t n)
{
    if (n > 0)
        (void)!send(l->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void try_connect(struct blkin_host_link *l, uint64_t now)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    uint8_t buf[64];
    int fd;

    l->next_connect_ns = now + l->retry_ns;
    memcpy(sa.sun_path, l->path, strlen(l->path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return;
    }
    l->fd = fd;
    l->connects++;
    blkin_channel_reconnected(l->ch);
    if (l->state_cb)
        l->state_cb(l->user, true, now, 0);
    send_frame(l, buf, blkin_channel_make_hello(l->ch, buf, sizeof(buf), now));
}

void blkin_host_link_prepare(const struct blkin_host_link *l, uint64_t now,
                             struct pollfd *p, int *timeout_ms)
{
    uint64_t next = now + 1000000000ull;

    p->fd = l->fd;
    p->events = POLLIN;
    p->revents = 0;
    if (l->fd < 0)
        next = l->next_connect_ns;
    else if (l->probe_interval_ns && l->ch->conn_hello)
        next = l->next_probe_ns;
    *timeout_ms = next <= now ? 0 : (int)((next - now) / 1000000ull) + 1;
}

void blkin_host_link_dispatch(struct blkin_host_link *l, const struct pollfd *p,
                              uint64_t now)
{
    uint8_t buf[65536];

    if (l->fd < 0) {
        if (now >= l->next_connect_ns)
            try_connect(l, now);
        return;
    }
    if (p->fd == l->fd && (p->revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = read(l->fd, buf, sizeof(buf));

        if (n > 0) {
            blkin_channel_feed(l->ch, buf, (size_t)n, now);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            hang_up(l, now);
            return;
        }
    }
    /* Probes wait for the agent's HELLO on this connection: until the agent
     * has the port open they would pile up in the guest and go stale. */
    if (!l->ch->conn_hello || !l->probe_interval_ns) {
        l->next_probe_ns = now;
    } else if (now >= l->next_probe_ns) {
        send_frame(l, buf,
                   blkin_channel_make_probe(l->ch, buf, sizeof(buf), now));
        l->next_probe_ns = now + l->probe_interval_ns;
    }
}
