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
 *   line on stderr, naming the QEMU version it was built for and the one
 *   running (QEMU's "(Debian <package version>)" string, read from the
 *   binary), and QEMU runs on without the filter.
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
/* QEMU's pkgversion of that build ("Debian 1:7.2+dfsg-7+deb12u18"). */
#ifndef BLKIN_QEMU_PKGVERSION
#define BLKIN_QEMU_PKGVERSION "unknown"
#endif
#define BLKIN_FILTER_SO "blkin-filter.so"
/* librbd's C API, interposed (blkin-rbd.c): global, so that it comes before
 * librbd when QEMU loads its rbd driver. */
#define BLKIN_RBD_SO "blkin-rbd.so"

/* Present only in QEMU binaries with a block layer (exported by Debian's). */
extern void bdrv_register(void *drv) __attribute__((weak));

struct stamp_search {
    const char *needle;
    size_t len;
    const char *found; /* where in the main program, or NULL */
    const char *end;   /* end of the segment it was found in */
};

/* Looks for needle in the main program's read-only loaded segments. */
static int search_main_program(struct dl_phdr_info *info, size_t size,
                               void *data)
{
    struct stamp_search *s = data;

    (void)size;
    for (int i = 0; i < info->dlpi_phnum && !s->found; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        const char *seg = (const char *)(info->dlpi_addr + ph->p_vaddr);

        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W) ||
            !(ph->p_flags & PF_R))
            continue;
        s->found = memmem(seg, ph->p_memsz, s->needle, s->len);
        s->end = seg + ph->p_memsz;
    }
    return 1; /* the main program comes first: stop after it */
}

static int running_qemu_matches(void)
{
    struct stamp_search s = {BLKIN_QEMU_STAMP, strlen(BLKIN_QEMU_STAMP)};

    dl_iterate_phdr(search_main_program, &s);
    return s.found != NULL;
}

/*
 * The running QEMU's pkgversion: what follows "(" in its version string
 * "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)", up to ")". Only on the refusal
 * path, to name both versions; "?" if not found.
 */
static void running_qemu_version(char *out, size_t size)
{
    static const char needle[] = " (Debian ";
    struct stamp_search s = {needle, sizeof(needle) - 1};
    size_t n = 0;

    snprintf(out, size, "?");
    dl_iterate_phdr(search_main_program, &s);
    if (!s.found)
        return;
    for (const char *p = s.found + 2; p < s.end && *p && *p != ')'; p++)
        if (n + 1 < size)
            out[n++] = *p;
    out[n] = '\0';
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
    char exe[PATH_MAX] = "?", running[128];
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
        running_qemu_version(running, sizeof(running));
        fprintf(stderr,
                "blkin: %s (%s) is not the QEMU build blkin was compiled for "
                "(%s, %s); the blkin filter is not registered. Install the "
                "blkin-qemu-filter package built for the installed QEMU "
                "(blkin-qemu-check tells), or rebuild blkin for it "
                "(scripts/setup.sh).\n",
                exe, running, BLKIN_QEMU_PKGVERSION, BLKIN_QEMU_STAMP);
        return;
    }

    slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(path, sizeof(path), "%s/%s", self, BLKIN_FILTER_SO);
    if (!dlopen(path, RTLD_NOW | RTLD_LOCAL)) {
        fprintf(stderr, "blkin: cannot load %s: %s\n", path, dlerror());
        return;
    }
    snprintf(path, sizeof(path), "%s/%s", self, BLKIN_RBD_SO);
    if (!dlopen(path, RTLD_NOW | RTLD_GLOBAL))
        fprintf(stderr, "blkin: cannot load %s: %s\n", path, dlerror());
}
