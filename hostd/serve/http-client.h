/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * http-client.h: the HTTP(S) client every exporter posts with (span export,
 * the ClickHouse store) and `blkin report --store` reads with: libcurl, one
 * connection kept alive per client.
 *
 * What an operator configures, per exporter, in a section of hostd.conf
 * (docs/hostd.md, "Exporters"):
 *
 *   url = https://collector.example:4318/v1/traces
 *   ca-file = /etc/blkin/ca.pem          verify the server with this CA
 *                                        (default: the system's CAs)
 *   cert-file = ..., key-file = ...      a client certificate (mutual TLS)
 *   auth = none | basic | bearer
 *   user = blkin                         basic
 *   password-file = /etc/blkin/x.secret  basic: the password, read from a file
 *   token-file = /etc/blkin/x.token      bearer: the token, read from a file
 *   headers = X-Scope-OrgID: a;X-B: b    extra headers (';' between them)
 *   headers-file = /etc/blkin/x.headers  extra headers with secrets, one a line
 *   gzip = true                          compress request bodies
 *   timeout-s = 10                       per request
 *
 * Secrets come from files only: a URL with a password in it is refused, so
 * that no secret appears on a command line (ps, shell history) or in the
 * config file itself. A secret file that others can read is used, with a
 * warning. Files are read when the exporter is created (a restart picks up
 * a rotated token).
 *
 * Ownership: a HostdHttpConfig owns its strings; a HostdHttp copies what it
 * needs from the config and owns its libcurl handle. A HostdHttp is used by
 * one thread at a time.
 */
#ifndef HOSTD_SERVE_HTTP_CLIENT_H
#define HOSTD_SERVE_HTTP_CLIENT_H

#include <glib.h>

typedef enum HostdHttpAuth {
    HOSTD_HTTP_AUTH_NONE,
    HOSTD_HTTP_AUTH_BASIC,
    HOSTD_HTTP_AUTH_BEARER,
} HostdHttpAuth;

typedef struct HostdHttpConfig {
    char *url;
    char *ca_file;   /* NULL: the system's CAs */
    char *cert_file; /* client certificate, or NULL */
    char *key_file;
    HostdHttpAuth auth;
    char *user;     /* basic */
    char *secret;   /* the password (basic) or token (bearer), from its file */
    char **headers; /* "Name: value", NULL-terminated (may be NULL) */
    gboolean gzip;
    unsigned timeout_s;
} HostdHttpConfig;

/* A config for @url with the defaults (no TLS options, no auth, no gzip,
 * 10 s). NULL and an error if @url is not http(s):// or carries a
 * password. */
HostdHttpConfig *hostd_http_config_new(const char *url, GError **err);
void hostd_http_config_free(HostdHttpConfig *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdHttpConfig, hostd_http_config_free)

/*
 * The config of section @group of @kf: its keys above (url only if @url is
 * NULL: a URL given on the command line wins), secrets read from their
 * files. NULL and an error for a missing url, an unknown key or auth, an
 * unreadable file.
 */
HostdHttpConfig *hostd_http_config_from_keyfile(GKeyFile *kf, const char *group,
                                                const char *url, GError **err);

typedef struct HostdHttp HostdHttp;

HostdHttp *hostd_http_new(const HostdHttpConfig *c, GError **err);
void hostd_http_free(HostdHttp *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdHttp, hostd_http_free)

/*
 * POSTs @len bytes of @body (gzip-compressed if configured) to the URL, with
 * @query appended to its query string if not NULL ("query=INSERT..."). The
 * answer's status goes to *@status (0: no answer) and, if @answer, its body
 * (decompressed) is appended there. TRUE on a 2xx answer; otherwise an
 * error saying what happened (the status line and the start of the body,
 * or libcurl's reason).
 */
gboolean hostd_http_post(HostdHttp *h, const char *query,
                         const char *content_type, const void *body, size_t len,
                         long *status, GByteArray *answer, GError **err);

/* gzip of @len bytes of @data (exposed for tests). */
GBytes *hostd_http_gzip(const void *data, size_t len);

#endif
