/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-zipkin-tp.c: instantiates the `zipkin` LTTng-UST probes and the
 * tracepoint definitions, once for the whole library.
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "blkin-zipkin-tp.h"
