/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp.c: a minimal synchronous QMP client (see qmp.h).
 */
#define G_LOG_DOMAIN "blkin-qmp"

#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef BLKIN_LIVE_LIBVIRT
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#endif

G_DEFINE_QUARK(blkin - qmp - error - quark, blkin_qmp_error)

struct BlkinQmp {
    int fd;
    int timeout_ms;
    GString *buf; /* bytes read but not yet consumed as lines */
    pid_t peer;
#ifdef BLKIN_LIVE_LIBVIRT
    virConnectPtr conn; /* set: commands go through libvirtd instead */
    virDomainPtr dom;
    char *domain;
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
    g_free(q->domain);
#endif
    g_free(q);
}

pid_t blkin_qmp_peer_pid(BlkinQmp *q)
{
    return q->peer;
}

const char *blkin_qmp_libvirt_domain(BlkinQmp *q)
{
#ifdef BLKIN_LIVE_LIBVIRT
    return q->domain;
#else
    return NULL;
#endif
}

/* The two system-call loops below return a negative errno, which
 * read_message() turns into the error. */

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

static void set_errno_error(GError **error, int err)
{
    g_set_error_literal(error, BLKIN_QMP_ERROR,
                        err == ETIMEDOUT ? BLKIN_QMP_ERROR_TIMEOUT
                        : err == EPROTO  ? BLKIN_QMP_ERROR_PROTOCOL
                                         : BLKIN_QMP_ERROR_FAILED,
                        g_strerror(err));
}

/* The next message that is not an asynchronous event. */
static JsonNode *read_message(BlkinQmp *q, GError **error)
{
    for (;;) {
        g_autofree char *line = NULL;
        g_autoptr(JsonParser) p = json_parser_new();
        JsonNode *root;
        int r;

        r = read_line(q, &line);
        if (r < 0) {
            set_errno_error(error, -r);
            return NULL;
        }
        root = json_parser_load_from_data(p, line, -1, NULL)
                   ? json_parser_get_root(p)
                   : NULL;
        if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
            set_errno_error(error, EPROTO);
            return NULL;
        }
        /* Events (BLOCK_JOB_*, RESUME, ...) may come between a command and
         * its answer; nothing here needs them. */
        if (json_object_has_member(json_node_get_object(root), "event"))
            continue;
        return json_node_copy(root);
    }
}

#ifdef BLKIN_LIVE_LIBVIRT
/* libvirt prints every error on stderr by default; ours says it once. */
static void libvirt_quiet(void *opaque, virErrorPtr err)
{
}

static const char *libvirt_error(void)
{
    const char *m = virGetLastErrorMessage();

    return m ? m : "unknown libvirt error";
}

/* One QMP exchange through libvirtd; the reply has QMP's own form. */
static JsonNode *libvirt_command(BlkinQmp *q, const char *text, GError **error)
{
    g_autoptr(JsonParser) p = json_parser_new();
    char *reply = NULL;
    JsonNode *root;
    gboolean ok;

    if (virDomainQemuMonitorCommand(q->dom, text, &reply, 0) < 0) {
        g_set_error_literal(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_FAILED,
                            libvirt_error());
        return NULL;
    }
    ok = json_parser_load_from_data(p, reply, -1, NULL);
    free(reply);
    root = ok ? json_parser_get_root(p) : NULL;
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        set_errno_error(error, EPROTO);
        return NULL;
    }
    return json_node_copy(root);
}
#endif

/* Sends @text and returns QEMU's answer; failures before an answer are
 * "QMP <command>: <reason>" (libvirt's own message as it is). */
static JsonNode *exchange(BlkinQmp *q, const char *command, const char *text,
                          GError **error)
{
    g_autoptr(GError) err = NULL;
    JsonNode *msg;
    int r;

#ifdef BLKIN_LIVE_LIBVIRT
    if (q->dom) {
        msg = libvirt_command(q, text, &err);
        if (!msg && err->code != BLKIN_QMP_ERROR_FAILED)
            g_prefix_error(&err, "QMP %s: ", command);
        if (!msg)
            g_propagate_error(error, g_steal_pointer(&err));
        return msg;
    }
#endif
    r = write_all(q, text, strlen(text));
    if (r >= 0)
        r = write_all(q, "\n", 1);
    if (r < 0) {
        set_errno_error(&err, -r);
        msg = NULL;
    } else {
        msg = read_message(q, &err);
    }
    if (!msg) {
        g_prefix_error(&err, "QMP %s: ", command);
        g_propagate_error(error, g_steal_pointer(&err));
    }
    return msg;
}

gboolean blkin_qmp_execute(BlkinQmp *q, const char *command, JsonNode *args,
                           JsonNode **result, GError **error)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) req = NULL, msg = NULL;
    g_autofree char *text = NULL;
    JsonObject *o;

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
    msg = exchange(q, command, text, error);
    if (!msg)
        return FALSE;
    o = json_node_get_object(msg);
    if (json_object_has_member(o, "error")) {
        JsonObject *e = json_object_get_object_member(o, "error");
        const char *desc =
            e ? json_object_get_string_member_with_default(e, "desc", "?")
              : "?";

        g_set_error_literal(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_COMMAND,
                            desc);
        return FALSE;
    }
    if (!json_object_has_member(o, "return")) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_PROTOCOL,
                    "QMP %s: no return value", command);
        return FALSE;
    }
    if (result)
        *result = json_node_copy(json_object_get_member(o, "return"));
    return TRUE;
}

char *blkin_qmp_hmp(BlkinQmp *q, const char *command_line, GError **error)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) args = NULL, ret = NULL;
    const char *out;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "command-line");
    json_builder_add_string_value(b, command_line);
    json_builder_end_object(b);
    args = json_builder_get_root(b);
    if (!blkin_qmp_execute(q, "human-monitor-command", args, &ret, error))
        return NULL;
    out = JSON_NODE_HOLDS_VALUE(ret) ? json_node_get_string(ret) : NULL;
    return g_strdup(out ? out : "");
}

BlkinQmp *blkin_qmp_open_libvirt(const char *uri, const char *domain,
                                 GError **error)
{
#ifdef BLKIN_LIVE_LIBVIRT
    g_autoptr(BlkinQmp) q = g_new0(BlkinQmp, 1);
    g_autofree char *pidfile = NULL, *text = NULL;

    q->fd = -1;
    virSetErrorFunc(NULL, libvirt_quiet);
    q->conn = virConnectOpen(uri);
    if (!q->conn) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_CONNECT,
                    "cannot connect to libvirt: %s", virGetLastErrorMessage());
        return NULL;
    }
    q->dom = virDomainLookupByName(q->conn, domain);
    if (!q->dom) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_NOENT,
                    "no libvirt domain %s", domain);
        return NULL;
    }
    if (virDomainIsActive(q->dom) != 1) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_NOT_RUNNING,
                    "libvirt domain %s is not running", domain);
        return NULL;
    }
    q->domain = g_strdup(virDomainGetName(q->dom));
    if (!q->domain)
        q->domain = g_strdup(domain);
    /* libvirt's QEMU driver keeps the process's pid here (system and session
     * instances alike name it <domain>.pid); unknown is allowed. */
    pidfile = g_strdup_printf("/run/libvirt/qemu/%s.pid", domain);
    if (g_file_get_contents(pidfile, &text, NULL, NULL))
        q->peer = (pid_t)g_ascii_strtoll(text, NULL, 10);
    return g_steal_pointer(&q);
#else
    g_set_error_literal(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_UNSUPPORTED,
                        "blkin-live was built without libvirt "
                        "(libvirt-dev, deps/60-libvirt.list)");
    return NULL;
#endif
}

#ifdef BLKIN_LIVE_LIBVIRT
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlXPathContext, xmlXPathFreeContext)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlXPathObject, xmlXPathFreeObject)
#endif

char *blkin_qmp_libvirt_target(BlkinQmp *q, const char *alias, GError **error)
{
#ifdef BLKIN_LIVE_LIBVIRT
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(xmlXPathContext) ctx = NULL;
    g_autoptr(xmlXPathObject) res = NULL;
    g_autofree char *expr = NULL;
    char *xml;

    if (!q->dom) {
        g_set_error_literal(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_UNSUPPORTED,
                            "not a libvirt domain");
        return NULL;
    }
    /* An alias is a QEMU id: no quote in it can end the XPath literal. */
    if (strchr(alias, '\'')) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_NOENT,
                    "libvirt domain %s has no disk with alias %s", q->domain,
                    alias);
        return NULL;
    }
    xml = virDomainGetXMLDesc(q->dom, 0);
    if (!xml) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_FAILED,
                    "cannot read libvirt domain %s's definition: %s", q->domain,
                    libvirt_error());
        return NULL;
    }
    doc = xmlReadMemory(xml, strlen(xml), "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR |
                            XML_PARSE_NOWARNING);
    free(xml);
    ctx = doc ? xmlXPathNewContext(doc) : NULL;
    expr = g_strdup_printf(
        "string(/domain/devices/disk[alias/@name='%s']/target/@dev)", alias);
    res = ctx ? xmlXPathEvalExpression(BAD_CAST expr, ctx) : NULL;
    if (!res || res->type != XPATH_STRING || !res->stringval ||
        !*res->stringval) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_NOENT,
                    "libvirt domain %s has no disk with alias %s", q->domain,
                    alias);
        return NULL;
    }
    return g_strdup((const char *)res->stringval);
#else
    g_set_error_literal(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_UNSUPPORTED,
                        "blkin-live was built without libvirt "
                        "(libvirt-dev, deps/60-libvirt.list)");
    return NULL;
#endif
}

BlkinQmp *blkin_qmp_open(const char *path, int timeout_ms, GError **error)
{
    g_autoptr(BlkinQmp) q = g_new0(BlkinQmp, 1);
    g_autoptr(JsonNode) greeting = NULL;
    g_autoptr(GError) err = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct ucred cred;
    socklen_t clen = sizeof(cred);

    q->fd = -1;
    q->buf = g_string_new(NULL);
    q->timeout_ms = timeout_ms;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_CONNECT,
                    "%s: path too long for a UNIX socket", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0) {
        set_errno_error(error, errno);
        return NULL;
    }
    if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;

        g_set_error(
            error, BLKIN_QMP_ERROR,
            e == ENOENT ? BLKIN_QMP_ERROR_NOENT : BLKIN_QMP_ERROR_CONNECT,
            "cannot connect to the QMP socket %s: %s", path, g_strerror(e));
        return NULL;
    }
    if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
        q->peer = cred.pid;
    greeting = read_message(q, &err);
    if (g_error_matches(err, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_TIMEOUT)) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_TIMEOUT,
                    "%s: no QMP greeting within %d ms (is another client "
                    "connected? QEMU's monitor serves one at a time)",
                    path, timeout_ms);
        return NULL;
    }
    if (!greeting ||
        !json_object_has_member(json_node_get_object(greeting), "QMP")) {
        g_set_error(error, BLKIN_QMP_ERROR, BLKIN_QMP_ERROR_PROTOCOL,
                    "%s: not a QMP monitor", path);
        return NULL;
    }
    if (!blkin_qmp_execute(q, "qmp_capabilities", NULL, NULL, error))
        return NULL;
    return g_steal_pointer(&q);
}
