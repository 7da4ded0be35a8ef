/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "ptp.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The kernel's FD_TO_CLOCKID: dynamic POSIX clocks are named by fd. */
#define FD_TO_CLOCKID(fd) ((~(clockid_t)(fd) << 3) | 3)

uint64_t mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ptp_open(struct ptp_clock *p)
{
    DIR *d = opendir("/sys/class/ptp");
    struct dirent *de;

    p->fd = -1;
    if (!d)
        return;
    while ((de = readdir(d)) && p->fd < 0) {
        char path[300], name[64] = "";
        FILE *fp;

        if (strncmp(de->d_name, "ptp", 3))
            continue;
        snprintf(path, sizeof(path), "/sys/class/ptp/%s/clock_name",
                 de->d_name);
        fp = fopen(path, "re");
        if (!fp)
            continue;
        if (!fgets(name, sizeof(name), fp))
            name[0] = '\0';
        fclose(fp);
        if (strncmp(name, "KVM virtual PTP", 15))
            continue;
        snprintf(path, sizeof(path), "/dev/%s", de->d_name);
        p->fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    closedir(d);
    if (p->fd >= 0)
        p->id = FD_TO_CLOCKID(p->fd);
}

void ptp_close(struct ptp_clock *p)
{
    if (p && p->fd >= 0)
        close(p->fd);
    if (p)
        p->fd = -1;
}

bool ptp_read(const struct ptp_clock *p, int64_t *ptp_ns, uint64_t *mono_ns)
{
    struct timespec ts;
    uint64_t t0, t1;

    if (p->fd < 0)
        return false;
    t0 = mono_now();
    if (clock_gettime(p->id, &ts) < 0)
        return false;
    t1 = mono_now();
    *ptp_ns = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
    *mono_ns = t0 + (t1 - t0) / 2;
    return true;
}
