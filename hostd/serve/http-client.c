/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * http-client.c: the exporters' HTTP(S) client on libcurl (http-client.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "http-client.h"

#include <curl/curl.h>
#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define DEFAULT_TIMEOUT_S 10
/* The body of a failed answer quoted in the error, at most. */
#define ERROR_BODY_MAX 200
/* What an answer may hold (a report from ClickHouse is the largest). */
#define ANSWER_MAX (256u << 20)

struct HostdHttp {
    CURL *curl;
    struct curl_slist *headers; /* the configured ones */
    char *url;
    gboolean gzip;
    char errbuf[CURL_ERROR_SIZE];
};

static gpointer global_init(gpointer unused)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return NULL;
}

HostdHttpConfig *hostd_http_config_new(const char *url, GError **err)
{
    g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_HAS_PASSWORD, err);
    HostdHttpConfig *c;
    const char *scheme;

    if (!uri)
        return NULL;
    scheme = g_uri_get_scheme(uri);
    if ((g_strcmp0(scheme, "http") && g_strcmp0(scheme, "https")) ||
        !g_uri_get_host(uri) || !*g_uri_get_host(uri)) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "%s: expected http(s)://HOST[:PORT]/PATH", url);
        return NULL;
    }
    if (g_uri_get_password(uri)) {
        g_autofree char *shown =
            g_uri_to_string_partial(uri, G_URI_HIDE_PASSWORD);

        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "%s: a password in the URL would show on command lines "
                    "and in logs; give user and password-file in the "
                    "exporter's section of hostd.conf",
                    shown);
        return NULL;
    }
    c = g_new0(HostdHttpConfig, 1);
    c->url = g_strdup(url);
    c->timeout_s = DEFAULT_TIMEOUT_S;
    return c;
}

void hostd_http_config_free(HostdHttpConfig *c)
{
    if (!c)
        return;
    g_free(c->url);
    g_free(c->ca_file);
    g_free(c->cert_file);
    g_free(c->key_file);
    g_free(c->user);
    if (c->secret) {
        explicit_bzero(c->secret, strlen(c->secret));
        g_free(c->secret);
    }
    g_strfreev(c->headers);
    g_free(c);
}

/* A secret from @path: its first line, without the line end. */
static char *read_secret(const char *group, const char *key, const char *path,
                         GError **err)
{
    g_autofree char *text = NULL;
    struct stat st;
    char *nl;

    if (!g_file_get_contents(path, &text, NULL, err)) {
        g_prefix_error(err, "[%s] %s: ", group, key);
        return NULL;
    }
    if (stat(path, &st) == 0 && (st.st_mode & S_IROTH))
        g_warning("[%s] %s: %s can be read by every user; make it 0600 or "
                  "0640",
                  group, key, path);
    nl = strpbrk(text, "\r\n");
    if (nl)
        *nl = '\0';
    if (!*text) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "[%s] %s: %s is empty", group, key, path);
        return NULL;
    }
    return g_steal_pointer(&text);
}

/* "Name: value" with a token as name and no line breaks. */
static gboolean header_ok(const char *h)
{
    const char *colon = strchr(h, ':');

    if (!colon || colon == h || strpbrk(h, "\r\n"))
        return FALSE;
    for (const char *p = h; p < colon; p++)
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_')
            return FALSE;
    return TRUE;
}

static gboolean add_headers(GPtrArray *out, const char *group, char **list,
                            const char *where, GError **err)
{
    for (char **l = list; l && *l; l++) {
        g_autofree char *h = g_strstrip(g_strdup(*l));

        if (!*h)
            continue;
        if (!header_ok(h)) {
            g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "[%s] %s: '%s' is not a header (Name: value)", group,
                        where, h);
            return FALSE;
        }
        g_ptr_array_add(out, g_steal_pointer(&h));
    }
    return TRUE;
}

HostdHttpConfig *hostd_http_config_from_keyfile(GKeyFile *kf, const char *group,
                                                const char *url, GError **err)
{
    static const char *const
        known[] = {"url",      "ca-file",      "cert-file",     "key-file",
                   "auth",     "user",         "password-file", "token-file",
                   "headers",  "headers-file", "gzip",          "timeout-s",
                   "encoding", /* the exporter's own (span-export.c) */
                   NULL};
    g_autoptr(HostdHttpConfig) c = NULL;
    g_autofree char *kurl = NULL, *auth = NULL, *pw = NULL, *tok = NULL;
    g_autofree char *hfile = NULL;
    g_auto(GStrv) keys = NULL, list = NULL;
    g_autoptr(GPtrArray) headers = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) e = NULL;

    keys = g_key_file_get_keys(kf, group, NULL, NULL);
    for (char **k = keys; k && *k; k++)
        if (!g_strv_contains(known, *k)) {
            g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                        "[%s] has no key '%s'", group, *k);
            return NULL;
        }
    kurl = g_key_file_get_string(kf, group, "url", NULL);
    if (!url && !kurl) {
        g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                    "[%s] has no url", group);
        return NULL;
    }
    c = hostd_http_config_new(url ? url : kurl, err);
    if (!c)
        return NULL;
    c->ca_file = g_key_file_get_string(kf, group, "ca-file", NULL);
    c->cert_file = g_key_file_get_string(kf, group, "cert-file", NULL);
    c->key_file = g_key_file_get_string(kf, group, "key-file", NULL);
    c->user = g_key_file_get_string(kf, group, "user", NULL);
    auth = g_key_file_get_string(kf, group, "auth", NULL);
    pw = g_key_file_get_string(kf, group, "password-file", NULL);
    tok = g_key_file_get_string(kf, group, "token-file", NULL);
    if (!auth || g_str_equal(auth, "none")) {
        c->auth = HOSTD_HTTP_AUTH_NONE;
    } else if (g_str_equal(auth, "basic")) {
        c->auth = HOSTD_HTTP_AUTH_BASIC;
        if (!c->user || !pw) {
            g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                        "[%s] auth = basic needs user and password-file",
                        group);
            return NULL;
        }
        if (!(c->secret = read_secret(group, "password-file", pw, err)))
            return NULL;
    } else if (g_str_equal(auth, "bearer")) {
        c->auth = HOSTD_HTTP_AUTH_BEARER;
        if (!tok) {
            g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                        "[%s] auth = bearer needs token-file", group);
            return NULL;
        }
        if (!(c->secret = read_secret(group, "token-file", tok, err)))
            return NULL;
    } else {
        g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                    "[%s] auth must be none, basic or bearer", group);
        return NULL;
    }
    list = g_key_file_get_string_list(kf, group, "headers", NULL, NULL);
    if (!add_headers(headers, group, list, "headers", err))
        return NULL;
    hfile = g_key_file_get_string(kf, group, "headers-file", NULL);
    if (hfile) {
        g_autofree char *text = NULL;
        g_auto(GStrv) lines = NULL;

        if (!g_file_get_contents(hfile, &text, NULL, err)) {
            g_prefix_error(err, "[%s] headers-file: ", group);
            return NULL;
        }
        lines = g_strsplit(text, "\n", -1);
        if (!add_headers(headers, group, lines, hfile, err))
            return NULL;
        explicit_bzero(text, strlen(text));
    }
    if (headers->len) {
        g_ptr_array_add(headers, NULL);
        c->headers =
            (char **)g_ptr_array_free(g_steal_pointer(&headers), FALSE);
    }
    if (g_key_file_has_key(kf, group, "gzip", NULL)) {
        c->gzip = g_key_file_get_boolean(kf, group, "gzip", &e);
        if (e) {
            g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "[%s] gzip must be true or false", group);
            return NULL;
        }
    }
    if (g_key_file_has_key(kf, group, "timeout-s", NULL)) {
        int t = g_key_file_get_integer(kf, group, "timeout-s", &e);

        if (e || t < 1 || t > 600) {
            g_set_error(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                        "[%s] timeout-s must be 1 to 600", group);
            return NULL;
        }
        c->timeout_s = (unsigned)t;
    }
    return g_steal_pointer(&c);
}

HostdHttp *hostd_http_new(const HostdHttpConfig *c, GError **err)
{
    static GOnce once = G_ONCE_INIT;
    HostdHttp *h;

    g_once(&once, global_init, NULL);
    h = g_new0(HostdHttp, 1);
    h->curl = curl_easy_init();
    if (!h->curl) {
        g_free(h);
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "libcurl could not be initialised");
        return NULL;
    }
    h->url = g_strdup(c->url);
    h->gzip = c->gzip;
    for (char **l = c->headers; l && *l; l++)
        h->headers = curl_slist_append(h->headers, *l);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, (long)c->timeout_s);
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT,
                     (long)MIN(c->timeout_s, 5u));
    /* Only http and https, also across redirects (which are not followed
     * anyway: a collector that moves is a configuration matter). */
    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Answers may be compressed; libcurl decompresses. */
    curl_easy_setopt(h->curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "blkin/" BLKIN_VERSION);
    if (c->ca_file)
        curl_easy_setopt(h->curl, CURLOPT_CAINFO, c->ca_file);
    if (c->cert_file)
        curl_easy_setopt(h->curl, CURLOPT_SSLCERT, c->cert_file);
    if (c->key_file)
        curl_easy_setopt(h->curl, CURLOPT_SSLKEY, c->key_file);
    if (c->auth == HOSTD_HTTP_AUTH_BASIC) {
        curl_easy_setopt(h->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h->curl, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h->curl, CURLOPT_PASSWORD, c->secret);
    } else if (c->auth == HOSTD_HTTP_AUTH_BEARER) {
        curl_easy_setopt(h->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(h->curl, CURLOPT_XOAUTH2_BEARER, c->secret);
    }
    return h;
}

void hostd_http_free(HostdHttp *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    g_free(h->url);
    g_free(h);
}

GBytes *hostd_http_gzip(const void *data, size_t len)
{
    z_stream z = {0};
    GByteArray *out = g_byte_array_sized_new(len / 4 + 64);
    int r;

    /* 15 + 16: a gzip header and trailer, not zlib's. */
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        g_error("deflateInit2 failed");
    g_byte_array_set_size(out, deflateBound(&z, len));
    z.next_in = (Bytef *)data;
    z.avail_in = len;
    z.next_out = out->data;
    z.avail_out = out->len;
    r = deflate(&z, Z_FINISH);
    g_assert(r == Z_STREAM_END);
    g_byte_array_set_size(out, z.total_out);
    deflateEnd(&z);
    return g_byte_array_free_to_bytes(out);
}

static size_t on_data(char *ptr, size_t size, size_t n, void *user)
{
    GByteArray *a = user;

    if (a->len + size * n > ANSWER_MAX)
        return 0; /* libcurl fails the transfer */
    g_byte_array_append(a, (guint8 *)ptr, size * n);
    return size * n;
}

gboolean hostd_http_post(HostdHttp *h, const char *query,
                         const char *content_type, const void *body, size_t len,
                         long *status, GByteArray *answer, GError **err)
{
    g_autoptr(GByteArray) got = g_byte_array_new();
    g_autoptr(GBytes) gz = NULL;
    g_autofree char *url = NULL, *ctype = NULL;
    struct curl_slist *hdr = NULL, *last;
    long code = 0;
    CURLcode r;

    if (query && *query)
        url = g_strconcat(h->url, strchr(h->url, '?') ? "&" : "?", query, NULL);
    if (h->gzip) {
        gz = hostd_http_gzip(body, len);
        body = g_bytes_get_data(gz, &len);
    }
    /* The configured headers, then this request's own (the slist is
     * extended for this call and cut back after). */
    ctype = g_strdup_printf("Content-Type: %s", content_type);
    hdr = h->headers;
    last = curl_slist_append(NULL, ctype);
    if (h->gzip)
        last = curl_slist_append(last, "Content-Encoding: gzip");
    /* No "Expect: 100-continue" round trip before a large body. */
    last = curl_slist_append(last, "Expect:");
    if (hdr) {
        struct curl_slist *t = hdr;

        while (t->next)
            t = t->next;
        t->next = last;
    } else {
        hdr = last;
    }
    h->errbuf[0] = '\0';
    curl_easy_setopt(h->curl, CURLOPT_URL, url ? url : h->url);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, answer ? answer : got);
    r = curl_easy_perform(h->curl);
    /* Detach this request's headers from the configured ones. */
    if (h->headers) {
        struct curl_slist *t = h->headers;

        while (t->next != last)
            t = t->next;
        t->next = NULL;
    }
    curl_slist_free_all(last);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
    if (r != CURLE_OK) {
        *status = 0;
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "%s",
                    h->errbuf[0] ? h->errbuf : curl_easy_strerror(r));
        return FALSE;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
    *status = code;
    if (code < 200 || code > 299) {
        GByteArray *a = answer ? answer : got;
        size_t n = MIN(a->len, ERROR_BODY_MAX);
        g_autofree char *quoted =
            n ? g_strndup((char *)a->data, n) : g_strdup("");

        g_strdelimit(g_strstrip(quoted), "\r\n", ' ');
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "HTTP %ld%s%s", code,
                    *quoted ? ": " : "", quoted);
        return FALSE;
    }
    return TRUE;
}
