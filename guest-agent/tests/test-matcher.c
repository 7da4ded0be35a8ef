/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host-run unit tests of the agent's pure parts: the rwbs parser, tracefs
 * format parsing, sample decoding and the issue/complete matcher.
 */
#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "blk-events.h"
#include "matcher.h"
#include "tracefs.h"

static void test_rwbs(void)
{
    static const struct {
        const char *s;
        uint8_t op, flags;
    } cases[] = {
        {"R", BLKIN_OP_READ, 0},
        {"RA", BLKIN_OP_READ, BLKIN_REQ_RAHEAD},
        {"WS", BLKIN_OP_WRITE, BLKIN_REQ_SYNC},
        {"FWFS", BLKIN_OP_WRITE,
         BLKIN_REQ_PREFLUSH | BLKIN_REQ_FUA | BLKIN_REQ_SYNC},
        {"WFSM", BLKIN_OP_WRITE,
         BLKIN_REQ_FUA | BLKIN_REQ_SYNC | BLKIN_REQ_META},
        {"F", BLKIN_OP_FLUSH, 0},
        {"FS", BLKIN_OP_FLUSH, BLKIN_REQ_SYNC},
        {"FF", BLKIN_OP_FLUSH, BLKIN_REQ_PREFLUSH},
        {"D", BLKIN_OP_DISCARD, 0},
        {"DE", BLKIN_OP_DISCARD, 0},
        {"Z", BLKIN_OP_WRITE_ZEROES, 0},
        {"N", BLKIN_OP_OTHER, 0},
        {"", BLKIN_OP_OTHER, 0},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint8_t op, flags;
        char buf[8] = {0};

        memcpy(buf, cases[i].s, strlen(cases[i].s));
        blk_parse_rwbs(buf, sizeof(buf), &op, &flags);
        g_assert_cmpuint(op, ==, cases[i].op);
        g_assert_cmpuint(flags, ==, cases[i].flags);
    }
    /* Not NUL-terminated within its field: bounded by the field size. */
    uint8_t op, flags;
    blk_parse_rwbs("WSSSSSSSSSSS", 2, &op, &flags);
    g_assert_cmpuint(op, ==, BLKIN_OP_WRITE);
}

/* Linux 6.1's block_rq_issue format, abridged. */
static const char issue_fmt[] =
    "name: block_rq_issue\nID: 1190\nformat:\n"
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n"
    "\tfield:dev_t dev;\toffset:8;\tsize:4;\tsigned:0;\n"
    "\tfield:sector_t sector;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:unsigned int nr_sector;\toffset:24;\tsize:4;\tsigned:0;\n"
    "\tfield:unsigned int bytes;\toffset:28;\tsize:4;\tsigned:0;\n"
    "\tfield:char rwbs[8];\toffset:32;\tsize:8;\tsigned:1;\n"
    "\tfield:char comm[16];\toffset:40;\tsize:16;\tsigned:1;\n"
    "\tfield:__data_loc char[] cmd;\toffset:56;\tsize:4;\tsigned:1;\n\n"
    "print fmt: \"%d,%d %s\"\n";

static const char complete_fmt[] =
    "name: block_rq_complete\nID: 1192\nformat:\n"
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:dev_t dev;\toffset:8;\tsize:4;\tsigned:0;\n"
    "\tfield:sector_t sector;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:unsigned int nr_sector;\toffset:24;\tsize:4;\tsigned:0;\n"
    "\tfield:int error;\toffset:28;\tsize:4;\tsigned:1;\n"
    "\tfield:char rwbs[8];\toffset:32;\tsize:8;\tsigned:1;\n";

static void put_event(const char *root, const char *name, const char *id,
                      const char *fmt)
{
    g_autofree char *dir =
        g_build_filename(root, "events", "block", name, NULL);
    g_autofree char *idp = g_build_filename(dir, "id", NULL);
    g_autofree char *fp = g_build_filename(dir, "format", NULL);

    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    g_assert_true(g_file_set_contents(idp, id, -1, NULL));
    g_assert_true(g_file_set_contents(fp, fmt, -1, NULL));
}

static void test_formats_and_decode(void)
{
    g_autofree char *root = g_dir_make_tmp("blkin-tracefs-XXXXXX", NULL);
    struct blk_decoder d;
    struct blk_event e;
    uint8_t raw[64] = {0};
    uint16_t type = 1190;
    uint32_t dev = (254u << 20) | 16, bytes = 8192;
    uint64_t sector = 4096;
    int32_t err = -5;

    put_event(root, "block_rq_issue", "1190\n", issue_fmt);
    /* Without a complete event the decoder refuses to start. */
    g_assert_cmpint(blk_decoder_init(&d, root), <, 0);
    put_event(root, "block_rq_complete", "1192\n", complete_fmt);
    g_assert_cmpint(blk_decoder_init(&d, root), ==, 0);
    g_assert_true(d.have[BLK_EV_ISSUE] && d.have[BLK_EV_COMPLETE]);
    g_assert_false(d.have[BLK_EV_INSERT]);
    g_assert_cmpuint(d.fmt[BLK_EV_ISSUE].rwbs.offset, ==, 32);
    g_assert_cmpuint(d.fmt[BLK_EV_ISSUE].bytes.offset, ==, 28);
    g_assert_false(d.fmt[BLK_EV_COMPLETE].bytes.present);

    memcpy(raw, &type, 2);
    memcpy(raw + 8, &dev, 4);
    memcpy(raw + 16, &sector, 8);
    memcpy(raw + 28, &bytes, 4);
    memcpy(raw + 32, "WS", 2);
    g_assert_true(blk_decode(&d, 77, raw, 60, &e));
    g_assert_cmpuint(e.kind, ==, BLK_EV_ISSUE);
    g_assert_cmpuint(blk_dev_major(e.dev), ==, 254);
    g_assert_cmpuint(blk_dev_minor(e.dev), ==, 16);
    g_assert_cmpuint(e.sector, ==, 4096);
    g_assert_cmpuint(e.bytes, ==, 8192);
    g_assert_cmpuint(e.op, ==, BLKIN_OP_WRITE);
    /* Truncated payloads and unknown ids are refused. */
    g_assert_false(blk_decode(&d, 77, raw, 20, &e));
    type = 999;
    memcpy(raw, &type, 2);
    g_assert_false(blk_decode(&d, 77, raw, 60, &e));

    /* Completion: error from its own field, bytes from nr_sector, and a
     * position of -1 (no sector) read as 0. */
    type = 1192;
    sector = UINT64_MAX;
    memcpy(raw, &type, 2);
    memcpy(raw + 16, &sector, 8);
    memcpy(raw + 24, &(uint32_t){16}, 4);
    memcpy(raw + 28, &err, 4);
    g_assert_true(blk_decode(&d, 78, raw, 40, &e));
    g_assert_cmpuint(e.kind, ==, BLK_EV_COMPLETE);
    g_assert_cmpint(e.error, ==, -5);
    g_assert_cmpuint(e.bytes, ==, 16 * 512);
    g_assert_cmpuint(e.sector, ==, 0);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", root);
    g_assert_cmpint(system(cmd), ==, 0);
}

/* ---- matcher ------------------------------------------------------------ */

static GArray *out;

static void collect_cb(void *user, const struct blkin_request *r)
{
    g_array_append_val(out, *r);
}

static struct blk_event ev(uint8_t kind, uint64_t t, uint64_t sector,
                           uint8_t op)
{
    return (struct blk_event){.time = t,
                              .sector = sector,
                              .dev = (254u << 20),
                              .bytes = 4096,
                              .kind = kind,
                              .op = op};
}

static void feed(struct matcher *m, struct blk_event e)
{
    matcher_event(m, &e, collect_cb, NULL);
}

static void test_matcher(void)
{
    struct matcher m;

    out = g_array_new(FALSE, FALSE, sizeof(struct blkin_request));
    g_assert_cmpint(matcher_init(&m, 64), ==, 0);

    /* Completions out of issue order pair by sector. */
    feed(&m, ev(BLK_EV_INSERT, 5, 8, BLKIN_OP_READ));
    feed(&m, ev(BLK_EV_ISSUE, 10, 8, BLKIN_OP_READ));
    feed(&m, ev(BLK_EV_ISSUE, 11, 16, BLKIN_OP_WRITE));
    feed(&m, ev(BLK_EV_COMPLETE, 20, 16, BLKIN_OP_WRITE));
    feed(&m, ev(BLK_EV_COMPLETE, 30, 8, BLKIN_OP_READ));
    g_assert_cmpuint(out->len, ==, 2);
    struct blkin_request *r = &g_array_index(out, struct blkin_request, 0);
    g_assert_cmpuint(r->sector, ==, 16);
    g_assert_cmpuint(r->issue_ns, ==, 11);
    g_assert_cmpuint(r->complete_ns, ==, 20);
    g_assert_cmpuint(r->queue_ns, ==, 0);
    r = &g_array_index(out, struct blkin_request, 1);
    g_assert_cmpuint(r->sector, ==, 8);
    g_assert_cmpuint(r->queue_ns, ==, 5);
    g_assert_cmpuint(r->issue_ns, ==, 10);
    g_assert_cmpuint(r->major, ==, 254);

    /* Same sector twice in flight: first in, first out; a flush at
     * sector 0 does not steal a write's completion at sector 0. */
    g_array_set_size(out, 0);
    feed(&m, ev(BLK_EV_ISSUE, 40, 0, BLKIN_OP_FLUSH));
    feed(&m, ev(BLK_EV_ISSUE, 41, 0, BLKIN_OP_WRITE));
    feed(&m, ev(BLK_EV_ISSUE, 42, 0, BLKIN_OP_WRITE));
    feed(&m, ev(BLK_EV_COMPLETE, 50, 0, BLKIN_OP_WRITE));
    feed(&m, ev(BLK_EV_COMPLETE, 51, 0, BLKIN_OP_FLUSH));
    feed(&m, ev(BLK_EV_COMPLETE, 52, 0, BLKIN_OP_WRITE));
    g_assert_cmpuint(out->len, ==, 3);
    g_assert_cmpuint(g_array_index(out, struct blkin_request, 0).issue_ns, ==,
                     41);
    g_assert_cmpuint(g_array_index(out, struct blkin_request, 1).op, ==,
                     BLKIN_OP_FLUSH);
    g_assert_cmpuint(g_array_index(out, struct blkin_request, 2).issue_ns, ==,
                     42);

    /* A completion seen before its issue (other CPU's ring drained
     * later) is parked and matched on a retry. */
    g_array_set_size(out, 0);
    feed(&m, ev(BLK_EV_COMPLETE, 70, 100, BLKIN_OP_READ));
    matcher_retry_orphans(&m, collect_cb, NULL);
    g_assert_cmpuint(out->len, ==, 0);
    feed(&m, ev(BLK_EV_ISSUE, 60, 100, BLKIN_OP_READ));
    matcher_retry_orphans(&m, collect_cb, NULL);
    g_assert_cmpuint(out->len, ==, 1);
    g_assert_cmpuint(g_array_index(out, struct blkin_request, 0).complete_ns,
                     ==, 70);

    /* Never issued: unmatched after the retries, except empty flushes and
     * an fdatasync's zero-byte write (the flush machinery's carriers). */
    feed(&m, ev(BLK_EV_COMPLETE, 80, 200, BLKIN_OP_READ));
    feed(&m, ev(BLK_EV_COMPLETE, 80, 0, BLKIN_OP_FLUSH));
    {
        struct blk_event carrier = ev(BLK_EV_COMPLETE, 81, 0, BLKIN_OP_WRITE);

        carrier.bytes = 0;
        feed(&m, carrier);
    }
    for (int i = 0; i < 4; i++)
        matcher_retry_orphans(&m, collect_cb, NULL);
    g_assert_cmpuint(m.unmatched, ==, 1);

    /* Requeue: the issue is forgotten until the request issues again. */
    g_array_set_size(out, 0);
    feed(&m, ev(BLK_EV_ISSUE, 90, 300, BLKIN_OP_WRITE));
    feed(&m, ev(BLK_EV_REQUEUE, 91, 300, BLKIN_OP_WRITE));
    feed(&m, ev(BLK_EV_ISSUE, 95, 300, BLKIN_OP_WRITE));
    feed(&m, ev(BLK_EV_COMPLETE, 99, 300, BLKIN_OP_WRITE));
    g_assert_cmpuint(out->len, ==, 1);
    g_assert_cmpuint(g_array_index(out, struct blkin_request, 0).issue_ns, ==,
                     95);
    g_assert_cmpuint(m.used, ==, 0);

    /* A full table evicts the oldest issued request and counts it;
     * stale entries are swept. */
    for (uint64_t i = 0; i < 70; i++)
        feed(&m, ev(BLK_EV_ISSUE, 1000 + i, 1000 + 8 * i, BLKIN_OP_READ));
    g_assert_cmpuint(m.evicted, ==, 6);
    g_assert_cmpuint(m.used, ==, 64);
    matcher_sweep(&m, 1000000, 1000);
    g_assert_cmpuint(m.used, ==, 0);
    g_assert_cmpuint(m.evicted, ==, 70);

    matcher_free(&m);
    matcher_free(NULL);
    g_array_free(out, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/agent/rwbs", test_rwbs);
    g_test_add_func("/agent/formats-and-decode", test_formats_and_decode);
    g_test_add_func("/agent/matcher", test_matcher);
    return g_test_run();
}
