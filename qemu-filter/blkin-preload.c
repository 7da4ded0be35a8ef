/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-preload.c: the LD_PRELOAD object that brings the blkin filter into a
 * stock QEMU binary.
 *
 * It is loaded into every process started with it in LD_PRELOAD, including
 * `timeout`, shells and QEMU's helpers, so it must be harmless anywhere:
 * - In a process without QEMU's block layer (no bdrv_register symbol) it
 *   does nothing at all and leaves the environment as it is, so that a
 *   wrapper like `timeout qemu-img ...` passes it on to QEMU.
 * - In QEMU it first removes itself from LD_PRELOAD, so QEMU's own child
 *   processes (helpers, scripts) never inherit it.
 * - It registers the filter only when the running binary carries the module
 *   stamp of the QEMU build whose headers blkin was compiled against;
 *   otherwise the driver's structure layouts could differ. It says so in one
 *   line on stderr and QEMU runs on without the filter.
 * The filter itself (and liblttng-ust with its threads) lives in
 * blkin-filter.so, loaded only after these checks pass.
 *
 * Plain libc: no QEMU headers, no GLib.
 */
#include <dlfcn.h>
#include <link.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BLKIN_QEMU_STAMP
#error "BLKIN_QEMU_STAMP (qemu_stamp_<sha1> of the target QEMU) must be set"
#endif
#define BLKIN_FILTER_SO "blkin-filter.so"

/* Present only in QEMU binaries with a block layer (exported by Debian's). */
extern void bdrv_register(void *drv) __attribute__((weak));

struct stamp_search {
    const char *needle;
    size_t len;
    int found;
};

/* Looks for the stamp in the main program's read-only loaded segments. */
static int stamp_in_main_program(struct dl_phdr_info *info, size_t size,
                                 void *data)
{
    struct stamp_search *s = data;

    (void)size;
    for (int i = 0; i < info->dlpi_phnum && !s->found; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) ||
            !(ph->p_flags & PF_R))
            continue;
        s->found = memmem((const void *)(info->dlpi_addr + ph->p_vaddr),
                          ph->p_memsz, s->needle, s->len) != NULL;
    }
    return 1; /* the main program comes first: stop after it */
}

static int running_qemu_matches(void)
{
    struct stamp_search s = {BLKIN_QEMU_STAMP, strlen(BLKIN_QEMU_STAMP), 0};

    dl_iterate_phdr(stamp_in_main_program, &s);
    return s.found;
}

/* Removes every LD_PRELOAD entry that names this object. */
static void scrub_ld_preload(const char *self)
{
    const char *env = getenv("LD_PRELOAD");
    char real[PATH_MAX], *copy, *tok, *save = NULL, *out;
    size_t used = 0;

    if (!env)
        return;
    copy = strdup(env);
    out = calloc(1, strlen(env) + 1);
    if (!copy || !out)
        goto out;
    /* ld.so separates entries with spaces or colons. */
    for (tok = strtok_r(copy, ": \t", &save); tok;
         tok = strtok_r(NULL, ": \t", &save)) {
        /* A bare name ("libblkin-preload.so") is found by ld.so on its
         * search path, not in the current directory: match it by name. */
        if (strchr(tok, '/') ? realpath(tok, real) && !strcmp(real, self)
                             : !strcmp(tok, strrchr(self, '/') + 1))
            continue;
        used += sprintf(out + used, "%s%s", used ? " " : "", tok);
    }
    if (used)
        setenv("LD_PRELOAD", out, 1);
    else
        unsetenv("LD_PRELOAD");
out:
    free(copy);
    free(out);
}

__attribute__((constructor)) static void blkin_preload_init(void)
{
    char self[PATH_MAX], path[PATH_MAX + sizeof(BLKIN_FILTER_SO)];
    char exe[PATH_MAX] = "?";
    Dl_info info;
    char *slash;

    if (!bdrv_register)
        return;

    if (!dladdr((void *)blkin_preload_init, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, self)) {
        fprintf(stderr, "blkin: cannot find the preload object's path; "
                        "the blkin filter is not available\n");
        return;
    }
    scrub_ld_preload(self);

    if (!running_qemu_matches()) {
        if (!realpath("/proc/self/exe", exe))
            strcpy(exe, "?");
        fprintf(stderr,
                "blkin: %s is not the QEMU build blkin was compiled for "
                "(no %s); the blkin filter is not registered. Rebuild "
                "blkin for the installed QEMU (scripts/setup.sh).\n",
                exe, BLKIN_QEMU_STAMP);
        return;
    }

    slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(path, sizeof(path), "%s/%s", self, BLKIN_FILTER_SO);
    if (!dlopen(path, RTLD_NOW | RTLD_LOCAL))
        fprintf(stderr, "blkin: cannot load %s: %s\n", path, dlerror());
}
