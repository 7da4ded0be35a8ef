/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-domxml.c: blkin's domain XML changes without libvirt: node numbering
 * as libvirt 9.0 does it, refusals, enable/strip round trip, metadata, disk
 * identities (<domain name>/<target>; the older <uuid>/<target> still
 * disables).
 */
#include "domxml.h"
#include "disk-id.h"

#include <string.h>

#define UUID "5b1e4f0c-8a7d-4c3e-9f21-0a1b2c3d4e5f"

/* Disks as libvirt printed them in the case the numbering was observed on:
 * vda (qcow2 over a two-image chain), an empty cdrom, vdb raw, vdc qcow2,
 * sdb cdrom -> sdb 1, vdc 3, vdb 4, vda 5 (the empty cdrom took 2). */
static const char *DOMAIN =
    "<domain type='qemu'>\n"
    "  <name>web1</name>\n"
    "  <uuid>" UUID "</uuid>\n"
    "  <devices>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2'/>\n"
    "      <source file='/img/c2.qcow2'/>\n"
    "      <target dev='vda' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='cdrom'>\n"
    "      <target dev='sda' bus='sata'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='raw'/>\n"
    "      <source file='/img/e.raw'/>\n"
    "      <target dev='vdb' bus='virtio'/>\n"
    "      <serial>own-serial</serial>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <driver name='qemu' type='qcow2' copy_on_read='off'/>\n"
    "      <source file='/img/d.qcow2'/>\n"
    "      <target dev='vdc' bus='virtio'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='cdrom'>\n"
    "      <source file='/img/cd.iso'/>\n"
    "      <target dev='sdb' bus='sata'/>\n"
    "    </disk>\n"
    "    <disk type='file' device='disk'>\n"
    "      <source file='/img/s.raw'/>\n"
    "      <target dev='sdc' bus='scsi'/>\n"
    "    </disk>\n"
    "  </devices>\n"
    "</domain>\n";

static GPtrArray *targets(const char *first, ...)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    va_list ap;

    va_start(ap, first);
    for (const char *t = first; t; t = va_arg(ap, const char *))
        g_ptr_array_add(a, g_strdup(t));
    va_end(ap);
    return a;
}

static void test_numbering(void)
{
    g_autoptr(xmlDoc) doc = domxml_parse(DOMAIN, NULL);
    g_autoptr(GPtrArray) disks = NULL;
    const char *want[][2] = {
        {"vda", "libvirt-6-format"}, {"sda", "libvirt-5-format"},
        {"vdb", "libvirt-4-format"}, {"vdc", "libvirt-3-format"},
        {"sdb", "libvirt-2-format"}, {"sdc", "libvirt-1-format"}};

    g_assert_nonnull(doc);
    disks = domxml_disks(doc);
    g_assert_cmpuint(disks->len, ==, G_N_ELEMENTS(want));
    for (guint i = 0; i < disks->len; i++) {
        DomDisk *d = disks->pdata[i];

        g_assert_cmpstr(d->target, ==, want[i][0]);
        g_assert_cmpstr(d->node, ==, want[i][1]);
    }
}

static void test_explicit_backing_and_cor(void)
{
    const char *xml =
        "<domain><name>x</name><uuid>" UUID "</uuid><devices>"
        "<disk type='file' device='disk'><driver copy_on_read='on'/>"
        "<source file='/a'/><target dev='vda' bus='virtio'/></disk>"
        "<disk type='file' device='disk'><source file='/b'/>"
        "<backingStore type='file'><format type='qcow2'/>"
        "<source file='/b0'/><backingStore/></backingStore>"
        "<target dev='vdb' bus='virtio'/></disk>"
        "<disk type='file' device='disk'><source file='/c'/>"
        "<target dev='vdc' bus='virtio'/></disk>"
        "</devices></domain>";
    g_autoptr(xmlDoc) doc = domxml_parse(xml, NULL);
    g_autoptr(GPtrArray) disks = domxml_disks(doc);

    /* vdc 1, vdb 2 and its named backing image 3, vda 4 (behind CoR). */
    g_assert_cmpstr(((DomDisk *)disks->pdata[0])->node, ==, "libvirt-CoR-vda");
    g_assert_cmpuint(((DomDisk *)disks->pdata[0])->index, ==, 4);
    g_assert_cmpstr(((DomDisk *)disks->pdata[1])->node, ==, "libvirt-2-format");
    g_assert_cmpstr(((DomDisk *)disks->pdata[2])->node, ==, "libvirt-1-format");
}

static void test_refusals(void)
{
    g_autoptr(xmlDoc) doc = domxml_parse(DOMAIN, NULL);
    g_autoptr(GPtrArray) def = domxml_default_targets(doc);
    g_autoptr(GPtrArray) cd = targets("sda", NULL);
    g_autoptr(GPtrArray) scsi = targets("sdc", NULL);
    g_autoptr(GPtrArray) none = targets("vdz", NULL);
    g_autoptr(GError) err = NULL;

    g_assert_cmpuint(def->len, ==, 3);
    g_assert_false(domxml_check_targets(doc, cd, &err));
    g_assert_nonnull(strstr(err->message, "cdrom"));
    g_clear_error(&err);
    g_assert_false(domxml_check_targets(doc, scsi, &err));
    g_assert_nonnull(strstr(err->message, "bus 'scsi'"));
    g_clear_error(&err);
    g_assert_false(domxml_check_targets(doc, none, &err));
    g_assert_nonnull(strstr(err->message, "no disk 'vdz'"));
    g_assert_null(domxml_parse("<domain", NULL));
}

static void test_enable_strip(void)
{
    g_autoptr(GPtrArray) t = targets("vda", "vdb", NULL);
    EnableOptions eo = {.preload = "/lib/blkin/libblkin-preload.so"};
    g_autoptr(GError) err = NULL;
    g_autofree char *on = domxml_enable(DOMAIN, DOMAIN, t, &eo, &err);
    g_autofree char *off = NULL, *diff = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(BlkinState) st = NULL;
    TracedDisk *vda, *vdb;

    g_assert_no_error(err);
    g_assert_nonnull(strstr(on,
                            "file=json:{&quot;driver&quot;:&quot;blkin&quot;,,"
                            "&quot;id&quot;:&quot;web1/vda&quot;,,"
                            "&quot;file&quot;:&quot;libvirt-6-format&quot;}"));
    g_assert_nonnull(strstr(on, "name=\"LD_PRELOAD\""));
    g_assert_nonnull(strstr(on, "/run/blkin/agents/web1.sock"));
    g_assert_null(strstr(on, "blkin-vdc"));

    doc = domxml_parse(on, NULL);
    st = domxml_state(doc, &err);
    g_assert_no_error(err);
    g_assert_nonnull(st);
    g_assert_cmpstr(st->original, ==, DOMAIN);
    g_assert_cmpuint(st->disks->len, ==, 2);
    vda = st->disks->pdata[0];
    vdb = st->disks->pdata[1];
    g_assert_cmpstr(vda->serial, ==, "bk5b1e4f0c-vda");
    g_assert_true(vda->serial_added);
    g_assert_cmpstr(vdb->serial, ==, "own-serial");
    g_assert_false(vdb->serial_added);
    g_assert_cmpstr(vdb->filter_id, ==, "web1/vdb");
    {
        /* The one rule every road uses. */
        g_autofree char *want = blkin_disk_id("web1", "vda", &err);

        g_assert_no_error(err);
        g_assert_cmpstr(vda->filter_id, ==, want);
    }

    /* Enabling on a definition that has blkin already is a caller bug. */
    g_assert_null(domxml_enable(on, on, t, &eo, &err));
    g_clear_error(&err);

    off = domxml_strip(on, &err);
    g_assert_no_error(err);
    g_assert_true(domxml_equal(off, DOMAIN));
    g_assert_false(domxml_equal(on, DOMAIN));

    diff = domxml_diff(DOMAIN, on);
    g_assert_nonnull(strstr(diff, "+  <qemu:commandline>"));
    g_assert_null(strstr(diff, "-  <name>"));
}

/* Prepared only (blkin-libvirt prepare): the preload, serials, the agent
 * channel and the metadata, no filter at start; stripped back to the
 * original. */
static void test_prepare(void)
{
    g_autoptr(GPtrArray) t = targets("vda", "vdb", NULL);
    EnableOptions eo = {.preload = "/lib/blkin/libblkin-preload.so",
                        .prepare_only = true};
    g_autoptr(GError) err = NULL;
    g_autofree char *on = domxml_enable(DOMAIN, DOMAIN, t, &eo, &err);
    g_autofree char *off = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(BlkinState) st = NULL;

    g_assert_no_error(err);
    g_assert_nonnull(strstr(on, "name=\"LD_PRELOAD\""));
    g_assert_nonnull(strstr(on, "/run/blkin/agents/web1.sock"));
    g_assert_nonnull(strstr(on, "<serial>bk5b1e4f0c-vda</serial>"));
    g_assert_nonnull(strstr(on, "at-start=\"no\""));
    /* No filter: no -drive, no override, no alias for one. */
    g_assert_null(strstr(on, "-drive"));
    g_assert_null(strstr(on, "override"));
    g_assert_null(strstr(on, "ua-blkin"));

    doc = domxml_parse(on, NULL);
    st = domxml_state(doc, &err);
    g_assert_no_error(err);
    g_assert_true(st->prepared);
    g_assert_cmpuint(st->disks->len, ==, 2);
    g_assert_cmpstr(((TracedDisk *)st->disks->pdata[0])->filter_id, ==,
                    "web1/vda");
    off = domxml_strip(on, &err);
    g_assert_no_error(err);
    g_assert_true(domxml_equal(off, DOMAIN));
}

/* A domain whose name cannot be part of a disk identity is refused with
 * the reason, and nothing is made. */
static void test_bad_name(void)
{
    g_autoptr(GPtrArray) t = targets("vda", NULL);
    EnableOptions eo = {.preload = "/lib/blkin/libblkin-preload.so"};
    g_autoptr(GError) err = NULL;
    g_autofree char *bad = NULL, *on = NULL;
    g_auto(GStrv) parts = g_strsplit(DOMAIN, "<name>web1</name>", 2);

    bad = g_strjoinv("<name>web,1</name>", parts);
    on = domxml_enable(bad, bad, t, &eo, &err);
    g_assert_null(on);
    g_assert_error(err, BLKIN_DISK_ID_ERROR, BLKIN_DISK_ID_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "VM name 'web,1'"));
    g_assert_nonnull(strstr(err->message, "','"));
}

static char *replace_all(const char *s, const char *from, const char *to)
{
    g_auto(GStrv) parts = g_strsplit(s, from, -1);

    return g_strjoinv(to, parts);
}

/* Definitions enabled before the naming rule carry <uuid>/<target>: they
 * read back as recorded, and disabling them gives the original again. */
static void test_old_ids(void)
{
    g_autoptr(GPtrArray) t = targets("vda", "vdb", NULL);
    EnableOptions eo = {.preload = "/lib/blkin/libblkin-preload.so"};
    g_autoptr(GError) err = NULL;
    g_autofree char *on = domxml_enable(DOMAIN, DOMAIN, t, &eo, &err);
    g_autofree char *old1 = NULL, *old = NULL, *off = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(BlkinState) st = NULL;

    g_assert_no_error(err);
    old1 = replace_all(on, "web1/vda", UUID "/vda");
    old = replace_all(old1, "web1/vdb", UUID "/vdb");
    g_assert_null(strstr(old, "web1/vd"));
    doc = domxml_parse(old, &err);
    g_assert_no_error(err);
    st = domxml_state(doc, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(((TracedDisk *)st->disks->pdata[0])->filter_id, ==,
                    UUID "/vda");
    g_assert_cmpstr(((TracedDisk *)st->disks->pdata[1])->filter_id, ==,
                    UUID "/vdb");
    /* disable restores the recorded original byte for byte ... */
    g_assert_cmpstr(st->original, ==, DOMAIN);
    /* ... or, when the definition was edited since, strips blkin's parts,
     * old filter ids included. */
    off = domxml_strip(old, &err);
    g_assert_no_error(err);
    g_assert_true(domxml_equal(off, DOMAIN));
    g_assert_null(strstr(off, UUID "/vd"));
}

static void test_fingerprint(void)
{
    g_autoptr(GPtrArray) t = targets("vdb", NULL);
    EnableOptions eo = {.preload = "/p.so", .agent_socket = "/s.sock"};
    g_autofree char *on = domxml_enable(DOMAIN, DOMAIN, t, &eo, NULL);
    g_autofree char *fp = domxml_fingerprint(on);
    g_autofree char *marked = domxml_set_fingerprint(on, fp, NULL);
    g_autofree char *fp2 = domxml_fingerprint(marked);
    g_autofree char *other = NULL;
    g_autoptr(xmlDoc) doc = domxml_parse(marked, NULL);
    g_autoptr(BlkinState) st = domxml_state(doc, NULL);

    /* The fingerprint leaves blkin's metadata out, so recording it does not
     * change it; an edit does. */
    g_assert_cmpstr(fp, ==, fp2);
    g_assert_cmpstr(st->fingerprint, ==, fp);
    g_assert_cmpstr(st->agent_socket, ==, "/s.sock");
    other = domxml_fingerprint(DOMAIN);
    g_assert_cmpstr(other, !=, fp);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/domxml/numbering", test_numbering);
    g_test_add_func("/domxml/backing-and-cor", test_explicit_backing_and_cor);
    g_test_add_func("/domxml/refusals", test_refusals);
    g_test_add_func("/domxml/enable-strip", test_enable_strip);
    g_test_add_func("/domxml/prepare", test_prepare);
    g_test_add_func("/domxml/fingerprint", test_fingerprint);
    g_test_add_func("/domxml/bad-name", test_bad_name);
    g_test_add_func("/domxml/old-ids", test_old_ids);
    return g_test_run();
}
