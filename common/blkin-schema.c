/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-schema.c: the name tables of blkin-schema.h, one each.
 */
#include "blkin-schema.h"

#include <string.h>

static const char *const op_names[BLKIN_OP__MAX + 1] = {
    [BLKIN_OP_READ] = "read",
    [BLKIN_OP_WRITE] = "write",
    [BLKIN_OP_FLUSH] = "flush",
    [BLKIN_OP_DISCARD] = "discard",
    [BLKIN_OP_WRITE_ZEROES] = "write_zeroes",
    [BLKIN_OP_OTHER] = "other",
};

static const char *const phase_names[BLKIN_PHASE__N] = {
    [BLKIN_PHASE_GUEST_QUEUE] = "guest_queue",
    [BLKIN_PHASE_GUEST_TO_QEMU] = "guest_to_qemu",
    [BLKIN_PHASE_QEMU] = "qemu",
    [BLKIN_PHASE_BACKEND] = "backend",
    [BLKIN_PHASE_QEMU_TO_GUEST] = "qemu_to_guest",
    [BLKIN_PHASE_TOTAL] = "total",
    [BLKIN_PHASE_NETWORK] = "network",
    [BLKIN_PHASE_REMOTE] = "remote",
    [BLKIN_PHASE_GUEST_TO_DEVICE] = "guest_to_device",
    [BLKIN_PHASE_DEVICE] = "device",
    [BLKIN_PHASE_DEVICE_COMPLETION] = "device_completion",
    [BLKIN_PHASE_DEVICE_TO_GUEST] = "device_to_guest",
    [BLKIN_PHASE_IN_QEMU] = "in_qemu",
    [BLKIN_PHASE_SPAN_ALONE] = "span_alone",
    [BLKIN_PHASE_LIBRBD] = "librbd",
    [BLKIN_PHASE_NET_OUT] = "net_out",
    [BLKIN_PHASE_OSD_QUEUE] = "osd_queue",
    [BLKIN_PHASE_OSD_EXEC] = "osd_exec",
    [BLKIN_PHASE_NET_BACK] = "net_back",
};

const enum blkin_phase blkin_phase_report_order[BLKIN_PHASE__N] = {
    BLKIN_PHASE_TOTAL,
    BLKIN_PHASE_GUEST_QUEUE,
    BLKIN_PHASE_GUEST_TO_QEMU,
    BLKIN_PHASE_GUEST_TO_DEVICE,
    BLKIN_PHASE_DEVICE,
    BLKIN_PHASE_QEMU,
    BLKIN_PHASE_NETWORK,
    BLKIN_PHASE_REMOTE,
    BLKIN_PHASE_BACKEND,
    BLKIN_PHASE_LIBRBD,
    BLKIN_PHASE_NET_OUT,
    BLKIN_PHASE_OSD_QUEUE,
    BLKIN_PHASE_OSD_EXEC,
    BLKIN_PHASE_NET_BACK,
    BLKIN_PHASE_DEVICE_COMPLETION,
    BLKIN_PHASE_QEMU_TO_GUEST,
    BLKIN_PHASE_DEVICE_TO_GUEST,
    BLKIN_PHASE_IN_QEMU,
    BLKIN_PHASE_SPAN_ALONE,
};

static const char *const disk_state_names[BLKIN_DISK__MAX + 1] = {
    [BLKIN_DISK_OPEN] = "open",
    [BLKIN_DISK_REFRESH] = "refresh",
    [BLKIN_DISK_CLOSE] = "close",
};

static int find(const char *const *names, unsigned n, const char *name)
{
    for (unsigned i = 0; name && i < n; i++)
        if (!strcmp(names[i], name))
            return (int)i;
    return -1;
}

const char *blkin_op_name(unsigned op)
{
    return op <= BLKIN_OP__MAX ? op_names[op] : "invalid";
}

int blkin_op_from_name(const char *name)
{
    return find(op_names, BLKIN_OP__MAX + 1, name);
}

enum blkin_op blkin_op_from_tp(unsigned tp_op)
{
    switch (tp_op) {
    case BLKIN_TP_OP_READ:
        return BLKIN_OP_READ;
    case BLKIN_TP_OP_WRITE:
        return BLKIN_OP_WRITE;
    case BLKIN_TP_OP_WRITE_ZEROES:
        return BLKIN_OP_WRITE_ZEROES;
    case BLKIN_TP_OP_DISCARD:
        return BLKIN_OP_DISCARD;
    case BLKIN_TP_OP_FLUSH:
        return BLKIN_OP_FLUSH;
    default:
        return BLKIN_OP_OTHER;
    }
}

const char *blkin_phase_name(unsigned phase)
{
    return phase < BLKIN_PHASE__N ? phase_names[phase] : "invalid";
}

int blkin_phase_from_name(const char *name)
{
    return find(phase_names, BLKIN_PHASE__N, name);
}

const char *blkin_disk_state_name(unsigned state)
{
    return state <= BLKIN_DISK__MAX ? disk_state_names[state] : "invalid";
}
