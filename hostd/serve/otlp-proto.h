/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * otlp-proto.h: OTLP/HTTP protobuf bodies (an ExportTraceServiceRequest,
 * otlp-trace.proto) for the span exporter, built with protobuf-c.
 *
 * The exporter describes each span the way its OTLP JSON rendering does
 * (span-export.c): the builder only knows protobuf, the exporter only what
 * a span is made of. Ownership: the builder owns everything added to it
 * (strings are copied); hostd_otlp_proto_finish() frees it.
 */
#ifndef HOSTD_SERVE_OTLP_PROTO_H
#define HOSTD_SERVE_OTLP_PROTO_H

#include <glib.h>
#include <stdint.h>

typedef struct HostdOtlpProto HostdOtlpProto;

HostdOtlpProto *hostd_otlp_proto_new(void);
/* A resource (one per exported request, as in JSON) with its string
 * attributes, then its spans. @attrs: key, value, ..., NULL. */
void hostd_otlp_proto_resource(HostdOtlpProto *p, const char *scope,
                               const char *const *attrs);
/* A span of the last resource; @parent 0 for a root. OTLP kinds: 2 server,
 * 3 client. Status: 0 unset, 2 error. */
void hostd_otlp_proto_span(HostdOtlpProto *p, uint64_t trace, uint64_t id,
                           uint64_t parent, const char *name, int kind,
                           uint64_t start_ns, uint64_t end_ns, int status);
/* Attributes of the last span. */
void hostd_otlp_proto_attr_str(HostdOtlpProto *p, const char *k, const char *v);
void hostd_otlp_proto_attr_int(HostdOtlpProto *p, const char *k, int64_t v);
/* The packed request; frees @p. */
GBytes *hostd_otlp_proto_finish(HostdOtlpProto *p);

#endif
