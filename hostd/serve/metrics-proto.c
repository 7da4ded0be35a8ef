/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metrics-proto.c: /metrics in Prometheus' protobuf format with native
 * histograms (metrics-proto.h).
 *
 * One family at a time: its messages are built with protobuf-c, the
 * family is packed behind its varint length, and its memory freed.
 */
#define G_LOG_DOMAIN "blkin-hostd-serve"

#include "metrics-proto.h"

#include "prom-metrics.pb-c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef Blkin__Prom__MetricFamily Family;
typedef Blkin__Prom__Metric Metric;

struct HostdPromProto {
    GByteArray *out;
    /* The family being built, its metrics and what they point at. */
    Family fam;
    gboolean open;
    GPtrArray *metrics; /* Metric * */
    GPtrArray *owned;   /* freed with the family */
    GPtrArray *arrays;  /* GPtrArray * backing repeated fields */
};

static gpointer own(HostdPromProto *p, gpointer mem)
{
    g_ptr_array_add(p->owned, mem);
    return mem;
}

static char *own_str(HostdPromProto *p, const char *s, gssize n)
{
    return own(p, n < 0 ? g_strdup(s) : g_strndup(s, n));
}

/* ---- Accept ----------------------------------------------------------- */

/* The value of header @name in the head, or NULL (not NUL-terminated:
 * *@n bytes). */
static const char *header(const char *head, size_t len, const char *name,
                          size_t *n)
{
    size_t nl = strlen(name);

    for (const char *l = head, *end = head + len; l < end;) {
        const char *eol = memchr(l, '\n', end - l);
        size_t ll = (eol ? eol : end) - l;

        if (ll > nl && l[nl] == ':' && !g_ascii_strncasecmp(l, name, nl)) {
            const char *v = l + nl + 1;

            while (v < l + ll && (*v == ' ' || *v == '\t'))
                v++;
            *n = l + ll - v;
            if (*n && v[*n - 1] == '\r')
                (*n)--;
            return v;
        }
        l += ll + 1;
    }
    return NULL;
}

bool hostd_prom_proto_wanted(const char *head, size_t len)
{
    size_t n;
    const char *v = header(head, len, "Accept", &n);
    g_autofree char *acc = NULL;
    g_auto(GStrv) ranges = NULL;

    if (!v)
        return false;
    acc = g_strndup(v, n);
    ranges = g_strsplit(acc, ",", -1);
    for (char **r = ranges; *r; r++) {
        g_auto(GStrv) params = g_strsplit(*r, ";", -1);
        bool type = false, proto = false, delimited = false, zero = false;

        for (char **pp = params; *pp; pp++) {
            char *s = g_strstrip(*pp);

            if (!g_ascii_strcasecmp(s, "application/vnd.google.protobuf"))
                type = true;
            else if (!strcmp(s, "proto=io.prometheus.client.MetricFamily"))
                proto = true;
            else if (!strcmp(s, "encoding=delimited"))
                delimited = true;
            else if (g_str_has_prefix(s, "q=") && strtod(s + 2, NULL) <= 0)
                zero = true;
        }
        if (type && proto && delimited && !zero)
            return true;
    }
    return false;
}

/* ---- families ----------------------------------------------------------- */

HostdPromProto *hostd_prom_proto_new(void)
{
    HostdPromProto *p = g_new0(HostdPromProto, 1);

    p->out = g_byte_array_new();
    return p;
}

static void family_end(HostdPromProto *p)
{
    guint8 len[10];
    size_t n, k = 0;
    uint64_t v;

    if (!p->open)
        return;
    p->fam.n_metric = p->metrics->len;
    p->fam.metric = (Metric **)p->metrics->pdata;
    n = blkin__prom__metric_family__get_packed_size(&p->fam);
    for (v = n; v >= 0x80; v >>= 7)
        len[k++] = (guint8)(v | 0x80);
    len[k++] = (guint8)v;
    g_byte_array_append(p->out, len, k);
    g_byte_array_set_size(p->out, p->out->len + n);
    blkin__prom__metric_family__pack(&p->fam, p->out->data + p->out->len - n);
    g_ptr_array_unref(p->metrics);
    g_ptr_array_unref(p->arrays);
    g_ptr_array_unref(p->owned);
    p->open = FALSE;
}

static void family_begin(HostdPromProto *p, const char *name, gssize nlen,
                         const char *help, Blkin__Prom__MetricType type)
{
    family_end(p);
    p->owned = g_ptr_array_new_with_free_func(g_free);
    p->arrays =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_ptr_array_unref);
    p->metrics = g_ptr_array_new();
    blkin__prom__metric_family__init(&p->fam);
    p->fam.name = own_str(p, name, nlen);
    if (help)
        p->fam.help = own_str(p, help, -1);
    p->fam.has_type = TRUE;
    p->fam.type = type;
    p->open = TRUE;
}

static GPtrArray *array(HostdPromProto *p)
{
    GPtrArray *a = g_ptr_array_new();

    g_ptr_array_add(p->arrays, a);
    return a;
}

static Metric *metric(HostdPromProto *p, GPtrArray *labels)
{
    Metric *m = own(p, g_new(Metric, 1));

    blkin__prom__metric__init(m);
    m->n_label = labels->len;
    m->label = (Blkin__Prom__LabelPair **)labels->pdata;
    g_ptr_array_add(p->metrics, m);
    return m;
}

static Blkin__Prom__LabelPair *label(HostdPromProto *p, char *name, char *value)
{
    Blkin__Prom__LabelPair *l = own(p, g_new(Blkin__Prom__LabelPair, 1));

    blkin__prom__label_pair__init(l);
    l->name = name;
    l->value = value;
    return l;
}

/* ---- the text exposition ------------------------------------------------ */

/* A label value or help text with the format's escapes undone. */
static char *unescape(HostdPromProto *p, const char *s, size_t n)
{
    GString *o = g_string_sized_new(n);

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            i++;
            g_string_append_c(o, s[i] == 'n' ? '\n' : s[i]);
            continue;
        }
        g_string_append_c(o, s[i]);
    }
    return own(p, g_string_free(o, FALSE));
}

static Blkin__Prom__MetricType type_of(const char *t)
{
    if (g_str_has_prefix(t, "counter"))
        return BLKIN__PROM__METRIC_TYPE__COUNTER;
    if (g_str_has_prefix(t, "gauge"))
        return BLKIN__PROM__METRIC_TYPE__GAUGE;
    return BLKIN__PROM__METRIC_TYPE__UNTYPED;
}

/* One sample line "name{k="v",...} value" of the current family. */
static bool sample(HostdPromProto *p, const char *l)
{
    GPtrArray *labels = array(p);
    const char *c = l + strcspn(l, "{ ");
    double v;
    char *end;
    Metric *m;

    if (*c == '{') {
        c++;
        while (*c != '}') {
            const char *eq = strchr(c, '='), *q;

            if (!eq || eq[1] != '"')
                return false;
            q = eq + 2;
            while (*q && *q != '"')
                q += *q == '\\' && q[1] ? 2 : 1;
            if (*q != '"')
                return false;
            g_ptr_array_add(labels, label(p, own_str(p, c, eq - c),
                                          unescape(p, eq + 2, q - eq - 2)));
            c = q + 1;
            if (*c == ',')
                c++;
            else if (*c != '}')
                return false;
        }
        c++;
    }
    while (*c == ' ')
        c++;
    v = g_ascii_strtod(c, &end);
    if (end == c)
        return false;
    m = metric(p, labels);
    switch (p->fam.type) {
    case BLKIN__PROM__METRIC_TYPE__COUNTER:
        m->counter = own(p, g_new(Blkin__Prom__Counter, 1));
        blkin__prom__counter__init(m->counter);
        m->counter->has_value = TRUE;
        m->counter->value = v;
        break;
    case BLKIN__PROM__METRIC_TYPE__GAUGE:
        m->gauge = own(p, g_new(Blkin__Prom__Gauge, 1));
        blkin__prom__gauge__init(m->gauge);
        m->gauge->has_value = TRUE;
        m->gauge->value = v;
        break;
    default:
        m->untyped = own(p, g_new(Blkin__Prom__Untyped, 1));
        blkin__prom__untyped__init(m->untyped);
        m->untyped->has_value = TRUE;
        m->untyped->value = v;
        break;
    }
    return true;
}

bool hostd_prom_proto_add_text(HostdPromProto *p, const char *text,
                               const char *skip)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autofree char *help = NULL, *skip_ = g_strconcat(skip, "_", NULL);
    gsize mark = p->out->len;

    family_end(p);
    for (char **l = lines; *l; l++) {
        const char *s = *l;
        size_t nlen = strcspn(s, "{ ");

        if (!*s)
            continue;
        if (g_str_has_prefix(s, "# HELP ")) {
            const char *t = s + 7 + strcspn(s + 7, " ");

            g_free(help);
            help = g_strdup(*t ? t + 1 : t);
            continue;
        }
        if (g_str_has_prefix(s, "# TYPE ")) {
            const char *name = s + 7;
            size_t n = strcspn(name, " ");
            g_autofree char *h = NULL;

            if (!strncmp(name, skip, n) && !skip[n]) {
                family_end(p);
                g_clear_pointer(&help, g_free);
                continue;
            }
            h = help ? g_strcompress(help) : NULL;
            family_begin(p, name, n, h,
                         type_of(name[n] ? name + n + 1 : "untyped"));
            g_clear_pointer(&help, g_free);
            continue;
        }
        if (*s == '#')
            continue;
        if ((!strncmp(s, skip, nlen) && !skip[nlen]) ||
            g_str_has_prefix(s, skip_))
            continue;
        /* A sample of a family without a TYPE line: untyped. */
        if (!p->open || strncmp(s, p->fam.name, nlen) || p->fam.name[nlen])
            family_begin(p, s, nlen, NULL, BLKIN__PROM__METRIC_TYPE__UNTYPED);
        if (!sample(p, s)) {
            family_end(p);
            g_byte_array_set_size(p->out, mark);
            return false;
        }
    }
    family_end(p);
    return true;
}

/* ---- histograms --------------------------------------------------------- */

void hostd_prom_proto_histogram_family(HostdPromProto *p, const char *name,
                                       const char *help)
{
    family_begin(p, name, -1, help, BLKIN__PROM__METRIC_TYPE__HISTOGRAM);
}

int hostd_prom_native_index(double v, int schema)
{
    double scale = ldexp(1.0, schema);
    int i = (int)ceil(log2(v) * scale);

    /* log2 rounds: settle on the bucket whose bounds hold v. */
    while (v > exp2((double)i / scale))
        i++;
    while (v <= exp2((double)(i - 1) / scale))
        i--;
    return i;
}

void hostd_prom_proto_histogram(HostdPromProto *p, const char *const *labels,
                                const HostdLatencyHist *h, const double *ladder,
                                size_t n_ladder, int schema)
{
    GPtrArray *lp = array(p), *buckets = array(p), *spans = array(p);
    Blkin__Prom__Histogram *hi = own(p, g_new(Blkin__Prom__Histogram, 1));
    g_autoptr(GArray) idx = g_array_new(FALSE, FALSE, sizeof(int));
    g_autoptr(GArray) cnt = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    HostdLatencyHistIter it;
    HostdLatencyBucket b;
    bool more;
    uint64_t below = 0, zero = 0, prev = 0;
    int64_t *deltas;
    Metric *m;

    for (const char *const *l = labels; l && l[0] && l[1]; l += 2)
        g_ptr_array_add(lp,
                        label(p, own_str(p, l[0], -1), own_str(p, l[1], -1)));
    m = metric(p, lp);
    blkin__prom__histogram__init(hi);
    m->histogram = hi;
    hi->has_sample_count = TRUE;
    hi->sample_count = hostd_latency_hist_count(h);
    hi->has_sample_sum = TRUE;
    hi->sample_sum = hostd_latency_hist_sum(h) / 1e9;

    /* Classic buckets, as the text format has them. */
    hostd_latency_hist_iter_init(&it, h);
    more = hostd_latency_hist_iter_next(&it, &b);
    for (size_t k = 0; k < n_ladder; k++) {
        uint64_t le_ns = (uint64_t)(ladder[k] * 1e9);
        Blkin__Prom__Bucket *bk = own(p, g_new(Blkin__Prom__Bucket, 1));

        while (more && b.upper <= le_ns) {
            below = b.cumulative;
            more = hostd_latency_hist_iter_next(&it, &b);
        }
        blkin__prom__bucket__init(bk);
        bk->has_cumulative_count = TRUE;
        bk->cumulative_count = below;
        bk->has_upper_bound = TRUE;
        bk->upper_bound = ladder[k];
        g_ptr_array_add(buckets, bk);
    }
    hi->n_bucket = buckets->len;
    hi->bucket = (Blkin__Prom__Bucket **)buckets->pdata;

    /* Native buckets: each of hostd's by its middle. */
    hostd_latency_hist_iter_init(&it, h);
    while (hostd_latency_hist_iter_next(&it, &b)) {
        double mid = (b.lower + (b.upper - b.lower) / 2.0) / 1e9;
        int i;

        if (mid <= 1e-9) {
            zero += b.count;
            continue;
        }
        i = hostd_prom_native_index(mid, schema);
        if (idx->len && g_array_index(idx, int, idx->len - 1) == i) {
            g_array_index(cnt, uint64_t, cnt->len - 1) += b.count;
            continue;
        }
        g_array_append_val(idx, i);
        g_array_append_val(cnt, b.count);
    }
    hi->has_schema = TRUE;
    hi->schema = schema;
    hi->has_zero_threshold = TRUE;
    hi->zero_threshold = 1e-9;
    hi->has_zero_count = TRUE;
    hi->zero_count = zero;
    deltas = own(p, g_new(int64_t, MAX(idx->len, 1)));
    for (guint k = 0; k < idx->len; k++) {
        int i = g_array_index(idx, int, k);
        Blkin__Prom__BucketSpan *sp;

        if (k == 0 || i != g_array_index(idx, int, k - 1) + 1) {
            sp = own(p, g_new(Blkin__Prom__BucketSpan, 1));
            blkin__prom__bucket_span__init(sp);
            sp->has_offset = sp->has_length = TRUE;
            sp->offset = k ? i - g_array_index(idx, int, k - 1) - 1 : i;
            g_ptr_array_add(spans, sp);
        }
        sp = g_ptr_array_index(spans, spans->len - 1);
        sp->length++;
        deltas[k] = (int64_t)g_array_index(cnt, uint64_t, k) - (int64_t)prev;
        prev = g_array_index(cnt, uint64_t, k);
    }
    if (!spans->len) {
        /* A native histogram without observations: a no-op span says
         * what it is. */
        Blkin__Prom__BucketSpan *sp = own(p, g_new(Blkin__Prom__BucketSpan, 1));

        blkin__prom__bucket_span__init(sp);
        sp->has_offset = sp->has_length = TRUE;
        g_ptr_array_add(spans, sp);
    }
    hi->n_positive_span = spans->len;
    hi->positive_span = (Blkin__Prom__BucketSpan **)spans->pdata;
    hi->n_positive_delta = idx->len;
    hi->positive_delta = deltas;
}

GBytes *hostd_prom_proto_finish(HostdPromProto *p)
{
    GBytes *b;

    family_end(p);
    b = g_byte_array_free_to_bytes(g_steal_pointer(&p->out));
    g_free(p);
    return b;
}
