/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Native cost of the agent's user-space work per request (not a test):
 * raw tracepoint samples as Linux 6.1 lays them out -> blk_decode ->
 * matcher -> record queue -> REQUESTS frames. Run by
 * bench/agent-bench.sh --micro; prints ns per request.
 *
 *   agent-pipeline-bench [REQUESTS] [QUEUE_DEPTH]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blk-events.h"
#include "matcher.h"
#include "recq.h"

static const char *const fmt_common =
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:dev_t dev;\toffset:8;\tsize:4;\tsigned:0;\n"
    "\tfield:sector_t sector;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:unsigned int nr_sector;\toffset:24;\tsize:4;\tsigned:0;\n";

static void put_event(const char *root, const char *name, int id,
                      const char *last)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "mkdir -p %s/events/block/%s", root, name);
    if (system(path) != 0)
        exit(1);
    snprintf(path, sizeof(path), "%s/events/block/%s/id", root, name);
    f = fopen(path, "w");
    fprintf(f, "%d\n", id);
    fclose(f);
    snprintf(path, sizeof(path), "%s/events/block/%s/format", root, name);
    f = fopen(path, "w");
    fprintf(f, "format:\n%s%s", fmt_common, last);
    fclose(f);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct recq q;
static uint64_t t_now;

static void on_request(void *user, const struct blkin_request *r)
{
    recq_push(&q, r, t_now);
}

static void sample(uint8_t *raw, uint16_t type, uint64_t sector, int op)
{
    uint32_t dev = 254u << 20, bytes = 4096;

    memset(raw, 0, 64);
    memcpy(raw, &type, 2);
    memcpy(raw + 8, &dev, 4);
    memcpy(raw + 16, &sector, 8);
    memcpy(raw + 24, &(uint32_t){8}, 4);
    memcpy(raw + 28, &bytes, 4);
    memcpy(raw + 32, op ? "WS" : "R", op ? 2 : 1);
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 1000000;
    unsigned qd = argc > 2 ? (unsigned)atoi(argv[2]) : 16;
    char root[] = "/tmp/blkin-pipe-XXXXXX";
    static uint8_t frame[BLKIN_FRAME_MAX];
    static struct blkin_request run[BLKIN_REQUESTS_PER_FRAME_MAX];
    struct blk_decoder d;
    struct matcher m;
    struct blk_event *batch;
    uint8_t(*raw)[64];
    uint64_t t0, t1, sent = 0, bytes_out = 0;
    char cmd[128];

    if (!mkdtemp(root))
        return 1;
    put_event(root, "block_rq_insert", 1189,
              "\tfield:unsigned int bytes;\toffset:28;\tsize:4;\tsigned:0;\n"
              "\tfield:char rwbs[8];\toffset:32;\tsize:8;\tsigned:1;\n");
    put_event(root, "block_rq_issue", 1190,
              "\tfield:unsigned int bytes;\toffset:28;\tsize:4;\tsigned:0;\n"
              "\tfield:char rwbs[8];\toffset:32;\tsize:8;\tsigned:1;\n");
    put_event(root, "block_rq_complete", 1192,
              "\tfield:int error;\toffset:28;\tsize:4;\tsigned:1;\n"
              "\tfield:char rwbs[8];\toffset:32;\tsize:8;\tsigned:1;\n");
    if (blk_decoder_init(&d, root) < 0 || matcher_init(&m, 4096) < 0 ||
        recq_init(&q, 16384) < 0)
        return 1;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        return 1;

    /* Samples in the order a queue-depth-qd run produces them: qd inserts
     * and issues, then their completions in reverse order. */
    raw = calloc((size_t)3 * qd, 64);
    batch = calloc((size_t)3 * qd, sizeof(*batch));
    t0 = now_ns();
    for (unsigned done = 0; done < n; done += qd) {
        unsigned k = 0;

        for (unsigned i = 0; i < qd; i++) {
            uint64_t sector = (uint64_t)(done + i) * 8 % (1u << 24);

            sample(raw[k++], 1189, sector, (int)(i & 1));
            sample(raw[k++], 1190, sector, (int)(i & 1));
        }
        for (unsigned i = qd; i-- > 0;)
            sample(raw[k++], 1192, (uint64_t)(done + i) * 8 % (1u << 24),
                   (int)(i & 1));
        t_now = done;
        for (unsigned i = 0; i < k; i++)
            blk_decode(&d, (uint64_t)done * 100 + i, raw[i], 64, &batch[i]);
        for (unsigned i = 0; i < k; i++)
            matcher_event(&m, &batch[i], on_request, NULL);
        matcher_retry_orphans(&m, on_request, NULL);
        while (q.count >= 1024) {
            uint64_t first;
            size_t c =
                recq_peek_run(&q, run, BLKIN_REQUESTS_PER_FRAME_MAX, &first);
            ssize_t b =
                blkin_encode_requests(frame, sizeof(frame), first, run, c);

            recq_pop(&q, c);
            sent += c;
            bytes_out += (uint64_t)b;
        }
    }
    t1 = now_ns();
    printf("requests %u qd %u sent %llu unmatched %llu evicted %llu "
           "ns_per_request %.1f bytes_per_request %.1f\n",
           n, qd, (unsigned long long)sent, (unsigned long long)m.unmatched,
           (unsigned long long)m.evicted, (double)(t1 - t0) / n,
           sent ? (double)bytes_out / (double)sent : 0.0);
    matcher_free(&m);
    recq_free(&q);
    free(raw);
    free(batch);
    return 0;
}
