/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-libvirt: enable and disable blkin tracing on libvirt domains, and
 * the libvirt hook that tells blkin-hostd when a traced domain starts/stops.
 *
 *   blkin-libvirt enable DOMAIN [--disk TARGET ...] [--dry-run]
 *   blkin-libvirt prepare DOMAIN [--disk TARGET ...] [--dry-run]
 *   blkin-libvirt disable DOMAIN [--disk TARGET ...] [--dry-run]
 *   blkin-libvirt status DOMAIN
 *   blkin-libvirt hook DOMAIN OPERATION SUB-OPERATION [EXTRA] < domain-xml
 *
 * Changes go to the persistent definition only (docs/libvirt.md); they take
 * effect when the domain next starts. `prepare` is `enable` without the
 * filter at start (domxml.h): the domain starts ready for `blkin-live
 * enable --libvirt`, which then needs no restart.
 */
#define G_LOG_DOMAIN "blkin-libvirt"

#include "disk-id.h"
#include "domxml.h"

#include <errno.h>
#include <grp.h>
#include <json-glib/json-glib.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef BLKIN_PRELOAD_DEFAULT
#define BLKIN_PRELOAD_DEFAULT                                                  \
    "/usr/local/lib/x86_64-linux-gnu/blkin/libblkin-preload.so"
#endif
#ifndef BLKIN_CLI_DEFAULT
#define BLKIN_CLI_DEFAULT "/usr/local/bin/blkin"
#endif
#define HOSTD_CONF     "/etc/blkin/hostd.conf"
#define CLI_TIMEOUT_MS 5000

/* Errors are GErrors in this domain; main() prints them, "blkin-libvirt: "
 * first. Warnings and notes are printed where they arise. */
#define BLKIN_LIBVIRT_ERROR (blkin_libvirt_error_quark())
G_DEFINE_QUARK(blkin - libvirt - error - quark, blkin_libvirt_error)

typedef enum {
    BLKIN_LIBVIRT_ERROR_NOT_FOUND,   /* no such domain, disk or file */
    BLKIN_LIBVIRT_ERROR_UNSUPPORTED, /* a transient domain */
    BLKIN_LIBVIRT_ERROR_INVALID,     /* a definition blkin cannot change */
    BLKIN_LIBVIRT_ERROR_MISMATCH,    /* libvirt numbered nodes differently */
    BLKIN_LIBVIRT_ERROR_TIMEOUT,     /* the blkin CLI did not answer */
    BLKIN_LIBVIRT_ERROR_FAILED,      /* libvirt or the system refused */
} BlkinLibvirtError;

static char *opt_connect = NULL;
static char **opt_disks = NULL;
static gboolean opt_dry_run = FALSE;
static char *opt_preload = NULL;
static char *opt_agent_socket = NULL;
static char *opt_state_dir = NULL;
static char *opt_cli = NULL;
static char *opt_hostd_socket = NULL;
static char *opt_hostd_config = NULL;

G_DEFINE_AUTOPTR_CLEANUP_FUNC(virConnect, virConnectClose)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(virDomain, virDomainFree)

/* libvirt prints every error to stderr by default; ours say it better. */
static void quiet_errors(void *opaque, virErrorPtr err)
{
}

static const char *lv_error(void)
{
    const char *m = virGetLastErrorMessage();

    return m ? m : "unknown libvirt error";
}

static char *free_lv_string(char *s)
{
    char *r = g_strdup(s);

    free(s);
    return r;
}

/* ------------------------------------------------------------ connection */

static virConnect *open_conn(GError **error)
{
    virConnect *c = virConnectOpen(opt_connect);

    if (!c)
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                    "cannot connect to libvirt (%s): %s",
                    opt_connect ? opt_connect : "default URI", lv_error());
    return c;
}

static virDomain *lookup(virConnect *c, const char *name, GError **error)
{
    virDomain *d = virDomainLookupByName(c, name);

    if (!d) {
        if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN)
            g_set_error(error, BLKIN_LIBVIRT_ERROR,
                        BLKIN_LIBVIRT_ERROR_NOT_FOUND,
                        "libvirt has no domain named '%s'", name);
        else
            g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                        "cannot look up domain '%s': %s", name, lv_error());
    }
    return d;
}

/* The persistent definition exactly as libvirt prints it (with secrets, so
 * that defining it again loses nothing). */
static char *inactive_xml(virDomain *d, GError **error)
{
    char *x =
        virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);

    if (!x) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                    "cannot read the domain's definition: %s", lv_error());
        return NULL;
    }
    return free_lv_string(x);
}

/* A domain's persistent definition as the commands below read it. */
typedef struct Definition {
    virDomain *dom;
    char *xml; /* as libvirt prints it */
    xmlDoc *doc;
    BlkinState *st; /* NULL: blkin is not on */
} Definition;

static void definition_clear(Definition *def)
{
    g_clear_pointer(&def->st, blkin_state_free);
    g_clear_pointer(&def->doc, xmlFreeDoc);
    g_clear_pointer(&def->xml, g_free);
    g_clear_pointer(&def->dom, virDomainFree);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Definition, definition_clear)

/* Loads @name's definition; a transient domain is refused when
 * @persistent_only, because blkin changes persistent definitions only. */
static gboolean definition_load(virConnect *c, const char *name,
                                bool persistent_only, Definition *def,
                                GError **error)
{
    g_autoptr(GError) err = NULL;

    def->dom = lookup(c, name, error);
    if (!def->dom)
        return FALSE;
    if (persistent_only && virDomainIsPersistent(def->dom) != 1) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_UNSUPPORTED,
                    "'%s' is a transient domain; blkin changes persistent "
                    "definitions only (virsh define it first)",
                    name);
        return FALSE;
    }
    def->xml = inactive_xml(def->dom, error);
    if (!def->xml)
        return FALSE;
    def->doc = domxml_parse(def->xml, &err);
    if (!def->doc || (!(def->st = domxml_state(def->doc, &err)) && err)) {
        g_propagate_error(error, g_steal_pointer(&err));
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------------ checks */

static const char *preload_path(const BlkinState *st)
{
    const char *env = g_getenv("BLKIN_PRELOAD");

    if (opt_preload)
        return opt_preload;
    if (env && *env)
        return env;
    if (st && st->preload)
        return st->preload;
    return BLKIN_PRELOAD_DEFAULT;
}

static GHashTable *qmp_nodes(virDomain *d, GError **error)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL;
    char *raw = NULL;
    GHashTable *nodes;
    JsonObject *o;
    JsonArray *a;

    if (virDomainQemuMonitorCommand(
            d, "{\"execute\":\"query-named-block-nodes\"}", &raw, 0) < 0) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                    "cannot query the running domain's block nodes: %s",
                    lv_error());
        return NULL;
    }
    out = free_lv_string(raw);
    if (!json_parser_load_from_data(p, out, -1, &err) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                    "unexpected QMP answer: %s", out);
        return NULL;
    }
    o = json_node_get_object(json_parser_get_root(p));
    a = json_object_has_member(o, "return")
            ? json_object_get_array_member(o, "return")
            : NULL;
    nodes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *n = json_array_get_object_element(a, i);
        const char *name =
            json_object_get_string_member_with_default(n, "node-name", NULL);
        const char *file =
            json_object_get_string_member_with_default(n, "file", "");

        if (name)
            g_hash_table_replace(nodes, g_strdup(name), g_strdup(file));
    }
    return nodes;
}

static unsigned live_index(xmlDoc *live, const char *target)
{
    xmlNode *root = xmlDocGetRootElement(live);

    for (xmlNode *dv = root->children; dv; dv = dv->next) {
        if (dv->type != XML_ELEMENT_NODE ||
            !xmlStrEqual(dv->name, BAD_CAST "devices"))
            continue;
        for (xmlNode *k = dv->children; k; k = k->next) {
            xmlNode *t = NULL, *s = NULL;
            xmlChar *dev = NULL, *idx = NULL;
            unsigned r = 0;
            bool match;

            if (k->type != XML_ELEMENT_NODE ||
                !xmlStrEqual(k->name, BAD_CAST "disk"))
                continue;
            for (xmlNode *c = k->children; c; c = c->next) {
                if (c->type != XML_ELEMENT_NODE)
                    continue;
                if (xmlStrEqual(c->name, BAD_CAST "target"))
                    t = c;
                else if (xmlStrEqual(c->name, BAD_CAST "source"))
                    s = c;
            }
            dev = t ? xmlGetProp(t, BAD_CAST "dev") : NULL;
            match = dev && xmlStrEqual(dev, BAD_CAST target);
            xmlFree(dev);
            if (!match)
                continue;
            idx = s ? xmlGetProp(s, BAD_CAST "index") : NULL;
            if (idx)
                r = (unsigned)strtoul((const char *)idx, NULL, 10);
            xmlFree(idx);
            return r;
        }
    }
    return 0;
}

/* Node names are derived from the definition. When the domain runs, libvirt
 * has numbered the same disks for real (the live XML's <source index=...>)
 * and QEMU has the nodes: if the running disks are the defined ones, the
 * derivation must agree with both, else blkin's idea of libvirt's numbering
 * is wrong and nothing may be changed. */
static gboolean check_running(virDomain *d, xmlDoc *inactive,
                              GPtrArray *targets, GError **error)
{
    g_autoptr(GHashTable) nodes = NULL;
    g_autoptr(xmlDoc) live = NULL;
    g_autoptr(GPtrArray) ldisks = NULL;
    g_autoptr(GPtrArray) idisks = domxml_disks(inactive);
    g_autoptr(GString) wrong = g_string_new(NULL);
    g_autofree char *xml = NULL;
    char *raw;
    bool same;

    if (virDomainIsActive(d) != 1)
        return TRUE;
    raw = virDomainGetXMLDesc(d, 0);
    if (!raw) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                    "cannot read the running definition: %s", lv_error());
        return FALSE;
    }
    xml = free_lv_string(raw);
    live = domxml_parse(xml, error);
    if (!live)
        return FALSE;
    nodes = qmp_nodes(d, error);
    if (!nodes)
        return FALSE;
    ldisks = domxml_disks(live);
    /* Backing images libvirt found are in the live XML as <backingStore>;
     * they do not move top images, so compare the top images only. */
    same = ldisks->len == idisks->len;
    for (guint i = 0; same && i < idisks->len; i++)
        same = g_strcmp0(((DomDisk *)ldisks->pdata[i])->target,
                         ((DomDisk *)idisks->pdata[i])->target) == 0 &&
               g_strcmp0(((DomDisk *)ldisks->pdata[i])->source,
                         ((DomDisk *)idisks->pdata[i])->source) == 0;
    if (!same) {
        g_print("note: the running domain's disks differ from its "
                "definition, so its node names cannot confirm the ones "
                "derived for the next start\n");
        return TRUE;
    }
    for (guint t = 0; t < targets->len; t++) {
        const char *target = targets->pdata[t];
        const DomDisk *id = NULL;
        g_autofree char *node = NULL;
        const char *file;
        unsigned idx;

        for (guint i = 0; i < idisks->len; i++)
            if (g_strcmp0(((DomDisk *)idisks->pdata[i])->target, target) == 0)
                id = idisks->pdata[i];
        if (!id || g_str_has_prefix(id->node, "libvirt-CoR-"))
            continue;
        idx = live_index(live, target);
        node = g_strdup_printf("libvirt-%u-format", idx);
        file = g_hash_table_lookup(nodes, node);
        if (idx != id->index || !file ||
            (id->source && !g_str_equal(file, id->source))) {
            /* One line per disk, as main() prints the first. */
            g_string_append_printf(
                wrong,
                "%slibvirt numbered the running domain's nodes differently "
                "from what blkin-libvirt derives: %s should be on %s (%s), "
                "libvirt gave it index %u and QEMU's %s is %s; refusing to "
                "change the definition",
                wrong->len ? "\nblkin-libvirt: " : "", target, id->node,
                id->source ? id->source : "?", idx, node,
                file ? file : "missing");
            continue;
        }
        g_print("%s: node %s checked in the running domain (%s)\n", target,
                id->node, file);
    }
    if (wrong->len) {
        g_set_error_literal(error, BLKIN_LIBVIRT_ERROR,
                            BLKIN_LIBVIRT_ERROR_MISMATCH, wrong->str);
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------------ state file */

static char *state_path(const char *name)
{
    const char *dir = opt_state_dir ? opt_state_dir : "/var/lib/blkin";

    return g_strdup_printf("%s/libvirt/%s.vm", dir, name);
}

/* What hostd needs to know about the domain, in hostd's config syntax, so
 * that it can be read without libvirt. A failure is only warned about: the
 * definition's metadata is what counts. */
static void write_state(const char *name, const char *uuid,
                        const BlkinState *st)
{
    g_autofree char *path = state_path(name);
    g_autofree char *dir = g_path_get_dirname(path);
    g_autoptr(GString) disks = g_string_new(NULL);
    g_autoptr(GString) text = g_string_new(NULL);
    g_autoptr(GError) err = NULL;

    for (guint i = 0; i < st->disks->len; i++) {
        const TracedDisk *d = st->disks->pdata[i];

        g_string_append_printf(disks, "%s%s=%s=%s", i ? ";" : "", d->target,
                               d->serial, d->filter_id);
    }
    g_string_append_printf(text,
                           "# Written by blkin-libvirt; the domain's "
                           "definition holds the same in its metadata.\n"
                           "[vm %s]\nuuid = %s\nagent-socket = %s\n"
                           "disks = %s\n",
                           name, uuid, st->agent_socket, disks->str);
    if (g_mkdir_with_parents(dir, 0755) < 0 ||
        !g_file_set_contents(path, text->str, -1, &err)) {
        g_printerr("blkin-libvirt: warning: cannot write %s: %s\n", path,
                   err ? err->message : g_strerror(errno));
    }
}

static void remove_state(const char *name)
{
    g_autofree char *path = state_path(name);

    if (unlink(path) < 0 && errno != ENOENT)
        g_printerr("blkin-libvirt: warning: cannot remove %s: %s\n", path,
                   g_strerror(errno));
}

/* QEMU (running as libvirt's QEMU user) binds the agent's socket, so its
 * directory must exist and be writable by that group before the domain
 * starts. /run is emptied at boot: the hook makes it again at prepare. */
static gboolean make_socket_dir(const char *sock, GError **error)
{
    g_autofree char *dir = g_path_get_dirname(sock);
    struct group *g;

    if (g_file_test(dir, G_FILE_TEST_IS_DIR))
        return TRUE;
    if (g_mkdir_with_parents(dir, 0755) < 0) {
        g_set_error_literal(error, BLKIN_LIBVIRT_ERROR,
                            BLKIN_LIBVIRT_ERROR_FAILED, g_strerror(errno));
        return FALSE;
    }
    g = getgrnam("libvirt-qemu");
    if (!g)
        g = getgrnam("kvm");
    if (g && chown(dir, 0, g->gr_gid) == 0)
        chmod(dir, 02770);
    return TRUE;
}

/* ------------------------------------------------------------ enable */

static GPtrArray *strv_array(char **v)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);

    for (char **p = v; p && *p; p++)
        if (!g_ptr_array_find_with_equal_func(a, *p, g_str_equal, NULL))
            g_ptr_array_add(a, g_strdup(*p));
    return a;
}

static void add_unique(GPtrArray *a, const char *s)
{
    if (!g_ptr_array_find_with_equal_func(a, s, g_str_equal, NULL))
        g_ptr_array_add(a, g_strdup(s));
}

static char *join_targets(GPtrArray *a)
{
    g_autoptr(GString) s = g_string_new(NULL);

    for (guint i = 0; i < a->len; i++)
        g_string_append_printf(s, "%s%s", i ? ", " : "",
                               (const char *)a->pdata[i]);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* The definition blkin's changes are made on, and the one `disable` goes
 * back to: the stored original while the definition is unchanged since
 * blkin changed it, else the current one without blkin's parts (keeping the
 * operator's later edits). *@unchanged tells which. */
static char *base_of(const char *cur, const BlkinState *st, bool *unchanged,
                     GError **error)
{
    g_autofree char *stripped = NULL;
    g_autofree char *fp = NULL;

    *unchanged = false;
    if (!st)
        return g_strdup(cur);
    fp = domxml_fingerprint(cur);
    if (st->original && st->fingerprint && fp &&
        g_str_equal(fp, st->fingerprint)) {
        *unchanged = true;
        return g_strdup(st->original);
    }
    stripped = domxml_strip(cur, error);
    if (!stripped)
        return NULL;
    g_printerr("blkin-libvirt: note: the definition was edited since blkin "
               "changed it; keeping those edits\n");
    return g_steal_pointer(&stripped);
}

/* Defines `xml` and returns the definition as libvirt prints it back. */
static char *define_once(virConnect *c, const char *xml, GError **error)
{
    g_autoptr(virDomain) d = virDomainDefineXML(c, xml);
    char *raw;

    if (!d) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                    "libvirt refused the new definition: %s", lv_error());
        return NULL;
    }
    raw =
        virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
    if (!raw) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                    "cannot read the new definition back: %s", lv_error());
        return NULL;
    }
    return free_lv_string(raw);
}

/* Defines `xml`; a definition with blkin's metadata is defined twice, the
 * second time with the fingerprint of what libvirt made of the first (libvirt
 * adds controllers and addresses), so that later runs can tell whether it is
 * still blkin's. Returns the definition as libvirt prints it. */
static char *define(virConnect *c, const char *xml, GError **error)
{
    g_autofree char *first = NULL, *fp = NULL, *marked = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(BlkinState) st = NULL;

    first = define_once(c, xml, error);
    if (!first)
        return NULL;
    doc = domxml_parse(first, NULL);
    st = doc ? domxml_state(doc, NULL) : NULL;
    if (!st)
        return g_steal_pointer(&first);
    fp = domxml_fingerprint(first);
    if (!fp) {
        g_set_error_literal(error, BLKIN_LIBVIRT_ERROR,
                            BLKIN_LIBVIRT_ERROR_FAILED, "no digest");
        return NULL;
    }
    marked = domxml_set_fingerprint(first, fp, error);
    if (!marked)
        return NULL;
    return define_once(c, marked, error);
}

static void when(virDomain *d, const char *what)
{
    if (virDomainIsActive(d) == 1)
        g_print("%s at the domain's next start; it is running now and "
                "keeps its current disks until it is shut down and started "
                "again (a reboot inside the guest is not enough)\n",
                what);
    else
        g_print("%s at the domain's next start\n", what);
}

/* Whether the definition, unchanged since blkin defined it, already has what
 * `enable` would make of it. Filter ids made by an older rule (<uuid>/...)
 * are not: enabling again moves them to the disk identity. */
static bool same_setup(const char *name, const BlkinState *st,
                       GPtrArray *targets, const EnableOptions *eo)
{
    if (st->disks->len != targets->len || st->prepared != eo->prepare_only ||
        g_strcmp0(st->preload, eo->preload) != 0 ||
        (eo->agent_socket && g_strcmp0(st->agent_socket, eo->agent_socket)))
        return false;
    for (guint i = 0; i < st->disks->len; i++) {
        const TracedDisk *d = st->disks->pdata[i];
        g_autofree char *id = blkin_disk_id(name, d->target, NULL);

        if (!g_ptr_array_find_with_equal_func(targets, d->target, g_str_equal,
                                              NULL) ||
            g_strcmp0(d->filter_id, id) != 0)
            return false;
    }
    return true;
}

/* enable, or with @prepare only prepare (no filter at start). */
static gboolean cmd_enable(virConnect *c, const char *name, gboolean prepare,
                           GError **error)
{
    g_auto(Definition) def = {0};
    g_autofree char *base = NULL, *next = NULL;
    g_autofree char *printed = NULL, *uuid = NULL, *list = NULL;
    g_autoptr(xmlDoc) bdoc = NULL, ndoc = NULL;
    g_autoptr(BlkinState) nst = NULL;
    g_autoptr(GPtrArray) targets = NULL;
    g_autoptr(GError) err = NULL;
    EnableOptions eo = {0};
    const BlkinState *st;
    virDomain *d;
    const char *cur;
    bool unchanged;

    if (!definition_load(c, name, true, &def, error))
        return FALSE;
    d = def.dom;
    cur = def.xml;
    st = def.st;
    base = base_of(cur, st, &unchanged, error);
    if (!base)
        return FALSE;
    bdoc = domxml_parse(base, error);
    if (!bdoc)
        return FALSE;

    if (opt_disks && *opt_disks) {
        targets = strv_array(opt_disks);
        if (!domxml_check_targets(bdoc, targets, &err)) {
            g_set_error(error, err->domain, err->code, "%s: %s", name,
                        err->message);
            return FALSE;
        }
    } else {
        targets = domxml_default_targets(bdoc);
    }
    /* Enabling more disks keeps the ones enabled before. */
    for (guint i = 0; st && i < st->disks->len; i++)
        add_unique(targets, ((TracedDisk *)st->disks->pdata[i])->target);
    if (targets->len == 0) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_NOT_FOUND,
                    "%s has no virtio-blk disk to trace", name);
        return FALSE;
    }

    eo.prepare_only = prepare;
    eo.preload = preload_path(st);
    eo.agent_socket = opt_agent_socket ? opt_agent_socket
                      : st             ? st->agent_socket
                                       : NULL;
    if (!g_file_test(eo.preload, G_FILE_TEST_IS_REGULAR)) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_NOT_FOUND,
                    "the filter's preload object %s does not exist (install "
                    "blkin, or name it with --preload)",
                    eo.preload);
        return FALSE;
    }
    next = domxml_enable(base, base, targets, &eo, &err);
    if (!next) {
        g_set_error(error, err->domain, err->code, "%s: %s", name,
                    err->message);
        return FALSE;
    }
    list = join_targets(targets);
    if (!check_running(d, bdoc, targets, error))
        return FALSE;
    if (unchanged && same_setup(name, st, targets, &eo)) {
        g_print("blkin is already %s on %s of %s; nothing changed\n",
                prepare ? "prepared" : "enabled", list, name);
        return TRUE;
    }
    if (opt_dry_run) {
        g_autofree char *diff = domxml_diff(cur, next);

        g_print("%s", diff);
        g_print("dry run: %s not changed (would %s blkin on %s)\n", name,
                prepare ? "prepare" : "enable", list);
        return TRUE;
    }
    printed = define(c, next, error);
    if (!printed)
        return FALSE;
    ndoc = domxml_parse(printed, NULL);
    nst = ndoc ? domxml_state(ndoc, NULL) : NULL;
    if (!nst) {
        g_set_error(error, BLKIN_LIBVIRT_ERROR, BLKIN_LIBVIRT_ERROR_FAILED,
                    "libvirt dropped blkin's metadata from the definition");
        return FALSE;
    }
    uuid = domxml_uuid(ndoc);
    if (!make_socket_dir(nst->agent_socket, NULL))
        g_printerr("blkin-libvirt: warning: cannot make the directory of %s\n",
                   nst->agent_socket);
    write_state(name, uuid, nst);
    for (guint i = 0; i < nst->disks->len; i++) {
        TracedDisk *t = nst->disks->pdata[i];

        if (prepare)
            g_print("%s: filter %s when blkin-live enables it, serial %s\n",
                    t->target, t->filter_id, t->serial);
        else
            g_print("%s: filter %s on %s, serial %s\n", t->target, t->filter_id,
                    t->node, t->serial);
    }
    g_print("agent channel: %s\n", nst->agent_socket);
    if (prepare) {
        g_print("blkin is prepared on %s of %s: it starts with the filter's "
                "driver loaded and no disk traced; `blkin-live enable "
                "--libvirt %s --device DEVICE` traces a disk while it runs\n",
                list, name, name);
        when(d, "The preload takes effect");
    } else {
        g_print("blkin is enabled on %s of %s\n", list, name);
        when(d, "The change takes effect");
    }
    return TRUE;
}

static gboolean cmd_disable(virConnect *c, const char *name, GError **error)
{
    g_auto(Definition) def = {0};
    g_autofree char *base = NULL, *next = NULL;
    g_autofree char *printed = NULL;
    g_autoptr(GPtrArray) keep = NULL;
    g_autoptr(GError) err = NULL;
    const BlkinState *st;
    virDomain *d;
    const char *cur;
    bool unchanged;

    if (!definition_load(c, name, true, &def, error))
        return FALSE;
    d = def.dom;
    cur = def.xml;
    st = def.st;
    if (!st) {
        g_print("blkin is not enabled on %s; nothing changed\n", name);
        return TRUE;
    }
    keep = g_ptr_array_new_with_free_func(g_free);
    for (char **p = opt_disks; p && *p; p++) {
        bool found = false;

        for (guint i = 0; i < st->disks->len; i++)
            if (g_str_equal(((TracedDisk *)st->disks->pdata[i])->target, *p))
                found = true;
        if (!found) {
            g_set_error(error, BLKIN_LIBVIRT_ERROR,
                        BLKIN_LIBVIRT_ERROR_NOT_FOUND,
                        "%s: disk '%s' is not traced by blkin; nothing "
                        "changed",
                        name, *p);
            return FALSE;
        }
    }
    for (guint i = 0; opt_disks && *opt_disks && i < st->disks->len; i++) {
        const char *t = ((TracedDisk *)st->disks->pdata[i])->target;

        if (!g_strv_contains((const char *const *)opt_disks, t))
            add_unique(keep, t);
    }

    base = base_of(cur, st, &unchanged, error);
    if (!base)
        return FALSE;
    if (keep->len == 0) {
        next = g_strdup(base);
    } else {
        EnableOptions eo = {.preload = preload_path(st),
                            .agent_socket = st->agent_socket,
                            .prepare_only = st->prepared};

        next = domxml_enable(base, base, keep, &eo, &err);
        if (!next) {
            g_set_error(error, err->domain, err->code, "%s: %s", name,
                        err->message);
            return FALSE;
        }
    }
    if (opt_dry_run) {
        g_autofree char *diff = domxml_diff(cur, next);

        g_print("%s", diff);
        g_print("dry run: %s not changed\n", name);
        return TRUE;
    }
    printed = define(c, next, error);
    if (!printed)
        return FALSE;
    if (keep->len == 0) {
        remove_state(name);
        if (unchanged && g_strcmp0(printed, base) != 0)
            g_printerr("blkin-libvirt: warning: libvirt prints the restored "
                       "definition differently from the original\n");
        g_print("blkin is disabled on %s; the definition is %s\n", name,
                unchanged ? "the original again" : "without blkin's parts");
    } else {
        g_autoptr(xmlDoc) ndoc = domxml_parse(printed, NULL);
        g_autoptr(BlkinState) nst = ndoc ? domxml_state(ndoc, NULL) : NULL;
        g_autofree char *uuid = ndoc ? domxml_uuid(ndoc) : NULL;
        g_autofree char *list = join_targets(keep);

        if (nst)
            write_state(name, uuid, nst);
        g_print("blkin stays enabled on %s of %s\n", list, name);
    }
    when(d, "The change takes effect");
    return TRUE;
}

static gboolean cmd_status(virConnect *c, const char *name, GError **error)
{
    g_auto(Definition) def = {0};
    g_autoptr(GPtrArray) disks = NULL;
    const BlkinState *st;

    if (!definition_load(c, name, false, &def, error))
        return FALSE;
    st = def.st;
    disks = domxml_disks(def.doc);
    for (guint i = 0; i < disks->len; i++) {
        DomDisk *k = disks->pdata[i];
        const TracedDisk *t = NULL;

        for (guint j = 0; st && j < st->disks->len; j++)
            if (g_str_equal(((TracedDisk *)st->disks->pdata[j])->target,
                            k->target))
                t = st->disks->pdata[j];
        g_print("%s\t%s/%s\t%s\t%s%s\n", k->target, k->device,
                k->bus ? k->bus : "?", k->node,
                !t             ? "not traced"
                : st->prepared ? "ready for blkin-live as "
                               : "traced as ",
                t ? t->filter_id : "");
    }
    if (st)
        g_print("agent channel: %s\n", st->agent_socket);
    return TRUE;
}

/* ------------------------------------------------------------ the hook */

static char *read_stdin(void)
{
    g_autoptr(GString) s = g_string_new(NULL);
    char buf[8192];
    ssize_t n;

    while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        g_string_append_len(s, buf, n);
    }
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static char *hostd_socket(void)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    const char *env = g_getenv("BLKIN_HOSTD_SOCKET");
    const char *conf = opt_hostd_config ? opt_hostd_config : HOSTD_CONF;

    if (opt_hostd_socket)
        return g_strdup(opt_hostd_socket);
    if (env && *env)
        return g_strdup(env);
    if (g_key_file_load_from_file(kf, conf, G_KEY_FILE_NONE, NULL))
        return g_key_file_get_string(kf, "hostd", "socket", NULL);
    return NULL;
}

/* Runs the blkin CLI, killing it after CLI_TIMEOUT_MS: a hung hostd must not
 * hold up the domain's start. A CLI that cannot start is a G_SPAWN_ERROR;
 * one killed after the timeout is BLKIN_LIBVIRT_ERROR_TIMEOUT. */
static gboolean run_cli(GPtrArray *argv, GError **error)
{
    GPid pid;
    int status = 0;

    g_ptr_array_add(argv, NULL);
    if (!g_spawn_async(NULL, (char **)argv->pdata, NULL,
                       G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                       NULL, NULL, &pid, error))
        return FALSE;
    for (int waited = 0;; waited += 20) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            break;
        if (r < 0) {
            g_set_error_literal(error, BLKIN_LIBVIRT_ERROR,
                                BLKIN_LIBVIRT_ERROR_FAILED, g_strerror(errno));
            return FALSE;
        }
        if (waited >= CLI_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            g_set_error_literal(error, BLKIN_LIBVIRT_ERROR,
                                BLKIN_LIBVIRT_ERROR_TIMEOUT, "no answer");
            return FALSE;
        }
        g_usleep(20000);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_set_error_literal(error, BLKIN_LIBVIRT_ERROR,
                            BLKIN_LIBVIRT_ERROR_FAILED, "the blkin CLI failed");
        return FALSE;
    }
    return TRUE;
}

/* The hook never fails: what goes wrong is said on stderr (libvirtd's
 * log). */
static void hook(const char *name, const char *op, const char *sub)
{
    g_autofree char *xml = read_stdin();
    g_autofree char *sock = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(BlkinState) st = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    const char *cli = opt_cli ? opt_cli : g_getenv("BLKIN_CLI");
    g_autoptr(GError) err = NULL;
    bool reg;

    doc = domxml_parse(xml, NULL);
    st = doc ? domxml_state(doc, NULL) : NULL;
    if (!st)
        return; /* not a domain blkin traces */

    if (g_str_equal(op, "prepare") && g_str_equal(sub, "begin")) {
        if (!make_socket_dir(st->agent_socket, &err))
            g_printerr("blkin-libvirt hook: cannot make the directory of "
                       "%s: %s\n",
                       st->agent_socket, err->message);
        return;
    }
    if ((g_str_equal(op, "started") || g_str_equal(op, "reconnect")) &&
        g_str_equal(sub, "begin"))
        reg = true;
    else if (g_str_equal(op, "stopped") && g_str_equal(sub, "end"))
        reg = false;
    else
        return;

    g_ptr_array_add(argv, g_strdup(cli && *cli ? cli : BLKIN_CLI_DEFAULT));
    sock = hostd_socket();
    if (sock) {
        g_ptr_array_add(argv, g_strdup("--socket"));
        g_ptr_array_add(argv, g_strdup(sock));
    }
    g_ptr_array_add(argv, g_strdup(reg ? "register" : "unregister"));
    g_ptr_array_add(argv, g_strdup(name));
    if (reg) {
        g_ptr_array_add(argv, g_strdup("--agent-socket"));
        g_ptr_array_add(argv, g_strdup(st->agent_socket));
        for (guint i = 0; i < st->disks->len; i++) {
            TracedDisk *t = st->disks->pdata[i];

            g_ptr_array_add(argv, g_strdup("--disk"));
            g_ptr_array_add(argv, g_strdup_printf("%s=%s=%s", t->target,
                                                  t->serial, t->filter_id));
        }
    }
    if (!run_cli(argv, &err)) {
        if (err->domain == G_SPAWN_ERROR)
            g_printerr("blkin-libvirt hook: %s\n", err->message);
        g_printerr("blkin-libvirt hook: could not %s %s with blkin-hostd "
                   "(%s); the domain runs on untraced by hostd\n",
                   reg ? "register" : "unregister", name,
                   g_error_matches(err, BLKIN_LIBVIRT_ERROR,
                                   BLKIN_LIBVIRT_ERROR_TIMEOUT)
                       ? "no answer"
                       : "hostd not reachable");
    }
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(virConnect) conn = NULL;
    gboolean show_version = FALSE;
    GOptionEntry entries[] = {
        {"connect", 'c', 0, G_OPTION_ARG_STRING, &opt_connect,
         "libvirt URI (default: libvirt's default, e.g. qemu:///system)",
         "URI"},
        {"disk", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &opt_disks,
         "a disk by its target (vda); repeatable; default: all virtio disks",
         "TARGET"},
        {"dry-run", 'n', 0, G_OPTION_ARG_NONE, &opt_dry_run,
         "print the change of the definition, change nothing", NULL},
        {"preload", 0, 0, G_OPTION_ARG_FILENAME, &opt_preload,
         "the filter's preload object (default: $BLKIN_PRELOAD or "
         "the installed one)",
         "PATH"},
        {"agent-socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_agent_socket,
         "the agent channel's UNIX socket (default: "
         "/run/blkin/agents/DOMAIN.sock)",
         "PATH"},
        {"state-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_state_dir,
         "where DOMAIN.vm files for hostd go (default: /var/lib/blkin)", "DIR"},
        {"cli", 0, 0, G_OPTION_ARG_FILENAME, &opt_cli,
         "hook: the blkin command (default: $BLKIN_CLI or the installed one)",
         "PATH"},
        {"hostd-socket", 0, 0, G_OPTION_ARG_FILENAME, &opt_hostd_socket,
         "hook: hostd's control socket (default: $BLKIN_HOSTD_SOCKET, or "
         "the socket of " HOSTD_CONF ")",
         "PATH"},
        {"hostd-config", 0, 0, G_OPTION_ARG_FILENAME, &opt_hostd_config,
         "hook: hostd's configuration file (default: " HOSTD_CONF ")", "FILE"},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &show_version,
         "Print the version and exit", NULL},
        {NULL}};
    const char *cmd;
    gboolean ok;

    setlocale(LC_ALL, "");
    ctx = g_option_context_new("enable|prepare|disable|status DOMAIN | hook "
                               "DOMAIN OP SUB-OP [EXTRA]");
    g_option_context_set_summary(
        ctx, "Enables blkin tracing on a libvirt domain's virtio disks "
             "(docs/libvirt.md).");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("blkin-libvirt: %s\n", err->message);
        return 2;
    }
    if (show_version) {
        g_print("blkin-libvirt %s\n", BLKIN_VERSION);
        return 0;
    }
    if (argc < 3) {
        g_autofree char *help = g_option_context_get_help(ctx, TRUE, NULL);

        g_printerr("%s", help);
        return 2;
    }
    cmd = argv[1];
    if (g_str_equal(cmd, "hook")) {
        /* libvirt: hook DOMAIN OPERATION SUB-OPERATION EXTRA. Never fail. */
        if (argc >= 5)
            hook(argv[2], argv[3], argv[4]);
        return 0;
    }
    if (!g_str_equal(cmd, "enable") && !g_str_equal(cmd, "prepare") &&
        !g_str_equal(cmd, "disable") && !g_str_equal(cmd, "status")) {
        g_printerr("blkin-libvirt: unknown command '%s'\n", cmd);
        return 2;
    }
    if (argc != 3) {
        g_printerr("blkin-libvirt: %s takes one domain name\n", cmd);
        return 2;
    }
    virSetErrorFunc(NULL, quiet_errors);
    conn = open_conn(&err);
    if (!conn)
        ok = FALSE;
    else if (g_str_equal(cmd, "enable") || g_str_equal(cmd, "prepare"))
        ok = cmd_enable(conn, argv[2], g_str_equal(cmd, "prepare"), &err);
    else if (g_str_equal(cmd, "disable"))
        ok = cmd_disable(conn, argv[2], &err);
    else
        ok = cmd_status(conn, argv[2], &err);
    if (!ok) {
        g_printerr("blkin-libvirt: %s\n", err->message);
        return 1;
    }
    return 0;
}
