/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ceph-feed.c: one blkin-ceph-collector's lines into hostd (ceph-feed.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-ingest"

#include "ceph-feed.h"

#include <gio/gio.h>
#include <string.h>

#define LINE_MAX_BYTES 4096
#define RETRY_MS       1000

struct HostdCephFeed {
    unsigned index;
    char *addr;
    HostdCephSink sink;
    void *opaque;
    GSocketClient *client;
    GCancellable *cancel;
    GSocketConnection *conn;
    GSocket *sock;
    GSource *in_src;
    guint retry_id;
    GString *in;
    GString *out;
    GHashTable *watched; /* gid (guint64 *) -> addr */
    char boot_id[64];
    char *host;
    bool same_host;
    bool connected;
    bool logged_down; /* one line per outage */
    uint64_t connects, lines, ops, bad_lines, dropped;
    char *last_error;
    GArray *osds; /* HostdCephOsd */
};

static void schedule_connect(HostdCephFeed *f);

static void read_boot_id(HostdCephFeed *f)
{
    g_autofree char *s = NULL;

    if (g_file_get_contents("/proc/sys/kernel/random/boot_id", &s, NULL, NULL))
        g_strlcpy(f->boot_id, g_strstrip(s), sizeof(f->boot_id));
}

static HostdCephFeed *feed_alloc(unsigned index, const char *addr,
                                 const HostdCephSink *sink, void *opaque)
{
    HostdCephFeed *f = g_new0(HostdCephFeed, 1);

    f->index = index;
    f->addr = g_strdup(addr);
    f->sink = *sink;
    f->opaque = opaque;
    f->in = g_string_new(NULL);
    f->out = g_string_new(NULL);
    f->watched =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    f->osds = g_array_new(FALSE, TRUE, sizeof(HostdCephOsd));
    read_boot_id(f);
    return f;
}

static void set_error(HostdCephFeed *f, const char *msg)
{
    g_free(f->last_error);
    f->last_error = g_strdup(msg);
}

static void disconnect(HostdCephFeed *f, const char *why)
{
    bool was = f->connected;

    if (f->in_src) {
        g_source_destroy(f->in_src);
        g_clear_pointer(&f->in_src, g_source_unref);
    }
    if (f->conn) {
        g_io_stream_close(G_IO_STREAM(f->conn), NULL, NULL);
        g_clear_object(&f->conn);
    }
    f->sock = NULL;
    f->connected = false;
    g_string_truncate(f->in, 0);
    g_string_truncate(f->out, 0);
    if (why)
        set_error(f, why);
    if (was) {
        g_warning("ceph collector %s: %s; reconnecting every second", f->addr,
                  why ? why : "connection closed");
        f->logged_down = true;
        if (f->sink.connected)
            f->sink.connected(f->opaque, f->index, false);
    }
}

static void flush_out(HostdCephFeed *f)
{
    while (f->sock && f->out->len) {
        GError *err = NULL;
        gssize n = g_socket_send(f->sock, f->out->str, f->out->len, NULL, &err);

        if (n < 0) {
            gboolean again =
                g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);

            if (!again)
                disconnect(f, err->message);
            g_error_free(err);
            return; /* a few short lines: the next one retries */
        }
        g_string_erase(f->out, 0, n);
    }
}

static void send_watch(HostdCephFeed *f, uint64_t gid, const char *addr)
{
    g_string_append_printf(f->out, "watch %" G_GUINT64_FORMAT " %s\n", gid,
                           addr);
}

static void tell_unreadable(HostdCephFeed *f)
{
    unsigned n = 0;

    for (guint i = 0; i < f->osds->len; i++)
        n += !g_array_index(f->osds, HostdCephOsd, i).up;
    if (f->sink.unreadable)
        f->sink.unreadable(f->opaque, f->index, n);
}

static HostdCephOsd *osd_of(HostdCephFeed *f, uint32_t id)
{
    HostdCephOsd o = {.id = id, .up = false};

    for (guint i = 0; i < f->osds->len; i++)
        if (g_array_index(f->osds, HostdCephOsd, i).id == id)
            return &g_array_index(f->osds, HostdCephOsd, i);
    if (f->osds->len >= 4096)
        return NULL; /* more OSDs than one host has: not believed */
    g_array_append_val(f->osds, o);
    return &g_array_index(f->osds, HostdCephOsd, f->osds->len - 1);
}

static gboolean parse_i64(const char *s, int64_t *v)
{
    gint64 x;

    if (!g_ascii_string_to_signed(s, 10, G_MININT64, G_MAXINT64, &x, NULL))
        return FALSE;
    *v = x;
    return TRUE;
}

gboolean hostd_ceph_feed_line(HostdCephFeed *f, const char *line, gsize len)
{
    g_autofree char *copy = NULL;
    g_auto(GStrv) w = NULL;
    guint n;
    int64_t a, b;
    guint64 id;

    f->lines++;
    if (len >= 3 && memcmp(line, "op ", 3) == 0) {
        blkin_osd_op op;

        if (blkin_osd_op_parse(line, len, &op) < 0)
            goto bad;
        f->ops++;
        if (f->sink.op)
            f->sink.op(f->opaque, f->index, &op);
        return TRUE;
    }
    if (memchr(line, '\0', len))
        goto bad;
    copy = g_strndup(line, len);
    w = g_strsplit(copy, " ", 5);
    n = g_strv_length(w);
    if (n >= 5 && !strcmp(w[0], "hello") &&
        !strcmp(w[1], "blkin-ceph-collector") && !strcmp(w[2], "1")) {
        g_auto(GStrv) hb = g_strsplit(w[4], " ", 2);

        g_free(f->host);
        f->host = g_strdup(w[3]);
        f->same_host = f->boot_id[0] && hb[0] && !strcmp(hb[0], f->boot_id);
        return TRUE;
    }
    if (n == 3 && !strcmp(w[0], "clock") && parse_i64(w[1], &a) &&
        parse_i64(w[2], &b) && b >= 0) {
        if (f->sink.clock)
            f->sink.clock(f->opaque, f->index, a, b, f->same_host);
        return TRUE;
    }
    if (n == 2 && !strcmp(w[0], "progress") && parse_i64(w[1], &a)) {
        if (f->sink.progress)
            f->sink.progress(f->opaque, f->index, a);
        return TRUE;
    }
    if (n >= 4 && !strcmp(w[0], "osd") &&
        g_ascii_string_to_unsigned(w[1], 10, 0, G_MAXUINT32, &id, NULL) &&
        (!strcmp(w[2], "up") || !strcmp(w[2], "down")) && parse_i64(w[3], &a)) {
        HostdCephOsd *o = osd_of(f, (uint32_t)id);
        bool up = !strcmp(w[2], "up");

        if (!o)
            goto bad;
        if (!up && o->up) {
            o->outages++;
            o->since_ns = a;
            /* Ops of the outage cannot be read: a gap until it is back. */
            if (f->sink.gap)
                f->sink.gap(f->opaque, f->index, o->id, a, INT64_MAX);
        } else if (up && !o->up) {
            /* An OSD that never answered had no ops read to miss. */
            if (o->was_up && f->sink.gap)
                f->sink.gap(f->opaque, f->index, o->id, o->since_ns, a);
            o->since_ns = a;
        } else if (!up && !o->was_up) {
            o->since_ns = a;
        }
        o->up = up;
        o->was_up |= up;
        g_free(o->reason);
        o->reason = n == 5 ? g_strdup(w[4]) : NULL;
        tell_unreadable(f);
        return TRUE;
    }
    if (n == 4 && !strcmp(w[0], "lost") &&
        g_ascii_string_to_unsigned(w[1], 10, 0, G_MAXUINT32, &id, NULL) &&
        parse_i64(w[2], &a) && parse_i64(w[3], &b)) {
        HostdCephOsd *o = osd_of(f, (uint32_t)id);

        if (o)
            o->lost_windows++;
        if (f->sink.gap)
            f->sink.gap(f->opaque, f->index, (uint32_t)id, a, b);
        return TRUE;
    }
    if (n == 2 && !strcmp(w[0], "dropped") &&
        g_ascii_string_to_unsigned(w[1], 10, 0, G_MAXUINT64, &id, NULL)) {
        f->dropped = id;
        return TRUE;
    }
    if (n >= 1 && !strcmp(w[0], "error")) {
        g_warning("ceph collector %s says: %s", f->addr, copy);
        return TRUE;
    }
bad:
    f->bad_lines++;
    return FALSE;
}

static gboolean on_readable(GSocket *sock, GIOCondition cond, gpointer p)
{
    HostdCephFeed *f = p;
    char buf[16384];
    GError *err = NULL;
    gssize n = g_socket_receive(sock, buf, sizeof(buf), NULL, &err);
    gsize start = 0;
    char *nl;

    if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_error_free(err);
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        g_clear_pointer(&f->in_src, g_source_unref);
        disconnect(f, err ? err->message : "the collector closed");
        g_clear_error(&err);
        schedule_connect(f);
        return G_SOURCE_REMOVE;
    }
    g_string_append_len(f->in, buf, n);
    while ((nl = memchr(f->in->str + start, '\n', f->in->len - start))) {
        hostd_ceph_feed_line(f, f->in->str + start, nl - (f->in->str + start));
        start = nl - f->in->str + 1;
    }
    g_string_erase(f->in, 0, start);
    if (f->in->len > LINE_MAX_BYTES) {
        g_clear_pointer(&f->in_src, g_source_unref);
        disconnect(f, "a line of more than 4 KiB: not a blkin-ceph-collector?");
        schedule_connect(f);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void on_connected(GObject *src, GAsyncResult *res, gpointer p)
{
    HostdCephFeed *f = p;
    g_autoptr(GError) err = NULL;
    GSocketConnection *conn =
        g_socket_client_connect_to_host_finish(G_SOCKET_CLIENT(src), res, &err);
    GHashTableIter it;
    gpointer k, v;

    if (!conn) {
        if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
            return;
        if (!f->logged_down) {
            g_warning("ceph collector %s: cannot connect: %s; retrying every "
                      "second",
                      f->addr, err->message);
            f->logged_down = true;
        }
        set_error(f, err->message);
        schedule_connect(f);
        return;
    }
    f->conn = conn;
    f->sock = g_socket_connection_get_socket(conn);
    g_socket_set_blocking(f->sock, FALSE);
    f->connected = true;
    f->connects++;
    if (f->logged_down || f->connects == 1)
        g_message("ceph collector %s: connected", f->addr);
    f->logged_down = false;
    f->in_src =
        g_socket_create_source(f->sock, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
    g_source_set_callback(f->in_src, (GSourceFunc)(void (*)(void))on_readable,
                          f, NULL);
    g_source_attach(f->in_src, NULL);
    g_hash_table_iter_init(&it, f->watched);
    while (g_hash_table_iter_next(&it, &k, &v))
        send_watch(f, *(guint64 *)k, v);
    flush_out(f);
    if (f->sink.connected)
        f->sink.connected(f->opaque, f->index, true);
}

static gboolean do_connect(gpointer p)
{
    HostdCephFeed *f = p;

    f->retry_id = 0;
    g_socket_client_connect_to_host_async(f->client, f->addr, 0, f->cancel,
                                          on_connected, f);
    return G_SOURCE_REMOVE;
}

static void schedule_connect(HostdCephFeed *f)
{
    if (!f->retry_id && f->client)
        f->retry_id = g_timeout_add(RETRY_MS, do_connect, f);
}

HostdCephFeed *hostd_ceph_feed_new(unsigned index, const char *addr,
                                   const HostdCephSink *sink, void *opaque)
{
    HostdCephFeed *f = feed_alloc(index, addr, sink, opaque);

    f->client = g_socket_client_new();
    g_socket_client_set_timeout(f->client, 5);
    f->cancel = g_cancellable_new();
    do_connect(f);
    return f;
}

HostdCephFeed *hostd_ceph_feed_new_detached(unsigned index,
                                            const HostdCephSink *sink,
                                            void *opaque)
{
    return feed_alloc(index, "(detached)", sink, opaque);
}

void hostd_ceph_feed_free(HostdCephFeed *f)
{
    if (!f)
        return;
    if (f->cancel)
        g_cancellable_cancel(f->cancel);
    if (f->retry_id)
        g_source_remove(f->retry_id);
    f->connected = false; /* no sink call from here on */
    disconnect(f, NULL);
    g_clear_object(&f->client);
    g_clear_object(&f->cancel);
    g_string_free(f->in, TRUE);
    g_string_free(f->out, TRUE);
    g_hash_table_unref(f->watched);
    for (guint i = 0; i < f->osds->len; i++)
        g_free(g_array_index(f->osds, HostdCephOsd, i).reason);
    g_array_unref(f->osds);
    g_free(f->host);
    g_free(f->last_error);
    g_free(f->addr);
    g_free(f);
}

void hostd_ceph_feed_watch(HostdCephFeed *f, uint64_t gid, const char *addr)
{
    const char *old = g_hash_table_lookup(f->watched, &gid);

    if (old && !strcmp(old, addr))
        return;
    g_hash_table_replace(f->watched, g_memdup2(&gid, sizeof(gid)),
                         g_strdup(addr));
    if (f->connected) {
        send_watch(f, gid, addr);
        flush_out(f);
    }
}

void hostd_ceph_feed_unwatch(HostdCephFeed *f, uint64_t gid)
{
    if (!g_hash_table_remove(f->watched, &gid) || !f->connected)
        return;
    g_string_append_printf(f->out, "unwatch %" G_GUINT64_FORMAT "\n", gid);
    flush_out(f);
}

void hostd_ceph_feed_status(const HostdCephFeed *f, HostdCephFeedStatus *s)
{
    s->addr = f->addr;
    s->connected = f->connected;
    s->host = f->host;
    s->same_host = f->same_host;
    s->connects = f->connects;
    s->lines = f->lines;
    s->ops = f->ops;
    s->bad_lines = f->bad_lines;
    s->dropped = f->dropped;
    s->last_error = f->last_error;
    s->osds = f->osds;
}
