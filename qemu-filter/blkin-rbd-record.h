/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-rbd-record.h: the plain-C records the librbd interposer
 * (blkin-rbd.c) hands to its tracepoint provider (blkin-rbd-tp.h), and the
 * two functions blkin-rbd-tp.so exports for it.
 *
 * The interposer links no LTTng at all: it loads blkin-rbd-tp.so when QEMU
 * first opens an RBD image and calls these through pointers, so a QEMU that
 * never uses RBD never registers the provider. The fields are the schema of
 * docs/tracepoints.md ("Provider blkin_rbd"); change both together.
 */
#ifndef BLKIN_RBD_RECORD_H
#define BLKIN_RBD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "blkin-schema.h"

/* One librbd call, laid out as the `request` event's two arrays. */
struct blkin_rbd_req {
    /* `io`: offset, length (0 for flush), start_ns (CLOCK_MONOTONIC, when
     * QEMU called librbd). */
    uint64_t offset;
    uint64_t length;
    uint64_t start_ns;
    /* `req`: */
    int32_t vpid;  /* getpid() */
    int32_t image; /* process-local index, see the `image` event */
    int32_t op;    /* enum blkin_tp_op */
    int32_t ret;   /* rbd_aio_get_return_value(): bytes, 0 or -errno */
};

#define BLKIN_RBD_REQ_IO(r)  (&(r)->offset)
#define BLKIN_RBD_REQ_REQ(r) (&(r)->vpid)
#define BLKIN_RBD_REQ_NIO    3
#define BLKIN_RBD_REQ_NREQ   4

_Static_assert(offsetof(struct blkin_rbd_req, start_ns) ==
                       offsetof(struct blkin_rbd_req, offset) + 2 * 8 &&
                   offsetof(struct blkin_rbd_req, ret) ==
                       offsetof(struct blkin_rbd_req, vpid) + 3 * 4,
               "struct blkin_rbd_req must match the request event's arrays");

#define BLKIN_RBD_STR_MAX 128

/* An open image: who the OSDs see (gid, address) and its object layout. */
struct blkin_rbd_image {
    int32_t vpid;
    uint32_t index;
    uint64_t gid;   /* rados_get_instance_id(): client.<gid> at the OSDs */
    uint32_t nonce; /* the client address's nonce (rados_getaddrs) */
    char addr[BLKIN_RBD_STR_MAX];   /* rados_getaddrs(), as librados says */
    char pool[BLKIN_RBD_STR_MAX];   /* rados_ioctx_get_pool_name() */
    char name[BLKIN_RBD_STR_MAX];   /* the image name QEMU opened */
    char prefix[BLKIN_RBD_STR_MAX]; /* rbd_get_block_name_prefix() */
    uint64_t size;
    uint64_t object_size;
    uint64_t stripe_unit;
    uint64_t stripe_count;
};

enum blkin_rbd_image_state {
    BLKIN_RBD_IMAGE_OPEN = 0,
    BLKIN_RBD_IMAGE_REFRESH = 1,
    BLKIN_RBD_IMAGE_CLOSE = 2,
};

/* Exported by blkin-rbd-tp.so (looked up with dlsym). */
typedef struct blkin_rbd_tp_ops {
    /* Is a session recording blkin_rbd:request (resp. :image)? */
    int (*request_enabled)(void);
    int (*image_enabled)(void);
    void (*request)(const struct blkin_rbd_req *r);
    void (*image)(const struct blkin_rbd_image *im, uint8_t state);
} blkin_rbd_tp_ops;

#define BLKIN_RBD_TP_OPS_SYMBOL "blkin_rbd_tp_ops_v1"

#endif
