/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-tp.c: instantiates the `blkin_qemu` LTTng-UST probes and the
 * tracepoint definitions, once for the whole filter object.
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "blkin-tp.h"
