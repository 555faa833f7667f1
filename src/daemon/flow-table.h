/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "filter-abi.h"
#include "guard-abi.h"
#include "link.h"

/*
 * A link's two tables, connections and ICMP entries, as the daemon reads them: one walk for
 * Connections.List, Filters.Test and whoever else summarizes them, and the idle expiry.
 */

typedef enum FlowTableKind {
        FLOW_TABLE_CONNECTIONS,
        FLOW_TABLE_ICMP,
} FlowTableKind;

/* One entry: for FLOW_TABLE_CONNECTIONS a ps_flow_key and ps_flow_value, for FLOW_TABLE_ICMP a
 * ps_icmp_key and ps_icmp_value. A negative return stops the walk with that error. */
typedef int (*flow_table_visit_t)(Link *l, const void *key, const void *value, void *userdata);

/* Walks the whole table; a completed walk also refreshes the link's count of its entries. */
int flow_table_foreach(Link *l, FlowTableKind kind, flow_table_visit_t visit, void *userdata);

/* The packet fields the classifier would see for an entry (ps_match of the rule matcher). */
void flow_entry_to_match(const struct ps_flow_key *k, const struct ps_flow_value *v,
                         struct ps_match *ret);
void icmp_entry_to_match(const struct ps_icmp_key *k, const struct ps_icmp_value *v,
                         struct ps_match *ret);

/* The expiry rule of the flow table: TCP that saw FIN or RST expires after closed_ns. */
bool flow_is_expired(const struct ps_flow_key *k, const struct ps_flow_value *v, uint64_t now_ns,
                     uint64_t idle_ns, uint64_t closed_ns);

/* One slice of idle expiry over both tables of the link. Returns the entries deleted. */
int flow_table_sweep(Link *l, uint64_t now_ns, uint64_t idle_ns, uint64_t closed_ns,
                     size_t flow_budget, size_t icmp_budget);
