/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * SQLite history with a real database file: rows read back equal after a
 * reopen, the idempotence rules (own rewrites replace, overlapping rows of
 * an earlier writer are replaced, disjoint ones add up), a daemon restart
 * mid-minute that neither loses the closed minutes nor counts twice,
 * retention, and clear errors for a corrupt file, a corrupt row, a newer
 * schema, a locked database and bad arguments.
 */
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>

#include "stats/history-store.h"

#define SEC    HOSTD_NS_PER_SEC
#define MINUTE (60 * SEC)

typedef struct Fixture {
    char *dir;
    char *path;
} Fixture;

static void setup(Fixture *f, gconstpointer data)
{
    f->dir = g_dir_make_tmp("hostd-history-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    f->path = g_build_filename(f->dir, "history.db", NULL);
}

static void teardown(Fixture *f, gconstpointer data)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
        g_autofree char *p = g_strconcat(f->path, suffixes[i], NULL);
        g_unlink(p);
    }
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static void random_rollup(GRand *g, HostdStatsRollup *r, int n)
{
    hostd_stats_rollup_clear(r);
    for (int i = 0; i < n; i++) {
        int op = g_rand_int_range(g, 0, BLKIN_OP__N);
        r->requests[op]++;
        r->bytes[op] += 4096;
        for (int p = 0; p < BLKIN_PHASE__N; p++) {
            if (g_rand_int_range(g, 0, 4) == 0)
                continue;
            if (!r->hist[op][p])
                r->hist[op][p] = hostd_latency_hist_new();
            hostd_latency_hist_add(r->hist[op][p],
                                   g_rand_int_range(g, 1000, 50000000));
        }
    }
    r->counters[g_rand_int_range(g, 0, HOSTD_STATS_COUNTER__N)] +=
        g_rand_int_range(g, 1, 100);
}

static GBytes *ser(const HostdStatsRollup *r)
{
    GByteArray *a = g_byte_array_new();
    hostd_stats_rollup_serialize(r, a);
    return g_byte_array_free_to_bytes(a);
}

static void assert_rollup_eq(const HostdStatsRollup *a,
                             const HostdStatsRollup *b)
{
    g_autoptr(GBytes) x = ser(a);
    g_autoptr(GBytes) y = ser(b);
    g_assert_true(g_bytes_equal(x, y));
    g_assert_cmpuint(a->start_ns, ==, b->start_ns);
    g_assert_cmpuint(a->end_ns, ==, b->end_ns);
}

static HostdHistory *open_ok(Fixture *f, uint32_t retention)
{
    g_autoptr(GError) err = NULL;
    HostdHistoryOptions o = {.retention_minutes = retention,
                             .busy_timeout_ms = 200};
    HostdHistory *h = hostd_history_open(f->path, &o, &err);
    g_assert_no_error(err);
    g_assert_nonnull(h);
    return h;
}

static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &st, NULL), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_step(st), ==, SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    g_assert_cmpint(sqlite3_open(path, &db), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(db, sql, NULL, NULL, NULL), ==, SQLITE_OK);
    sqlite3_close(db);
}

#define N_DISKS   3
#define N_MINUTES 10
#define M0        28000000 /* a minute in 2023 */

typedef struct Expect {
    HostdStatsRollup r[N_DISKS][N_MINUTES];
    unsigned seen;
} Expect;

static gboolean check_row(void *opaque, const char *disk, int64_t minute,
                          const HostdStatsRollup *r)
{
    Expect *e = opaque;
    int d = disk[strlen(disk) - 1] - '0';
    g_assert_cmpint(d, >=, 0);
    g_assert_cmpint(d, <, N_DISKS);
    assert_rollup_eq(r, &e->r[d][minute - M0]);
    e->seen++;
    return TRUE;
}

static void test_roundtrip(Fixture *f, gconstpointer data)
{
    g_autoptr(GRand) g = g_rand_new_with_seed(3);
    Expect e = {0};
    HostdHistoryRow rows[N_DISKS * N_MINUTES];
    size_t n = 0;
    int64_t writer;

    for (int d = 0; d < N_DISKS; d++) {
        for (int m = 0; m < N_MINUTES; m++) {
            HostdStatsRollup *r = &e.r[d][m];
            random_rollup(g, r, 200);
            /* Whole minutes, and one partial one (a checkpoint). */
            r->start_ns = (uint64_t)(M0 + m) * MINUTE + (m == 3 ? SEC : 0);
            r->end_ns = (uint64_t)(M0 + m + 1) * MINUTE;
            rows[n++] = (HostdHistoryRow){.disk = d == 0   ? "vm-a/disk0"
                                                  : d == 1 ? "vm-a/disk1"
                                                           : "vm-b/disk2",
                                          .minute = M0 + m,
                                          .rollup = r};
        }
    }
    {
        g_autoptr(HostdHistory) h = open_ok(f, 0);
        g_autoptr(GError) err = NULL;
        writer = hostd_history_writer(h);
        g_assert_true(hostd_history_write(h, rows, n, &err));
        g_assert_no_error(err);
    }
    /* The file is a WAL database at the current schema. */
    g_assert_cmpint(sql_int(f->path, "PRAGMA user_version"), ==,
                    HOSTD_HISTORY_SCHEMA_VERSION);
    g_assert_cmpint(sql_int(f->path, "SELECT count(*) FROM rollup"), ==, n);
    g_assert_cmpint(sql_int(f->path, "SELECT sum(read_requests + "
                                     "write_requests + flush_requests + "
                                     "discard_requests + "
                                     "write_zeroes_requests) FROM rollup"),
                    ==, n * 200);

    g_autoptr(HostdHistory) h = open_ok(f, 0);
    g_autoptr(GError) err = NULL;
    g_assert_cmpint(hostd_history_writer(h), >, writer);
    g_assert_true(hostd_history_foreach(h, NULL, M0, M0 + N_MINUTES, check_row,
                                        &e, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(e.seen, ==, n);

    /* Merged: one disk over a range, and everything. */
    HostdStatsRollup got = {0}, want = {0};
    uint64_t rows_in;
    g_assert_true(hostd_history_query(h, "vm-a/disk1", M0 + 2, M0 + 7, &got,
                                      &rows_in, &err));
    for (int m = 2; m < 7; m++)
        hostd_stats_rollup_merge(&want, &e.r[1][m]);
    g_assert_cmpuint(rows_in, ==, 5);
    assert_rollup_eq(&got, &want);
    hostd_stats_rollup_clear(&want);
    g_assert_true(
        hostd_history_query(h, NULL, 0, INT64_MAX, &got, &rows_in, &err));
    for (int d = 0; d < N_DISKS; d++)
        for (int m = 0; m < N_MINUTES; m++)
            hostd_stats_rollup_merge(&want, &e.r[d][m]);
    g_assert_cmpuint(rows_in, ==, n);
    assert_rollup_eq(&got, &want);
    /* An unknown disk or an empty range: nothing, no error. */
    g_assert_true(
        hostd_history_query(h, "nope", 0, INT64_MAX, &got, &rows_in, &err));
    g_assert_cmpuint(rows_in, ==, 0);
    g_assert_true(hostd_stats_rollup_is_empty(&got));

    g_auto(GStrv) disks = hostd_history_disks(h, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(g_strv_length(disks), ==, 3);
    g_assert_cmpstr(disks[2], ==, "vm-b/disk2");

    hostd_stats_rollup_clear(&got);
    hostd_stats_rollup_clear(&want);
    for (int d = 0; d < N_DISKS; d++)
        for (int m = 0; m < N_MINUTES; m++)
            hostd_stats_rollup_clear(&e.r[d][m]);
}

static uint64_t reads_in(HostdHistory *h, int64_t from, int64_t to,
                         uint64_t *rows)
{
    HostdStatsRollup r = {0};
    g_autoptr(GError) err = NULL;
    g_assert_true(hostd_history_query(h, "d", from, to, &r, rows, &err));
    g_assert_no_error(err);
    uint64_t n = r.requests[BLKIN_OP_READ];
    hostd_stats_rollup_clear(&r);
    return n;
}

static void write1(HostdHistory *h, int64_t minute, uint64_t start,
                   uint64_t end, uint64_t reads)
{
    HostdStatsRollup r = {.start_ns = start, .end_ns = end};
    g_autoptr(GError) err = NULL;
    r.requests[BLKIN_OP_READ] = reads;
    r.hist[BLKIN_OP_READ][BLKIN_PHASE_TOTAL] = hostd_latency_hist_new();
    hostd_latency_hist_add_n(r.hist[BLKIN_OP_READ][BLKIN_PHASE_TOTAL], 1000,
                             reads);
    HostdHistoryRow row = {.disk = "d", .minute = minute, .rollup = &r};
    g_assert_true(hostd_history_write(h, &row, 1, &err));
    g_assert_no_error(err);
    hostd_stats_rollup_clear(&r);
}

static void test_idempotent(Fixture *f, gconstpointer data)
{
    const int64_t m = M0;
    const uint64_t t = (uint64_t)m * MINUTE;
    uint64_t rows;

    HostdHistory *a = open_ok(f, 0);
    write1(a, m, t, t + 40 * SEC, 40); /* checkpoint */
    write1(a, m, t, t + 45 * SEC, 45); /* later checkpoint: replaces */
    g_assert_cmpuint(reads_in(a, m, m + 1, &rows), ==, 45);
    g_assert_cmpuint(rows, ==, 1);
    hostd_history_close(a); /* killed at :45 */

    HostdHistory *b = open_ok(f, 0);
    write1(b, m, t + 50 * SEC, t + 55 * SEC, 5);  /* restarted at :50 */
    write1(b, m, t + 50 * SEC, t + 60 * SEC, 10); /* minute closes */
    /* Disjoint rows of two writers add up; B's own rewrite replaced. */
    g_assert_cmpuint(reads_in(b, m, m + 1, &rows), ==, 55);
    g_assert_cmpuint(rows, ==, 2);
    hostd_history_close(b);

    /* A writer that saw the whole minute again replaces both. */
    HostdHistory *c = open_ok(f, 0);
    write1(c, m, 0, 0, 60);
    g_assert_cmpuint(reads_in(c, m, m + 1, &rows), ==, 60);
    g_assert_cmpuint(rows, ==, 1);
    /* Its minute again, converted to the wall clock 5 us early (and keyed
     * on the start by the caller): still that minute, still replaced. */
    write1(c, m - 1, t - 5000, t + MINUTE - 5000, 61);
    g_assert_cmpuint(reads_in(c, m, m + 1, &rows), ==, 61);
    g_assert_cmpuint(rows, ==, 1);
    g_assert_cmpuint(reads_in(c, 0, m, &rows), ==, 0);
    hostd_history_close(c);
}

/* A daemon: disk stats whose closed minutes and checkpoints go to the
 * history, in CLOCK_REALTIME = monotonic + offset. */
typedef struct Daemon {
    HostdHistory *h;
    HostdDiskStats *ds;
    uint64_t offset;
} Daemon;

static void on_minute(void *opaque, const HostdStatsRollup *r)
{
    Daemon *d = opaque;
    HostdStatsRollup w = *r; /* borrowed histograms, wall-clock interval */
    w.start_ns += d->offset;
    w.end_ns += d->offset;
    HostdHistoryRow row = {
        .disk = "d", .minute = (int64_t)(w.start_ns / MINUTE), .rollup = &w};
    g_autoptr(GError) err = NULL;
    g_assert_true(hostd_history_write(d->h, &row, 1, &err));
    g_assert_no_error(err);
}

static void daemon_start(Daemon *d, Fixture *f, uint64_t now)
{
    d->h = open_ok(f, 0);
    d->ds = hostd_disk_stats_new(now, d->offset % MINUTE, on_minute, d);
}

static void daemon_stop(Daemon *d)
{
    hostd_disk_stats_free(d->ds);
    hostd_history_close(d->h);
}

static void test_restart(Fixture *f, gconstpointer data)
{
    /* Monotonic 1000 s at boot time; the wall clock is M0 minutes plus
     * 17.5 s at monotonic 0. One read per 100 ms. */
    Daemon d = {.offset = (uint64_t)M0 * MINUTE + 17 * SEC + SEC / 2};
    uint64_t t = 1000 * SEC, added = 0, lost = 0;
    HostdJoinedRequest r = {.op = BLKIN_OP_READ, .bytes = 512};
    r.phase_valid = 1u << BLKIN_PHASE_TOTAL;
    r.phase_ns[BLKIN_PHASE_TOTAL] = 250000;

    daemon_start(&d, f, t);
    for (int i = 0; i < 2050; i++, t += SEC / 10) {
        hostd_disk_stats_add(d.ds, t, &r);
        added++;
        if (i % 100 == 99)
            hostd_disk_stats_flush(d.ds, t); /* every 10 s */
    }
    /* Killed: what came after the last checkpoint is lost. */
    lost = 50;
    daemon_stop(&d);
    t += 3 * SEC; /* down for 3 s */
    daemon_start(&d, f, t);
    for (int i = 0; i < 1500; i++, t += SEC / 10) {
        hostd_disk_stats_add(d.ds, t, &r);
        added++;
        if (i % 100 == 99)
            hostd_disk_stats_flush(d.ds, t);
    }
    hostd_disk_stats_flush(d.ds, t); /* clean shutdown */
    daemon_stop(&d);

    g_autoptr(HostdHistory) h = open_ok(f, 0);
    uint64_t rows;
    uint64_t stored = reads_in(h, 0, INT64_MAX, &rows);
    g_test_message("added %" G_GUINT64_FORMAT ", stored %" G_GUINT64_FORMAT
                   " in %" G_GUINT64_FORMAT " rows",
                   added, stored, rows);
    g_assert_cmpuint(stored, ==, added - lost);
}

static void test_retention(Fixture *f, gconstpointer data)
{
    g_autoptr(HostdHistory) h = open_ok(f, 60);
    for (int m = 0; m < 200; m++)
        write1(h, M0 + m, 0, 0, 1);
    uint64_t deleted, rows;
    g_autoptr(GError) err = NULL;
    g_assert_true(hostd_history_prune(h, M0 + 200, &deleted, &err));
    g_assert_cmpuint(deleted, ==, 140);
    g_assert_cmpuint(reads_in(h, 0, INT64_MAX, &rows), ==, 60);
    g_assert_cmpuint(reads_in(h, 0, M0 + 140, &rows), ==, 0);
    g_assert_true(hostd_history_prune(h, M0 + 200, &deleted, &err));
    g_assert_cmpuint(deleted, ==, 0);

    /* No retention: nothing ever goes. */
    g_autoptr(HostdHistory) keep = open_ok(f, 0);
    g_assert_true(hostd_history_prune(keep, M0 + 100000, &deleted, &err));
    g_assert_cmpuint(deleted, ==, 0);
    g_assert_cmpuint(reads_in(keep, 0, INT64_MAX, &rows), ==, 60);
}

static void test_errors(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    /* Not a database. */
    g_assert_true(g_file_set_contents(
        f->path,
        "this is not an SQLite database, just some text.\n"
        "padding padding padding padding padding padding padding\n",
        -1, NULL));
    g_assert_null(hostd_history_open(f->path, NULL, &err));
    g_assert_error(err, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_CORRUPT);
    g_test_message("garbage file: %s", err->message);
    g_assert_nonnull(strstr(err->message, f->path));
    g_clear_error(&err);
    g_unlink(f->path);

    /* A directory that does not exist. */
    g_autofree char *nowhere = g_build_filename(f->dir, "no", "such.db", NULL);
    g_assert_null(hostd_history_open(nowhere, NULL, &err));
    g_assert_error(err, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_IO);
    g_test_message("missing directory: %s", err->message);
    g_clear_error(&err);

    /* A row whose blob was damaged. */
    {
        g_autoptr(HostdHistory) h = open_ok(f, 0);
        write1(h, M0, 0, 0, 3);
    }
    sql_exec(f->path, "UPDATE rollup SET data = x'01050604'");
    {
        g_autoptr(HostdHistory) h = open_ok(f, 0);
        HostdStatsRollup r = {0};
        g_assert_false(
            hostd_history_query(h, NULL, 0, INT64_MAX, &r, NULL, &err));
        g_assert_error(err, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_CORRUPT);
        g_test_message("damaged row: %s", err->message);
        g_assert_true(hostd_stats_rollup_is_empty(&r));
        g_clear_error(&err);
    }

    /* Written by a newer schema. */
    sql_exec(f->path, "PRAGMA user_version = 99");
    g_assert_null(hostd_history_open(f->path, NULL, &err));
    g_assert_error(err, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_SCHEMA);
    g_test_message("newer schema: %s", err->message);
    g_clear_error(&err);
    sql_exec(f->path, "PRAGMA user_version = 1");

    /* Bad rows are refused before anything is written. */
    g_autoptr(HostdHistory) h = open_ok(f, 0);
    HostdStatsRollup r = {.start_ns = (uint64_t)M0 * MINUTE,
                          .end_ns = (uint64_t)(M0 + 2) * MINUTE};
    HostdStatsRollup r0 = {0}; /* no interval: the row's minute counts */
    HostdHistoryRow bad[] = {
        {.disk = "d", .minute = M0, .rollup = &r}, /* two minutes */
        {.disk = "", .minute = M0, .rollup = &r},
        {.disk = "d", .minute = -1, .rollup = &r0},
        {.disk = "d", .minute = M0, .rollup = NULL},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(hostd_history_write(h, &bad[i], 1, &err));
        g_assert_error(err, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_INVALID);
        g_clear_error(&err);
    }
}

static void test_locked(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(HostdHistory) h = open_ok(f, 0);
    sqlite3 *other;

    /* Another process holds the write lock. */
    g_assert_cmpint(sqlite3_open(f->path, &other), ==, SQLITE_OK);
    g_assert_cmpint(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
                    ==, SQLITE_OK);
    HostdStatsRollup r = {0};
    r.requests[0] = 1;
    HostdHistoryRow row = {.disk = "d", .minute = M0, .rollup = &r};
    gint64 t0 = g_get_monotonic_time();
    g_assert_false(hostd_history_write(h, &row, 1, &err));
    gint64 waited = g_get_monotonic_time() - t0;
    g_assert_error(err, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_LOCKED);
    g_test_message("locked: %s (after %" G_GINT64_FORMAT " ms)", err->message,
                   waited / 1000);
    g_assert_cmpint(waited, >=, 150 * 1000); /* busy timeout 200 ms */
    g_clear_error(&err);

    /* Queued rows survive a locked commit and go with the next one. */
    HostdHistoryRow q1 = {.disk = "q1", .minute = M0, .rollup = &r};
    HostdHistoryRow q2 = {.disk = "q2", .minute = M0 + 1, .rollup = &r};
    HostdHistoryRow nothing = {0};
    g_assert_true(hostd_history_queue(h, &q1, &err));
    g_assert_true(hostd_history_queue(h, &q2, &err));
    g_assert_false(hostd_history_queue(h, &nothing, &err));
    g_assert_error(err, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_INVALID);
    g_clear_error(&err);
    g_assert_false(hostd_history_commit(h, &err));
    g_assert_error(err, HOSTD_HISTORY_ERROR, HOSTD_HISTORY_ERROR_LOCKED);
    g_clear_error(&err);
    g_assert_cmpuint(hostd_history_queued(h), ==, 2);

    /* Released: the same writes go through, nothing half-done before. */
    sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(other);
    uint64_t rows;
    HostdStatsRollup got = {0};
    g_assert_true(
        hostd_history_query(h, NULL, 0, INT64_MAX, &got, &rows, &err));
    g_assert_cmpuint(rows, ==, 0);
    g_assert_true(hostd_history_write(h, &row, 1, &err));
    g_assert_no_error(err);
    g_assert_true(hostd_history_commit(h, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(hostd_history_queued(h), ==, 0);
    g_assert_true(
        hostd_history_query(h, NULL, 0, INT64_MAX, &got, &rows, &err));
    g_assert_cmpuint(rows, ==, 3);
    g_assert_cmpuint(got.requests[0], ==, 3);
    hostd_stats_rollup_clear(&got);
}

static void test_batch(Fixture *f, gconstpointer data)
{
    /* One minute of 400 disks (100 VMs x 4), one transaction. */
    g_autoptr(GRand) g = g_rand_new_with_seed(8);
    g_autoptr(HostdHistory) h = open_ok(f, 0);
    g_autoptr(GError) err = NULL;
    HostdStatsRollup *r = g_new0(HostdStatsRollup, 400);
    HostdHistoryRow *rows = g_new0(HostdHistoryRow, 400);
    char **names = g_new0(char *, 401);

    for (int i = 0; i < 400; i++) {
        random_rollup(g, &r[i], 1000);
        names[i] = g_strdup_printf("vm%03d/disk%d", i / 4, i % 4);
        rows[i] = (HostdHistoryRow){names[i], M0, &r[i]};
    }
    gint64 t0 = g_get_monotonic_time();
    g_assert_true(hostd_history_write(h, rows, 400, &err));
    gint64 us = g_get_monotonic_time() - t0;
    g_assert_no_error(err);
    /* The same rows through the queue: one transaction, same result. */
    t0 = g_get_monotonic_time();
    for (int i = 0; i < 400; i++)
        g_assert_true(hostd_history_queue(h, &rows[i], &err));
    g_assert_true(hostd_history_commit(h, &err));
    gint64 us_queued = g_get_monotonic_time() - t0;
    g_test_message("400 disks x 1 minute (1000 requests each), one "
                   "transaction: %" G_GINT64_FORMAT
                   " ms written, %" G_GINT64_FORMAT " ms queued",
                   us / 1000, us_queued / 1000);
    uint64_t n;
    HostdStatsRollup all = {0};
    g_assert_true(hostd_history_query(h, NULL, M0, M0 + 1, &all, &n, &err));
    g_assert_cmpuint(n, ==, 400);
    hostd_stats_rollup_clear(&all);
    for (int i = 0; i < 400; i++)
        hostd_stats_rollup_clear(&r[i]);
    g_free(r);
    g_free(rows);
    g_strfreev(names);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(name, fn)                                                          \
    g_test_add("/history-store/" name, Fixture, NULL, setup, fn, teardown)
    ADD("roundtrip-reopen", test_roundtrip);
    ADD("idempotent-writes", test_idempotent);
    ADD("restart-no-double-count", test_restart);
    ADD("retention", test_retention);
    ADD("errors", test_errors);
    ADD("locked", test_locked);
    ADD("batch", test_batch);
    return g_test_run();
}
