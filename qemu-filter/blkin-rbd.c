/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-rbd.c: blkin-rbd.so, an interposer of librbd's C API inside stock
 * QEMU. It records each call QEMU's rbd driver makes (rbd_aio_readv,
 * _writev, _discard, _write_zeroes, _flush: offset, length, start,
 * completion, result) and each image it opens (the client's gid and address
 * nonce, the image's object-name prefix and layout), as the `blkin_rbd`
 * LTTng-UST events hostd joins with the blkin filter's spans above and the
 * OSDs' op trackers below (docs/backend-ceph.md).
 *
 * How it gets in: blkin-preload.so dlopen()s this object with RTLD_GLOBAL
 * once the filter is registered, so its rbd_* definitions sit in the global
 * scope, ahead of librbd, when QEMU later dlopen()s block-rbd.so (which
 * brings librbd in as its own local dependency). The real functions are
 * found with dlopen("librbd.so.1", RTLD_NOLOAD) at the first call: by then
 * the caller has loaded librbd. Nothing here links librbd or LTTng.
 *
 * What it costs when RBD is not used: nothing but the symbols. The
 * tracepoint provider (blkin-rbd-tp.so) and the pool of completion wrappers
 * are loaded and mapped at the first rbd_open; until a session records
 * blkin_rbd:request, completions are not wrapped and calls go straight
 * through.
 *
 * Completions: rbd_aio_create_completion() is given a wrapper from a pool
 * this file owns, so rbd_aio_get_arg()/rbd_aio_release() can tell a wrapped
 * completion by its address alone, and the wrapper's callback takes the
 * completion time before calling QEMU's. A wrapper holds two references
 * while a request is in flight (the caller's, released by rbd_aio_release,
 * and the callback's) so either order of the two is safe.
 *
 * Plain libc, like the preload shim: no QEMU headers, no GLib.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "blkin-rbd-record.h"

#define API __attribute__((visibility("default")))

#define MAX_IMAGES 256
/* Completion wrappers: more than QEMU ever has in flight (its rbd driver
 * waits for each request; a VM's queues hold at most a few thousand). When
 * the pool runs out a request goes through unrecorded, counted. */
#define POOL_SIZE 16384
/* The image map is re-emitted this often while a session records it, so a
 * reader that attached late learns it (as the filter's disk map). */
#define MAP_INTERVAL_NS (10LL * 1000000000LL)

#define BLKIN_RBD_TP_SO "blkin-rbd-tp.so"

/* ---- the real functions ------------------------------------------------ */

static struct {
    int (*open)(rados_ioctx_t, const char *, rbd_image_t *, const char *);
    int (*open_read_only)(rados_ioctx_t, const char *, rbd_image_t *,
                          const char *);
    int (*close)(rbd_image_t);
    int (*aio_readv)(rbd_image_t, const struct iovec *, int, uint64_t,
                     rbd_completion_t);
    int (*aio_writev)(rbd_image_t, const struct iovec *, int, uint64_t,
                      rbd_completion_t);
    int (*aio_read)(rbd_image_t, uint64_t, size_t, char *, rbd_completion_t);
    int (*aio_write)(rbd_image_t, uint64_t, size_t, const char *,
                     rbd_completion_t);
    int (*aio_discard)(rbd_image_t, uint64_t, uint64_t, rbd_completion_t);
    int (*aio_write_zeroes)(rbd_image_t, uint64_t, size_t, rbd_completion_t,
                            int, int);
    int (*aio_flush)(rbd_image_t, rbd_completion_t);
    int (*aio_create_completion)(void *, rbd_callback_t, rbd_completion_t *);
    ssize_t (*aio_get_return_value)(rbd_completion_t);
    void *(*aio_get_arg)(rbd_completion_t);
    void (*aio_release)(rbd_completion_t);
    int (*stat)(rbd_image_t, rbd_image_info_t *, size_t);
    int (*get_block_name_prefix)(rbd_image_t, char *, size_t);
    int (*get_stripe_unit)(rbd_image_t, uint64_t *);
    int (*get_stripe_count)(rbd_image_t, uint64_t *);
    /* librados */
    rados_t (*ioctx_get_cluster)(rados_ioctx_t);
    uint64_t (*get_instance_id)(rados_t);
    int (*getaddrs)(rados_t, char **);
    int (*ioctx_get_pool_name)(rados_ioctx_t, char *, unsigned);
} real;

static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void *lookup(void *lib, const char *name)
{
    void *p = lib ? dlsym(lib, name) : NULL;

    return p ? p : dlsym(RTLD_NEXT, name);
}

static void resolve_real(void)
{
    /* Loaded by whoever calls us (block-rbd.so's dependency): never load
     * it here, and never resolve to ourselves. */
    void *rbd = dlopen("librbd.so.1", RTLD_LAZY | RTLD_NOLOAD);
    void *rados = dlopen("librados.so.2", RTLD_LAZY | RTLD_NOLOAD);

#define R(lib, field, sym) *(void **)&real.field = lookup(lib, sym)
    R(rbd, open, "rbd_open");
    R(rbd, open_read_only, "rbd_open_read_only");
    R(rbd, close, "rbd_close");
    R(rbd, aio_readv, "rbd_aio_readv");
    R(rbd, aio_writev, "rbd_aio_writev");
    R(rbd, aio_read, "rbd_aio_read");
    R(rbd, aio_write, "rbd_aio_write");
    R(rbd, aio_discard, "rbd_aio_discard");
    R(rbd, aio_write_zeroes, "rbd_aio_write_zeroes");
    R(rbd, aio_flush, "rbd_aio_flush");
    R(rbd, aio_create_completion, "rbd_aio_create_completion");
    R(rbd, aio_get_return_value, "rbd_aio_get_return_value");
    R(rbd, aio_get_arg, "rbd_aio_get_arg");
    R(rbd, aio_release, "rbd_aio_release");
    R(rbd, stat, "rbd_stat");
    R(rbd, get_block_name_prefix, "rbd_get_block_name_prefix");
    R(rbd, get_stripe_unit, "rbd_get_stripe_unit");
    R(rbd, get_stripe_count, "rbd_get_stripe_count");
    R(rados, ioctx_get_cluster, "rados_ioctx_get_cluster");
    R(rados, get_instance_id, "rados_get_instance_id");
    R(rados, getaddrs, "rados_getaddrs");
    R(rados, ioctx_get_pool_name, "rados_ioctx_get_pool_name");
#undef R
    /* The handles stay open: the symbols are used for the process's life. */
    if (!real.open || !real.aio_create_completion || !real.aio_release)
        fprintf(stderr, "blkin-rbd: librbd's functions not found; RBD "
                        "calls fail with ENOSYS\n");
}

#define REAL(fn, ...)                                                          \
    (pthread_once(&real_once, resolve_real),                                   \
     real.fn ? real.fn(__VA_ARGS__) : -ENOSYS)

/* ---- the tracepoint provider, loaded at the first open ----------------- */

static _Atomic(const blkin_rbd_tp_ops *) tp;
static pthread_once_t tp_once = PTHREAD_ONCE_INIT;

static void load_tp(void)
{
    char self[PATH_MAX], path[PATH_MAX + sizeof(BLKIN_RBD_TP_SO)];
    Dl_info info;
    void *h;
    char *slash;

    if (!dladdr((void *)load_tp, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, self) || !(slash = strrchr(self, '/')))
        return;
    *slash = '\0';
    snprintf(path, sizeof(path), "%s/%s", self, BLKIN_RBD_TP_SO);
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "blkin-rbd: cannot load %s: %s\n", path, dlerror());
        return;
    }
    atomic_store(&tp, dlsym(h, BLKIN_RBD_TP_OPS_SYMBOL));
}

/* ---- images ------------------------------------------------------------ */

typedef struct Slot {
    _Atomic(void *) handle; /* the rbd_image_t; NULL: free */
    struct blkin_rbd_image im;
} Slot;

static Slot images[MAX_IMAGES];
static pthread_mutex_t images_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int64_t map_emitted_ns; /* last re-emission; 0: never */
static atomic_bool map_was_enabled;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void copy_str(char *dst, const char *src)
{
    snprintf(dst, BLKIN_RBD_STR_MAX, "%s", src ? src : "");
}

/* The client's identity at the OSDs and the image's object layout. */
static void describe(struct blkin_rbd_image *im, rados_ioctx_t io,
                     rbd_image_t image, const char *name)
{
    rados_t cluster =
        real.ioctx_get_cluster ? real.ioctx_get_cluster(io) : NULL;
    rbd_image_info_t info;
    char *addrs = NULL, *slash;

    im->vpid = getpid();
    copy_str(im->name, name);
    if (cluster && real.get_instance_id)
        im->gid = real.get_instance_id(cluster);
    if (cluster && real.getaddrs && real.getaddrs(cluster, &addrs) == 0 &&
        addrs) {
        copy_str(im->addr, addrs);
        /* "127.0.0.1:0/4228447426", or a vector "[v2:...:0/N,v1:...]":
         * the first nonce is the client's. */
        if ((slash = strchr(addrs, '/')))
            im->nonce = (uint32_t)strtoul(slash + 1, NULL, 10);
        free(addrs);
    }
    if (!real.ioctx_get_pool_name ||
        real.ioctx_get_pool_name(io, im->pool, sizeof(im->pool)) < 0)
        im->pool[0] = '\0';
    if (!real.get_block_name_prefix ||
        real.get_block_name_prefix(image, im->prefix, sizeof(im->prefix)) < 0)
        im->prefix[0] = '\0';
    if (real.stat && real.stat(image, &info, sizeof(info)) == 0) {
        im->size = info.size;
        im->object_size = info.obj_size;
    }
    im->stripe_unit = im->object_size;
    im->stripe_count = 1;
    if (real.get_stripe_unit)
        real.get_stripe_unit(image, &im->stripe_unit);
    if (real.get_stripe_count)
        real.get_stripe_count(image, &im->stripe_count);
}

static void image_opened(rados_ioctx_t io, rbd_image_t image, const char *name)
{
    const blkin_rbd_tp_ops *ops;

    pthread_once(&tp_once, load_tp);
    pthread_mutex_lock(&images_lock);
    for (unsigned i = 0; i < MAX_IMAGES; i++) {
        Slot *s = &images[i];

        if (atomic_load(&s->handle))
            continue;
        memset(&s->im, 0, sizeof(s->im));
        s->im.index = i;
        describe(&s->im, io, image, name);
        atomic_store(&s->handle, image); /* publishes s->im */
        ops = atomic_load(&tp);
        if (ops)
            ops->image(&s->im, BLKIN_RBD_IMAGE_OPEN);
        break;
    }
    pthread_mutex_unlock(&images_lock);
}

static Slot *find_image(rbd_image_t image)
{
    if (!image)
        return NULL;
    for (unsigned i = 0; i < MAX_IMAGES; i++)
        if (atomic_load_explicit(&images[i].handle, memory_order_acquire) ==
            image)
            return &images[i];
    return NULL;
}

/* While a session records the map: at once when it starts to, then every
 * MAP_INTERVAL_NS, from whichever completion comes first. */
static void maybe_refresh_map(const blkin_rbd_tp_ops *ops, uint64_t now)
{
    bool enabled = ops->image_enabled();
    bool was = atomic_exchange(&map_was_enabled, enabled);
    int64_t last = atomic_load(&map_emitted_ns);

    if (!enabled || (was && (int64_t)now - last < MAP_INTERVAL_NS))
        return;
    if (!atomic_compare_exchange_strong(&map_emitted_ns, &last, (int64_t)now))
        return; /* another thread does it */
    pthread_mutex_lock(&images_lock);
    for (unsigned i = 0; i < MAX_IMAGES; i++)
        if (atomic_load(&images[i].handle))
            ops->image(&images[i].im, BLKIN_RBD_IMAGE_REFRESH);
    pthread_mutex_unlock(&images_lock);
}

/* ---- completion wrappers ----------------------------------------------- */

typedef struct Wrap {
    void *arg;
    rbd_callback_t cb;
    atomic_int refs;
    bool submitted; /* by one of the calls below, on a known image */
    struct blkin_rbd_req r;
    struct Wrap *next_free;
} Wrap;

static Wrap *pool;
static Wrap *pool_free;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong pool_exhausted;

static void pool_init(void)
{
    void *p = mmap(NULL, sizeof(Wrap) * POOL_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return;
    pool = p;
    for (unsigned i = 0; i < POOL_SIZE; i++)
        pool[i].next_free = i + 1 < POOL_SIZE ? &pool[i + 1] : NULL;
    pool_free = pool;
}

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* Ours, by address: never dereferences what it is not sure of. */
static Wrap *as_wrap(void *arg)
{
    uintptr_t a = (uintptr_t)arg, lo = (uintptr_t)pool;

    if (!pool || a < lo || a >= lo + sizeof(Wrap) * POOL_SIZE ||
        (a - lo) % sizeof(Wrap))
        return NULL;
    return arg;
}

static Wrap *wrap_get(void)
{
    Wrap *w;

    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool_lock);
    w = pool_free;
    if (w)
        pool_free = w->next_free;
    pthread_mutex_unlock(&pool_lock);
    if (!w)
        atomic_fetch_add(&pool_exhausted, 1);
    return w;
}

static void wrap_unref(Wrap *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    pthread_mutex_lock(&pool_lock);
    w->next_free = pool_free;
    pool_free = w;
    pthread_mutex_unlock(&pool_lock);
}

static void wrapped_cb(rbd_completion_t c, void *arg)
{
    Wrap *w = arg;
    const blkin_rbd_tp_ops *ops = atomic_load(&tp);
    bool submitted = w->submitted;

    if (submitted && ops) {
        uint64_t now = now_ns();

        w->r.ret =
            (int32_t)(real.aio_get_return_value ? real.aio_get_return_value(c)
                                                : 0);
        if (w->r.ret > 0) /* bytes read: only the sign is of interest */
            w->r.ret = 0;
        ops->request(&w->r);
        maybe_refresh_map(ops, now);
    }
    if (w->cb)
        w->cb(c, w->arg);
    if (submitted)
        wrap_unref(w);
}

API int rbd_aio_create_completion(void *cb_arg, rbd_callback_t complete_cb,
                                  rbd_completion_t *c)
{
    const blkin_rbd_tp_ops *ops = atomic_load(&tp);
    Wrap *w;
    int r;

    pthread_once(&real_once, resolve_real);
    if (!real.aio_create_completion)
        return -ENOSYS;
    if (!ops || !ops->request_enabled() || !(w = wrap_get()))
        return real.aio_create_completion(cb_arg, complete_cb, c);
    w->arg = cb_arg;
    w->cb = complete_cb;
    w->submitted = false;
    atomic_store(&w->refs, 1);
    r = real.aio_create_completion(w, wrapped_cb, c);
    if (r < 0)
        wrap_unref(w);
    return r;
}

API void *rbd_aio_get_arg(rbd_completion_t c)
{
    void *arg;
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    arg = real.aio_get_arg ? real.aio_get_arg(c) : NULL;
    w = as_wrap(arg);
    return w ? w->arg : arg;
}

API void rbd_aio_release(rbd_completion_t c)
{
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    w = as_wrap(real.aio_get_arg ? real.aio_get_arg(c) : NULL);
    if (real.aio_release)
        real.aio_release(c);
    if (w)
        wrap_unref(w);
}

/* Before a call: the wrapper of @c, filled in, holding the callback's
 * reference; NULL when the call is not recorded. */
static Wrap *begin(rbd_image_t image, rbd_completion_t c, int op, uint64_t off,
                   uint64_t len)
{
    Wrap *w;
    Slot *s;

    if (!pool || !real.aio_get_arg)
        return NULL;
    w = as_wrap(real.aio_get_arg(c));
    if (!w || w->submitted || !(s = find_image(image)))
        return NULL;
    w->r.offset = off;
    w->r.length = len;
    w->r.vpid = s->im.vpid;
    w->r.image = (int32_t)s->im.index;
    w->r.op = op;
    w->r.ret = 0;
    w->submitted = true;
    atomic_fetch_add(&w->refs, 1);
    w->r.start_ns = now_ns();
    return w;
}

/* After a call: a call that failed at once never calls back. */
static int end(Wrap *w, int r)
{
    if (w && r < 0) {
        w->submitted = false;
        wrap_unref(w);
    }
    return r;
}

static uint64_t iov_len(const struct iovec *iov, int n)
{
    uint64_t len = 0;

    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    return len;
}

API int rbd_aio_readv(rbd_image_t image, const struct iovec *iov, int iovcnt,
                      uint64_t off, rbd_completion_t c)
{
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    w = begin(image, c, BLKIN_TP_OP_READ, off, iov_len(iov, iovcnt));
    return end(w, REAL(aio_readv, image, iov, iovcnt, off, c));
}

API int rbd_aio_writev(rbd_image_t image, const struct iovec *iov, int iovcnt,
                       uint64_t off, rbd_completion_t c)
{
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    w = begin(image, c, BLKIN_TP_OP_WRITE, off, iov_len(iov, iovcnt));
    return end(w, REAL(aio_writev, image, iov, iovcnt, off, c));
}

API int rbd_aio_read(rbd_image_t image, uint64_t off, size_t len, char *buf,
                     rbd_completion_t c)
{
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    w = begin(image, c, BLKIN_TP_OP_READ, off, len);
    return end(w, REAL(aio_read, image, off, len, buf, c));
}

API int rbd_aio_write(rbd_image_t image, uint64_t off, size_t len,
                      const char *buf, rbd_completion_t c)
{
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    w = begin(image, c, BLKIN_TP_OP_WRITE, off, len);
    return end(w, REAL(aio_write, image, off, len, buf, c));
}

API int rbd_aio_discard(rbd_image_t image, uint64_t off, uint64_t len,
                        rbd_completion_t c)
{
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    w = begin(image, c, BLKIN_TP_OP_DISCARD, off, len);
    return end(w, REAL(aio_discard, image, off, len, c));
}

API int rbd_aio_write_zeroes(rbd_image_t image, uint64_t off, size_t len,
                             rbd_completion_t c, int zero_flags, int op_flags)
{
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    w = begin(image, c, BLKIN_TP_OP_WRITE_ZEROES, off, len);
    return end(
        w, REAL(aio_write_zeroes, image, off, len, c, zero_flags, op_flags));
}

API int rbd_aio_flush(rbd_image_t image, rbd_completion_t c)
{
    Wrap *w;

    pthread_once(&real_once, resolve_real);
    w = begin(image, c, BLKIN_TP_OP_FLUSH, 0, 0);
    return end(w, REAL(aio_flush, image, c));
}

API int rbd_open(rados_ioctx_t io, const char *name, rbd_image_t *image,
                 const char *snap_name)
{
    int r = REAL(open, io, name, image, snap_name);

    if (r == 0)
        image_opened(io, *image, name);
    return r;
}

API int rbd_open_read_only(rados_ioctx_t io, const char *name,
                           rbd_image_t *image, const char *snap_name)
{
    int r = REAL(open_read_only, io, name, image, snap_name);

    if (r == 0)
        image_opened(io, *image, name);
    return r;
}

API int rbd_close(rbd_image_t image)
{
    const blkin_rbd_tp_ops *ops = atomic_load(&tp);
    Slot *s;

    pthread_mutex_lock(&images_lock);
    s = find_image(image);
    if (s) {
        if (ops)
            ops->image(&s->im, BLKIN_RBD_IMAGE_CLOSE);
        atomic_store(&s->handle, NULL);
    }
    pthread_mutex_unlock(&images_lock);
    return REAL(close, image);
}
