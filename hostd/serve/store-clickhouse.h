/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * store-clickhouse.h: joined requests and their spans written to ClickHouse
 * over its HTTP interface, the scale-out store that `blkin report --store`
 * reads across every node writing to it.
 *
 * Schema (created by hostd at start, plain SQL that ClickHouse 18.16 --
 * Debian 12's -- and current releases both accept; docs/clickhouse.md):
 *   blkin.requests: one row per joined request: host, domain, disk, op,
 *     time (completion, DateTime), end_unix_ns, offset, bytes, ret, flags,
 *     merged, trace_id, span_id, and one Int64 column per phase in ns
 *     (-1 where a phase does not apply). MergeTree, partitioned by day,
 *     ordered by (domain, disk, time).
 *   blkin.spans: one row per span (layer guest or qemu): trace_id, span_id,
 *     parent_id, layer, host, domain, disk, op, start_unix_ns, end_unix_ns.
 *
 * Writes use the exporter's machinery: a bounded queue and a worker thread
 * posting batches (INSERT ... FORMAT JSONEachRow) every second, retried with
 * backoff; drops are counted. Created and offered to from the main thread.
 */
#ifndef HOSTD_STORE_CLICKHOUSE_H
#define HOSTD_STORE_CLICKHOUSE_H

#include <glib.h>

#include "span-export.h"

/* @url: http(s)://HOST:PORT/ of ClickHouse's HTTP interface. */
HostdSpanExport *hostd_store_clickhouse_new(const char *url, GError **err);
/* The same with TLS, auth and headers (http-client.h; taken, freed on
 * failure too): user and password-file with auth = basic. */
HostdSpanExport *hostd_store_clickhouse_new_http(HostdHttpConfig *conf,
                                                 GError **err);

#endif
