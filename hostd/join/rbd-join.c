/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rbd-join.c: filter spans, librbd calls and OSD ops joined (rbd-join.h).
 *
 * Calls wait in lists keyed by (process, op, offset, length), ops in lists
 * keyed by (client, object), both ordered by start; spans of RBD disks wait
 * in arrival order until their ops have come (or cannot come any more).
 * Per collector: its clock (measured offset, causal slots per second), how
 * far it has read the OSDs, and its gaps (OSDs down, ops maybe lost).
 */
#define G_LOG_DOMAIN "blkin-hostd-join"

#include "rbd-join.h"

#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Slack for two CLOCK_MONOTONIC stamps of one process (span vs call). */
#define SAME_CLOCK_SLACK_NS 2000
/* Slack on top of a collector's clock bound when placing an op in a call. */
#define OP_SLACK_NS 20000
/* Before a collector's clock is known (another host, no pairs yet): the
 * host's wall clock stands in, this far off at most (NTP), and only an
 * unambiguous op joins. */
#define BOOT_TOL_NS (2LL * 1000000000LL)
/* A collector's progress is the initiation time before which all ops have
 * been read (it accounts for ops still in flight): a call's ops were
 * initiated before the call ended, so progress past its end (and the clock
 * bound) is enough. A millisecond on top. */
#define PROGRESS_SLACK_NS (1000000LL)
/* A span of a bound disk whose call has not been seen waits this long. */
#define CALL_WAIT_NS (200LL * 1000000LL)
#define GAPS         64
#define WINDOW_S     (HOSTD_RBD_WINDOW_NS / 1000000000LL)

typedef struct Image {
    uint64_t key; /* image_key() */
    uint64_t gid;
    char *prefix, *pool, *name;
    uint64_t object_size, stripe_unit, stripe_count;
    void *disk; /* bound to, or NULL */
    bool closed;
} Image;

typedef struct CallKey {
    uint64_t offset, length;
    uint32_t vpid;
    uint16_t source;
    uint8_t op;
} CallKey;

typedef struct Call {
    HostdRbdCall c;
} Call;

typedef struct Op {
    blkin_osd_op op;
    uint16_t collector;
    uint32_t exact_claims; /* a request of exactly its extent took it */
    uint32_t claims;       /* requests it served */
} Op;

typedef struct Client {
    void *disk;
    HostdSpan top, client;
    HostdRbdCall call;
    bool has_call;
    uint64_t image_key;
} Client;

typedef struct Slot {
    int64_t sec; /* our second of the pairs; 0 = empty */
    int64_t lo, hi;
    int64_t min_out, min_back; /* writes' halves */
} Slot;

typedef struct Gap {
    int64_t from, to; /* OSD wall; to = INT64_MAX while open */
} Gap;

typedef struct Collector {
    bool connected;
    bool measured, same_host;
    int64_t measured_offset, measured_bound; /* our mono - OSD wall */
    int64_t progress;    /* OSD wall: its OSDs read up to here */
    unsigned unreadable; /* OSDs not answering now */
    Slot slots[WINDOW_S];
    Gap gaps[GAPS];
    unsigned gap_next;
    HostdRbdClock clock;
} Collector;

struct HostdRbdJoin {
    HostdRbdEmit emit;
    void *opaque;
    GHashTable *images; /* image_key -> Image * */
    GHashTable *calls;  /* CallKey * -> GPtrArray of Call *, by start */
    size_t n_calls;
    GHashTable *ops; /* "gid/object" -> GPtrArray of Op *, by initiated */
    size_t n_ops;
    GArray *clients; /* Client, arrival order */
    unsigned n_collectors;
    Collector col[HOSTD_RBD_MAX_COLLECTORS];
    HostdRbdCounters c;
};

static uint64_t image_key(uint16_t source, uint32_t vpid, uint32_t index)
{
    return (uint64_t)(source & 0xff) << 56 |
           (uint64_t)(vpid & 0xffffffu) << 24 | (index & 0xffffff);
}

static guint call_hash(gconstpointer p)
{
    const CallKey *k = p;

    return g_int64_hash(&k->offset) ^ (guint)(k->length * 2654435761u) ^
           k->vpid ^ ((guint)k->op << 24) ^ ((guint)k->source << 16);
}

static gboolean call_equal(gconstpointer a, gconstpointer b)
{
    const CallKey *x = a, *y = b;

    return x->offset == y->offset && x->length == y->length &&
           x->vpid == y->vpid && x->source == y->source && x->op == y->op;
}

static void image_free(gpointer p)
{
    Image *im = p;

    g_free(im->prefix);
    g_free(im->pool);
    g_free(im->name);
    g_free(im);
}

HostdRbdJoin *hostd_rbd_join_new(HostdRbdEmit emit, void *opaque)
{
    HostdRbdJoin *j = g_new0(HostdRbdJoin, 1);

    j->emit = emit;
    j->opaque = opaque;
    j->images =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, image_free);
    j->calls = g_hash_table_new_full(call_hash, call_equal, g_free,
                                     (GDestroyNotify)g_ptr_array_unref);
    j->ops = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                   (GDestroyNotify)g_ptr_array_unref);
    j->clients = g_array_new(FALSE, FALSE, sizeof(Client));
    return j;
}

void hostd_rbd_join_free(HostdRbdJoin *j)
{
    if (!j)
        return;
    g_hash_table_unref(j->images);
    g_hash_table_unref(j->calls);
    g_hash_table_unref(j->ops);
    g_array_unref(j->clients);
    g_free(j);
}

const HostdRbdCounters *hostd_rbd_join_counters(const HostdRbdJoin *j)
{
    return &j->c;
}

size_t hostd_rbd_join_pending(const HostdRbdJoin *j)
{
    return j->n_calls + j->n_ops + j->clients->len;
}

const HostdRbdClock *hostd_rbd_join_clock_of(const HostdRbdJoin *j,
                                             unsigned collector)
{
    return collector < HOSTD_RBD_MAX_COLLECTORS ? &j->col[collector].clock
                                                : NULL;
}

/* ---- striping --------------------------------------------------------- */

unsigned hostd_rbd_extents(uint64_t object_size, uint64_t stripe_unit,
                           uint64_t stripe_count, uint64_t offset,
                           uint64_t length,
                           void (*fn)(void *opaque, uint64_t objno,
                                      uint64_t off, uint64_t len),
                           void *opaque)
{
    uint64_t su = stripe_unit ? stripe_unit : object_size;
    uint64_t sc = stripe_count ? stripe_count : 1;
    uint64_t per_object, n = 0;

    if (!object_size || !su || su > object_size || object_size % su)
        return 0;
    per_object = object_size / su; /* stripe units in one object */
    /* Ceph's Striper::file_to_extents, one stripe unit at a time. */
    while (length) {
        uint64_t blockno = offset / su;
        uint64_t stripeno = blockno / sc;
        uint64_t stripepos = blockno % sc;
        uint64_t objectsetno = stripeno / per_object;
        uint64_t objno = objectsetno * sc + stripepos;
        uint64_t block_off = offset % su;
        uint64_t x_off = (stripeno % per_object) * su + block_off;
        uint64_t len = MIN(length, su - block_off);

        fn(opaque, objno, x_off, len);
        n++;
        offset += len;
        length -= len;
    }
    return (unsigned)n;
}

void hostd_rbd_object_name(const char *prefix, uint64_t objno, char *buf,
                           size_t size)
{
    if (g_str_has_prefix(prefix, "rbd_data."))
        g_snprintf(buf, size, "%s.%016" PRIx64, prefix, objno);
    else
        g_snprintf(buf, size, "%s.%012" PRIx64, prefix, objno);
}

/* ---- images and calls -------------------------------------------------- */

void hostd_rbd_join_image(HostdRbdJoin *j, const HostdRbdImage *in)
{
    uint64_t key = image_key(in->source, in->vpid, in->image);
    Image *im = g_hash_table_lookup(j->images, &key);

    if (im && (in->state == 2 || im->gid != in->gid ||
               g_strcmp0(im->prefix, in->prefix) != 0)) {
        if (in->state == 2) {
            im->closed = true;
            return;
        }
        /* The slot was reused for another image: a new one. */
        g_hash_table_remove(j->images, &key);
        im = NULL;
    }
    if (im || in->state == 2)
        return;
    im = g_new0(Image, 1);
    im->key = key;
    im->gid = in->gid;
    im->prefix = g_strdup(in->prefix);
    im->pool = g_strdup(in->pool);
    im->name = g_strdup(in->name);
    im->object_size = in->object_size;
    im->stripe_unit = in->stripe_unit;
    im->stripe_count = in->stripe_count;
    g_hash_table_insert(j->images, &im->key, im);
}

static Image *image_of(HostdRbdJoin *j, uint64_t key)
{
    return g_hash_table_lookup(j->images, &key);
}

bool hostd_rbd_join_disk_image(const HostdRbdJoin *j, const void *disk,
                               const char **pool, const char **name,
                               uint64_t *gid)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, j->images);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Image *im = v;

        if (im->disk != disk)
            continue;
        *pool = im->pool;
        *name = im->name;
        *gid = im->gid;
        if (!im->closed)
            return true;
    }
    return false;
}

static void drop_call_list_entry(HostdRbdJoin *j, GPtrArray *a, guint i,
                                 const CallKey *k)
{
    g_ptr_array_remove_index(a, i);
    j->n_calls--;
    if (!a->len)
        g_hash_table_remove(j->calls, k);
}

/* Calls no span claimed within HOSTD_RBD_KEEP_NS of @before_ns go. */
static void expire_calls(HostdRbdJoin *j, int64_t before_ns, bool overflow)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, j->calls);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        GPtrArray *a = v;

        for (guint i = a->len; i-- > 0;) {
            Call *c = g_ptr_array_index(a, i);

            if ((int64_t)c->c.end_ns >= before_ns)
                continue;
            g_ptr_array_remove_index(a, i);
            j->n_calls--;
            if (overflow)
                j->c.overflow++;
            else
                j->c.calls_unclaimed++;
        }
        if (!a->len)
            g_hash_table_iter_remove(&it);
    }
}

void hostd_rbd_join_call(HostdRbdJoin *j, const HostdRbdCall *in)
{
    CallKey k = {in->offset, in->length, in->vpid, in->source, in->op};
    GPtrArray *a;
    Call *c;
    guint i;

    j->c.calls++;
    if (j->n_calls >= HOSTD_RBD_MAX_PENDING)
        expire_calls(j, (int64_t)in->end_ns - 1000000000LL, true);
    if (j->n_calls >= HOSTD_RBD_MAX_PENDING) {
        j->c.overflow++;
        return;
    }
    c = g_new(Call, 1);
    c->c = *in;
    a = g_hash_table_lookup(j->calls, &k);
    if (!a) {
        a = g_ptr_array_new_with_free_func(g_free);
        g_hash_table_insert(j->calls, g_memdup2(&k, sizeof(k)), a);
    }
    g_ptr_array_add(a, c);
    for (i = a->len - 1;
         i > 0 &&
         ((Call *)g_ptr_array_index(a, i - 1))->c.start_ns > c->c.start_ns;
         i--)
        a->pdata[i] = a->pdata[i - 1];
    a->pdata[i] = c;
    j->n_calls++;
}

/* The call below @s: first-in first-out among identical ones, of an image
 * bound to @disk or to none. Removed from the lists when found. */
static bool take_call(HostdRbdJoin *j, void *disk, const HostdSpan *s,
                      HostdRbdCall *out)
{
    CallKey k = {s->offset, s->bytes, s->vpid, s->source, s->op};
    GPtrArray *a = g_hash_table_lookup(j->calls, &k);

    for (guint i = 0; a && i < a->len; i++) {
        Call *c = g_ptr_array_index(a, i);
        Image *im = image_of(j, image_key(c->c.source, c->c.vpid, c->c.image));

        if ((int64_t)c->c.start_ns + SAME_CLOCK_SLACK_NS <
                (int64_t)s->start_ns ||
            (int64_t)c->c.end_ns > (int64_t)s->end_ns + SAME_CLOCK_SLACK_NS)
            continue;
        if (im && im->disk && im->disk != disk)
            continue;
        if (im && !im->disk)
            im->disk = disk; /* the disk's image from now on */
        *out = c->c;
        drop_call_list_entry(j, a, i, &k);
        return true;
    }
    return false;
}

static bool disk_bound(HostdRbdJoin *j, void *disk)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, j->images);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((Image *)v)->disk == disk)
            return true;
    return false;
}

bool hostd_rbd_join_client(HostdRbdJoin *j, void *disk, const HostdSpan *top,
                           const HostdSpan *client)
{
    Client cl = {.disk = disk, .top = *top, .client = *client};

    cl.has_call = take_call(j, disk, client, &cl.call);
    if (!cl.has_call && !disk_bound(j, disk))
        return false;
    if (cl.has_call)
        cl.image_key = image_key(cl.call.source, cl.call.vpid, cl.call.image);
    if (j->clients->len >= HOSTD_RBD_MAX_PENDING) {
        /* Overloaded: the oldest goes on without its ops. */
        Client *old = &g_array_index(j->clients, Client, 0);
        HostdRbdMatch m = {.disk = old->disk,
                           .top = &old->top,
                           .client = &old->client,
                           .call = old->has_call ? &old->call : NULL,
                           .outcome = old->has_call ? HOSTD_RBD_OP_MISSING
                                                    : HOSTD_RBD_NO_CALL};

        if (old->has_call) {
            m.below.rbd = true;
            m.below.rbd_ns[0] = old->call.end_ns - old->call.start_ns;
        }
        j->c.overflow++;
        j->emit(j->opaque, &m);
        g_array_remove_index(j->clients, 0);
    }
    g_array_append_val(j->clients, cl);
    return true;
}

void hostd_rbd_join_forget(HostdRbdJoin *j, void *disk)
{
    GHashTableIter it;
    gpointer v;
    guint kept = 0;

    g_hash_table_iter_init(&it, j->images);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((Image *)v)->disk == disk)
            ((Image *)v)->disk = NULL;
    for (guint i = 0; i < j->clients->len; i++) {
        Client *c = &g_array_index(j->clients, Client, i);

        if (c->disk != disk)
            g_array_index(j->clients, Client, kept++) = *c;
    }
    g_array_set_size(j->clients, kept);
}

int64_t hostd_rbd_join_horizon(const HostdRbdJoin *j, const void *disk)
{
    int64_t h = INT64_MAX;

    for (guint i = 0; i < j->clients->len; i++) {
        const Client *c = &g_array_index(j->clients, Client, i);

        if (c->disk == disk)
            h = MIN(h, (int64_t)c->top.start_ns);
    }
    return h;
}

/* ---- collectors -------------------------------------------------------- */

void hostd_rbd_join_collectors(HostdRbdJoin *j, unsigned n)
{
    j->n_collectors = MIN(n, HOSTD_RBD_MAX_COLLECTORS);
}

static Collector *col(HostdRbdJoin *j, unsigned c)
{
    return c < HOSTD_RBD_MAX_COLLECTORS ? &j->col[c] : NULL;
}

/* Our wall-minus-monotonic offset now: the stand-in for another host's. */
static int64_t own_wall_minus_mono(void)
{
    return g_get_real_time() * 1000 - g_get_monotonic_time() * 1000;
}

static void clock_recompute(Collector *c, int64_t now_sec)
{
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    int64_t fo = INT64_MAX, fb = INT64_MAX;
    bool any = false;

    for (int i = 0; i < WINDOW_S; i++) {
        const Slot *s = &c->slots[i];

        if (!s->sec || s->sec <= now_sec - WINDOW_S)
            continue;
        lo = MAX(lo, s->lo);
        hi = MIN(hi, s->hi);
        fo = MIN(fo, s->min_out);
        fb = MIN(fb, s->min_back);
        any = true;
    }
    if (c->measured && c->same_host) {
        int64_t plo = c->measured_offset - c->measured_bound;
        int64_t phi = c->measured_offset + c->measured_bound;

        if (any && MAX(lo, plo) <= MIN(hi, phi)) {
            lo = MAX(lo, plo);
            hi = MIN(hi, phi);
        } else {
            lo = plo;
            hi = phi;
        }
        any = true;
    }
    if (!any || lo > hi) {
        if (!c->clock.known && c->measured) {
            /* Another host, no pairs yet: its wall clock as ours, loosely. */
            c->clock.offset_ns = c->measured_offset;
            c->clock.bound_ns = BOOT_TOL_NS;
        }
        return;
    }
    c->clock.known = true;
    c->clock.same_host = c->same_host;
    c->clock.offset_ns = lo + (hi - lo) / 2;
    c->clock.bound_ns = (hi - lo) / 2;
    c->clock.floor_out_ns = fo == INT64_MAX ? 0 : fo;
    c->clock.floor_back_ns = fb == INT64_MAX ? 0 : fb;
}

void hostd_rbd_join_clock(HostdRbdJoin *j, unsigned collector,
                          int64_t wall_minus_mono_ns, int64_t bound_ns,
                          bool same_host)
{
    Collector *c = col(j, collector);

    if (!c)
        return;
    c->measured = true;
    c->same_host = same_host;
    /* OSD wall + offset = our monotonic. Another host's offset is only its
     * own: ours stands in until pairs say better. */
    c->measured_offset =
        -(same_host ? wall_minus_mono_ns : own_wall_minus_mono());
    c->measured_bound = bound_ns;
    clock_recompute(c, g_get_monotonic_time() / 1000000);
}

void hostd_rbd_join_progress(HostdRbdJoin *j, unsigned collector,
                             int64_t wall_ns)
{
    Collector *c = col(j, collector);

    if (c)
        c->progress = MAX(c->progress, wall_ns);
}

void hostd_rbd_join_connected(HostdRbdJoin *j, unsigned collector, bool up)
{
    Collector *c = col(j, collector);

    if (c)
        c->connected = up;
}

void hostd_rbd_join_unreadable(HostdRbdJoin *j, unsigned collector, unsigned n)
{
    Collector *c = col(j, collector);

    if (c)
        c->unreadable = n;
}

void hostd_rbd_join_gap(HostdRbdJoin *j, unsigned collector, int64_t from_ns,
                        int64_t to_ns)
{
    Collector *c = col(j, collector);

    if (!c)
        return;
    for (unsigned i = 0; i < GAPS; i++)
        if (c->gaps[i].from == from_ns &&
            (c->gaps[i].to == INT64_MAX || c->gaps[i].to == to_ns)) {
            c->gaps[i].to = to_ns; /* an open gap closes */
            return;
        }
    c->gaps[c->gap_next] = (Gap){from_ns, to_ns};
    c->gap_next = (c->gap_next + 1) % GAPS;
}

/* ---- ops --------------------------------------------------------------- */

static char *op_key(uint64_t gid, const char *object)
{
    return g_strdup_printf("%" PRIu64 "/%s", gid, object);
}

static bool known_gid(HostdRbdJoin *j, uint64_t gid, bool *data,
                      const char *object)
{
    GHashTableIter it;
    gpointer v;
    bool known = false;

    *data = false;
    g_hash_table_iter_init(&it, j->images);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        Image *im = v;

        if (im->gid != gid)
            continue;
        known = true;
        if (g_str_has_prefix(object, im->prefix) &&
            object[strlen(im->prefix)] == '.')
            *data = true;
    }
    return known;
}

static void expire_ops(HostdRbdJoin *j, int64_t before_wall, bool overflow)
{
    GHashTableIter it;
    gpointer k, v;

    g_hash_table_iter_init(&it, j->ops);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        GPtrArray *a = v;

        for (guint i = a->len; i-- > 0;) {
            Op *o = g_ptr_array_index(a, i);

            if (o->op.stamp[BLKIN_OSD_INITIATED] >= before_wall)
                continue;
            if (overflow)
                j->c.overflow++;
            else if (!o->claims && o->op.kind != BLKIN_OSD_KIND_OTHER)
                j->c.ops_data_unclaimed++;
            g_ptr_array_remove_index(a, i);
            j->n_ops--;
        }
        if (!a->len)
            g_hash_table_iter_remove(&it);
    }
}

void hostd_rbd_join_op(HostdRbdJoin *j, unsigned collector,
                       const blkin_osd_op *in)
{
    bool data;
    char *key;
    GPtrArray *a;
    Op *o;
    guint i;

    j->c.ops++;
    if (!known_gid(j, in->gid, &data, in->object)) {
        j->c.ops_unknown++;
        return;
    }
    if (!data || in->kind == BLKIN_OSD_KIND_OTHER) {
        /* The header, the object map, watches: librbd's own work. */
        j->c.ops_meta++;
        return;
    }
    if (j->n_ops >= HOSTD_RBD_MAX_PENDING)
        expire_ops(j, in->stamp[BLKIN_OSD_INITIATED] - 1000000000LL, true);
    if (j->n_ops >= HOSTD_RBD_MAX_PENDING) {
        j->c.overflow++;
        return;
    }
    o = g_new0(Op, 1);
    o->op = *in;
    o->collector = (uint16_t)collector;
    key = op_key(in->gid, in->object);
    a = g_hash_table_lookup(j->ops, key);
    if (!a) {
        a = g_ptr_array_new_with_free_func(g_free);
        g_hash_table_insert(j->ops, key, a);
    } else {
        g_free(key);
    }
    g_ptr_array_add(a, o);
    for (i = a->len - 1;
         i > 0 &&
         ((Op *)g_ptr_array_index(a, i - 1))->op.stamp[0] > o->op.stamp[0];
         i--)
        a->pdata[i] = a->pdata[i - 1];
    a->pdata[i] = o;
    j->n_ops++;
}

/* ---- matching ---------------------------------------------------------- */

static bool kind_fits(uint8_t op, uint32_t kind)
{
    switch (op) {
    case BLKIN_OP_READ:
        return kind == BLKIN_OSD_KIND_READ;
    case BLKIN_OP_WRITE:
        return kind == BLKIN_OSD_KIND_WRITE;
    case BLKIN_OP_DISCARD:
    case BLKIN_OP_WRITE_ZEROES:
        return kind == BLKIN_OSD_KIND_ZERO || kind == BLKIN_OSD_KIND_WRITE;
    default:
        return false;
    }
}

static bool contains(const blkin_osd_op *o, uint64_t off, uint64_t len)
{
    if (o->offset > off)
        return false;
    if (o->length == BLKIN_OSD_TO_END)
        return true;
    return off - o->offset <= o->length && len <= o->length - (off - o->offset);
}

/* The op's stamp that bounds it from above: it happened before librbd saw
 * the reply (a write's commit; a read has none before its reply but its
 * start). */
static int64_t causal_end(const blkin_osd_op *o)
{
    if (o->kind != BLKIN_OSD_KIND_READ && o->stamp[BLKIN_OSD_COMMIT])
        return o->stamp[BLKIN_OSD_COMMIT];
    if (o->stamp[BLKIN_OSD_STARTED])
        return o->stamp[BLKIN_OSD_STARTED];
    return o->stamp[BLKIN_OSD_INITIATED];
}

/* Where the OSD's part ends in the phases: commit, or a read's done. */
static int64_t phase_end(const blkin_osd_op *o)
{
    if (o->kind != BLKIN_OSD_KIND_READ) {
        for (int s = BLKIN_OSD_COMMIT; s <= BLKIN_OSD_DONE; s++)
            if (o->stamp[s])
                return o->stamp[s];
    }
    if (o->stamp[BLKIN_OSD_DONE])
        return o->stamp[BLKIN_OSD_DONE];
    return causal_end(o);
}

static int64_t started(const blkin_osd_op *o)
{
    for (int s = BLKIN_OSD_STARTED; s >= BLKIN_OSD_INITIATED; s--)
        if (o->stamp[s])
            return o->stamp[s];
    return 0;
}

/* OSD wall -> ours, and the tolerance that goes with it. */
static void mapping(HostdRbdJoin *j, unsigned collector, int64_t *d,
                    int64_t *tol, bool *sure)
{
    Collector *c = col(j, collector);

    if (c && c->clock.known) {
        *d = c->clock.offset_ns;
        *tol = c->clock.bound_ns + OP_SLACK_NS;
        *sure = true;
    } else {
        *d = c && c->measured ? c->measured_offset : -own_wall_minus_mono();
        *tol = BOOT_TOL_NS;
        *sure = false;
    }
}

typedef struct ExtentCtx {
    HostdRbdJoin *j;
    const Image *im;
    const HostdRbdCall *call;
    Op *found[64];
    unsigned n, missing;
    bool ambiguous;
    bool merged;
} ExtentCtx;

static void match_extent(void *opaque, uint64_t objno, uint64_t off,
                         uint64_t len)
{
    ExtentCtx *x = opaque;
    char name[BLKIN_OSD_OBJECT_MAX];
    g_autofree char *key = NULL;
    GPtrArray *a;
    Op *exact = NULL, *larger = NULL;
    unsigned candidates = 0;

    if (x->n >= G_N_ELEMENTS(x->found)) {
        x->missing++; /* a call over 64 objects: beyond what is joined */
        return;
    }
    hostd_rbd_object_name(x->im->prefix, objno, name, sizeof(name));
    key = op_key(x->im->gid, name);
    a = g_hash_table_lookup(x->j->ops, key);
    for (guint i = 0; a && i < a->len; i++) {
        Op *o = g_ptr_array_index(a, i);
        int64_t d, tol;
        bool sure;

        if (!kind_fits(x->call->op, o->op.kind) || !contains(&o->op, off, len))
            continue;
        mapping(x->j, o->collector, &d, &tol, &sure);
        if (o->op.stamp[BLKIN_OSD_INITIATED] + d <
                (int64_t)x->call->start_ns - tol ||
            causal_end(&o->op) + d > (int64_t)x->call->end_ns + tol)
            continue;
        bool is_exact = o->op.offset == off && o->op.length == len;

        if (is_exact && o->exact_claims)
            continue; /* an identical request's, in flight with this one */
        candidates++;
        if (!sure && candidates > 1) {
            x->ambiguous = true;
            return;
        }
        if (is_exact && !exact)
            exact = o;
        else if (!is_exact &&
                 (!larger || (o->op.length != BLKIN_OSD_TO_END &&
                              (larger->op.length == BLKIN_OSD_TO_END ||
                               o->op.length < larger->op.length))))
            larger = o;
    }
    if (exact) {
        x->found[x->n++] = exact;
    } else if (larger) {
        x->found[x->n++] = larger;
        x->merged = true;
    } else {
        x->missing++;
    }
}

/* Some OSD's ops cannot be read now: an op not found may be its. */
static bool any_unreadable(HostdRbdJoin *j)
{
    for (unsigned k = 0; k < j->n_collectors; k++)
        if (j->col[k].unreadable)
            return true;
    return false;
}

static bool in_gap(HostdRbdJoin *j, const HostdRbdCall *call)
{
    for (unsigned k = 0; k < j->n_collectors; k++) {
        Collector *c = &j->col[k];
        int64_t d, tol;
        bool sure;

        mapping(j, k, &d, &tol, &sure);
        for (unsigned i = 0; i < GAPS; i++) {
            const Gap *g = &c->gaps[i];

            if (!g->from && !g->to)
                continue;
            if (g->from + d <= (int64_t)call->end_ns + tol &&
                (g->to == INT64_MAX ||
                 g->to + d >= (int64_t)call->start_ns - tol))
                return true;
        }
    }
    return false;
}

/* Have all collectors read their OSDs past the call's end? */
static bool delivered(HostdRbdJoin *j, const HostdRbdCall *call)
{
    for (unsigned k = 0; k < j->n_collectors; k++) {
        Collector *c = &j->col[k];
        int64_t d, tol;
        bool sure;

        if (!c->connected || !c->progress)
            return false;
        mapping(j, k, &d, &tol, &sure);
        if (c->progress + d <
            (int64_t)call->end_ns + PROGRESS_SLACK_NS + (sure ? 0 : tol))
            return false;
    }
    return true;
}

/* The pair's bounds on the collector's clock, and its halves. */
static void clock_add(HostdRbdJoin *j, const Op *o, const HostdRbdCall *call)
{
    Collector *c = col(j, o->collector);
    int64_t sec = (int64_t)call->end_ns / 1000000000LL;
    Slot *s;
    int64_t lo = (int64_t)call->start_ns - o->op.stamp[BLKIN_OSD_INITIATED];
    int64_t hi = (int64_t)call->end_ns - causal_end(&o->op);

    if (!c)
        return;
    c->clock.pairs++;
    if (c->measured && c->same_host &&
        (lo > c->measured_offset + c->measured_bound ||
         hi < c->measured_offset - c->measured_bound))
        c->clock.inconsistent++;
    s = &c->slots[sec % WINDOW_S];
    if (s->sec != sec) {
        *s = (Slot){.sec = sec,
                    .lo = lo,
                    .hi = hi,
                    .min_out = INT64_MAX,
                    .min_back = INT64_MAX};
    } else {
        s->lo = MAX(s->lo, lo);
        s->hi = MIN(s->hi, hi);
    }
    clock_recompute(c, sec);
}

static void note_halves(HostdRbdJoin *j, const Op *o, int64_t sec, int64_t out,
                        int64_t back)
{
    Collector *c = col(j, o->collector);
    Slot *s;

    /* Writes only: a read's "done" may come after its reply. */
    if (!c || o->op.kind == BLKIN_OSD_KIND_READ)
        return;
    s = &c->slots[sec % WINDOW_S];
    if (s->sec != sec)
        return;
    s->min_out = MIN(s->min_out, out);
    s->min_back = MIN(s->min_back, back);
    clock_recompute(c, sec);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void emit_client(HostdRbdJoin *j, Client *cl, HostdRbdOutcome outcome,
                        ExtentCtx *x)
{
    HostdRbdMatch m = {
        .disk = cl->disk,
        .top = &cl->top,
        .client = &cl->client,
        .call = cl->has_call ? &cl->call : NULL,
        .outcome = outcome,
    };
    int64_t rs = (int64_t)cl->call.start_ns, re = (int64_t)cl->call.end_ns;

    if (!cl->has_call) {
        j->emit(j->opaque, &m);
        return;
    }
    m.in_gap = in_gap(j, &cl->call);
    m.below.rbd = true;
    m.below.rbd_ns[0] = re > rs ? (uint64_t)(re - rs) : 0;
    if (outcome == HOSTD_RBD_JOINED && x && x->n) {
        const Op *crit = x->found[0];
        int64_t d, tol, I, S, C, out, back, fo, fb;
        bool sure;

        for (unsigned i = 0; i < x->n; i++) {
            const blkin_osd_op *f = &x->found[i]->op;
            uint64_t bytes = f->length == BLKIN_OSD_TO_END ? 0 : f->length;

            if (!x->found[i]->claims && f->kind == BLKIN_OSD_KIND_READ) {
                m.new_reads++;
                m.new_read_bytes += bytes;
            } else if (!x->found[i]->claims) {
                m.new_writes++;
                m.new_write_bytes += bytes;
            }
            x->found[i]->claims++;
            clock_add(j, x->found[i], &cl->call);
            if (phase_end(&x->found[i]->op) > phase_end(&crit->op))
                crit = x->found[i];
        }
        if (!x->merged)
            for (unsigned i = 0; i < x->n; i++)
                x->found[i]->exact_claims++;
        mapping(j, crit->collector, &d, &tol, &sure);
        I = clamp64(crit->op.stamp[BLKIN_OSD_INITIATED] + d, rs, re);
        S = clamp64(started(&crit->op) + d, I, re);
        C = clamp64(phase_end(&crit->op) + d, S, re);
        note_halves(j, crit, re / 1000000000LL, I - rs, re - C);
        fo = col(j, crit->collector)->clock.floor_out_ns;
        fb = col(j, crit->collector)->clock.floor_back_ns;
        /* A read's last stamp ("done") comes after its reply, often after
         * librbd had it: its reply left no later than the fastest way back
         * allows. */
        if (crit->op.kind == BLKIN_OSD_KIND_READ)
            C = MAX(S, MIN(C, re - fb));
        out = I - rs;
        back = re - C;
        m.below.rbd_osd = true;
        m.below.rbd_ns[1] = (uint64_t)MIN(out, fo);
        m.below.rbd_ns[2] = (uint64_t)(S - I);
        m.below.rbd_ns[3] = (uint64_t)(C - S);
        m.below.rbd_ns[4] = (uint64_t)MIN(back, fb);
        m.below.rbd_ns[0] =
            (uint64_t)(out - MIN(out, fo) + back - MIN(back, fb));
        m.ops = x->n;
        m.merged = x->merged;
        m.osd = crit->op.osd;
        m.tid = crit->op.tid;
        m.collector = crit->collector;
    }
    j->emit(j->opaque, &m);
}

static bool needs_op(const HostdRbdCall *c)
{
    return c->length && c->ret >= 0 &&
           (c->op == BLKIN_OP_READ || c->op == BLKIN_OP_WRITE ||
            c->op == BLKIN_OP_DISCARD || c->op == BLKIN_OP_WRITE_ZEROES);
}

/* G_MESSAGES_DEBUG=blkin-hostd-join: why a call found no op. */
static void debug_one(void *opaque, uint64_t objno, uint64_t off, uint64_t len)
{
    ExtentCtx *x = opaque;
    char name[BLKIN_OSD_OBJECT_MAX];
    g_autofree char *key = NULL;
    GPtrArray *a;

    hostd_rbd_object_name(x->im->prefix, objno, name, sizeof(name));
    key = op_key(x->im->gid, name);
    a = g_hash_table_lookup(x->j->ops, key);
    g_debug("  extent %s %" PRIu64 "~%" PRIu64 ": %u ops", name, off, len,
            a ? a->len : 0);
    for (guint i = 0; a && i < a->len; i++) {
        Op *o = g_ptr_array_index(a, i);
        int64_t d, tol;
        bool sure;

        mapping(x->j, o->collector, &d, &tol, &sure);
        if (llabs(o->op.stamp[0] + d - (int64_t)x->call->start_ns) > 50000000)
            continue;
        g_debug("    op tid %" PRIu64 " kind %s %" PRIu64 "~%" PRIu64
                " init %+" PRId64 " end %+" PRId64 " (tol %" PRId64
                ") claims %u/%u",
                o->op.tid, blkin_osd_kind_name(o->op.kind), o->op.offset,
                o->op.length, o->op.stamp[0] + d - (int64_t)x->call->start_ns,
                causal_end(&o->op) + d - (int64_t)x->call->end_ns, tol,
                o->exact_claims, o->claims);
    }
}

static void debug_unjoined(HostdRbdJoin *j, const Image *im,
                           const HostdRbdCall *c)
{
    ExtentCtx x = {.j = j, .im = im, .call = c};

    if (!g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN)) {
        g_debug("call %s %" PRIu64 "~%" PRIu64 " [%" PRIu64 ", %" PRIu64
                "] of client.%" PRIu64 ": no OSD op",
                blkin_op_name(c->op), c->offset, c->length, c->start_ns,
                c->end_ns, im->gid);
        hostd_rbd_extents(im->object_size, im->stripe_unit, im->stripe_count,
                          c->offset, c->length, debug_one, &x);
    }
}

/* 1: emitted; 0: keep waiting. */
static int try_client(HostdRbdJoin *j, Client *cl, int64_t watermark_ns)
{
    ExtentCtx x = {.j = j, .call = &cl->call};
    bool too_old;

    if (!cl->has_call) {
        /* Its call may come a little behind (another trace stream). */
        cl->has_call = take_call(j, cl->disk, &cl->client, &cl->call);
        if (cl->has_call)
            cl->image_key =
                image_key(cl->call.source, cl->call.vpid, cl->call.image);
        else if ((int64_t)cl->top.end_ns + CALL_WAIT_NS > watermark_ns)
            return 0;
        else {
            emit_client(j, cl, HOSTD_RBD_NO_CALL, NULL);
            return 1;
        }
    }
    if (!needs_op(&cl->call)) {
        emit_client(j, cl, HOSTD_RBD_NO_OP, NULL);
        return 1;
    }
    x.im = image_of(j, cl->image_key);
    if (!x.im || !j->n_collectors) {
        emit_client(j, cl, HOSTD_RBD_OP_MISSING, NULL);
        return 1;
    }
    hostd_rbd_extents(x.im->object_size, x.im->stripe_unit, x.im->stripe_count,
                      cl->call.offset, cl->call.length, match_extent, &x);
    too_old = (int64_t)cl->call.end_ns < watermark_ns - HOSTD_RBD_MAX_WAIT_NS;
    if (!x.missing && !x.ambiguous && x.n) {
        emit_client(j, cl, HOSTD_RBD_JOINED, &x);
        return 1;
    }
    if (delivered(j, &cl->call) || too_old) {
        if (x.ambiguous && x.n && !x.missing) {
            /* Before the clock is known, still ambiguous: not joined. */
            emit_client(j, cl, HOSTD_RBD_OP_MISSING, NULL);
            return 1;
        }
        if (!x.n && x.im)
            debug_unjoined(j, x.im, &cl->call);
        emit_client(j, cl,
                    !too_old && !in_gap(j, &cl->call) && !any_unreadable(j)
                        ? HOSTD_RBD_NO_OP
                        : HOSTD_RBD_OP_MISSING,
                    NULL);
        return 1;
    }
    return 0;
}

void hostd_rbd_join_flush(HostdRbdJoin *j, int64_t watermark_ns)
{
    guint kept = 0;

    for (guint i = 0; i < j->clients->len; i++) {
        Client cl = g_array_index(j->clients, Client, i);

        if ((int64_t)cl.top.end_ns > watermark_ns ||
            !try_client(j, &cl, watermark_ns))
            g_array_index(j->clients, Client, kept++) = cl;
    }
    g_array_set_size(j->clients, kept);
    expire_calls(j, watermark_ns - HOSTD_RBD_KEEP_NS, false);
    if (j->n_collectors) {
        int64_t d, tol;
        bool sure;

        /* Ops are kept by their OSD's clock: the first collector's
         * mapping is close enough for an age of tens of seconds. */
        mapping(j, 0, &d, &tol, &sure);
        expire_ops(j, watermark_ns - d - HOSTD_RBD_KEEP_NS - tol, false);
    }
}
