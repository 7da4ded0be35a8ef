/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-agent-conn.c: hostd's side of a guest's channel
 * (hostd/ingest/agent-conn.c) end to end: the input is what the "guest" sends
 * on the VM's agent socket, and hostd takes it the way it does in production,
 * through its connection, its limits, the clock exchange and into the VM's
 * disks and joins.
 *
 * Per input: a fresh model with one VM (two disks, serials ser-a/ser-b)
 * whose agent socket this harness listens on; hostd connects (and sends its
 * HELLO), the input is written to it, and the GLib main context runs until
 * hostd has read everything; then the joins are flushed and the VM's state
 * checked. The input's first frame (the agent's HELLO, in the seeds) goes in
 * a read of its own: hostd answers it with probe 1, so that replies later
 * in the input arrive after their probe, as in a real exchange.
 */
#include "fuzz.h"
#include "fuzz-glib.h"

#include "ingest/agent-conn.h"
#include "vms/model.h"

#include <errno.h>
#include <inttypes.h>
#include <glib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int listen_fd = -1;
static char sock_path[108];

/* Where the input's first frame ends, if it starts with one. */
static size_t first_frame_end(const uint8_t *p, size_t n)
{
    uint32_t len;

    if (n < BLKIN_FRAME_HDR_SIZE || (p[0] | p[1] << 8 | p[2] << 16 |
                                     (uint32_t)p[3] << 24) != BLKIN_PROTO_MAGIC)
        return n;
    len = p[8] | p[9] << 8 | p[10] << 16 | (uint32_t)p[11] << 24;
    return len > n - BLKIN_FRAME_HDR_SIZE ? n : BLKIN_FRAME_HDR_SIZE + len;
}

static void setup(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    snprintf(sock_path, sizeof(sock_path), "%s/blkin-fuzz-agent.%d",
             g_get_tmp_dir(), (int)getpid());
    unlink(sock_path);
    strcpy(sa.sun_path, sock_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
        listen(listen_fd, 4))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const specs[] = {"vda=ser-a=f/vda", "vdb=ser-b=f/vdb"};
    g_autoptr(GPtrArray) disks = hostd_disk_specs_new();
    HostdModel *m;
    HostdVm *vm;
    int fd;
    size_t off = 0, cut = first_frame_end(data, size);

    fuzz_glib_quiet();

    /* One socket buffer's worth: hostd reads 64 KiB at a time. */
    if (size > 200000)
        return 0;
    if (listen_fd < 0)
        setup();
    for (size_t i = 0; i < G_N_ELEMENTS(specs); i++)
        g_ptr_array_add(disks, hostd_disk_spec_parse(specs[i], NULL));
    m = hostd_model_new();
    vm = hostd_model_add_vm(m, "f", sock_path, disks, NULL);
    FUZZ_CHECK(vm);
    /* hostd connected in hostd_agent_conn_new(); the kernel queued it. */
    fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(hostd_agent_conn_connected(vm->agent));
    while (off < size) {
        size_t end = off < cut ? cut : size;
        ssize_t n =
            send(fd, data + off, end - off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno != EAGAIN)
            break; /* hostd closed it: a limit */
        if (n > 0)
            off += n;
        /* Let hostd read what is there. */
        while (g_main_context_iteration(NULL, FALSE))
            ;
    }
    shutdown(fd, SHUT_WR);
    while (g_main_context_iteration(NULL, FALSE))
        ;
    close(fd);
    hostd_model_flush(m, INT64_MAX, g_get_monotonic_time() * 1000);

    /* Whatever the guest said, it only reached this VM's own disks, and
     * nothing waits once everything is flushed. */
    for (guint i = 0; i < vm->disks->len; i++) {
        HostdDisk *d = g_ptr_array_index(vm->disks, i);

        FUZZ_CHECK(d->vm == vm);
        FUZZ_CHECK(hostd_join_pending(d->join) == 0);
        /* To see what a seed reaches: FUZZ_VERBOSE=1 fuzz-agent-conn SEED */
        if (getenv("FUZZ_VERBOSE"))
            fprintf(stderr, "disk %s: %" PRIu64 " guest records\n", d->target,
                    d->guest_records);
    }
    hostd_model_free(m);
    /* Sources the VM left behind (its reconnect timer) went with it. */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    return 0;
}
