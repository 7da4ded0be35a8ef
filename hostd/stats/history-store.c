/* SPDX-License-Identifier: GPL-2.0-or-later */
#define G_LOG_DOMAIN "blkin-hostd-stats"

#include <limits.h>
#include <sqlite3.h>
#include <string.h>

#include "history-store.h"

#define NS_PER_MIN ((int64_t)60 * 1000000000)
/* Minutes whose nanoseconds still fit in an int64 (until 2262). */
#define MINUTE_MAX (INT64_MAX / NS_PER_MIN - 1)
/* How far an interval may stick out of its minute (clock conversion). */
#define INTERVAL_SLACK_NS ((int64_t)1000000000)

/* Schema v1 spells out one column per op and counter; growing the enums
 * takes a migration that adds columns (and these asserts moved along). */
G_STATIC_ASSERT(BLKIN_OP__N == 5);
G_STATIC_ASSERT(HOSTD_STATS_COUNTER__N == 4);

/* migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[] = {
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "INSERT INTO meta VALUES('writer', 0);"
    "CREATE TABLE disk(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE rollup("
    " disk_id INTEGER NOT NULL REFERENCES disk(id),"
    " minute INTEGER NOT NULL,"
    " writer INTEGER NOT NULL,"
    " start_ns INTEGER NOT NULL,"
    " end_ns INTEGER NOT NULL,"
    " read_requests INTEGER NOT NULL, read_bytes INTEGER NOT NULL,"
    " write_requests INTEGER NOT NULL, write_bytes INTEGER NOT NULL,"
    " flush_requests INTEGER NOT NULL, flush_bytes INTEGER NOT NULL,"
    " discard_requests INTEGER NOT NULL, discard_bytes INTEGER NOT NULL,"
    " write_zeroes_requests INTEGER NOT NULL,"
    " write_zeroes_bytes INTEGER NOT NULL,"
    " unmatched_guest INTEGER NOT NULL, unmatched_spans INTEGER NOT NULL,"
    " agent_drops INTEGER NOT NULL, lttng_discarded INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " PRIMARY KEY(disk_id, minute, writer)) WITHOUT ROWID;"
    "CREATE INDEX rollup_by_minute ON rollup(minute);",
};
G_STATIC_ASSERT(G_N_ELEMENTS(migrations) == HOSTD_HISTORY_SCHEMA_VERSION);

enum {
    ST_DISK_INSERT,
    ST_DISK_ID,
    ST_DELETE_OVERLAP,
    ST_INSERT,
    ST_SELECT,
    ST_PRUNE,
    ST_DISKS,
    ST__N,
};

static const char *const statements[ST__N] = {
    [ST_DISK_INSERT] = "INSERT OR IGNORE INTO disk(name) VALUES(?1)",
    [ST_DISK_ID] = "SELECT id FROM disk WHERE name = ?1",
    [ST_DELETE_OVERLAP] =
        "DELETE FROM rollup WHERE disk_id = ?1 AND minute = ?2"
        " AND writer <> ?3 AND start_ns < ?5 AND end_ns > ?4",
    [ST_INSERT] = "INSERT OR REPLACE INTO rollup VALUES(?1, ?2, ?3, ?4, ?5,"
                  " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                  " ?16, ?17, ?18, ?19, ?20)",
    [ST_SELECT] = "SELECT d.name, r.minute, r.start_ns, r.end_ns, r.data"
                  " FROM rollup r JOIN disk d ON d.id = r.disk_id"
                  " WHERE (?1 IS NULL OR d.name = ?1)"
                  " AND r.minute >= ?2 AND r.minute < ?3"
                  " ORDER BY r.minute, d.name, r.writer",
    [ST_PRUNE] = "DELETE FROM rollup WHERE minute < ?1",
    [ST_DISKS] = "SELECT name FROM disk WHERE EXISTS"
                 " (SELECT 1 FROM rollup WHERE disk_id = disk.id)"
                 " ORDER BY name",
};

/* A row ready for SQL: keyed, counted, serialized. */
typedef struct Pending {
    char *disk;
    int64_t minute, start, end;
    uint64_t counts[2 * BLKIN_OP__N + HOSTD_STATS_COUNTER__N];
    GBytes *blob;
} Pending;

static void pending_clear(gpointer p)
{
    Pending *r = p;
    g_free(r->disk);
    g_bytes_unref(r->blob);
}

struct HostdHistory {
    sqlite3 *db;
    char *path;
    HostdHistoryOptions opts;
    int64_t writer;
    sqlite3_stmt *st[ST__N];
    GHashTable *disk_ids; /* name -> id, of rows already committed */
    GArray *pending;      /* of Pending: queued, not yet committed */
};

GQuark hostd_history_error_quark(void)
{
    return g_quark_from_static_string("hostd-history-error-quark");
}

static HostdHistoryError code_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return HOSTD_HISTORY_ERROR_CORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return HOSTD_HISTORY_ERROR_LOCKED;
    default:
        return HOSTD_HISTORY_ERROR_IO;
    }
}

/* Always returns FALSE, for "return fail(...)". */
static gboolean fail(HostdHistory *h, GError **error, int rc, const char *what)
{
    HostdHistoryError code = code_of(rc);
    const char *hint = code == HOSTD_HISTORY_ERROR_CORRUPT
                           ? " (not a blkin history database, or damaged)"
                       : code == HOSTD_HISTORY_ERROR_LOCKED
                           ? " (another process holds the database)"
                           : "";
    g_set_error(error, HOSTD_HISTORY_ERROR, code, "history %s: %s: %s%s",
                h->path, what, h->db ? sqlite3_errmsg(h->db) : "", hint);
    return FALSE;
}

static gboolean exec(HostdHistory *h, const char *sql, const char *what,
                     GError **error)
{
    int rc = sqlite3_exec(h->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? TRUE : fail(h, error, rc, what);
}

static void rollback(HostdHistory *h)
{
    /* Fails harmlessly when SQLite already rolled back on its own. */
    sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    /* Ids of disks inserted in the transaction are gone with it. */
    g_hash_table_remove_all(h->disk_ids);
}

/* Runs a statement that yields one integer. */
static gboolean query_int(HostdHistory *h, const char *sql, int64_t *out,
                          const char *what, GError **error)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK) {
        fail(h, error, rc, what);
        sqlite3_finalize(st);
        return FALSE;
    }
    sqlite3_finalize(st);
    return TRUE;
}

static gboolean migrate(HostdHistory *h, GError **error)
{
    g_autofree char *set = NULL;
    int64_t version;

    if (!query_int(h, "PRAGMA user_version", &version, "reading the schema",
                   error))
        return FALSE;
    if (version > HOSTD_HISTORY_SCHEMA_VERSION)
        goto too_new;
    if (version == HOSTD_HISTORY_SCHEMA_VERSION)
        return TRUE;

    /* Again under the write lock: another process may have just done it. */
    if (!exec(h, "BEGIN IMMEDIATE", "locking for schema set-up", error))
        return FALSE;
    if (!query_int(h, "PRAGMA user_version", &version, "reading the schema",
                   error))
        goto fail;
    if (version > HOSTD_HISTORY_SCHEMA_VERSION) {
        rollback(h);
        goto too_new;
    }
    for (; version < HOSTD_HISTORY_SCHEMA_VERSION; version++)
        if (!exec(h, migrations[version], "creating/migrating the schema",
                  error))
            goto fail;
    set = g_strdup_printf("PRAGMA user_version = %d",
                          HOSTD_HISTORY_SCHEMA_VERSION);
    if (!exec(h, set, "recording the schema version", error) ||
        !exec(h, "COMMIT", "committing the schema", error))
        goto fail;
    return TRUE;

too_new:
    g_set_error(error, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_SCHEMA,
                "history %s: schema version %" G_GINT64_FORMAT
                " is newer than this blkin's (%d)",
                h->path, version, HOSTD_HISTORY_SCHEMA_VERSION);
    return FALSE;
fail:
    rollback(h);
    return FALSE;
}

static gboolean take_writer(HostdHistory *h, GError **error)
{
    if (!exec(h, "BEGIN IMMEDIATE", "locking for a writer number", error))
        return FALSE;
    if (!exec(h, "UPDATE meta SET value = value + 1 WHERE key = 'writer'",
              "taking a writer number", error) ||
        !query_int(h, "SELECT value FROM meta WHERE key = 'writer'", &h->writer,
                   "taking a writer number", error) ||
        !exec(h, "COMMIT", "taking a writer number", error)) {
        rollback(h);
        return FALSE;
    }
    return TRUE;
}

HostdHistory *hostd_history_open(const char *path,
                                 const HostdHistoryOptions *opts,
                                 GError **error)
{
    g_autoptr(HostdHistory) h = g_new0(HostdHistory, 1);
    int rc;

    h->path = g_strdup(path);
    h->disk_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    h->pending = g_array_new(FALSE, TRUE, sizeof(Pending));
    g_array_set_clear_func(h->pending, pending_clear);
    if (opts)
        h->opts = *opts;
    if (!h->opts.busy_timeout_ms)
        h->opts.busy_timeout_ms = 5000;

    rc = sqlite3_open_v2(path, &h->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        fail(h, error, rc, "opening");
        return NULL;
    }
    sqlite3_extended_result_codes(h->db, 1);
    sqlite3_busy_timeout(h->db, (int)MIN(h->opts.busy_timeout_ms, INT_MAX));

    /* The first statement that reads the file: a non-database fails here
     * with SQLITE_NOTADB. WAL lets report readers run beside the writer. */
    g_autofree char *mode = NULL;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(h->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        mode = g_strdup((const char *)sqlite3_column_text(st, 0));
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        fail(h, error, rc, "switching to WAL");
        return NULL;
    }
    if (g_strcmp0(mode, "wal") != 0) {
        g_set_error(error, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_IO,
                    "history %s: cannot use WAL mode (got \"%s\")", path,
                    mode ? mode : "");
        return NULL;
    }
    if (!exec(h, "PRAGMA synchronous = NORMAL", "setting synchronous", error) ||
        !migrate(h, error) || !take_writer(h, error))
        return NULL;

    for (int i = 0; i < ST__N; i++) {
        rc = sqlite3_prepare_v3(h->db, statements[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &h->st[i], NULL);
        if (rc != SQLITE_OK) {
            fail(h, error, rc, "preparing statements");
            return NULL;
        }
    }
    return g_steal_pointer(&h);
}

void hostd_history_close(HostdHistory *h)
{
    if (!h)
        return;
    for (int i = 0; i < ST__N; i++)
        sqlite3_finalize(h->st[i]);
    /* Finalized everything first, so close does not fail as busy. */
    sqlite3_close(h->db);
    g_clear_pointer(&h->disk_ids, g_hash_table_destroy);
    g_clear_pointer(&h->pending, g_array_unref);
    g_free(h->path);
    g_free(h);
}

int64_t hostd_history_writer(const HostdHistory *h)
{
    return h->writer;
}

/* Steps a statement that yields no row, then resets it. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static gboolean disk_id(HostdHistory *h, const char *name, int64_t *id,
                        GError **error)
{
    gpointer v;

    if (g_hash_table_lookup_extended(h->disk_ids, name, NULL, &v)) {
        *id = GPOINTER_TO_SIZE(v);
        return TRUE;
    }
    sqlite3_stmt *ins = h->st[ST_DISK_INSERT], *sel = h->st[ST_DISK_ID];
    sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
    int rc = run(ins);
    if (rc != SQLITE_OK)
        return fail(h, error, rc, "adding a disk");
    sqlite3_bind_text(sel, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(sel);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(sel, 0);
    sqlite3_reset(sel);
    sqlite3_clear_bindings(sel);
    if (rc != SQLITE_ROW)
        return fail(h, error, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc,
                    "looking up a disk");
    g_hash_table_insert(h->disk_ids, g_strdup(name), GSIZE_TO_POINTER(*id));
    return TRUE;
}

/*
 * The row's key and interval: with an interval, the minute holding its
 * middle, and the interval clipped to that minute (see the header: clock
 * conversion jitter must not move a minute to its neighbour); without one,
 * the caller's minute, whole.
 */
static const char *row_key(const HostdHistoryRow *r, int64_t *minute,
                           int64_t *start, int64_t *end)
{
    if (!r->disk || !*r->disk)
        return "no disk name";
    if (!r->rollup)
        return "no rollup";
    uint64_t s = r->rollup->start_ns, e = r->rollup->end_ns;
    if (!s && !e) {
        if (r->minute < 0 || r->minute > MINUTE_MAX)
            return "minute out of range";
        *minute = r->minute;
        *start = r->minute * NS_PER_MIN;
        *end = *start + NS_PER_MIN;
        return NULL;
    }
    if (e <= s)
        return "empty interval";
    if (e - s > (uint64_t)NS_PER_MIN + INTERVAL_SLACK_NS)
        return "interval longer than a minute";
    uint64_t mid = s + (e - s) / 2;
    if (mid / NS_PER_MIN > MINUTE_MAX)
        return "minute out of range";
    *minute = (int64_t)(mid / NS_PER_MIN);
    *start = MAX((int64_t)s, *minute * NS_PER_MIN);
    *end = MIN((int64_t)e, (*minute + 1) * NS_PER_MIN);
    return NULL;
}

static gboolean check_row(HostdHistory *h, const HostdHistoryRow *r,
                          GError **error)
{
    int64_t minute, start, end;
    const char *why = row_key(r, &minute, &start, &end);

    if (!why)
        return TRUE;
    g_set_error(error, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_INVALID,
                "history %s: row for \"%s\" minute %" G_GINT64_FORMAT ": %s",
                h->path, r->disk ? r->disk : "", r->minute, why);
    return FALSE;
}

static gboolean prepare_row(HostdHistory *h, const HostdHistoryRow *r,
                            Pending *out, GError **error)
{
    const HostdStatsRollup *ru = r->rollup;

    if (!check_row(h, r, error))
        return FALSE;
    (void)row_key(r, &out->minute, &out->start, &out->end);
    out->disk = g_strdup(r->disk);
    int c = 0;
    for (int o = 0; o < BLKIN_OP__N; o++) {
        out->counts[c++] = ru->requests[o];
        out->counts[c++] = ru->bytes[o];
    }
    for (int k = 0; k < HOSTD_STATS_COUNTER__N; k++)
        out->counts[c++] = ru->counters[k];
    GByteArray *blob = g_byte_array_new();
    hostd_stats_rollup_serialize(ru, blob);
    out->blob = g_byte_array_free_to_bytes(blob);
    return TRUE;
}

static gboolean write_row(HostdHistory *h, const Pending *r, GError **error)
{
    int64_t id = 0;

    if (!disk_id(h, r->disk, &id, error))
        return FALSE;

    sqlite3_stmt *del = h->st[ST_DELETE_OVERLAP];
    sqlite3_bind_int64(del, 1, id);
    sqlite3_bind_int64(del, 2, r->minute);
    sqlite3_bind_int64(del, 3, h->writer);
    sqlite3_bind_int64(del, 4, r->start);
    sqlite3_bind_int64(del, 5, r->end);
    int rc = run(del);
    if (rc != SQLITE_OK)
        return fail(h, error, rc, "replacing overlapping rows");

    sqlite3_stmt *ins = h->st[ST_INSERT];
    int col = 1;
    sqlite3_bind_int64(ins, col++, id);
    sqlite3_bind_int64(ins, col++, r->minute);
    sqlite3_bind_int64(ins, col++, h->writer);
    sqlite3_bind_int64(ins, col++, r->start);
    sqlite3_bind_int64(ins, col++, r->end);
    /* SQLite integers are signed: counts beyond 2^63 (never) wrap. */
    for (size_t c = 0; c < G_N_ELEMENTS(r->counts); c++)
        sqlite3_bind_int64(ins, col++, (int64_t)r->counts[c]);
    gsize len;
    const void *data = g_bytes_get_data(r->blob, &len);
    sqlite3_bind_blob(ins, col++, data, (int)len, SQLITE_STATIC);
    rc = run(ins);
    if (rc != SQLITE_OK)
        return fail(h, error, rc, "writing a row");
    return TRUE;
}

/* Writes @rows in one transaction: all or none. */
static gboolean commit_rows(HostdHistory *h, const Pending *rows, size_t n,
                            GError **error)
{
    if (n == 0)
        return TRUE;
    /* IMMEDIATE: take the write lock up front, so a busy database fails
     * here (after the busy timeout) rather than halfway through. */
    if (!exec(h, "BEGIN IMMEDIATE", "starting a write", error))
        return FALSE;
    for (size_t i = 0; i < n; i++) {
        if (!write_row(h, &rows[i], error)) {
            rollback(h);
            return FALSE;
        }
    }
    if (!exec(h, "COMMIT", "committing a write", error)) {
        rollback(h);
        return FALSE;
    }
    return TRUE;
}

gboolean hostd_history_write(HostdHistory *h, const HostdHistoryRow *rows,
                             size_t n, GError **error)
{
    g_autoptr(GArray) p = g_array_sized_new(FALSE, TRUE, sizeof(Pending), n);
    g_array_set_clear_func(p, pending_clear);

    for (size_t i = 0; i < n; i++) {
        Pending r = {0};
        if (!prepare_row(h, &rows[i], &r, error))
            return FALSE;
        g_array_append_val(p, r);
    }
    return commit_rows(h, (const Pending *)(void *)p->data, p->len, error);
}

gboolean hostd_history_queue(HostdHistory *h, const HostdHistoryRow *row,
                             GError **error)
{
    Pending r = {0};

    if (h->pending->len >= HOSTD_HISTORY_MAX_QUEUED) {
        g_set_error(error, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_IO,
                    "history %s: %u rows queued and not committed, row for "
                    "\"%s\" dropped",
                    h->path, h->pending->len, row->disk ? row->disk : "");
        return FALSE;
    }
    if (!prepare_row(h, row, &r, error))
        return FALSE;
    g_array_append_val(h->pending, r);
    return TRUE;
}

gboolean hostd_history_commit(HostdHistory *h, GError **error)
{
    if (!commit_rows(h, (const Pending *)(void *)h->pending->data,
                     h->pending->len, error))
        return FALSE;
    g_array_set_size(h->pending, 0);
    return TRUE;
}

size_t hostd_history_queued(const HostdHistory *h)
{
    return h->pending->len;
}

gboolean hostd_history_foreach(HostdHistory *h, const char *disk,
                               int64_t from_minute, int64_t to_minute,
                               HostdHistoryRowFn fn, void *opaque,
                               GError **error)
{
    sqlite3_stmt *st = h->st[ST_SELECT];
    HostdStatsRollup r = {0};
    gboolean ok = TRUE;
    int rc;

    if (disk)
        sqlite3_bind_text(st, 1, disk, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from_minute);
    sqlite3_bind_int64(st, 3, to_minute);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int64_t minute = sqlite3_column_int64(st, 1);
        const void *data = sqlite3_column_blob(st, 4);
        int len = sqlite3_column_bytes(st, 4);
        /* The blob is untrusted: the file may have been edited. */
        if (hostd_stats_rollup_deserialize(data, (size_t)len, &r) < 0) {
            g_set_error(error, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_CORRUPT,
                        "history %s: row for \"%s\" minute %" G_GINT64_FORMAT
                        " holds a malformed rollup",
                        h->path, name ? name : "", minute);
            ok = FALSE;
            break;
        }
        r.start_ns = (uint64_t)sqlite3_column_int64(st, 2);
        r.end_ns = (uint64_t)sqlite3_column_int64(st, 3);
        gboolean more = fn(opaque, name, minute, &r);
        hostd_stats_rollup_clear(&r);
        if (!more)
            break;
    }
    if (ok && rc != SQLITE_ROW && rc != SQLITE_DONE)
        ok = fail(h, error, rc, "reading rows");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

typedef struct Merge {
    HostdStatsRollup *out;
    uint64_t n;
} Merge;

static gboolean merge_row(void *opaque, const char *disk, int64_t minute,
                          const HostdStatsRollup *r)
{
    Merge *m = opaque;
    hostd_stats_rollup_merge(m->out, r);
    m->n++;
    return TRUE;
}

gboolean hostd_history_query(HostdHistory *h, const char *disk,
                             int64_t from_minute, int64_t to_minute,
                             HostdStatsRollup *out, uint64_t *n_rows,
                             GError **error)
{
    Merge m = {out, 0};

    hostd_stats_rollup_clear(out);
    gboolean ok = hostd_history_foreach(h, disk, from_minute, to_minute,
                                        merge_row, &m, error);
    if (!ok)
        hostd_stats_rollup_clear(out);
    if (n_rows)
        *n_rows = ok ? m.n : 0;
    return ok;
}

char **hostd_history_disks(HostdHistory *h, GError **error)
{
    sqlite3_stmt *st = h->st[ST_DISKS];
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        g_ptr_array_add(names,
                        g_strdup((const char *)sqlite3_column_text(st, 0)));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        fail(h, error, rc, "listing disks");
        return NULL;
    }
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_steal(names, NULL);
}

gboolean hostd_history_prune(HostdHistory *h, int64_t now_minute,
                             uint64_t *deleted, GError **error)
{
    if (deleted)
        *deleted = 0;
    if (!h->opts.retention_minutes)
        return TRUE;
    sqlite3_stmt *st = h->st[ST_PRUNE];
    sqlite3_bind_int64(st, 1, now_minute - h->opts.retention_minutes);
    int rc = run(st);
    if (rc != SQLITE_OK)
        return fail(h, error, rc, "deleting old rows");
    if (deleted)
        *deleted = (uint64_t)sqlite3_changes64(h->db);
    return TRUE;
}
