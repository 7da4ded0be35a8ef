/* SPDX-License-Identifier: GPL-2.0-or-later */
#define G_LOG_DOMAIN "blkin-hostd-stats"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "latency-hist.h"
#include "varint.h"

#define SUB_BITS    HOSTD_LATENCY_HIST_SUB_BITS
#define SUB_COUNT   (1u << SUB_BITS)
#define NBUCKETS    HOSTD_LATENCY_HIST_BUCKETS
#define IDX_SHIFT   52
#define COUNT_MASK  HOSTD_LATENCY_HIST_COUNT_MAX
#define SER_VERSION 1

/* Index and count share one word so a bucket costs 8 bytes and the array
 * stays sorted by index when sorted by word. */
#define PACK(idx, cnt) (((uint64_t)(idx) << IDX_SHIFT) | (cnt))
#define IDX(w)         ((unsigned)((w) >> IDX_SHIFT))
#define CNT(w)         ((w)&COUNT_MASK)

G_STATIC_ASSERT(NBUCKETS == (64 - SUB_BITS + 1) * SUB_COUNT);
G_STATIC_ASSERT(NBUCKETS <= (1u << (64 - IDX_SHIFT)));

struct HostdLatencyHist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t *b; /* occupied buckets, increasing index */
    uint32_t n;
    uint32_t cap;
};

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB_COUNT)
        return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v); /* >= SUB_BITS */
    unsigned shift = e - SUB_BITS;
    return ((e - SUB_BITS + 1) << SUB_BITS) +
           (unsigned)((v >> shift) - SUB_COUNT);
}

static uint64_t bucket_lower(unsigned idx)
{
    if (idx < SUB_COUNT)
        return idx;
    unsigned e = (idx >> SUB_BITS) + SUB_BITS - 1;
    uint64_t sub = idx & (SUB_COUNT - 1);
    return (SUB_COUNT + sub) << (e - SUB_BITS);
}

static uint64_t bucket_upper(unsigned idx)
{
    if (idx < SUB_COUNT)
        return idx;
    unsigned e = (idx >> SUB_BITS) + SUB_BITS - 1;
    /* Inclusive, so the last bucket ends at UINT64_MAX without overflow. */
    return bucket_lower(idx) + ((UINT64_C(1) << (e - SUB_BITS)) - 1);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t cnt_add(uint64_t a, uint64_t b)
{
    uint64_t r = sat_add(a, b);
    return r > COUNT_MASK ? COUNT_MASK : r;
}

HostdLatencyHist *hostd_latency_hist_new(void)
{
    return g_new0(HostdLatencyHist, 1);
}

void hostd_latency_hist_free(HostdLatencyHist *h)
{
    if (!h)
        return;
    g_free(h->b);
    g_free(h);
}

HostdLatencyHist *hostd_latency_hist_copy(const HostdLatencyHist *h)
{
    HostdLatencyHist *c = g_new(HostdLatencyHist, 1);

    *c = *h;
    c->cap = h->n;
    c->b = h->n ? g_memdup2(h->b, h->n * sizeof(*h->b)) : NULL;
    return c;
}

void hostd_latency_hist_reset(HostdLatencyHist *h)
{
    g_free(h->b);
    memset(h, 0, sizeof(*h));
}

/* Grows by a quarter: many histograms live at once, so slack matters more
 * than the occasional realloc. */
static void reserve(HostdLatencyHist *h, uint32_t need)
{
    if (need <= h->cap)
        return;
    uint32_t cap = h->cap + h->cap / 4 + 8;
    if (cap < need)
        cap = need;
    if (cap > NBUCKETS)
        cap = NBUCKETS;
    h->b = g_renew(uint64_t, h->b, cap);
    h->cap = cap;
}

/* Gives back memory after a subtraction emptied many buckets. */
static void maybe_shrink(HostdLatencyHist *h)
{
    if (h->n == 0) {
        g_clear_pointer(&h->b, g_free);
        h->cap = 0;
    } else if (h->cap > 16 && h->n < h->cap / 2) {
        h->cap = h->n + h->n / 4 + 4;
        h->b = g_renew(uint64_t, h->b, h->cap);
    }
}

/* Position of @idx, or where it would be inserted. */
static uint32_t find(const HostdLatencyHist *h, unsigned idx, bool *found)
{
    uint32_t lo = 0, hi = h->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        unsigned m = IDX(h->b[mid]);
        if (m == idx) {
            *found = true;
            return mid;
        }
        if (m < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void note_extremes(HostdLatencyHist *h, uint64_t min, uint64_t max)
{
    if (h->count == 0 || min < h->min)
        h->min = min;
    if (h->count == 0 || max > h->max)
        h->max = max;
}

void hostd_latency_hist_add_n(HostdLatencyHist *h, uint64_t ns, uint64_t n)
{
    if (n == 0)
        return;
    unsigned idx = bucket_of(ns);
    bool found;
    uint32_t pos = find(h, idx, &found);

    if (found) {
        h->b[pos] = PACK(idx, cnt_add(CNT(h->b[pos]), n));
    } else {
        reserve(h, h->n + 1);
        memmove(&h->b[pos + 1], &h->b[pos], (h->n - pos) * sizeof(*h->b));
        h->b[pos] = PACK(idx, n > COUNT_MASK ? COUNT_MASK : n);
        h->n++;
    }
    note_extremes(h, ns, ns);
    h->count = sat_add(h->count, n);
    uint64_t s;
    h->sum =
        __builtin_mul_overflow(ns, n, &s) ? UINT64_MAX : sat_add(h->sum, s);
}

void hostd_latency_hist_merge(HostdLatencyHist *dst,
                              const HostdLatencyHist *src)
{
    if (src->count == 0)
        return;
    if (dst == src) {
        /* Doubling in place: no new buckets, no aliasing trouble. */
        for (uint32_t i = 0; i < dst->n; i++)
            dst->b[i] =
                PACK(IDX(dst->b[i]), cnt_add(CNT(dst->b[i]), CNT(dst->b[i])));
        dst->count = sat_add(dst->count, dst->count);
        dst->sum = sat_add(dst->sum, dst->sum);
        return;
    }

    /* Count the union first so one allocation suffices, then merge from the
     * back so that dst's own entries never get overwritten unread. */
    uint32_t i = 0, j = 0, total = 0;
    while (i < dst->n || j < src->n) {
        if (j == src->n || (i < dst->n && IDX(dst->b[i]) < IDX(src->b[j]))) {
            i++;
        } else if (i == dst->n || IDX(src->b[j]) < IDX(dst->b[i])) {
            j++;
        } else {
            i++;
            j++;
        }
        total++;
    }
    reserve(dst, total);

    int64_t a = (int64_t)dst->n - 1, b = (int64_t)src->n - 1;
    int64_t w = (int64_t)total - 1;
    while (b >= 0) {
        unsigned ib = IDX(src->b[b]);
        if (a >= 0 && IDX(dst->b[a]) > ib) {
            dst->b[w--] = dst->b[a--];
        } else if (a >= 0 && IDX(dst->b[a]) == ib) {
            dst->b[w--] = PACK(ib, cnt_add(CNT(dst->b[a]), CNT(src->b[b])));
            a--;
            b--;
        } else {
            dst->b[w--] = src->b[b--];
        }
    }
    /* What remains of dst below w is already in place. */
    dst->n = total;
    note_extremes(dst, src->min, src->max);
    dst->count = sat_add(dst->count, src->count);
    dst->sum = sat_add(dst->sum, src->sum);
}

int hostd_latency_hist_subtract(HostdLatencyHist *h,
                                const HostdLatencyHist *part)
{
    if (part->count == 0)
        return 0;
    if (part->count > h->count)
        return -ERANGE;

    /* Check everything before touching anything. */
    uint32_t i = 0;
    for (uint32_t j = 0; j < part->n; j++) {
        unsigned idx = IDX(part->b[j]);
        while (i < h->n && IDX(h->b[i]) < idx)
            i++;
        if (i == h->n || IDX(h->b[i]) != idx || CNT(h->b[i]) < CNT(part->b[j]))
            return -ERANGE;
    }

    uint32_t w = 0;
    i = 0;
    for (uint32_t j = 0; i < h->n; i++) {
        uint64_t c = CNT(h->b[i]);
        if (j < part->n && IDX(part->b[j]) == IDX(h->b[i]))
            c -= CNT(part->b[j++]);
        if (c)
            h->b[w++] = PACK(IDX(h->b[i]), c);
    }
    h->n = w;
    h->count -= part->count;
    /* A saturated sum no longer knows its value; leave it saturated. */
    if (h->sum != UINT64_MAX)
        h->sum = h->sum >= part->sum ? h->sum - part->sum : 0;

    int stale = 0;
    if (h->count == 0) {
        h->min = h->max = h->sum = 0;
    } else {
        /* The extremes survive unless @part may have held them. */
        if (part->min <= h->min) {
            h->min = bucket_lower(IDX(h->b[0]));
            stale = 1;
        }
        if (part->max >= h->max) {
            h->max = bucket_upper(IDX(h->b[h->n - 1]));
            stale = 1;
        }
        /* The bucket bound may be looser than what is known to remain. */
        if (h->min < bucket_lower(IDX(h->b[0])))
            h->min = bucket_lower(IDX(h->b[0]));
        if (h->max > bucket_upper(IDX(h->b[h->n - 1])))
            h->max = bucket_upper(IDX(h->b[h->n - 1]));
    }
    maybe_shrink(h);
    return stale;
}

int hostd_latency_hist_set_extremes(HostdLatencyHist *h, uint64_t min,
                                    uint64_t max)
{
    if (h->n == 0 || min > max || bucket_of(min) != IDX(h->b[0]) ||
        bucket_of(max) != IDX(h->b[h->n - 1]))
        return -EINVAL;
    h->min = min;
    h->max = max;
    return 0;
}

uint64_t hostd_latency_hist_count(const HostdLatencyHist *h)
{
    return h->count;
}

uint64_t hostd_latency_hist_sum(const HostdLatencyHist *h)
{
    return h->sum;
}

uint64_t hostd_latency_hist_min(const HostdLatencyHist *h)
{
    return h->min;
}

uint64_t hostd_latency_hist_max(const HostdLatencyHist *h)
{
    return h->max;
}

size_t hostd_latency_hist_n_buckets(const HostdLatencyHist *h)
{
    return h->n;
}

size_t hostd_latency_hist_memory(const HostdLatencyHist *h)
{
    return sizeof(*h) + (size_t)h->cap * sizeof(*h->b);
}

uint64_t hostd_latency_hist_rank(double q, uint64_t count)
{
    if (count == 0)
        return 0;
    if (!(q > 0)) /* also NaN */
        return 1;
    if (q >= 1)
        return count;
    double r = ceil(q * (double)count);
    if (r < 1)
        return 1;
    if (r >= (double)count)
        return count;
    return (uint64_t)r;
}

uint64_t hostd_latency_hist_quantile(const HostdLatencyHist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = hostd_latency_hist_rank(q, h->count);
    /* The outermost ranks are known exactly. */
    if (rank == 1)
        return h->min;
    if (rank == h->count)
        return h->max;

    uint64_t cum = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        cum += CNT(h->b[i]);
        if (cum >= rank) {
            unsigned idx = IDX(h->b[i]);
            uint64_t lo = bucket_lower(idx);
            uint64_t v = lo + (bucket_upper(idx) - lo) / 2;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    /* Saturated bucket counts can leave cum short of count. */
    return h->max;
}

void hostd_latency_hist_iter_init(HostdLatencyHistIter *it,
                                  const HostdLatencyHist *h)
{
    *it = (HostdLatencyHistIter){.h = h};
}

bool hostd_latency_hist_iter_next(HostdLatencyHistIter *it,
                                  HostdLatencyBucket *out)
{
    if (it->i >= it->h->n)
        return false;
    uint64_t w = it->h->b[it->i++];
    out->lower = bucket_lower(IDX(w));
    out->upper = bucket_upper(IDX(w));
    out->count = CNT(w);
    it->cumulative = sat_add(it->cumulative, out->count);
    out->cumulative = it->cumulative;
    return true;
}

void hostd_latency_hist_bucket_bounds(uint64_t ns, uint64_t *lower,
                                      uint64_t *upper)
{
    unsigned idx = bucket_of(ns);
    *lower = bucket_lower(idx);
    *upper = bucket_upper(idx);
}

void hostd_latency_hist_serialize(const HostdLatencyHist *h, GByteArray *out)
{
    const uint8_t head[2] = {SER_VERSION, SUB_BITS};
    g_byte_array_append(out, head, sizeof(head));
    varint_put(out, h->n);
    varint_put(out, h->count);
    varint_put(out, h->sum);
    varint_put(out, h->min);
    varint_put(out, h->max);
    unsigned prev = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        unsigned idx = IDX(h->b[i]);
        /* Deltas keep neighbouring buckets at one byte; the first is
         * absolute (prev 0), later ones are at least 1. The low bit says
         * whether a count follows: in a second's worth of samples most
         * buckets hold exactly one, which then costs one byte in all. */
        uint64_t c = CNT(h->b[i]);
        varint_put(out, (uint64_t)(idx - prev) << 1 | (c > 1));
        if (c > 1)
            varint_put(out, c - 2);
        prev = idx;
    }
}

typedef struct Header {
    uint64_t n, count, sum, min, max;
} Header;

static int read_header(VarintReader *r, Header *hd)
{
    if (varint_get_byte(r) != SER_VERSION || varint_get_byte(r) != SUB_BITS)
        return -EBADMSG;
    hd->n = varint_get(r);
    hd->count = varint_get(r);
    hd->sum = varint_get(r);
    hd->min = varint_get(r);
    hd->max = varint_get(r);
    if (r->bad || hd->n > NBUCKETS || hd->min > hd->max)
        return -EBADMSG;
    if ((hd->n == 0) != (hd->count == 0))
        return -EBADMSG;
    if (hd->count == 0 && (hd->sum || hd->min || hd->max))
        return -EBADMSG;
    return 0;
}

int hostd_latency_hist_peek(const void *data, size_t len, uint64_t *count,
                            uint64_t *min, uint64_t *max)
{
    VarintReader r = {data, (const uint8_t *)data + len, false};
    Header hd;
    int ret = read_header(&r, &hd);

    if (ret < 0)
        return ret;
    *count = hd.count;
    *min = hd.min;
    *max = hd.max;
    return 0;
}

int hostd_latency_hist_deserialize(const void *data, size_t len,
                                   HostdLatencyHist **out)
{
    VarintReader r = {data, (const uint8_t *)data + len, false};
    Header hd;
    int ret = read_header(&r, &hd);

    if (ret < 0)
        return ret;
    /* Each bucket takes at least a byte: a bound on n before allocating
     * anything sized by it. */
    if (hd.n > (size_t)(r.end - r.p))
        return -EBADMSG;

    g_autoptr(HostdLatencyHist) h = hostd_latency_hist_new();
    if (hd.n) {
        h->b = g_new(uint64_t, hd.n);
        h->cap = (uint32_t)hd.n;
    }
    uint64_t idx = 0, total = 0;
    bool saturated = false;
    for (uint64_t i = 0; i < hd.n; i++) {
        uint64_t v = varint_get(&r);
        uint64_t delta = v >> 1, c = 1;
        if (v & 1) {
            c = varint_get(&r);
            if (c > COUNT_MASK - 2)
                return -EBADMSG;
            c += 2;
        }
        if (r.bad || (i > 0 && delta == 0) || delta >= NBUCKETS)
            return -EBADMSG;
        idx += delta;
        if (idx >= NBUCKETS)
            return -EBADMSG;
        h->b[i] = PACK(idx, c);
        total = sat_add(total, c);
        saturated |= c == COUNT_MASK;
    }
    h->n = (uint32_t)hd.n;
    if (r.p != r.end)
        return -EBADMSG;
    /* Totals must agree with the buckets (a saturated bucket may hold less
     * than it was given), and the extremes must sit in the outermost
     * buckets. */
    if (saturated ? total > hd.count : total != hd.count)
        return -EBADMSG;
    if (hd.n && (bucket_of(hd.min) != IDX(h->b[0]) ||
                 bucket_of(hd.max) != IDX(h->b[hd.n - 1])))
        return -EBADMSG;
    uint64_t lo, hi;
    if (hd.sum != UINT64_MAX && hd.count &&
        ((!__builtin_mul_overflow(hd.min, hd.count, &lo) && hd.sum < lo) ||
         (!__builtin_mul_overflow(hd.max, hd.count, &hi) && hd.sum > hi)))
        return -EBADMSG;

    h->count = hd.count;
    h->sum = hd.sum;
    h->min = hd.min;
    h->max = hd.max;
    *out = g_steal_pointer(&h);
    return 0;
}
