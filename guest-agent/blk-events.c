/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "blk-events.h"

#include <errno.h>
#include <string.h>

#include "blkin-proto.h"

static const char *const event_names[BLK_EV__N] = {
    [BLK_EV_INSERT] = "block_rq_insert",
    [BLK_EV_ISSUE] = "block_rq_issue",
    [BLK_EV_REQUEUE] = "block_rq_requeue",
    [BLK_EV_COMPLETE] = "block_rq_complete",
};

int blk_decoder_init(struct blk_decoder *d, const char *tracefs)
{
    memset(d, 0, sizeof(*d));
    for (int k = 0; k < BLK_EV__N; k++) {
        int r =
            tracefs_read_format(tracefs, "block", event_names[k], &d->fmt[k]);

        if (r < 0 && (k == BLK_EV_ISSUE || k == BLK_EV_COMPLETE))
            return r;
        d->have[k] = r == 0;
    }
    return 0;
}

/*
 * blk_fill_rwbs() writes an optional 'F' (preflush), then the operation
 * (W, R, D, DE, F, N; some kernels Z for write-zeroes), then modifiers
 * (F = FUA, A = readahead, S = sync, M = meta).
 */
void blk_parse_rwbs(const char *s, size_t len, uint8_t *op, uint8_t *flags)
{
    size_t i = 0;

    *flags = 0;
    *op = BLKIN_OP_OTHER;
    len = strnlen(s, len);
    if (len >= 2 && s[0] == 'F' && strchr("WRDNZF", s[1])) {
        *flags |= BLKIN_REQ_PREFLUSH;
        i = 1;
    }
    if (i < len) {
        switch (s[i++]) {
        case 'R':
            *op = BLKIN_OP_READ;
            break;
        case 'W':
            *op = BLKIN_OP_WRITE;
            break;
        case 'D':
            *op = BLKIN_OP_DISCARD;
            if (i < len && s[i] == 'E')
                i++; /* secure erase: still a discard to the host */
            break;
        case 'F':
            *op = BLKIN_OP_FLUSH;
            break;
        case 'Z':
            *op = BLKIN_OP_WRITE_ZEROES;
            break;
        default:
            /* 'N': an op the kernel does not name (write-zeroes on 6.1). */
            *op = BLKIN_OP_OTHER;
            break;
        }
    }
    for (; i < len; i++) {
        switch (s[i]) {
        case 'F':
            *flags |= BLKIN_REQ_FUA;
            break;
        case 'S':
            *flags |= BLKIN_REQ_SYNC;
            break;
        case 'M':
            *flags |= BLKIN_REQ_META;
            break;
        case 'A':
            *flags |= BLKIN_REQ_RAHEAD;
            break;
        default:
            break;
        }
    }
}

bool blk_decode(const struct blk_decoder *d, uint64_t time, const uint8_t *raw,
                uint32_t len, struct blk_event *e)
{
    uint16_t type;
    const struct tp_format *f = NULL;
    int k;

    if (len < 2)
        return false;
    memcpy(&type, raw, 2);
    for (k = 0; k < BLK_EV__N; k++)
        if (d->fmt[k].id == type && d->have[k]) {
            f = &d->fmt[k];
            break;
        }
    if (!f || (uint32_t)f->sector.offset + f->sector.size > len)
        return false;
    memset(e, 0, sizeof(*e));
    e->kind = (uint8_t)k;
    e->time = time;
    e->dev = (uint32_t)tp_get_u(&f->dev, raw, len);
    e->sector = tp_get_u(&f->sector, raw, len);
    /* Issue reports requests without a position (passthrough, flush) as
     * sector 0 (blk_rq_trace_sector), completion as -1: agree on 0. */
    if (e->sector == UINT64_MAX)
        e->sector = 0;
    if (f->bytes.present)
        e->bytes = (uint32_t)tp_get_u(&f->bytes, raw, len);
    else
        e->bytes = (uint32_t)(tp_get_u(&f->nr_sector, raw, len) << 9);
    e->error = (int32_t)tp_get_s(&f->error, raw, len);
    if (f->rwbs.present && (uint32_t)f->rwbs.offset + f->rwbs.size <= len)
        blk_parse_rwbs((const char *)raw + f->rwbs.offset, f->rwbs.size, &e->op,
                       &e->flags);
    return true;
}
