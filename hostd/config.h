/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config.h: /etc/blkin/hostd.conf, a GKeyFile (docs/hostd.md):
 *
 *   [hostd]
 *   socket = /run/blkin/hostd.sock
 *   state-dir = /var/lib/blkin
 *   live = net://localhost/host/HOSTNAME/blkin
 *   hold-ms = 800
 *   retention-days = 30
 *   metrics = 127.0.0.1:9477
 *   keep-privileges = false
 *   manage-session = false       (lttng-keeper.h; %H in live: hostname)
 *   lttng-relay = net://127.0.0.1
 *   max-clients = 160            (serve-limits.h: clients' limits)
 *   max-control-clients = 128
 *   max-metrics-clients = 64
 *   control-idle-s = 30
 *   control-queue-kib = 1024
 *
 *   [vm web1]
 *   agent-socket = /run/blkin/agents/web1.sock
 *   disks = vda=SERIAL=FILTER-ID;vdb=...
 *
 * Command-line flags win over the file.
 */
#ifndef HOSTD_CONFIG_H
#define HOSTD_CONFIG_H

#include <glib.h>

#include "serve/serve-limits.h"

/*
 * Fills each out-parameter that is still unset (NULL, or the default for
 * the integers when @explicit_* say so) from @path; with @path NULL reads
 * /etc/blkin/hostd.conf if it exists. VM sections are appended to *vms.
 */
gboolean hostd_config_load(const char *path, char **socket_path,
                           char **state_dir, char **live_url, char **metrics,
                           int *hold_ms, int *retention_days, char ***vms,
                           GError **err);

/*
 * Sets *@out from boolean key @key of [hostd] in @path (NULL: as above) if
 * the file has it and *@out is still FALSE (a flag wins).
 */
gboolean hostd_config_load_bool(const char *path, const char *key,
                                gboolean *out, GError **err);

/*
 * Sets *@out (when still NULL: a flag wins) from string key @key of [hostd]
 * in @path (NULL: as above), if the file has it.
 */
gboolean hostd_config_load_string(const char *path, const char *key, char **out,
                                  GError **err);

/*
 * Overrides fields of @limits (already holding the defaults) with the
 * [hostd] keys above that @path (NULL: as above) sets.
 */
gboolean hostd_config_load_limits(const char *path, HostdServeLimits *limits,
                                  GError **err);

#endif
