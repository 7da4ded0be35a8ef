/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * view.c: what the HTML view draws (docs/hostd.md, "The view"): per disk
 * the report of one window, that window's timeline (the heatmap's columns
 * with their percentiles, stats/timeline.h) and its slowest requests, all
 * read at one instant, so that the heatmap adds up to the report beside it.
 * The control socket's `view` and the HTTP port's /view.json answer it.
 *
 * Its size is bounded whoever asks: at most HOSTD_VIEW_MAX_DISKS disks (the
 * rest counted in disks_left_out), each at most 125 columns (the hour's 65
 * minutes and the minute's 60 seconds) of at most 5 ops x 98 rows, and
 * HOSTD_TAIL_K requests; VM names listed at most VIEW_MAX_VMS. A disk busy
 * with reads and writes for an hour takes some 20-40 KB of JSON.
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "hostd.h"
#include "json-members.h"

#include "vms/disk-record.h"

#include <string.h>

/* Bumped when a member changes meaning; the page checks it. */
#define VIEW_FORMAT  1
#define VIEW_MAX_VMS 1024

/* One column: its interval, and per op that it saw the requests, the total
 * phase's percentiles and its cells as a flat [row, count, row, count...]
 * (compact: an hour of a busy disk is thousands of cells). */
static void add_column(JsonBuilder *b, const HostdTimelineColumn *c)
{
    json_builder_begin_object(b);
    hostd_json_add_int(b, "start_ns", c->start_ns);
    hostd_json_add_int(b, "end_ns", c->end_ns);
    json_builder_set_member_name(b, "ops");
    json_builder_begin_array(b);
    for (int op = 0; op < BLKIN_OP__N; op++) {
        const HostdTimelineOp *o = &c->ops[op];

        if (!o->requests && !o->samples)
            continue;
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "op");
        json_builder_add_string_value(b, blkin_op_name(op));
        hostd_json_add_int(b, "count", o->requests);
        hostd_json_add_int(b, "samples", o->samples);
        hostd_json_add_int(b, "p50_ns", o->p50_ns);
        hostd_json_add_int(b, "p90_ns", o->p90_ns);
        hostd_json_add_int(b, "p99_ns", o->p99_ns);
        hostd_json_add_int(b, "max_ns", o->max_ns);
        json_builder_set_member_name(b, "cells");
        json_builder_begin_array(b);
        for (uint32_t k = 0; k < o->n_cells; k++) {
            json_builder_add_int_value(b, o->cells[k].row);
            json_builder_add_int_value(b, o->cells[k].count);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
}

static void add_view_disk(Hostd *h, JsonBuilder *b, HostdDisk *d,
                          HostdStatsWindow w, uint64_t now)
{
    g_autoptr(GArray) cols = hostd_timeline_columns_new();
    HostdJoinedRequest reqs[HOSTD_TAIL_K];
    size_t n;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "report");
    hostd_report_add_disk(h, b, d, w, now);
    hostd_timeline_columns(d->timeline, d->stats, now, w, cols);
    json_builder_set_member_name(b, "columns");
    json_builder_begin_array(b);
    for (guint i = 0; i < cols->len; i++)
        add_column(b, &g_array_index(cols, HostdTimelineColumn, i));
    json_builder_end_array(b);
    /* The slowest requests of the same window, slowest first. */
    n = hostd_tail_capture_get(d->tail, now, w, reqs, G_N_ELEMENTS(reqs), NULL,
                               NULL);
    json_builder_set_member_name(b, "tail");
    json_builder_begin_array(b);
    for (size_t i = 0; i < n; i++)
        hostd_report_add_request(b, d, &reqs[i]);
    json_builder_end_array(b);
    json_builder_end_object(b);
}

JsonNode *hostd_view(Hostd *h, const char *vm_name, const char *target,
                     const char *window, GError **err)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(GList) names = g_hash_table_get_keys(h->model->vms);
    HostdStatsWindow w;
    uint64_t now = hostd_report_now(h);
    guint shown = 0, left_out = 0, listed = 0;
    HostdVm *vm = vm_name ? hostd_model_vm(h->model, vm_name) : NULL;

    if (!hostd_report_parse_window(window, &w, err))
        return NULL;
    if (w == HOSTD_STATS_WINDOW_1S) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "the view's window is 1m (seconds) or 1h (minutes)");
        return NULL;
    }
    if (vm_name && !vm) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no VM '%s'",
                    vm_name);
        return NULL;
    }
    if (target && (!vm || !hostd_vm_disk(vm, target))) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                    vm ? "VM '%s' has no disk '%s'" : "%s%s: name the VM",
                    vm ? vm_name : "disk ", target);
        return NULL;
    }
    names = g_list_sort(names, (GCompareFunc)g_strcmp0);

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ok");
    json_builder_add_boolean_value(b, TRUE);
    hostd_json_add_int(b, "view", VIEW_FORMAT);
    json_builder_set_member_name(b, "window");
    json_builder_add_string_value(b, window);
    json_builder_set_member_name(b, "host");
    json_builder_add_string_value(b, g_get_host_name());
    json_builder_set_member_name(b, "vm");
    if (vm_name)
        json_builder_add_string_value(b, vm_name);
    else
        json_builder_add_null_value(b);
    hostd_json_add_int(b, "now_ns", now);
    /* Wall clock = monotonic + this; a recorded trace's times are its
     * own (null). */
    json_builder_set_member_name(b, "realtime_offset_ns");
    if (h->offline_dir)
        json_builder_add_null_value(b);
    else
        json_builder_add_int_value(b, g_get_real_time() * 1000 -
                                          g_get_monotonic_time() * 1000);
    json_builder_set_member_name(b, "rows_ns");
    json_builder_begin_array(b);
    for (unsigned r = 0; r < HOSTD_TIMELINE_ROWS; r++)
        json_builder_add_int_value(b, hostd_timeline_row_lower(r));
    json_builder_end_array(b);
    json_builder_set_member_name(b, "vms");
    json_builder_begin_array(b);
    for (GList *l = names; l && listed < VIEW_MAX_VMS; l = l->next, listed++)
        json_builder_add_string_value(b, l->data);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "disks");
    json_builder_begin_array(b);
    for (GList *l = names; l; l = l->next) {
        HostdVm *v = hostd_model_vm(h->model, l->data);

        if (vm && v != vm)
            continue;
        for (guint i = 0; i < v->disks->len; i++) {
            HostdDisk *d = g_ptr_array_index(v->disks, i);

            if (target && !g_str_equal(target, d->target))
                continue;
            if (shown == HOSTD_VIEW_MAX_DISKS) {
                left_out++;
                continue;
            }
            add_view_disk(h, b, d, w, now);
            shown++;
        }
    }
    json_builder_end_array(b);
    hostd_json_add_int(b, "disks_left_out", left_out);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}
