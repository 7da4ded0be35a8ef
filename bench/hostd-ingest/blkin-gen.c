/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-gen: emits synthetic blkin_qemu events through the filter's own
 * tracepoint provider (qemu-filter/blkin-tp.h), so a real LTTng session
 * records exactly the schema and layout QEMU's filter produces, at scale.
 *
 *   blkin-gen [-n REQUESTS] [-d DISKS] [-r RATE] [-H HUNG_EVERY] [-s SEED]
 *
 * Per disk: one `disk` event (open) first and one (close) last. In between,
 * REQUESTS `request` events spread round-robin over the disks, with mixed
 * ops, sizes and offsets; every HUNG_EVERY-th request is preceded by a
 * `hung` event for it (0: none). RATE caps events per second so the
 * consumer daemon keeps up with the shipped discard-mode channel (0: as
 * fast as possible, to provoke discards). A request's end is its event's
 * timestamp, as in the filter. Prints a JSON summary.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blkin-tp.h"

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: cheap, reproducible ids and sizes. */
static uint64_t next_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void emit_disks(unsigned disks, uint8_t state)
{
    for (unsigned d = 0; d < disks; d++) {
        char id[64], node[32], child[32];

        snprintf(id, sizeof(id), "gen-vm/disk%u", d);
        snprintf(node, sizeof(node), "blkin%u", d);
        snprintf(child, sizeof(child), "fmt%u", d);
        lttng_ust_tracepoint(blkin_qemu, disk, (int32_t)getpid(), d, state, id,
                             node, child, 1, "");
    }
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000, rate = 0, hung_every = 0, seed = 1, batch = 1;
    int wait_go = 0;
    static uint64_t words[BLKIN_BATCH_MAX * BLKIN_BW__HEAD];
    struct blkin_batch_head head = {0};
    uint32_t nwords = 0;
    unsigned disks = 4;
    uint64_t t0, rnd;
    int opt;

    while ((opt = getopt(argc, argv, "n:d:r:H:s:b:w")) != -1) {
        switch (opt) {
        case 'n':
            n = strtoull(optarg, NULL, 0);
            break;
        case 'd':
            disks = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'r':
            rate = strtoull(optarg, NULL, 0);
            break;
        case 'H':
            hung_every = strtoull(optarg, NULL, 0);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 0);
            break;
        case 'w':
            wait_go = 1;
            break;
        case 'b':
            batch = strtoull(optarg, NULL, 0);
            if (batch < 1 || batch > BLKIN_BATCH_MAX)
                batch = 1;
            break;
        default:
            fprintf(stderr,
                    "usage: blkin-gen [-n REQUESTS] [-d DISKS] "
                    "[-r RATE] [-H HUNG_EVERY] [-s SEED] [-b BATCH] [-w]\n");
            return 2;
        }
    }
    if (disks == 0)
        disks = 1;
    rnd = seed;

    int32_t pid = (int32_t)getpid();

    head.vpid = pid;
    head.tid = pid;
    /* -w: a line on stdin first (the caller sets up tracking of this
     * process meanwhile). */
    if (wait_go) {
        char line[16];

        if (!fgets(line, sizeof(line), stdin))
            return 1;
    }
    emit_disks(disks, BLKIN_DISK_OPEN);
    t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = next_rand(&rnd);
        uint64_t t = now_ns();
        struct blkin_span s = {
            .trace_id = next_rand(&rnd) | 1,
            .span_id = next_rand(&rnd) | 1,
            .parent_span_id = 0,
            .vpid = pid,
            .disk = (int32_t)(i % disks),
            .op = r % 8 < 5 ? BLKIN_TP_OP_READ : BLKIN_TP_OP_WRITE,
            .flags = (r >> 8) % 16 == 0 ? 0x10 : 0,
            .offset = ((r >> 12) % (1u << 20)) * 4096,
            .bytes = 4096u << ((r >> 40) % 5),
            .start_ns = t - 20000 - (r >> 48) % 100000,
            .ret = 0,
            .inflight = (int32_t)((r >> 32) % 32),
            .why = BLKIN_WHY_SAMPLED,
        };

        if (hung_every && i % hung_every == hung_every - 1)
            lttng_ust_tracepoint(blkin_qemu, hung, &s, t);
        if (batch == 1) {
            lttng_ust_tracepoint(blkin_qemu, request, &s);
        } else {
            /* As the filter records them (blkin-batch.c): the request's
             * words, its end read from the clock. */
            struct blkin_batch_rec *rec =
                (struct blkin_batch_rec *)(words + nwords);

            memset(rec, 0, sizeof(*rec));
            rec->span = s;
            rec->end_ns = now_ns();
            nwords += BLKIN_BW__HEAD;
            if (++head.count == batch || i + 1 == n) {
                head.seq++;
                lttng_ust_tracepoint(blkin_qemu, batch, &head, words, nwords);
                head.count = 0;
                nwords = 0;
            }
        }

        /* Pace in slices of 1/1000 s so the consumer daemon keeps up. */
        if (rate && i % 1000 == 999) {
            uint64_t due = t0 + (i + 1) * UINT64_C(1000000000) / rate;
            uint64_t cur = now_ns();

            if (due > cur)
                usleep((useconds_t)((due - cur) / 1000));
        }
    }
    emit_disks(disks, BLKIN_DISK_CLOSE);
    printf("{\"requests\":%" PRIu64 ",\"disks\":%u,\"hung\":%" PRIu64
           ",\"seconds\":%.3f}\n",
           n, disks, hung_every ? n / hung_every : 0, (now_ns() - t0) / 1e9);
    return 0;
}
