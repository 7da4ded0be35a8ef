/*
 * libvirt-watch.c: follows the running domains of a libvirt connection and
 * registers the blkin-enabled ones (their <blkin:libvirt> metadata gives the
 * agent socket and the traced disks) in hostd's model.
 *
 * It polls the list of active domains on the main loop rather than running
 * libvirt's event loop in a thread: the model is not thread-safe, a poll
 * needs no marshalling, and a missed event cannot leave a stale VM behind.
 */
#include "libvirt-watch.h"

#include <gio/gio.h>
#include <stdbool.h>
#include <stdlib.h>

#ifdef HAVE_LIBVIRT
#include "domxml.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#endif

#define WATCH_POLL_MS     1000
#define WATCH_BACKOFF_MAX 30

struct HostdLibvirtWatch {
    HostdModel *model;
    char *uri;
    GHashTable *known; /* domain -> what it was registered with */
    guint source;
#ifdef HAVE_LIBVIRT
    virConnectPtr conn;
    unsigned backoff; /* ticks to skip before the next connect attempt */
    unsigned wait;
    bool warned;
#endif
};

#ifdef HAVE_LIBVIRT
/* libvirt prints every error to stderr by default; hostd logs its own. */
static void quiet_errors(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

/* The disk specs of a running domain, or NULL when blkin is not enabled. */
static char **domain_specs(virDomainPtr dom, char **agent_socket)
{
    g_autofree char *xml = virDomainGetXMLDesc(dom, 0);
    g_autoptr(GError) err = NULL;
    g_autoptr(BlkinState) st = NULL;
    g_autoptr(GPtrArray) specs = NULL;
    xmlDoc *doc;

    if (!xml)
        return NULL;
    doc = domxml_parse(xml, &err);
    if (!doc)
        return NULL;
    st = domxml_state(doc, &err);
    xmlFreeDoc(doc);
    if (!st || !st->disks || st->disks->len == 0)
        return NULL;
    specs = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < st->disks->len; i++) {
        TracedDisk *d = g_ptr_array_index(st->disks, i);
        g_ptr_array_add(specs,
                        g_strdup_printf("%s=%s=%s", d->target,
                                        d->serial ? d->serial : "",
                                        d->filter_id ? d->filter_id : ""));
    }
    g_ptr_array_add(specs, NULL);
    *agent_socket = g_strdup(st->agent_socket);
    return (char **)g_ptr_array_free(g_steal_pointer(&specs), FALSE);
}

static void forget_all(HostdLibvirtWatch *w)
{
    GHashTableIter it;
    gpointer name;

    g_hash_table_iter_init(&it, w->known);
    while (g_hash_table_iter_next(&it, &name, NULL)) {
        g_message("libvirt: %s unregistered", (char *)name);
        hostd_model_remove_vm(w->model, name);
        g_hash_table_iter_remove(&it);
    }
}

static void disconnect(HostdLibvirtWatch *w)
{
    if (w->conn)
        virConnectClose(w->conn);
    w->conn = NULL;
}

static bool ensure_connected(HostdLibvirtWatch *w)
{
    if (w->conn && virConnectIsAlive(w->conn) == 1)
        return true;
    disconnect(w);
    if (w->wait > 0) {
        w->wait--;
        return false;
    }
    w->conn = virConnectOpenReadOnly(w->uri);
    if (!w->conn) {
        /* Log once per outage; retry with a growing pause. */
        if (!w->warned)
            g_message("libvirt: %s not reachable, will retry", w->uri);
        w->warned = true;
        w->backoff = MIN(MAX(w->backoff * 2, 1), WATCH_BACKOFF_MAX);
        w->wait = w->backoff;
        return false;
    }
    g_message("libvirt: connected to %s", w->uri);
    w->warned = false;
    w->backoff = 0;
    return true;
}

static gboolean watch_tick(gpointer user)
{
    HostdLibvirtWatch *w = user;
    virDomainPtr *doms = NULL;
    g_autoptr(GHashTable) seen = NULL;
    GHashTableIter it;
    gpointer name;
    int n;

    if (!ensure_connected(w))
        return G_SOURCE_CONTINUE;
    n = virConnectListAllDomains(w->conn, &doms,
                                 VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        /* libvirtd went away: what we registered can no longer be followed. */
        disconnect(w);
        return G_SOURCE_CONTINUE;
    }
    seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (int i = 0; i < n; i++) {
        const char *dname = virDomainGetName(doms[i]);
        g_autofree char *sock = NULL;
        g_auto(GStrv) specs = dname ? domain_specs(doms[i], &sock) : NULL;
        g_autofree char *joined = NULL;
        g_autofree char *sig = NULL;
        g_autoptr(GError) err = NULL;

        if (!specs)
            goto next;
        joined = g_strjoinv(",", specs);
        sig = g_strdup_printf("%s|%s", sock ? sock : "", joined);
        g_hash_table_add(seen, g_strdup(dname));
        /* Re-adding resets the VM's statistics: only on a change. */
        if (g_strcmp0(g_hash_table_lookup(w->known, dname), sig) == 0)
            goto next;
        if (!hostd_model_add_vm(w->model, dname, sock, specs, &err)) {
            g_warning("libvirt: %s: %s", dname, err->message);
            goto next;
        }
        g_message("libvirt: registered %s (%s)", dname, joined);
        g_hash_table_replace(w->known, g_strdup(dname), g_steal_pointer(&sig));
    next:
        virDomainFree(doms[i]);
    }
    free(doms);
    g_hash_table_iter_init(&it, w->known);
    while (g_hash_table_iter_next(&it, &name, NULL)) {
        if (g_hash_table_contains(seen, name))
            continue;
        g_message("libvirt: %s stopped, unregistered", (char *)name);
        hostd_model_remove_vm(w->model, name);
        g_hash_table_iter_remove(&it);
    }
    return G_SOURCE_CONTINUE;
}
#endif

HostdLibvirtWatch *hostd_libvirt_watch_new(HostdModel *model, const char *uri,
                                           GError **err)
{
#ifdef HAVE_LIBVIRT
    HostdLibvirtWatch *w = g_new0(HostdLibvirtWatch, 1);

    virSetErrorFunc(NULL, quiet_errors);
    w->model = model;
    w->uri = g_strdup(uri);
    w->known = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    watch_tick(w);
    w->source = g_timeout_add(WATCH_POLL_MS, watch_tick, w);
    return w;
#else
    (void)model;
    (void)uri;
    g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "built without libvirt: --libvirt is not available");
    return NULL;
#endif
}

void hostd_libvirt_watch_free(HostdLibvirtWatch *w)
{
    if (!w)
        return;
    if (w->source)
        g_source_remove(w->source);
#ifdef HAVE_LIBVIRT
    forget_all(w);
    disconnect(w);
#endif
    g_hash_table_unref(w->known);
    g_free(w->uri);
    g_free(w);
}
