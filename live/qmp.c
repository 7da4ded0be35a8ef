/*
 * qmp.c: a minimal synchronous QMP client (see qmp.h).
 */
#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef BLKIN_LIVE_LIBVIRT
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#endif

struct BlkinQmp {
    int fd;
    int timeout_ms;
    GString *buf; /* bytes read but not yet consumed as lines */
    pid_t peer;
#ifdef BLKIN_LIVE_LIBVIRT
    virConnectPtr conn; /* set: commands go through libvirtd instead */
    virDomainPtr dom;
#endif
};

static int64_t mono_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

void blkin_qmp_close(BlkinQmp *q)
{
    if (!q)
        return;
    if (q->fd >= 0)
        close(q->fd);
    if (q->buf)
        g_string_free(q->buf, TRUE);
#ifdef BLKIN_LIVE_LIBVIRT
    if (q->dom)
        virDomainFree(q->dom);
    if (q->conn)
        virConnectClose(q->conn);
#endif
    g_free(q);
}

pid_t blkin_qmp_peer_pid(BlkinQmp *q)
{
    return q->peer;
}

/* One line of input, without its newline; -ETIMEDOUT past the deadline. */
static int read_line(BlkinQmp *q, char **line)
{
    int64_t deadline = mono_ms() + q->timeout_ms;

    for (;;) {
        char *nl = memchr(q->buf->str, '\n', q->buf->len);
        char chunk[4096];
        struct pollfd p = {.fd = q->fd, .events = POLLIN};
        int64_t left;
        ssize_t n;
        int r;

        if (nl) {
            size_t len = nl - q->buf->str;

            *line = g_strndup(q->buf->str, len);
            g_string_erase(q->buf, 0, len + 1);
            return 0;
        }
        left = deadline - mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        r = poll(&p, 1, (int)left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -ETIMEDOUT;
        n = read(q->fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ECONNRESET;
        g_string_append_len(q->buf, chunk, n);
    }
}

static int write_all(BlkinQmp *q, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(q->fd, data, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        data += n;
        len -= n;
    }
    return 0;
}

/* The next message that is not an asynchronous event. */
static int read_message(BlkinQmp *q, JsonNode **msg)
{
    for (;;) {
        g_autofree char *line = NULL;
        g_autoptr(JsonParser) p = json_parser_new();
        JsonNode *root;
        int r;

        r = read_line(q, &line);
        if (r < 0)
            return r;
        if (!json_parser_load_from_data(p, line, -1, NULL))
            return -EPROTO;
        root = json_parser_get_root(p);
        if (!root || !JSON_NODE_HOLDS_OBJECT(root))
            return -EPROTO;
        /* Events (BLOCK_JOB_*, RESUME, ...) may come between a command and
         * its answer; nothing here needs them. */
        if (json_object_has_member(json_node_get_object(root), "event"))
            continue;
        *msg = json_node_copy(root);
        return 0;
    }
}

#ifdef BLKIN_LIVE_LIBVIRT
/* libvirt prints every error on stderr by default; ours says it once. */
static void libvirt_quiet(void *opaque, virErrorPtr err)
{
}

static char *libvirt_error(void)
{
    const char *m = virGetLastErrorMessage();

    return g_strdup(m ? m : "unknown libvirt error");
}

/* One QMP exchange through libvirtd; the reply has QMP's own form. */
static int libvirt_command(BlkinQmp *q, const char *text, JsonNode **msg,
                           char **errmsg)
{
    g_autoptr(JsonParser) p = json_parser_new();
    char *reply = NULL;
    JsonNode *root;
    gboolean ok;

    if (virDomainQemuMonitorCommand(q->dom, text, &reply, 0) < 0) {
        *errmsg = libvirt_error();
        return -EIO;
    }
    ok = json_parser_load_from_data(p, reply, -1, NULL);
    free(reply);
    root = ok ? json_parser_get_root(p) : NULL;
    if (!root || !JSON_NODE_HOLDS_OBJECT(root))
        return -EPROTO;
    *msg = json_node_copy(root);
    return 0;
}
#endif

int blkin_qmp_execute(BlkinQmp *q, const char *command, JsonNode *args,
                      JsonNode **result, char **errmsg)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) req = NULL, msg = NULL;
    g_autofree char *text = NULL;
    JsonObject *o;
    int r;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "execute");
    json_builder_add_string_value(b, command);
    if (args) {
        json_builder_set_member_name(b, "arguments");
        json_builder_add_value(b, json_node_copy(args));
    }
    json_builder_end_object(b);
    req = json_builder_get_root(b);
    text = json_to_string(req, FALSE);
#ifdef BLKIN_LIVE_LIBVIRT
    if (q->dom)
        r = libvirt_command(q, text, &msg, errmsg);
    else
#endif
    {
        r = write_all(q, text, strlen(text));
        if (r >= 0)
            r = write_all(q, "\n", 1);
        if (r >= 0)
            r = read_message(q, &msg);
    }
    if (r < 0 && *errmsg)
        return r;
    if (r < 0) {
        *errmsg = g_strdup_printf("QMP %s: %s", command, g_strerror(-r));
        return r;
    }
    o = json_node_get_object(msg);
    if (json_object_has_member(o, "error")) {
        JsonObject *e = json_object_get_object_member(o, "error");
        const char *desc =
            e ? json_object_get_string_member_with_default(e, "desc", "?")
              : "?";

        *errmsg = g_strdup(desc);
        return -EREMOTEIO;
    }
    if (!json_object_has_member(o, "return")) {
        *errmsg = g_strdup_printf("QMP %s: no return value", command);
        return -EPROTO;
    }
    if (result)
        *result = json_node_copy(json_object_get_member(o, "return"));
    return 0;
}

int blkin_qmp_hmp(BlkinQmp *q, const char *command_line, char **output,
                  char **errmsg)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) args = NULL, ret = NULL;
    int r;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "command-line");
    json_builder_add_string_value(b, command_line);
    json_builder_end_object(b);
    args = json_builder_get_root(b);
    r = blkin_qmp_execute(q, "human-monitor-command", args, &ret, errmsg);
    if (r < 0)
        return r;
    *output =
        g_strdup(JSON_NODE_HOLDS_VALUE(ret) ? json_node_get_string(ret) : "");
    if (!*output)
        *output = g_strdup("");
    return 0;
}

int blkin_qmp_open_libvirt(const char *uri, const char *domain, BlkinQmp **ret,
                           char **errmsg)
{
#ifdef BLKIN_LIVE_LIBVIRT
    g_autoptr(BlkinQmp) q = g_new0(BlkinQmp, 1);
    g_autofree char *pidfile = NULL, *text = NULL;

    q->fd = -1;
    virSetErrorFunc(NULL, libvirt_quiet);
    q->conn = virConnectOpen(uri);
    if (!q->conn) {
        *errmsg = g_strdup_printf("cannot connect to libvirt: %s",
                                  virGetLastErrorMessage());
        return -ECONNREFUSED;
    }
    q->dom = virDomainLookupByName(q->conn, domain);
    if (!q->dom) {
        *errmsg = g_strdup_printf("no libvirt domain %s", domain);
        return -ENOENT;
    }
    if (virDomainIsActive(q->dom) != 1) {
        *errmsg = g_strdup_printf("libvirt domain %s is not running", domain);
        return -ESRCH;
    }
    /* libvirt's QEMU driver keeps the process's pid here (system and session
     * instances alike name it <domain>.pid); unknown is allowed. */
    pidfile = g_strdup_printf("/run/libvirt/qemu/%s.pid", domain);
    if (g_file_get_contents(pidfile, &text, NULL, NULL))
        q->peer = (pid_t)g_ascii_strtoll(text, NULL, 10);
    *ret = g_steal_pointer(&q);
    return 0;
#else
    *errmsg = g_strdup("blkin-live was built without libvirt "
                       "(libvirt-dev, deps/60-libvirt.list)");
    return -ENOTSUP;
#endif
}

int blkin_qmp_open(const char *path, int timeout_ms, BlkinQmp **ret,
                   char **errmsg)
{
    g_autoptr(BlkinQmp) q = g_new0(BlkinQmp, 1);
    g_autoptr(JsonNode) greeting = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    int r;

    q->fd = -1;
    q->buf = g_string_new(NULL);
    q->timeout_ms = timeout_ms;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        *errmsg = g_strdup_printf("%s: path too long for a UNIX socket", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0)
        return -errno;
    if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        *errmsg = g_strdup_printf("cannot connect to the QMP socket %s: %s",
                                  path, g_strerror(-r));
        return r;
    }
    if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
        q->peer = cred.pid;
    r = read_message(q, &greeting);
    if (r == -ETIMEDOUT) {
        *errmsg = g_strdup_printf(
            "%s: no QMP greeting within %d ms (is another client connected? "
            "QEMU's monitor serves one at a time)",
            path, timeout_ms);
        return r;
    }
    if (r < 0 ||
        !json_object_has_member(json_node_get_object(greeting), "QMP")) {
        *errmsg = g_strdup_printf("%s: not a QMP monitor", path);
        return r < 0 ? r : -EPROTO;
    }
    r = blkin_qmp_execute(q, "qmp_capabilities", NULL, NULL, errmsg);
    if (r < 0)
        return r;
    *ret = g_steal_pointer(&q);
    return 0;
}
