/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-disk-id.c: blkin's disk identity rule (libvirt-hooks/disk-id.h,
 * docs/hostd.md "Disk identity"), which blkin-libvirt, Ganeti discovery and
 * blkin-live share: <vm>/<target>, pieces that are valid and pieces that are
 * refused with the reason.
 */
#include "disk-id.h"

static void test_valid(void)
{
    static const char *const cases[][3] = {
        {"web1", "vda", "web1/vda"},
        {"blkin-lv-test", "vdb", "blkin-lv-test/vdb"},
        /* Ganeti: FQDN instance names, disk/N disk names. */
        {"inst1.example.org", "disk/0", "inst1.example.org/disk/0"},
        {"a", "b/c/d", "a/b/c/d"},
        {"VM_2", "disk-aaaa.1", "VM_2/disk-aaaa.1"},
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *id = blkin_disk_id(cases[i][0], cases[i][1], &err);

        g_assert_no_error(err);
        g_assert_cmpstr(id, ==, cases[i][2]);
    }
}

static void test_invalid(void)
{
    static const char *const cases[][3] = {
        /* vm, target, what the message must say */
        {"", "vda", "the VM name is empty"},
        {NULL, "vda", "the VM name is empty"},
        {"web1", "", "the disk name is empty"},
        {"web/1", "vda", "VM name 'web/1'"}, /* the VM ends at the first / */
        {"web,1", "vda", "',' at offset 3"}, /* QemuOpts */
        {"web 1", "vda", "byte 0x20 at offset 3"}, /* HMP, listings */
        {"web1", "vd=a", "disk name 'vd=a'"},      /* hostd's disk specs */
        {"web1", "vd:a", "':' at offset 2"},       /* hostd's --vm */
        {"web1", "vd;a", "';'"},
        {"we\"b", "vda", "'\"'"}, /* JSON */
        {"we\\b", "vda", "'\\'"},
        {"web\t1", "vda", "byte 0x09 at offset 3"},
        {"w\xc3\xa9", "vda", "byte 0xc3 at offset 1"}, /* ASCII only */
        {"web1", "/vda", "'/' at offset 0"},
        {"web1", "vda/", "'/' at offset 3"},
        {"web1", "disk//0", "'/' at offset 4"},
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        g_autofree char *id = blkin_disk_id(cases[i][0], cases[i][1], &err);

        g_assert_null(id);
        g_assert_error(err, BLKIN_DISK_ID_ERROR, BLKIN_DISK_ID_ERROR_INVALID);
        if (!strstr(err->message, cases[i][2]))
            g_error("'%s' does not say '%s'", err->message, cases[i][2]);
        if (cases[i][0] && *cases[i][0] && cases[i][1] && *cases[i][1])
            g_assert_nonnull(strstr(err->message, "allowed: "));
    }
}

static void test_length(void)
{
    g_autofree char *vm = g_strnfill(BLKIN_DISK_ID_MAX - 4, 'v');
    g_autofree char *longer = g_strnfill(BLKIN_DISK_ID_MAX - 3, 'v');
    g_autoptr(GError) err = NULL;
    g_autofree char *id = blkin_disk_id(vm, "vda", &err);
    g_autofree char *too = NULL;

    g_assert_no_error(err);
    g_assert_cmpuint(strlen(id), ==, BLKIN_DISK_ID_MAX);
    too = blkin_disk_id(longer, "vda", &err);
    g_assert_null(too);
    g_assert_error(err, BLKIN_DISK_ID_ERROR, BLKIN_DISK_ID_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "at most 255"));
}

static void test_check_piece(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(blkin_disk_id_check("VM name", "web1", FALSE, NULL));
    /* '/' is allowed inside a target only. */
    g_assert_true(blkin_disk_id_check("disk name", "disk/0", TRUE, NULL));
    g_assert_false(blkin_disk_id_check("VM name", "disk/0", FALSE, &err));
    g_assert_nonnull(strstr(err->message, "allowed: letters, digits"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/disk-id/valid", test_valid);
    g_test_add_func("/disk-id/invalid", test_invalid);
    g_test_add_func("/disk-id/length", test_length);
    g_test_add_func("/disk-id/check-piece", test_check_piece);
    return g_test_run();
}
