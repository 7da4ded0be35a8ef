/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * blkin-view.h: the HTML page that draws a view of VM disks' latency
 * (docs/hostd.md, "The view"), built into hostd (its HTTP port's live page)
 * and into `blkin` (report --html). One page, both ways: with a view answer
 * embedded it is a file that needs no network; with none it fetches
 * /view.json from the server that gave it, every second.
 *
 * Plain C (no GLib), like common/.
 */
#ifndef BLKIN_VIEW_H
#define BLKIN_VIEW_H

#include <stddef.h>

/* The page before and after its data block (view/embed.py). */
extern const char blkin_view_page_head[];
extern const char blkin_view_page_tail[];

/*
 * The page with @json (a view answer as JSON text, @len bytes) as its data,
 * or live with @json NULL. Every '<' of @json is written as \u003c, so
 * nothing in it can end the script element; @json is otherwise as given.
 * Returns a malloc'd NUL-terminated page (*@page_len its length), or NULL
 * when out of memory.
 */
char *blkin_view_page(const char *json, size_t len, size_t *page_len);

#endif
