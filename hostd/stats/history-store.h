/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * history-store.h: hostd's embedded history, per disk and per minute, in
 * SQLite.
 *
 * One row per (disk, wall-clock minute, writer) holds the minute's
 * rollup: request and byte counts per op and the counters as plain columns
 * (for `sqlite3` by hand), and the whole rollup, histograms included, as a
 * blob (hostd_stats_rollup_serialize(); the blob is what queries read).
 * Disks are named by the caller with a name that survives restarts (e.g.
 * "<vm>/<disk id>"), never by pid.
 *
 * Minutes are wall-clock: minute = CLOCK_REALTIME seconds / 60, and a
 * row's interval [start_ns, end_ns) is the part of that minute, in
 * CLOCK_REALTIME nanoseconds, that the writer observed. disk-stats works in
 * CLOCK_MONOTONIC; the daemon adds (realtime - monotonic) before writing, and
 * creates its disk stats with the matching alignment so that its minutes are
 * wall-clock minutes.
 *
 * Idempotence, so that a restarted daemon never counts anything twice:
 *  - every open of the store is a new writer (a number kept in the
 *    database);
 *  - a writer's write of (disk, minute) replaces its own earlier write of
 *    it (INSERT OR REPLACE): checkpoints of a minute in progress are
 *    superseded by later ones and by the closed minute;
 *  - rows of other (earlier) writers for that disk and minute whose
 *    intervals overlap the new one are deleted: the new writer saw that
 *    time again, and keeping both would count it twice;
 *  - rows whose intervals do not overlap coexist and queries add them up:
 *    a daemon killed at 12:00:40 and restarted at 12:00:50 leaves two rows
 *    for 12:00, [:00, :40) and [:50, :60), and loses only the gap.
 *
 * Durability: WAL mode, synchronous=NORMAL, every hostd_history_write() one
 * transaction (batch a minute's disks into one call). Retention: rows older
 * than the configured number of minutes go on hostd_history_prune().
 *
 * Schema versions live in PRAGMA user_version; opening creates or migrates
 * the schema, and refuses a database written by a newer version.
 *
 * Errors: GError in HOSTD_HISTORY_ERROR (this is the daemon's API
 * boundary), with messages naming the file and what SQLite said. Not
 * thread-safe: one thread uses a store.
 */
#ifndef HOSTD_STATS_HISTORY_STORE_H
#define HOSTD_STATS_HISTORY_STORE_H

#include <glib.h>
#include <stdint.h>

#include "disk-stats.h"

#define HOSTD_HISTORY_SCHEMA_VERSION 1
#define HOSTD_HISTORY_ERROR          (hostd_history_error_quark())

typedef enum HostdHistoryError {
    HOSTD_HISTORY_ERROR_IO,      /* cannot open/read/write the file */
    HOSTD_HISTORY_ERROR_CORRUPT, /* not a database, or a malformed row */
    HOSTD_HISTORY_ERROR_LOCKED,  /* another process holds it too long */
    HOSTD_HISTORY_ERROR_SCHEMA,  /* written by a newer schema version */
    HOSTD_HISTORY_ERROR_INVALID, /* bad arguments */
} HostdHistoryError;

GQuark hostd_history_error_quark(void);

typedef struct HostdHistoryOptions {
    /* Rows of minutes older than this many minutes before "now" are
     * deleted by hostd_history_prune(); 0 keeps everything. */
    uint32_t retention_minutes;
    /* How long a statement waits for another connection's lock before
     * failing with HOSTD_HISTORY_ERROR_LOCKED; 0 means 5000 ms. */
    uint32_t busy_timeout_ms;
} HostdHistoryOptions;

typedef struct HostdHistory HostdHistory;

/* Opens (creating if needed) the database at @path. @opts may be NULL. */
HostdHistory *hostd_history_open(const char *path,
                                 const HostdHistoryOptions *opts,
                                 GError **error);
/* Accepts NULL. */
void hostd_history_close(HostdHistory *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostdHistory, hostd_history_close)

/* This open's writer number (see the idempotence rules above). */
int64_t hostd_history_writer(const HostdHistory *h);

typedef struct HostdHistoryRow {
    const char *disk; /* borrowed */
    /* CLOCK_REALTIME seconds / 60; used only when the rollup has no
     * interval. */
    int64_t minute;
    /*
     * Borrowed. Its interval [start_ns, end_ns) is CLOCK_REALTIME ns; the
     * row goes to the minute holding the interval's middle, clipped to that
     * minute, so that the few microseconds a monotonic -> realtime
     * conversion can be off never move a minute to its neighbour. At most
     * a minute (+1 s) long. start_ns == end_ns == 0: the whole @minute.
     */
    const HostdStatsRollup *rollup;
} HostdHistoryRow;

/* Writes @n rows in one transaction: all or none. */
gboolean hostd_history_write(HostdHistory *h, const HostdHistoryRow *rows,
                             size_t n, GError **error);

/*
 * Batching for callers that get rows one at a time (the minute callback of
 * each disk): hostd_history_queue() checks and copies (serializes) a row,
 * hostd_history_commit() writes everything queued in one transaction, once
 * per tick. A failed commit (e.g. locked) keeps the rows queued for the
 * next one; at most HOSTD_HISTORY_MAX_QUEUED rows wait, further ones are
 * refused with HOSTD_HISTORY_ERROR_IO. Rows still queued at close are lost.
 */
#define HOSTD_HISTORY_MAX_QUEUED 65536
gboolean hostd_history_queue(HostdHistory *h, const HostdHistoryRow *row,
                             GError **error);
gboolean hostd_history_commit(HostdHistory *h, GError **error);
size_t hostd_history_queued(const HostdHistory *h);

/* Called per stored row, by minute then disk name; the rollup is borrowed
 * for the call. Return FALSE to stop early. */
typedef gboolean (*HostdHistoryRowFn)(void *opaque, const char *disk,
                                      int64_t minute,
                                      const HostdStatsRollup *rollup);

/* Rows of @disk (NULL: every disk) with from_minute <= minute <
 * to_minute. */
gboolean hostd_history_foreach(HostdHistory *h, const char *disk,
                               int64_t from_minute, int64_t to_minute,
                               HostdHistoryRowFn fn, void *opaque,
                               GError **error);
/*
 * The same rows merged into @out (cleared first): counts and histograms
 * added up, the interval spanning them all. @n_rows (may be NULL) gets how
 * many rows went in.
 */
gboolean hostd_history_query(HostdHistory *h, const char *disk,
                             int64_t from_minute, int64_t to_minute,
                             HostdStatsRollup *out, uint64_t *n_rows,
                             GError **error);
/* The disk names that have rows, sorted; free with g_strfreev(). */
char **hostd_history_disks(HostdHistory *h, GError **error);

/* Applies the retention as of @now_minute: deletes rows with minute <
 * now_minute - retention_minutes. @deleted (may be NULL) gets the count. */
gboolean hostd_history_prune(HostdHistory *h, int64_t now_minute,
                             uint64_t *deleted, GError **error);

#endif
