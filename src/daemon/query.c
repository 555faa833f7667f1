/* SPDX-License-Identifier: MIT */
#include <netinet/in.h>
#include <stdio.h>

#include "query.h"
#include "util.h"

void query_init(Query *q, QueryKind kind) {
        *q = (Query) {
                .kind = kind,
                .limit = QUERY_LIMIT_DEFAULT,
                .sort = kind == QUERY_ICMP ? QUERY_SORT_PACKETS : QUERY_SORT_BYTES,
        };
}

void query_done(Query *q) {
        q->link = mfree(q->link);
}

static int type_error(char **ret_error, const char *key, char got, const char *want) {
        return error_setf(ret_error, -EINVAL,
                          "query key '%s' has D-Bus type '%c'; expected %s", key, got, want);
}

/* Unsigned integer from any unsigned or non-negative signed D-Bus integer type. */
static int value_uint(const QueryValue *v, uint64_t *ret) {
        switch (v->type) {
        case 'y': case 'q': case 'u': case 't':
                *ret = v->u;
                return 0;
        case 'n': case 'i': case 'x':
                if (v->i < 0)
                        return -ERANGE;
                *ret = (uint64_t) v->i;
                return 0;
        default:
                return -EINVAL;
        }
}

int query_set(Query *q, const char *key, const QueryValue *v, char **ret_error) {
        const bool icmp = q->kind == QUERY_ICMP;
        uint64_t n;

        assert(q);
        assert(key);
        assert(v);
        if (streq(key, "limit") || streq(key, "offset")) {
                if (value_uint(v, &n) == -EINVAL)
                        return type_error(ret_error, key, v->type, "an unsigned integer (u)");
                if (streq(key, "limit")) {
                        if (value_uint(v, &n) < 0 || n < 1 || n > QUERY_LIMIT_MAX) {
                                return error_setf(ret_error, -EINVAL,
                                                  "query key 'limit' out of range; accepted: "
                                                  "1 to %u", QUERY_LIMIT_MAX);
                        }
                        q->limit = (uint32_t) n;
                } else {
                        if (value_uint(v, &n) < 0 || n >= QUERY_WINDOW_MAX) {
                                return error_setf(ret_error, -EINVAL,
                                                  "query key 'offset' out of range; accepted: "
                                                  "0 to %u", QUERY_WINDOW_MAX - 1);
                        }
                        q->offset = (uint32_t) n;
                }
                return 0;
        }
        if (streq(key, "sort")) {
                static const char *const names[] = {
                        [QUERY_SORT_BYTES] = "bytes", [QUERY_SORT_PACKETS] = "packets",
                        [QUERY_SORT_LAST_SEEN] = "last_seen", [QUERY_SORT_FIRST_SEEN] = "first_seen",
                        [QUERY_SORT_RATE] = "rate",
                };

                if (v->type != 's')
                        return type_error(ret_error, key, v->type, "a string (s)");
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        if (streq(v->s, names[i])) {
                                q->sort = (QuerySort) i;
                                return 0;
                        }
                return error_setf(ret_error, -EINVAL,
                                  "query key 'sort' has unknown value '%s'; accepted: bytes, "
                                  "packets, last_seen, first_seen, rate", v->s);
        }
        if (streq(key, "protocol") && !icmp) {
                if (v->type == 's') {
                        if (protocol_from_string(v->s, &q->protocol) < 0) {
                                return error_setf(ret_error, -EINVAL,
                                                  "query key 'protocol' has unknown value '%s'; "
                                                  "accepted: tcp, udp, sctp, gre, esp, ah, udplite or an "
                                                  "IP protocol number 0-255", v->s);
                        }
                } else if (value_uint(v, &n) == 0 && n <= 255)
                        q->protocol = (uint8_t) n;
                else
                        return type_error(ret_error, key, v->type,
                                          "a string (s) or a protocol number 0-255 (y)");
                q->has_protocol = true;
                return 0;
        }
        if (streq(key, "family")) {
                if (v->type != 's')
                        return type_error(ret_error, key, v->type, "a string (s)");
                if (family_from_string(v->s, &q->family) < 0) {
                        return error_setf(ret_error, -EINVAL,
                                          "query key 'family' has unknown value '%s'; accepted: "
                                          "ipv4, ipv6", v->s);
                }
                q->has_family = true;
                return 0;
        }
        if (streq(key, "address")) {
                int r;

                if (v->type != 's')
                        return type_error(ret_error, key, v->type, "a string (s)");
                r = cidr_parse(v->s, false, &q->address);
                if (r == -ERANGE) {
                        return error_setf(ret_error, -EINVAL,
                                          "query key 'address' has a bad prefix length in '%.64s'; "
                                          "accepted: 0-32 for IPv4, 0-128 for IPv6", v->s);
                }
                if (r < 0) {
                        return error_setf(ret_error, -EINVAL,
                                          "query key 'address' is not an address or CIDR: "
                                          "'%.64s'; accepted: e.g. 192.0.2.7, 10.0.0.0/8, 2001:db8::/32",
                                          v->s);
                }
                q->has_address = true;
                return 0;
        }
        if (streq(key, "port") && !icmp) {
                if (value_uint(v, &n) == -EINVAL)
                        return type_error(ret_error, key, v->type, "a port number 0-65535 (q)");
                if (value_uint(v, &n) < 0 || n > 65535) {
                        return error_setf(ret_error, -EINVAL,
                                          "query key 'port' out of range; accepted: 0-65535");
                }
                q->port = (uint16_t) n;
                q->has_port = true;
                return 0;
        }
        if (streq(key, "state") && !icmp) {
                if (v->type != 's')
                        return type_error(ret_error, key, v->type, "a string (s)");
                if (flow_state_from_string(v->s, &q->state) < 0) {
                        return error_setf(ret_error, -EINVAL,
                                          "query key 'state' has unknown value '%s'; accepted: "
                                          "none, syn, established, fin, rst", v->s);
                }
                q->has_state = true;
                return 0;
        }
        if (streq(key, "type") && icmp) {
                if (value_uint(v, &n) == -EINVAL)
                        return type_error(ret_error, key, v->type, "an ICMP type 0-255 (y)");
                if (value_uint(v, &n) < 0 || n > 255) {
                        return error_setf(ret_error, -EINVAL,
                                          "query key 'type' out of range; accepted: ICMP type 0-255");
                }
                q->icmp_type = (uint8_t) n;
                q->has_type = true;
                return 0;
        }
        if (streq(key, "link")) {
                if (v->type != 's')
                        return type_error(ret_error, key, v->type, "a string (s)");
                free(q->link);
                q->link = strdup(v->s);
                return q->link ? 0 : -ENOMEM;
        }

        if (streq(key, "fresh") && !icmp) {
                if (v->type != 'b')
                        return type_error(ret_error, key, v->type, "a boolean (b)");
                q->fresh = v->u != 0;
                return 0;
        }

        return error_setf(ret_error, -EINVAL, "unknown query key '%.64s'; accepted: %s", key,
                          icmp ? "limit, offset, sort, family, address, type, link"
                               : "limit, offset, sort, protocol, family, address, port, state, "
                                 "link, fresh");
}

int query_finish(Query *q, char **ret_error) {
        assert(q);
        if ((uint64_t) q->offset + q->limit > QUERY_WINDOW_MAX) {
                return error_setf(ret_error, -EINVAL,
                                  "offset + limit is %llu; accepted: at most %u",
                                  (unsigned long long) q->offset + q->limit, QUERY_WINDOW_MAX);
        }
        if (q->kind == QUERY_ICMP && q->sort == QUERY_SORT_RATE)
                q->sort = QUERY_SORT_PACKETS;
        return 0;
}

bool query_match_flow(const Query *q, const struct ps_flow_key *k, const struct ps_flow_value *v) {
        assert(q);
        assert(k);
        assert(v);
        if (q->has_state && v->state != q->state)
                return false;
        if (q->has_protocol && k->proto != q->protocol)
                return false;
        if (q->has_family && k->family != q->family)
                return false;
        if (q->has_port && k->sport != q->port && k->dport != q->port)
                return false;
        if (q->has_address && !cidr_contains(&q->address, k->family, k->src) &&
            !cidr_contains(&q->address, k->family, k->dst))
                return false;
        return true;
}

bool query_match_icmp(const Query *q, const struct ps_icmp_key *k) {
        assert(q);
        assert(k);
        if (q->has_family && k->family != q->family)
                return false;
        if (q->has_type && k->type != q->icmp_type)
                return false;
        if (q->has_address && !cidr_contains(&q->address, k->family, k->src) &&
            !cidr_contains(&q->address, k->family, k->dst))
                return false;
        return true;
}

double rate_per_sec(uint64_t count, uint64_t first_seen_ns, uint64_t now_ns) {
        uint64_t span = now_ns > first_seen_ns ? now_ns - first_seen_ns : 0;

        /* Under a second of history, the count itself is the best per-second figure. */
        if (span < NSEC_PER_SEC)
                return (double) count;
        return (double) count * (double) NSEC_PER_SEC / (double) span;
}

uint64_t query_flow_metric(const Query *q, const struct ps_flow_value *v, uint64_t now_ns) {
        return query_sort_flow_metric(q->sort, v, now_ns);
}

uint64_t query_sort_flow_metric(QuerySort sort, const struct ps_flow_value *v, uint64_t now_ns) {
        switch (sort) {
        case QUERY_SORT_PACKETS:
                return v->packets;
        case QUERY_SORT_LAST_SEEN:
                return v->last_seen;
        case QUERY_SORT_FIRST_SEEN:
                /* Newest first, like last_seen. */
                return v->first_seen;
        case QUERY_SORT_RATE: {
                /* Bits per second; a figure past what uint64_t holds (a byte count near 2^61
                 * within a second) sorts as the largest, not as whatever the cast makes of it. */
                double bps = rate_per_sec(v->bytes, v->first_seen, now_ns) * 8.0;

                return bps >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t) bps;
        }
        case QUERY_SORT_BYTES:
        default:
                return v->bytes;
        }
}

uint64_t query_icmp_metric(const Query *q, const struct ps_icmp_value *v, uint64_t now_ns) {
        switch (q->sort) {
        case QUERY_SORT_BYTES:
                return v->bytes;
        case QUERY_SORT_LAST_SEEN:
                return v->last_seen;
        case QUERY_SORT_FIRST_SEEN:
                return v->first_seen;
        case QUERY_SORT_PACKETS:
        default:
                return v->packets;
        }
}

int topn_init(TopN *t, size_t capacity) {
        assert(t);
        *t = (TopN) { .capacity = capacity };
        t->heap = calloc(capacity ? capacity : 1, sizeof(TopEntry));
        return t->heap ? 0 : -ENOMEM;
}

void topn_done(TopN *t) {
        t->heap = mfree(t->heap);
        t->size = t->capacity = 0;
}

static void heap_swap(TopEntry *a, TopEntry *b) {
        TopEntry tmp = *a;

        *a = *b;
        *b = tmp;
}

static void sift_down(TopEntry *h, size_t n, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;

                if (l < n && h[l].metric < h[m].metric)
                        m = l;
                if (r < n && h[r].metric < h[m].metric)
                        m = r;
                if (m == i)
                        return;
                heap_swap(&h[i], &h[m]);
                i = m;
        }
}

static void sift_up(TopEntry *h, size_t i) {
        while (i > 0) {
                size_t p = (i - 1) / 2;

                if (h[p].metric <= h[i].metric)
                        return;
                heap_swap(&h[p], &h[i]);
                i = p;
        }
}

bool topn_wants(const TopN *t, uint64_t metric) {
        return t->capacity > 0 && (t->size < t->capacity || metric > t->heap[0].metric);
}

void topn_push(TopN *t, const TopEntry *e) {
        assert(t);
        assert(e);
        if (!topn_wants(t, e->metric))
                return;
        if (t->size < t->capacity) {
                t->heap[t->size] = *e;
                sift_up(t->heap, t->size++);
                return;
        }
        /* Full: the smallest kept entry (the root) makes room. */
        t->heap[0] = *e;
        sift_down(t->heap, t->size, 0);
}

static int entry_cmp(const void *a, const void *b) {
        const TopEntry *x = a, *y = b;

        if (x->metric != y->metric)
                return x->metric > y->metric ? -1 : 1;
        if (x->link_index != y->link_index)
                return x->link_index < y->link_index ? -1 : 1;
        return memcmp(&x->flow.key, &y->flow.key, sizeof x->flow.key);
}

void topn_sort(TopN *t) {
        qsort(t->heap, t->size, sizeof(TopEntry), entry_cmp);
}
