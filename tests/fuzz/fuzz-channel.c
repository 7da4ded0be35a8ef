/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-channel.c: the host's agent channel (common/blkin-channel.c), the
 * code every byte a guest sends goes through first. A stream of frames in,
 * validated events out; the checks below are what hostd relies on when it
 * takes an event at its word.
 *
 * Input: byte 0 picks the read size (0 = everything at once) and whether
 * the connection starts over between reads (bit 7); the rest is the stream.
 * Probes 1..16 are in flight from the start, so replies can be accepted.
 */
#include "fuzz.h"

#include "blkin-channel.h"

#include <string.h>

static struct blkin_channel ch;
static uint64_t events;

static void on_event(void *user, const struct blkin_event *ev)
{
    const struct blkin_channel *c = user;
    const struct blkin_request *r;

    events++;
    switch (ev->type) {
    case BLKIN_EV_REQUEST:
        r = ev->request.req;
        /* Only requests for a device of the current map come out... */
        FUZZ_CHECK(ev->request.dev);
        FUZZ_CHECK(ev->request.dev ==
                   blkin_channel_device(c, r->major, r->minor));
        /* ...and only sane ones: hostd converts and joins them as is. */
        FUZZ_CHECK(r->issue_ns && r->complete_ns >= r->issue_ns);
        FUZZ_CHECK(!r->queue_ns || r->queue_ns <= r->issue_ns);
        FUZZ_CHECK(r->bytes <= c->limits.max_request_bytes);
        FUZZ_CHECK(r->complete_ns - (r->queue_ns ? r->queue_ns : r->issue_ns) <=
                   c->limits.max_latency_ns);
        FUZZ_CHECK(r->op <= BLKIN_OP__MAX);
        FUZZ_CHECK(
            ev->request.dev->serial[sizeof(ev->request.dev->serial) - 1] == 0);
        break;
    case BLKIN_EV_DEVMAP:
        FUZZ_CHECK(ev->devmap->count <= BLKIN_DEVICES_MAX);
        break;
    case BLKIN_EV_CLOCK:
        FUZZ_CHECK(ev->clock.est);
        if (ev->clock.est->valid)
            FUZZ_CHECK(ev->clock.est->bound_ns >= 0);
        break;
    case BLKIN_EV_GAP:
        FUZZ_CHECK(ev->gap.expected != ev->gap.got);
        break;
    case BLKIN_EV_INVALID:
        FUZZ_CHECK(ev->invalid.reason && ev->invalid.reason[0]);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[256];
    size_t chunk = (size_t)-1, fed = 0;
    bool reconnect = false;
    uint64_t now = 1000000000;

    if (size > 0) {
        chunk = data[0] & 0x7f ? (size_t)(data[0] & 0x7f) * 37 : (size_t)-1;
        reconnect = data[0] & 0x80;
        data++;
        size--;
    }
    blkin_channel_init(&ch, NULL, on_event, &ch);
    for (int i = 0; i < BLKIN_PROBES_INFLIGHT; i++)
        FUZZ_CHECK(blkin_channel_make_probe(&ch, out, sizeof(out), now) > 0);
    FUZZ_CHECK(blkin_channel_make_hello(&ch, out, sizeof(out), now) > 0);
    while (fed < size) {
        size_t n = size - fed < chunk ? size - fed : chunk;

        now += 1000000;
        blkin_channel_feed(&ch, data + fed, n, now);
        fed += n;
        FUZZ_CHECK(ch.devmap.count <= BLKIN_DEVICES_MAX);
        if (reconnect)
            blkin_channel_reconnected(&ch);
        /* A probe now and then, as hostd sends them. */
        if (fed < size &&
            blkin_channel_make_probe(&ch, out, sizeof(out), now) <= 0)
            abort();
    }
    FUZZ_CHECK(ch.stats.records + ch.stats.invalid_records >= ch.stats.records);
    return 0;
}
