/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * trace-source.c: blkin_qemu events from LTTng, live or offline, decoded
 * in-process with libbabeltrace2 into HostdSpan / HostdDiskMap.
 *
 * Graph: src.ctf.lttng-live (one) or src.ctf.fs (one per trace directory)
 *        -> flt.utils.muxer -> our simple sink, which decodes each event.
 *
 * Decoding is trace-decode.c's; this file builds the graph, runs it in
 * bounded polls and keeps the source's state.
 */
#define G_LOG_DOMAIN "blkin-hostd-ingest"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include <babeltrace2/babeltrace.h>

#include "trace-source-priv.h"

/* Bounded work per poll, so a daemon's main loop stays responsive. */
#define POLL_BUDGET_MSGS 4096

GQuark hostd_trace_error_quark(void)
{
    return g_quark_from_static_string("hostd-trace-error-quark");
}
static bt_graph_simple_sink_component_consume_func_status
sink_consume(bt_message_iterator *it, void *data)
{
    HostdTraceSource *src = data;
    bt_message_array_const msgs;
    uint64_t n;
    int64_t timed = -1;

    switch (bt_message_iterator_next(it, &msgs, &n)) {
    case BT_MESSAGE_ITERATOR_NEXT_STATUS_OK:
        break;
    case BT_MESSAGE_ITERATOR_NEXT_STATUS_END:
        return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_END;
    case BT_MESSAGE_ITERATOR_NEXT_STATUS_AGAIN:
        return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_AGAIN;
    case BT_MESSAGE_ITERATOR_NEXT_STATUS_MEMORY_ERROR:
        return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_MEMORY_ERROR;
    default:
        return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_ERROR;
    }

    for (uint64_t i = 0; i < n; i++) {
        const bt_message *msg = msgs[i];

        switch (bt_message_get_type(msg)) {
        case BT_MESSAGE_TYPE_EVENT:
            hostd_trace_decode_event(src, msg);
            timed = (int64_t)i;
            break;
        case BT_MESSAGE_TYPE_DISCARDED_EVENTS:
            hostd_trace_decode_discarded(src, msg);
            break;
        case BT_MESSAGE_TYPE_MESSAGE_ITERATOR_INACTIVITY:
            timed = (int64_t)i;
            break;
        default:
            break;
        }
    }
    /* Messages come in time order: the batch's newest timed one is enough. */
    if (timed >= 0)
        hostd_trace_note_time(src, msgs[timed]);
    for (uint64_t i = 0; i < n; i++)
        bt_message_put_ref(msgs[i]);
    src->budget = src->budget > n ? src->budget - n : 0;
    return BT_GRAPH_SIMPLE_SINK_COMPONENT_CONSUME_FUNC_STATUS_OK;
}

/*
 * Takes the thread's libbabeltrace2 error, if any, as one line. The
 * plugins' causes say what is wrong with the trace; the library's own
 * (actor unknown) mostly repeat that a component failed, with addresses:
 * they are kept only when nothing else was said.
 */
static char *take_bt_error(const char *what)
{
    const bt_error *e = bt_current_thread_take_error();
    g_autoptr(GString) s = g_string_new(what);
    uint64_t n = e ? bt_error_get_cause_count(e) : 0;
    bool have_actor = false;

    for (uint64_t i = 0; i < n; i++)
        if (bt_error_cause_get_actor_type(bt_error_borrow_cause_by_index(
                e, i)) != BT_ERROR_CAUSE_ACTOR_TYPE_UNKNOWN)
            have_actor = true;
    for (uint64_t i = 0; i < n; i++) {
        const bt_error_cause *cause = bt_error_borrow_cause_by_index(e, i);
        const char *m = bt_error_cause_get_message(cause);

        if (have_actor && bt_error_cause_get_actor_type(cause) ==
                              BT_ERROR_CAUSE_ACTOR_TYPE_UNKNOWN)
            continue;
        if (m && *m)
            g_string_append_printf(s, "%s%s", s->len ? ": " : "", m);
    }
    if (e)
        bt_error_release(e);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static void set_bt_error(GError **err, int code, const char *what)
{
    g_autofree char *m = take_bt_error(what);

    g_set_error_literal(err, HOSTD_TRACE_ERROR, code, m);
}

static const bt_plugin *find_plugin(const char *name, GError **err)
{
    const bt_plugin *p = NULL;

    if (bt_plugin_find(name, BT_TRUE, BT_TRUE, BT_TRUE, BT_TRUE, BT_FALSE,
                       &p) != BT_PLUGIN_FIND_STATUS_OK) {
        g_autofree char *m = take_bt_error("");

        g_set_error(err, HOSTD_TRACE_ERROR, ENOENT,
                    "babeltrace2 plugin '%s' not found%s", name, m);
        return NULL;
    }
    return p;
}

void hostd_trace_source_free(HostdTraceSource *src)
{
    if (!src)
        return;
    /* The graph first: its sink may still hold messages of our classes. */
    bt_graph_put_ref(src->graph);
    g_clear_pointer(&src->classes, g_hash_table_destroy);
    g_clear_pointer(&src->batch_seq, g_hash_table_destroy);
    g_free(src->error);
    g_free(src);
}

static HostdTraceSource *source_alloc(const HostdTraceSink *sink, void *opaque)
{
    HostdTraceSource *src = g_new0(HostdTraceSource, 1);

    if (sink)
        src->sink = *sink;
    src->opaque = opaque;
    src->classes = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                         hostd_trace_ev_class_free);
    src->batch_seq =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    src->graph = bt_graph_create(0);
    return src;
}

/*
 * Adds the muxer and our sink, connects every output port of @sources to
 * the muxer (which grows an input port per connection).
 */
static int finish_graph(HostdTraceSource *src,
                        const bt_component_source *const *sources,
                        size_t nsources, GError **err)
{
    const bt_plugin *utils = NULL;
    const bt_component_filter *mux;
    const bt_component_sink *sink;
    uint64_t nin = 0;

    utils = find_plugin("utils", err);
    if (!utils)
        return -ENOENT;
    /* The muxer logs its input's failures again at each live retry; they
     * reach hostd's log once, as the error's causes (trace-feed.c). */
    if (bt_graph_add_filter_component(
            src->graph,
            bt_plugin_borrow_filter_component_class_by_name_const(utils,
                                                                  "muxer"),
            "muxer", NULL, BT_LOGGING_LEVEL_NONE,
            &mux) != BT_GRAPH_ADD_COMPONENT_STATUS_OK)
        goto fail;
    for (size_t i = 0; i < nsources; i++) {
        uint64_t nout = bt_component_source_get_output_port_count(sources[i]);

        for (uint64_t j = 0; j < nout; j++) {
            const bt_port_output *out =
                bt_component_source_borrow_output_port_by_index_const(
                    sources[i], j);
            const bt_port_input *in =
                bt_component_filter_borrow_input_port_by_index_const(mux, nin);

            if (!in || bt_graph_connect_ports(src->graph, out, in, NULL) !=
                           BT_GRAPH_CONNECT_PORTS_STATUS_OK)
                goto fail;
            nin++;
        }
    }
    if (bt_graph_add_simple_sink_component(src->graph, "hostd", NULL,
                                           sink_consume, NULL, src, &sink) !=
        BT_GRAPH_ADD_COMPONENT_STATUS_OK)
        goto fail;
    if (bt_graph_connect_ports(
            src->graph,
            bt_component_filter_borrow_output_port_by_name_const(mux, "out"),
            bt_component_sink_borrow_input_port_by_name_const(sink, "in"),
            NULL) != BT_GRAPH_CONNECT_PORTS_STATUS_OK)
        goto fail;
    bt_plugin_put_ref(utils);
    return 0;

fail:
    set_bt_error(err, EINVAL, "cannot build the trace graph");
    bt_plugin_put_ref(utils);
    return -EINVAL;
}

/*
 * A new source with its (empty) graph, and the `ctf` plugin that every
 * source of hostd reads with; the caller puts @ctf.
 */
static HostdTraceSource *source_new_ctf(const HostdTraceSink *sink,
                                        void *opaque, const bt_plugin **ctf,
                                        GError **err)
{
    g_autoptr(HostdTraceSource) src = source_alloc(sink, opaque);

    if (!src->graph) {
        g_set_error_literal(err, HOSTD_TRACE_ERROR, ENOMEM,
                            "cannot create a babeltrace2 graph");
        return NULL;
    }
    *ctf = find_plugin("ctf", err);
    if (!*ctf)
        return NULL;
    return g_steal_pointer(&src);
}

/*
 * Adds the `ctf` plugin's component class @cls reading @input, named @name.
 * @live: ask lttng-live to end (not fail) when the session is gone. A
 * failure names @input and what babeltrace2 said, after @what.
 */
static int add_ctf_source(HostdTraceSource *src, const bt_plugin *ctf,
                          const char *cls, const char *name, const char *input,
                          bool live, const char *what,
                          const bt_component_source **out, GError **err)
{
    bt_value *params = bt_value_map_create(), *inputs = NULL;
    bt_graph_add_component_status st;

    if (!params ||
        bt_value_map_insert_empty_array_entry(params, "inputs", &inputs) ||
        bt_value_array_append_string_element(inputs, input) ||
        (live && bt_value_map_insert_string_entry(
                     params, "session-not-found-action", "end"))) {
        bt_value_put_ref(params);
        g_set_error_literal(err, HOSTD_TRACE_ERROR, ENOMEM, "out of memory");
        return -ENOMEM;
    }
    st = bt_graph_add_source_component(
        src->graph,
        bt_plugin_borrow_source_component_class_by_name_const(ctf, cls), name,
        /* A live source that cannot connect logs several lines at each
         * retry; hostd takes the error's causes and logs them once per
         * outage (trace-feed.c). */
        params, live ? BT_LOGGING_LEVEL_NONE : BT_LOGGING_LEVEL_ERROR, out);
    bt_value_put_ref(params);
    if (st != BT_GRAPH_ADD_COMPONENT_STATUS_OK) {
        g_autofree char *m = take_bt_error(what);

        g_set_error(err, HOSTD_TRACE_ERROR, EINVAL, "%s: %s", input, m);
        return -EINVAL;
    }
    return 0;
}

HostdTraceSource *hostd_trace_source_new_live(const char *url,
                                              const HostdTraceSink *sink,
                                              void *opaque, GError **err)
{
    g_autoptr(HostdTraceSource) src = NULL;
    const bt_plugin *ctf = NULL;
    const bt_component_source *live = NULL;
    HostdTraceSource *ret = NULL;

    g_return_val_if_fail(url, NULL);
    bt_current_thread_clear_error();
    src = source_new_ctf(sink, opaque, &ctf, err);
    if (!src)
        return NULL;
    if (add_ctf_source(src, ctf, "lttng-live", "live", url, true,
                       "cannot read LTTng live", &live, err) < 0 ||
        finish_graph(src, &live, 1, err) < 0)
        goto out;
    ret = g_steal_pointer(&src);
out:
    bt_plugin_put_ref(ctf);
    return ret;
}

/* Collects every directory holding a CTF `metadata` file under @dir. */
static void find_traces(const char *dir, int depth, GPtrArray *out)
{
    g_autofree char *meta = g_build_filename(dir, "metadata", NULL);
    g_autoptr(GDir) d = NULL;
    g_autoptr(GPtrArray) subdirs = NULL;
    const char *name;

    if (g_file_test(meta, G_FILE_TEST_IS_REGULAR)) {
        g_ptr_array_add(out, g_strdup(dir));
        return;
    }
    /* Deep enough for ust/uid/UID/64-bit and relayd's host/session. */
    if (depth > 8)
        return;
    d = g_dir_open(dir, 0, NULL);
    if (!d)
        return;
    subdirs = g_ptr_array_new_with_free_func(g_free);
    while ((name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        struct stat st;

        /* lstat: never follow a symlink loop. */
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            g_ptr_array_add(subdirs, g_steal_pointer(&p));
    }
    /* A stable order makes component names and errors reproducible. */
    g_ptr_array_sort(subdirs, (GCompareFunc)g_strcmp0);
    for (guint i = 0; i < subdirs->len; i++)
        find_traces(g_ptr_array_index(subdirs, i), depth + 1, out);
}

static int cmp_str_ptr(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

HostdTraceSource *hostd_trace_source_new_offline(const char *trace_dir,
                                                 const HostdTraceSink *sink,
                                                 void *opaque, GError **err)
{
    g_autoptr(HostdTraceSource) src = NULL;
    g_autoptr(GPtrArray) dirs = g_ptr_array_new_with_free_func(g_free);
    g_autofree const bt_component_source **comps = NULL;
    const bt_plugin *ctf = NULL;
    HostdTraceSource *ret = NULL;

    g_return_val_if_fail(trace_dir, NULL);
    bt_current_thread_clear_error();
    if (!g_file_test(trace_dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(err, HOSTD_TRACE_ERROR, ENOENT,
                    "trace directory %s does not exist", trace_dir);
        return NULL;
    }
    find_traces(trace_dir, 0, dirs);
    if (dirs->len == 0) {
        g_set_error(err, HOSTD_TRACE_ERROR, ENOENT,
                    "no CTF trace (no 'metadata' file) under %s", trace_dir);
        return NULL;
    }
    g_ptr_array_sort(dirs, cmp_str_ptr);

    src = source_new_ctf(sink, opaque, &ctf, err);
    if (!src)
        return NULL;
    comps = g_new0(const bt_component_source *, dirs->len);
    for (guint i = 0; i < dirs->len; i++) {
        g_autofree char *cname = g_strdup_printf("trace%u", i);

        if (add_ctf_source(src, ctf, "fs", cname, g_ptr_array_index(dirs, i),
                           false, "not a readable CTF trace", &comps[i],
                           err) < 0)
            goto out;
    }
    if (finish_graph(src, comps, dirs->len, err) < 0)
        goto out;
    ret = g_steal_pointer(&src);
out:
    bt_plugin_put_ref(ctf);
    return ret;
}

int hostd_trace_source_poll(HostdTraceSource *src)
{
    if (src->status < 0)
        return src->status;
    if (src->status > 0)
        return 0;

    src->budget = POLL_BUDGET_MSGS;
    while (src->budget > 0) {
        switch (bt_graph_run_once(src->graph)) {
        case BT_GRAPH_RUN_ONCE_STATUS_OK:
            continue;
        case BT_GRAPH_RUN_ONCE_STATUS_AGAIN:
            return src->budget < POLL_BUDGET_MSGS ? HOSTD_TRACE_MORE
                                                  : HOSTD_TRACE_IDLE;
        case BT_GRAPH_RUN_ONCE_STATUS_END:
            src->status = 1;
            return 0;
        case BT_GRAPH_RUN_ONCE_STATUS_MEMORY_ERROR:
            src->status = -ENOMEM;
            break;
        default:
            /* Corrupt trace data, a lost relay daemon, ... */
            src->status = -EIO;
            break;
        }
        src->error = take_bt_error("reading the trace failed");
        return src->status;
    }
    return HOSTD_TRACE_MORE;
}

void hostd_trace_source_set_index(HostdTraceSource *src, uint16_t index)
{
    src->index = index;
}

const char *hostd_trace_source_error(const HostdTraceSource *src)
{
    return src->error;
}

uint64_t hostd_trace_source_time_ns(const HostdTraceSource *src)
{
    return src->time_ns;
}

void hostd_trace_source_get_stats(const HostdTraceSource *src,
                                  HostdTraceStats *stats)
{
    *stats = src->stats;
}
