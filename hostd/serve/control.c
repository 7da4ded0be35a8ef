/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * control.c: the control socket (control.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "control.h"
#include "serve-buf.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>

struct HostdControl {
    GSocket *listener;
    HostdServeGate *gate;
    char *path;
    HostdControlHandler handler;
    void *opaque;
    gid_t group;    /* (gid_t)-1 when there is no blkin group */
    GList *clients; /* Client *, to close them at the end */
};

/*
 * One client: a non-blocking socket, a bounded line reader and a bounded
 * queue of answers (serve-buf.h). Nothing here ever waits for the client:
 * whatever it does or fails to do, hostd's loop goes on (docs/security.md).
 */
typedef struct Client {
    HostdServeConn conn; /* first: the gate hands it back */
    HostdControl *ctl;
    GList *node; /* in ctl->clients */
    int fd;
    guint in_watch, out_watch, more;
    HostdLineReader in;
    HostdOutQueue out;
    gint64 last_in_us;      /* last bytes received */
    gint64 line_started_us; /* first byte of the unfinished line, or 0 */
    gboolean closing;       /* answered "too long": flush, then close */
} Client;

JsonNode *hostd_control_error(const char *fmt, ...)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, FALSE);
    json_builder_set_member_name(b, "error");
    json_builder_add_string_value(b, msg);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static void client_free(Client *c)
{
    hostd_serve_conn_detach(&c->conn);
    g_clear_handle_id(&c->in_watch, g_source_remove);
    g_clear_handle_id(&c->out_watch, g_source_remove);
    g_clear_handle_id(&c->more, g_source_remove);
    c->ctl->clients = g_list_delete_link(c->ctl->clients, c->node);
    close(c->fd);
    hostd_line_reader_clear(&c->in);
    hostd_out_queue_clear(&c->out);
    g_free(c);
}

/* The gate closes it (deadline, or room for a newer client). */
static void client_close(HostdServeConn *conn, HostdServeEvent why)
{
    client_free((Client *)conn);
}

/* Drops the client with a reason for the gate's periodic log line. */
static void client_drop(Client *c, HostdServeEvent why)
{
    hostd_serve_gate_note(c->ctl->gate, HOSTD_SURFACE_CONTROL, why);
    client_free(c);
}

/*
 * After every change: when the client must act by (its idle time after
 * the last bytes, a shorter one for a line it started), and whether it is
 * only waiting -- nothing half-received, nothing unread -- and so may make
 * room for a new client at the limit.
 */
static void client_update(Client *c)
{
    const HostdServeLimits *l = hostd_serve_gate_limits(c->ctl->gate);
    gint64 deadline =
        c->last_in_us + (gint64)l->control_idle_s * G_USEC_PER_SEC;
    gboolean partial = hostd_line_reader_pending(&c->in) > 0;

    if (c->closing)
        return;
    if (!partial)
        c->line_started_us = 0;
    else if (!c->line_started_us)
        c->line_started_us = g_get_monotonic_time();
    if (c->line_started_us)
        deadline =
            MIN(deadline, c->line_started_us +
                              HOSTD_SERVE_CONTROL_LINE_S * G_USEC_PER_SEC);
    hostd_serve_conn_update(
        &c->conn, !partial && hostd_out_queue_len(&c->out) == 0, deadline);
}

static gssize write_fd(void *opaque, const void *buf, gsize n)
{
    /* MSG_NOSIGNAL: a client gone mid-answer is an error, not SIGPIPE. */
    return send(GPOINTER_TO_INT(opaque), buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer user);

/* Writes what the socket takes; FALSE when the client is gone (freed). */
static gboolean client_flush(Client *c)
{
    int r = hostd_out_queue_flush(&c->out, write_fd, GINT_TO_POINTER(c->fd));

    if (r < 0) {
        client_free(c);
        return FALSE;
    }
    if (r == 0 && !c->out_watch)
        c->out_watch = g_unix_fd_add(c->fd, G_IO_OUT, on_writable, c);
    else if (r == 1 && c->out_watch)
        g_clear_handle_id(&c->out_watch, g_source_remove);
    if (r == 1 && c->closing) {
        client_free(c);
        return FALSE;
    }
    client_update(c);
    return TRUE;
}

static gboolean on_writable(gint fd, GIOCondition cond, gpointer user)
{
    Client *c = user;

    /* The watch goes either way: client_flush adds it again if needed. */
    c->out_watch = 0;
    client_flush(c);
    return G_SOURCE_REMOVE;
}

/* Queues @resp as one line; FALSE when the client is gone (freed). */
static gboolean client_send(Client *c, JsonNode *resp)
{
    g_autofree char *text = json_to_string(resp, FALSE);
    gsize len = strlen(text);

    text = g_realloc(text, len + 2);
    text[len] = '\n';
    text[len + 1] = '\0';
    if (!hostd_out_queue_push(&c->out, text, len + 1)) {
        /* It asks and does not read: its answers would pile up here. */
        client_drop(c, HOSTD_SERVE_NOT_READING);
        return FALSE;
    }
    return client_flush(c);
}

static gboolean respond(Client *c, const char *line, gsize len)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) resp = NULL;

    if (!json_parser_load_from_data(p, line, len, &err))
        resp = hostd_control_error("not JSON: %s", err->message);
    /* An empty or blank line parses to no root at all. */
    else if (!json_parser_get_root(p) ||
             !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
        resp = hostd_control_error("a request is a JSON object");
    else
        resp = c->ctl->handler(c->ctl->opaque,
                               json_node_get_object(json_parser_get_root(p)));
    return client_send(c, resp);
}

/*
 * A line beyond the limit: refused as soon as its first byte too many
 * arrives (nothing more is read or kept), with an answer saying so; the
 * connection closes once that is written, or after a short linger.
 */
static void too_long(Client *c)
{
    g_autoptr(JsonNode) e = hostd_control_error(
        "request too long (over %d bytes without a line feed); closing",
        HOSTD_CONTROL_MAX_LINE);

    hostd_serve_gate_note(c->ctl->gate, HOSTD_SURFACE_CONTROL,
                          HOSTD_SERVE_TOO_LONG);
    g_clear_handle_id(&c->in_watch, g_source_remove);
    g_clear_handle_id(&c->more, g_source_remove);
    hostd_line_reader_clear(&c->in);
    c->closing = TRUE;
    hostd_serve_conn_update(&c->conn, FALSE,
                            g_get_monotonic_time() +
                                HOSTD_SERVE_CONTROL_LINGER_S * G_USEC_PER_SEC);
    /* The answer goes even into a full queue: it is the last one. */
    hostd_out_queue_clear(&c->out);
    client_send(c, e);
}

static gboolean pump_more(gpointer user);

/*
 * Answers the complete lines held, at most HOSTD_SERVE_CONTROL_BURST per
 * turn of the main loop (the rest on the next turn, after the other
 * sources), reading once when none is left.
 */
static void client_pump(Client *c)
{
    gboolean read_once = FALSE;
    int budget = HOSTD_SERVE_CONTROL_BURST;

    while (budget > 0) {
        const char *line;
        gsize len, room;
        char *at;
        gssize n;

        switch (hostd_line_reader_next(&c->in, &line, &len)) {
        case HOSTD_LINE_READY:
            if (!respond(c, line, len))
                return;
            budget--;
            continue;
        case HOSTD_LINE_TOO_LONG:
            too_long(c);
            return;
        case HOSTD_LINE_MORE:
            break;
        }
        if (read_once)
            break;
        at = hostd_line_reader_space(&c->in, 16384, &room);
        n = recv(c->fd, at, room, MSG_DONTWAIT);
        if (n < 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        if (n == 0 && hostd_out_queue_len(&c->out)) {
            /* It finished sending (shutdown) and waits for answers still
             * queued: they go out before the close, within its idle
             * time. */
            const HostdServeLimits *l = hostd_serve_gate_limits(c->ctl->gate);

            g_clear_handle_id(&c->in_watch, g_source_remove);
            c->closing = TRUE;
            hostd_serve_conn_update(&c->conn, FALSE,
                                    g_get_monotonic_time() +
                                        (gint64)l->control_idle_s *
                                            G_USEC_PER_SEC);
            return;
        }
        if (n <= 0) {
            client_free(c);
            return;
        }
        hostd_line_reader_commit(&c->in, n);
        c->last_in_us = g_get_monotonic_time();
        read_once = TRUE;
    }
    client_update(c);
    if (budget == 0 && !c->more)
        c->more = g_idle_add_full(G_PRIORITY_DEFAULT, pump_more, c, NULL);
}

static gboolean pump_more(gpointer user)
{
    Client *c = user;

    c->more = 0;
    /* Only for lines already here; new bytes come through the watch. */
    if (hostd_line_reader_ready(&c->in))
        client_pump(c);
    return G_SOURCE_REMOVE;
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer user)
{
    client_pump(user);
    return G_SOURCE_CONTINUE;
}

static gboolean peer_allowed(HostdControl *ctl, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return FALSE;
    if (cred.uid == 0 || cred.uid == getuid())
        return TRUE;
    if (ctl->group != (gid_t)-1) {
        g_autofree char *path = g_strdup_printf("/proc/%d/status", cred.pid);
        g_autofree char *status = NULL;

        /* The peer's supplementary groups, from its own status. */
        if (g_file_get_contents(path, &status, NULL, NULL)) {
            const char *g = strstr(status, "\nGroups:");
            g_auto(GStrv) ids = NULL;

            if (cred.gid == ctl->group)
                return TRUE;
            if (g) {
                g_autofree char *l = g_strndup(g + 8, strcspn(g + 8, "\n"));
                ids = g_strsplit_set(l, " \t", -1);
                for (char **i = ids; *i; i++)
                    if (**i && (gid_t)atoi(*i) == ctl->group)
                        return TRUE;
            }
        }
    }
    return FALSE;
}

static void on_accept(void *opaque, int fd)
{
    HostdControl *ctl = opaque;
    const HostdServeLimits *l = hostd_serve_gate_limits(ctl->gate);
    Client *c;

    if (!peer_allowed(ctl, fd)) {
        /* Counted, not logged one by one: the log is no one's to flood. */
        hostd_serve_gate_note(ctl->gate, HOSTD_SURFACE_CONTROL,
                              HOSTD_SERVE_NOT_ALLOWED);
        close(fd);
        return;
    }
    c = g_new0(Client, 1);
    c->ctl = ctl;
    c->fd = fd;
    c->last_in_us = g_get_monotonic_time();
    hostd_line_reader_init(&c->in, HOSTD_CONTROL_MAX_LINE);
    hostd_out_queue_init(&c->out, l->control_queue_max);
    ctl->clients = g_list_prepend(ctl->clients, c);
    c->node = ctl->clients;
    hostd_serve_conn_attach(ctl->gate, &c->conn, HOSTD_SURFACE_CONTROL,
                            c->last_in_us +
                                (gint64)l->control_idle_s * G_USEC_PER_SEC,
                            client_close);
    c->in_watch = g_unix_fd_add(fd, G_IO_IN, on_readable, c);
}

HostdControl *hostd_control_new(const char *path, HostdServeGate *gate,
                                HostdControlHandler h, void *opaque,
                                GError **err)
{
    g_autoptr(GSocketAddress) addr = NULL;
    g_autofree char *dir = g_path_get_dirname(path);
    HostdControl *ctl;
    struct group *gr = getgrnam("blkin");

    if (g_mkdir_with_parents(dir, 0750) < 0) {
        g_set_error(err, G_IO_ERROR, g_io_error_from_errno(errno),
                    "cannot create %s: %s", dir, g_strerror(errno));
        return NULL;
    }
    unlink(path);
    ctl = g_new0(HostdControl, 1);
    ctl->path = g_strdup(path);
    ctl->handler = h;
    ctl->opaque = opaque;
    ctl->group = gr ? gr->gr_gid : (gid_t)-1;
    ctl->gate = gate;
    addr = g_unix_socket_address_new(path);
    ctl->listener = hostd_serve_listen_socket(addr, err);
    if (!ctl->listener) {
        hostd_control_free(ctl);
        return NULL;
    }
    chmod(path, 0660);
    if (gr && chown(path, 0, gr->gr_gid) < 0)
        g_warning("control: cannot give %s to group blkin: %s", path,
                  g_strerror(errno));
    hostd_serve_gate_listen(gate, HOSTD_SURFACE_CONTROL, ctl->listener,
                            on_accept, ctl);
    return ctl;
}

void hostd_control_free(HostdControl *c)
{
    if (!c)
        return;
    if (c->listener) {
        hostd_serve_gate_unlisten(c->gate, HOSTD_SURFACE_CONTROL);
        g_socket_close(c->listener, NULL);
        g_object_unref(c->listener);
    }
    while (c->clients)
        client_free(c->clients->data);
    unlink(c->path);
    g_free(c->path);
    g_free(c);
}
