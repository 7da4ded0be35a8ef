/*
 * control.c: the control socket (control.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "control.h"

#include <errno.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <gio/gunixcredentialsmessage.h>

struct HostdControl {
    GSocketService *service;
    char *path;
    HostdControlHandler handler;
    void *opaque;
    gid_t group; /* (gid_t)-1 when there is no blkin group */
};

typedef struct Client {
    HostdControl *ctl;
    GSocketConnection *conn;
    GDataInputStream *in;
    GOutputStream *out;
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
    g_clear_object(&c->in);
    g_clear_object(&c->conn);
    g_free(c);
}

static void read_next(Client *c);

static void respond(Client *c, const char *line, gsize len)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) resp = NULL;
    g_autofree char *text = NULL;

    if (!json_parser_load_from_data(p, line, len, &err))
        resp = hostd_control_error("not JSON: %s", err->message);
    /* An empty or blank line parses to no root at all. */
    else if (!json_parser_get_root(p) ||
             !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)))
        resp = hostd_control_error("a request is a JSON object");
    else
        resp = c->ctl->handler(c->ctl->opaque,
                               json_node_get_object(json_parser_get_root(p)));
    text = json_to_string(resp, FALSE);
    /* Responses are small enough for a blocking write; a client that does
     * not read is disconnected by the error. */
    if (!g_output_stream_write_all(c->out, text, strlen(text), NULL, NULL,
                                   NULL) ||
        !g_output_stream_write_all(c->out, "\n", 1, NULL, NULL, NULL))
        return;
    g_output_stream_flush(c->out, NULL, NULL);
}

static void on_line(GObject *src, GAsyncResult *res, gpointer user)
{
    Client *c = user;
    g_autoptr(GError) err = NULL;
    gsize len = 0;
    g_autofree char *line =
        g_data_input_stream_read_line_finish(c->in, res, &len, &err);

    if (!line) {
        client_free(c);
        return;
    }
    if (len > HOSTD_CONTROL_MAX_LINE) {
        g_autoptr(JsonNode) e = hostd_control_error("request too long");
        g_autofree char *text = json_to_string(e, FALSE);

        g_output_stream_write_all(c->out, text, strlen(text), NULL, NULL, NULL);
        client_free(c);
        return;
    }
    respond(c, line, len);
    read_next(c);
}

static void read_next(Client *c)
{
    g_data_input_stream_read_line_async(c->in, G_PRIORITY_DEFAULT, NULL,
                                        on_line, c);
}

static gboolean peer_allowed(HostdControl *ctl, GSocketConnection *conn)
{
    GSocket *s = g_socket_connection_get_socket(conn);
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(g_socket_get_fd(s), SOL_SOCKET, SO_PEERCRED, &cred, &len) <
        0)
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

static gboolean on_incoming(GSocketService *svc, GSocketConnection *conn,
                            GObject *src, gpointer user)
{
    HostdControl *ctl = user;
    Client *c;

    if (!peer_allowed(ctl, conn)) {
        g_message("control: refused a client that is neither root nor in "
                  "group blkin");
        return TRUE;
    }
    c = g_new0(Client, 1);
    c->ctl = ctl;
    c->conn = g_object_ref(conn);
    c->in = g_data_input_stream_new(
        g_io_stream_get_input_stream(G_IO_STREAM(conn)));
    g_buffered_input_stream_set_buffer_size(G_BUFFERED_INPUT_STREAM(c->in),
                                            4096);
    c->out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    read_next(c);
    return TRUE;
}

HostdControl *hostd_control_new(const char *path, HostdControlHandler h,
                                void *opaque, GError **err)
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
    ctl->service = g_socket_service_new();
    addr = g_unix_socket_address_new(path);
    if (!g_socket_listener_add_address(
            G_SOCKET_LISTENER(ctl->service), addr, G_SOCKET_TYPE_STREAM,
            G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, err)) {
        hostd_control_free(ctl);
        return NULL;
    }
    chmod(path, 0660);
    if (gr && chown(path, 0, gr->gr_gid) < 0)
        g_warning("control: cannot give %s to group blkin: %s", path,
                  g_strerror(errno));
    g_signal_connect(ctl->service, "incoming", G_CALLBACK(on_incoming), ctl);
    g_socket_service_start(ctl->service);
    return ctl;
}

void hostd_control_free(HostdControl *c)
{
    if (!c)
        return;
    if (c->service) {
        g_socket_service_stop(c->service);
        g_socket_listener_close(G_SOCKET_LISTENER(c->service));
        g_object_unref(c->service);
    }
    unlink(c->path);
    g_free(c->path);
    g_free(c);
}
