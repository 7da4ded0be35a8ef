/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ganeti-discovery.c: Ganeti 3.0 KVM instances from Ganeti's state
 * directory and QEMU's command line (see ganeti-discovery.h).
 */
#define G_LOG_DOMAIN "blkin-ganeti"

#include "disk-id.h"
#include "ganeti-discovery.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AGENT_PORT_NAME "org.blkin.agent.0"

G_DEFINE_QUARK(blkin - ganeti - error - quark, blkin_ganeti_error)

static void disk_free(BlkinGanetiDisk *d)
{
    if (!d)
        return;
    g_free(d->target);
    g_free(d->drive_id);
    g_free(d->uuid);
    g_free(d->serial);
    g_free(d->filter_id);
    g_free(d);
}

void blkin_ganeti_instance_free(BlkinGanetiInstance *inst)
{
    if (!inst)
        return;
    g_free(inst->name);
    g_free(inst->qmp_socket);
    g_free(inst->agent_socket);
    if (inst->disks)
        g_ptr_array_free(inst->disks, TRUE);
    g_free(inst);
}

/*
 * QemuOpts text ("virtio-blk-pci,drive=x,serial=y"; a doubled comma is a
 * comma) to key -> value; the leading bare word is stored under @implied.
 */
static GHashTable *parse_opts(const char *text, const char *implied)
{
    GHashTable *h =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autoptr(GString) cur = g_string_new(NULL);
    gboolean first = TRUE;

    for (const char *p = text;; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
            continue;
        }
        if (*p && *p != ',') {
            g_string_append_c(cur, *p);
            continue;
        }
        if (cur->len) {
            char *eq = strchr(cur->str, '=');

            if (eq)
                g_hash_table_replace(h, g_strndup(cur->str, eq - cur->str),
                                     g_strdup(eq + 1));
            else if (first && implied)
                g_hash_table_replace(h, g_strdup(implied), g_strdup(cur->str));
        }
        first = FALSE;
        g_string_truncate(cur, 0);
        if (!*p)
            break;
    }
    return h;
}

/* QEMU's argv from /proc; NULL if the process is gone or unreadable. */
static char **read_cmdline(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/cmdline", (int)pid);
    g_autofree char *buf = NULL;
    GPtrArray *argv;
    gsize len;

    if (!g_file_get_contents(path, &buf, &len, NULL) || len == 0)
        return NULL;
    argv = g_ptr_array_new();
    for (gsize off = 0; off < len; off += strlen(buf + off) + 1)
        g_ptr_array_add(argv, g_strdup(buf + off));
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(argv, FALSE);
}

/* 1 if the process maps blkin's preload object (libblkin-preload.so), 0 if
 * not, -1 if its maps cannot be read (ptrace rights: a hostd that dropped
 * its capabilities may not read those of a QEMU that has them). */
static int maps_preload(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/maps", (int)pid);
    g_autofree char *maps = NULL;

    if (!g_file_get_contents(path, &maps, NULL, NULL) || !*maps)
        return -1;
    return strstr(maps, "/libblkin-preload.so") != NULL;
}

/* The agent chardev ids blkin-kvm gives, with the preload and without. */
#define WRAPPER_CHARDEV           "blkinagent"
#define WRAPPER_CHARDEV_NOPRELOAD "blkinagent-nopreload"

/* BlkinGanetiInstance.untraced for a running QEMU. */
static const char *untraced_reason(pid_t pid, const char *agent_chardev)
{
    int maps = maps_preload(pid);

    if (maps == 1)
        return NULL;
    if (maps == 0)
        return "its QEMU does not map blkin's preload object";
    if (g_strcmp0(agent_chardev, WRAPPER_CHARDEV_NOPRELOAD) == 0)
        return "blkin-kvm started its QEMU without blkin's preload object "
               "(missing on this node)";
    if (g_strcmp0(agent_chardev, WRAPPER_CHARDEV) != 0)
        return "its QEMU was not started through blkin-kvm (kvm_path)";
    return NULL;
}

/* Fills serials and the agent socket from QEMU's own argv. */
static void apply_cmdline(BlkinGanetiInstance *inst, char **argv)
{
    g_autoptr(GHashTable) chardevs = g_hash_table_new_full(
        g_str_hash, g_str_equal, g_free, g_free); /* id -> socket path */
    g_autofree char *agent_chardev = NULL;

    for (char **a = argv; a && *a && a[1]; a++) {
        g_autoptr(GHashTable) o = NULL;

        if (g_str_equal(*a, "-chardev")) {
            const char *id, *path;

            o = parse_opts(a[1], "backend");
            id = g_hash_table_lookup(o, "id");
            path = g_hash_table_lookup(o, "path");
            if (id && path &&
                g_strcmp0(g_hash_table_lookup(o, "backend"), "socket") == 0)
                g_hash_table_replace(chardevs, g_strdup(id), g_strdup(path));
        } else if (g_str_equal(*a, "-device")) {
            const char *drv, *drive, *serial;

            o = parse_opts(a[1], "driver");
            drv = g_hash_table_lookup(o, "driver");
            if (g_strcmp0(drv, "virtserialport") == 0 &&
                g_strcmp0(g_hash_table_lookup(o, "name"), AGENT_PORT_NAME) ==
                    0) {
                g_free(agent_chardev);
                agent_chardev = g_strdup(g_hash_table_lookup(o, "chardev"));
                continue;
            }
            drive = g_hash_table_lookup(o, "drive");
            serial = g_hash_table_lookup(o, "serial");
            if (!drive || !serial)
                continue;
            for (guint i = 0; i < inst->disks->len; i++) {
                BlkinGanetiDisk *d = g_ptr_array_index(inst->disks, i);

                if (g_str_equal(d->drive_id, drive)) {
                    g_free(d->serial);
                    d->serial = g_strdup(serial);
                }
            }
        }
    }
    if (agent_chardev)
        inst->agent_socket =
            g_strdup(g_hash_table_lookup(chardevs, agent_chardev));
    if (inst->pid > 0)
        inst->untraced = untraced_reason(inst->pid, agent_chardev);
}

static pid_t read_pid(const char *root, const char *name)
{
    g_autofree char *path = g_build_filename(root, "pid", name, NULL);
    g_autofree char *text = NULL;
    char *end;
    long pid;

    if (!g_file_get_contents(path, &text, NULL, NULL))
        return 0;
    pid = strtol(text, &end, 10);
    if (end == text || pid <= 0 || pid > INT32_MAX)
        return 0;
    return (pid_t)pid;
}

static gboolean names_instance(char **argv, const char *name)
{
    for (char **a = argv; a && *a && a[1]; a++)
        if (g_str_equal(*a, "-name") && g_str_equal(a[1], name))
            return TRUE;
    return FALSE;
}

static const char *obj_str(JsonObject *o, const char *member)
{
    JsonNode *n = o ? json_object_get_member(o, member) : NULL;

    return n && JSON_NODE_HOLDS_VALUE(n) &&
                   json_node_get_value_type(n) == G_TYPE_STRING
               ? json_node_get_string(n)
               : NULL;
}

/* The runtime file is not what Ganeti writes. */
static BlkinGanetiInstance *bad_format(const char *path, GError **error)
{
    g_set_error(error, BLKIN_GANETI_ERROR, BLKIN_GANETI_ERROR_FORMAT,
                "%s is not a Ganeti KVM runtime file", path);
    return NULL;
}

BlkinGanetiInstance *
blkin_ganeti_load_instance(const char *root, const char *name, GError **error)
{
    g_autofree char *file = NULL, *path = NULL;
    g_autofree char *text = NULL;
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(BlkinGanetiInstance) inst = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) argv = NULL;
    JsonNode *root_node;
    JsonArray *rt, *disks;
    gsize len;

    file = g_strdup_printf("%s.runtime", name);
    path = g_build_filename(root, "conf", file, NULL);
    if (!g_file_get_contents(path, &text, &len, NULL)) {
        g_set_error_literal(error, BLKIN_GANETI_ERROR,
                            BLKIN_GANETI_ERROR_NOT_FOUND,
                            "no runtime file (not running here)");
        return NULL;
    }
    if (!json_parser_load_from_data(p, text, len, NULL))
        return bad_format(path, error);
    root_node = json_parser_get_root(p);
    if (!root_node || !JSON_NODE_HOLDS_ARRAY(root_node))
        return bad_format(path, error);
    rt = json_node_get_array(root_node);
    if (json_array_get_length(rt) < 4 ||
        !JSON_NODE_HOLDS_ARRAY(json_array_get_element(rt, 3)))
        return bad_format(path, error);
    disks = json_array_get_array_element(rt, 3);

    inst = g_new0(BlkinGanetiInstance, 1);
    inst->name = g_strdup(name);
    inst->disks = g_ptr_array_new_with_free_func((GDestroyNotify)disk_free);
    g_free(file);
    file = g_strdup_printf("%s.qmp", name);
    inst->qmp_socket = g_build_filename(root, "ctrl", file, NULL);
    for (guint i = 0; i < json_array_get_length(disks); i++) {
        JsonNode *e = json_array_get_element(disks, i);
        JsonObject *dobj, *hvinfo;
        BlkinGanetiDisk *d;
        const char *iv, *id;

        /* [disk, link_name, uri] */
        if (!JSON_NODE_HOLDS_ARRAY(e) ||
            json_array_get_length(json_node_get_array(e)) < 1)
            return bad_format(path, error);
        e = json_array_get_element(json_node_get_array(e), 0);
        if (!JSON_NODE_HOLDS_OBJECT(e))
            return bad_format(path, error);
        dobj = json_node_get_object(e);
        e = json_object_get_member(dobj, "hvinfo");
        hvinfo =
            e && JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
        id = obj_str(hvinfo, "id");
        if (!id)
            continue; /* not a -device disk (e.g. if=ide): not traceable */
        iv = obj_str(dobj, "iv_name");
        d = g_new0(BlkinGanetiDisk, 1);
        d->target = iv && *iv ? g_strdup(iv) : g_strdup_printf("disk/%u", i);
        d->drive_id = g_strdup(id);
        d->uuid = g_strdup(obj_str(dobj, "uuid"));
        g_ptr_array_add(inst->disks, d);
        d->filter_id = blkin_disk_id(name, d->target, &err);
        if (!d->filter_id) {
            g_set_error(error, BLKIN_GANETI_ERROR, BLKIN_GANETI_ERROR_IDENTITY,
                        "instance %s: %s", name, err->message);
            return NULL;
        }
    }
    inst->pid = read_pid(root, name);
    if (inst->pid > 0)
        argv = read_cmdline(inst->pid);
    /* As Ganeti itself checks: the pid is the instance's QEMU only if its
     * command line names the instance (a zombie has none; a pid is reused). */
    if (inst->pid > 0 && !names_instance(argv, name)) {
        inst->pid = 0;
        g_clear_pointer(&argv, g_strfreev);
    }
    if (!argv && JSON_NODE_HOLDS_ARRAY(json_array_get_element(rt, 0))) {
        /* QEMU is not running: what is known comes from Ganeti's own command
         * line (with what kvm_extra added, not what the wrapper adds). */
        JsonArray *cmd = json_array_get_array_element(rt, 0);
        GPtrArray *v = g_ptr_array_new();

        for (guint i = 0; i < json_array_get_length(cmd); i++) {
            JsonNode *n = json_array_get_element(cmd, i);

            g_ptr_array_add(v,
                            JSON_NODE_HOLDS_VALUE(n) &&
                                    json_node_get_value_type(n) == G_TYPE_STRING
                                ? g_strdup(json_node_get_string(n))
                                : g_strdup(""));
        }
        g_ptr_array_add(v, NULL);
        argv = (char **)g_ptr_array_free(v, FALSE);
    }
    apply_cmdline(inst, argv);
    return g_steal_pointer(&inst);
}

int blkin_ganeti_read_instance(const char *root, const char *name,
                               BlkinGanetiInstance **ret)
{
    g_autoptr(GError) err = NULL;

    *ret = blkin_ganeti_load_instance(root, name, &err);
    if (*ret)
        return 0;
    switch (err->code) {
    case BLKIN_GANETI_ERROR_NOT_FOUND:
        return -ENOENT;
    case BLKIN_GANETI_ERROR_FORMAT:
        return -EBADMSG;
    default:
        return -EINVAL;
    }
}

static gint cmp_instance(gconstpointer a, gconstpointer b)
{
    const BlkinGanetiInstance *x = *(BlkinGanetiInstance *const *)a;
    const BlkinGanetiInstance *y = *(BlkinGanetiInstance *const *)b;

    return strcmp(x->name, y->name);
}

int blkin_ganeti_discover(const char *root, GPtrArray **ret)
{
    g_autofree char *conf = g_build_filename(root, "conf", NULL);
    g_autoptr(GDir) dir = NULL;
    g_autoptr(GPtrArray) out = NULL;
    const char *ent;

    if (!g_file_test(root, G_FILE_TEST_IS_DIR))
        return -ENOENT;
    out = g_ptr_array_new_with_free_func(
        (GDestroyNotify)blkin_ganeti_instance_free);
    dir = g_dir_open(conf, 0, NULL);
    while (dir && (ent = g_dir_read_name(dir))) {
        g_autofree char *name = NULL;
        g_autoptr(GError) err = NULL;
        BlkinGanetiInstance *inst = NULL;

        if (!g_str_has_suffix(ent, ".runtime"))
            continue;
        name = g_strndup(ent, strlen(ent) - strlen(".runtime"));
        inst = blkin_ganeti_load_instance(root, name, &err);
        if (!inst) {
            /* Unreadable runtime files are skipped; an instance no disk
             * identity can name would be untraceable: say so. */
            if (g_error_matches(err, BLKIN_GANETI_ERROR,
                                BLKIN_GANETI_ERROR_IDENTITY))
                g_warning("%s", err->message);
            g_clear_error(&err);
            continue;
        }
        if (inst->pid <= 0) {
            blkin_ganeti_instance_free(inst);
            continue;
        }
        g_ptr_array_add(out, inst);
    }
    g_ptr_array_sort(out, cmp_instance);
    *ret = g_steal_pointer(&out);
    return 0;
}

char **blkin_ganeti_disk_specs(const BlkinGanetiInstance *inst)
{
    GPtrArray *v = g_ptr_array_new();

    for (guint i = 0; i < inst->disks->len; i++) {
        const BlkinGanetiDisk *d = g_ptr_array_index(inst->disks, i);

        g_ptr_array_add(v, g_strdup_printf("%s=%s=%s", d->target,
                                           d->serial ? d->serial : d->drive_id,
                                           d->filter_id));
    }
    g_ptr_array_add(v, NULL);
    return (char **)g_ptr_array_free(v, FALSE);
}
