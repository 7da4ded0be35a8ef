/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-optracker.c: the collector's op-tracker parser (ceph/optracker.c)
 * on whatever an admin socket might answer, and each op it reads through
 * the collector's wire line (common/blkin-osd-op.c) and back.
 *
 * Checked: the parser returns an error with a reason and an offset within
 * the input, or the number of ops it gave; every op given has a
 * NUL-terminated object name and a known kind; the same answer parsed again
 * with the keys of the first pass gives no new op (the collector's
 * deduplication); an op's wire line parses back to the same op.
 */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "blkin-osd-op.h"
#include "keyset.h"
#include "optracker.h"

typedef struct State {
    BlkinKeySet keys;
    bool dedup;
    unsigned given;
} State;

static bool seen(void *opaque, uint64_t key)
{
    State *s = opaque;

    return s->dedup && blkin_keyset_has(&s->keys, key);
}

static void op(void *opaque, const blkin_osd_op *o, uint64_t key)
{
    State *s = opaque;
    char line[1024];
    blkin_osd_op back;
    int n;

    s->given++;
    FUZZ_CHECK(!s->dedup);
    FUZZ_CHECK(memchr(o->object, '\0', sizeof(o->object)) != NULL);
    FUZZ_CHECK(o->kind <= BLKIN_OSD_KIND__MAX);
    blkin_keyset_add(&s->keys, key);
    n = blkin_osd_op_format(o, line, sizeof(line));
    FUZZ_CHECK(n > 0 && (size_t)n == strlen(line));
    if (!o->object[0] || o->stamp[0] < 0)
        return; /* no line for these: the parser below refuses them */
    for (int i = 0; i < BLKIN_OSD_STAMP__N; i++)
        if (o->stamp[i] < 0)
            return;
    FUZZ_CHECK(blkin_osd_op_parse(line, (size_t)n, &back) == 0);
    FUZZ_CHECK(back.gid == o->gid && back.tid == o->tid &&
               back.kind == o->kind && back.offset == o->offset &&
               back.length == o->length && !strcmp(back.object, o->object) &&
               !memcmp(back.stamp, o->stamp, sizeof(o->stamp)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    State s = {0};
    blkin_optracker_cb cb = {seen, op, &s};
    blkin_optracker_result res;
    blkin_osd_op d;
    int64_t ns;
    int n = blkin_optracker_parse((const char *)data, size, 3, &cb, &res);

    if (n < 0) {
        FUZZ_CHECK(res.error != NULL && res.error_offset <= size);
    } else {
        FUZZ_CHECK((unsigned)n == s.given && res.new_ops == s.given);
        FUZZ_CHECK(res.client_ops <= res.ops && res.new_ops <= res.client_ops);
        /* Again, with what was given: nothing new. */
        s.dedup = true;
        FUZZ_CHECK(
            blkin_optracker_parse((const char *)data, size, 3, &cb, &res) == 0);
    }
    blkin_keyset_destroy(&s.keys);
    /* The input as one description, one time stamp, one wire line. */
    memset(&d, 0, sizeof(d));
    n = blkin_optracker_parse_description((const char *)data, size, &d);
    FUZZ_CHECK(n == 0 || n == 1 || n == -EBADMSG);
    if (n == 1)
        FUZZ_CHECK(memchr(d.object, '\0', sizeof(d.object)) != NULL);
    blkin_osd_parse_time((const char *)data, size, &ns);
    if (blkin_osd_op_parse((const char *)data, size, &d) == 0)
        FUZZ_CHECK(memchr(d.object, '\0', sizeof(d.object)) != NULL &&
                   d.kind <= BLKIN_OSD_KIND__MAX);
    return 0;
}
