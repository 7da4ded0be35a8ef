/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The KVM PTP clock (ptp_kvm, /dev/ptpN) reads the host's CLOCK_REALTIME
 * through a hypercall; offering its readings lets the host cross-check the
 * probe-based offset. Absent under TCG and on non-KVM hosts.
 */
#ifndef AGENT_PTP_H
#define AGENT_PTP_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct ptp_clock {
    int fd;
    clockid_t id;
};

/* Opens the first PTP device named "KVM virtual PTP"; fd -1 if none. */
void ptp_open(struct ptp_clock *p);
void ptp_close(struct ptp_clock *p);

/* A PTP reading and the guest CLOCK_MONOTONIC midway around it. */
bool ptp_read(const struct ptp_clock *p, int64_t *ptp_ns, uint64_t *mono_ns);

uint64_t mono_now(void);

#endif
