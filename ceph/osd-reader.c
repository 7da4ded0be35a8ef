/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * osd-reader.c: one OSD's op tracker, read every interval in a thread of
 * its own, so that a slow or dead admin socket stalls nothing but itself.
 *
 * How an OSD keeps ops (Ceph 16, OpHistory): a finished op enters the
 * history when its last reference goes; ops older than
 * osd_op_history_duration (by initiation) leave it; and when it holds more
 * than osd_op_history_size, the SHORTEST ops leave first. So a history that
 * is full loses exactly the fast ops, silently. The reader therefore keeps
 * it from filling: it sets the duration short (--history-duration, 2 s:
 * ops stay that long, read four times at the default interval, shipped
 * once) and the size above what that duration holds at the OSD's op rate
 * (all clients counted, from its op counter). An op slower than the
 * duration leaves the history as it enters; the slow-op list keeps those
 * (threshold set to the duration), and is read too. The OSD's own values
 * are noted at the first contact (one log line) and put back at stop; an
 * OSD that restarted comes back with its defaults, which its answers show,
 * and gets ours again.
 *
 * Each round, filtered by the clients the hostds watch (the OSD filters by
 * client address): the op counter (`perf dump osd op`); the oldest op still
 * in flight (`dump_ops_in_flight`), which bounds how far the history is
 * complete (`progress`: an interval behind that, for ops between the
 * in-flight list and the history); `dump_historic_ops` and
 * `dump_historic_slow_ops`, parsed with the ops shipped before skipped
 * (keyset.h: the keys of the previous round and this one). When a round comes
 * later than the duration after the last one, or more ops went through than the
 * history holds, ops may have left it unread: that window is reported
 * (COLLECTOR_MSG_LOST), never silently missing.
 */
#define G_LOG_DOMAIN "blkin-ceph"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "asok.h"
#include "collector.h"
#include "keyset.h"
#include "optracker.h"

enum {
    S_SIZE,
    S_DURATION,
    S_SLOW_THRESHOLD,
    S_SLOW_SIZE,
    S__N,
};

static const char *const setting_names[S__N] = {
    [S_SIZE] = "osd_op_history_size",
    [S_DURATION] = "osd_op_history_duration",
    [S_SLOW_THRESHOLD] = "osd_op_history_slow_op_threshold",
    [S_SLOW_SIZE] = "osd_op_history_slow_op_size",
};

#define SLOW_SIZE 1000

struct OsdReader {
    Collector *col; /* borrowed */
    uint32_t id;
    char *path;
    GThread *thread;
    GMutex lock; /* stop, cond, stats */
    GCond cond;
    gboolean stop;
    OsdReaderStats stats;
    /* The thread's own: */
    char *orig[S__N];   /* the OSD's values before us (as it said them) */
    int64_t ours[S__N]; /* ours; ours[S_SIZE] == 0: OSD's not read yet */
    gboolean applied;   /* ours are in force (since it last answered) */
    gboolean announced; /* the log line was written */
    BlkinKeySet prev, cur;
    gboolean have_count;
    uint64_t last_count;
    int64_t last_wall; /* OSD read (wall) of the last complete round */
    /* Ops initiated before this were read in the last complete round (its
     * progress: not later than the oldest op then still in flight). A
     * window of possibly lost ops begins here. */
    int64_t last_horizon;
    gboolean up;
    int64_t down_since;
    char *last_error;
};

static int64_t wall_ns(void)
{
    return g_get_real_time() * 1000;
}

static void post(OsdReader *r, CollectorMsgType type, int64_t when,
                 int64_t from, const char *text)
{
    CollectorMsg *m = g_new0(CollectorMsg, 1);

    m->type = type;
    m->osd = r->id;
    m->wall_ns = when;
    m->from_ns = from;
    m->text = g_strdup(text);
    collector_post(r->col, m);
}

/* A small answer as a JSON object (config get/set, perf dump). */
static JsonObject *small_command(OsdReader *r, const char *cmd, GError **error)
{
    const CollectorOptions *o = collector_options(r->col);
    g_autoptr(GBytes) b =
        blkin_asok_command(r->path, cmd, o->asok_timeout_ms, 65536, error);
    g_autoptr(JsonParser) p = NULL;
    JsonNode *root;
    gsize len;
    const char *data;

    if (!b)
        return NULL;
    data = g_bytes_get_data(b, &len);
    p = json_parser_new();
    if (!json_parser_load_from_data(p, data, (gssize)len, error)) {
        g_prefix_error(error, "admin socket %s: '%s' answered: ", r->path, cmd);
        return NULL;
    }
    root = json_parser_get_root(p);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "admin socket %s: '%s' answered no JSON object", r->path,
                    cmd);
        return NULL;
    }
    return json_object_ref(json_node_get_object(root));
}

static gboolean config_set(OsdReader *r, int s, const char *value,
                           GError **error)
{
    g_autofree char *cmd =
        g_strdup_printf("{\"prefix\":\"config set\",\"var\":\"%s\","
                        "\"val\":[\"%s\"],\"format\":\"json\"}",
                        setting_names[s], value);
    g_autoptr(JsonObject) o = small_command(r, cmd, error);

    return o != NULL;
}

static gboolean config_set_int(OsdReader *r, int s, int64_t v, GError **error)
{
    char buf[32];

    g_snprintf(buf, sizeof(buf), "%" G_GINT64_FORMAT, v);
    return config_set(r, s, buf, error);
}

static char *config_get(OsdReader *r, int s, GError **error)
{
    g_autofree char *cmd = g_strdup_printf(
        "{\"prefix\":\"config get\",\"var\":\"%s\",\"format\":\"json\"}",
        setting_names[s]);
    g_autoptr(JsonObject) o = small_command(r, cmd, error);
    const char *v;

    if (!o)
        return NULL;
    v = json_object_get_string_member_with_default(o, setting_names[s], NULL);
    if (!v || !*v || strpbrk(v, "\"\\")) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "admin socket %s: no %s in its config (not an OSD?)",
                    r->path, setting_names[s]);
        return NULL;
    }
    return g_strdup(v);
}

/* The OSD's count of client ops since it started. */
static gboolean op_count(OsdReader *r, uint64_t *n, GError **error)
{
    g_autoptr(JsonObject) o = small_command(
        r, "{\"prefix\":\"perf dump\",\"logger\":\"osd\",\"counter\":\"op\"}",
        error);
    JsonObject *osd;

    if (!o)
        return FALSE;
    osd = json_object_has_member(o, "osd") &&
                  JSON_NODE_HOLDS_OBJECT(json_object_get_member(o, "osd"))
              ? json_object_get_object_member(o, "osd")
              : NULL;
    if (!osd || !json_object_has_member(osd, "op")) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "admin socket %s: no osd.op counter (not an OSD?)",
                    r->path);
        return FALSE;
    }
    *n = (uint64_t)json_object_get_int_member(osd, "op");
    return TRUE;
}

/* ---- the settings: ours, and the OSD's put back ------------------------ */

static int64_t orig_int(OsdReader *r, int s)
{
    return r->orig[s] ? g_ascii_strtoll(r->orig[s], NULL, 10) : 0;
}

/* Ours: --history-size, never below the OSD's own. */
static int64_t our_size(OsdReader *r)
{
    return MAX(collector_options(r->col)->history_size, orig_int(r, S_SIZE));
}

static gboolean apply(OsdReader *r, GError **error)
{
    const CollectorOptions *o = collector_options(r->col);
    char thr[32];

    if (!config_set_int(r, S_SIZE, r->ours[S_SIZE], error) ||
        !config_set_int(r, S_DURATION, o->history_duration_s, error))
        return FALSE;
    g_snprintf(thr, sizeof(thr), "%d", o->history_duration_s);
    /* Ops slower than the duration leave the history as they enter it:
     * the slow-op list keeps them (its oldest go first). */
    if (!config_set(r, S_SLOW_THRESHOLD, thr, error) ||
        !config_set_int(r, S_SLOW_SIZE,
                        MAX(SLOW_SIZE, orig_int(r, S_SLOW_SIZE)), error))
        return FALSE;
    r->ours[S_DURATION] = o->history_duration_s;
    return TRUE;
}

/* The OSD's own values, read once (reading is safe at any time). */
static gboolean first_contact(OsdReader *r, GError **error)
{
    for (int s = 0; s < S__N; s++)
        if (!r->orig[s] && !(r->orig[s] = config_get(r, s, error)))
            return FALSE;
    r->ours[S_SIZE] = our_size(r);
    return TRUE;
}

/*
 * Ours, when it is safe. A `config set` of these options calls the OSD's
 * observer, which takes its main lock; while the OSD initialises (or shuts
 * down) it holds that lock and waits for admin commands in progress to end
 * before it unregisters some (BlueFS), so the two wait for each other for
 * good (Ceph 16: seen with an OSD restarted under the collector). An OSD
 * that served client ops since the last round is past its initialisation:
 * only then are the settings applied. Until then its history may drop fast
 * ops: that window is reported.
 */
static gboolean maybe_apply(OsdReader *r, uint64_t count, int64_t now,
                            GError **error)
{
    const CollectorOptions *o = collector_options(r->col);

    if (r->applied || !r->have_count || count <= r->last_count)
        return TRUE;
    if (!apply(r, error))
        return FALSE;
    if (!r->announced)
        g_message("osd.%u: op history size %s -> %" G_GINT64_FORMAT
                  ", duration %s -> %d s, slow ops over %s s -> over %d s, "
                  "%s -> %" G_GINT64_FORMAT " kept (put back at stop)",
                  r->id, r->orig[S_SIZE], r->ours[S_SIZE], r->orig[S_DURATION],
                  o->history_duration_s, r->orig[S_SLOW_THRESHOLD],
                  o->history_duration_s, r->orig[S_SLOW_SIZE],
                  MAX(SLOW_SIZE, orig_int(r, S_SLOW_SIZE)));
    r->announced = TRUE;
    r->applied = TRUE;
    post(r, COLLECTOR_MSG_LOST, now, r->last_horizon ? r->last_horizon : now,
         NULL);
    return TRUE;
}

/* ---- parsing: the keys of the previous round and of this one ---------- */

static bool seen_cb(void *opaque, uint64_t key)
{
    OsdReader *r = opaque;

    if (blkin_keyset_has(&r->cur, key))
        return true;
    if (blkin_keyset_has(&r->prev, key)) {
        blkin_keyset_add(&r->cur, key);
        return true;
    }
    return false;
}

static void op_cb(void *opaque, const blkin_osd_op *op, uint64_t key)
{
    OsdReader *r = opaque;
    CollectorMsg *m = g_new0(CollectorMsg, 1);

    blkin_keyset_add(&r->cur, key);
    m->type = COLLECTOR_MSG_OP;
    m->osd = r->id;
    m->op = *op;
    collector_post(r->col, m);
}

/* The oldest initiation among ops still in flight (INT64_MAX: none). */
static void oldest_cb(void *opaque, const blkin_osd_op *op, uint64_t key)
{
    int64_t *oldest = opaque;

    if (op->stamp[BLKIN_OSD_INITIATED] &&
        op->stamp[BLKIN_OSD_INITIATED] < *oldest)
        *oldest = op->stamp[BLKIN_OSD_INITIATED];
}

static void failed(OsdReader *r, GError *err)
{
    g_mutex_lock(&r->lock);
    r->stats.failures++;
    r->stats.up = FALSE;
    g_mutex_unlock(&r->lock);
    if (r->up || !r->last_error) {
        int64_t now = wall_ns();

        g_warning("osd.%u: %s; retrying every %d ms", r->id, err->message,
                  collector_options(r->col)->interval_ms);
        r->down_since = g_get_monotonic_time();
        /* What it finished since the last read may be gone with it (a
         * crash takes its history): the window is reported. */
        if (r->up && r->last_horizon)
            post(r, COLLECTOR_MSG_LOST, now, r->last_horizon, NULL);
        post(r, COLLECTOR_MSG_DOWN, now, 0, err->message);
    }
    r->up = FALSE;
    r->applied = FALSE; /* it may come back restarted, with its defaults */
    g_free(r->last_error);
    r->last_error = g_strdup(err->message);
    /* Its history may be gone (a restart): after it, nothing seen counts. */
    r->have_count = FALSE;
}

/* One dump command with the clients' filter, parsed into @res. */
static gboolean dump(OsdReader *r, const char *what, const char *filter,
                     const blkin_optracker_cb *cb, blkin_optracker_result *res,
                     GError **error)
{
    const CollectorOptions *o = collector_options(r->col);
    g_autofree char *cmd =
        filter && *filter
            ? g_strdup_printf("{\"prefix\":\"%s\",\"format\":\"json\","
                              "\"filterstr\":%s}",
                              what, filter)
            : g_strdup_printf("{\"prefix\":\"%s\",\"format\":\"json\"}", what);
    g_autoptr(GBytes) answer = blkin_asok_command(
        r->path, cmd, o->asok_timeout_ms, o->max_answer, error);
    const char *data;
    gsize len;
    int n;

    if (!answer)
        return FALSE;
    data = g_bytes_get_data(answer, &len);
    n = blkin_optracker_parse(data, len, r->id, cb, res);
    g_mutex_lock(&r->lock);
    r->stats.bytes += len;
    r->stats.ops_read += res->ops;
    r->stats.ops_new += res->new_ops;
    g_mutex_unlock(&r->lock);
    if (n < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "admin socket %s: its answer to %s is not an op tracker's: "
                    "%s at byte %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT,
                    r->path, what, res->error, res->error_offset, len);
        return FALSE;
    }
    return TRUE;
}

static void keep_keys(OsdReader *r)
{
    /* What was read stands: its keys are kept for the next round. */
    for (size_t i = 0; i < r->cur.cap; i++)
        if (r->cur.slots[i])
            blkin_keyset_add(&r->prev, r->cur.slots[i]);
    blkin_keyset_clear(&r->cur);
}

static void poll_once(OsdReader *r, const char *filter)
{
    const CollectorOptions *o = collector_options(r->col);
    g_autoptr(GError) err = NULL;
    blkin_optracker_result res, slow;
    blkin_optracker_cb cb = {.seen = seen_cb, .op = op_cb, .opaque = r};
    int64_t oldest = INT64_MAX, now, horizon;
    blkin_optracker_cb in_flight = {.op = oldest_cb, .opaque = &oldest};
    int64_t duration_ns = (int64_t)o->history_duration_s * 1000000000LL;
    uint64_t count = 0;
    BlkinKeySet t;

    if (!r->ours[S_SIZE] && !first_contact(r, &err)) {
        failed(r, err);
        return;
    }
    if (!op_count(r, &count, &err)) {
        failed(r, err);
        return;
    }
    now = wall_ns();
    if (r->have_count && count < r->last_count) {
        r->have_count = FALSE; /* restarted between two rounds */
        r->applied = FALSE;
    }
    if (!maybe_apply(r, count, now, &err)) {
        failed(r, err);
        return;
    }
    if (!dump(r, "dump_ops_in_flight", filter, &in_flight, &res, &err)) {
        failed(r, err);
        return;
    }
    /* An op that left the in-flight list reaches the history through a
     * queue of the OSD's history thread (OpHistory's service thread): for
     * a moment it is in neither. The horizon stays an interval behind. */
    horizon = MIN(now, oldest) - (int64_t)o->interval_ms * 1000000;
    if (!dump(r, "dump_historic_ops", filter, &cb, &res, &err) ||
        !dump(r, "dump_historic_slow_ops", filter, &cb, &slow, &err)) {
        keep_keys(r);
        failed(r, err);
        return;
    }
    /* This round's keys are the next round's "seen". */
    t = r->prev;
    r->prev = r->cur;
    r->cur = t;
    blkin_keyset_clear(&r->cur);
    g_mutex_lock(&r->lock);
    r->stats.polls++;
    g_mutex_unlock(&r->lock);

    if (!r->up) {
        if (r->last_error)
            g_message("osd.%u: answers again after %.1f s", r->id,
                      (g_get_monotonic_time() - r->down_since) / 1e6);
        post(r, COLLECTOR_MSG_UP, now, 0, NULL);
        r->up = TRUE;
        g_clear_pointer(&r->last_error, g_free);
    }
    /* Ops may have left the history unread: too long since the last round,
     * or more ops than it holds. */
    if (r->have_count && (now - r->last_wall > duration_ns ||
                          count - r->last_count > (uint64_t)r->ours[S_SIZE])) {
        post(r, COLLECTOR_MSG_LOST, now, r->last_horizon, NULL);
        g_mutex_lock(&r->lock);
        r->stats.lost_windows++;
        g_mutex_unlock(&r->lock);
    }
    /* Restarted (its defaults again), or someone changed them: ours again
     * at the next round that sees ops (maybe_apply), the window since the
     * last round reported. */
    if (r->applied &&
        ((res.history_size >= 0 && res.history_size != r->ours[S_SIZE]) ||
         (res.history_duration >= 0 &&
          res.history_duration != r->ours[S_DURATION]))) {
        g_message("osd.%u: op history size %" G_GINT64_FORMAT ", duration "
                  "%" G_GINT64_FORMAT " s (restarted?): ours again",
                  r->id, res.history_size, res.history_duration);
        post(r, COLLECTOR_MSG_LOST, now,
             r->last_horizon ? r->last_horizon : now, NULL);
        r->applied = FALSE;
    }
    r->have_count = TRUE;
    r->last_count = count;
    r->last_wall = now;
    r->last_horizon = horizon;
    /* Ops initiated before the horizon are in what was read (or lost). */
    post(r, COLLECTOR_MSG_PROGRESS, horizon, 0, NULL);
    g_mutex_lock(&r->lock);
    r->stats.up = TRUE;
    r->stats.history_size = r->ours[S_SIZE];
    g_mutex_unlock(&r->lock);
}

static gpointer reader_thread(gpointer p)
{
    OsdReader *r = p;
    const CollectorOptions *o = collector_options(r->col);

    for (;;) {
        gint64 next = g_get_monotonic_time() + (gint64)o->interval_ms * 1000;
        g_autofree char *filter = collector_filter_json(r->col);

        if (filter)
            poll_once(r, filter);
        g_mutex_lock(&r->lock);
        while (!r->stop && g_get_monotonic_time() < next)
            g_cond_wait_until(&r->cond, &r->lock, next);
        if (r->stop) {
            g_mutex_unlock(&r->lock);
            break;
        }
        g_mutex_unlock(&r->lock);
    }
    return NULL;
}

OsdReader *osd_reader_start(Collector *c, uint32_t id, const char *path)
{
    OsdReader *r = g_new0(OsdReader, 1);

    r->col = c;
    r->id = id;
    r->path = g_strdup(path);
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    r->thread = g_thread_new("osd-reader", reader_thread, r);
    return r;
}

void osd_reader_stop(OsdReader *r)
{
    gboolean restored = TRUE;

    if (!r)
        return;
    g_mutex_lock(&r->lock);
    r->stop = TRUE;
    g_cond_signal(&r->cond);
    g_mutex_unlock(&r->lock);
    g_thread_join(r->thread);
    for (int s = 0; r->announced && s < S__N; s++) {
        g_autoptr(GError) err = NULL;

        if (r->orig[s] && !config_set(r, s, r->orig[s], &err)) {
            g_warning("osd.%u: could not put %s back to %s: %s", r->id,
                      setting_names[s], r->orig[s], err->message);
            restored = FALSE;
        }
    }
    if (r->announced && restored)
        g_message("osd.%u: op history size %s, duration %s s, slow ops over "
                  "%s s, %s kept: as before",
                  r->id, r->orig[S_SIZE], r->orig[S_DURATION],
                  r->orig[S_SLOW_THRESHOLD], r->orig[S_SLOW_SIZE]);
    blkin_keyset_destroy(&r->prev);
    blkin_keyset_destroy(&r->cur);
    g_mutex_clear(&r->lock);
    g_cond_clear(&r->cond);
    for (int s = 0; s < S__N; s++)
        g_free(r->orig[s]);
    g_free(r->last_error);
    g_free(r->path);
    g_free(r);
}

const char *osd_reader_path(const OsdReader *r)
{
    return r->path;
}

uint32_t osd_reader_id(const OsdReader *r)
{
    return r->id;
}

void osd_reader_stats(OsdReader *r, OsdReaderStats *s)
{
    g_mutex_lock(&r->lock);
    *s = r->stats;
    g_mutex_unlock(&r->lock);
}
