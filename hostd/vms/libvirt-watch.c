/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvirt-watch.c: follows the running domains of a libvirt connection and
 * registers the blkin-enabled ones (their <blkin:libvirt> metadata gives the
 * agent socket and the traced disks) in hostd's model.
 *
 * It polls the list of active domains on the main loop rather than running
 * libvirt's event loop in a thread: the model is not thread-safe, a poll
 * needs no marshalling, and a missed event cannot leave a stale VM behind.
 */
#define G_LOG_DOMAIN "blkin-hostd-vms"

#include "libvirt-watch.h"

#include "registrar.h"

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
    HostdRegistrar *registrar;
    char *uri;
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

/* The traced disks of a running domain, or NULL when blkin is not enabled
 * on it (or its metadata is not valid: logged). */
static GPtrArray *domain_disks(virDomainPtr dom, const char *name,
                               char **agent_socket)
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
    specs = hostd_disk_specs_new();
    for (guint i = 0; i < st->disks->len; i++) {
        TracedDisk *d = g_ptr_array_index(st->disks, i);
        HostdDiskSpec *s =
            hostd_disk_spec_new(d->target, d->serial, d->filter_id, NULL, &err);

        if (!s) {
            g_warning("libvirt: %s: %s", name, err->message);
            return NULL;
        }
        g_ptr_array_add(specs, s);
    }
    *agent_socket = g_strdup(st->agent_socket);
    return g_steal_pointer(&specs);
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
    hostd_registrar_scan_begin(w->registrar);
    for (int i = 0; i < n; i++) {
        const char *dname = virDomainGetName(doms[i]);
        g_autofree char *sock = NULL;
        g_autoptr(GPtrArray) disks =
            dname ? domain_disks(doms[i], dname, &sock) : NULL;

        if (disks)
            hostd_registrar_offer(w->registrar, dname, sock, disks);
        virDomainFree(doms[i]);
    }
    free(doms);
    hostd_registrar_scan_end(w->registrar);
    return G_SOURCE_CONTINUE;
}
#endif

HostdLibvirtWatch *hostd_libvirt_watch_new(HostdModel *model, const char *uri,
                                           GError **err)
{
#ifdef HAVE_LIBVIRT
    HostdLibvirtWatch *w = g_new0(HostdLibvirtWatch, 1);

    virSetErrorFunc(NULL, quiet_errors);
    w->registrar = hostd_registrar_new(model, "libvirt");
    w->uri = g_strdup(uri);
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
    /* Unregisters the domains it registered. */
    hostd_registrar_free(w->registrar);
#ifdef HAVE_LIBVIRT
    disconnect(w);
#endif
    g_free(w->uri);
    g_free(w);
}
