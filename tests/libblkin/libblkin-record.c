/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libblkin-record: records a fixed set of annotations through libblkin, for
 * test_events.py to find field for field in the trace. Prints the ids it
 * could not choose (root and child span ids) as "name trace span parent"
 * lines, unsigned decimal.
 *
 * Recorded, in this order:
 *   root   "root-op" at 192.0.2.1:8080 "svc-a": cs, path=/vol/1,
 *          bytes=-4096, min=INT64_MIN
 *   remote "remote-op" at [2001:db8::1]:6800 "svc-b", child of the packed
 *          context {0x0102030405060708, 0xfedcba9876543210, 0x1111}:
 *          sr, long=<1 MiB of x, recorded truncated>, ss
 *   local  "local-op", child of root at root's endpoint: event "local"
 *   and nothing from an unsampled root and its local and remote children.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkin.h"

static void print_ids(const char *what, const struct blkin_trace *t)
{
    printf("%s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", what, t->info.trace_id,
           t->info.span_id, t->info.parent_span_id);
}

int main(void)
{
    static const uint8_t ctx[BLKIN_TRACE_INFO_PACKED_SIZE] = {
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* trace */
        0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, /* span */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x11, /* parent */
    };
    struct blkin_endpoint a, b;
    struct blkin_trace root, remote, local, off, off_local, off_remote;
    uint8_t packed[BLKIN_TRACE_INFO_PACKED_SIZE];
    size_t longlen = 1 << 20;
    char *longval = malloc(longlen + 1);
    int fails = 0;

    if (!longval)
        return 1;
    memset(longval, 'x', longlen);
    longval[longlen] = '\0';

    fails |= blkin_endpoint_init(&a, "192.0.2.1", 8080, "svc-a");
    fails |= blkin_endpoint_init(&b, "2001:db8::1", 6800, "svc-b");

    fails |= blkin_trace_init_root(&root, "root-op", &a, true);
    fails |= blkin_annotate_event(&root, BLKIN_CLIENT_SEND);
    fails |= blkin_annotate_string(&root, "path", "/vol/1");
    fails |= blkin_annotate_integer(&root, "bytes", -4096);
    fails |= blkin_annotate_integer(&root, "min", INT64_MIN);

    fails |=
        blkin_trace_init_packed(&remote, ctx, sizeof(ctx), "remote-op", &b);
    fails |= blkin_annotate_event(&remote, BLKIN_SERVER_RECV);
    fails |= blkin_annotate_string(&remote, "long", longval);
    fails |= blkin_annotate_event(&remote, BLKIN_SERVER_SEND);

    fails |= blkin_trace_init_child(&local, &root, "local-op", NULL);
    fails |= blkin_annotate_event(&local, "local");

    fails |= blkin_trace_init_root(&off, "hidden", &a, false);
    fails |= blkin_annotate_event(&off, "hidden");
    fails |= blkin_annotate_string(&off, "hidden", "hidden");
    fails |= blkin_annotate_integer(&off, "hidden", 1);
    fails |= blkin_trace_init_child(&off_local, &off, "hidden-local", NULL);
    fails |= blkin_annotate_event(&off_local, "hidden");
    if (blkin_trace_pack(&off, packed, sizeof(packed)) < 0)
        fails = 1;
    fails |= blkin_trace_init_packed(&off_remote, packed, sizeof(packed),
                                     "hidden-remote", &b);
    fails |= blkin_annotate_event(&off_remote, "hidden");

    print_ids("root", &root);
    print_ids("remote", &remote);
    print_ids("local", &local);
    free(longval);
    if (fails)
        fprintf(stderr, "libblkin-record: a libblkin call failed\n");
    return fails ? 1 : 0;
}
