/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "guard-abi.h"
#include "manager.h"
#include "rule.h"
#include "query.h"

/* a{sv} entry appenders: the caller has opened the 'a' "{sv}" container. */
int bus_dict_u64(sd_bus_message *m, const char *key, uint64_t v);
int bus_dict_u32(sd_bus_message *m, const char *key, uint32_t v);
int bus_dict_u16(sd_bus_message *m, const char *key, uint16_t v);
int bus_dict_u8(sd_bus_message *m, const char *key, uint8_t v);
int bus_dict_double(sd_bus_message *m, const char *key, double v);
int bus_dict_bool(sd_bus_message *m, const char *key, int v);
int bus_dict_string(sd_bus_message *m, const char *key, const char *v);
/* An entry whose value is a list of dictionaries (s -> v of aa{sv}): open, append each row as
 * its own a{sv}, close. */
int bus_dict_rows_open(sd_bus_message *m, const char *key);
int bus_dict_rows_close(sd_bus_message *m);

/* Objects under `prefix`, one per item `find` resolves, listed by `enumerate` (links, rules,
 * transactions): a fallback vtable and its node enumerator. */
int bus_add_object_family(sd_bus *bus, const char *prefix, const char *interface,
                          const sd_bus_vtable *vtable, sd_bus_object_find_t find,
                          sd_bus_node_enumerator_t enumerate, void *userdata);

/* The statistics dictionary entries shared by Manager.GetStatistics and Link.GetStatistics. */
typedef struct StatsView {
        const struct ps_stats *stats;
        double pps, bps;
        uint64_t flows, icmp_entries;
        uint32_t links;
        uint64_t run_time_ns, run_count;
        int have_run_stats;
} StatsView;
int bus_append_stats(sd_bus_message *m, const StatsView *v);

/* A node enumerator's answer: n object paths, path_at(userdata, i) giving each (malloc'd). */
int bus_node_list(size_t n, char *(*path_at)(void *userdata, size_t i), void *userdata,
                  char ***ret);

/* One value of an a{sv}, as read from the bus. */
typedef struct BusValue {
        char type; /* D-Bus type char */
        const char *s; /* 's', 'o' */
        uint64_t u;    /* 'y', 'q', 'u', 't', 'b' */
        int64_t i;     /* 'n', 'i', 'x' */
        double d;      /* 'd' */
} BusValue;

typedef struct BusDictSpec {
        const char *types;    /* the D-Bus types accepted */
        const char *what;     /* "field", "query key": for the message on another type */
        const char *expected; /* the rest of that message */
} BusDictSpec;

typedef int (*bus_dict_visit_t)(const char *key, const BusValue *v, void *userdata,
                                sd_bus_error *error);

/* Reads an a{sv} entry by entry: the one reader of the dictionaries callers send. */
int bus_read_dict(sd_bus_message *m, const BusDictSpec *spec, bus_dict_visit_t visit,
                  void *userdata, sd_bus_error *error);

/* A method return with one container open (e.g. 'a', "{sv}"), and the closing and sending. */
/* Who asked for a change, for the journal: CALLER_UID=, CALLER_PID= and, when the sender runs
 * in a unit, CALLER_UNIT= of the method call's sender (polkit checked that sender), after an
 * optional field of the caller's own (e.g. "FILTER_ID=3"). `fields` is NULL-terminated for
 * log_struct_fields(); `who` reads "uid 1000 (pid 42, unit ssh.service)". */
typedef struct BusCaller {
        char extra[64], uid[32], pid[32], unit[300];
        char who[400];
        const char *fields[5];
} BusCaller;
void bus_caller_get(sd_bus_message *call, const char *extra, BusCaller *ret);

int bus_reply_open(sd_bus_message *call, char type, const char *contents, sd_bus_message **ret);
int bus_reply_close_send(sd_bus_message *reply);

/* Reads an a{sv} into a JSON object (rules are validated as JSON, whatever their source). */
int bus_read_dict_json(sd_bus_message *m, json_t **ret, sd_bus_error *error);
/* The same for settings (AI.SetConfig, Generate): a finite double is taken too. */
int bus_read_settings_json(sd_bus_message *m, json_t **ret, sd_bus_error *error);

/* Reads an a{sv} query argument into q; a bad entry sets an InvalidArgs error naming it. */
int bus_read_query(sd_bus_message *m, Query *q, sd_bus_error *error);

/* A connection or ICMP row as a{sv}; the fields of a connection row without the container. */
int bus_append_flow_fields(sd_bus_message *m, const char *link, const struct ps_flow_key *k,
                           const struct ps_flow_value *v, uint64_t now_ns);
int bus_append_flow_row(sd_bus_message *m, const char *link, const struct ps_flow_key *k,
                        const struct ps_flow_value *v, uint64_t now_ns);
int bus_append_icmp_row(sd_bus_message *m, const char *link, const struct ps_icmp_key *k,
                        const struct ps_icmp_value *v);

/* --- shared by the Filters, Filter and Transaction interfaces --- */

/* The bus error of a failed store call: r and the store's message to an error name. */
int filters_bus_error(sd_bus_error *error, int r, const char *err);
/* Refuses a change while a confirm-or-rollback transaction is pending. */
int filters_bus_refuse_if_pending(Manager *m, sd_bus_error *error);
/* /org/packetscope/Guarder1/filters/<id>, malloc'd. */
char *filter_bus_path(uint32_t id);
/* The lock-out guard over rules an authorized caller is about to add: 1 when all pass. `what`
 * names the list in the message ("batch", "import"), NULL for a single rule. */
int filters_bus_check_lockout(Manager *m, const FilterList *list, const char *what,
                              sd_bus_error *error);
/* Reads a rule's a{sv} into a new rule, through the same validation as JSON. */
int bus_read_rule(sd_bus_message *msg, Filter **ret, sd_bus_error *error);
