/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-control.c: hostd's control requests (hostd/serve/commands.c and the
 * report builders behind them) on hostile JSON. The control socket is for
 * root and the blkin group only, but a request is still outside input, and
 * a crash there takes every VM's tracing down.
 *
 * Input: JSON requests, one per line, run in order against a fresh model
 * with two VMs (three disks) holding a few requests, as the control socket
 * parses them (control.c). Agent sockets named in a request are replaced
 * by a path that does not exist, so the harness never connects anywhere.
 */
#include "fuzz.h"
#include "fuzz-glib.h"

#include "hostd.h"

#include <string.h>

static void add_requests(HostdModel *m, const char *vm, const char *target)
{
    HostdDisk *d = hostd_vm_disk(hostd_model_vm(m, vm), target);

    for (int i = 0; i < 64; i++) {
        HostdGuestReq g = {
            .offset = (uint64_t)i * 4096,
            .bytes = 4096,
            .issue_ns = 1000000000LL + i * 1000000LL,
            .complete_ns = 1000000000LL + i * 1000000LL + 50000 * (i + 1),
            .op = 1 + i % 5,
        };

        hostd_model_guest(m, d, &g);
    }
}

static void handle(Hostd *h, const char *line, size_t len)
{
    JsonParser *p = json_parser_new();
    JsonNode *resp = NULL;

    if (json_parser_load_from_data(p, line, len, NULL) &&
        json_parser_get_root(p) &&
        JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p))) {
        JsonObject *req = json_node_get_object(json_parser_get_root(p));

        if (json_object_has_member(req, "agent_socket"))
            json_object_set_string_member(req, "agent_socket",
                                          "/nonexistent/blkin-fuzz.sock");
        resp = hostd_handle_request(h, req);
        FUZZ_CHECK(resp && JSON_NODE_HOLDS_OBJECT(resp));
        FUZZ_CHECK(json_object_has_member(json_node_get_object(resp), "ok"));
        /* The response goes back as one line: it must serialise. */
        g_free(json_to_string(resp, FALSE));
        json_node_unref(resp);
    }
    g_object_unref(p);
}

/* A registration, typed as every road builds it (vms/disk-spec.h). */
static gboolean add_vm(HostdModel *m, const char *name, char **texts)
{
    g_autoptr(GPtrArray) specs = hostd_disk_specs_new();

    for (char **t = texts; *t; t++)
        g_ptr_array_add(specs, hostd_disk_spec_parse(*t, NULL));
    return hostd_model_add_vm(m, name, NULL, specs, NULL) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *a_disks[] = {"vda=ser-a=a/vda", "vdb=ser-b=a/vdb", NULL};
    static char *b_disks[] = {"vda=ser-c=b/vda", NULL};
    Hostd h = {.live_url = "net://127.0.0.1/host/fuzz/blkin",
               .hold_ns = 800000000};
    const char *s = (const char *)data, *end = s + size;

    fuzz_glib_quiet();

    /* The control socket's line limit. */
    if (size > HOSTD_CONTROL_MAX_LINE * 4)
        return 0;
    h.model = hostd_model_new();
    FUZZ_CHECK(add_vm(h.model, "a", a_disks));
    FUZZ_CHECK(add_vm(h.model, "b", b_disks));
    add_requests(h.model, "a", "vda");
    add_requests(h.model, "b", "vda");
    hostd_model_flush(h.model, 2000000000LL, 3000000000LL);

    while (s < end) {
        const char *nl = memchr(s, '\n', end - s);
        size_t len = (nl ? nl : end) - s;

        if (len <= HOSTD_CONTROL_MAX_LINE)
            handle(&h, s, len);
        s += len + 1;
    }
    hostd_model_free(h.model);
    return 0;
}
