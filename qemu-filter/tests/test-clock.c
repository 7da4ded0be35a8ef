/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The filter's clock (blkin-clock.h) against CLOCK_MONOTONIC, the clock the
 * filter's times are compared with (LTTng's stamps, QEMU's accounting):
 * from more threads than CPUs, every read lies between the clock_gettime()
 * calls around it (give or take BRACKET_NS), and no thread ever sees it run
 * backwards (hostd refuses a request that ends before it starts). Where the
 * kernel's clocksource is the TSC, the TSC path must be the one running;
 * BLKIN_CLOCK=monotonic turns it off.
 *
 *   test-clock [--tap] [SECONDS]
 */
#include "blkin-clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BRACKET_NS 250

static double seconds = 2.0;
static int failures, tests;

static void ok(int cond, const char *fmt, const char *detail)
{
    tests++;
    if (!cond)
        failures++;
    printf("%sok %d - %s", cond ? "" : "not ", tests, fmt);
    if (detail && *detail)
        printf(": %s", detail);
    printf("\n");
    fflush(stdout);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

typedef struct {
    uint64_t reads, outside, max_ahead, max_behind;
    uint64_t steps_back, max_step_back;
} Result;

static void *reader(void *arg)
{
    Result *r = arg;
    uint64_t end = mono_ns() + (uint64_t)(seconds * 1e9), prev = 0;

    for (;;) {
        uint64_t t1 = mono_ns(), b = blkin_now_ns(), t2 = mono_ns();

        if (t1 >= end)
            break;
        r->reads++;
        if (b + BRACKET_NS < t1 || b > t2 + BRACKET_NS)
            r->outside++;
        if (b > t2 && b - t2 > r->max_ahead)
            r->max_ahead = b - t2;
        if (b < t1 && t1 - b > r->max_behind)
            r->max_behind = t1 - b;
        if (b < prev) {
            r->steps_back++;
            if (prev - b > r->max_step_back)
                r->max_step_back = prev - b;
        }
        prev = b;
    }
    return NULL;
}

static int tsc_expected(char *why, size_t n)
{
    char cs[32] = "";
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
                    "current_clocksource",
                    "re");

    if (f) {
        if (!fgets(cs, sizeof(cs), f))
            cs[0] = '\0';
        fclose(f);
    }
    cs[strcspn(cs, "\n")] = '\0';
#ifndef __x86_64__
    snprintf(why, n, "not x86-64");
    return 0;
#endif
    if (getenv("BLKIN_CLOCK")) {
        snprintf(why, n, "BLKIN_CLOCK is set");
        return 0;
    }
    snprintf(why, n, "the kernel's clocksource is '%s'", cs);
    return strcmp(cs, "tsc") == 0;
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = (int)(ncpu > 0 ? ncpu : 1) + 1;
    pthread_t th[64];
    Result res[64], all = {0};
    char why[96], detail[256];
    int tsc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--child-source") == 0) {
            /* Re-executed with BLKIN_CLOCK=monotonic: which path runs. */
            for (int k = 0; k < 1000; k++)
                (void)blkin_now_ns();
            printf("%s\n", blkin_clock_source());
            return 0;
        }
        if (strcmp(argv[i], "--tap") != 0)
            seconds = atof(argv[i]);
    }
    if (nthreads > 64)
        nthreads = 64;
    tsc = tsc_expected(why, sizeof(why));

    /* Calibration takes one window (100 ms) of reads. */
    {
        uint64_t until = mono_ns() + 300000000ULL;

        while (mono_ns() < until)
            (void)blkin_now_ns();
    }
    snprintf(detail, sizeof(detail), "source '%s' (%s)", blkin_clock_source(),
             why);
    if (tsc)
        ok(strcmp(blkin_clock_source(), "tsc") == 0 &&
               !(__atomic_load_n(&blkin_clock_anchor.seq, __ATOMIC_ACQUIRE) &
                 1),
           "the TSC path runs where the kernel's clocksource is the TSC",
           detail);
    else
        ok(strncmp(blkin_clock_source(), "monotonic", 9) == 0,
           "clock_gettime() where the TSC path may not run", detail);

    memset(res, 0, sizeof(res));
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, reader, &res[i]);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        all.reads += res[i].reads;
        all.outside += res[i].outside;
        all.steps_back += res[i].steps_back;
        if (res[i].max_ahead > all.max_ahead)
            all.max_ahead = res[i].max_ahead;
        if (res[i].max_behind > all.max_behind)
            all.max_behind = res[i].max_behind;
        if (res[i].max_step_back > all.max_step_back)
            all.max_step_back = res[i].max_step_back;
    }
    snprintf(detail, sizeof(detail),
             "%d threads, %llu reads, %llu outside, most ahead %llu ns, most "
             "behind %llu ns",
             nthreads, (unsigned long long)all.reads,
             (unsigned long long)all.outside, (unsigned long long)all.max_ahead,
             (unsigned long long)all.max_behind);
    ok(all.reads > 1000 && all.outside == 0,
       "every read within 250 ns of the clock_gettime() calls around it",
       detail);
    snprintf(detail, sizeof(detail), "%llu steps back, the largest %llu ns",
             (unsigned long long)all.steps_back,
             (unsigned long long)all.max_step_back);
    ok(all.steps_back == 0, "no thread ever sees the clock go back", detail);
    printf("# source after the run: %s\n", blkin_clock_source());
    if (tsc)
        ok(strcmp(blkin_clock_source(), "tsc") == 0,
           "the TSC path still runs after the run", blkin_clock_source());

    /* The knob: BLKIN_CLOCK=monotonic. */
    {
        char cmd[4096], out[128] = "";
        FILE *p;

        snprintf(cmd, sizeof(cmd),
                 "BLKIN_CLOCK=monotonic /proc/%d/exe --child-source",
                 (int)getpid());
        p = popen(cmd, "r");
        if (p) {
            if (!fgets(out, sizeof(out), p))
                out[0] = '\0';
            pclose(p);
        }
        out[strcspn(out, "\n")] = '\0';
        ok(strcmp(out, "monotonic: BLKIN_CLOCK=monotonic") == 0,
           "BLKIN_CLOCK=monotonic: clock_gettime() only", out);
    }
    printf("1..%d\n", tests);
    return failures ? 1 : 0;
}
