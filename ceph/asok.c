/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * asok.c: a bounded admin-socket client (asok.h). Plain non-blocking
 * sockets and poll(), so that the deadline covers connect, send and every
 * read.
 */
#define G_LOG_DOMAIN "blkin-ceph"

#include "asok.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static gint64 ms_left(gint64 deadline)
{
    gint64 left = (deadline - g_get_monotonic_time()) / 1000;

    return left > 0 ? left : 0;
}

/* Waits for @events on @fd until @deadline: TRUE when ready. */
static gboolean wait_fd(int fd, short events, gint64 deadline)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int r = poll(&p, 1, (int)ms_left(deadline));

        if (r > 0)
            return TRUE;
        if (r == 0)
            return FALSE;
        if (errno != EINTR)
            return FALSE;
    }
}

/* Reads exactly @len bytes; -1 timeout, 0 closed, 1 done. */
static int read_all(int fd, void *buf, gsize len, gsize *got, gint64 deadline)
{
    *got = 0;
    while (*got < len) {
        ssize_t n = read(fd, (char *)buf + *got, len - *got);

        if (n > 0) {
            *got += (gsize)n;
            continue;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return 0;
        if (ms_left(deadline) <= 0 || !wait_fd(fd, POLLIN, deadline))
            return -1;
    }
    return 1;
}

GBytes *blkin_asok_command(const char *path, const char *command,
                           int timeout_ms, gsize max_bytes, GError **error)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    g_autofree char *buf = NULL;
    gsize sent = 0, len = strlen(command) + 1, got;
    guint8 hdr[4];
    guint32 n;
    int fd, r;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME,
                    "admin socket %s: path too long", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                    "admin socket %s: socket: %s", path, g_strerror(errno));
        return NULL;
    }
    /* A UNIX socket whose listener does not accept (a daemon starting,
     * or stuck) refuses at once with EAGAIN: try again until the deadline. */
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;

        if (e == EINTR)
            continue;
        if (e == EAGAIN && ms_left(deadline) > 0) {
            g_usleep(10000);
            continue;
        }
        if (e == EAGAIN)
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                        "admin socket %s: not accepting connections within "
                        "%d ms",
                        path, timeout_ms);
        else
            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
                        "admin socket %s: connect: %s", path, g_strerror(e));
        close(fd);
        return NULL;
    }
    /* Send the command, NUL included. Every wait is checked against the
     * deadline: poll() says "ready" for a socket that has hung up. */
    while (sent < len) {
        ssize_t w;

        if (ms_left(deadline) <= 0 || !wait_fd(fd, POLLOUT, deadline)) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                        "admin socket %s: not accepting a command within %d "
                        "ms",
                        path, timeout_ms);
            close(fd);
            return NULL;
        }
        w = send(fd, command + sent, len - sent, MSG_NOSIGNAL);
        if (w < 0 &&
            (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (w < 0) {
            int e = errno;

            g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
                        "admin socket %s: send: %s", path, g_strerror(e));
            close(fd);
            return NULL;
        }
        sent += (gsize)w;
    }
    r = read_all(fd, hdr, sizeof(hdr), &got, deadline);
    if (r <= 0) {
        g_set_error(error, G_IO_ERROR,
                    r < 0 ? G_IO_ERROR_TIMED_OUT : G_IO_ERROR_CLOSED,
                    r < 0 ? "admin socket %s: no answer within %d ms"
                          : "admin socket %s: closed without an answer",
                    path, timeout_ms);
        close(fd);
        return NULL;
    }
    n = (guint32)hdr[0] << 24 | (guint32)hdr[1] << 16 | (guint32)hdr[2] << 8 |
        hdr[3];
    if (n > max_bytes) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                    "admin socket %s: announces an answer of %" G_GUINT32_FORMAT
                    " bytes, over the limit of %" G_GSIZE_FORMAT
                    " (not a Ceph admin socket?)",
                    path, n, max_bytes);
        close(fd);
        return NULL;
    }
    buf = g_malloc(n + 1);
    r = read_all(fd, buf, n, &got, deadline);
    close(fd);
    if (r <= 0) {
        g_set_error(
            error, G_IO_ERROR, r < 0 ? G_IO_ERROR_TIMED_OUT : G_IO_ERROR_CLOSED,
            "admin socket %s: %s after %" G_GSIZE_FORMAT
            " of %" G_GUINT32_FORMAT " bytes",
            path, r < 0 ? "answer not complete in time" : "closed", got, n);
        return NULL;
    }
    buf[n] = '\0';
    if (g_str_has_prefix(buf, "ERROR:")) {
        g_strchomp(buf);
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "admin socket %s: the daemon refused '%s': %s", path,
                    command, buf);
        return NULL;
    }
    return g_bytes_new_take(g_steal_pointer(&buf), n);
}
