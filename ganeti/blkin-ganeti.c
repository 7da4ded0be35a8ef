/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-ganeti: what blkin sees of a Ganeti node's KVM instances
 * (ganeti-discovery.h); the instance-start hook reads it to know which
 * disks to enable.
 *
 *   blkin-ganeti list [--root DIR] [INSTANCE...]
 *
 * One line per disk, tab-separated: instance, Ganeti disk name, drive id,
 * serial (- if none), filter id, QMP socket, agent socket (- if none), and
 * "preload" or "no-preload": whether the instance's QEMU has blkin's preload
 * object (without it the disk cannot be traced; docs/ganeti.md); the reason
 * goes to stderr.
 */
#define G_LOG_DOMAIN "blkin-ganeti"

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "ganeti-discovery.h"

static void print_instance(const BlkinGanetiInstance *inst)
{
    for (guint i = 0; i < inst->disks->len; i++) {
        const BlkinGanetiDisk *d = g_ptr_array_index(inst->disks, i);

        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", inst->name, d->target,
               d->drive_id, d->serial ? d->serial : "-", d->filter_id,
               inst->qmp_socket, inst->agent_socket ? inst->agent_socket : "-",
               inst->untraced ? "no-preload" : "preload");
    }
    if (inst->untraced)
        fprintf(stderr, "blkin-ganeti: %s: %s\n", inst->name, inst->untraced);
}

int main(int argc, char **argv)
{
    g_autofree char *root = NULL;
    g_autoptr(GOptionContext) ctx = NULL;
    g_autoptr(GError) err = NULL;
    int rc = 0, r;
    gboolean version = FALSE;
    GOptionEntry entries[] = {
        {"version", 'V', 0, G_OPTION_ARG_NONE, &version,
         "Print the version and exit", NULL},
        {"root", 0, 0, G_OPTION_ARG_FILENAME, &root,
         "Ganeti's KVM state directory (default " BLKIN_GANETI_DEFAULT_ROOT ")",
         "DIR"},
        {NULL}};

    setlocale(LC_ALL, "");
    ctx = g_option_context_new("list [INSTANCE...] - Ganeti instances for "
                               "blkin");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "blkin-ganeti: %s\n", err->message);
        return 2;
    }
    if (version) {
        printf("blkin-ganeti %s\n", BLKIN_VERSION);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "list") != 0) {
        fprintf(stderr, "usage: blkin-ganeti list [--root DIR] "
                        "[INSTANCE...]\n");
        return 2;
    }
    if (!root)
        root = g_strdup(BLKIN_GANETI_DEFAULT_ROOT);
    if (argc == 2) {
        g_autoptr(GPtrArray) all = NULL;

        r = blkin_ganeti_discover(root, &all);
        if (r < 0) {
            fprintf(stderr, "blkin-ganeti: %s: %s\n", root, g_strerror(-r));
            return 1;
        }
        for (guint i = 0; i < all->len; i++)
            print_instance(g_ptr_array_index(all, i));
        return 0;
    }
    for (int i = 2; i < argc; i++) {
        g_autoptr(BlkinGanetiInstance) inst = NULL;
        g_autoptr(GError) ierr = NULL;

        inst = blkin_ganeti_load_instance(root, argv[i], &ierr);
        if (!inst) {
            if (g_error_matches(ierr, BLKIN_GANETI_ERROR,
                                BLKIN_GANETI_ERROR_IDENTITY))
                fprintf(stderr, "blkin-ganeti: %s\n", ierr->message);
            else
                fprintf(stderr, "blkin-ganeti: instance %s: %s\n", argv[i],
                        ierr->message);
            rc = 1;
            continue;
        }
        if (inst->pid <= 0) {
            fprintf(stderr, "blkin-ganeti: instance %s: not running\n",
                    argv[i]);
            rc = 1;
            continue;
        }
        print_instance(inst);
    }
    return rc;
}
