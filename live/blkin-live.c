/*
 * blkin-live: puts the blkin filter on top of a running QEMU's disk, or takes
 * it off, through the QEMU process's QMP socket (docs/live.md).
 *
 *   blkin-live enable  --qmp SOCKET --device ID [--id FILTER-ID] [--sample N]
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
 */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp.h"

#define QMP_TIMEOUT_MS 10000
#define NODE_NAME_MAX  31 /* QEMU's limit for node-name */

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
 * -ENODEV with the known devices listed in *errmsg when there is none.
 */
static int find_device(BlkinQmp *q, const char *id, Device **ret, char **errmsg)
{
    g_autoptr(JsonNode) blocks = NULL;
    g_autoptr(GString) known = g_string_new(NULL);
    JsonArray *a;
    int r;

    r = blkin_qmp_execute(q, "query-block", NULL, &blocks, errmsg);
    if (r < 0)
        return r;
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
            *errmsg = g_strdup_printf("device %s has no medium", id);
            return -ENOMEDIUM;
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
            *errmsg =
                g_strdup_printf("device %s: query-block gave no node", id);
            return -EPROTO;
        }
        *ret = g_steal_pointer(&d);
        return 0;
    }
    *errmsg = g_strdup_printf("no block device %s in this QEMU (devices: %s)",
                              id, known->len ? known->str : "none");
    return -ENODEV;
}

/*
 * Is the filter loaded into the QEMU on the other end? Answered from the
 * process's mappings (needs the right to read them); 1 = loaded, 0 =
 * unknown, negative = not loaded, with the reason and the fix in *errmsg.
 */
static int check_filter_loaded(BlkinQmp *q, char **errmsg)
{
    pid_t pid = blkin_qmp_peer_pid(q);
    g_autofree char *path = NULL, *maps = NULL;

    if (pid <= 0)
        return 0;
    path = g_strdup_printf("/proc/%d/maps", (int)pid);
    if (!g_file_get_contents(path, &maps, NULL, NULL))
        return 0;
    if (strstr(maps, "/blkin-filter.so"))
        return 1;
    if (strstr(maps, "/libblkin-preload")) {
        *errmsg = g_strdup_printf(
            "QEMU (pid %d) has libblkin-preload.so but did not load the "
            "filter: it is not the QEMU build blkin was compiled for (QEMU's "
            "log says so). Run scripts/setup.sh again after a qemu update, "
            "then restart the VM. Nothing was changed.",
            (int)pid);
        return -ENOPKG;
    }
    *errmsg = g_strdup_printf(
        "QEMU (pid %d) was started without the blkin preload object, so its "
        "block layer has no blkin driver. Start the VM with "
        "LD_PRELOAD=<libdir>/blkin/libblkin-preload.so (Ganeti: the "
        "blkin-kvm kvm_path wrapper; libvirt: blkin-libvirt enable), then "
        "run this again. Nothing was changed.",
        (int)pid);
    return -ENOPKG;
}

/* Names of what enable creates, derived from the device so that they are
 * stable and recognisable; too long ids are hashed. */
static void make_names(const Device *d, char **drive, char **node)
{
    const char *base = d->qom_path;
    g_autofree char *tag = NULL;

    /* /machine/peripheral/<id>/virtio-backend -> <id> */
    if (g_str_has_prefix(base, "/machine/peripheral/")) {
        const char *s = base + strlen("/machine/peripheral/");
        const char *e = strchr(s, '/');

        tag = e ? g_strndup(s, e - s) : g_strdup(s);
    } else {
        tag = g_strdup_printf("%08x", g_str_hash(base));
    }
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
static int filter_child(BlkinQmp *q, const char *node, char **child,
                        char **errmsg)
{
    g_autoptr(JsonNode) g = NULL;
    JsonArray *nodes, *edges;
    int64_t parent = -1;
    int r;

    r = blkin_qmp_execute(q, "x-debug-query-block-graph", NULL, &g, errmsg);
    if (r < 0)
        return r;
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
                *child = g_strdup(str_member(n, "name"));
                return *child ? 0 : -EPROTO;
            }
        }
    }
    *errmsg = g_strdup_printf("cannot find the node below %s", node);
    return -ENOENT;
}

/* Drives (backends) that no device uses and that sit on @node. */
static GPtrArray *unattached_drives_on(BlkinQmp *q, const char *node)
{
    g_autoptr(JsonNode) blocks = NULL;
    g_autofree char *msg = NULL;
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    JsonArray *a;

    if (blkin_qmp_execute(q, "query-block", NULL, &blocks, &msg) < 0)
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

static int qom_set_drive(BlkinQmp *q, const char *path, const char *node,
                         char **errmsg)
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
    return blkin_qmp_execute(q, "qom-set", args, NULL, errmsg);
}

static int hmp_expect_empty(BlkinQmp *q, const char *cmd, char **errmsg)
{
    g_autofree char *out = NULL;
    int r = blkin_qmp_hmp(q, cmd, &out, errmsg);

    if (r < 0)
        return r;
    g_strstrip(out);
    if (*out && !g_str_equal(out, "OK")) {
        *errmsg = g_strdup_printf("%s: %s", cmd, out);
        return -EIO;
    }
    return 0;
}

/* Deletes drive @name if it exists and no device uses it. */
static int drop_stale_drive(BlkinQmp *q, const char *name)
{
    g_autoptr(JsonNode) blocks = NULL;
    g_autofree char *msg = NULL;
    JsonArray *a;
    int r;

    r = blkin_qmp_execute(q, "query-block", NULL, &blocks, &msg);
    if (r < 0)
        return r;
    a = json_node_get_array(blocks);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *b = json_array_get_object_element(a, i);
        const char *qdev = str_member(b, "qdev");
        g_autofree char *cmd = NULL, *msg2 = NULL;

        if (g_strcmp0(str_member(b, "device"), name) != 0)
            continue;
        if (qdev && *qdev)
            return -EBUSY;
        cmd = g_strdup_printf("drive_del %s", name);
        return hmp_expect_empty(q, cmd, &msg2);
    }
    return 0;
}

static int do_enable(BlkinQmp *q, const char *device, const char *filter_id,
                     int sample, char **errmsg)
{
    g_autoptr(Device) d = NULL, after = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) opts = NULL;
    g_autofree char *drive = NULL, *node = NULL, *js = NULL, *cmd = NULL;
    g_autofree char *out = NULL, *del = NULL, *msg = NULL;
    g_auto(GStrv) parts = NULL;
    int r;

    r = check_filter_loaded(q, errmsg);
    if (r < 0)
        return r;
    r = find_device(q, device, &d, errmsg);
    if (r < 0)
        return r;
    if (g_str_equal(d->drv, "blkin")) {
        printf("%s: already on blkin node %s\n", device, d->node);
        return 0;
    }
    make_names(d, &drive, &node);
    /* An enable interrupted between drive_add and the switch leaves its
     * drive behind, unused; its id would be refused as a duplicate. */
    r = drop_stale_drive(q, drive);
    if (r < 0) {
        *errmsg = g_strdup_printf("a drive %s from an earlier attempt is in "
                                  "the way and cannot be deleted",
                                  drive);
        return r;
    }

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "driver");
    json_builder_add_string_value(b, "blkin");
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, filter_id ? filter_id : device);
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
    r = blkin_qmp_hmp(q, cmd, &out, errmsg);
    if (r < 0)
        return r;
    g_strstrip(out);
    if (!g_str_equal(out, "OK")) {
        if (strstr(out, "Unknown driver 'blkin'"))
            *errmsg = g_strdup_printf(
                "this QEMU has no blkin driver (%s): start it with "
                "LD_PRELOAD=<libdir>/blkin/libblkin-preload.so. Nothing "
                "was changed.",
                out);
        else
            *errmsg = g_strdup_printf("adding the filter node failed: %s. "
                                      "Nothing was changed.",
                                      out);
        return -EIO;
    }
    r = qom_set_drive(q, d->qom_path, node, errmsg);
    if (r < 0) {
        g_autofree char *undo = g_strdup_printf("drive_del %s", drive);
        g_autofree char *msg2 = NULL;
        char *orig = *errmsg;

        /* Leave the graph as it was. */
        hmp_expect_empty(q, undo, &msg2);
        *errmsg = g_strdup_printf("moving %s onto the filter failed: %s. "
                                  "Nothing was changed.",
                                  device, orig);
        g_free(orig);
        return r;
    }
    r = find_device(q, device, &after, errmsg);
    if (r < 0)
        return r;
    if (!g_str_equal(after->node, node)) {
        *errmsg = g_strdup_printf("%s is on %s, not on the filter %s", device,
                                  after->node, node);
        return -EIO;
    }
    /* The drive drive_add made was only the way to create the node; the
     * device's backend holds the node now. Left in place it would keep the
     * disk open after Ganeti or libvirt hot-unplugs the device. */
    del = g_strdup_printf("drive_del %s", drive);
    if (hmp_expect_empty(q, del, &msg) < 0)
        fprintf(stderr, "blkin-live: warning: %s\n", msg);
    printf("%s: enabled: blkin node %s (id %s) over %s\n", device, node,
           filter_id ? filter_id : device, d->node);
    return 0;
}

static int do_disable(BlkinQmp *q, const char *device, char **errmsg)
{
    g_autoptr(Device) d = NULL, after = NULL;
    g_autoptr(GPtrArray) drives = NULL;
    g_autofree char *child = NULL;
    int r;

    r = find_device(q, device, &d, errmsg);
    if (r < 0)
        return r;
    if (!g_str_equal(d->drv, "blkin")) {
        printf("%s: not enabled (on %s, driver %s)\n", device, d->node, d->drv);
        return 0;
    }
    r = filter_child(q, d->node, &child, errmsg);
    if (r < 0)
        return r;
    r = qom_set_drive(q, d->qom_path, child, errmsg);
    if (r < 0)
        return r;
    /* Filters enabled by older versions, or by hand, may still have the
     * drive that created them: delete it, and with it the node. */
    drives = unattached_drives_on(q, d->node);
    for (guint i = 0; i < drives->len; i++) {
        g_autofree char *cmd = g_strdup_printf(
            "drive_del %s", (char *)g_ptr_array_index(drives, i));
        g_autofree char *msg = NULL;

        if (hmp_expect_empty(q, cmd, &msg) < 0)
            fprintf(stderr, "blkin-live: warning: %s\n", msg);
    }
    r = find_device(q, device, &after, errmsg);
    if (r < 0)
        return r;
    printf("%s: disabled: back on %s\n", device, after->node);
    return 0;
}

static int do_status(BlkinQmp *q, char **errmsg)
{
    g_autoptr(JsonNode) blocks = NULL;
    JsonArray *a;
    int r;

    r = blkin_qmp_execute(q, "query-block", NULL, &blocks, errmsg);
    if (r < 0)
        return r;
    a = json_node_get_array(blocks);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *b = json_array_get_object_element(a, i);
        JsonObject *ins = json_object_has_member(b, "inserted")
                              ? json_object_get_object_member(b, "inserted")
                              : NULL;
        const char *qdev = str_member(b, "qdev");
        const char *drv = str_member(ins, "drv");
        const char *node = str_member(ins, "node-name");
        g_autofree char *child = NULL, *msg = NULL;

        if (!qdev || !*qdev)
            continue;
        if (g_strcmp0(drv, "blkin") == 0 &&
            filter_child(q, node, &child, &msg) == 0)
            printf("%s drive=%s node=%s blkin over %s\n", qdev,
                   str_member(b, "device"), node, child);
        else
            printf("%s drive=%s node=%s driver=%s\n", qdev,
                   str_member(b, "device"), node ? node : "-", drv ? drv : "-");
    }
    return 0;
}

int main(int argc, char **argv)
{
    g_autofree char *qmp_path = NULL, *device = NULL, *filter_id = NULL;
    g_autofree char *domain = NULL, *connect_uri = NULL;
    g_autofree char *errmsg = NULL;
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
        {"id", 0, 0, G_OPTION_ARG_STRING, &filter_id,
         "The filter's id in traces (default: the device argument)", "ID"},
        {"sample", 0, 0, G_OPTION_ARG_INT, &sample,
         "Record one request in N (default 1)", "N"},
        {"timeout-ms", 0, 0, G_OPTION_ARG_INT, &timeout_ms,
         "How long to wait for QEMU's answers (default 10000)", "MS"},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &show_version,
         "Print the version and exit", NULL},
        {NULL}};
    int r;

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
                        "[--id FILTER-ID] [--sample N]\n");
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

    if (domain)
        r = blkin_qmp_open_libvirt(connect_uri, domain, &q, &errmsg);
    else
        r = blkin_qmp_open(qmp_path, timeout_ms, &q, &errmsg);
    if (r == -ENOENT && !domain) {
        fprintf(stderr,
                "blkin-live: QMP socket %s does not exist (is the VM "
                "running? Ganeti: /var/run/ganeti/kvm-hypervisor/ctrl/"
                "<instance>.qmp). Nothing was changed.\n",
                qmp_path);
        return 1;
    }
    if (r >= 0) {
        if (g_str_equal(cmd, "enable"))
            r = do_enable(q, device, filter_id, sample, &errmsg);
        else if (g_str_equal(cmd, "disable"))
            r = do_disable(q, device, &errmsg);
        else
            r = do_status(q, &errmsg);
    }
    if (r < 0) {
        fprintf(stderr, "blkin-live: %s\n", errmsg ? errmsg : g_strerror(-r));
        return 1;
    }
    return 0;
}
