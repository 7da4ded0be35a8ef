/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of ganeti/ganeti-discovery.c on hand-written Ganeti state
 * directories (the end-to-end test uses Ganeti's own files).
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

#include "disk-id.h"
#include "ganeti-discovery.h"

/* Ganeti's runtime: [kvm_cmd, nics, hvparams, [[disk, link, uri], ...]]. */
static const char RUNTIME[] =
    "[[\"/usr/lib/blkin/blkin-kvm\", \"-name\", \"web1\", \"-daemonize\","
    "  \"-chardev\", \"socket,id=ag,path=/run/x/web1.agent,server=on\","
    "  \"-device\", \"virtserialport,chardev=ag,name=org.blkin.agent.0\","
    "  \"-device\", \"virtio-blk-pci,id=disk-aaaa,drive=disk-aaaa,"
    "serial=s,,1\"],"
    " [], {\"kvm_path\": \"/usr/lib/blkin/blkin-kvm\"},"
    " [[{\"iv_name\": \"disk/0\", \"uuid\": \"aaaa-1-2\","
    "    \"hvinfo\": {\"driver\": \"virtio-blk-pci\", \"id\": \"disk-aaaa\"}},"
    "   \"/dev/x\", null],"
    "  [{\"iv_name\": \"\", \"uuid\": \"bbbb-1-2\","
    "    \"hvinfo\": {\"driver\": \"virtio-blk-pci\", \"id\": \"disk-bbbb\"}},"
    "   \"/dev/y\", null],"
    "  [{\"iv_name\": \"disk/2\", \"uuid\": \"cccc-1-2\"}, \"/dev/z\", null]]]";

typedef struct {
    char *root;
} Fixture;

static void write_file(const char *root, const char *sub, const char *name,
                       const char *text)
{
    g_autofree char *dir = g_build_filename(root, sub, NULL);
    g_autofree char *path = g_build_filename(dir, name, NULL);

    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    g_assert_true(g_file_set_contents(path, text, -1, NULL));
}

/* A pid that is certainly not running: a reaped child's. */
static pid_t dead_pid(void)
{
    pid_t p = fork();

    if (p == 0)
        _exit(0);
    g_assert_cmpint(p, >, 0);
    waitpid(p, NULL, 0);
    return p;
}

/* A running process whose command line names instance @name, as QEMU's
 * does (-name NAME). */
static pid_t fake_qemu(const char *name)
{
    pid_t p = fork();

    if (p == 0) {
        int null = open("/dev/null", O_RDWR);

        /* Its own group, killed whole; and off the test's output, which the
         * test runner waits on. */
        setpgid(0, 0);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execl("/bin/sh", "sh", "-c", "sleep 60; :", "-name", name, NULL);
        _exit(127);
    }
    g_assert_cmpint(p, >, 0);
    return p;
}

static void reap(pid_t p)
{
    kill(-p, SIGKILL);
    waitpid(p, NULL, 0);
}

static void fixture_set_up(Fixture *f, gconstpointer data)
{
    f->root = g_dir_make_tmp("blkin-gnt-XXXXXX", NULL);
    g_assert_nonnull(f->root);
}

static void rm_rf(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *e;

    while (d && (e = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(path, e, NULL);

        if (g_file_test(p, G_FILE_TEST_IS_DIR))
            rm_rf(p);
        else
            g_unlink(p);
    }
    g_rmdir(path);
}

static void fixture_tear_down(Fixture *f, gconstpointer data)
{
    rm_rf(f->root);
    g_free(f->root);
}

static void test_read_instance(Fixture *f, gconstpointer data)
{
    g_autoptr(BlkinGanetiInstance) inst = NULL;
    g_autofree char *pid = g_strdup_printf("%d\n", (int)dead_pid());
    g_autofree char *qmp = g_build_filename(f->root, "ctrl", "web1.qmp", NULL);
    g_auto(GStrv) specs = NULL;
    BlkinGanetiDisk *d;

    write_file(f->root, "conf", "web1.runtime", RUNTIME);
    write_file(f->root, "pid", "web1", pid);
    g_assert_cmpint(blkin_ganeti_read_instance(f->root, "web1", &inst), ==, 0);
    g_assert_cmpstr(inst->name, ==, "web1");
    /* QEMU is gone: pid 0, and what is known comes from Ganeti's kvm_cmd. */
    g_assert_cmpint(inst->pid, ==, 0);
    g_assert_cmpstr(inst->qmp_socket, ==, qmp);
    g_assert_cmpstr(inst->agent_socket, ==, "/run/x/web1.agent");
    /* The third disk has no hvinfo (not a -device disk): not listed. */
    g_assert_cmpuint(inst->disks->len, ==, 2);
    d = g_ptr_array_index(inst->disks, 0);
    g_assert_cmpstr(d->target, ==, "disk/0");
    g_assert_cmpstr(d->drive_id, ==, "disk-aaaa");
    g_assert_cmpstr(d->uuid, ==, "aaaa-1-2");
    g_assert_cmpstr(d->serial, ==, "s,1"); /* a doubled comma is a comma */
    g_assert_cmpstr(d->filter_id, ==, "web1/disk/0");
    {
        /* The one rule blkin-libvirt and blkin-live use too. */
        g_autofree char *want = blkin_disk_id("web1", "disk/0", NULL);

        g_assert_cmpstr(d->filter_id, ==, want);
    }
    d = g_ptr_array_index(inst->disks, 1);
    g_assert_cmpstr(d->target, ==, "disk/1"); /* no iv_name: by position */
    g_assert_null(d->serial);

    specs = blkin_ganeti_disk_specs(inst);
    g_assert_cmpuint(g_strv_length(specs), ==, 2);
    g_assert_cmpstr(specs[0], ==, "disk/0=s,1=web1/disk/0");
    /* Without a serial the drive id stands in; no guest reports it. */
    g_assert_cmpstr(specs[1], ==, "disk/1=disk-bbbb=web1/disk/1");
}

static void test_discover(Fixture *f, gconstpointer data)
{
    g_autoptr(GPtrArray) all = NULL;
    pid_t qa = fake_qemu("aa"), qz = fake_qemu("zz");
    g_autofree char *pa = g_strdup_printf("%d", (int)qa);
    g_autofree char *pz = g_strdup_printf("%d", (int)qz);
    g_autofree char *self = g_strdup_printf("%d", (int)getpid());
    g_autofree char *dead = g_strdup_printf("%d", (int)dead_pid());
    BlkinGanetiInstance *inst;

    /* sh must have started before its command line is readable. */
    g_usleep(200000);
    write_file(f->root, "conf", "zz.runtime", RUNTIME);
    write_file(f->root, "pid", "zz", pz);
    write_file(f->root, "conf", "aa.runtime", RUNTIME);
    write_file(f->root, "pid", "aa", pa);
    /* A live pid that is not the instance's QEMU (a reused pid). */
    write_file(f->root, "conf", "reused.runtime", RUNTIME);
    write_file(f->root, "pid", "reused", self);
    write_file(f->root, "conf", "stale.runtime", RUNTIME);
    write_file(f->root, "pid", "stale", dead);
    write_file(f->root, "conf", "nopid.runtime", RUNTIME);
    write_file(f->root, "conf", "broken.runtime", "{\"not\": \"ganeti\"}");
    write_file(f->root, "conf", "ignored.txt", "x");

    g_assert_cmpint(blkin_ganeti_discover(f->root, &all), ==, 0);
    g_assert_cmpuint(all->len, ==, 2);
    inst = g_ptr_array_index(all, 0);
    g_assert_cmpstr(inst->name, ==, "aa");
    g_assert_cmpint(inst->pid, ==, qa);
    /* The running process's own command line wins over Ganeti's: this one
     * has no agent port and no disk serials. */
    g_assert_null(inst->agent_socket);
    g_assert_null(
        ((BlkinGanetiDisk *)g_ptr_array_index(inst->disks, 0))->serial);
    /* A stand-in without blkin's preload object in its memory map cannot be
     * traced, and discovery says why. */
    g_assert_cmpstr(inst->untraced, ==,
                    "its QEMU does not map blkin's preload object");
    g_assert_cmpstr(((BlkinGanetiInstance *)g_ptr_array_index(all, 1))->name,
                    ==, "zz");
    reap(qa);
    reap(qz);
}

static void test_errors(Fixture *f, gconstpointer data)
{
    g_autoptr(BlkinGanetiInstance) inst = NULL;
    g_autoptr(GPtrArray) all = NULL;
    g_autofree char *missing = g_build_filename(f->root, "nope", NULL);

    g_assert_cmpint(blkin_ganeti_read_instance(f->root, "none", &inst), ==,
                    -ENOENT);
    write_file(f->root, "conf", "bad.runtime", "[1, 2]");
    g_assert_cmpint(blkin_ganeti_read_instance(f->root, "bad", &inst), ==,
                    -EBADMSG);
    write_file(f->root, "conf", "bad2.runtime", "[[], [], {}, [[1]]]");
    g_assert_cmpint(blkin_ganeti_read_instance(f->root, "bad2", &inst), ==,
                    -EBADMSG);
    write_file(f->root, "conf", "bad3.runtime", "not json");
    g_assert_cmpint(blkin_ganeti_read_instance(f->root, "bad3", &inst), ==,
                    -EBADMSG);
    write_file(f->root, "conf", "odd.runtime",
               "[[], [], {}, [[{\"hvinfo\": null, \"iv_name\": 3}]]]");
    g_assert_cmpint(blkin_ganeti_read_instance(f->root, "odd", &inst), ==, 0);
    g_assert_cmpuint(inst->disks->len, ==, 0);
    g_clear_pointer(&inst, blkin_ganeti_instance_free);
    g_assert_cmpint(blkin_ganeti_read_instance(f->root, "bad3", &inst), ==,
                    -EBADMSG);
    g_assert_null(inst);
    g_assert_cmpint(blkin_ganeti_discover(missing, &all), ==, -ENOENT);
    /* A node without instances yet: no conf/ directory. */
    g_assert_cmpint(blkin_ganeti_discover(f->root, &all), ==, 0);
}

/* An instance whose name no disk identity can have is refused with the
 * reason; discovery says so and goes on with the others. */
static void test_identity(Fixture *f, gconstpointer data)
{
    g_autoptr(BlkinGanetiInstance) inst = NULL;
    g_autoptr(GPtrArray) all = NULL;
    g_autoptr(GError) err = NULL;
    pid_t q = fake_qemu("bad,name");
    g_autofree char *pid = g_strdup_printf("%d", (int)q);

    g_usleep(200000);
    write_file(f->root, "conf", "bad,name.runtime", RUNTIME);
    write_file(f->root, "pid", "bad,name", pid);
    inst = blkin_ganeti_load_instance(f->root, "bad,name", &err);
    g_assert_null(inst);
    g_assert_error(err, BLKIN_GANETI_ERROR, BLKIN_GANETI_ERROR_IDENTITY);
    g_assert_nonnull(strstr(err->message, "instance bad,name: VM name "
                                          "'bad,name' cannot be part"));
    g_assert_cmpint(blkin_ganeti_read_instance(f->root, "bad,name", &inst), ==,
                    -EINVAL);
    g_clear_error(&err);
    inst = blkin_ganeti_load_instance(f->root, "none", &err);
    g_assert_error(err, BLKIN_GANETI_ERROR, BLKIN_GANETI_ERROR_NOT_FOUND);
    g_assert_cmpstr(err->message, ==, "no runtime file (not running here)");

    g_test_expect_message("blkin-ganeti", G_LOG_LEVEL_WARNING,
                          "instance bad,name: VM name*");
    g_assert_cmpint(blkin_ganeti_discover(f->root, &all), ==, 0);
    g_test_assert_expected_messages();
    g_assert_cmpuint(all->len, ==, 0);
    reap(q);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/ganeti/read-instance", Fixture, NULL, fixture_set_up,
               test_read_instance, fixture_tear_down);
    g_test_add("/ganeti/discover", Fixture, NULL, fixture_set_up, test_discover,
               fixture_tear_down);
    g_test_add("/ganeti/errors", Fixture, NULL, fixture_set_up, test_errors,
               fixture_tear_down);
    g_test_add("/ganeti/identity", Fixture, NULL, fixture_set_up, test_identity,
               fixture_tear_down);
    return g_test_run();
}
