/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * domxml.c: blkin's changes to a libvirt domain definition (see domxml.h).
 *
 * libvirt re-formats whatever it is given, so the XML made here only has to
 * mean the right thing; byte-exact restoring comes from keeping libvirt's own
 * text of the original definition in the metadata.
 */
#define G_LOG_DOMAIN "blkin-libvirt"

#include "domxml.h"
#include "disk-id.h"

#include <errno.h>
#include <libxml/c14n.h>
#include <libxml/parser.h>
#include <string.h>

G_DEFINE_QUARK(blkin - domxml - error - quark, blkin_domxml_error)

void dom_disk_free(DomDisk *d)
{
    if (!d)
        return;
    g_free(d->target);
    g_free(d->device);
    g_free(d->bus);
    g_free(d->source);
    g_free(d->serial);
    g_free(d->alias);
    g_free(d->node);
    g_free(d);
}

void traced_disk_free(TracedDisk *d)
{
    if (!d)
        return;
    g_free(d->target);
    g_free(d->serial);
    g_free(d->filter_id);
    g_free(d->node);
    g_free(d->drive);
    g_free(d);
}

void blkin_state_free(BlkinState *s)
{
    if (!s)
        return;
    g_free(s->agent_socket);
    g_free(s->preload);
    g_free(s->original);
    g_free(s->fingerprint);
    if (s->disks)
        g_ptr_array_unref(s->disks);
    g_free(s);
}

/* ------------------------------------------------------------ helpers */

static bool is_el(const xmlNode *n, const char *name, const char *ns)
{
    if (!n || n->type != XML_ELEMENT_NODE ||
        !xmlStrEqual(n->name, BAD_CAST name))
        return false;
    if (!ns)
        return n->ns == NULL;
    return n->ns && xmlStrEqual(n->ns->href, BAD_CAST ns);
}

static xmlNode *child(const xmlNode *p, const char *name, const char *ns)
{
    if (!p)
        return NULL;
    for (xmlNode *c = p->children; c; c = c->next)
        if (is_el(c, name, ns))
            return c;
    return NULL;
}

static char *prop(const xmlNode *n, const char *name)
{
    xmlChar *v;
    char *r;

    if (!n)
        return NULL;
    v = xmlGetProp(n, BAD_CAST name);
    if (!v)
        return NULL;
    r = g_strdup((const char *)v);
    xmlFree(v);
    return r;
}

static bool prop_is(const xmlNode *n, const char *name, const char *want)
{
    g_autofree char *v = prop(n, name);

    return v && g_str_equal(v, want);
}

static char *content(const xmlNode *n)
{
    xmlChar *v;
    char *r;

    if (!n)
        return NULL;
    v = xmlNodeGetContent(n);
    if (!v)
        return NULL;
    r = g_strdup(g_strstrip((char *)v));
    xmlFree(v);
    return r;
}

static void drop(xmlNode *n)
{
    if (!n)
        return;
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

static bool has_element_children(const xmlNode *n)
{
    for (xmlNode *c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            return true;
    return false;
}

static xmlNode *root_of(xmlDoc *doc)
{
    xmlNode *r = xmlDocGetRootElement(doc);

    return is_el(r, "domain", NULL) ? r : NULL;
}

static char *dump(xmlDoc *doc, bool format)
{
    g_autoptr(GString) out = g_string_new(NULL);
    xmlBuffer *buf = xmlBufferCreate();

    xmlNodeDump(buf, doc, xmlDocGetRootElement(doc), 0, format);
    g_string_append_len(out, (const char *)xmlBufferContent(buf),
                        xmlBufferLength(buf));
    g_string_append_c(out, '\n');
    xmlBufferFree(buf);
    return g_string_free(g_steal_pointer(&out), FALSE);
}

static xmlDoc *parse_opts(const char *xml, int opts, GError **error)
{
    xmlDoc *doc;

    doc = xmlReadMemory(xml, strlen(xml), "domain.xml", NULL,
                        opts | XML_PARSE_NONET | XML_PARSE_NOERROR |
                            XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();

        g_set_error(error, BLKIN_DOMXML_ERROR, EINVAL,
                    "the domain definition is not valid XML: %s",
                    e && e->message ? g_strstrip(e->message) : "?");
        return NULL;
    }
    if (!root_of(doc)) {
        xmlFreeDoc(doc);
        g_set_error(error, BLKIN_DOMXML_ERROR, EINVAL,
                    "the definition's root element is not <domain>");
        return NULL;
    }
    return doc;
}

xmlDoc *domxml_parse(const char *xml, GError **error)
{
    return parse_opts(xml, 0, error);
}

char *domxml_name(xmlDoc *doc)
{
    return content(child(root_of(doc), "name", NULL));
}

char *domxml_uuid(xmlDoc *doc)
{
    return content(child(root_of(doc), "uuid", NULL));
}

/* ------------------------------------------------------------ disks */

/* Images of the chain the definition itself spells out with <backingStore>
 * (an empty <backingStore/> ends it). */
static unsigned explicit_backing(const xmlNode *disk)
{
    unsigned n = 0;

    for (xmlNode *b = child(disk, "backingStore", NULL); b;
         b = child(b, "backingStore", NULL)) {
        g_autofree char *type = prop(b, "type");

        if (!type)
            break;
        n++;
    }
    return n;
}

GPtrArray *domxml_disks(xmlDoc *doc)
{
    g_autoptr(GPtrArray) disks =
        g_ptr_array_new_with_free_func((GDestroyNotify)dom_disk_free);
    g_autoptr(GArray) chain = g_array_new(FALSE, TRUE, sizeof(unsigned));
    xmlNode *devices = child(root_of(doc), "devices", NULL);
    unsigned next = 1;

    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next) {
        xmlNode *src, *al, *drv;
        DomDisk *d;
        unsigned extra;

        if (!is_el(c, "disk", NULL))
            continue;
        d = g_new0(DomDisk, 1);
        d->target = prop(child(c, "target", NULL), "dev");
        d->bus = prop(child(c, "target", NULL), "bus");
        d->device = prop(c, "device");
        if (!d->device)
            d->device = g_strdup("disk");
        src = child(c, "source", NULL);
        d->source = prop(src, "file");
        if (!d->source)
            d->source = prop(src, "dev");
        d->serial = content(child(c, "serial", NULL));
        al = child(c, "alias", NULL);
        d->alias = prop(al, "name");
        if (d->alias && !g_str_has_prefix(d->alias, "ua-"))
            g_clear_pointer(&d->alias, g_free);
        drv = child(c, "driver", NULL);
        if (prop_is(drv, "copy_on_read", "on"))
            d->node = g_strdup_printf("libvirt-CoR-%s", d->target);
        extra = explicit_backing(c);
        g_array_append_val(chain, extra);
        g_ptr_array_add(disks, d);
    }

    /* libvirt 9.0 numbers the disks' top images at start in reverse
     * definition order (empty cdroms included), together with the backing
     * images the XML names; images it discovers in the image files come
     * after all of those, so they never move a top image's number. */
    for (guint i = disks->len; i > 0; i--) {
        DomDisk *d = disks->pdata[i - 1];

        d->index = next;
        next += 1 + g_array_index(chain, unsigned, i - 1);
        if (!d->node)
            d->node = g_strdup_printf("libvirt-%u-format", d->index);
    }
    return g_steal_pointer(&disks);
}

static xmlNode *find_disk(xmlDoc *doc, const char *target)
{
    xmlNode *devices = child(root_of(doc), "devices", NULL);

    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next)
        if (is_el(c, "disk", NULL) &&
            prop_is(child(c, "target", NULL), "dev", target))
            return c;
    return NULL;
}

static bool traceable(const DomDisk *d)
{
    return g_str_equal(d->device, "disk") && d->bus &&
           g_str_equal(d->bus, "virtio");
}

GPtrArray *domxml_default_targets(xmlDoc *doc)
{
    g_autoptr(GPtrArray) disks = domxml_disks(doc);
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < disks->len; i++) {
        DomDisk *d = disks->pdata[i];

        if (traceable(d) && d->target)
            g_ptr_array_add(out, g_strdup(d->target));
    }
    return out;
}

gboolean domxml_check_targets(xmlDoc *doc, GPtrArray *targets, GError **error)
{
    g_autoptr(GPtrArray) disks = domxml_disks(doc);

    for (guint t = 0; t < targets->len; t++) {
        const char *want = targets->pdata[t];
        const DomDisk *found = NULL;

        for (guint i = 0; i < disks->len && !found; i++) {
            const DomDisk *d = disks->pdata[i];

            if (d->target && g_str_equal(d->target, want))
                found = d;
        }
        if (!found) {
            g_autoptr(GString) all = g_string_new(NULL);

            for (guint i = 0; i < disks->len; i++)
                g_string_append_printf(all, "%s%s", i ? ", " : "",
                                       ((DomDisk *)disks->pdata[i])->target);
            g_set_error(error, BLKIN_DOMXML_ERROR, ENOENT,
                        "the domain has no disk '%s' (its disks: %s)", want,
                        all->len ? all->str : "none");
            return FALSE;
        }
        if (!g_str_equal(found->device, "disk")) {
            g_set_error(error, BLKIN_DOMXML_ERROR, EOPNOTSUPP,
                        "disk '%s' is a %s, not a virtio-blk disk; blkin "
                        "traces virtio-blk disks only",
                        want, found->device);
            return FALSE;
        }
        if (!traceable(found)) {
            g_set_error(error, BLKIN_DOMXML_ERROR, EOPNOTSUPP,
                        "disk '%s' is on bus '%s', not virtio; blkin traces "
                        "virtio-blk disks only",
                        want, found->bus ? found->bus : "?");
            return FALSE;
        }
    }
    return TRUE;
}

/* ------------------------------------------------------------ metadata */

static xmlNode *meta_node(xmlDoc *doc)
{
    return child(child(root_of(doc), "metadata", NULL), "libvirt",
                 BLKIN_META_NS);
}

BlkinState *domxml_state(xmlDoc *doc, GError **error)
{
    g_autoptr(BlkinState) s = NULL;
    xmlNode *m = meta_node(doc);
    g_autofree char *b64 = NULL;

    if (!m)
        return NULL;
    s = g_new0(BlkinState, 1);
    s->disks = g_ptr_array_new_with_free_func((GDestroyNotify)traced_disk_free);
    s->agent_socket = prop(m, "agent-socket");
    s->preload = prop(m, "preload");
    s->fingerprint = prop(m, "fingerprint");
    s->prepared = prop_is(m, "at-start", "no");
    for (xmlNode *c = m->children; c; c = c->next) {
        TracedDisk *d;

        if (!is_el(c, "disk", BLKIN_META_NS))
            continue;
        d = g_new0(TracedDisk, 1);
        d->target = prop(c, "target");
        d->serial = prop(c, "serial");
        d->filter_id = prop(c, "id");
        d->node = prop(c, "node");
        d->drive = prop(c, "drive");
        d->serial_added = prop_is(c, "serial-added", "yes");
        d->alias_added = prop_is(c, "alias-added", "yes");
        g_ptr_array_add(s->disks, d);
        if (!d->target || !d->serial || !d->filter_id || !d->drive) {
            g_set_error(error, BLKIN_DOMXML_ERROR, EBADMSG,
                        "blkin's metadata in the definition is incomplete");
            return NULL;
        }
    }
    b64 = content(child(m, "original", BLKIN_META_NS));
    if (b64 && *b64) {
        gsize len = 0;
        guchar *raw = g_base64_decode(b64, &len);

        s->original = g_strndup((const char *)raw, len);
        g_free(raw);
    }
    return g_steal_pointer(&s);
}

/* ------------------------------------------------------------ enable */

static xmlNs *qemu_ns(xmlNode *root)
{
    xmlNs *ns = xmlSearchNsByHref(root->doc, root, BAD_CAST BLKIN_QEMU_NS);

    if (ns)
        return ns;
    /* libvirt wants the prefix declared on <domain>; "qemu" is what it
     * prints, another prefix would only be re-spelled. */
    return xmlNewNs(root, BAD_CAST BLKIN_QEMU_NS, BAD_CAST "qemu");
}

static xmlNode *ensure_child(xmlNode *p, xmlNs *ns, const char *name,
                             bool *added)
{
    xmlNode *n = child(p, name, ns ? (const char *)ns->href : NULL);

    if (added)
        *added = !n;
    if (!n)
        n = xmlNewChild(p, ns, BAD_CAST name, NULL);
    return n;
}

static char *make_serial(const char *uuid, const char *target)
{
    g_autoptr(GString) s = g_string_new("bk");

    /* virtio-blk serials are at most 20 bytes. */
    for (const char *p = uuid; *p && s->len < 10; p++)
        if (g_ascii_isxdigit(*p))
            g_string_append_c(s, *p);
    g_string_append_printf(s, "-%s", target);
    g_string_truncate(s, 20);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* The -drive that puts the filter on top of `node`; inside -drive every
 * comma of the json: filename is doubled. */
static char *drive_arg(const char *drive, const char *filter_id,
                       const char *node)
{
    return g_strdup_printf("if=none,id=%s,node-name=%s-f,file=json:{"
                           "\"driver\":\"blkin\",,\"id\":\"%s\",,"
                           "\"file\":\"%s\"}",
                           drive, drive, filter_id, node);
}

static xmlNode *find_agent_channel(xmlNode *devices)
{
    for (xmlNode *c = devices ? devices->children : NULL; c; c = c->next)
        if (is_el(c, "channel", NULL) &&
            prop_is(child(c, "target", NULL), "name", BLKIN_AGENT_PORT))
            return c;
    return NULL;
}

char *domxml_enable(const char *base, const char *original, GPtrArray *targets,
                    const EnableOptions *opts, GError **error)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(GPtrArray) disks = NULL;
    g_autofree char *name = NULL, *uuid = NULL, *sock = NULL;
    g_autofree char *b64 = NULL;
    xmlNode *root, *devices, *cmdline, *override, *meta, *bl, *chan;
    xmlNode *env = NULL;
    xmlNs *qns, *bns;
    bool metadata_added = false, channel_added = false;

    g_return_val_if_fail(targets && targets->len > 0, NULL);
    doc = domxml_parse(base, error);
    if (!doc)
        return NULL;
    if (meta_node(doc)) {
        g_set_error(error, BLKIN_DOMXML_ERROR, EEXIST,
                    "the base definition already has blkin's changes");
        return NULL;
    }
    if (!domxml_check_targets(doc, targets, error))
        return NULL;
    root = root_of(doc);
    name = domxml_name(doc);
    uuid = domxml_uuid(doc);
    if (!name || !uuid) {
        g_set_error(error, BLKIN_DOMXML_ERROR, EINVAL,
                    "the definition has no name or UUID");
        return NULL;
    }
    devices = ensure_child(root, NULL, "devices", NULL);
    disks = domxml_disks(doc);
    qns = qemu_ns(root);

    /* The agent's channel; a channel the operator added already is used. */
    chan = find_agent_channel(devices);
    if (chan) {
        sock = prop(child(chan, "source", NULL), "path");
    } else {
        xmlNode *s, *t;

        sock = opts->agent_socket
                   ? g_strdup(opts->agent_socket)
                   : g_strdup_printf("/run/blkin/agents/%s.sock", name);
        chan = xmlNewChild(devices, NULL, BAD_CAST "channel", NULL);
        xmlNewProp(chan, BAD_CAST "type", BAD_CAST "unix");
        s = xmlNewChild(chan, NULL, BAD_CAST "source", NULL);
        xmlNewProp(s, BAD_CAST "mode", BAD_CAST "bind");
        xmlNewProp(s, BAD_CAST "path", BAD_CAST sock);
        t = xmlNewChild(chan, NULL, BAD_CAST "target", NULL);
        xmlNewProp(t, BAD_CAST "type", BAD_CAST "virtio");
        xmlNewProp(t, BAD_CAST "name", BAD_CAST BLKIN_AGENT_PORT);
        channel_added = true;
    }

    cmdline = ensure_child(root, qns, "commandline", NULL);
    /* Prepared only: no filter at start, so no override (nor an empty
     * one). */
    override =
        opts->prepare_only ? NULL : ensure_child(root, qns, "override", NULL);
    meta = ensure_child(root, NULL, "metadata", &metadata_added);
    bns = NULL;
    bl = xmlNewChild(meta, NULL, BAD_CAST "libvirt", NULL);
    bns = xmlNewNs(bl, BAD_CAST BLKIN_META_NS, BAD_CAST "blkin");
    xmlSetNs(bl, bns);
    xmlNewProp(bl, BAD_CAST "agent-socket", BAD_CAST sock);
    xmlNewProp(bl, BAD_CAST "preload", BAD_CAST opts->preload);
    xmlNewProp(bl, BAD_CAST "channel-added",
               BAD_CAST(channel_added ? "yes" : "no"));
    xmlNewProp(bl, BAD_CAST "metadata-added",
               BAD_CAST(metadata_added ? "yes" : "no"));
    if (opts->prepare_only)
        xmlNewProp(bl, BAD_CAST "at-start", BAD_CAST "no");

    for (guint i = 0; i < disks->len; i++) {
        DomDisk *d = disks->pdata[i];
        g_autofree char *drive = NULL, *fid = NULL, *arg = NULL;
        g_autofree char *serial = NULL, *alias = NULL;
        xmlNode *dn, *a, *dev = NULL, *fe, *p, *rec;
        bool serial_added = false, alias_added = false;

        if (!g_ptr_array_find_with_equal_func(targets, d->target, g_str_equal,
                                              NULL))
            continue;
        fid = blkin_disk_id(name, d->target, error);
        if (!fid)
            return NULL;
        dn = find_disk(doc, d->target);
        drive = g_strdup_printf("blkin-%s", d->target);

        serial = g_strdup(d->serial);
        if (!serial) {
            serial = make_serial(uuid, d->target);
            xmlNewTextChild(dn, NULL, BAD_CAST "serial", BAD_CAST serial);
            serial_added = true;
        }
        /* qemu:override finds devices by user alias only. */
        alias = g_strdup(d->alias);
        if (!alias && !opts->prepare_only) {
            alias = g_strdup_printf("ua-blkin-%s", d->target);
            drop(child(dn, "alias", NULL));
            a = xmlNewChild(dn, NULL, BAD_CAST "alias", NULL);
            xmlNewProp(a, BAD_CAST "name", BAD_CAST alias);
            alias_added = true;
        }

        if (!opts->prepare_only) {
            arg = drive_arg(drive, fid, d->node);
            a = xmlNewChild(cmdline, qns, BAD_CAST "arg", NULL);
            xmlNewProp(a, BAD_CAST "value", BAD_CAST "-drive");
            a = xmlNewChild(cmdline, qns, BAD_CAST "arg", NULL);
            xmlNewProp(a, BAD_CAST "value", BAD_CAST arg);

            for (xmlNode *c = override->children; c && !dev; c = c->next)
                if (is_el(c, "device", BLKIN_QEMU_NS) &&
                    prop_is(c, "alias", alias))
                    dev = c;
            if (!dev) {
                dev = xmlNewChild(override, qns, BAD_CAST "device", NULL);
                xmlNewProp(dev, BAD_CAST "alias", BAD_CAST alias);
            }
            fe = ensure_child(dev, qns, "frontend", NULL);
            p = xmlNewChild(fe, qns, BAD_CAST "property", NULL);
            xmlNewProp(p, BAD_CAST "name", BAD_CAST "drive");
            xmlNewProp(p, BAD_CAST "type", BAD_CAST "string");
            xmlNewProp(p, BAD_CAST "value", BAD_CAST drive);
        }

        rec = xmlNewChild(bl, bns, BAD_CAST "disk", NULL);
        xmlNewProp(rec, BAD_CAST "target", BAD_CAST d->target);
        xmlNewProp(rec, BAD_CAST "serial", BAD_CAST serial);
        xmlNewProp(rec, BAD_CAST "id", BAD_CAST fid);
        xmlNewProp(rec, BAD_CAST "node", BAD_CAST d->node);
        xmlNewProp(rec, BAD_CAST "drive", BAD_CAST drive);
        if (alias)
            xmlNewProp(rec, BAD_CAST "alias", BAD_CAST alias);
        xmlNewProp(rec, BAD_CAST "serial-added",
                   BAD_CAST(serial_added ? "yes" : "no"));
        xmlNewProp(rec, BAD_CAST "alias-added",
                   BAD_CAST(alias_added ? "yes" : "no"));
    }

    /* One LD_PRELOAD for QEMU; an operator's own preload list is kept. */
    for (xmlNode *c = cmdline->children; c && !env; c = c->next)
        if (is_el(c, "env", BLKIN_QEMU_NS) && prop_is(c, "name", "LD_PRELOAD"))
            env = c;
    if (env) {
        g_autofree char *old = prop(env, "value");
        g_autofree char *v = g_strdup_printf(
            "%s%s%s", opts->preload, old && *old ? ":" : "", old ? old : "");

        xmlSetProp(env, BAD_CAST "value", BAD_CAST v);
    } else {
        env = xmlNewChild(cmdline, qns, BAD_CAST "env", NULL);
        xmlNewProp(env, BAD_CAST "name", BAD_CAST "LD_PRELOAD");
        xmlNewProp(env, BAD_CAST "value", BAD_CAST opts->preload);
    }

    /* Base64, so that no re-formatting by libvirt can touch the text. */
    b64 = g_base64_encode((const guchar *)original, strlen(original));
    xmlNewTextChild(bl, bns, BAD_CAST "original", BAD_CAST b64);
    return dump(doc, false);
}

/* ------------------------------------------------------------ strip */

static bool is_ours_drive_arg(const char *v, BlkinState *s)
{
    for (guint i = 0; v && i < s->disks->len; i++) {
        TracedDisk *d = s->disks->pdata[i];
        g_autofree char *pfx = g_strdup_printf("if=none,id=%s,", d->drive);

        if (g_str_has_prefix(v, pfx))
            return true;
    }
    return false;
}

static bool is_ours_drive(const char *v, BlkinState *s)
{
    for (guint i = 0; v && i < s->disks->len; i++)
        if (g_str_equal(v, ((TracedDisk *)s->disks->pdata[i])->drive))
            return true;
    return false;
}

static void strip_cmdline(xmlNode *cmdline, BlkinState *s)
{
    xmlNode *c = cmdline ? cmdline->children : NULL;

    while (c) {
        xmlNode *next = c->next;

        if (is_el(c, "arg", BLKIN_QEMU_NS) && prop_is(c, "value", "-drive")) {
            xmlNode *v = next;

            while (v && v->type != XML_ELEMENT_NODE)
                v = v->next;
            if (is_el(v, "arg", BLKIN_QEMU_NS)) {
                g_autofree char *val = prop(v, "value");

                if (is_ours_drive_arg(val, s)) {
                    next = v->next;
                    drop(c);
                    drop(v);
                }
            }
        } else if (is_el(c, "env", BLKIN_QEMU_NS) &&
                   prop_is(c, "name", "LD_PRELOAD") && s->preload) {
            g_autofree char *val = prop(c, "value");
            g_auto(GStrv) parts = g_strsplit(val ? val : "", ":", -1);
            g_autoptr(GPtrArray) keep = g_ptr_array_new();

            for (char **p = parts; *p; p++)
                if (**p && !g_str_equal(*p, s->preload))
                    g_ptr_array_add(keep, *p);
            g_ptr_array_add(keep, NULL);
            if (keep->len == 1) {
                drop(c);
            } else {
                g_autofree char *nv = g_strjoinv(":", (char **)keep->pdata);

                xmlSetProp(c, BAD_CAST "value", BAD_CAST nv);
            }
        }
        c = next;
    }
    if (cmdline && !has_element_children(cmdline))
        drop(cmdline);
}

static void strip_override(xmlNode *override, BlkinState *s)
{
    xmlNode *dev = override ? override->children : NULL;

    while (dev) {
        xmlNode *next = dev->next;
        xmlNode *fe = child(dev, "frontend", BLKIN_QEMU_NS);
        xmlNode *p = fe ? fe->children : NULL;

        while (p) {
            xmlNode *pn = p->next;
            g_autofree char *v = prop(p, "value");

            if (is_el(p, "property", BLKIN_QEMU_NS) &&
                prop_is(p, "name", "drive") && is_ours_drive(v, s))
                drop(p);
            p = pn;
        }
        if (fe && !has_element_children(fe))
            drop(fe);
        if (is_el(dev, "device", BLKIN_QEMU_NS) && !has_element_children(dev))
            drop(dev);
        dev = next;
    }
    if (override && !has_element_children(override))
        drop(override);
}

char *domxml_strip(const char *xml, GError **error)
{
    g_autoptr(xmlDoc) doc = domxml_parse(xml, error);
    g_autoptr(BlkinState) s = NULL;
    xmlNode *root, *m, *devices;

    if (!doc)
        return NULL;
    s = domxml_state(doc, error);
    if (!s) {
        if (error && *error)
            return NULL;
        return g_strdup(xml);
    }
    root = root_of(doc);
    devices = child(root, "devices", NULL);
    m = meta_node(doc);
    for (guint i = 0; i < s->disks->len; i++) {
        TracedDisk *d = s->disks->pdata[i];
        xmlNode *dn = find_disk(doc, d->target);

        if (!dn)
            continue;
        if (d->serial_added)
            drop(child(dn, "serial", NULL));
        if (d->alias_added)
            drop(child(dn, "alias", NULL));
    }
    if (prop_is(m, "channel-added", "yes")) {
        xmlNode *chan = find_agent_channel(devices);

        if (chan && prop_is(child(chan, "source", NULL), "path",
                            s->agent_socket ? s->agent_socket : ""))
            drop(chan);
    }
    strip_cmdline(child(root, "commandline", BLKIN_QEMU_NS), s);
    strip_override(child(root, "override", BLKIN_QEMU_NS), s);
    if (prop_is(m, "metadata-added", "yes") && m->parent) {
        xmlNode *md = m->parent;

        drop(m);
        if (!has_element_children(md))
            drop(md);
    } else {
        drop(m);
    }
    return dump(doc, false);
}

/* ------------------------------------------------------------ compare */

static char *canonical_doc(xmlDoc *doc)
{
    xmlChar *out = NULL;
    char *r;

    /* Exclusive C14N leaves out namespace declarations nothing uses, such
     * as the qemu prefix once blkin's elements are gone. */
    if (xmlC14NDocDumpMemory(doc, NULL, XML_C14N_EXCLUSIVE_1_0, NULL, 0, &out) <
        0)
        return NULL;
    r = g_strdup((const char *)out);
    xmlFree(out);
    return r;
}

static char *canonical(const char *xml)
{
    g_autoptr(xmlDoc) doc = parse_opts(xml, XML_PARSE_NOBLANKS, NULL);
    char *r = doc ? canonical_doc(doc) : NULL;

    return r ? r : g_strdup(xml);
}

char *domxml_fingerprint(const char *xml)
{
    g_autoptr(xmlDoc) doc = parse_opts(xml, XML_PARSE_NOBLANKS, NULL);
    g_autofree char *c = NULL;

    if (!doc)
        return NULL;
    drop(meta_node(doc));
    c = canonical_doc(doc);
    return c ? g_compute_checksum_for_string(G_CHECKSUM_SHA256, c, -1) : NULL;
}

char *domxml_set_fingerprint(const char *xml, const char *fingerprint,
                             GError **error)
{
    g_autoptr(xmlDoc) doc = domxml_parse(xml, error);
    xmlNode *m;

    if (!doc)
        return NULL;
    m = meta_node(doc);
    if (!m) {
        g_set_error(error, BLKIN_DOMXML_ERROR, ENOENT,
                    "the definition has no blkin metadata");
        return NULL;
    }
    xmlSetProp(m, BAD_CAST "fingerprint", BAD_CAST fingerprint);
    return dump(doc, false);
}

gboolean domxml_equal(const char *a, const char *b)
{
    g_autofree char *ca = canonical(a);
    g_autofree char *cb = canonical(b);

    return g_str_equal(ca, cb);
}

static char **normalised_lines(const char *xml)
{
    g_autoptr(xmlDoc) doc = parse_opts(xml, XML_PARSE_NOBLANKS, NULL);
    g_autofree char *text = NULL;

    if (!doc)
        return g_strsplit(xml, "\n", -1);
    /* The metadata's base64 line says nothing to a reader. */
    for (xmlNode *m = meta_node(doc); m; m = NULL) {
        xmlNode *o = child(m, "original", BLKIN_META_NS);

        if (o)
            xmlNodeSetContent(o, BAD_CAST "(the definition before blkin, "
                                          "base64)");
    }
    text = dump(doc, true);
    return g_strsplit(text, "\n", -1);
}

char *domxml_diff(const char *a, const char *b)
{
    g_auto(GStrv) la = normalised_lines(a);
    g_auto(GStrv) lb = normalised_lines(b);
    guint n = g_strv_length(la), m = g_strv_length(lb);
    g_autofree guint *lcs = g_new0(guint, (gsize)(n + 1) * (m + 1));
    g_autoptr(GString) out = g_string_new(NULL);
    g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func(g_free);
    guint i = 0, j = 0;

#define L(x, y) lcs[(gsize)(x) * (m + 1) + (y)]
    for (guint x = n; x-- > 0;)
        for (guint y = m; y-- > 0;)
            L(x, y) = g_str_equal(la[x], lb[y]) ? L(x + 1, y + 1) + 1
                                                : MAX(L(x + 1, y), L(x, y + 1));
    while (i < n || j < m) {
        if (i < n && j < m && g_str_equal(la[i], lb[j])) {
            g_ptr_array_add(ops, g_strdup_printf(" %s", la[i]));
            i++, j++;
        } else if (i < n && (j == m || L(i + 1, j) >= L(i, j + 1))) {
            g_ptr_array_add(ops, g_strdup_printf("-%s", la[i++]));
        } else {
            g_ptr_array_add(ops, g_strdup_printf("+%s", lb[j++]));
        }
    }
#undef L

    /* Changed lines with three lines of context around each. */
    for (guint k = 0; k < ops->len; k++) {
        const char *line = ops->pdata[k];
        bool near = false;

        for (guint c = k >= 3 ? k - 3 : 0; c < MIN(ops->len, k + 4); c++)
            if (((const char *)ops->pdata[c])[0] != ' ')
                near = true;
        if (near) {
            g_string_append_printf(out, "%s\n", line);
        } else if (out->len && !g_str_has_suffix(out->str, "...\n")) {
            g_string_append(out, " ...\n");
        }
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}
