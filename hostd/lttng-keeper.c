/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lttng-keeper.c: the live session kept in place by running the
 * blkin-lttng-session helper (lttng-keeper.h).
 *
 * A helper rather than liblttng-ctl: the session's channel is defined once,
 * in the shipped blkin-lttng-channel script that operators and tests use
 * too, and the helper runs the same way by hand.
 */
#define G_LOG_DOMAIN "blkin-hostd"

#include "lttng-keeper.h"

#include <gio/gio.h>
#include <string.h>

#define TICK_S        1
#define GRACE_NS      (2 * G_GINT64_CONSTANT(1000000000))
#define BACKOFF_MIN_S 2
#define BACKOFF_MAX_S 30
/* In place, yet nothing to read: an idle node (no QEMU traced yet) looks
 * the same as a relay that lost the session, which the helper tells apart;
 * look again less and less often. */
#define CHECK_MIN_S       5
#define CHECK_MAX_S       60
#define HELPER_TIMEOUT_NS (60 * G_GINT64_CONSTANT(1000000000))

/* What the helper said last (its exit status and word). */
typedef enum {
    OUTCOME_NONE,
    OUTCOME_OK,          /* in place, nothing done */
    OUTCOME_CREATED,     /* made (there was none) */
    OUTCOME_STARTED,     /* was there, stopped */
    OUTCOME_RECREATED,   /* was there, not served by the relay: made again */
    OUTCOME_NO_SESSIOND, /* exit 3 */
    OUTCOME_NO_RELAY,    /* exit 4 */
    OUTCOME_FAILED,      /* anything else; the reason in last_error */
} Outcome;

static const char *const outcome_names[] = {
    "none",          "ok",         "created", "started", "recreated",
    "sessiond-down", "relay-down", "failed",
};

struct HostdLttngKeeper {
    char *session;
    char *live_url;
    char *relay_url; /* NULL: the helper's default */
    char *helper;
    const HostdLiveHealth *health; /* borrowed */
    guint timer;
    GCancellable *cancel; /* of the helper running, if any */
    GSubprocess *proc;    /* the helper running (borrowed from the call) */
    gboolean running;
    int64_t run_started_ns;
    int64_t next_run_ns;
    unsigned backoff_s; /* while something is down */
    unsigned check_s;   /* while in place but not read */
    Outcome outcome;
    char *last_error;
    uint64_t runs;
};

static int64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

static gboolean outcome_is_success(Outcome o)
{
    return o >= OUTCOME_OK && o <= OUTCOME_RECREATED;
}

/* One line per change of outcome (and per new failure reason). */
static void log_outcome(HostdLttngKeeper *k, Outcome o, const char *why)
{
    gboolean same = o == k->outcome &&
                    (o != OUTCOME_FAILED || !g_strcmp0(why, k->last_error));

    /* Actions are logged each time; states when they change. */
    if (same && o != OUTCOME_CREATED && o != OUTCOME_STARTED &&
        o != OUTCOME_RECREATED)
        return;
    switch (o) {
    case OUTCOME_OK:
        if (!outcome_is_success(k->outcome) && k->outcome != OUTCOME_NONE)
            g_message("lttng: the live session %s is in place", k->session);
        break;
    case OUTCOME_CREATED:
        g_message("lttng: created the live session %s", k->session);
        break;
    case OUTCOME_STARTED:
        g_message("lttng: started the live session %s, which was stopped",
                  k->session);
        break;
    case OUTCOME_RECREATED:
        g_message("lttng: the relay did not serve the live session %s "
                  "(restarted?); re-created it",
                  k->session);
        break;
    case OUTCOME_NO_SESSIOND:
        g_warning("lttng: lttng-sessiond is not running; the live session "
                  "%s is set up when it is (retrying)",
                  k->session);
        break;
    case OUTCOME_NO_RELAY:
        g_warning("lttng: the relay daemon cannot be reached; the live "
                  "session %s is set up when it can (retrying)",
                  k->session);
        break;
    case OUTCOME_FAILED:
        g_warning("lttng: setting up the live session %s failed: %s "
                  "(retrying)",
                  k->session, why ? why : "?");
        break;
    case OUTCOME_NONE:
        break;
    }
}

static void helper_done(GObject *source, GAsyncResult *res, gpointer user)
{
    GSubprocess *proc = G_SUBPROCESS(source);
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL, *errtext = NULL;
    HostdLttngKeeper *k;
    Outcome o;
    int64_t now;

    if (!g_subprocess_communicate_utf8_finish(proc, res, &out, &errtext,
                                              &err) &&
        g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
        g_object_unref(proc);
        return; /* the keeper is gone */
    }
    k = user;
    now = now_ns();
    k->running = FALSE;
    k->proc = NULL;
    g_clear_object(&k->cancel);
    if (err) {
        o = OUTCOME_FAILED;
        errtext = g_strdup(err->message);
    } else if (!g_subprocess_get_if_exited(proc)) {
        o = OUTCOME_FAILED;
        g_free(errtext);
        errtext = g_strdup("the helper was killed");
    } else {
        int rc = g_subprocess_get_exit_status(proc);

        g_strstrip(out);
        g_strstrip(errtext);
        if (rc == 3)
            o = OUTCOME_NO_SESSIOND;
        else if (rc == 4)
            o = OUTCOME_NO_RELAY;
        else if (rc != 0)
            o = OUTCOME_FAILED;
        else if (g_str_equal(out, "created"))
            o = OUTCOME_CREATED;
        else if (g_str_equal(out, "started"))
            o = OUTCOME_STARTED;
        else if (g_str_equal(out, "recreated"))
            o = OUTCOME_RECREATED;
        else
            o = OUTCOME_OK;
        if (o == OUTCOME_FAILED && !*errtext) {
            g_free(errtext);
            errtext = g_strdup_printf("exit status %d", rc);
        }
    }
    g_object_unref(proc);
    /* "blkin-lttng-session: " leads every reason: drop it in the log. */
    if (errtext && g_str_has_prefix(errtext, "blkin-lttng-session: "))
        memmove(errtext, errtext + 21, strlen(errtext + 21) + 1);
    log_outcome(k, o, errtext);
    k->outcome = o;
    g_free(k->last_error);
    k->last_error = o == OUTCOME_FAILED ? g_steal_pointer(&errtext) : NULL;
    if (outcome_is_success(o)) {
        k->backoff_s = 0;
        k->next_run_ns = now + (int64_t)k->check_s * 1000000000;
        k->check_s = MIN(k->check_s * 2, CHECK_MAX_S);
    } else {
        k->backoff_s =
            k->backoff_s ? MIN(k->backoff_s * 2, BACKOFF_MAX_S) : BACKOFF_MIN_S;
        k->next_run_ns = now + (int64_t)k->backoff_s * 1000000000;
    }
}

static void run_helper(HostdLttngKeeper *k, int64_t now)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new(
        G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
    const char *argv[] = {k->helper,
                          "ensure",
                          "--live",
                          k->live_url,
                          k->relay_url ? "--relay" : NULL,
                          k->relay_url,
                          NULL};
    GSubprocess *proc;

    proc = g_subprocess_launcher_spawnv(l, argv, &err);
    k->runs++;
    if (!proc) {
        log_outcome(k, OUTCOME_FAILED, err->message);
        k->outcome = OUTCOME_FAILED;
        g_free(k->last_error);
        k->last_error = g_strdup(err->message);
        k->backoff_s = BACKOFF_MAX_S;
        k->next_run_ns = now + (int64_t)BACKOFF_MAX_S * 1000000000;
        return;
    }
    k->running = TRUE;
    k->proc = proc;
    k->run_started_ns = now;
    k->cancel = g_cancellable_new();
    g_subprocess_communicate_utf8_async(proc, NULL, k->cancel, helper_done, k);
}

static gboolean tick(gpointer user)
{
    HostdLttngKeeper *k = user;
    int64_t now = now_ns();

    if (k->health->state == HOSTD_LIVE_CONNECTED) {
        /* Read: a later outage starts from scratch. */
        k->check_s = CHECK_MIN_S;
        k->next_run_ns = 0;
        return G_SOURCE_CONTINUE;
    }
    if (k->running) {
        if (now - k->run_started_ns > HELPER_TIMEOUT_NS)
            g_subprocess_force_exit(k->proc); /* a stuck lttng: give up */
        return G_SOURCE_CONTINUE;
    }
    if (now < k->next_run_ns || now - k->health->down_since_ns < GRACE_NS)
        return G_SOURCE_CONTINUE;
    run_helper(k, now);
    return G_SOURCE_CONTINUE;
}

HostdLttngKeeper *hostd_lttng_keeper_new(const char *live_url,
                                         const char *relay_url,
                                         const char *helper,
                                         const HostdLiveHealth *health,
                                         GError **err)
{
    g_autoptr(GUri) uri = g_uri_parse(live_url, G_URI_FLAGS_NONE, err);
    const char *path, *name;
    HostdLttngKeeper *k;

    if (!uri)
        return NULL;
    path = g_uri_get_path(uri);
    name = strrchr(path, '/');
    if (!g_uri_get_host(uri) || !name || !name[1]) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "%s: no session name to manage "
                    "(net://HOST/host/HOSTNAME/SESSION)",
                    live_url);
        return NULL;
    }
    k = g_new0(HostdLttngKeeper, 1);
    k->session = g_strdup(name + 1);
    k->live_url = g_strdup(live_url);
    k->relay_url = g_strdup(relay_url);
    k->check_s = CHECK_MIN_S;
    k->helper = g_strdup(helper);
    k->health = health;
    k->timer = g_timeout_add_seconds(TICK_S, tick, k);
    return k;
}

void hostd_lttng_keeper_free(HostdLttngKeeper *k)
{
    if (!k)
        return;
    g_clear_handle_id(&k->timer, g_source_remove);
    if (k->cancel)
        g_cancellable_cancel(k->cancel);
    g_clear_object(&k->cancel);
    g_free(k->session);
    g_free(k->live_url);
    g_free(k->relay_url);
    g_free(k->helper);
    g_free(k->last_error);
    g_free(k);
}

void hostd_lttng_keeper_json(const HostdLttngKeeper *k, JsonBuilder *b)
{
    json_builder_set_member_name(b, "session");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "managed");
    json_builder_add_boolean_value(b, k != NULL);
    if (k) {
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, k->session);
        json_builder_set_member_name(b, "relay");
        if (k->relay_url)
            json_builder_add_string_value(b, k->relay_url);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "last_outcome");
        json_builder_add_string_value(b, outcome_names[k->outcome]);
        json_builder_set_member_name(b, "last_error");
        if (k->last_error)
            json_builder_add_string_value(b, k->last_error);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "helper_runs");
        json_builder_add_int_value(b, (gint64)k->runs);
    }
    json_builder_end_object(b);
}
