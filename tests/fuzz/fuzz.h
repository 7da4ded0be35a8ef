/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz.h: what every harness in tests/fuzz provides. Built two ways
 * (meson.build): with clang's libFuzzer as a fuzzer, or with driver.c as a
 * program that replays files (the seed corpus, crashes) under ASan/UBSan.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant the code under test promises; abort() makes both builds
 * report it as a crash with the input that broke it. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
