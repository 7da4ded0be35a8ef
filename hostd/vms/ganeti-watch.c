/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ganeti-watch.c: Ganeti's running instances into the model
 * (ganeti-watch.h). Polled on the main loop, as libvirt-watch.c does and
 * for the same reasons: no thread hand-off, nothing stale can remain.
 */
#define G_LOG_DOMAIN "blkin-hostd-vms"

#include "ganeti-watch.h"

#include "ganeti-discovery.h"
#include "registrar.h"

#define GANETI_SCAN_MS 2000

struct HostdGanetiWatch {
    HostdRegistrar *registrar;
    char *root;
    guint source;
    GHashTable *untraced; /* instance -> pid warned about (untraceable) */
};

/* Once per QEMU: an instance without blkin's preload gets no spans (its
 * kvm_path is not blkin-kvm, or the preload object is missing); say so,
 * since Ganeti keeps the wrapper's own message to itself. */
static void warn_untraced(HostdGanetiWatch *w, const BlkinGanetiInstance *inst)
{
    gpointer pid = GINT_TO_POINTER(inst->pid);

    if (!inst->untraced) {
        g_hash_table_remove(w->untraced, inst->name);
        return;
    }
    if (g_hash_table_lookup(w->untraced, inst->name) == pid)
        return;
    g_hash_table_replace(w->untraced, g_strdup(inst->name), pid);
    g_warning("ganeti: %s: no spans will come from its QEMU (pid %d): %s",
              inst->name, (int)inst->pid, inst->untraced);
}

/* An instance's traced disks, typed; NULL (logged) if one is not valid. */
static GPtrArray *instance_disks(const BlkinGanetiInstance *inst)
{
    g_autoptr(GPtrArray) specs = hostd_disk_specs_new();

    for (guint i = 0; i < inst->disks->len; i++) {
        const BlkinGanetiDisk *d = g_ptr_array_index(inst->disks, i);
        g_autoptr(GError) err = NULL;
        /* Without a serial QEMU's drive id names the disk to the guest. */
        HostdDiskSpec *s =
            hostd_disk_spec_new(d->target, d->serial ? d->serial : d->drive_id,
                                d->filter_id, NULL, &err);

        if (!s) {
            g_warning("ganeti: %s: %s", inst->name, err->message);
            return NULL;
        }
        g_ptr_array_add(specs, s);
    }
    return g_steal_pointer(&specs);
}

static gboolean scan(gpointer user)
{
    HostdGanetiWatch *w = user;
    g_autoptr(GPtrArray) insts = NULL;

    if (blkin_ganeti_discover(w->root, &insts) < 0)
        insts = g_ptr_array_new();
    hostd_registrar_scan_begin(w->registrar);
    for (guint i = 0; i < insts->len; i++) {
        BlkinGanetiInstance *inst = g_ptr_array_index(insts, i);
        g_autoptr(GPtrArray) disks = instance_disks(inst);

        if (disks) {
            warn_untraced(w, inst);
            hostd_registrar_offer(w->registrar, inst->name, inst->agent_socket,
                                  disks);
        }
    }
    hostd_registrar_scan_end(w->registrar);
    return G_SOURCE_CONTINUE;
}

HostdGanetiWatch *hostd_ganeti_watch_new(HostdModel *model,
                                         const char *runtime_dir)
{
    HostdGanetiWatch *w = g_new0(HostdGanetiWatch, 1);

    w->registrar = hostd_registrar_new(model, "ganeti");
    w->root = g_strdup(runtime_dir);
    w->untraced = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    scan(w);
    w->source = g_timeout_add(GANETI_SCAN_MS, scan, w);
    return w;
}

void hostd_ganeti_watch_free(HostdGanetiWatch *w)
{
    if (!w)
        return;
    g_clear_handle_id(&w->source, g_source_remove);
    hostd_registrar_free(w->registrar);
    g_hash_table_unref(w->untraced);
    g_free(w->root);
    g_free(w);
}
