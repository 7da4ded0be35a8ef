/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * registrar.c: a watcher's VMs into the model (registrar.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-vms"

#include "registrar.h"

struct HostdRegistrar {
    HostdModel *model;
    char *road;
    GHashTable *known; /* VM name -> its registration, as a string */
    GHashTable *seen;  /* VM names offered in the current scan */
};

HostdRegistrar *hostd_registrar_new(HostdModel *model, const char *road)
{
    HostdRegistrar *r = g_new0(HostdRegistrar, 1);

    r->model = model;
    r->road = g_strdup(road);
    r->known = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    r->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return r;
}

void hostd_registrar_forget_all(HostdRegistrar *r)
{
    GHashTableIter it;
    gpointer name;

    g_hash_table_iter_init(&it, r->known);
    while (g_hash_table_iter_next(&it, &name, NULL)) {
        g_message("%s: %s unregistered", r->road, (char *)name);
        hostd_model_stop_vm(r->model, name);
        g_hash_table_iter_remove(&it);
    }
}

void hostd_registrar_free(HostdRegistrar *r)
{
    if (!r)
        return;
    hostd_registrar_forget_all(r);
    g_hash_table_unref(r->known);
    g_hash_table_unref(r->seen);
    g_free(r->road);
    g_free(r);
}

void hostd_registrar_scan_begin(HostdRegistrar *r)
{
    g_hash_table_remove_all(r->seen);
}

/* What a registration is, in one string: a change shows as a difference. */
static char *signature(const char *agent_socket, GPtrArray *disks)
{
    GString *s = g_string_new(agent_socket ? agent_socket : "");

    for (guint i = 0; i < disks->len; i++) {
        g_autofree char *d =
            hostd_disk_spec_to_string(g_ptr_array_index(disks, i));

        g_string_append_printf(s, "%s%s", i ? "," : "|", d);
    }
    return g_string_free(s, FALSE);
}

void hostd_registrar_offer(HostdRegistrar *r, const char *vm,
                           const char *agent_socket, GPtrArray *disks)
{
    g_autofree char *sig = signature(agent_socket, disks);
    g_autoptr(GError) err = NULL;

    g_hash_table_add(r->seen, g_strdup(vm));
    if (g_strcmp0(g_hash_table_lookup(r->known, vm), sig) == 0)
        return;
    if (!hostd_model_add_vm(r->model, vm, agent_socket, disks, &err)) {
        g_warning("%s: %s: %s", r->road, vm, err->message);
        return;
    }
    g_message("%s: registered %s (%s)", r->road, vm, sig);
    g_hash_table_replace(r->known, g_strdup(vm), g_steal_pointer(&sig));
}

void hostd_registrar_scan_end(HostdRegistrar *r)
{
    GHashTableIter it;
    gpointer name;

    g_hash_table_iter_init(&it, r->known);
    while (g_hash_table_iter_next(&it, &name, NULL)) {
        if (g_hash_table_contains(r->seen, name))
            continue;
        g_message("%s: %s stopped, unregistered", r->road, (char *)name);
        hostd_model_stop_vm(r->model, name);
        g_hash_table_iter_remove(&it);
    }
}
