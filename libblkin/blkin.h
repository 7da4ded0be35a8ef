/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin.h: record spans of a storage service in the blkin/Zipkin schema.
 *
 * A span is one operation of one service for one request (a trace). Spans
 * form a tree: every span carries the trace id of its request, its own
 * span id, and the span id of the span that caused it (0 at the root). A
 * request's context travels between services in a 24-byte packed form (the
 * one ceph/blkin's blkin_pack_trace_info() writes), and each service makes
 * a child span from it. Annotations on a span become LTTng-UST events of
 * provider `zipkin` (events `timestamp`, `keyval_string`, `keyval_integer`),
 * field for field those of ceph/blkin, so existing readers read them.
 * docs/backend.md has a walk-through and the schema.
 *
 * Conventions: functions return 0 (or a length) on success and a negative
 * errno on failure; they never abort on bad input.
 *
 * Ownership and lifetimes: libblkin never copies or frees strings or
 * endpoints. A struct blkin_trace borrows its name and its endpoint, and an
 * endpoint borrows its ip and service name: all of them must stay valid and
 * unchanged for as long as anything is recorded on the trace (string
 * literals and long-lived configuration are the usual case). Annotation
 * keys, values and event names are only read during the call.
 *
 * Thread safety: every function is thread-safe. A struct blkin_trace is
 * not modified by annotations, so several threads may annotate one trace
 * at the same time; initialising a trace while another thread annotates it
 * is a race, as for any struct. Ids are unique across threads, processes
 * and hosts without coordination.
 *
 * Cost: annotations on an unsampled trace return at once; on a sampled
 * trace they cost one check of a flag while no LTTng session records the
 * event.
 */
#ifndef BLKIN_H
#define BLKIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BLKIN_EXPORT __attribute__((visibility("default")))

/* Size of a packed trace context on the wire. */
#define BLKIN_TRACE_INFO_PACKED_SIZE 24

/*
 * Longest trace name, service name and ip that the init functions accept
 * (bytes, without the NUL), and longest annotation key, value or event
 * name recorded: longer ones are recorded truncated to this length, since
 * an event larger than LTTng's sub-buffer would be lost whole.
 */
#define BLKIN_NAME_MAX       255
#define BLKIN_ANNOTATION_MAX 1024

/* Zipkin's core annotations (timestamp events). */
#define BLKIN_CLIENT_SEND "cs" /* the client sent the request */
#define BLKIN_SERVER_RECV "sr" /* the server received it */
#define BLKIN_SERVER_SEND "ss" /* the server sent the reply */
#define BLKIN_CLIENT_RECV "cr" /* the client received the reply */

/* Where a span runs: recorded in every event as ip, port_no, service_name. */
struct blkin_endpoint {
    const char *ip;   /* textual IPv4/IPv6 address; borrowed */
    int port;         /* TCP/UDP port, or 0 */
    const char *name; /* service name, e.g. "osd.3"; borrowed */
};

/*
 * The ids of one span. trace_id 0 means "no trace": such a context is not
 * sampled, and children made from it are not sampled either.
 */
struct blkin_trace_info {
    uint64_t trace_id;
    uint64_t span_id;
    uint64_t parent_span_id; /* 0 at the root of a trace */
};

/* One span: its ids, its name (event field trace_name), its endpoint. */
struct blkin_trace {
    struct blkin_trace_info info;
    const char *name;                      /* borrowed */
    const struct blkin_endpoint *endpoint; /* borrowed */
    bool sampled; /* false: annotations record nothing */
};

/*
 * Fills *endpoint. ip NULL means "0.0.0.0" and name NULL means "" (both
 * static). Returns -EINVAL for a NULL endpoint or a port outside 0..65535,
 * -ENAMETOOLONG for an ip or name over BLKIN_NAME_MAX bytes.
 */
BLKIN_EXPORT int blkin_endpoint_init(struct blkin_endpoint *endpoint,
                                     const char *ip, int port,
                                     const char *name);

/*
 * Starts a new trace: *trace becomes its root span (fresh trace and span
 * ids, parent 0) named name (NULL: ""), at endpoint. With sampled false no
 * ids are drawn (all stay 0) and nothing will be recorded on it or on its
 * children, local or remote. Returns -EINVAL for a NULL trace or endpoint,
 * -ENAMETOOLONG for a name over BLKIN_NAME_MAX.
 */
BLKIN_EXPORT int blkin_trace_init_root(struct blkin_trace *trace,
                                       const char *name,
                                       const struct blkin_endpoint *endpoint,
                                       bool sampled);

/*
 * Makes *child a child span of the local span *parent: same trace id, fresh
 * span id, parent_span_id = parent's span id, parent's sampling. endpoint
 * NULL means the parent's. Errors as blkin_trace_init_root(), and -EINVAL
 * for a NULL parent.
 */
BLKIN_EXPORT int blkin_trace_init_child(struct blkin_trace *child,
                                        const struct blkin_trace *parent,
                                        const char *name,
                                        const struct blkin_endpoint *endpoint);

/*
 * Makes *child a child span of a remote span whose ids are *parent (e.g.
 * unpacked from a request): same trace id, fresh span id, parent_span_id =
 * parent->span_id. A parent with trace_id 0 gives an unsampled child.
 */
BLKIN_EXPORT int blkin_trace_init_child_info(
    struct blkin_trace *child, const struct blkin_trace_info *parent,
    const char *name, const struct blkin_endpoint *endpoint);

/*
 * blkin_trace_init_child_info() with the parent's ids unpacked from the
 * packed context in buf[0..len-1]. Returns -EINVAL for NULL buf or len
 * below BLKIN_TRACE_INFO_PACKED_SIZE (and *child is then unsampled, so a
 * service may still annotate it safely).
 */
BLKIN_EXPORT int blkin_trace_init_packed(struct blkin_trace *child,
                                         const void *buf, size_t len,
                                         const char *name,
                                         const struct blkin_endpoint *endpoint);

/*
 * Writes *info into buf as three big-endian 64-bit integers, trace id,
 * span id, parent span id: ceph/blkin's struct blkin_trace_info_packed.
 * Returns BLKIN_TRACE_INFO_PACKED_SIZE, or -EINVAL for NULL arguments,
 * -ENOBUFS if len is too small (buf untouched).
 */
BLKIN_EXPORT int blkin_trace_info_pack(const struct blkin_trace_info *info,
                                       void *buf, size_t len);

/*
 * Reads the packed form. Returns BLKIN_TRACE_INFO_PACKED_SIZE, or -EINVAL
 * for NULL arguments or len below BLKIN_TRACE_INFO_PACKED_SIZE (*info
 * untouched). Any 24 bytes are a valid context.
 */
BLKIN_EXPORT int blkin_trace_info_unpack(const void *buf, size_t len,
                                         struct blkin_trace_info *info);

/*
 * The context to send with a request made on behalf of *trace: its ids
 * packed, or 24 zero bytes when it is not sampled (the receiver's children
 * are then unsampled too). Returns as blkin_trace_info_pack().
 */
BLKIN_EXPORT int blkin_trace_pack(const struct blkin_trace *trace, void *buf,
                                  size_t len);

/* A random draw that is true once in one_in calls on average (0: never). */
BLKIN_EXPORT bool blkin_sample(uint32_t one_in);

/*
 * Annotations: each records one event on the span now (LTTng's timestamp
 * is the annotation's time). Returns 0 (also when the trace is unsampled or
 * no session records the event), -EINVAL for a NULL trace, event, key or
 * value, or a sampled trace without endpoint.
 */

/* zipkin:timestamp: event happened, e.g. BLKIN_SERVER_RECV. */
BLKIN_EXPORT int blkin_annotate_event(const struct blkin_trace *trace,
                                      const char *event);

/* zipkin:keyval_string. */
BLKIN_EXPORT int blkin_annotate_string(const struct blkin_trace *trace,
                                       const char *key, const char *val);

/* zipkin:keyval_integer. */
BLKIN_EXPORT int blkin_annotate_integer(const struct blkin_trace *trace,
                                        const char *key, int64_t val);

#ifdef __cplusplus
}
#endif

#endif
