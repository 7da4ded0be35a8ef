/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-proto.c: the wire protocol's decoder (common/blkin-proto.c) on
 * hostile bytes. The first input byte picks how the stream is cut into
 * reads, so frames split at every boundary are exercised; every frame's
 * payload goes through every payload parser, whatever its type.
 */
#include "fuzz.h"

#include "blkin-proto.h"

#include <string.h>

static struct blkin_decoder dec;
static struct blkin_devmap map;

static void check_payload(const uint8_t *p, size_t n)
{
    struct blkin_hello h;
    struct blkin_requests rs;
    struct blkin_clock_probe pr;
    struct blkin_clock_reply rp;
    struct blkin_drops dr;
    uint8_t out[BLKIN_FRAME_MAX];

    if (blkin_decode_hello(p, n, &h) == 0) {
        FUZZ_CHECK(memchr(h.software, 0, sizeof(h.software)));
        /* What was accepted must encode again, within a frame. */
        FUZZ_CHECK(blkin_encode_hello(out, sizeof(out), &h) > 0);
    }
    if (blkin_decode_devmap(p, n, &map) == 0) {
        FUZZ_CHECK(map.count <= BLKIN_DEVICES_MAX);
        for (uint32_t i = 0; i < map.count; i++) {
            FUZZ_CHECK(memchr(map.dev[i].name, 0, BLKIN_NAME_MAX));
            FUZZ_CHECK(memchr(map.dev[i].serial, 0, BLKIN_SERIAL_MAX));
            FUZZ_CHECK(map.dev[i].name[0]);
        }
        FUZZ_CHECK(blkin_encode_devmap(out, sizeof(out), &map) > 0);
    }
    if (blkin_decode_requests(p, n, &rs) == 0) {
        FUZZ_CHECK(rs.count <= BLKIN_REQUESTS_PER_FRAME_MAX);
        for (uint32_t i = 0; i < rs.count; i++) {
            struct blkin_request r;

            if (blkin_requests_get(&rs, i, &r) == 0) {
                FUZZ_CHECK(r.op <= BLKIN_OP__MAX);
                FUZZ_CHECK(!(r.flags & ~BLKIN_REQ__ALL));
                FUZZ_CHECK(r.error <= 0 && r.error >= -4095);
            }
        }
    }
    if (blkin_decode_clock_probe(p, n, &pr) == 0)
        FUZZ_CHECK(blkin_encode_clock_probe(out, sizeof(out), &pr) > 0);
    if (blkin_decode_clock_reply(p, n, &rp) == 0)
        FUZZ_CHECK(blkin_encode_clock_reply(out, sizeof(out), &rp) > 0);
    if (blkin_decode_drops(p, n, &dr) == 0)
        FUZZ_CHECK(blkin_encode_drops(out, sizeof(out), &dr) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t chunk = 1, fed = 0;

    if (size > 0) {
        /* 0 = all at once; otherwise reads of 1..255 bytes. */
        chunk = data[0] ? data[0] : (size_t)-1;
        data++;
        size--;
    }
    blkin_decoder_init(&dec);
    while (fed < size) {
        size_t n = size - fed < chunk ? size - fed : chunk;
        const uint8_t *p = data + fed;

        fed += n;
        while (n > 0) {
            struct blkin_frame f;
            size_t used = 0;
            int r = blkin_decoder_feed(&dec, p, n, &used, &f);

            FUZZ_CHECK(used <= n);
            FUZZ_CHECK(r >= 0);
            /* No progress without a frame would loop forever. */
            FUZZ_CHECK(used > 0 || r == 1);
            p += used;
            n -= used;
            FUZZ_CHECK(blkin_decoder_pending(&dec) <= BLKIN_FRAME_MAX);
            if (r == 1) {
                FUZZ_CHECK(f.len <= BLKIN_PAYLOAD_MAX);
                check_payload(f.payload, f.len);
            }
        }
    }
    /* The raw input as a payload, too: parsers see it unframed. */
    check_payload(data, size);
    return 0;
}
