/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "devmap.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a one-line sysfs attribute without its newline; "" if absent. */
static void read_attr(const char *dir, const char *name, const char *attr,
                      char *buf, size_t size)
{
    char path[512];
    FILE *fp;

    buf[0] = '\0';
    snprintf(path, sizeof(path), "%s/%s/%s", dir, name, attr);
    fp = fopen(path, "re");
    if (!fp)
        return;
    if (!fgets(buf, (int)size, fp))
        buf[0] = '\0';
    fclose(fp);
    buf[strcspn(buf, "\n")] = '\0';
}

/* Keeps only bytes the protocol accepts in a serial (printable ASCII). */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

static bool wanted(const char *name, const char *const *prefixes)
{
    for (; *prefixes; prefixes++)
        if (!strncmp(name, *prefixes, strlen(*prefixes)))
            return true;
    return false;
}

static int cmp_dev(const void *a, const void *b)
{
    return strcmp(((const struct blkin_device *)a)->name,
                  ((const struct blkin_device *)b)->name);
}

static const struct blkin_device *known(const struct blkin_devmap *prev,
                                        const struct blkin_device *d)
{
    if (!prev)
        return NULL;
    for (uint32_t i = 0; i < prev->count; i++)
        if (prev->dev[i].major == d->major && prev->dev[i].minor == d->minor &&
            !strcmp(prev->dev[i].name, d->name))
            return &prev->dev[i];
    return NULL;
}

int devmap_scan(const char *sysfs_block, const char *const *prefixes,
                const struct blkin_devmap *prev, struct blkin_devmap *m)
{
    const struct blkin_device *old;
    DIR *d = opendir(sysfs_block);
    struct dirent *de;
    char buf[128];

    if (!d)
        return -errno;
    m->count = 0;
    while ((de = readdir(d)) && m->count < BLKIN_DEVICES_MAX) {
        struct blkin_device *dev = &m->dev[m->count];
        unsigned maj, min;

        if (de->d_name[0] == '.' || !wanted(de->d_name, prefixes) ||
            strlen(de->d_name) >= sizeof(dev->name))
            continue;
        memset(dev, 0, sizeof(*dev));
        read_attr(sysfs_block, de->d_name, "dev", buf, sizeof(buf));
        if (sscanf(buf, "%u:%u", &maj, &min) != 2)
            continue;
        dev->major = maj;
        dev->minor = min;
        snprintf(dev->name, sizeof(dev->name), "%s", de->d_name);
        old = known(prev, dev);
        if (old) {
            memcpy(dev->serial, old->serial, sizeof(dev->serial));
        } else {
            read_attr(sysfs_block, de->d_name, "serial", dev->serial,
                      sizeof(dev->serial));
            sanitize(dev->serial);
        }
        read_attr(sysfs_block, de->d_name, "size", buf, sizeof(buf));
        /* sysfs "size" is always in 512-byte units. */
        dev->size_bytes = strtoull(buf, NULL, 10) * 512;
        read_attr(sysfs_block, de->d_name, "queue/logical_block_size", buf,
                  sizeof(buf));
        dev->logical_block_size = (uint32_t)strtoul(buf, NULL, 10);
        m->count++;
    }
    closedir(d);
    qsort(m->dev, m->count, sizeof(m->dev[0]), cmp_dev);
    return 0;
}

bool devmap_equal(const struct blkin_devmap *a, const struct blkin_devmap *b)
{
    if (a->count != b->count)
        return false;
    for (uint32_t i = 0; i < a->count; i++) {
        const struct blkin_device *x = &a->dev[i], *y = &b->dev[i];

        if (x->major != y->major || x->minor != y->minor ||
            x->size_bytes != y->size_bytes ||
            x->logical_block_size != y->logical_block_size ||
            strcmp(x->name, y->name) || strcmp(x->serial, y->serial))
            return false;
    }
    return true;
}

bool devmap_has_dev(const struct blkin_devmap *m, uint32_t kdev)
{
    uint32_t maj = kdev >> 20, min = kdev & 0xfffff;

    for (uint32_t i = 0; i < m->count; i++)
        if (m->dev[i].major == maj && m->dev[i].minor == min)
            return true;
    return false;
}
