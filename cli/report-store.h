/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * report-store.h: the per-disk report computed from ClickHouse
 * (`blkin report --store URL`), across every node writing to it.
 */
#ifndef HOSTD_REPORT_STORE_H
#define HOSTD_REPORT_STORE_H

#include <glib.h>
#include <json-glib/json-glib.h>

/* @window: 1s, 1m, 1h, 1d or all. Same JSON shape as hostd's "report".
 * @config: a hostd.conf whose [store clickhouse] section has the TLS and
 * auth settings for @url (NULL: /etc/blkin/hostd.conf if readable). */
JsonNode *blkin_store_report(const char *url, const char *config,
                             const char *vm, const char *disk,
                             const char *window, GError **err);

#endif
