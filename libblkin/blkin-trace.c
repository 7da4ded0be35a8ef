/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-trace.c: endpoints and spans: roots, local and remote children,
 * and the sampling draw.
 */
#include "blkin.h"

#include <errno.h>
#include <string.h>

#include "blkin-span-id.h"

static int check_name(const char *s)
{
    if (s && strnlen(s, BLKIN_NAME_MAX + 1) > BLKIN_NAME_MAX)
        return -ENAMETOOLONG;
    return 0;
}

int blkin_endpoint_init(struct blkin_endpoint *endpoint, const char *ip,
                        int port, const char *name)
{
    int r;

    if (!endpoint || port < 0 || port > 65535)
        return -EINVAL;
    r = check_name(ip);
    if (r < 0)
        return r;
    r = check_name(name);
    if (r < 0)
        return r;
    *endpoint = (struct blkin_endpoint){
        .ip = ip ? ip : "0.0.0.0",
        .port = port,
        .name = name ? name : "",
    };
    return 0;
}

/* The part every init shares; leaves ids to the caller. */
static int init_span(struct blkin_trace *trace, const char *name,
                     const struct blkin_endpoint *endpoint)
{
    int r;

    if (!trace || !endpoint)
        return -EINVAL;
    r = check_name(name);
    if (r < 0)
        return r;
    *trace = (struct blkin_trace){
        .name = name ? name : "",
        .endpoint = endpoint,
    };
    return 0;
}

int blkin_trace_init_root(struct blkin_trace *trace, const char *name,
                          const struct blkin_endpoint *endpoint, bool sampled)
{
    int r = init_span(trace, name, endpoint);

    if (r < 0)
        return r;
    /* Unsampled: no ids at all, so it packs as "no trace" for peers. */
    if (sampled) {
        uint64_t ids[2];

        blkin_span_ids(ids, 2);
        trace->info.trace_id = ids[0];
        trace->info.span_id = ids[1];
        trace->sampled = true;
    }
    return 0;
}

int blkin_trace_init_child_info(struct blkin_trace *child,
                                const struct blkin_trace_info *parent,
                                const char *name,
                                const struct blkin_endpoint *endpoint)
{
    int r;

    if (!parent)
        return -EINVAL;
    r = init_span(child, name, endpoint);
    if (r < 0)
        return r;
    if (parent->trace_id != 0) {
        child->info.trace_id = parent->trace_id;
        child->info.parent_span_id = parent->span_id;
        blkin_span_ids(&child->info.span_id, 1);
        child->sampled = true;
    }
    return 0;
}

int blkin_trace_init_child(struct blkin_trace *child,
                           const struct blkin_trace *parent, const char *name,
                           const struct blkin_endpoint *endpoint)
{
    struct blkin_trace_info none = {0};

    if (!parent)
        return -EINVAL;
    return blkin_trace_init_child_info(
        child, parent->sampled ? &parent->info : &none, name,
        endpoint ? endpoint : parent->endpoint);
}

int blkin_trace_init_packed(struct blkin_trace *child, const void *buf,
                            size_t len, const char *name,
                            const struct blkin_endpoint *endpoint)
{
    struct blkin_trace_info parent = {0};
    int r, bad;

    /* A bad context still yields a usable (unsampled) span. */
    bad = blkin_trace_info_unpack(buf, len, &parent);
    if (bad < 0)
        parent = (struct blkin_trace_info){0};
    r = blkin_trace_init_child_info(child, &parent, name, endpoint);
    if (r < 0)
        return r;
    return bad < 0 ? bad : 0;
}

bool blkin_sample(uint32_t one_in)
{
    uint64_t draw;

    if (one_in <= 1)
        return one_in == 1;
    /* Ids are uniformly distributed: one costs an atomic add and a mix. */
    blkin_span_ids(&draw, 1);
    return draw % one_in == 0;
}
