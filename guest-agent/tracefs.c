/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "tracefs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static bool has_events(const char *dir)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/events/block", dir);
    return access(p, R_OK) == 0;
}

int tracefs_find(char *path, size_t size)
{
    static const char *const cands[] = {"/sys/kernel/tracing",
                                        "/sys/kernel/debug/tracing"};

    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
        if (has_events(cands[i])) {
            snprintf(path, size, "%s", cands[i]);
            return 0;
        }
    /* Minimal guests (an initramfs, early boot) do not mount it for us. */
    if (mount("tracefs", cands[0], "tracefs", 0, NULL) < 0 && errno != EBUSY)
        return -errno;
    if (!has_events(cands[0]))
        return -ENOENT;
    snprintf(path, size, "%s", cands[0]);
    return 0;
}

static struct tp_field *field_slot(struct tp_format *f, const char *name)
{
    if (!strcmp(name, "dev"))
        return &f->dev;
    if (!strcmp(name, "sector"))
        return &f->sector;
    if (!strcmp(name, "nr_sector"))
        return &f->nr_sector;
    if (!strcmp(name, "bytes"))
        return &f->bytes;
    if (!strcmp(name, "error"))
        return &f->error;
    if (!strcmp(name, "rwbs"))
        return &f->rwbs;
    return NULL;
}

/*
 * One line looks like
 *   "\tfield:char rwbs[8];\toffset:28;\tsize:8;\tsigned:1;"
 * The field name is the last identifier of the declaration, before any
 * array suffix.
 */
static void parse_line(struct tp_format *f, const char *line)
{
    const char *decl = strstr(line, "field:");
    const char *semi, *off, *sz, *end;
    char name[64];
    size_t n;
    struct tp_field *slot;

    if (!decl)
        return;
    decl += 6;
    semi = strchr(decl, ';');
    off = strstr(line, "offset:");
    sz = strstr(line, "size:");
    if (!semi || !off || !sz)
        return;
    end = semi;
    if (memchr(decl, '[', (size_t)(semi - decl)))
        end = memchr(decl, '[', (size_t)(semi - decl));
    while (end > decl && end[-1] == ' ')
        end--;
    n = 0;
    while (end - n > decl && end[-(ptrdiff_t)n - 1] != ' ')
        n++;
    if (n == 0 || n >= sizeof(name))
        return;
    memcpy(name, end - n, n);
    name[n] = '\0';
    slot = field_slot(f, name);
    if (!slot)
        return;
    slot->offset = (uint16_t)strtoul(off + 7, NULL, 10);
    slot->size = (uint16_t)strtoul(sz + 5, NULL, 10);
    slot->present = true;
}

int tracefs_read_format(const char *tracefs, const char *system,
                        const char *event, struct tp_format *fmt)
{
    char path[512], line[512];
    FILE *fp;

    memset(fmt, 0, sizeof(*fmt));
    snprintf(path, sizeof(path), "%s/events/%s/%s/id", tracefs, system, event);
    fp = fopen(path, "re");
    if (!fp)
        return -errno;
    if (fscanf(fp, "%d", &fmt->id) != 1)
        fmt->id = -1;
    fclose(fp);
    if (fmt->id < 0)
        return -EINVAL;

    snprintf(path, sizeof(path), "%s/events/%s/%s/format", tracefs, system,
             event);
    fp = fopen(path, "re");
    if (!fp)
        return -errno;
    while (fgets(line, sizeof(line), fp))
        parse_line(fmt, line);
    fclose(fp);
    /* Matching needs at least the device and the sector. */
    if (!fmt->dev.present || !fmt->sector.present)
        return -EINVAL;
    return 0;
}

uint64_t tp_get_u(const struct tp_field *f, const uint8_t *raw, uint32_t len)
{
    uint64_t v = 0;

    if (!f->present || (uint32_t)f->offset + f->size > len)
        return 0;
    switch (f->size) {
    case 1:
        return raw[f->offset];
    case 2: {
        uint16_t x;
        memcpy(&x, raw + f->offset, 2);
        return x;
    }
    case 4: {
        uint32_t x;
        memcpy(&x, raw + f->offset, 4);
        return x;
    }
    case 8:
        memcpy(&v, raw + f->offset, 8);
        return v;
    default:
        return 0;
    }
}

int64_t tp_get_s(const struct tp_field *f, const uint8_t *raw, uint32_t len)
{
    uint64_t v = tp_get_u(f, raw, len);

    switch (f->size) {
    case 1:
        return (int8_t)v;
    case 2:
        return (int16_t)v;
    case 4:
        return (int32_t)v;
    default:
        return (int64_t)v;
    }
}
