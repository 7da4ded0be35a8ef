/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * json-members.h: one member of a JSON object being built, by name and
 * value -- the step every report, status and view answer repeats.
 */
#ifndef HOSTD_JSON_MEMBERS_H
#define HOSTD_JSON_MEMBERS_H

#include <json-glib/json-glib.h>
#include <stdint.h>

static inline void hostd_json_add_int(JsonBuilder *b, const char *k, int64_t v)
{
    json_builder_set_member_name(b, k);
    json_builder_add_int_value(b, v);
}

/* NULL is written as null. */
static inline void hostd_json_add_str(JsonBuilder *b, const char *k,
                                      const char *v)
{
    json_builder_set_member_name(b, k);
    if (v)
        json_builder_add_string_value(b, v);
    else
        json_builder_add_null_value(b);
}

static inline void hostd_json_add_bool(JsonBuilder *b, const char *k,
                                       gboolean v)
{
    json_builder_set_member_name(b, k);
    json_builder_add_boolean_value(b, v);
}

#endif
