/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * privileges.c: dropping capabilities after set-up (privileges.h), with
 * raw prctl(2) and capset(2): the kernel interface is small, and this
 * spares hostd a library for a dozen lines.
 */
#define G_LOG_DOMAIN "blkin-hostd"

#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CAP_BIT(c) (UINT64_C(1) << (c))

uint64_t hostd_privileges_kept(void)
{
    /* Agent sockets of QEMU/libvirt belong to another user, under
     * directories root may not search without it. */
    return CAP_BIT(CAP_DAC_OVERRIDE);
}

/* The highest capability this kernel knows; newer than our headers is fine. */
static int last_cap(void)
{
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    int v = -1;

    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v >= 0 && v < 64 ? v : CAP_LAST_CAP;
}

static int caps_get(uint64_t *eff, uint64_t *prm)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0}};

    if (syscall(SYS_capget, &hdr, d) < 0)
        return -errno;
    *eff = d[0].effective | (uint64_t)d[1].effective << 32;
    *prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
    return 0;
}

static int caps_set(uint64_t eff, uint64_t prm, uint64_t inh)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {
        {(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
        {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)},
    };

    if (syscall(SYS_capset, &hdr, d) < 0)
        return -errno;
    return 0;
}

uint64_t hostd_privileges_setup_needs(const char *metrics_listen)
{
    uint64_t need = 0;
    const char *colon = metrics_listen ? strrchr(metrics_listen, ':') : NULL;

    if (getgrnam("blkin"))
        need |= CAP_BIT(CAP_CHOWN);
    if (colon) {
        char *end;
        unsigned long port = strtoul(colon + 1, &end, 10);

        if (end != colon + 1 && *end == '\0' && port < 1024)
            need |= CAP_BIT(CAP_NET_BIND_SERVICE);
    }
    return need;
}

static int reduce(uint64_t keep)
{
    uint64_t eff = 0, prm = 0;
    int ret, top = last_cap();

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    ret = caps_get(&eff, &prm);
    if (ret < 0)
        return ret;
    /* The bounding set first: dropping from it needs CAP_SETPCAP, which
     * the capset below takes away. */
    if (eff & CAP_BIT(CAP_SETPCAP)) {
        /* uid 0 must not get capabilities back through exec or setuid
         * (no_new_privs covers set-uid files, not root's own exec). */
        if (prctl(PR_SET_SECUREBITS,
                  SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
                      SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
                      SECBIT_KEEP_CAPS_LOCKED,
                  0, 0, 0) < 0)
            return -errno;
        for (int c = 0; c <= top; c++) {
            if (keep & CAP_BIT(c))
                continue;
            /* EINVAL: a capability this kernel does not have. */
            if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        }
    }
    /* Ambient capabilities would survive an exec; older kernels lack them. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
        errno != EINVAL)
        return -errno;
    return caps_set(prm & keep, prm & keep, 0);
}

int hostd_privileges_limit(uint64_t setup)
{
    return reduce(hostd_privileges_kept() | setup);
}

int hostd_privileges_drop(void)
{
    return reduce(hostd_privileges_kept());
}
