/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The view (docs/hostd.md, "The view"): which requests on the metrics port
 * are the view's and what is refused (view-http.c); and an hour of a VM
 * with three busy disks, through the model's statistics into the view and
 * the page: the page's size, the columns adding up to the report.
 */
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hostd.h"
#include "vms/disk-record.h"
#include "serve/view-http.h"

#include "blkin-view.h"

static HostdViewRoute route(const char *head, HostdViewQuery *q)
{
    return hostd_view_http_route(head, strlen(head), q);
}

static void test_routes(void)
{
    HostdViewQuery q;

    g_assert_cmpint(route("GET / HTTP/1.1\r\nHost: 127.0.0.1:9477\r\n\r\n", &q),
                    ==, HOSTD_VIEW_ROUTE_PAGE);
    g_assert_cmpint(route("GET /view?vm=web1 HTTP/1.0\r\n\r\n", &q), ==,
                    HOSTD_VIEW_ROUTE_PAGE);
    g_assert_cmpint(route("GET /view.json?vm=web%2F1&disk=disk/0&window=1h "
                          "HTTP/1.1\r\nhost: [::1]:9477\r\n\r\n",
                          &q),
                    ==, HOSTD_VIEW_ROUTE_JSON);
    g_assert_true(q.has_vm && q.has_disk && q.has_window);
    g_assert_cmpstr(q.vm, ==, "web/1");
    g_assert_cmpstr(q.disk, ==, "disk/0");
    g_assert_cmpstr(q.window, ==, "1h");
    g_assert_cmpint(route("GET /view.json?vm=&window=1m HTTP/1.1\r\n"
                          "Host: localhost\r\n\r\n",
                          &q),
                    ==, HOSTD_VIEW_ROUTE_JSON);
    g_assert_false(q.has_vm);
    /* Not the view's: the metrics endpoint says 404. */
    g_assert_cmpint(route("GET /metricsx HTTP/1.1\r\n\r\n", &q), ==,
                    HOSTD_VIEW_ROUTE_NONE);
    g_assert_cmpint(route("GET /view.json/x HTTP/1.1\r\n\r\n", &q), ==,
                    HOSTD_VIEW_ROUTE_NONE);
    g_assert_cmpint(route("GET /view.jsonx HTTP/1.1\r\n\r\n", &q), ==,
                    HOSTD_VIEW_ROUTE_NONE);

    static const char *const bad[] = {
        "POST /view.json HTTP/1.1\r\n\r\n",
        "HEAD / HTTP/1.1\r\n\r\n",
        "GET /view.json?vm HTTP/1.1\r\n\r\n",
        "GET /view.json?vm=a&vm=b HTTP/1.1\r\n\r\n",
        "GET /view.json?window=1s HTTP/1.1\r\n\r\n",
        "GET /view.json?window=1hh HTTP/1.1\r\n\r\n",
        "GET /view.json?colour=red HTTP/1.1\r\n\r\n",
        "GET /view.json?vm=%zz HTTP/1.1\r\n\r\n",
        "GET /view.json?vm=%4 HTTP/1.1\r\n\r\n",
        "GET /view.json?vm=a%00b HTTP/1.1\r\n\r\n",
        "GET /view.json?vm=a%20b HTTP/1.1\r\n\r\n",
        "GET /view.json?vm=%C3%A9 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: evil.example.org\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1.nip.io:9477\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 256.0.0.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:123456\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: []\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhostx\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHOST: 127.0.0.1\r\n\r\n",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("%s", bad[i]);
        g_assert_cmpint(route(bad[i], &q), ==, HOSTD_VIEW_ROUTE_BAD);
        g_assert_nonnull(q.error);
    }
    /* A name of 255 bytes is fine, of 256 not. */
    {
        g_autofree char *ok = g_strdup_printf(
            "GET /view.json?vm=%s HTTP/1.1\r\n\r\n", g_strnfill(255, 'a'));
        g_autofree char *no = g_strdup_printf(
            "GET /view.json?vm=%s HTTP/1.1\r\n\r\n", g_strnfill(256, 'a'));

        g_assert_cmpint(route(ok, &q), ==, HOSTD_VIEW_ROUTE_JSON);
        g_assert_cmpint(route(no, &q), ==, HOSTD_VIEW_ROUTE_BAD);
    }
    /* Host headers after other headers, and nothing after the blank line
     * counts. */
    g_assert_cmpint(route("GET / HTTP/1.1\r\nAccept: */*\r\nHost: "
                          "10.1.2.3:80\r\n\r\nHost: evil.example\r\n",
                          &q),
                    ==, HOSTD_VIEW_ROUTE_PAGE);
}

static void test_page_escape(void)
{
    const char *json = "{\"vm\":\"</script><script>alert(1)</script>\"}";
    size_t len;
    char *page = blkin_view_page(json, strlen(json), &len);
    const char *data = strstr(page, "application/json\">");

    g_assert_nonnull(data);
    g_assert_cmpuint(len, ==, strlen(page));
    /* The data cannot end its element. */
    g_assert_true(g_str_has_prefix(data + 18, "{\"vm\":\"\\u003c/script>"));
    g_assert_true(strstr(page, "alert(1)") &&
                  !strstr(page, "<script>alert(1)"));
    free(page);
    page = blkin_view_page(NULL, 0, &len);
    g_assert_nonnull(strstr(page, "application/json\">null</script>"));
    g_assert_nonnull(strstr(page, "script-src 'sha256-"));
    free(page);
}

/* ---- an hour of a VM ---- */

static double lognormal(GRand *g, double median, double sigma)
{
    double u1 = g_rand_double_range(g, 1e-12, 1), u2 = g_rand_double(g);

    return median * exp(sigma * sqrt(-2 * log(u1)) * cos(2 * G_PI * u2));
}

static HostdJoinedRequest request(GRand *g, bool backend)
{
    static const struct {
        enum blkin_phase p;
        double median;
    } ph[] = {
        {BLKIN_PHASE_GUEST_QUEUE, 3e3},
        {BLKIN_PHASE_GUEST_TO_DEVICE, 25e3},
        {BLKIN_PHASE_DEVICE, 4e3},
        {BLKIN_PHASE_QEMU, 12e3},
        {BLKIN_PHASE_BACKEND, 180e3},
        {BLKIN_PHASE_DEVICE_COMPLETION, 8e3},
        {BLKIN_PHASE_DEVICE_TO_GUEST, 30e3},
    };
    HostdJoinedRequest r = {0};
    int k = g_rand_int_range(g, 0, 100);
    uint64_t total = 0;

    r.op = k < 60   ? BLKIN_OP_READ
           : k < 95 ? BLKIN_OP_WRITE
           : k < 98 ? BLKIN_OP_FLUSH
                    : BLKIN_OP_DISCARD;
    r.bytes = r.op == BLKIN_OP_FLUSH ? 0 : 4096u << g_rand_int_range(g, 0, 6);
    r.flags = HOSTD_JR_HAS_GUEST | HOSTD_JR_HAS_SPAN;
    for (size_t i = 0; i < G_N_ELEMENTS(ph); i++) {
        if (ph[i].p == BLKIN_PHASE_BACKEND && !backend)
            continue;
        r.phase_ns[ph[i].p] = (uint64_t)lognormal(g, ph[i].median, 0.7);
        r.phase_valid |= 1u << ph[i].p;
        total += r.phase_ns[ph[i].p];
    }
    r.phase_ns[BLKIN_PHASE_TOTAL] = total;
    r.phase_ns[BLKIN_PHASE_IN_QEMU] = total / 2;
    r.phase_valid |= 1u << BLKIN_PHASE_TOTAL | 1u << BLKIN_PHASE_IN_QEMU;
    r.clock_error_ns = 20000;
    return r;
}

static void test_hour_size(void)
{
    Hostd h = {0};
    GRand *g = g_rand_new_with_seed(21);
    g_autoptr(GPtrArray) specs = hostd_disk_specs_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) view = NULL;
    g_autofree char *json = NULL;
    const char *disks[] = {"vda=s-a=vm1/vda", "vdb=s-b=vm1/vdb",
                           "vdc=s-c=vm1/vdc"};
    HostdVm *vm;
    uint64_t t, end = 3700 * HOSTD_NS_PER_SEC;
    size_t len;
    char *page;

    h.model = hostd_model_new();
    h.model->offline = TRUE; /* statistics from time 0, read at the data */
    h.offline_dir = (char *)"(test)";
    for (size_t i = 0; i < G_N_ELEMENTS(disks); i++)
        g_ptr_array_add(specs, hostd_disk_spec_parse(disks[i], &err));
    vm = hostd_model_add_vm(h.model, "vm1", NULL, specs, &err);
    g_assert_no_error(err);
    /* 50 requests a second on each disk, every op every minute. */
    for (t = 0; t < end; t += 20 * 1000 * 1000) {
        for (guint i = 0; i < vm->disks->len; i++) {
            HostdDisk *d = g_ptr_array_index(vm->disks, i);
            HostdJoinedRequest r = request(g, i == 2);

            r.span_end_ns = t;
            r.guest_complete_ns = t;
            hostd_disk_record(d, &r, t);
        }
    }
    h.model->latest_ns = end;
    view = hostd_view(&h, "vm1", NULL, "1h", &err);
    g_assert_no_error(err);
    json = json_to_string(view, FALSE);
    page = blkin_view_page(json, strlen(json), &len);

    JsonObject *o = json_node_get_object(view);
    JsonArray *ds = json_object_get_array_member(o, "disks");
    g_assert_cmpuint(json_array_get_length(ds), ==, 3);
    for (guint i = 0; i < 3; i++) {
        JsonObject *d = json_array_get_object_element(ds, i);
        JsonArray *cols = json_object_get_array_member(d, "columns");
        JsonArray *ops = json_object_get_array_member(
            json_object_get_object_member(d, "report"), "ops");
        uint64_t cols_n[BLKIN_OP__N] = {0}, rep_n[BLKIN_OP__N] = {0};

        /* Whole minutes of the hour, then seconds of the minute. */
        g_assert_cmpuint(json_array_get_length(cols), >=, 60);
        g_assert_cmpuint(json_array_get_length(cols), <=, 65 + 60);
        for (guint c = 0; c < json_array_get_length(cols); c++) {
            JsonArray *cops = json_object_get_array_member(
                json_array_get_object_element(cols, c), "ops");

            for (guint k = 0; k < json_array_get_length(cops); k++) {
                JsonObject *co = json_array_get_object_element(cops, k);

                cols_n[blkin_op_from_name(json_object_get_string_member(
                    co, "op"))] += json_object_get_int_member(co, "count");
            }
        }
        for (guint k = 0; k < json_array_get_length(ops); k++) {
            JsonObject *ro = json_array_get_object_element(ops, k);

            rep_n[blkin_op_from_name(json_object_get_string_member(ro, "op"))] =
                json_object_get_int_member(ro, "count");
        }
        g_assert_cmpmem(cols_n, sizeof(cols_n), rep_n, sizeof(rep_n));
        g_assert_cmpuint(rep_n[BLKIN_OP_DISCARD], >, 0);
    }
    g_test_message("an hour of 3 disks at 50 IOPS, 4 ops: view %zu bytes, "
                   "page %zu bytes",
                   strlen(json), len);
    /* "At most a few hundred KB for an hour of one VM's data." */
    g_assert_cmpuint(len, <, 400 * 1024);
    free(page);
    hostd_model_free(h.model);
    g_rand_free(g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/view/routes", test_routes);
    g_test_add_func("/view/page-escape", test_page_escape);
    g_test_add_func("/view/hour-size", test_hour_size);
    return g_test_run();
}
