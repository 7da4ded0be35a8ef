/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-optracker.c: the op-tracker parser on answers recorded from a real
 * Ceph 16 OSD (tests/fuzz/corpus/optracker), on every truncation of one and
 * on hand-made breakage; the description and time stamp readers; the
 * collector's wire line both ways. Built with ASan/UBSan, so a read out of
 * bounds fails instead of passing by luck.
 */
#include <glib.h>
#include <string.h>

#include "blkin-osd-op.h"
#include "keyset.h"
#include "optracker.h"

typedef struct Got {
    GArray *ops; /* blkin_osd_op */
    BlkinKeySet seen;
    gboolean dedup;
} Got;

static bool seen_cb(void *opaque, uint64_t key)
{
    Got *g = opaque;

    return g->dedup && blkin_keyset_has(&g->seen, key);
}

static void op_cb(void *opaque, const blkin_osd_op *op, uint64_t key)
{
    Got *g = opaque;

    blkin_keyset_add(&g->seen, key);
    g_array_append_val(g->ops, *op);
}

static char *corpus(const char *name, gsize *len)
{
    g_autofree char *path = g_build_filename(CORPUS, name, NULL);
    char *data = NULL;

    g_assert_true(g_file_get_contents(path, &data, len, NULL));
    return data;
}

static const blkin_osd_op *find(GArray *ops, const char *needle_obj,
                                unsigned kind)
{
    for (guint i = 0; i < ops->len; i++) {
        const blkin_osd_op *o = &g_array_index(ops, blkin_osd_op, i);

        if (o->kind == kind && strstr(o->object, needle_obj))
            return o;
    }
    return NULL;
}

static void test_recorded(gconstpointer file)
{
    gsize len;
    g_autofree char *json = corpus(file, &len);
    Got g = {.ops = g_array_new(FALSE, FALSE, sizeof(blkin_osd_op))};
    blkin_optracker_cb cb = {seen_cb, op_cb, &g};
    blkin_optracker_result res;
    const blkin_osd_op *o;
    int n = blkin_optracker_parse(json, len, 7, &cb, &res);

    g_assert_cmpint(n, >, 5);
    g_assert_cmpuint(res.ops, ==, res.client_ops);
    g_assert_cmpuint(res.unreadable, ==, 0);
    g_assert_cmpuint(res.new_ops, ==, (guint64)n);
    g_assert_cmpint(res.history_size, >=, 0);
    for (guint i = 0; i < g.ops->len; i++) {
        o = &g_array_index(g.ops, blkin_osd_op, i);
        g_assert_cmpuint(o->osd, ==, 7);
        g_assert_cmpuint(o->gid, >, 4000);
        g_assert_cmpint(o->stamp[BLKIN_OSD_INITIATED], >,
                        1700000000LL * 1000000000LL);
        g_assert_cmpint(o->stamp[BLKIN_OSD_DONE], >=,
                        o->stamp[BLKIN_OSD_INITIATED]);
        g_assert_true(o->object[0]);
        /* Writes commit; what commits was started first. */
        if (o->stamp[BLKIN_OSD_COMMIT])
            g_assert_cmpint(o->stamp[BLKIN_OSD_COMMIT], >=,
                            o->stamp[BLKIN_OSD_STARTED]);
    }
    if (strcmp(file, "historic-compact") == 0) {
        o = find(g.ops, "rbd_data.", BLKIN_OSD_KIND_ZERO);
        g_assert_nonnull(o);
        g_assert_true(g_str_has_prefix(o->object, "rbd_data."));
        o = find(g.ops, "rbd_data.", BLKIN_OSD_KIND_WRITE);
        g_assert_nonnull(o);
        g_assert_cmpint(o->stamp[BLKIN_OSD_COMMIT], >, 0);
        g_assert_cmpint(o->stamp[BLKIN_OSD_SENT], >=,
                        o->stamp[BLKIN_OSD_COMMIT]);
        o = find(g.ops, "rbd_data.", BLKIN_OSD_KIND_READ);
        g_assert_nonnull(o);
        g_assert_cmpint(o->length, >, 0);
        g_assert_cmpint(o->stamp[BLKIN_OSD_COMMIT], ==, 0);
        o = find(g.ops, "rbd_id.", BLKIN_OSD_KIND_ZERO); /* [delete] */
        g_assert_nonnull(o);
        g_assert_cmpuint(o->offset, ==, 0);
        g_assert_cmpuint(o->length, ==, BLKIN_OSD_TO_END);
        g_assert_nonnull(find(g.ops, "rbd_header.", BLKIN_OSD_KIND_OTHER));
    }

    /* The same answer again: every op was seen. */
    g.dedup = TRUE;
    g_array_set_size(g.ops, 0);
    n = blkin_optracker_parse(json, len, 7, &cb, &res);
    g_assert_cmpint(n, ==, 0);
    g_assert_cmpuint(g.ops->len, ==, 0);
    g_assert_cmpuint(res.client_ops, >, 5);
    blkin_keyset_destroy(&g.seen);
    g_array_unref(g.ops);
}

/* Every prefix of a real answer: an error (or, at the very end, the
 * answer), never a crash; ops before the cut may be given. */
static void test_truncated(void)
{
    gsize len;
    g_autofree char *json = corpus("historic-pretty", &len);
    blkin_optracker_result res;

    for (gsize cut = 0; cut < len - 1; cut++) {
        g_autofree char *copy = g_memdup2(json, cut); /* no NUL: exact */
        int n = blkin_optracker_parse(copy, cut, 0, NULL, &res);

        if (n >= 0)
            g_assert_cmpuint(cut, >=, len - 2); /* only the trailing newline */
        else
            g_assert_nonnull(res.error);
    }
}

static void expect_error(const char *json, const char *why)
{
    blkin_optracker_result res;
    int n = blkin_optracker_parse(json, strlen(json), 0, NULL, &res);

    if (n >= 0)
        g_error("accepted: %s", json);
    g_assert_nonnull(res.error);
    if (why && !strstr(res.error, why))
        g_error("for %s: error '%s', wanted '%s'", json, res.error, why);
}

static void test_garbage(void)
{
    g_autoptr(GString) deep = g_string_new("{\"ops\":");
    blkin_optracker_result res;

    expect_error("", NULL);
    expect_error("HTTP/1.1 200 OK\r\n", NULL);
    expect_error("{\"size\":20}", "no \"ops\"");
    expect_error("{\"ops\":{}}", "expected '['");
    expect_error("{\"ops\":[1,2]}", "expected '{'");
    expect_error("{\"ops\":[]} trailing", "data after");
    expect_error("{\"ops\":[{\"description\":\"osd_op(client.1.0:1\\x\"}]}",
                 "bad escape");
    expect_error("{\"ops\":[{\"description\":\"unterminated}]}",
                 "unterminated");
    for (int i = 0; i < 100; i++)
        g_string_append_c(deep, '[');
    expect_error(deep->str, NULL);
    g_string_assign(deep, "{\"x\":");
    for (int i = 0; i < 100; i++)
        g_string_append_c(deep, '[');
    expect_error(deep->str, "nested too deep");

    /* Well-formed but not the tracker's: skipped, counted, no crash. */
    g_assert_cmpint(
        blkin_optracker_parse("{\"ops\":[{\"description\":\"osd_op(client.x)\","
                              "\"initiated_at\":\"2026-12-06T21:25:54.004448+"
                              "0000\"},{\"description\":42},{}],\"size\":-3}",
                              strlen("{\"ops\":[{\"description\":\"osd_op("
                                     "client.x)\",\"initiated_at\":\"2026-12-"
                                     "06T21:25:54.004448+0000\"},{"
                                     "\"description\":42},{}],\"size\":-3}"),
                              0, NULL, &res),
        <, 0); /* "description": 42 is no string */
    const char *ok = "{\"ops\":[{\"description\":\"osd_op(client.x)\","
                     "\"initiated_at\":\"2026-12-06T21:25:54.004448+0000\"},"
                     "{\"description\":\"osd_repop(client.1.0:2 1.0 e5/6)\"},"
                     "{}],\"num_ops\":3}";
    g_assert_cmpint(blkin_optracker_parse(ok, strlen(ok), 0, NULL, &res), ==,
                    0);
    g_assert_cmpuint(res.ops, ==, 3);
    g_assert_cmpuint(res.client_ops, ==, 1);
    g_assert_cmpuint(res.unreadable, ==, 1);
    g_assert_cmpint(res.history_size, ==, 3);
}

static void test_description(void)
{
    blkin_osd_op op;
    const char *d;

    memset(&op, 0, sizeof(op));
    d = "osd_op(client.4141.0:50 1.3 1:daf7e5cb:::rbd_data.1029989306d5."
        "000000000000003c:head [set-alloc-hint object_size 4194304 write_size "
        "4194304,write 8192~4096 [fadvise_sequential]] snapc 0=[] "
        "ondisk+write+known_if_redirected e9)";
    g_assert_cmpint(blkin_optracker_parse_description(d, strlen(d), &op), ==,
                    1);
    g_assert_cmpuint(op.gid, ==, 4141);
    g_assert_cmpuint(op.inc, ==, 0);
    g_assert_cmpuint(op.tid, ==, 50);
    g_assert_cmpstr(op.object, ==, "rbd_data.1029989306d5.000000000000003c");
    g_assert_cmpuint(op.kind, ==, BLKIN_OSD_KIND_WRITE);
    g_assert_cmpuint(op.offset, ==, 8192);
    g_assert_cmpuint(op.length, ==, 4096);

    /* Two writes: the union. A namespace and escapes in the name. */
    d = "osd_op(client.9.3:7 2.1 2:abc:ns1::we%cird%pname:head [write "
        "0~4096,write 16384~512] snapc 0=[] ondisk+write e3)";
    g_assert_cmpint(blkin_optracker_parse_description(d, strlen(d), &op), ==,
                    1);
    g_assert_cmpuint(op.inc, ==, 3);
    g_assert_cmpstr(op.object, ==, "we:ird%name");
    g_assert_cmpuint(op.offset, ==, 0);
    g_assert_cmpuint(op.length, ==, 16896);

    d = "osd_op(client.9.0:8 2.1 2:abc:::obj:head [truncate 1000] snapc 0=[] "
        "ondisk+write e3)";
    g_assert_cmpint(blkin_optracker_parse_description(d, strlen(d), &op), ==,
                    1);
    g_assert_cmpuint(op.kind, ==, BLKIN_OSD_KIND_ZERO);
    g_assert_cmpuint(op.offset, ==, 1000);
    g_assert_cmpuint(op.length, ==, BLKIN_OSD_TO_END);

    d = "osd_op(client.9.0:9 2.1 2:abc:::obj:head [call rbd.get_size in=11b,"
        "call] snapc 0=[] ondisk+read e3)";
    g_assert_cmpint(blkin_optracker_parse_description(d, strlen(d), &op), ==,
                    1);
    g_assert_cmpuint(op.kind, ==, BLKIN_OSD_KIND_OTHER);

    /* Not a client op; client ops that cannot be read. */
    d = "osd_repop(client.9.0:10 2.1 e3/2 2:abc:::obj:head v 3'1)";
    g_assert_cmpint(blkin_optracker_parse_description(d, strlen(d), &op), ==,
                    0);
    for (const char *const *bad =
             (const char *const[]){
                 "osd_op(client.",
                 "osd_op(client.9.0:", "osd_op(client.9.0:1 2.1",
                 "osd_op(client.9.0:1 2.1 2:abc [write 0~1]",
                 "osd_op(client.9.0:1 2.1 2:abc:::obj:head [write 0~1",
                 "osd_op(client.99999999999999999999.0:1 2.1 2:a:::o:head "
                 "[stat])",
                 "osd_op(client.9.0:1 2.1 2:abc:::%zz:head [stat])", NULL};
         *bad; bad++)
        g_assert_cmpint(
            blkin_optracker_parse_description(*bad, strlen(*bad), &op), ==,
            -EBADMSG);
}

static void test_time(void)
{
    int64_t ns;
    static const char *const bad[] = {
        "2026-13-01T00:00:00+0000",
        "2026-02-30T00:00:00+0000",
        "2026-12-06T21:25:54.+0000",
        "2026-12-06T21:25:54.0123456789+0000",
        "2026-12-06T21:25:54.004448+00",
        "2026-12-06",
        "",
        "x",
        "2026-12-06T21:25:54.004448+0000x",
        /* found by fuzz-optracker: ns past 2262 overflow 64 bits */
        "9999-12-31T23:59:59+0000",
        "1969-12-31T23:59:59+0000",
    };

    g_assert_cmpint(
        blkin_osd_parse_time("1970-01-01T00:00:00.000001+0000", 31, &ns), ==,
        0);
    g_assert_cmpint(ns, ==, 1000);
    g_assert_cmpint(
        blkin_osd_parse_time("2026-12-06T21:25:54.004448+0000", 31, &ns), ==,
        0);
    /* date -u -d 2026-12-06T21:25:54 +%s */
    g_assert_cmpint(ns, ==, 1796592354LL * 1000000000LL + 4448000);
    g_assert_cmpint(
        blkin_osd_parse_time("2026-12-06 22:25:54.004448+0100", 31, &ns), ==,
        0);
    g_assert_cmpint(ns, ==, 1796592354LL * 1000000000LL + 4448000);
    g_assert_cmpint(blkin_osd_parse_time("2024-02-29T00:00:00Z", 20, &ns), ==,
                    0);
    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++)
        g_assert_cmpint(blkin_osd_parse_time(bad[i], strlen(bad[i]), &ns), ==,
                        -EBADMSG);
}

static void test_wire(void)
{
    blkin_osd_op a = {.osd = 3,
                      .gid = 4141,
                      .inc = 0,
                      .tid = 50,
                      .kind = BLKIN_OSD_KIND_WRITE,
                      .offset = 8192,
                      .length = BLKIN_OSD_TO_END};
    blkin_osd_op b;
    char line[1024];
    int n;

    for (int i = 0; i < BLKIN_OSD_STAMP__N; i++)
        a.stamp[i] = 1796592354000000000LL + i * 1000;
    strcpy(a.object, "odd name%with\tspaces");
    n = blkin_osd_op_format(&a, line, sizeof(line));
    g_assert_cmpint(n, >, 0);
    g_assert_null(strchr(line, '\t'));
    g_assert_cmpint(blkin_osd_op_parse(line, (size_t)n, &b), ==, 0);
    g_assert_cmpuint(b.gid, ==, a.gid);
    g_assert_cmpuint(b.length, ==, a.length);
    g_assert_cmpmem(b.stamp, sizeof(b.stamp), a.stamp, sizeof(a.stamp));
    g_assert_cmpstr(b.object, ==, a.object);
    g_assert_cmpint(blkin_osd_op_format(&a, line, 20), ==, -ENOBUFS);
    for (const char *const *bad =
             (const char *const[]){"", "op", "op 1 2 3 4 1 0 0 0 0 0 0 0 0 0",
                                   "op 1 2 3 4 9 0 0 0 0 0 0 0 0 0 obj",
                                   "op 1 2 3 4 1 0 0 0 0 0 0 0 0 x obj",
                                   "op 1 2 3 4 1 0 0 0 0 0 0 0 0 0 a%0",
                                   "op 1 2 3 4 1 0 0 0 0 0 0 0 0 0 a%00b",
                                   "op 1 2 3 4 1 0 0 0 0 0 0 0 0 0 a b", NULL};
         *bad; bad++)
        g_assert_cmpint(blkin_osd_op_parse(*bad, strlen(*bad), &b), ==,
                        -EBADMSG);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/optracker/recorded-compact", "historic-compact",
                         test_recorded);
    g_test_add_data_func("/optracker/recorded-pretty", "historic-pretty",
                         test_recorded);
    g_test_add_func("/optracker/truncated", test_truncated);
    g_test_add_func("/optracker/garbage", test_garbage);
    g_test_add_func("/optracker/description", test_description);
    g_test_add_func("/optracker/time", test_time);
    g_test_add_func("/optracker/wire", test_wire);
    return g_test_run();
}
