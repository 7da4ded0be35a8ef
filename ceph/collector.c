/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * collector.c: blkin-ceph-collector, the storage-node side of BlkKin's RBD
 * join (docs/backend-ceph.md). It finds the local OSDs by their admin
 * sockets, reads each one's op tracker continuously (osd-reader.c), and
 * ships the ops of the clients the hostds asked for to them, as lines
 * (common/blkin-osd-op.h; the protocol in docs/backend-ceph.md).
 *
 * A hostd connects over TCP and names the clients it traces (`watch GID
 * ADDR`: the librbd instances of its VMs); the collector asks the OSDs for
 * those clients' ops only and sends each op to the hostds that watch its
 * client. With no client watched it reads nothing. Alongside: its host's
 * wall-minus-monotonic clock offset (`clock`), how far each OSD has been
 * read (`progress`), OSDs that stop or start answering (`osd`) and windows
 * where ops may have been lost (`lost`).
 *
 * Bounded: a hostd that does not read loses ops beyond 32 MiB of queued
 * lines (counted, and told: `dropped N`); lines from a hostd are at most
 * 4 KiB; the OSD readers' keys are bounded by the history size.
 */
#define G_LOG_DOMAIN "blkin-ceph"

#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <glib-unix.h>

#include "collector.h"

#define SUB_LINE_MAX  4096
#define SUB_QUEUE_MAX (32u << 20)
#define QUEUE_MAX     1000000 /* messages from the readers not yet shipped */
#define DEFAULT_ASOK  "/var/run/ceph/*osd.*.asok"
#define DEFAULT_PORT  7479

typedef struct Subscriber {
    Collector *col;
    GSocketConnection *conn;
    GSocket *sock;
    GSource *in_src, *out_src;
    GString *in, *out;
    GHashTable *gids; /* gid (guint64 *) -> normalized filter (char *) */
    uint64_t dropped, dropped_told;
    gboolean closing;
    char *peer;
} Subscriber;

struct Collector {
    CollectorOptions opt;
    char **asok_globs;
    GMainLoop *loop;
    GSocketService *service;
    GPtrArray *subs;    /* Subscriber * */
    GPtrArray *readers; /* OsdReader * */
    GAsyncQueue *queue; /* CollectorMsg * */
    gint queued;        /* atomic: messages in the queue */
    gint queue_dropped; /* atomic: ops the readers could not hand over */
    GMutex filter_lock;
    char *filter_json; /* see collector_filter_json() */
    /* Per OSD (by id): up, last progress. */
    GHashTable *osd_up;       /* id -> GINT_TO_POINTER(1/2): up/down */
    GHashTable *osd_progress; /* id -> gint64 * */
    int64_t progress_sent;
    char hostname[256];
    char boot_id[64];
    gboolean print; /* --print: op lines to stdout */
};

void collector_msg_free(gpointer p)
{
    CollectorMsg *m = p;

    if (!m)
        return;
    g_free(m->text);
    g_free(m);
}

const CollectorOptions *collector_options(Collector *c)
{
    return &c->opt;
}

char *collector_filter_json(Collector *c)
{
    char *f;

    g_mutex_lock(&c->filter_lock);
    f = g_strdup(c->filter_json);
    g_mutex_unlock(&c->filter_lock);
    return f;
}

void collector_post(Collector *c, CollectorMsg *m)
{
    /* The main loop does not keep up: ops go (counted), the rest stays. */
    if (m->type == COLLECTOR_MSG_OP &&
        g_atomic_int_get(&c->queued) > QUEUE_MAX) {
        g_atomic_int_inc(&c->queue_dropped);
        collector_msg_free(m);
        return;
    }
    g_atomic_int_inc(&c->queued);
    g_async_queue_push(c->queue, m);
}

/* ---- the filter: every address any hostd watches ---------------------- */

/*
 * "127.0.0.1:0/4228447426", "v2:127.0.0.1:0/1", "[v2:127.0.0.1:0/1,v1:...]"
 * -> "any:127.0.0.1:0/1" (the OSD compares addresses with their type).
 */
static char *normalize_addr(const char *addr)
{
    g_autofree char *a = g_strdup(addr);
    char *s = a, *comma;

    if (*s == '[')
        s++;
    if ((comma = strpbrk(s, ",]")))
        *comma = '\0';
    if (g_str_has_prefix(s, "v1:") || g_str_has_prefix(s, "v2:"))
        s += 3;
    else if (g_str_has_prefix(s, "any:"))
        s += 4;
    if (!*s || !strchr(s, '/'))
        return NULL;
    for (char *p = s; *p; p++)
        if (!g_ascii_isgraph(*p) || *p == '"' || *p == '\\')
            return NULL;
    return g_strdup_printf("any:%s", s);
}

static void update_filter(Collector *c)
{
    g_autoptr(GHashTable) all = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GString) j = g_string_new("[");
    GHashTableIter it;
    gpointer v;

    for (guint i = 0; i < c->subs->len; i++) {
        Subscriber *s = g_ptr_array_index(c->subs, i);

        g_hash_table_iter_init(&it, s->gids);
        while (g_hash_table_iter_next(&it, NULL, &v))
            g_hash_table_add(all, v);
    }
    g_hash_table_iter_init(&it, all);
    while (g_hash_table_iter_next(&it, &v, NULL))
        g_string_append_printf(j, "%s\"%s\"", j->len > 1 ? "," : "", (char *)v);
    g_string_append_c(j, ']');
    g_mutex_lock(&c->filter_lock);
    g_free(c->filter_json);
    c->filter_json = c->print                 ? g_strdup("")
                     : g_hash_table_size(all) ? g_strdup(j->str)
                                              : NULL;
    g_mutex_unlock(&c->filter_lock);
}

/* ---- subscribers (hostds) --------------------------------------------- */

static void sub_close(Subscriber *s);
static gboolean sub_writable(GSocket *sock, GIOCondition cond, gpointer p);

static void sub_flush(Subscriber *s)
{
    while (s->out->len) {
        GError *err = NULL;
        gssize n = g_socket_send(s->sock, s->out->str, s->out->len, NULL, &err);

        if (n < 0) {
            gboolean again =
                g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);

            g_error_free(err);
            if (!again) {
                sub_close(s);
                return;
            }
            break;
        }
        g_string_erase(s->out, 0, n);
    }
    if (s->out->len && !s->out_src) {
        s->out_src = g_socket_create_source(s->sock, G_IO_OUT, NULL);
        g_source_set_callback(
            s->out_src, (GSourceFunc)(void (*)(void))sub_writable, s, NULL);
        g_source_attach(s->out_src, NULL);
    }
}

static gboolean sub_writable(GSocket *sock, GIOCondition cond, gpointer p)
{
    Subscriber *s = p;

    g_source_unref(s->out_src);
    s->out_src = NULL;
    sub_flush(s);
    return G_SOURCE_REMOVE;
}

/* Queues a line; an op line beyond the bound is dropped (counted). */
static void sub_send(Subscriber *s, const char *line, gboolean droppable)
{
    if (s->closing)
        return;
    if (droppable && s->out->len > SUB_QUEUE_MAX) {
        s->dropped++;
        return;
    }
    if (s->dropped > s->dropped_told && s->out->len < SUB_QUEUE_MAX / 2) {
        g_string_append_printf(s->out, "dropped %" G_GUINT64_FORMAT "\n",
                               s->dropped);
        s->dropped_told = s->dropped;
    }
    g_string_append(s->out, line);
    g_string_append_c(s->out, '\n');
}

static void sub_handle_line(Subscriber *s, char *line)
{
    g_auto(GStrv) f = g_strsplit(line, " ", 0);
    guint n = g_strv_length(f);
    guint64 gid;

    if (n == 3 && !strcmp(f[0], "watch") &&
        g_ascii_string_to_unsigned(f[1], 10, 1, G_MAXUINT64, &gid, NULL)) {
        char *filter = normalize_addr(f[2]);

        if (!filter) {
            sub_send(s, "error bad address", FALSE);
            return;
        }
        g_hash_table_replace(s->gids, g_memdup2(&gid, sizeof(gid)), filter);
        g_message("%s watches client.%" G_GUINT64_FORMAT " (%s)", s->peer, gid,
                  filter + 4);
        update_filter(s->col);
    } else if (n == 2 && !strcmp(f[0], "unwatch") &&
               g_ascii_string_to_unsigned(f[1], 10, 1, G_MAXUINT64, &gid,
                                          NULL)) {
        if (g_hash_table_remove(s->gids, &gid))
            update_filter(s->col);
    } else {
        sub_send(s, "error unknown request", FALSE);
    }
}

static gboolean sub_readable(GSocket *sock, GIOCondition cond, gpointer p)
{
    Subscriber *s = p;
    char buf[4096];
    GError *err = NULL;
    gssize n = g_socket_receive(sock, buf, sizeof(buf), NULL, &err);
    char *nl;

    if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_error_free(err);
        return G_SOURCE_CONTINUE;
    }
    g_clear_error(&err);
    if (n <= 0) {
        sub_close(s);
        return G_SOURCE_REMOVE;
    }
    g_string_append_len(s->in, buf, n);
    while ((nl = memchr(s->in->str, '\n', s->in->len))) {
        *nl = '\0';
        sub_handle_line(s, s->in->str);
        g_string_erase(s->in, 0, nl - s->in->str + 1);
    }
    if (s->in->len > SUB_LINE_MAX) {
        g_warning("%s: a line longer than %d bytes; closing", s->peer,
                  SUB_LINE_MAX);
        sub_close(s);
        return G_SOURCE_REMOVE;
    }
    sub_flush(s);
    return G_SOURCE_CONTINUE;
}

static void sub_free(Subscriber *s)
{
    if (s->in_src) {
        g_source_destroy(s->in_src);
        g_source_unref(s->in_src);
    }
    if (s->out_src) {
        g_source_destroy(s->out_src);
        g_source_unref(s->out_src);
    }
    g_object_unref(s->conn);
    g_string_free(s->in, TRUE);
    g_string_free(s->out, TRUE);
    g_hash_table_unref(s->gids);
    g_free(s->peer);
    g_free(s);
}

static gboolean sub_free_idle(gpointer p)
{
    sub_free(p);
    return G_SOURCE_REMOVE;
}

static void sub_close(Subscriber *s)
{
    Collector *c = s->col;

    if (s->closing)
        return;
    s->closing = TRUE;
    g_message("%s: gone", s->peer);
    g_ptr_array_remove(c->subs, s);
    update_filter(c);
    g_io_stream_close(G_IO_STREAM(s->conn), NULL, NULL);
    /* Sources may be dispatching: free once they are done. */
    g_idle_add(sub_free_idle, s);
}

static void clock_line(char *buf, size_t size)
{
    struct timespec a, w, b;
    int64_t ma, mb, wn;

    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_REALTIME, &w);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ma = a.tv_sec * 1000000000LL + a.tv_nsec;
    mb = b.tv_sec * 1000000000LL + b.tv_nsec;
    wn = w.tv_sec * 1000000000LL + w.tv_nsec;
    /* Stamps are microseconds: half of one more on the bound. */
    snprintf(buf, size, "clock %" G_GINT64_FORMAT " %" G_GINT64_FORMAT,
             wn - (ma + (mb - ma) / 2), (mb - ma) / 2 + 1000);
}

static gboolean on_incoming(GSocketService *svc, GSocketConnection *conn,
                            GObject *src, gpointer p)
{
    Collector *c = p;
    Subscriber *s = g_new0(Subscriber, 1);
    g_autoptr(GSocketAddress) addr = NULL;
    char line[512];
    GHashTableIter it;
    gpointer k, v;

    s->col = c;
    s->conn = g_object_ref(conn);
    s->sock = g_socket_connection_get_socket(conn);
    g_socket_set_blocking(s->sock, FALSE);
    s->in = g_string_new(NULL);
    s->out = g_string_new(NULL);
    s->gids =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    addr = g_socket_get_remote_address(s->sock, NULL);
    if (addr && G_IS_INET_SOCKET_ADDRESS(addr)) {
        g_autofree char *ip = g_inet_address_to_string(
            g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(addr)));

        s->peer = g_strdup_printf(
            "%s:%u", ip,
            g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(addr)));
    } else {
        s->peer = g_strdup("a local hostd");
    }
    g_message("%s connected", s->peer);
    g_ptr_array_add(c->subs, s);
    snprintf(line, sizeof(line), "hello blkin-ceph-collector 1 %s %s",
             c->hostname, c->boot_id);
    sub_send(s, line, FALSE);
    clock_line(line, sizeof(line));
    sub_send(s, line, FALSE);
    g_hash_table_iter_init(&it, c->osd_up);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        snprintf(line, sizeof(line), "osd %u %s %" G_GINT64_FORMAT,
                 GPOINTER_TO_UINT(k), GPOINTER_TO_INT(v) == 1 ? "up" : "down",
                 g_get_real_time() * 1000);
        sub_send(s, line, FALSE);
    }
    s->in_src =
        g_socket_create_source(s->sock, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
    g_source_set_callback(s->in_src, (GSourceFunc)(void (*)(void))sub_readable,
                          s, NULL);
    g_source_attach(s->in_src, NULL);
    sub_flush(s);
    return TRUE;
}

/* ---- from the readers to the subscribers ------------------------------- */

static void broadcast(Collector *c, const char *line)
{
    if (c->print)
        printf("%s\n", line);
    for (guint i = 0; i < c->subs->len; i++)
        sub_send(g_ptr_array_index(c->subs, i), line, FALSE);
}

static void ship_op(Collector *c, const blkin_osd_op *op)
{
    char line[1024];

    if (blkin_osd_op_format(op, line, sizeof(line)) < 0)
        return;
    if (c->print)
        printf("%s\n", line);
    for (guint i = 0; i < c->subs->len; i++) {
        Subscriber *s = g_ptr_array_index(c->subs, i);

        if (g_hash_table_contains(s->gids, &op->gid))
            sub_send(s, line, TRUE);
    }
}

/* Every up OSD has been read up to the oldest of their progress. */
static void ship_progress(Collector *c)
{
    GHashTableIter it;
    gpointer k, v;
    int64_t min = INT64_MAX;
    char line[64];

    g_hash_table_iter_init(&it, c->osd_progress);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (GPOINTER_TO_INT(g_hash_table_lookup(c->osd_up, k)) == 1)
            min = MIN(min, *(gint64 *)v);
    if (min == INT64_MAX || min <= c->progress_sent)
        return;
    c->progress_sent = min;
    snprintf(line, sizeof(line), "progress %" G_GINT64_FORMAT, min);
    broadcast(c, line);
}

static gboolean drain(gpointer p)
{
    Collector *c = p;
    CollectorMsg *m;
    gboolean progressed = FALSE;
    char line[1024];

    while ((m = g_async_queue_try_pop(c->queue))) {
        gpointer key = GUINT_TO_POINTER(m->osd);

        g_atomic_int_add(&c->queued, -1);
        switch (m->type) {
        case COLLECTOR_MSG_OP:
            ship_op(c, &m->op);
            break;
        case COLLECTOR_MSG_PROGRESS: {
            gint64 *t = g_hash_table_lookup(c->osd_progress, key);

            if (!t) {
                t = g_new(gint64, 1);
                g_hash_table_insert(c->osd_progress, key, t);
            }
            *t = m->wall_ns;
            progressed = TRUE;
            break;
        }
        case COLLECTOR_MSG_UP:
        case COLLECTOR_MSG_DOWN:
            g_hash_table_insert(
                c->osd_up, key,
                GINT_TO_POINTER(m->type == COLLECTOR_MSG_UP ? 1 : 2));
            snprintf(line, sizeof(line), "osd %u %s %" G_GINT64_FORMAT "%s%s",
                     m->osd, m->type == COLLECTOR_MSG_UP ? "up" : "down",
                     m->wall_ns, m->text ? " " : "", m->text ? m->text : "");
            /* One line: a reason with a newline in it would split. */
            g_strdelimit(line, "\n\r", ' ');
            broadcast(c, line);
            progressed = TRUE;
            break;
        case COLLECTOR_MSG_LOST:
            snprintf(line, sizeof(line),
                     "lost %u %" G_GINT64_FORMAT " %" G_GINT64_FORMAT, m->osd,
                     m->from_ns, m->wall_ns);
            broadcast(c, line);
            break;
        }
        collector_msg_free(m);
    }
    if (progressed)
        ship_progress(c);
    for (guint i = 0; i < c->subs->len; i++)
        sub_flush(g_ptr_array_index(c->subs, i));
    if (c->print)
        fflush(stdout);
    return G_SOURCE_CONTINUE;
}

static gboolean tick_clock(gpointer p)
{
    Collector *c = p;
    char line[128];

    clock_line(line, sizeof(line));
    for (guint i = 0; i < c->subs->len; i++)
        sub_send(g_ptr_array_index(c->subs, i), line, FALSE);
    return G_SOURCE_CONTINUE;
}

/* ---- OSDs: found by their admin sockets -------------------------------- */

/* "osd.3" in "/var/run/ceph/ceph-osd.3.asok" or ".../osd.3.asok". */
static gboolean osd_id_of(const char *path, guint32 *id)
{
    const char *base = strrchr(path, '/');
    const char *p = strstr(base ? base : path, "osd.");
    guint64 v;
    char *end;

    if (!p)
        return FALSE;
    v = g_ascii_strtoull(p + 4, &end, 10);
    if (end == p + 4 || strcmp(end, ".asok") != 0 || v > G_MAXUINT32)
        return FALSE;
    *id = (guint32)v;
    return TRUE;
}

static gboolean discover(gpointer p)
{
    Collector *c = p;

    for (char **g = c->asok_globs; *g; g++) {
        glob_t gl;

        if (glob(*g, 0, NULL, &gl) != 0)
            continue;
        for (size_t i = 0; i < gl.gl_pathc; i++) {
            const char *path = gl.gl_pathv[i];
            gboolean known = FALSE;
            guint32 id;

            if (!osd_id_of(path, &id))
                continue;
            for (guint k = 0; k < c->readers->len; k++) {
                OsdReader *r = g_ptr_array_index(c->readers, k);

                if (osd_reader_id(r) == id)
                    known = TRUE;
            }
            if (known)
                continue;
            g_message("osd.%u: admin socket %s", id, path);
            g_ptr_array_add(c->readers, osd_reader_start(c, id, path));
        }
        globfree(&gl);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_signal(gpointer p)
{
    g_main_loop_quit(((Collector *)p)->loop);
    return G_SOURCE_REMOVE;
}

static gboolean stats_tick(gpointer p)
{
    Collector *c = p;

    for (guint i = 0; i < c->readers->len; i++) {
        OsdReader *r = g_ptr_array_index(c->readers, i);
        OsdReaderStats st;

        osd_reader_stats(r, &st);
        g_debug("osd.%u: %s, %" G_GUINT64_FORMAT " reads, %" G_GUINT64_FORMAT
                " failed, %" G_GUINT64_FORMAT " ops read, %" G_GUINT64_FORMAT
                " new, %" G_GUINT64_FORMAT " bytes, history %" G_GINT64_FORMAT
                ", %" G_GUINT64_FORMAT " lost windows",
                osd_reader_id(r), st.up ? "up" : "down", st.polls, st.failures,
                st.ops_read, st.ops_new, st.bytes, st.history_size,
                st.lost_windows);
    }
    return G_SOURCE_CONTINUE;
}

static void read_boot_id(Collector *c)
{
    g_autofree char *s = NULL;

    if (g_file_get_contents("/proc/sys/kernel/random/boot_id", &s, NULL, NULL))
        g_strlcpy(c->boot_id, g_strstrip(s), sizeof(c->boot_id));
    else
        g_strlcpy(c->boot_id, "-", sizeof(c->boot_id));
    if (gethostname(c->hostname, sizeof(c->hostname)) != 0)
        g_strlcpy(c->hostname, "-", sizeof(c->hostname));
    g_strdelimit(c->hostname, " \t\n", '_');
}

int main(int argc, char **argv)
{
    g_autofree char *listen = NULL;
    g_auto(GStrv) globs = NULL;
    int interval = 500, timeout = 2000, max_mib = 64;
    gint64 hsize = 20000;
    int duration = 2;
    gboolean print = FALSE, version = FALSE;
    GOptionEntry entries[] = {
        {"asok", 'a', 0, G_OPTION_ARG_STRING_ARRAY, &globs,
         "OSD admin sockets (glob, repeatable; default " DEFAULT_ASOK ")",
         "GLOB"},
        {"listen", 'l', 0, G_OPTION_ARG_STRING, &listen,
         "where hostds connect (default 127.0.0.1:7479; :PORT for every "
         "address)",
         "HOST:PORT"},
        {"interval", 'i', 0, G_OPTION_ARG_INT, &interval,
         "milliseconds between two reads of an OSD (default 500)", "MS"},
        {"asok-timeout", 0, 0, G_OPTION_ARG_INT, &timeout,
         "milliseconds an admin-socket command may take (default 2000)", "MS"},
        {"max-answer-mib", 0, 0, G_OPTION_ARG_INT, &max_mib,
         "largest admin-socket answer read (default 64)", "MIB"},
        {"history-size", 0, 0, G_OPTION_ARG_INT64, &hsize,
         "op history size set, at least (default 20000: ops of the duration "
         "at up to 10,000 ops/s per OSD)",
         "N"},
        {"history-duration", 0, 0, G_OPTION_ARG_INT, &duration,
         "seconds the OSDs keep a finished op (osd_op_history_duration "
         "set; default 2)",
         "S"},
        {"print", 'p', 0, G_OPTION_ARG_NONE, &print,
         "print every client's ops on stdout (no hostd needed)", NULL},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &version, "print the version",
         NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- ship Ceph OSDs' op trackers to blkin-hostd");
    g_autoptr(GError) err = NULL;
    Collector c = {0};
    guint16 port = DEFAULT_PORT;
    g_autofree char *host = NULL;

    g_option_context_set_summary(
        ctx,
        "Runs on a Ceph storage node: reads the local OSDs' op trackers "
        "over their admin sockets and ships the ops of the RBD clients "
        "that blkin-hostd instances watch to them (docs/backend-ceph.md).");
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "blkin-ceph-collector: %s\n", err->message);
        return 2;
    }
    if (version) {
        printf("blkin-ceph-collector %s\n", BLKIN_VERSION);
        return 0;
    }
    if (interval < 10 || timeout < 10 || max_mib < 1 || hsize < 20 ||
        duration < 1 || (gint64)duration * 1000 < 2 * interval) {
        fprintf(stderr, "blkin-ceph-collector: --interval and --asok-timeout "
                        "take 10 ms or more, --history-size 20 or more, "
                        "--history-duration at least two intervals\n");
        return 2;
    }
    if (listen) {
        const char *colon = strrchr(listen, ':');
        guint64 v;

        if (!colon ||
            !g_ascii_string_to_unsigned(colon + 1, 10, 1, 65535, &v, NULL)) {
            fprintf(stderr,
                    "blkin-ceph-collector: --listen %s: not HOST:PORT\n",
                    listen);
            return 2;
        }
        port = (guint16)v;
        host = g_strndup(listen, colon - listen);
    } else {
        host = g_strdup("127.0.0.1");
    }

    c.opt.interval_ms = interval;
    c.opt.asok_timeout_ms = timeout;
    c.opt.max_answer = (gsize)max_mib << 20;
    c.opt.history_size = hsize;
    c.opt.history_duration_s = duration;
    c.opt.all_clients = print;
    c.print = print;
    c.asok_globs = globs && *globs ? globs : (char *[]){DEFAULT_ASOK, NULL};
    c.loop = g_main_loop_new(NULL, FALSE);
    c.subs = g_ptr_array_new();
    c.readers = g_ptr_array_new();
    c.queue = g_async_queue_new_full(collector_msg_free);
    c.osd_up = g_hash_table_new(g_direct_hash, g_direct_equal);
    c.osd_progress =
        g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    g_mutex_init(&c.filter_lock);
    read_boot_id(&c);
    update_filter(&c);
    signal(SIGPIPE, SIG_IGN);

    c.service = g_socket_service_new();
    if (*host) {
        g_autoptr(GInetAddress) ia = g_inet_address_new_from_string(host);
        g_autoptr(GSocketAddress) sa = NULL;

        if (!ia) {
            fprintf(stderr,
                    "blkin-ceph-collector: --listen: '%s' is not an "
                    "IP address\n",
                    host);
            return 2;
        }
        sa = g_inet_socket_address_new(ia, port);
        if (!g_socket_listener_add_address(
                G_SOCKET_LISTENER(c.service), sa, G_SOCKET_TYPE_STREAM,
                G_SOCKET_PROTOCOL_TCP, NULL, NULL, &err)) {
            fprintf(stderr, "blkin-ceph-collector: listen on %s: %s\n", listen,
                    err->message);
            return 1;
        }
    } else if (!g_socket_listener_add_inet_port(G_SOCKET_LISTENER(c.service),
                                                port, NULL, &err)) {
        fprintf(stderr, "blkin-ceph-collector: listen on port %u: %s\n", port,
                err->message);
        return 1;
    }
    g_signal_connect(c.service, "incoming", G_CALLBACK(on_incoming), &c);
    g_socket_service_start(c.service);
    g_message("listening on %s:%u; OSD admin sockets: %s", *host ? host : "*",
              port, g_strjoinv(" ", c.asok_globs));

    discover(&c);
    if (!c.readers->len)
        g_message("no OSD admin socket found yet (%s); looking every 2 s",
                  g_strjoinv(" ", c.asok_globs));
    g_timeout_add(2000, discover, &c);
    g_timeout_add(20, drain, &c);
    g_timeout_add(1000, tick_clock, &c);
    g_timeout_add_seconds(10, stats_tick, &c);
    g_unix_signal_add(SIGTERM, on_signal, &c);
    g_unix_signal_add(SIGINT, on_signal, &c);
    g_main_loop_run(c.loop);

    g_message("stopping");
    g_socket_service_stop(c.service);
    for (guint i = 0; i < c.readers->len; i++)
        osd_reader_stop(g_ptr_array_index(c.readers, i));
    drain(&c);
    return 0;
}
