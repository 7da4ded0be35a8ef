/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "port.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#define PORTS_DIR "/sys/class/virtio-ports"

static int read_line(const char *path, char *buf, size_t size)
{
    FILE *fp = fopen(path, "re");

    if (!fp)
        return -errno;
    if (!fgets(buf, (int)size, fp))
        buf[0] = '\0';
    fclose(fp);
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/*
 * Without udev there is no /dev/virtio-ports/<name> link, and without
 * devtmpfs not even /dev/vportNpM: create the node from sysfs then.
 */
static int ensure_node(const char *port, char *path, size_t size)
{
    char attr[320], buf[64];
    unsigned maj, min;

    snprintf(path, size, "/dev/%s", port);
    if (access(path, F_OK) == 0)
        return 0;
    snprintf(attr, sizeof(attr), PORTS_DIR "/%s/dev", port);
    if (read_line(attr, buf, sizeof(buf)) < 0 ||
        sscanf(buf, "%u:%u", &maj, &min) != 2)
        return -ENOENT;
    if (mknod(path, S_IFCHR | 0600, makedev(maj, min)) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int port_find(const char *name, char *path, size_t size)
{
    DIR *d = opendir(PORTS_DIR);
    struct dirent *de;
    int r = -ENOENT;

    if (!d)
        return -ENOENT;
    while ((de = readdir(d))) {
        char attr[600], buf[256];

        if (de->d_name[0] == '.')
            continue;
        snprintf(attr, sizeof(attr), PORTS_DIR "/%s/name", de->d_name);
        if (read_line(attr, buf, sizeof(buf)) < 0 || strcmp(buf, name))
            continue;
        r = ensure_node(de->d_name, path, size);
        break;
    }
    closedir(d);
    return r;
}

int port_open(const char *path)
{
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

    return fd < 0 ? -errno : fd;
}

bool port_host_connected(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};

    if (poll(&p, 1, 0) < 0)
        return false;
    return !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

int port_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, r;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A socket file left by an earlier run would make bind() fail. */
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int port_accept(int listen_fd)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    return fd < 0 ? -errno : fd;
}
