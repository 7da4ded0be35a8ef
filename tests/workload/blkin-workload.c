/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-workload: a deterministic block I/O workload for the test guest.
 *
 * Issues a list of O_DIRECT reads, writes and optionally flushes and discards
 * on one or more block devices, at one or more queue depths, through Linux
 * native AIO (raw syscalls, so the guest needs no libaio). The list depends
 * only on the seed and the options, never on timing, so a test can ask the
 * same binary for the plan (--plan, runs anywhere) and compare it with what
 * the guest and the host saw. Every request is timed by the workload itself
 * and written out as one line; written data carries a pattern that later
 * reads of the same blocks verify. docs/vm-harness.md documents the format.
 *
 * Plain libc only: it is linked statically and runs in a busybox initramfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BLOCK      4096u
#define SLOT_BYTES (256u * 1024u) /* the largest request; one slot each */
#define MAX_DEVS   16
#define MAX_PHASES 8
#define MAX_QD     256

enum op { OP_READ, OP_WRITE, OP_FLUSH, OP_DISCARD };
static const char *const op_names[] = {"read", "write", "flush", "discard"};

struct req {
    uint64_t seq;   /* position in the whole plan, from 0 */
    unsigned phase; /* index into the queue-depth list */
    unsigned qd;    /* that phase's queue depth */
    unsigned dev;   /* index into the device list */
    enum op op;
    uint64_t offset; /* bytes */
    uint32_t bytes;
};

struct dev {
    const char *path;
    const char *name; /* basename, as the guest kernel names it */
    int fd;
    /* Per 4 KiB block: seq+1 of the write whose data it holds, 0 = unknown. */
    uint32_t *writer;
    /* Per BLOCK: an in-flight request covers it (never two at once). */
    bool *busy; /* per BLOCK: a request in flight covers it */
};

struct opts {
    uint64_t seed;
    unsigned count; /* requests per phase */
    unsigned qds[MAX_PHASES];
    unsigned nphases;
    uint64_t span; /* bytes of each device used, from offset 0 */
    unsigned write_pct;
    unsigned flush_pct;
    unsigned discard_pct;
    bool sequential; /* 4 KiB requests at adjacent offsets, per device */
    uint32_t size;   /* every read and write this many bytes; 0 = mixed */
    bool plan_only;
    bool quiet; /* no per-request lines: for benchmarks */
    const char *out;
    int out_fd; /* -1: use out */
};

struct ctx {
    struct opts o;
    struct dev devs[MAX_DEVS];
    unsigned ndevs;
    uint64_t nslots;
    FILE *out;
    aio_context_t aio;
    /* Outstanding AIO requests; iocb.aio_data indexes this array. */
    struct inflight {
        bool used;
        struct req r;
        void *buf;
        uint64_t start_ns;
        struct iocb cb;
    } fl[MAX_QD];
    unsigned nfl;
    /* Totals for the summary line. */
    uint64_t done, errors, verified_blocks, unverified_blocks, mismatches;
};

/* splitmix64: tiny, well mixed, and trivially reimplemented by a test. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * The plan: request i of phase p draws five numbers from one splitmix64
 * stream seeded with --seed, always five so that options that change one
 * choice do not shift the others.
 */
static void plan_req(const struct ctx *c, uint64_t *state, uint64_t seq,
                     unsigned phase, struct req *r)
{
    uint64_t d = splitmix64(state), o = splitmix64(state),
             sz = splitmix64(state), sl = splitmix64(state),
             in = splitmix64(state);
    unsigned pct = (unsigned)(o % 100);
    uint64_t slot = sl % c->nslots;

    r->seq = seq;
    r->phase = phase;
    r->qd = c->o.qds[phase];
    r->dev = (unsigned)(d % c->ndevs);
    if (pct < c->o.flush_pct)
        r->op = OP_FLUSH;
    else if (pct < c->o.flush_pct + c->o.discard_pct)
        r->op = OP_DISCARD;
    else if (pct < c->o.flush_pct + c->o.discard_pct + c->o.write_pct)
        r->op = OP_WRITE;
    else
        r->op = OP_READ;

    switch (r->op) {
    case OP_FLUSH:
        r->offset = 0;
        r->bytes = 0;
        break;
    case OP_DISCARD:
        /* Whole slots: aligned for any discard granularity up to 256K. */
        r->offset = slot * SLOT_BYTES;
        r->bytes = SLOT_BYTES;
        break;
    default:
        if (c->o.sequential) {
            /* The n-th request of the device comes right after the one
             * before: adjacent requests in flight, which virtio-blk merges
             * when they reach it together. */
            r->bytes = BLOCK;
            r->offset = (seq / c->ndevs * BLOCK) % c->o.span;
            r->dev = (unsigned)(seq % c->ndevs);
            break;
        }
        r->bytes = c->o.size ? c->o.size : BLOCK << (sz % 7); /* 4K..256K */
        r->offset = slot * SLOT_BYTES +
                    (in % ((SLOT_BYTES - r->bytes) / BLOCK + 1)) * BLOCK;
        break;
    }
}

/* The blocks of @r (a flush has none). */
static void set_busy(struct dev *d, const struct req *r, bool busy)
{
    for (uint64_t b = r->offset / BLOCK; b < (r->offset + r->bytes) / BLOCK;
         b++)
        d->busy[b] = busy;
}

static bool any_busy(const struct dev *d, const struct req *r)
{
    for (uint64_t b = r->offset / BLOCK; b < (r->offset + r->bytes) / BLOCK;
         b++)
        if (d->busy[b])
            return true;
    return false;
}

/* The 8-byte word at device byte offset a of the data written by seq+1 = w. */
static inline uint64_t pattern_word(uint64_t seed, unsigned dev, uint32_t w,
                                    uint64_t a)
{
    uint64_t s = seed ^ ((uint64_t)dev << 56) ^ ((uint64_t)w << 24) ^ a;
    return splitmix64(&s);
}

static void fill_pattern(const struct ctx *c, const struct req *r, void *buf)
{
    uint64_t *p = buf;
    uint32_t w = (uint32_t)(r->seq + 1);

    for (uint64_t i = 0; i < r->bytes / 8; i++)
        p[i] = pattern_word(c->o.seed, r->dev, w, r->offset + i * 8);
}

/* Checks a completed read against what the plan last wrote there. */
static void verify_read(struct ctx *c, const struct req *r, const void *buf)
{
    struct dev *d = &c->devs[r->dev];
    const uint64_t *p = buf;

    for (uint64_t b = 0; b < r->bytes / BLOCK; b++) {
        uint64_t blk = r->offset / BLOCK + b;
        uint32_t w = d->writer[blk];
        bool bad = false;

        if (w == 0) {
            c->unverified_blocks++;
            continue;
        }
        for (uint64_t i = 0; i < BLOCK / 8; i++) {
            uint64_t a = blk * BLOCK + i * 8;
            if (p[b * BLOCK / 8 + i] != pattern_word(c->o.seed, r->dev, w, a)) {
                bad = true;
                break;
            }
        }
        c->verified_blocks++;
        if (bad) {
            c->mismatches++;
            fprintf(c->out, "mismatch %" PRIu64 " %s %" PRIu64 " %" PRIu32 "\n",
                    r->seq, d->name, blk * BLOCK, w - 1);
        }
    }
}

static void set_writer(struct ctx *c, const struct req *r, uint32_t w)
{
    struct dev *d = &c->devs[r->dev];

    for (uint64_t b = 0; b < r->bytes / BLOCK; b++)
        d->writer[r->offset / BLOCK + b] = w;
}

static void emit(struct ctx *c, const struct req *r, uint64_t start,
                 uint64_t end, int64_t res)
{
    if (!c->o.quiet)
        fprintf(c->out,
                "io %" PRIu64 " %u %s %s %" PRIu64 " %" PRIu32 " %" PRIu64
                " %" PRIu64 " %" PRId64 "\n",
                r->seq, r->qd, c->devs[r->dev].name, op_names[r->op], r->offset,
                r->bytes, start, end, res);
    c->done++;
    if (res < 0 || (r->bytes && res != (int64_t)r->bytes &&
                    (r->op == OP_READ || r->op == OP_WRITE)))
        c->errors++;
}

static void complete(struct ctx *c, struct inflight *f, int64_t res,
                     uint64_t end)
{
    struct req *r = &f->r;

    if (r->op == OP_READ && res == (int64_t)r->bytes)
        verify_read(c, r, f->buf);
    /* A failed or short write leaves the blocks' content unknown. */
    if (r->op == OP_WRITE && res != (int64_t)r->bytes)
        set_writer(c, r, 0);
    emit(c, r, f->start_ns, end, res);
    set_busy(&c->devs[r->dev], r, false);
    f->used = false;
    c->nfl--;
}

/* Reaps at least min completions; one timestamp per reaped batch. */
static int reap(struct ctx *c, long min)
{
    struct io_event ev[MAX_QD];
    long n;
    uint64_t end;

    do {
        n = syscall(SYS_io_getevents, c->aio, min, (long)MAX_QD, ev, NULL);
    } while (n < 0 && errno == EINTR);
    end = now_ns();
    if (n < 0)
        return -errno;
    for (long i = 0; i < n; i++)
        complete(c, &c->fl[ev[i].data], ev[i].res, end);
    return 0;
}

static int drain(struct ctx *c)
{
    int r;

    while (c->nfl > 0) {
        r = reap(c, 1);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Flush and discard are synchronous calls, issued on an empty queue. */
static int run_sync(struct ctx *c, const struct req *r)
{
    struct dev *d = &c->devs[r->dev];
    uint64_t range[2] = {r->offset, r->bytes};
    uint64_t start, end;
    int res, k;

    k = drain(c);
    if (k < 0)
        return k;
    start = now_ns();
    if (r->op == OP_FLUSH)
        res = fdatasync(d->fd);
    else
        res = ioctl(d->fd, BLKDISCARD, range);
    end = now_ns();
    if (res < 0)
        res = -errno;
    if (r->op == OP_DISCARD)
        set_writer(c, r, 0); /* reads may now see zeroes or old data */
    emit(c, r, start, end, res);
    return 0;
}

static int submit(struct ctx *c, const struct req *r)
{
    struct dev *d = &c->devs[r->dev];
    struct iocb *cbp;
    struct inflight *f = NULL;
    long n;
    int k;

    /* Overlapping a request in flight: wait, so reads verify against
     * settled data. */
    while (any_busy(d, r) || c->nfl >= r->qd) {
        k = reap(c, 1);
        if (k < 0)
            return k;
    }
    for (unsigned i = 0; i < MAX_QD && !f; i++)
        if (!c->fl[i].used)
            f = &c->fl[i];
    if (!f)
        return -EBUSY;

    f->used = true;
    f->r = *r;
    memset(&f->cb, 0, sizeof(f->cb));
    f->cb.aio_data = (uint64_t)(f - c->fl);
    f->cb.aio_fildes = (uint32_t)d->fd;
    f->cb.aio_lio_opcode = r->op == OP_WRITE ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
    f->cb.aio_buf = (uint64_t)(uintptr_t)f->buf;
    f->cb.aio_nbytes = r->bytes;
    f->cb.aio_offset = (int64_t)r->offset;
    if (r->op == OP_WRITE) {
        fill_pattern(c, r, f->buf);
        set_writer(c, r, (uint32_t)(r->seq + 1));
    }
    set_busy(d, r, true);
    c->nfl++;
    cbp = &f->cb;
    for (unsigned tries = 0;; tries++) {
        f->start_ns = now_ns();
        n = syscall(SYS_io_submit, c->aio, 1L, &cbp);
        if (n == 1)
            return 0;
        k = n < 0 ? -errno : -EAGAIN;
        if ((k != -EAGAIN && k != -EINTR) || tries >= 1000)
            break;
        /* Kernel queue full: make room and retry with a fresh start time. */
        if (c->nfl > 1) {
            int q = reap(c, 1);
            if (q < 0)
                return q;
        }
    }
    /* Report the refusal as the request's result rather than aborting. */
    set_busy(d, r, false);
    f->used = false;
    c->nfl--;
    if (r->op == OP_WRITE)
        set_writer(c, r, 0);
    emit(c, r, f->start_ns, now_ns(), k);
    return 0;
}

static int parse_size(const char *s, uint64_t *ret)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s)
        return -EINVAL;
    switch (*end) {
    case 'G':
    case 'g':
        v <<= 10;
        /* fall through */
    case 'M':
    case 'm':
        v <<= 10;
        /* fall through */
    case 'K':
    case 'k':
        v <<= 10;
        end++;
        break;
    }
    if (*end)
        return -EINVAL;
    *ret = v;
    return 0;
}

static int parse_qds(const char *s, struct opts *o)
{
    char buf[128], *tok, *save = NULL;

    if (strlen(s) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, s);
    o->nphases = 0;
    for (tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long v = strtol(tok, NULL, 10);
        if (v < 1 || v > MAX_QD || o->nphases >= MAX_PHASES)
            return -EINVAL;
        o->qds[o->nphases++] = (unsigned)v;
    }
    return o->nphases ? 0 : -EINVAL;
}

static void usage(FILE *f)
{
    fputs(
        "usage: blkin-workload [options] DEVICE...\n"
        "  -s, --seed N        plan seed (default 1)\n"
        "  -n, --count N       requests per phase (default 200)\n"
        "  -q, --qd LIST       queue depth of each phase (default 1,16)\n"
        "  -S, --span BYTES    bytes used on each device (default 8M)\n"
        "  -w, --write-pct P   share of writes, percent (default 50)\n"
        "  -f, --flush-pct P   share of flushes (fdatasync), percent (0)\n"
        "  -d, --discard-pct P share of discards (BLKDISCARD), percent (0)\n"
        "  -Z, --sequential    reads and writes of 4 KiB at adjacent offsets\n"
        "  -b, --size BYTES    every read and write this size, at random\n"
        "                      offsets (4K multiple, at most 256K; default\n"
        "                      mixed 4K..256K)\n"
        "  -o, --out PATH      where records go (default stdout)\n"
        "  -F, --out-fd N      write records to inherited file descriptor N\n"
        "  -p, --plan          print the plan only; opens no device\n"
        "  -Q, --quiet         no per-request lines (phase and summary only)\n",
        f);
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"seed", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},
        {"qd", required_argument, NULL, 'q'},
        {"span", required_argument, NULL, 'S'},
        {"write-pct", required_argument, NULL, 'w'},
        {"flush-pct", required_argument, NULL, 'f'},
        {"discard-pct", required_argument, NULL, 'd'},
        {"sequential", no_argument, NULL, 'Z'},
        {"size", required_argument, NULL, 'b'},
        {"out", required_argument, NULL, 'o'},
        {"out-fd", required_argument, NULL, 'F'},
        {"plan", no_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'},
        {},
    };
    int ch;

    *o = (struct opts){
        .seed = 1,
        .count = 200,
        .qds = {1, 16},
        .nphases = 2,
        .span = 8ull << 20,
        .write_pct = 50,
        .out_fd = -1,
    };
    while ((ch = getopt_long(argc, argv, "s:n:q:S:w:f:d:o:F:pQZb:h", lo,
                             NULL)) != -1) {
        switch (ch) {
        case 's':
            o->seed = strtoull(optarg, NULL, 0);
            break;
        case 'n':
            o->count = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'q':
            if (parse_qds(optarg, o) < 0)
                return -EINVAL;
            break;
        case 'S':
            if (parse_size(optarg, &o->span) < 0)
                return -EINVAL;
            break;
        case 'w':
            o->write_pct = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'f':
            o->flush_pct = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'd':
            o->discard_pct = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'F':
            o->out_fd = (int)strtol(optarg, NULL, 10);
            if (o->out_fd < 0)
                return -EINVAL;
            break;
        case 'p':
            o->plan_only = true;
            break;
        case 'Q':
            o->quiet = true;
            break;
        case 'Z':
            o->sequential = true;
            break;
        case 'b': {
            uint64_t v;

            if (parse_size(optarg, &v) < 0 || !v || v % BLOCK || v > SLOT_BYTES)
                return -EINVAL;
            o->size = (uint32_t)v;
        } break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
    }
    if (o->span < SLOT_BYTES || o->span % SLOT_BYTES ||
        o->write_pct + o->flush_pct + o->discard_pct > 100)
        return -EINVAL;
    return 0;
}

static int open_dev(struct ctx *c, struct dev *d)
{
    struct stat st;
    uint64_t size = 0;
    const char *slash = strrchr(d->path, '/');

    d->name = slash ? slash + 1 : d->path;
    d->fd = -1;
    if (c->o.plan_only)
        return 0;

    d->fd = open(d->path, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (d->fd < 0)
        return -errno;
    if (fstat(d->fd, &st) < 0)
        return -errno;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(d->fd, BLKGETSIZE64, &size) < 0)
            return -errno;
    } else {
        size = (uint64_t)st.st_size;
    }
    /* The plan assumes the whole span exists; refuse rather than differ. */
    if (size < c->o.span)
        return -ENOSPC;
    d->writer = calloc(c->o.span / BLOCK, sizeof(*d->writer));
    d->busy = calloc(c->o.span / BLOCK, sizeof(*d->busy));
    if (!d->writer || !d->busy)
        return -ENOMEM;
    fprintf(c->out, "dev %s %" PRIu64 "\n", d->name, size);
    return 0;
}

static int run(struct ctx *c)
{
    uint64_t state = c->o.seed, seq = 0;
    struct req r;
    int k;

    if (!c->o.plan_only) {
        if (syscall(SYS_io_setup, (long)MAX_QD, &c->aio) < 0)
            return -errno;
        for (unsigned i = 0; i < MAX_QD; i++)
            if (posix_memalign(&c->fl[i].buf, BLOCK, SLOT_BYTES))
                return -ENOMEM;
    }

    for (unsigned p = 0; p < c->o.nphases; p++) {
        uint64_t t0 = now_ns(), n0 = c->done;

        for (unsigned i = 0; i < c->o.count; i++, seq++) {
            plan_req(c, &state, seq, p, &r);
            if (c->o.plan_only) {
                fprintf(c->out,
                        "plan %" PRIu64 " %u %s %s %" PRIu64 " %" PRIu32 "\n",
                        r.seq, r.qd, c->devs[r.dev].name, op_names[r.op],
                        r.offset, r.bytes);
                continue;
            }
            if (r.op == OP_FLUSH || r.op == OP_DISCARD)
                k = run_sync(c, &r);
            else
                k = submit(c, &r);
            if (k < 0)
                return k;
        }
        if (c->o.plan_only)
            continue;
        k = drain(c);
        if (k < 0)
            return k;
        fprintf(c->out,
                "phase %u qd=%u requests=%" PRIu64 " elapsed_ns=%" PRIu64 "\n",
                p, c->o.qds[p], c->done - n0, now_ns() - t0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct ctx c;
    int k;

    k = parse_args(argc, argv, &c.o);
    if (k < 0 || optind >= argc || argc - optind > MAX_DEVS) {
        usage(stderr);
        return 2;
    }
    c.out = stdout;
    if (c.o.out_fd >= 0) {
        c.out = fdopen(c.o.out_fd, "w");
        if (!c.out) {
            fprintf(stderr, "blkin-workload: fd %d: %s\n", c.o.out_fd,
                    strerror(errno));
            return 1;
        }
    } else if (c.o.out && strcmp(c.o.out, "-") != 0) {
        c.out = fopen(c.o.out, "we");
        if (!c.out) {
            fprintf(stderr, "blkin-workload: %s: %s\n", c.o.out,
                    strerror(errno));
            return 1;
        }
    }
    /* Large buffer: fewer writes to a slow console or serial port mid-run. */
    setvbuf(c.out, NULL, _IOFBF, 1 << 20);
    c.nslots = c.o.span / SLOT_BYTES;

    fprintf(c.out,
            "# blkin-workload v1 seed=%" PRIu64 " count=%u span=%" PRIu64
            " write_pct=%u flush_pct=%u discard_pct=%u qd=",
            c.o.seed, c.o.count, c.o.span, c.o.write_pct, c.o.flush_pct,
            c.o.discard_pct);
    for (unsigned p = 0; p < c.o.nphases; p++)
        fprintf(c.out, "%s%u", p ? "," : "", c.o.qds[p]);
    fputc('\n', c.out);

    for (int i = optind; i < argc; i++) {
        struct dev *d = &c.devs[c.ndevs++];
        d->path = argv[i];
        k = open_dev(&c, d);
        if (k < 0) {
            fprintf(stderr, "blkin-workload: %s: %s\n", d->path, strerror(-k));
            fprintf(c.out, "fatal open %s %d\n", d->path, k);
            fclose(c.out);
            return 1;
        }
    }

    k = run(&c);
    if (k < 0) {
        fprintf(stderr, "blkin-workload: %s\n", strerror(-k));
        fprintf(c.out, "fatal run %d\n", k);
    }
    if (!c.o.plan_only)
        fprintf(c.out,
                "summary requests=%" PRIu64 " errors=%" PRIu64
                " verified_blocks=%" PRIu64 " unverified_blocks=%" PRIu64
                " mismatches=%" PRIu64 "\n",
                c.done, c.errors, c.verified_blocks, c.unverified_blocks,
                c.mismatches);
    fprintf(c.out, "end\n");
    if (fclose(c.out) != 0)
        return 1;
    return k < 0 || c.errors || c.mismatches ? 1 : 0;
}
