/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-view.c: the view's page with its data (blkin-view.h).
 */
#include "blkin-view.h"

#include <stdlib.h>
#include <string.h>

char *blkin_view_page(const char *json, size_t len, size_t *page_len)
{
    size_t head = strlen(blkin_view_page_head);
    size_t tail = strlen(blkin_view_page_tail);
    size_t lt = 0, n;
    char *page, *p;

    if (!json) {
        json = "null";
        len = 4;
    }
    for (size_t i = 0; i < len; i++)
        lt += json[i] == '<';
    n = head + len + 5 * lt + tail;
    page = malloc(n + 1);
    if (!page)
        return NULL;
    memcpy(page, blkin_view_page_head, head);
    p = page + head;
    for (size_t i = 0; i < len; i++) {
        if (json[i] == '<') {
            memcpy(p, "\\u003c", 6);
            p += 6;
        } else {
            *p++ = json[i];
        }
    }
    memcpy(p, blkin_view_page_tail, tail);
    page[n] = '\0';
    if (page_len)
        *page_len = n;
    return page;
}
