/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-rbd-tp.c: the `blkin_rbd` LTTng-UST probes, built as
 * blkin-rbd-tp.so, and the table of functions the interposer calls them
 * through (blkin-rbd-record.h). Loaded by blkin-rbd.c at the first rbd_open.
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "blkin-rbd-tp.h"

static int request_enabled(void)
{
    return lttng_ust_tracepoint_enabled(blkin_rbd, request);
}

static int image_enabled(void)
{
    return lttng_ust_tracepoint_enabled(blkin_rbd, image);
}

static void request(const struct blkin_rbd_req *r)
{
    lttng_ust_tracepoint(blkin_rbd, request, r);
}

static void image(const struct blkin_rbd_image *im, uint8_t state)
{
    lttng_ust_tracepoint(blkin_rbd, image, im, state);
}

__attribute__((visibility("default")))
const blkin_rbd_tp_ops blkin_rbd_tp_ops_v1 = {
    .request_enabled = request_enabled,
    .image_enabled = image_enabled,
    .request = request,
    .image = image,
};
