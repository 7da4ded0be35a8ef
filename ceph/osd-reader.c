/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * osd-reader.c: one OSD's op tracker, read every interval in a thread of
 * its own, so that a slow or dead admin socket stalls nothing but itself.
 *
 * Each round: the OSD's op counter (`perf dump osd op`, a few bytes), then
 * `dump_historic_ops` for the clients the hostds asked for (the OSD filters
 * by client address), parsed with the ops shipped before skipped
 * (keyset.h: the keys of the previous dump and this one).
 *
 * The history size. Ceph keeps 20 ops by default; at the first contact the
 * reader notes the OSD's value and sets its own (one log line), and puts
 * the OSD's back when it stops. Its own is sized to the OSD's op rate, all
 * clients counted: about three intervals' worth, within [history_min,
 * history_max], changed when that is off by 2x. An OSD that restarted
 * comes back at its default: the answer's "size" says so and the reader
 * sets it again. When more ops went through the OSD between two reads than
 * its history holds, ops may have left it unread: that window is reported
 * (COLLECTOR_MSG_LOST), never silently missing.
 */
#define G_LOG_DOMAIN "blkin-ceph"

#include <json-glib/json-glib.h>
#include <math.h>

#include "asok.h"
#include "collector.h"
#include "keyset.h"
#include "optracker.h"

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
    int64_t orig_size; /* the OSD's history size before us; -1 unknown */
    int64_t set_size;  /* ours; 0: not set */
    BlkinKeySet prev, cur;
    gboolean have_count;
    uint64_t last_count;
    int64_t last_wall;
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

/* A small answer as a JSON object (config get, perf dump). */
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

static gboolean set_history_size(OsdReader *r, int64_t size, GError **error)
{
    g_autofree char *cmd = g_strdup_printf(
        "{\"prefix\":\"config set\",\"var\":\"osd_op_history_size\","
        "\"val\":[\"%" G_GINT64_FORMAT "\"],\"format\":\"json\"}",
        size);
    g_autoptr(JsonObject) o = small_command(r, cmd, error);

    return o != NULL;
}

static int64_t get_history_size(OsdReader *r, GError **error)
{
    g_autoptr(JsonObject) o = small_command(
        r,
        "{\"prefix\":\"config get\",\"var\":\"osd_op_history_size\","
        "\"format\":\"json\"}",
        error);
    const char *v;
    char *end;
    gint64 n;

    if (!o)
        return -1;
    v = json_object_get_string_member_with_default(o, "osd_op_history_size",
                                                   NULL);
    n = v ? g_ascii_strtoll(v, &end, 10) : -1;
    if (!v || *end || n < 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                    "admin socket %s: no osd_op_history_size in its config",
                    r->path);
        return -1;
    }
    return n;
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

/* ---- parsing: the keys of the previous dump and of this one ----------- */

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

/* The history size for the OSD's op rate (all clients): three reads'
 * worth, within the options' bounds. */
static int64_t wanted_size(OsdReader *r, double ops_per_s)
{
    const CollectorOptions *o = collector_options(r->col);
    double want = ceil(3.0 * ops_per_s * o->interval_ms / 1000.0);

    return CLAMP((int64_t)want, o->history_min, o->history_max);
}

static void failed(OsdReader *r, GError *err)
{
    g_mutex_lock(&r->lock);
    r->stats.failures++;
    r->stats.up = FALSE;
    g_mutex_unlock(&r->lock);
    if (r->up || !r->last_error) {
        g_warning("osd.%u: %s; retrying every %d ms", r->id, err->message,
                  collector_options(r->col)->interval_ms);
        r->down_since = g_get_monotonic_time();
        post(r, COLLECTOR_MSG_DOWN, wall_ns(), 0, err->message);
    }
    r->up = FALSE;
    g_free(r->last_error);
    r->last_error = g_strdup(err->message);
    /* Its history may be gone (a restart): after it, nothing seen counts. */
    r->have_count = FALSE;
}

static void poll_once(OsdReader *r, const char *filter)
{
    const CollectorOptions *o = collector_options(r->col);
    g_autoptr(GError) err = NULL;
    g_autoptr(GBytes) answer = NULL;
    g_autofree char *cmd = NULL;
    blkin_optracker_result res;
    blkin_optracker_cb cb = {.seen = seen_cb, .op = op_cb, .opaque = r};
    uint64_t count = 0;
    int64_t now;
    const char *data;
    gsize len;
    int n;

    if (r->orig_size < 0) {
        r->orig_size = get_history_size(r, &err);
        if (r->orig_size < 0) {
            failed(r, err);
            return;
        }
    }
    if (!r->set_size) {
        /* Raised, never lowered: an operator's larger size stands. */
        int64_t size = MAX(o->history_min, r->orig_size);

        if (!set_history_size(r, size, &err)) {
            failed(r, err);
            return;
        }
        r->set_size = size;
        g_message("osd.%u: op history size %" G_GINT64_FORMAT
                  " -> %" G_GINT64_FORMAT " for blkin (put back at stop)",
                  r->id, r->orig_size, r->set_size);
    }
    if (!op_count(r, &count, &err)) {
        failed(r, err);
        return;
    }
    now = wall_ns();
    cmd = filter && *filter
              ? g_strdup_printf("{\"prefix\":\"dump_historic_ops\","
                                "\"format\":\"json\",\"filterstr\":%s}",
                                filter)
              : g_strdup("{\"prefix\":\"dump_historic_ops\","
                         "\"format\":\"json\"}");
    answer = blkin_asok_command(r->path, cmd, o->asok_timeout_ms, o->max_answer,
                                &err);
    if (!answer) {
        failed(r, err);
        return;
    }
    data = g_bytes_get_data(answer, &len);
    n = blkin_optracker_parse(data, len, r->id, &cb, &res);
    g_mutex_lock(&r->lock);
    r->stats.polls++;
    r->stats.bytes += len;
    r->stats.ops_read += res.ops;
    r->stats.ops_new += res.new_ops;
    g_mutex_unlock(&r->lock);
    if (n < 0) {
        g_set_error(
            &err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
            "admin socket %s: its answer to dump_historic_ops is not an "
            "op tracker's: %s at byte %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT,
            r->path, res.error, res.error_offset, len);
        /* What was read stands: its keys are kept for the next round. */
        for (size_t i = 0; i < r->cur.cap; i++)
            if (r->cur.slots[i])
                blkin_keyset_add(&r->prev, r->cur.slots[i]);
        blkin_keyset_clear(&r->cur);
        {
            failed(r, err);
            return;
        }
    }
    /* This dump's keys are the next round's "seen". */
    BlkinKeySet t = r->prev;

    r->prev = r->cur;
    r->cur = t;
    blkin_keyset_clear(&r->cur);

    if (!r->up) {
        if (r->last_error)
            g_message("osd.%u: answers again after %.1f s", r->id,
                      (g_get_monotonic_time() - r->down_since) / 1e6);
        post(r, COLLECTOR_MSG_UP, now, 0, NULL);
        r->up = TRUE;
        g_clear_pointer(&r->last_error, g_free);
    }
    /* More ops than its history holds went through since the last read:
     * some may have left it unread. */
    if (r->have_count && count < r->last_count)
        r->have_count = FALSE; /* restarted between two reads */
    if (r->have_count && count - r->last_count > (uint64_t)r->set_size) {
        post(r, COLLECTOR_MSG_LOST, now, r->last_wall, NULL);
        g_mutex_lock(&r->lock);
        r->stats.lost_windows++;
        g_mutex_unlock(&r->lock);
    }
    /* Restarted (its default again), or someone changed it: ours again. */
    if (res.history_size >= 0 && res.history_size != r->set_size) {
        g_message("osd.%u: op history size is %" G_GINT64_FORMAT
                  " (restarted?); %" G_GINT64_FORMAT " again",
                  r->id, res.history_size, r->set_size);
        if (!set_history_size(r, r->set_size, &err)) {
            failed(r, err);
            return;
        }
    } else if (r->have_count && now > r->last_wall) {
        double rate = (double)(count - r->last_count) * 1e9 /
                      (double)(now - r->last_wall);
        int64_t want = MAX(wanted_size(r, rate), r->orig_size);

        if (want > r->set_size || want * 4 < r->set_size) {
            g_debug("osd.%u: %.0f ops/s: op history size %" G_GINT64_FORMAT
                    " -> %" G_GINT64_FORMAT,
                    r->id, rate, r->set_size, want);
            if (set_history_size(r, want, NULL))
                r->set_size = want;
        }
    }
    r->have_count = TRUE;
    r->last_count = count;
    r->last_wall = now;
    /* Ops done before the dump was asked for are in it (or were lost). */
    post(r, COLLECTOR_MSG_PROGRESS, now, 0, NULL);
    g_mutex_lock(&r->lock);
    r->stats.up = TRUE;
    r->stats.history_size = r->set_size;
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
    r->orig_size = -1;
    g_mutex_init(&r->lock);
    g_cond_init(&r->cond);
    r->thread = g_thread_new("osd-reader", reader_thread, r);
    return r;
}

void osd_reader_stop(OsdReader *r)
{
    g_autoptr(GError) err = NULL;

    if (!r)
        return;
    g_mutex_lock(&r->lock);
    r->stop = TRUE;
    g_cond_signal(&r->cond);
    g_mutex_unlock(&r->lock);
    g_thread_join(r->thread);
    if (r->set_size && r->orig_size >= 0) {
        if (set_history_size(r, r->orig_size, &err))
            g_message("osd.%u: op history size %" G_GINT64_FORMAT " again",
                      r->id, r->orig_size);
        else
            g_warning("osd.%u: could not put its op history size back to "
                      "%" G_GINT64_FORMAT ": %s",
                      r->id, r->orig_size, err->message);
    }
    blkin_keyset_destroy(&r->prev);
    blkin_keyset_destroy(&r->cur);
    g_mutex_clear(&r->lock);
    g_cond_clear(&r->cond);
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
