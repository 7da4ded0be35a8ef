/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * live-health.c: bookkeeping of the LTTng live input's outages
 * (live-health.h).
 */
#define G_LOG_DOMAIN "blkin-hostd-ingest"

#include "live-health.h"
#include "json-members.h"

#include <inttypes.h>

HostdLiveHealth *hostd_live_health_new(int64_t now_ns)
{
    HostdLiveHealth *lh = g_new0(HostdLiveHealth, 1);

    lh->state = HOSTD_LIVE_CONNECTING;
    lh->down_since_ns = now_ns;
    return lh;
}

void hostd_live_health_free(HostdLiveHealth *lh)
{
    if (!lh)
        return;
    g_free(lh->last_error);
    g_free(lh);
}

void hostd_live_health_up(HostdLiveHealth *lh, int64_t now_ns)
{
    if (lh->state == HOSTD_LIVE_CONNECTED)
        return;
    if (lh->state == HOSTD_LIVE_LOST) {
        lh->reconnects++;
        lh->last_down_ns = now_ns - lh->down_since_ns;
        lh->down_total_ns += lh->last_down_ns;
        lh->last_back_ns = now_ns;
    }
    lh->state = HOSTD_LIVE_CONNECTED;
    lh->down_since_ns = 0;
}

void hostd_live_health_down(HostdLiveHealth *lh, int64_t now_ns,
                            const char *why)
{
    if (why) {
        g_free(lh->last_error);
        lh->last_error = g_strdup(why);
    }
    if (lh->state != HOSTD_LIVE_CONNECTED) {
        lh->attempts_failed++;
        return;
    }
    lh->state = HOSTD_LIVE_LOST;
    lh->losses++;
    lh->down_since_ns = now_ns;
    lh->last_lost_ns = now_ns;
}

int64_t hostd_live_health_down_ns(const HostdLiveHealth *lh, int64_t now_ns)
{
    /* Waiting for a first session at start is not a gap in the data. */
    if (lh->state == HOSTD_LIVE_LOST)
        return lh->down_total_ns + (now_ns - lh->down_since_ns);
    return lh->down_total_ns;
}

const char *hostd_live_state_name(HostdLiveState s)
{
    switch (s) {
    case HOSTD_LIVE_CONNECTING:
        return "connecting";
    case HOSTD_LIVE_CONNECTED:
        return "connected";
    case HOSTD_LIVE_LOST:
        return "lost";
    }
    return "unknown";
}

/* Seconds ago, or null for "never". */
static void add_ago(JsonBuilder *b, const char *k, int64_t then, int64_t now)
{
    json_builder_set_member_name(b, k);
    if (then)
        json_builder_add_double_value(b, (now - then) / 1e9);
    else
        json_builder_add_null_value(b);
}

void hostd_live_health_json(const HostdLiveHealth *lh, JsonBuilder *b,
                            int64_t now_ns)
{
    json_builder_set_member_name(b, "trace");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "state");
    json_builder_add_string_value(b, hostd_live_state_name(lh->state));
    hostd_json_add_int(b, "losses", lh->losses);
    hostd_json_add_int(b, "reconnects", lh->reconnects);
    hostd_json_add_int(b, "attempts_failed", lh->attempts_failed);
    json_builder_set_member_name(b, "down_s");
    json_builder_add_double_value(b,
                                  hostd_live_health_down_ns(lh, now_ns) / 1e9);
    json_builder_set_member_name(b, "current_down_s");
    json_builder_add_double_value(b, lh->state == HOSTD_LIVE_LOST
                                         ? (now_ns - lh->down_since_ns) / 1e9
                                         : 0.0);
    json_builder_set_member_name(b, "last_down_s");
    json_builder_add_double_value(b, lh->last_down_ns / 1e9);
    add_ago(b, "last_lost_ago_s", lh->last_lost_ns, now_ns);
    add_ago(b, "last_back_ago_s", lh->last_back_ns, now_ns);
    json_builder_set_member_name(b, "last_error");
    if (lh->last_error)
        json_builder_add_string_value(b, lh->last_error);
    else
        json_builder_add_null_value(b);
    json_builder_end_object(b);
}

void hostd_live_health_metrics(const HostdLiveHealth *lh, GString *s,
                               int64_t now_ns)
{
    g_string_append_printf(
        s,
        "# HELP blkin_trace_input_up 1 while hostd reads the LTTng live "
        "session.\n"
        "# TYPE blkin_trace_input_up gauge\n"
        "blkin_trace_input_up %d\n"
        "# HELP blkin_trace_input_losses_total Times the live session was "
        "lost after being read.\n"
        "# TYPE blkin_trace_input_losses_total counter\n"
        "blkin_trace_input_losses_total %" PRIu64 "\n"
        "# HELP blkin_trace_input_reconnects_total Times the live session "
        "was read again after a loss.\n"
        "# TYPE blkin_trace_input_reconnects_total counter\n"
        "blkin_trace_input_reconnects_total %" PRIu64 "\n"
        "# HELP blkin_trace_input_down_seconds_total Time without the live "
        "session after it was first read (spans of that time are missing).\n"
        "# TYPE blkin_trace_input_down_seconds_total counter\n"
        "blkin_trace_input_down_seconds_total %.3f\n",
        lh->state == HOSTD_LIVE_CONNECTED, lh->losses, lh->reconnects,
        hostd_live_health_down_ns(lh, now_ns) / 1e9);
}
