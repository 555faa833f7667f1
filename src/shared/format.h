/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Human-readable formatting for the client (and anything else that prints numbers for people).
 * Every formatter writes into a buffer the caller owns and returns it, so several results can be
 * used in one printf() without one call overwriting another. A buffer of the matching *_MAX size
 * always holds the whole text; a smaller one gets a truncated, still NUL-terminated text.
 */

#define FORMAT_BYTES_MAX 16         /* "1023.9 KiB", "16.0 EiB" */
#define FORMAT_RATE_MAX 24          /* "999.9 Tbit/s", "1.5M pps", "n/a" */
#define FORMAT_RELATIVE_MAX 32      /* "5min ago", "in 3h", "never" */
#define FORMAT_TCP_FLAGS_MAX 9      /* up to 8 letters */
#define FORMAT_ENDPOINT_MAX (46 + 2 + 1 + 5 + 1) /* "[" INET6_ADDRSTRLEN "]:" port */

/* IEC units: "0 B", "1023 B", "1.0 KiB", "1.5 MiB", … up to "EiB"; one decimal above bytes. */
char *format_bytes(char *buf, size_t size, uint64_t bytes);

/* SI units of bits per second: "0 bit/s", "999 bit/s", "1.0 kbit/s", "12.5 Mbit/s", "Gbit/s",
 * "Tbit/s". Negative, NaN or infinite input gives "n/a". */
char *format_rate_bits(char *buf, size_t size, double bits_per_sec);

/* Packets per second: "0 pps", "0.5 pps", "12 pps", "999 pps", "1.2k pps", "3.4M pps", "1.0G pps".
 * One decimal below 10 pps so that slow flows don't all read "0". Invalid input gives "n/a". */
char *format_rate_pps(char *buf, size_t size, double pps);

/*
 * A time span in the two largest units it has, rounded down, as systemd writes them: "0s",
 * "5s", "9min", "1h 2min", "3d 4h" (a zero second unit is left out: "2h", not "2h 0min").
 */
char *format_timespan(char *buf, size_t size, uint64_t usec);

/*
 * How long ago then_us was, seen from now_us (both microseconds on the same clock), as a
 * time span: "now" (under a second), "3s ago", "5min 30s ago", "2h ago", "4d 1h ago". A time in
 * the future (clocks disagree, or a timestamp set ahead) reads "in 3s", "in 5min", …;
 * then_us == 0 means "never happened" and reads "never".
 */
char *format_relative_time(char *buf, size_t size, uint64_t now_us, uint64_t then_us);

/*
 * TCP flags as one letter per flag that is set, in bit order from FIN upwards:
 * F (FIN 0x01), S (SYN 0x02), R (RST 0x04), P (PSH 0x08), A (ACK 0x10), U (URG 0x20),
 * E (ECE 0x40), C (CWR 0x80). So SYN+ACK is "SA", FIN+ACK "FA", PSH+ACK "PA"; no flag is "-".
 */
char *format_tcp_flags(char *buf, size_t size, uint8_t flags);

/* "192.0.2.1:80"; an address containing ':' (IPv6) is bracketed: "[2001:db8::1]:443". */
char *format_endpoint(char *buf, size_t size, const char *addr, uint16_t port);

/*
 * A small aligned-table printer: columns sized from their content (UTF-8 aware, counted in
 * code points), two spaces between columns, no trailing blanks, right-aligned columns for
 * numbers. Cells are copied, so callers may pass temporary buffers.
 */
typedef enum TableAlign {
        TABLE_ALIGN_LEFT,
        TABLE_ALIGN_RIGHT,
} TableAlign;

#define TABLE_COLUMNS_MAX 32
/* A hard cap on what a caller can add: the biggest table the client builds, the rule list at
 * 100,000 rules (the most a set holds) by 12 columns, fits with room to spare. */
#define TABLE_CELLS_MAX (4u * 1024u * 1024u)

typedef struct Table Table;

/* Column headers, NULL-terminated; 1 to TABLE_COLUMNS_MAX of them. NULL on bad input or OOM. */
Table *table_new(const char *header, ...) __attribute__((sentinel));
Table *table_free(Table *t);
int table_set_align(Table *t, size_t column, TableAlign align);
/* Columns that may be left out when the table is wider than its width: priority 0 (the
 * default) is always shown, the others go highest first. */
int table_set_priority(Table *t, size_t column, unsigned priority);
/* The width the printed table should fit in (0, the default: no limit). */
void table_set_width(Table *t, size_t width);
/* Appends one cell (NULL prints as "-"); rows fill left to right. -E2BIG past TABLE_CELLS_MAX. */
int table_add_cell(Table *t, const char *text);
int table_add_cellf(Table *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Complete rows added so far. */
size_t table_rows(const Table *t);
/* Prints the header line (unless !header) and every row; an unfinished last row is padded. */
int table_print(const Table *t, FILE *f, bool header);

static inline void table_freep(Table **t) {
        table_free(*t);
}
#define _cleanup_table_ __attribute__((cleanup(table_freep)))
