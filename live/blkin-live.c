/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-live: puts the blkin filter on top of a running QEMU's disk, or takes
 * it off, through the QEMU process's QMP socket (docs/live.md).
 *
 *   blkin-live enable  --qmp SOCKET --device ID [--vm NAME] [--target NAME]
 *                      [--id FILTER-ID] [--sample N]
 *   blkin-live disable --qmp SOCKET --device ID
 *   blkin-live status  --qmp SOCKET
 *   (or --libvirt DOMAIN [--connect URI] instead of --qmp: the same QMP
 *   commands through virDomainQemuMonitorCommand)
 *
 * enable: HMP drive_add creates the filter node over the device's current
 * node (the driver is out of tree, so QMP blockdev-add refuses it; a json:
 * filename reaches it), then qom-set of the device's drive property moves
 * the device's BlockBackend onto it (blk_replace_bs ->
 * bdrv_replace_child_bs, which drains the old and the new node and so the
 * backend: requests in flight complete on the old graph first, new ones
 * queue; none is lost or reordered). The guest is not paused.
 * The drive drive_add made is deleted again at once: the device's backend
 * is then the filter node's only parent.
 * disable: the device goes back onto the filter's child; the filter node,
 * now unused, goes away with it.
 *
 * What enable created is found again from QEMU itself (the device's node
 * runs the blkin driver; its "file" child is the original), so nothing is
 * kept on the host between the two commands.
 *
 * The filter's id is the disk identity <vm>/<target> (disk-id.h,
 * docs/hostd.md): the libvirt domain's name or QEMU's -name, and libvirt's
 * target dev of the disk or the device's id; --vm, --target and --id
 * override.
 */
#define G_LOG_DOMAIN "blkin-live"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk-id.h"
#include "qmp.h"

#define QMP_TIMEOUT_MS 10000
#define NODE_NAME_MAX  31 /* QEMU's limit for node-name */

#define BLKIN_LIVE_ERROR (blkin_live_error_quark())
G_DEFINE_QUARK(blkin - live - error - quark, blkin_live_error)

typedef enum {
    BLKIN_LIVE_ERROR_NO_DEVICE, /* no such block device */
    BLKIN_LIVE_ERROR_NO_MEDIUM, /* the device has no medium */
    BLKIN_LIVE_ERROR_NO_FILTER, /* QEMU has no blkin driver */
    BLKIN_LIVE_ERROR_IDENTITY,  /* no valid disk identity */
    BLKIN_LIVE_ERROR_GRAPH,     /* the block graph is not as expected */
    BLKIN_LIVE_ERROR_FAILED,    /* a step QEMU refused */
} BlkinLiveError;

typedef struct Device {
    char *qom_path; /* where the "drive" property is */
    char *backend;  /* the BlockBackend's name ("" if anonymous) */
    char *node;     /* the node the backend is on now */
    char *drv;
} Device;

static void device_free(Device *d)
{
    if (!d)
        return;
    g_free(d->qom_path);
    g_free(d->backend);
    g_free(d->node);
    g_free(d->drv);
    g_free(d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Device, device_free)

static const char *str_member(JsonObject *o, const char *name)
{
    JsonNode *n = o ? json_object_get_member(o, name) : NULL;

    return n && JSON_NODE_HOLDS_VALUE(n) &&
                   json_node_get_value_type(n) == G_TYPE_STRING
               ? json_node_get_string(n)
               : NULL;
}

/* query-block names the attached device by id or by its QOM path. */
static gboolean qdev_matches(const char *qdev, const char *id)
{
    g_autofree char *prefix = NULL;

    if (!qdev || !*qdev)
        return FALSE;
    if (g_str_equal(qdev, id))
        return TRUE;
    prefix = g_strdup_printf("/machine/peripheral/%s", id);
    return g_str_equal(qdev, prefix) ||
           (g_str_has_prefix(qdev, prefix) && qdev[strlen(prefix)] == '/');
}

/*
 * Finds the device by its qdev id, its QOM path or its drive (backend) name.
 * BLKIN_LIVE_ERROR_NO_DEVICE, with the known devices listed, when there is
 * none.
 */
static Device *find_device(BlkinQmp *q, const char *id, GError **error)
{
    g_autoptr(JsonNode) blocks = NULL;
    g_autoptr(GString) known = g_string_new(NULL);
    JsonArray *a;

    if (!blkin_qmp_execute(q, "query-block", NULL, &blocks, error))
        return NULL;
    a = json_node_get_array(blocks);
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *b = json_array_get_object_element(a, i);
        const char *qdev = str_member(b, "qdev");
        const char *backend = str_member(b, "device");
        JsonObject *ins;
        g_autoptr(Device) d = NULL;

        if (!qdev || !*qdev)
            continue; /* a drive no device uses (e.g. our own filter's) */
        g_string_append_printf(known, "%s%s", known->len ? ", " : "", qdev);
        if (backend && *backend)
            g_string_append_printf(known, " (drive %s)", backend);
        if (!qdev_matches(qdev, id) &&
            !(backend && *backend && g_str_equal(backend, id)))
            continue;
        if (!json_object_has_member(b, "inserted")) {
            g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_NO_MEDIUM,
                        "device %s has no medium", id);
            return NULL;
        }
        ins = json_object_get_object_member(b, "inserted");
        d = g_new0(Device, 1);
        d->qom_path = qdev[0] == '/'
                          ? g_strdup(qdev)
                          : g_strdup_printf("/machine/peripheral/%s", qdev);
        d->backend = g_strdup(backend ? backend : "");
        d->node = g_strdup(str_member(ins, "node-name"));
        d->drv = g_strdup(str_member(ins, "drv"));
        if (!d->node || !d->drv) {
            g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_GRAPH,
                        "device %s: query-block gave no node", id);
            return NULL;
        }
        return g_steal_pointer(&d);
    }
    g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_NO_DEVICE,
                "no block device %s in this QEMU (devices: %s)", id,
                known->len ? known->str : "none");
    return NULL;
}

/*
 * Is the filter loaded into the QEMU on the other end? Answered from the
 * process's mappings (needs the right to read them): TRUE when it is or
 * that cannot be told, FALSE when it is not, with the reason and the fix.
 */
static gboolean check_filter_loaded(BlkinQmp *q, GError **error)
{
    pid_t pid = blkin_qmp_peer_pid(q);
    g_autofree char *path = NULL, *maps = NULL;

    if (pid <= 0)
        return TRUE;
    path = g_strdup_printf("/proc/%d/maps", (int)pid);
    if (!g_file_get_contents(path, &maps, NULL, NULL))
        return TRUE;
    if (strstr(maps, "/blkin-filter.so"))
        return TRUE;
    if (strstr(maps, "/libblkin-preload")) {
        g_set_error(
            error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_NO_FILTER,
            "QEMU (pid %d) has libblkin-preload.so but did not load the "
            "filter: it is not the QEMU build blkin was compiled for (QEMU's "
            "log says so). Run scripts/setup.sh again after a qemu update, "
            "then restart the VM. Nothing was changed.",
            (int)pid);
        return FALSE;
    }
    g_set_error(
        error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_NO_FILTER,
        "QEMU (pid %d) was started without the blkin preload object, so its "
        "block layer has no blkin driver. Start the VM with "
        "LD_PRELOAD=<libdir>/blkin/libblkin-preload.so (Ganeti: the "
        "blkin-kvm kvm_path wrapper; libvirt: blkin-libvirt enable), then "
        "run this again. Nothing was changed.",
        (int)pid);
    return FALSE;
}

/* The device's qdev id: /machine/peripheral/<id>/virtio-backend -> <id>;
 * NULL for a device without one. */
static char *device_qdev_id(const Device *d)
{
    const char *s, *e;

    if (!g_str_has_prefix(d->qom_path, "/machine/peripheral/"))
        return NULL;
    s = d->qom_path + strlen("/machine/peripheral/");
    e = strchr(s, '/');
    return e ? g_strndup(s, e - s) : g_strdup(s);
}

/* Names of what enable creates, derived from the device so that they are
 * stable and recognisable; too long ids are hashed. */
static void make_names(const Device *d, char **drive, char **node)
{
    g_autofree char *tag = device_qdev_id(d);

    if (!tag)
        tag = g_strdup_printf("%08x", g_str_hash(d->qom_path));
    g_strcanon(tag,
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "0123456789-_.",
               '_');
    if (strlen("blkinlive-") + strlen(tag) > NODE_NAME_MAX) {
        g_autofree char *h = g_strdup_printf("%08x", g_str_hash(tag));

        g_free(tag);
        tag = g_steal_pointer(&h);
    }
    *drive = g_strdup_printf("blkinlive-drive-%s", tag);
    *node = g_strdup_printf("blkinlive-%s", tag);
}

/* The node under @node's "file" edge, from QEMU's block graph. */
static char *filter_child(BlkinQmp *q, const char *node, GError **error)
{
    g_autoptr(JsonNode) g = NULL;
    JsonArray *nodes, *edges;
    int64_t parent = -1;

    if (!blkin_qmp_execute(q, "x-debug-query-block-graph", NULL, &g, error))
        return NULL;
    nodes = json_object_get_array_member(json_node_get_object(g), "nodes");
    edges = json_object_get_array_member(json_node_get_object(g), "edges");
    for (guint i = 0; i < json_array_get_length(nodes); i++) {
        JsonObject *n = json_array_get_object_element(nodes, i);

        if (g_strcmp0(str_member(n, "type"), "block-driver") == 0 &&
            g_strcmp0(str_member(n, "name"), node) == 0)
            parent = json_object_get_int_member(n, "id");
    }
    for (guint i = 0; parent >= 0 && i < json_array_get_length(edges); i++) {
        JsonObject *e = json_array_get_object_element(edges, i);
        int64_t cid;

        if (json_object_get_int_member(e, "parent") != parent ||
            g_strcmp0(str_member(e, "name"), "file") != 0)
            continue;
        cid = json_object_get_int_member(e, "child");
        for (guint j = 0; j < json_array_get_length(nodes); j++) {
            JsonObject *n = json_array_get_object_element(nodes, j);

            if (json_object_get_int_member(n, "id") == cid) {
                const char *name = str_member(n, "name");

                if (!name)
                    break;
                return g_strdup(name);
            }
        }
    }
    g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_GRAPH,
                "cannot find the node below %s", node);
    return NULL;
}

/* Drives (backends) that no device uses and that sit on @node. */
static GPtrArray *unattached_drives_on(BlkinQmp *q, const char *node)
{
    g_autoptr(JsonNode) blocks = NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    JsonArray *a;

    if (!blkin_qmp_execute(q, "query-block", NULL, &blocks, NULL))
        return out;
    a = json_node_get_array(blocks);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *b = json_array_get_object_element(a, i);
        const char *qdev = str_member(b, "qdev");
        const char *name = str_member(b, "device");

        if ((qdev && *qdev) || !name || !*name ||
            !json_object_has_member(b, "inserted"))
            continue;
        if (g_strcmp0(str_member(json_object_get_object_member(b, "inserted"),
                                 "node-name"),
                      node) == 0)
            g_ptr_array_add(out, g_strdup(name));
    }
    return out;
}

static gboolean qom_set_drive(BlkinQmp *q, const char *path, const char *node,
                              GError **error)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) args = NULL;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "path");
    json_builder_add_string_value(b, path);
    json_builder_set_member_name(b, "property");
    json_builder_add_string_value(b, "drive");
    json_builder_set_member_name(b, "value");
    json_builder_add_string_value(b, node);
    json_builder_end_object(b);
    args = json_builder_get_root(b);
    return blkin_qmp_execute(q, "qom-set", args, NULL, error);
}

static gboolean hmp_expect_empty(BlkinQmp *q, const char *cmd, GError **error)
{
    g_autofree char *out = blkin_qmp_hmp(q, cmd, error);

    if (!out)
        return FALSE;
    g_strstrip(out);
    if (*out && !g_str_equal(out, "OK")) {
        g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_FAILED, "%s: %s",
                    cmd, out);
        return FALSE;
    }
    return TRUE;
}

/* Deletes drive @name if it exists and no device uses it; FALSE when it
 * is still there. */
static gboolean drop_stale_drive(BlkinQmp *q, const char *name)
{
    g_autoptr(JsonNode) blocks = NULL;
    JsonArray *a;

    if (!blkin_qmp_execute(q, "query-block", NULL, &blocks, NULL))
        return FALSE;
    a = json_node_get_array(blocks);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *b = json_array_get_object_element(a, i);
        const char *qdev = str_member(b, "qdev");
        g_autofree char *cmd = NULL;

        if (g_strcmp0(str_member(b, "device"), name) != 0)
            continue;
        if (qdev && *qdev)
            return FALSE;
        cmd = g_strdup_printf("drive_del %s", name);
        return hmp_expect_empty(q, cmd, NULL);
    }
    return TRUE;
}

/* What to call the disk: how the filter's id is made when --id is not
 * given. */
typedef struct Identity {
    const char *id;     /* --id: the whole id, as given */
    const char *vm;     /* --vm */
    const char *target; /* --target */
} Identity;

/*
 * The filter's id: --id as given, else the disk identity <vm>/<target>
 * (disk-id.h) of the libvirt domain's name or QEMU's -name (query-name), and
 * the libvirt disk's target dev or the device's id; --vm and --target
 * override either piece.
 */
static char *filter_id(BlkinQmp *q, const Device *d, const char *device,
                       const Identity *want, GError **error)
{
    g_autofree char *vm = g_strdup(want->vm), *target = g_strdup(want->target);
    g_autofree char *qdev = device_qdev_id(d);
    g_autoptr(GError) err = NULL;
    char *id;

    if (want->id)
        return g_strdup(want->id);
    if (!vm && blkin_qmp_libvirt_domain(q)) {
        vm = g_strdup(blkin_qmp_libvirt_domain(q));
    } else if (!vm) {
        g_autoptr(JsonNode) ret = NULL;
        const char *name = NULL;

        if (!blkin_qmp_execute(q, "query-name", NULL, &ret, error))
            return NULL;
        if (JSON_NODE_HOLDS_OBJECT(ret))
            name = str_member(json_node_get_object(ret), "name");
        if (!name || !*name) {
            g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_IDENTITY,
                        "QEMU has no name (-name), so the disk has no "
                        "identity <vm>/<target>: give the VM's name with "
                        "--vm, or the whole filter id with --id. Nothing was "
                        "changed.");
            return NULL;
        }
        vm = g_strdup(name);
    }
    if (!target && qdev && blkin_qmp_libvirt_domain(q)) {
        target = blkin_qmp_libvirt_target(q, qdev, &err);
        if (!target) {
            g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_IDENTITY,
                        "%s: give the disk's target with --target. Nothing "
                        "was changed.",
                        err->message);
            return NULL;
        }
    }
    if (!target)
        target = g_strdup(qdev ? qdev : device);
    id = blkin_disk_id(vm, target, &err);
    if (!id) {
        g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_IDENTITY,
                    "%s; give --vm and --target, or the whole filter id with "
                    "--id. Nothing was changed.",
                    err->message);
        return NULL;
    }
    return id;
}

static gboolean do_enable(BlkinQmp *q, const char *device, const Identity *want,
                          int sample, GError **error)
{
    g_autoptr(Device) d = NULL, after = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) opts = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *drive = NULL, *node = NULL, *js = NULL, *cmd = NULL;
    g_autofree char *out = NULL, *del = NULL, *id = NULL;
    g_auto(GStrv) parts = NULL;

    if (!check_filter_loaded(q, error))
        return FALSE;
    d = find_device(q, device, error);
    if (!d)
        return FALSE;
    if (g_str_equal(d->drv, "blkin")) {
        printf("%s: already on blkin node %s\n", device, d->node);
        return TRUE;
    }
    id = filter_id(q, d, device, want, error);
    if (!id)
        return FALSE;
    make_names(d, &drive, &node);
    /* An enable interrupted between drive_add and the switch leaves its
     * drive behind, unused; its id would be refused as a duplicate. */
    if (!drop_stale_drive(q, drive)) {
        g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_FAILED,
                    "a drive %s from an earlier attempt is in the way and "
                    "cannot be deleted",
                    drive);
        return FALSE;
    }

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "driver");
    json_builder_add_string_value(b, "blkin");
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, id);
    if (sample >= 0) {
        json_builder_set_member_name(b, "sample");
        json_builder_add_int_value(b, sample);
    }
    json_builder_set_member_name(b, "file");
    json_builder_add_string_value(b, d->node);
    json_builder_end_object(b);
    opts = json_builder_get_root(b);
    js = json_to_string(opts, FALSE);
    /* QemuOpts: a comma inside a value is written twice. */
    parts = g_strsplit(js, ",", -1);
    g_free(js);
    js = g_strjoinv(",,", parts);
    cmd = g_strdup_printf("drive_add 0 if=none,id=%s,node-name=%s,file=json:%s",
                          drive, node, js);
    out = blkin_qmp_hmp(q, cmd, error);
    if (!out)
        return FALSE;
    g_strstrip(out);
    if (!g_str_equal(out, "OK")) {
        if (strstr(out, "Unknown driver 'blkin'"))
            g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_NO_FILTER,
                        "this QEMU has no blkin driver (%s): start it with "
                        "LD_PRELOAD=<libdir>/blkin/libblkin-preload.so. "
                        "Nothing was changed.",
                        out);
        else
            g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_FAILED,
                        "adding the filter node failed: %s. Nothing was "
                        "changed.",
                        out);
        return FALSE;
    }
    if (!qom_set_drive(q, d->qom_path, node, &err)) {
        g_autofree char *undo = g_strdup_printf("drive_del %s", drive);

        /* Leave the graph as it was. */
        hmp_expect_empty(q, undo, NULL);
        g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_FAILED,
                    "moving %s onto the filter failed: %s. Nothing was "
                    "changed.",
                    device, err->message);
        return FALSE;
    }
    after = find_device(q, device, error);
    if (!after)
        return FALSE;
    if (!g_str_equal(after->node, node)) {
        g_set_error(error, BLKIN_LIVE_ERROR, BLKIN_LIVE_ERROR_GRAPH,
                    "%s is on %s, not on the filter %s", device, after->node,
                    node);
        return FALSE;
    }
    /* The drive drive_add made was only the way to create the node; the
     * device's backend holds the node now. Left in place it would keep the
     * disk open after Ganeti or libvirt hot-unplugs the device. */
    del = g_strdup_printf("drive_del %s", drive);
    if (!hmp_expect_empty(q, del, &err))
        fprintf(stderr, "blkin-live: warning: %s\n", err->message);
    printf("%s: enabled: blkin node %s (id %s) over %s\n", device, node, id,
           d->node);
    return TRUE;
}

static gboolean do_disable(BlkinQmp *q, const char *device, GError **error)
{
    g_autoptr(Device) d = NULL, after = NULL;
    g_autoptr(GPtrArray) drives = NULL;
    g_autofree char *child = NULL;

    d = find_device(q, device, error);
    if (!d)
        return FALSE;
    if (!g_str_equal(d->drv, "blkin")) {
        printf("%s: not enabled (on %s, driver %s)\n", device, d->node, d->drv);
        return TRUE;
    }
    child = filter_child(q, d->node, error);
    if (!child)
        return FALSE;
    if (!qom_set_drive(q, d->qom_path, child, error))
        return FALSE;
    /* Filters enabled by older versions, or by hand, may still have the
     * drive that created them: delete it, and with it the node. */
    drives = unattached_drives_on(q, d->node);
    for (guint i = 0; i < drives->len; i++) {
        g_autofree char *cmd = g_strdup_printf(
            "drive_del %s", (char *)g_ptr_array_index(drives, i));
        g_autoptr(GError) err = NULL;

        if (!hmp_expect_empty(q, cmd, &err))
            fprintf(stderr, "blkin-live: warning: %s\n", err->message);
    }
    after = find_device(q, device, error);
    if (!after)
        return FALSE;
    printf("%s: disabled: back on %s\n", device, after->node);
    return TRUE;
}

static gboolean do_status(BlkinQmp *q, GError **error)
{
    g_autoptr(JsonNode) blocks = NULL;
    JsonArray *a;

    if (!blkin_qmp_execute(q, "query-block", NULL, &blocks, error))
        return FALSE;
    a = json_node_get_array(blocks);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *b = json_array_get_object_element(a, i);
        JsonObject *ins = json_object_has_member(b, "inserted")
                              ? json_object_get_object_member(b, "inserted")
                              : NULL;
        const char *qdev = str_member(b, "qdev");
        const char *drv = str_member(ins, "drv");
        const char *node = str_member(ins, "node-name");
        g_autofree char *child = NULL;

        if (!qdev || !*qdev)
            continue;
        if (g_strcmp0(drv, "blkin") == 0 &&
            (child = filter_child(q, node, NULL)) != NULL)
            printf("%s drive=%s node=%s blkin over %s\n", qdev,
                   str_member(b, "device"), node, child);
        else
            printf("%s drive=%s node=%s driver=%s\n", qdev,
                   str_member(b, "device"), node ? node : "-", drv ? drv : "-");
    }
    return TRUE;
}

int main(int argc, char **argv)
{
    g_autofree char *qmp_path = NULL, *device = NULL, *opt_id = NULL;
    g_autofree char *domain = NULL, *connect_uri = NULL;
    g_autofree char *opt_vm = NULL, *opt_target = NULL;
    gint sample = -1, timeout_ms = QMP_TIMEOUT_MS;
    g_autoptr(GOptionContext) ctx = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(BlkinQmp) q = NULL;
    const char *cmd;
    gboolean show_version = FALSE;
    GOptionEntry entries[] = {
        {"qmp", 'q', 0, G_OPTION_ARG_FILENAME, &qmp_path,
         "The QEMU process's QMP socket", "SOCKET"},
        {"libvirt", 0, 0, G_OPTION_ARG_STRING, &domain,
         "A libvirt domain instead: QMP through libvirtd", "DOMAIN"},
        {"connect", 'c', 0, G_OPTION_ARG_STRING, &connect_uri,
         "With --libvirt: libvirt's URI (default: libvirt's default)", "URI"},
        {"device", 'd', 0, G_OPTION_ARG_STRING, &device,
         "The disk: its device id, QOM path or drive id", "ID"},
        {"vm", 0, 0, G_OPTION_ARG_STRING, &opt_vm,
         "The VM's name in the disk identity VM/TARGET (default: the libvirt "
         "domain's name, or QEMU's -name)",
         "NAME"},
        {"target", 0, 0, G_OPTION_ARG_STRING, &opt_target,
         "The disk's name in the disk identity VM/TARGET (default: libvirt's "
         "target dev, or the device's id)",
         "NAME"},
        {"id", 0, 0, G_OPTION_ARG_STRING, &opt_id,
         "The filter's whole id in traces, as given (default: the disk "
         "identity VM/TARGET)",
         "ID"},
        {"sample", 0, 0, G_OPTION_ARG_INT, &sample,
         "Record one request in N (default 1)", "N"},
        {"timeout-ms", 0, 0, G_OPTION_ARG_INT, &timeout_ms,
         "How long to wait for QEMU's answers (default 10000)", "MS"},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &show_version,
         "Print the version and exit", NULL},
        {NULL}};
    Identity want;
    gboolean ok;

    setlocale(LC_ALL, "");
    ctx = g_option_context_new("enable|disable|status - blkin on a running "
                               "QEMU");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "blkin-live: %s\n", err->message);
        return 2;
    }
    if (show_version) {
        g_print("blkin-live %s\n", BLKIN_VERSION);
        return 0;
    }
    if (argc != 2 || !qmp_path == !domain) {
        fprintf(stderr, "usage: blkin-live enable|disable|status "
                        "--qmp SOCKET|--libvirt DOMAIN [--device ID] "
                        "[--vm NAME] [--target NAME] [--id FILTER-ID] "
                        "[--sample N]\n");
        return 2;
    }
    cmd = argv[1];
    if (!g_str_equal(cmd, "status") && !device) {
        fprintf(stderr, "blkin-live: %s needs --device\n", cmd);
        return 2;
    }
    if (!g_str_equal(cmd, "enable") && !g_str_equal(cmd, "disable") &&
        !g_str_equal(cmd, "status")) {
        fprintf(stderr, "blkin-live: unknown command %s\n", cmd);
        return 2;
    }

    want = (Identity){.id = opt_id, .vm = opt_vm, .target = opt_target};
    if (domain)
        q = blkin_qmp_open_libvirt(connect_uri, domain, &err);
    else
        q = blkin_qmp_open(qmp_path, timeout_ms, &err);
    if (!domain &&
        g_error_matches(err, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_NOENT)) {
        fprintf(stderr,
                "blkin-live: QMP socket %s does not exist (is the VM "
                "running? Ganeti: /var/run/ganeti/kvm-hypervisor/ctrl/"
                "<instance>.qmp). Nothing was changed.\n",
                qmp_path);
        return 1;
    }
    ok = q != NULL;
    if (ok && g_str_equal(cmd, "enable"))
        ok = do_enable(q, device, &want, sample, &err);
    else if (ok && g_str_equal(cmd, "disable"))
        ok = do_disable(q, device, &err);
    else if (ok)
        ok = do_status(q, &err);
    if (!ok) {
        fprintf(stderr, "blkin-live: %s\n", err->message);
        return 1;
    }
    return 0;
}
