/* SPDX-License-Identifier: MIT */
/*
 * The filter verbs but apply: the rule set in one document (Filters.ListFd) read into FilterRows
 * and shown as a table or one rule's fields, and the calls that change one rule or the set.
 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "list-doc.h"
#include "packetscopectl.h"

#define COMMENT_WIDTH_MIN 16u /* what the filter table keeps of a comment at least */
#define RULE_ENDPOINT_MAX (FORMAT_ENDPOINT_MAX + 16)

typedef struct FilterRow {
        uint64_t seen;
        uint64_t id;
        const char *path, *rule_type, *protocol, *action, *comment;
        const char *src_ip, *dst_ip, *src_port, *dst_port;
        uint64_t tcp_flags, tcp_flags_mask, icmp_type, icmp_code;
        const char *inner_src_ip, *inner_dst_ip, *inner_protocol, *inner_src_port, *inner_dst_port;
        bool enabled;
        int64_t priority;
        uint64_t timeout, expires, created, hits, bytes, last_hit;
} FilterRow;

typedef enum FilterKey {
        FILTER_ID, /* the one whose presence is asked for */
        _FILTER_KEY_OTHERS,
} FilterKey;

/* The keys of a rule are the names of the members they land in. */
#define FILTER_FIELD(kind, member) { #member, BUS_FIELD_##kind, offsetof(FilterRow, member), NULL }

static const BusField filter_fields[] = {
        [FILTER_ID] = FILTER_FIELD(U64, id),
        FILTER_FIELD(STRING, path),
        FILTER_FIELD(STRING, rule_type),
        FILTER_FIELD(STRING, protocol),
        FILTER_FIELD(STRING, src_ip),
        FILTER_FIELD(STRING, dst_ip),
        FILTER_FIELD(STRING, src_port),
        FILTER_FIELD(STRING, dst_port),
        FILTER_FIELD(U64, tcp_flags),
        FILTER_FIELD(U64, tcp_flags_mask),
        FILTER_FIELD(U64, icmp_type),
        FILTER_FIELD(U64, icmp_code),
        FILTER_FIELD(STRING, inner_src_ip),
        FILTER_FIELD(STRING, inner_dst_ip),
        FILTER_FIELD(STRING, inner_protocol),
        FILTER_FIELD(STRING, inner_src_port),
        FILTER_FIELD(STRING, inner_dst_port),
        FILTER_FIELD(STRING, action),
        FILTER_FIELD(BOOL, enabled),
        FILTER_FIELD(STRING, comment),
        FILTER_FIELD(I64, priority),
        FILTER_FIELD(U64, timeout),
        FILTER_FIELD(U64, expires),
        FILTER_FIELD(U64, created),
        FILTER_FIELD(U64, hits),
        FILTER_FIELD(U64, bytes),
        FILTER_FIELD(U64, last_hit),
};

/* One wording for a rule that is not there, whichever verb looked for it. */
static int no_such_filter(uint32_t id) {
        fprintf(stderr, "packetscopectl: no filter %" PRIu32 "; see packetscopectl filter list\n",
                id);
        return -ENOENT;
}

/* The most of ListFd's document this client reads: 100,000 rules with the longest comments
 * (1024 bytes, escaped) stay below it. */
#define LIST_FD_MAX (256u * 1024 * 1024)

/* The rule set as Filters.ListFd() writes it: the document read (list-doc.h: no JSON value
 * per cell), and its rows read into FilterRows whose strings point into it. */
typedef struct RuleSet {
        ListDoc doc;
        FilterRow *filter_rows;
        size_t n;
} RuleSet;

static void rule_set_done(RuleSet *set) {
        free(set->filter_rows);
        list_doc_done(&set->doc);
        *set = (RuleSet) {};
}

/* The document of the memfd, read. */
static int list_fd_read(int fd, ListDoc *ret) {
        char error[256];
        struct stat st;
        void *p;
        int r;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                fputs("packetscopectl: the reply of ListFd is not a memfd\n", stderr);
                return -EBADMSG;
        }
        if ((uint64_t) st.st_size > LIST_FD_MAX) {
                fprintf(stderr, "packetscopectl: the reply of ListFd is %lld bytes; this client "
                        "reads at most %u\n", (long long) st.st_size, LIST_FD_MAX);
                return -EFBIG;
        }
        if (st.st_size == 0) {
                fputs("packetscopectl: the reply of ListFd is empty\n", stderr);
                return -EBADMSG;
        }
        p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        r = list_doc_parse(p, (size_t) st.st_size, ret, error, sizeof error);
        (void) munmap(p, (size_t) st.st_size);
        if (r == -EBADMSG)
                fprintf(stderr, "packetscopectl: cannot parse the reply of ListFd: %s\n", error);
        return r;
}

/* Row k's cells into a FilterRow: map[c] is the field of column c, or -1 for a column this
 * client does not know. A value of another type than its field's is left out. */
static void filter_row_from_cells(FilterRow *row, const ListDoc *doc, size_t k,
                                  const ssize_t *map) {
        *row = (FilterRow) {};
        for (size_t c = 0; c < doc->n_columns; c++) {
                const ListCell *v = list_doc_cell(doc, k, c);
                const BusField *f;
                void *field;

                if (map[c] < 0)
                        continue;
                f = &filter_fields[map[c]];
                field = (uint8_t *) row + f->offset;
                if (f->kind == BUS_FIELD_STRING && v->type == LIST_CELL_STRING)
                        *(const char **) field = v->s;
                else if (f->kind == BUS_FIELD_U64 && v->type == LIST_CELL_INTEGER)
                        *(uint64_t *) field = v->i < 0 ? 0 : (uint64_t) v->i;
                else if (f->kind == BUS_FIELD_I64 && v->type == LIST_CELL_INTEGER)
                        *(int64_t *) field = v->i;
                else if (f->kind == BUS_FIELD_BOOL && v->type == LIST_CELL_BOOL)
                        *(bool *) field = v->b;
                else
                        continue;
                row->seen |= UINT64_C(1) << map[c];
        }
}

/* Every rule with its counters, in one call (Filters.ListFd). */
static int rule_set_fetch(sd_bus *bus, RuleSet *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ ssize_t *map = NULL;
        RuleSet set = {};
        int fd, r;

        assert(bus);
        assert(ret);

        r = bus_call(bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "ListFd", NULL, &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "h", &fd); /* borrowed from the reply */
        if (r < 0)
                return bus_error("reading the ListFd reply", NULL, r);
        r = list_fd_read(fd, &set.doc);
        if (r < 0)
                return r;
        map = calloc(set.doc.n_columns + 1, sizeof(ssize_t));
        set.n = set.doc.n_rows;
        set.filter_rows = calloc(set.n + 1, sizeof(FilterRow));
        if (!map || !set.filter_rows) {
                rule_set_done(&set);
                return -ENOMEM;
        }
        for (size_t c = 0; c < set.doc.n_columns; c++) {
                map[c] = -1;
                for (size_t i = 0; i < ELEMENTSOF(filter_fields); i++)
                        if (streq(filter_fields[i].key, set.doc.columns[c]))
                                map[c] = (ssize_t) i;
        }
        for (size_t k = 0; k < set.n; k++)
                filter_row_from_cells(&set.filter_rows[k], &set.doc, k, map);
        *ret = set;
        return 0;
}

static json_t *cell_json(const ListCell *v) {
        switch (v->type) {
        case LIST_CELL_STRING: return json_string(v->s);
        case LIST_CELL_INTEGER: return json_integer((json_int_t) v->i);
        case LIST_CELL_REAL: return json_real(v->d);
        case LIST_CELL_BOOL: return json_boolean(v->b);
        default: return json_null();
        }
}

/* Row k as List() would have carried it, as JSON: the columns with their values and the
 * object path after the id. */
static int rule_set_row_json(const RuleSet *set, size_t k, json_t **ret) {
        _cleanup_json_ json_t *o = json_object();

        if (!o)
                return -ENOMEM;
        for (size_t c = 0; c < set->doc.n_columns; c++) {
                const char *key = set->doc.columns[c];
                const ListCell *v = list_doc_cell(&set->doc, k, c);

                /* json_object_set_new steals the value, and fails on NULL. */
                if (json_object_set_new(o, key, cell_json(v)) < 0)
                        return -ENOMEM;
                if (streq(key, "id") && v->type == LIST_CELL_INTEGER) {
                        char path[sizeof(PS_OBJECT_FILTERS "/") + 20];

                        snprintf(path, sizeof path, PS_OBJECT_FILTERS "/%" PRId64, v->i);
                        if (json_object_set_new(o, "path", json_string(path)) < 0)
                                return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* "10.0.0.0/8:22", "[2001:db8::1]:80-90", "*" for any address and no port for any port. */
static void format_rule_endpoint(char *buf, size_t size, const char *ip, const char *port) {
        const char *a = ip && *ip ? ip : "*";

        if (!port || streq(port, "any") || streq(port, ""))
                snprintf(buf, size, "%s", a);
        else if (strchr(a, ':'))
                snprintf(buf, size, "[%s]:%s", a, port);
        else
                snprintf(buf, size, "%s:%s", a, port);
}

static bool filter_is_icmpv6(const FilterRow *row) {
        return streq_ptr(row->protocol, "icmpv6");
}

/* A rule's empty address (or a missing value) reads "any". */
static const char *strany(const char *s) {
        return s && *s ? s : "any";
}

/* What the rule matches besides addresses and ports: TCP flags (as flags/mask), the ICMP type
 * and code, the quoted datagram of an ICMP error. "-" when nothing. */
static int format_rule_match(const FilterRow *row, char **ret) {
        _cleanup_free_ char *text = NULL;
        unsigned type = (unsigned) row->icmp_type, code = (unsigned) row->icmp_code;
        const char *iproto = row->inner_protocol, *isrc = row->inner_src_ip, *idst = row->inner_dst_ip;
        const char *isport = row->inner_src_port, *idport = row->inner_dst_port;
        bool inner = (iproto && !streq(iproto, "any")) || (isrc && *isrc) || (idst && *idst) ||
                     (isport && !streq(isport, "any")) || (idport && !streq(idport, "any"));
        const char *sep = "";
        size_t size = 0;
        FILE *f;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        if (row->tcp_flags_mask) {
                char fl[FORMAT_TCP_FLAGS_MAX], ms[FORMAT_TCP_FLAGS_MAX];

                fprintf(f, "flags %s/%s", format_tcp_flags(fl, sizeof fl, (uint8_t) row->tcp_flags),
                        format_tcp_flags(ms, sizeof ms, (uint8_t) row->tcp_flags_mask));
                sep = ", ";
        }
        if (type != 255) {
                char t[48];

                format_icmp_type(t, sizeof t, filter_is_icmpv6(row), type);
                fprintf(f, "%s%s", sep, t);
                sep = ", ";
        }
        if (code != 255) {
                fprintf(f, "%scode %u", sep, code);
                sep = ", ";
        }
        if (inner) {
                char s[RULE_ENDPOINT_MAX], d[RULE_ENDPOINT_MAX];

                fprintf(f, "%sinner %s", sep, iproto ? iproto : "any");
                format_rule_endpoint(s, sizeof s, isrc, isport);
                format_rule_endpoint(d, sizeof d, idst, idport);
                if (!streq(s, "*") || !streq(d, "*"))
                        fprintf(f, " %s -> %s", s, d);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        if (size == 0) {
                free(text);
                text = strdup("-");
                if (!text)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(text);
        return 0;
}

/* One table for the rules; comment_width 0 leaves the comments whole, SIZE_MAX leaves them out
 * (to measure the other columns). */
static int filters_table(const FilterRow *rows, size_t n, uint64_t now, size_t comment_width,
                         Table **ret) {
        _cleanup_table_ Table *t = table_new("ID", "ACTION", "PROTO", "SOURCE", "DESTINATION",
                                             "MATCH", "HITS", "BYTES", "LAST HIT", "EXPIRES", "EN",
                                             "COMMENT", NULL);
        int r;

        if (!t)
                return -ENOMEM;
        table_align_right(t, 1u << 0 | 1u << 6 | 1u << 7);
        /* Narrower than the table: the bytes go first, then the last hit, the hits, EN, the
         * expiry (first of all when no rule has one) and at last the comment. */
        (void) table_set_priority(t, 7, 6);
        (void) table_set_priority(t, 8, 5);
        (void) table_set_priority(t, 6, 4);
        (void) table_set_priority(t, 10, 3);
        (void) table_set_priority(t, 9, 7);
        (void) table_set_priority(t, 11, comment_width == SIZE_MAX ? 0 : 1);
        for (size_t i = 0; i < n; i++)
                if (rows[i].expires != 0)
                        (void) table_set_priority(t, 9, 2);
        for (size_t i = 0; i < n; i++) {
                const FilterRow *row = &rows[i];
                char src[RULE_ENDPOINT_MAX], dst[RULE_ENDPOINT_MAX], bytes[FORMAT_BYTES_MAX];
                char last[FORMAT_RELATIVE_MAX], expires[FORMAT_RELATIVE_MAX];
                _cleanup_free_ char *match = NULL, *comment = NULL;

                format_rule_endpoint(src, sizeof src, row->src_ip, row->src_port);
                format_rule_endpoint(dst, sizeof dst, row->dst_ip, row->dst_port);
                r = format_rule_match(row, &match);
                if (r < 0)
                        return r;
                comment = comment_width > 0 ? truncate_text(strempty(row->comment), comment_width)
                                            : strdup(strempty(row->comment));
                if (!comment)
                        return -ENOMEM;
                if ((r = table_add_cellf(t, "%" PRIu64, row->id)) < 0 ||
                    (r = streq_ptr(row->action, "drop") ? table_add_colored(t, COLOR_RED, row->action)
                                                        : table_add_cell(t, row->action)) < 0 ||
                    (r = table_add_cell(t, row->protocol)) < 0 ||
                    (r = table_add_cell(t, src)) < 0 ||
                    (r = table_add_cell(t, dst)) < 0 ||
                    (r = table_add_cell(t, match)) < 0 ||
                    (r = table_add_cellf(t, "%" PRIu64, row->hits)) < 0 ||
                    (r = table_add_cell(t, format_bytes(bytes, sizeof bytes, row->bytes))) < 0 ||
                    (r = table_add_cell(t, format_relative_time(last, sizeof last, now,
                                                                row->last_hit))) < 0 ||
                    /* A timed rule's end; a permanent rule's reads "-". */
                    (r = table_add_cell(t, row->expires == 0 ? "-" :
                                        format_relative_time(expires, sizeof expires, now,
                                                             row->expires))) < 0 ||
                    (r = row->enabled ? table_add_cell(t, "yes")
                                      : table_add_colored(t, COLOR_GREY, "no")) < 0 ||
                    (r = table_add_cell(t, comment_width == SIZE_MAX ? "" : comment)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

static int render_filters(FILE *f, const FilterRow *rows, size_t n, uint64_t now, bool header) {
        _cleanup_table_ Table *t = NULL;
        size_t columns = output_columns(), width = 0;
        int r;

        if (columns > 0) {
                _cleanup_table_ Table *probe = NULL;
                _cleanup_free_ char *text = NULL;
                size_t size = 0, rest;
                FILE *m;

                /* Everything but the comments, printed with the header and fitted to leave the
                 * comments their least: its line is as wide as the columns kept plus the gap
                 * and "COMMENT". What is left is the comment's. */
                r = filters_table(rows, n, now, SIZE_MAX, &probe);
                if (r < 0)
                        return r;
                table_set_width(probe, columns > COMMENT_WIDTH_MIN + strlen("COMMENT")
                                       ? columns - COMMENT_WIDTH_MIN + strlen("COMMENT") : 1);
                m = open_memstream(&text, &size);
                if (!m)
                        return -ENOMEM;
                r = table_print(probe, m, true);
                if (fclose(m) != 0 && r >= 0)
                        r = -ENOMEM;
                if (r < 0)
                        return r;
                rest = strcspn(text, "\n") - strlen("COMMENT");
                width = columns > rest ? columns - rest : 0;
                width = MAX(width, COMMENT_WIDTH_MIN);
        }
        r = filters_table(rows, n, now, width, &t);
        if (r < 0)
                return r;
        /* The same columns go as from the probe: with them the line fits exactly. */
        table_set_width(t, columns);
        return table_print(t, f, header);
}

/* How filter show writes one line of a rule. */
typedef enum FilterShow {
        SHOW_NUMBER,    /* uint64_t */
        SHOW_SIGNED,    /* int64_t */
        SHOW_TEXT,      /* const char *, "n/a" when missing */
        SHOW_COMMENT,   /* const char *, empty when missing */
        SHOW_ANY,       /* const char *, "any" when missing or empty */
        SHOW_YES_NO,    /* bool */
        SHOW_TCP_FLAGS, /* flags/mask */
        SHOW_ICMP_TYPE, /* uint64_t, by name */
        SHOW_ICMP_CODE, /* uint64_t */
        SHOW_TIMEOUT,   /* the timeout and when it expires */
        SHOW_WHEN,      /* a uint64_t timestamp, and how long ago */
        SHOW_LAST_HIT,  /* the same, or "never" */
        SHOW_BYTES,     /* uint64_t */
} FilterShow;

typedef struct FilterLine {
        const char *label;
        FilterShow show;
        size_t offset;
} FilterLine;

#define LINE(label, show, member) { label, SHOW_##show, offsetof(FilterRow, member) }

static const FilterLine filter_lines[] = {
        LINE("Id", NUMBER, id),
        LINE("Object path", TEXT, path),
        LINE("Action", TEXT, action),
        LINE("Enabled", YES_NO, enabled),
        LINE("Priority", SIGNED, priority),
        LINE("Comment", COMMENT, comment),
        LINE("Rule type", TEXT, rule_type),
        LINE("Protocol", TEXT, protocol),
        LINE("Source address", ANY, src_ip),
        LINE("Source port", ANY, src_port),
        LINE("Destination address", ANY, dst_ip),
        LINE("Destination port", ANY, dst_port),
        LINE("TCP flags", TCP_FLAGS, tcp_flags),
        LINE("ICMP type", ICMP_TYPE, icmp_type),
        LINE("ICMP code", ICMP_CODE, icmp_code),
        LINE("Inner protocol", ANY, inner_protocol),
        LINE("Inner source", ANY, inner_src_ip),
        LINE("Inner source port", ANY, inner_src_port),
        LINE("Inner destination", ANY, inner_dst_ip),
        LINE("Inner dest. port", ANY, inner_dst_port),
        LINE("Timeout", TIMEOUT, timeout),
        LINE("Created", WHEN, created),
        LINE("Hits", NUMBER, hits),
        LINE("Bytes", BYTES, bytes),
        LINE("Last hit", LAST_HIT, last_hit),
};

/* "2026-11-30 14:00:00 UTC (5min ago)". */
static void format_when(char *buf, size_t size, uint64_t now, uint64_t usec) {
        char when[64], rel[FORMAT_RELATIVE_MAX];

        format_timestamp(when, sizeof when, usec);
        snprintf(buf, size, "%s (%s)", when, format_relative_time(rel, sizeof rel, now, usec));
}

static const char *format_filter_line(char *buf, size_t size, const FilterRow *row,
                                      const FilterLine *line, uint64_t now) {
        const void *field = (const uint8_t *) row + line->offset;
        uint64_t u = 0;
        const char *s = NULL;
        char a[FORMAT_TCP_FLAGS_MAX], b[FORMAT_TCP_FLAGS_MAX];

        if (line->show == SHOW_TEXT || line->show == SHOW_COMMENT || line->show == SHOW_ANY)
                s = *(const char *const *) field;
        else if (line->show != SHOW_SIGNED && line->show != SHOW_YES_NO)
                u = *(const uint64_t *) field;
        switch (line->show) {
        case SHOW_NUMBER:
                snprintf(buf, size, "%" PRIu64, u);
                return buf;
        case SHOW_SIGNED:
                snprintf(buf, size, "%" PRIi64, *(const int64_t *) field);
                return buf;
        case SHOW_TEXT:
                return strna(s);
        case SHOW_COMMENT:
                return strempty(s);
        case SHOW_ANY:
                return strany(s);
        case SHOW_YES_NO:
                return *(const bool *) field ? "yes" : "no";
        case SHOW_TCP_FLAGS:
                if (row->tcp_flags_mask == 0)
                        return "any";
                snprintf(buf, size, "%s/%s (flags %" PRIu64 ", mask %" PRIu64 ")",
                         format_tcp_flags(a, sizeof a, (uint8_t) row->tcp_flags),
                         format_tcp_flags(b, sizeof b, (uint8_t) row->tcp_flags_mask),
                         row->tcp_flags, row->tcp_flags_mask);
                return buf;
        case SHOW_ICMP_TYPE:
                if (u == ICMP_ANY)
                        return "any";
                format_icmp_type(buf, size, filter_is_icmpv6(row), (unsigned) u);
                return buf;
        case SHOW_ICMP_CODE:
                if (u == ICMP_ANY)
                        return "any";
                snprintf(buf, size, "%" PRIu64, u);
                return buf;
        case SHOW_TIMEOUT: {
                char expires[128], span[FORMAT_RELATIVE_MAX];

                if (u == 0)
                        return "none (permanent)";
                format_when(expires, sizeof expires, now, row->expires);
                snprintf(buf, size, "%s, expires %s",
                         format_timespan(span, sizeof span, u * USEC_PER_SEC), expires);
                return buf;
        }
        case SHOW_LAST_HIT:
                if (u == 0)
                        return "never";
                __attribute__((fallthrough));
        case SHOW_WHEN:
                format_when(buf, size, now, u);
                return buf;
        default:
                return format_bytes(buf, size, u);
        }
}

static int render_filter(FILE *f, const FilterRow *row, uint64_t now) {
        _cleanup_table_ Table *t = fields_new();
        int r;

        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(filter_lines); i++) {
                char buf[256];

                r = field_add(t, filter_lines[i].label, "%s",
                              format_filter_line(buf, sizeof buf, row, &filter_lines[i], now));
                if (r < 0)
                        return r;
        }
        return table_print(t, f, false);
}

/* A row of ListFd in the one shape of a rule, the shape of an export (and the path). */
static int rule_json(const json_t *row, json_t **ret) {
        _cleanup_free_ char *err = NULL;
        int r;

        r = filter_json_from_bus(row, ret, &err);
        if (r == -EINVAL)
                fprintf(stderr, "packetscopectl: cannot read a rule of the daemon: %s\n", err);
        return r;
}

static int filter_list_json(const RuleSet *set) {
        _cleanup_json_ json_t *all = json_array();
        int r;

        if (!all)
                return -ENOMEM;
        for (size_t k = 0; k < set->n; k++) {
                _cleanup_json_ json_t *row = NULL;
                json_t *rule = NULL;

                r = rule_set_row_json(set, k, &row);
                if (r >= 0)
                        r = rule_json(row, &rule);
                if (r < 0)
                        return r;
                if (json_array_append_new(all, rule) < 0)
                        return -ENOMEM;
        }
        return print_json(all);
}

int verb_filter_list(sd_bus *bus, char **args, int n_args) {
        _cleanup_(rule_set_done) RuleSet set = {};
        int r;

        r = rule_set_fetch(bus, &set);
        if (r < 0)
                return r;
        if (arg.json != JSON_OFF)
                return filter_list_json(&set);
        if (set.n > 0) {
                r = render_filters(stdout, set.filter_rows, set.n, now_usec(CLOCK_REALTIME),
                                   arg.legend);
                if (r < 0)
                        return r;
        }
        print_count_legend(set.n, "No filters.", "filter", "filters", "listed");
        return 0;
}

int verb_filter_show(sd_bus *bus, char **args, int n_args) {
        _cleanup_(rule_set_done) RuleSet set = {};
        int r;

        /* ListFd carries every field and the counters in one reply. */
        r = rule_set_fetch(bus, &set);
        if (r < 0)
                return r;
        for (size_t k = 0; k < set.n; k++) {
                FilterRow row = set.filter_rows[k];
                _cleanup_json_ json_t *j = NULL, *rule = NULL;
                char path[sizeof(PS_OBJECT_FILTERS "/") + 20];

                if (!BUS_SEEN(&row, FILTER_ID) || row.id != arg.filter_id)
                        continue;
                if (arg.json == JSON_OFF) {
                        snprintf(path, sizeof path, PS_OBJECT_FILTERS "/%" PRIu64, row.id);
                        row.path = path;
                        return render_filter(stdout, &row, now_usec(CLOCK_REALTIME));
                }
                r = rule_set_row_json(&set, k, &j);
                if (r >= 0)
                        r = rule_json(j, &rule);
                return r < 0 ? r : print_json(rule);
        }
        return no_such_filter(arg.filter_id);
}

/* A call on one rule's object; a rule that is not there says so by its id. */
static int call_filter_method(sd_bus *bus, uint32_t id, const char *method, sd_bus_message *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(bus, m, 0, &error, NULL);
        if (r < 0 && (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_OBJECT) ||
                      sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_INTERFACE) ||
                      sd_bus_error_has_name(&error, PS_ERROR_NO_SUCH_FILTER))) {
                return no_such_filter(id);
        }
        if (r < 0)
                return bus_error(method, &error, r);
        return 0;
}

/* A method of the rule of the command line; the rule given with the call for Update. */
static int filter_call(sd_bus *bus, const char *method, const json_t *rule) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char path[sizeof(PS_OBJECT_FILTERS "/") + 10]; /* and the id: at most 10 digits */
        int r;

        assert(bus);
        assert(method);

        snprintf(path, sizeof path, PS_OBJECT_FILTERS "/%" PRIu32, arg.filter_id);
        r = sd_bus_message_new_method_call(bus, &m, PS_BUS_NAME, path, PS_IFACE_FILTER, method);
        if (r >= 0 && rule)
                r = append_rule(m, rule, false);
        if (r < 0)
                return bus_error(rule ? "building the rule" : method, NULL, r);
        return call_filter_method(bus, arg.filter_id, method, m);
}

int verb_filter_update(sd_bus *bus, char **args, int n_args) {
        return filter_call(bus, "Update", arg.rule);
}

int verb_filter_delete(sd_bus *bus, char **args, int n_args) {
        return filter_call(bus, "Delete", NULL);
}

int verb_filter_enable(sd_bus *bus, char **args, int n_args) {
        return filter_call(bus, "Enable", NULL);
}

int verb_filter_disable(sd_bus *bus, char **args, int n_args) {
        return filter_call(bus, "Disable", NULL);
}

/* Add and Test: a method of the Filters object with the rule of the command line. */
static int filters_call_with_rule(sd_bus *bus, const char *method, sd_bus_message **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, PS_BUS_NAME, PS_OBJECT_FILTERS,
                                           PS_IFACE_FILTERS, method);
        if (r >= 0)
                r = append_rule(m, arg.rule, false);
        if (r < 0)
                return bus_error("building the rule", NULL, r);
        r = sd_bus_call(bus, m, 0, &error, ret);
        if (r < 0)
                return bus_error(method, &error, r);
        return 0;
}

int verb_filter_add(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        uint32_t id;
        int r;

        r = filters_call_with_rule(bus, "Add", &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "uo", &id, &path);
        if (r < 0)
                return bus_error("reading the Add reply", NULL, r);
        if (json_output()) {
                _cleanup_json_ json_t *o = json_pack("{s:I,s:s}", "id", (json_int_t) id, "path", path);

                return o ? print_json(o) : -ENOMEM;
        }
        printf("Added filter %" PRIu32 " (%s)\n", id, path);
        return 0;
}

/* The rule set as Export writes it, parsed: an array of rule objects. */
static int export_rules(sd_bus *bus, json_t **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_t *doc;
        const char *text;
        int r;

        r = bus_call(bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "Export", NULL, &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &text);
        if (r < 0)
                return bus_error("reading the Export reply", NULL, r);
        doc = json_loads(text, 0, NULL);
        if (!json_is_array(doc)) {
                json_decref(doc);
                fputs("packetscopectl: the daemon's export is not a JSON array of rules\n", stderr);
                return -EBADMSG;
        }
        *ret = doc;
        return 0;
}

/* What makes two rules the same rule: every field but the id and what time and traffic
 * change, as compact JSON with sorted keys. Both sides come from the daemon's export, so
 * defaults are spelled out the same way. */
static char *rule_identity(const json_t *rule) {
        static const char *const volatile_keys[] = {
                "id", "path", "created_usec", "expires_usec", "hits", "bytes", "last_hit_usec",
        };
        _cleanup_json_ json_t *copy = json_copy((json_t *) rule);

        if (!copy)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(volatile_keys); i++)
                (void) json_object_del(copy, volatile_keys[i]);
        return json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
}

typedef struct RuleKey {
        char *identity;
        json_int_t id;
} RuleKey;

static int rule_key_compare(const void *a, const void *b) {
        return strcmp(((const RuleKey *) a)->identity, ((const RuleKey *) b)->identity);
}

/* Sorted by identity, then id: the first of equal rules is the oldest. */
static int rule_key_compare_id(const void *a, const void *b) {
        const RuleKey *x = a, *y = b;
        int c = rule_key_compare(a, b);

        return c != 0 ? c : (x->id > y->id) - (x->id < y->id);
}

static void rule_keys_free(RuleKey *keys, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(keys[i].identity);
        free(keys);
}

/* The rules of before, sorted by identity, for looking up exact duplicates. */
static int rule_keys_new(const json_t *rules, RuleKey **ret, size_t *ret_n) {
        size_t n = json_array_size(rules), i;
        RuleKey *keys = calloc(n ? n : 1, sizeof(RuleKey));
        json_t *rule;

        if (!keys)
                return -ENOMEM;
        json_array_foreach(rules, i, rule) {
                keys[i].identity = rule_identity(rule);
                keys[i].id = json_integer_value(json_object_get(rule, "id"));
                if (!keys[i].identity) {
                        rule_keys_free(keys, i);
                        return -ENOMEM;
                }
        }
        qsort(keys, n, sizeof(RuleKey), rule_key_compare_id);
        *ret = keys;
        *ret_n = n;
        return 0;
}

static const json_t *rule_by_id(const json_t *rules, uint32_t id) {
        size_t i;
        json_t *rule;

        json_array_foreach(rules, i, rule)
                if (json_integer_value(json_object_get(rule, "id")) == (json_int_t) id)
                        return rule;
        return NULL;
}

/* Which of the added rules are exact duplicates of a rule that was there before: a warning
 * each, and with --duplicates=skip the copy is deleted again. Sets keep[i] for those that stay. */
static int check_duplicates(sd_bus *bus, const json_t *before, const uint32_t *ids, size_t n,
                            bool *keep, size_t *ret_skipped) {
        _cleanup_json_ json_t *after = NULL;
        RuleKey *keys = NULL;
        size_t n_keys = 0, skipped = 0;
        bool skip = streq_ptr(arg.duplicates, "skip");
        int r;

        r = export_rules(bus, &after);
        if (r >= 0)
                r = rule_keys_new(before, &keys, &n_keys);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const json_t *rule = rule_by_id(after, ids[i]);
                RuleKey probe = {}, *found;

                keep[i] = true;
                if (!rule)
                        continue;
                probe.identity = rule_identity(rule);
                if (!probe.identity) {
                        r = -ENOMEM;
                        break;
                }
                found = bsearch(&probe, keys, n_keys, sizeof(RuleKey), rule_key_compare);
                if (found)
                        while (found > keys && rule_key_compare(found - 1, &probe) == 0)
                                found--; /* the rule it repeats is the oldest of its kind */
                free(probe.identity);
                if (!found)
                        continue;
                if (!skip) {
                        fprintf(stderr, "packetscopectl: warning: rule %" PRIu32 " is an exact "
                                "duplicate of rule %" PRIi64 " (kept; --duplicates=skip leaves "
                                "such rules out)\n", ids[i], (int64_t) found->id);
                        continue;
                }
                arg.filter_id = ids[i];
                r = filter_call(bus, "Delete", NULL);
                if (r < 0)
                        break;
                keep[i] = false;
                skipped++;
                fprintf(stderr, "packetscopectl: skipped a rule that is an exact duplicate of "
                        "rule %" PRIi64 "\n", (int64_t) found->id);
        }
        rule_keys_free(keys, n_keys);
        if (r >= 0)
                *ret_skipped = skipped;
        return r;
}

int verb_filter_import(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_close_ int fd = -1;
        _cleanup_json_ json_t *before = NULL, *out = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ bool *keep = NULL;
        bool replace = arg.given & OPT_REPLACE;
        const uint32_t *ids;
        size_t size, n, kept = 0, skipped = 0;
        int r;

        assert(bus);
        assert(args);

        r = read_input(args[0], &text);
        if (r < 0)
                return r;
        /* What was there, to find exact duplicates among what a merge adds. */
        if (!replace) {
                r = export_rules(bus, &before);
                if (r < 0)
                        return r;
        }
        /* As it is: the daemon parses it, with line and column in its errors. A sealed memfd
         * rather than a string: the bus need not carry megabytes of it. */
        fd = memfd_new_sealed("packetscopectl-import", text, strlen(text));
        if (fd < 0) {
                fprintf(stderr, "packetscopectl: cannot pass the rules to the daemon: %s\n",
                        strerror(-fd));
                return fd;
        }
        r = bus_call(bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "ImportFd", NULL, &reply, "hs", fd,
                     replace ? "replace" : "merge");
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(reply, 'u', (const void **) &ids, &size);
        if (r < 0)
                return bus_error("reading the ids", NULL, r);
        n = size / sizeof(uint32_t);
        keep = calloc(n ? n : 1, sizeof(bool));
        if (!keep)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                keep[i] = true;
        if (!replace && n > 0) {
                r = check_duplicates(bus, before, ids, n, keep, &skipped);
                if (r < 0)
                        return r;
        }
        out = json_array();
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (keep[i] && json_array_append_new(out, json_integer(ids[i])) < 0)
                        return -ENOMEM;
        kept = json_array_size(out);
        if (arg.json != JSON_OFF)
                return print_json(out);
        if (kept == 0)
                printf("%s no rules%s.\n", replace ? "Replaced the rule set with" : "Added",
                       skipped > 0 ? " (every rule was a duplicate)" : "");
        else {
                printf("%s %zu rule%s:", replace ? "Replaced the rule set with" : "Added", kept,
                       kept == 1 ? "" : "s");
                for (size_t i = 0; i < kept; i++)
                        printf(" %" JSON_INTEGER_FORMAT,
                               json_integer_value(json_array_get(out, i)));
                puts(".");
        }
        return 0;
}

int verb_filter_export(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *text;
        int r;

        r = bus_call(bus, PS_OBJECT_FILTERS, PS_IFACE_FILTERS, "Export", NULL, &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &text);
        if (r < 0)
                return bus_error("reading the Export reply", NULL, r);
        if (arg.json == JSON_SHORT) {
                _cleanup_json_ json_t *doc = json_loads(text, 0, NULL);

                if (doc)
                        return print_json(doc);
        }
        fputs(text, stdout);
        if (!*text || text[strlen(text) - 1] != '\n')
                fputc('\n', stdout);
        return 0;
}

int verb_filter_test(sd_bus *bus, char **args, int n_args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ ConnectionRow *rows = NULL, *flows = NULL, *icmp = NULL;
        uint64_t now = now_usec(CLOCK_REALTIME);
        size_t n, n_flows = 0, n_icmp = 0;
        int r;

        r = filters_call_with_rule(bus, "Test", &reply);
        if (r < 0)
                return r;
        if (json_output())
                return print_reply_json(reply, "Test");
        r = connection_rows_read(reply, &rows, &n);
        if (r < 0)
                return r;
        flows = calloc(n + 1, sizeof(ConnectionRow));
        icmp = calloc(n + 1, sizeof(ConnectionRow));
        if (!flows || !icmp)
                return -ENOMEM;
        /* One list of both kinds. */
        for (size_t i = 0; i < n; i++) {
                if (connection_row_is_icmp(&rows[i]))
                        icmp[n_icmp++] = rows[i];
                else
                        flows[n_flows++] = rows[i];
        }
        if (n_flows > 0) {
                r = render_connections(stdout, flows, n_flows, now, arg.legend);
                if (r < 0)
                        return r;
        }
        if (n_icmp > 0) {
                if (n_flows > 0)
                        fputc('\n', stdout);
                r = render_icmp(stdout, icmp, n_icmp, now, arg.legend);
                if (r < 0)
                        return r;
        }
        print_count_legend(n, "No tracked connection or ICMP entry matches the rule.",
                           "entry matches", "entries match", "the rule");
        return 0;
}
