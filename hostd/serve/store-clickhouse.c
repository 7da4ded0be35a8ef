/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * store-clickhouse.c: the ClickHouse writer is the span exporter with the
 * ClickHouse format, every joined request kept (store-clickhouse.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "store-clickhouse.h"

HostdSpanExport *hostd_store_clickhouse_new(const char *url, GError **err)
{
    /* Every request (sample 1): the store is the history, not a sample. */
    return hostd_span_export_new(HOSTD_EXPORT_CLICKHOUSE, url, 1, 0, err);
}

HostdSpanExport *hostd_store_clickhouse_new_http(HostdHttpConfig *conf,
                                                 GError **err)
{
    return hostd_span_export_new_http(HOSTD_EXPORT_CLICKHOUSE, conf, 1, 0, err);
}
