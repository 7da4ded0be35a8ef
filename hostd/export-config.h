/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * export-config.h: the exporters' sections of hostd.conf (docs/hostd.md,
 * "Exporters"): [export zipkin], [export otlp], [store clickhouse], each
 * with the HTTP(S) keys of serve/http-client.h, and for OTLP `encoding =
 * json | protobuf`. A URL given on the command line (--export-zipkin,
 * --export-otlp, --store) wins over the section's url; the section's TLS,
 * auth and header keys apply to it either way.
 */
#ifndef HOSTD_EXPORT_CONFIG_H
#define HOSTD_EXPORT_CONFIG_H

#include <glib.h>

#include "serve/http-client.h"

/*
 * The HTTP config of exporter section @group of config file @path (NULL:
 * /etc/blkin/hostd.conf if it exists; "": none) for command-line URL @url (may
 * be NULL). *@out is NULL when neither the section nor @url exists (the
 * exporter is off). *@encoding (if not NULL) gets the section's encoding
 * or NULL. FALSE and an error for a bad section.
 */
gboolean hostd_export_config_load(const char *path, const char *group,
                                  const char *url, HostdHttpConfig **out,
                                  char **encoding, GError **err);

#endif
