/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

#define SEC UINT64_C(1000000)

Test(format, bytes_small) {
        char b[FORMAT_BYTES_MAX];

        cr_assert_str_eq(format_bytes(b, sizeof b, 0), "0 B");
        cr_assert_str_eq(format_bytes(b, sizeof b, 1), "1 B");
        cr_assert_str_eq(format_bytes(b, sizeof b, 1023), "1023 B");
}

Test(format, bytes_units) {
        char b[FORMAT_BYTES_MAX];

        cr_assert_str_eq(format_bytes(b, sizeof b, 1024), "1.0 KiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, 1536), "1.5 KiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, 10 * 1024 + 51), "10.0 KiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, 10 * 1024 + 52), "10.1 KiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, UINT64_C(1) << 20), "1.0 MiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, UINT64_C(3) << 30), "3.0 GiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, UINT64_C(1) << 40), "1.0 TiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, UINT64_C(1) << 50), "1.0 PiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, UINT64_C(1) << 60), "1.0 EiB");
}

Test(format, bytes_rounding_steps_up_a_unit) {
        char b[FORMAT_BYTES_MAX];

        /* 1048575 B is 1023.999 KiB: it must not read "1024.0 KiB". */
        cr_assert_str_eq(format_bytes(b, sizeof b, (UINT64_C(1) << 20) - 1), "1.0 MiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, (UINT64_C(1) << 30) - 1), "1.0 GiB");
        /* Just below the rounding point stays in the smaller unit. */
        cr_assert_str_eq(format_bytes(b, sizeof b, 1023 * 1024 + 972), "1023.9 KiB");
        cr_assert_str_eq(format_bytes(b, sizeof b, 1023 * 1024 + 973), "1.0 MiB");
}

Test(format, bytes_max) {
        char b[FORMAT_BYTES_MAX];

        /* EiB is the largest unit, so 16 EiB - 1 rounds to 16.0 EiB and fits the buffer. */
        cr_assert_str_eq(format_bytes(b, sizeof b, UINT64_MAX), "16.0 EiB");
        cr_assert_lt(strlen(b), (size_t) FORMAT_BYTES_MAX);
}

Test(format, bytes_small_buffer_truncates) {
        char b[4];

        memset(b, 'x', sizeof b);
        cr_assert_str_eq(format_bytes(b, sizeof b, 1023), "102");
        cr_assert_null(format_bytes(NULL, 0, 5));
}

Test(format, rate_bits) {
        char b[FORMAT_RATE_MAX];

        cr_assert_str_eq(format_rate_bits(b, sizeof b, 0), "0 bit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 0.4), "0 bit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 999), "999 bit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 999.6), "1.0 kbit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 1000), "1.0 kbit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 1500), "1.5 kbit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 999900), "999.9 kbit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 999990), "1.0 Mbit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 12.5e6), "12.5 Mbit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 1e9), "1.0 Gbit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 40e9), "40.0 Gbit/s");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 2e12), "2.0 Tbit/s");
        /* Beyond the last unit it keeps growing in Tbit/s rather than overflowing a table. */
        cr_assert_str_eq(format_rate_bits(b, sizeof b, 5e15), "5000.0 Tbit/s");
}

Test(format, rate_bits_invalid) {
        char b[FORMAT_RATE_MAX];

        cr_assert_str_eq(format_rate_bits(b, sizeof b, -1), "n/a");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, NAN), "n/a");
        cr_assert_str_eq(format_rate_bits(b, sizeof b, INFINITY), "n/a");
}

Test(format, rate_pps) {
        char b[FORMAT_RATE_MAX];

        cr_assert_str_eq(format_rate_pps(b, sizeof b, 0), "0 pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 0.04), "0.0 pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 0.5), "0.5 pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 9.9), "9.9 pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 9.96), "10 pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 12.4), "12 pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 999), "999 pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 999.5), "1.0k pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 1234), "1.2k pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 3.4e6), "3.4M pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 999960), "1.0M pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, 2e9), "2.0G pps");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, -0.1), "n/a");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, NAN), "n/a");
        cr_assert_str_eq(format_rate_pps(b, sizeof b, -INFINITY), "n/a");
}

Test(format, relative_past) {
        char b[FORMAT_RELATIVE_MAX];
        uint64_t now = UINT64_C(1700000000) * SEC;

        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now), "now");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - SEC + 1), "now");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - SEC), "1s ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 3 * SEC - 999999), "3s ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 59 * SEC), "59s ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 60 * SEC), "1min ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 5 * 60 * SEC - 30 * SEC),
                         "5min 30s ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 3599 * SEC), "59min 59s ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 3600 * SEC), "1h ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 2 * 3600 * SEC), "2h ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 86399 * SEC), "23h 59min ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 86400 * SEC), "1d ago");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now - 400 * 86400 * SEC), "400d ago");
}

Test(format, timespan) {
        char b[FORMAT_RELATIVE_MAX];

        cr_assert_str_eq(format_timespan(b, sizeof b, 0), "0s");
        cr_assert_str_eq(format_timespan(b, sizeof b, SEC - 1), "0s");
        cr_assert_str_eq(format_timespan(b, sizeof b, 5 * SEC), "5s");
        cr_assert_str_eq(format_timespan(b, sizeof b, 9 * 60 * SEC), "9min");
        cr_assert_str_eq(format_timespan(b, sizeof b, 9 * 60 * SEC + 59 * SEC + 999999), "9min 59s");
        cr_assert_str_eq(format_timespan(b, sizeof b, 3600 * SEC + 2 * 60 * SEC + 3 * SEC), "1h 2min");
        cr_assert_str_eq(format_timespan(b, sizeof b, 2 * 3600 * SEC + 59 * SEC), "2h");
        cr_assert_str_eq(format_timespan(b, sizeof b, 3 * 86400 * SEC + 4 * 3600 * SEC), "3d 4h");
}

Test(format, relative_future_and_never) {
        char b[FORMAT_RELATIVE_MAX];
        uint64_t now = UINT64_C(1700000000) * SEC;

        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now + SEC / 2), "now");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now + 3 * SEC), "in 3s");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, now + 2 * 3600 * SEC), "in 2h");
        cr_assert_str_eq(format_relative_time(b, sizeof b, now, 0), "never");
        cr_assert_str_eq(format_relative_time(b, sizeof b, 0, 0), "never");
        /* Extremes don't overflow the subtraction. */
        cr_assert_str_eq(format_relative_time(b, sizeof b, 0, UINT64_MAX), "in 213503982d 8h");
        cr_assert_str_eq(format_relative_time(b, sizeof b, UINT64_MAX, 1), "213503982d 8h ago");
}

Test(format, tcp_flags) {
        char b[FORMAT_TCP_FLAGS_MAX];

        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0), "-");
        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0x01), "F");
        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0x02), "S");
        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0x12), "SA");
        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0x11), "FA");
        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0x18), "PA");
        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0x14), "RA");
        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0xc2), "SEC");
        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0xff), "FSRPAUEC");
        cr_assert_eq(strlen(b) + 1, (size_t) FORMAT_TCP_FLAGS_MAX);
}

Test(format, tcp_flags_small_buffer) {
        char b[3];

        cr_assert_str_eq(format_tcp_flags(b, sizeof b, 0xff), "FS");
}

Test(format, endpoint) {
        char b[FORMAT_ENDPOINT_MAX];

        cr_assert_str_eq(format_endpoint(b, sizeof b, "192.0.2.1", 80), "192.0.2.1:80");
        cr_assert_str_eq(format_endpoint(b, sizeof b, "2001:db8::1", 443), "[2001:db8::1]:443");
        cr_assert_str_eq(format_endpoint(b, sizeof b, "::", 0), "[::]:0");
        cr_assert_str_eq(format_endpoint(b, sizeof b,
                                         "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535),
                         "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535");
}

Test(format, independent_buffers_in_one_printf) {
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX], out[64];

        snprintf(out, sizeof out, "%s/%s", format_bytes(a, sizeof a, 1),
                 format_bytes(b, sizeof b, 2048));
        cr_assert_str_eq(out, "1 B/2.0 KiB");
}

static char *print_table(const Table *t, bool header) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        cr_assert_not_null(f);
        cr_assert_eq(table_print(t, f, header), 0);
        cr_assert_eq(fclose(f), 0);
        return text;
}

Test(format, table_aligns) {
        _cleanup_table_ Table *t = table_new("NAME", "PACKETS", "LINK", NULL);
        char *text;

        cr_assert_not_null(t);
        cr_assert_eq(table_set_align(t, 1, TABLE_ALIGN_RIGHT), 0);
        cr_assert_eq(table_add_cell(t, "a"), 0);
        cr_assert_eq(table_add_cellf(t, "%d", 5), 0);
        cr_assert_eq(table_add_cell(t, "eth0"), 0);
        cr_assert_eq(table_add_cell(t, "longer-name"), 0);
        cr_assert_eq(table_add_cellf(t, "%d", 123456789), 0);
        cr_assert_eq(table_add_cell(t, NULL), 0);
        cr_assert_eq(table_rows(t), 2u);

        text = print_table(t, true);
        cr_assert_str_eq(text,
                         "NAME           PACKETS  LINK\n"
                         "a                    5  eth0\n"
                         "longer-name  123456789  -\n");
        free(text);

        /* Without the header, widths come from the rows alone. */
        text = print_table(t, false);
        cr_assert_str_eq(text,
                         "a                    5  eth0\n"
                         "longer-name  123456789  -\n");
        free(text);
}

Test(format, table_utf8_width_and_partial_row) {
        _cleanup_table_ Table *t = table_new("A", "B", NULL);
        char *text;

        cr_assert_not_null(t);
        cr_assert_eq(table_add_cell(t, "\xc3\xa9t\xc3\xa9"), 0); /* "été": 3 columns wide */
        cr_assert_eq(table_add_cell(t, "x"), 0);
        cr_assert_eq(table_add_cell(t, "abcd"), 0); /* a row left unfinished */
        cr_assert_eq(table_rows(t), 1u);

        text = print_table(t, true);
        cr_assert_str_eq(text,
                         "A     B\n"
                         "\xc3\xa9t\xc3\xa9   x\n"
                         "abcd\n");
        free(text);
}

Test(format, table_fits_by_priority) {
        _cleanup_table_ Table *t = table_new("PROTO", "SOURCE", "FLAGS", "LAST", "LINK", NULL);
        char *text;

        cr_assert_not_null(t);
        cr_assert_eq(table_set_priority(t, 2, 3), 0); /* FLAGS goes first */
        cr_assert_eq(table_set_priority(t, 3, 2), 0);
        cr_assert_eq(table_set_priority(t, 4, 2), 0); /* of equals, the rightmost first */
        cr_assert_eq(table_set_priority(t, 9, 1), -EINVAL);
        cr_assert_eq(table_add_cell(t, "udp"), 0);
        cr_assert_eq(table_add_cell(t, "10.0.0.1:53"), 0);
        cr_assert_eq(table_add_cell(t, "SA"), 0);
        cr_assert_eq(table_add_cell(t, "5s ago"), 0);
        cr_assert_eq(table_add_cell(t, "eth0"), 0);

        /* 5 + 2 + 11 + 2 + 5 + 2 + 6 + 2 + 4 = 39 columns: fits in 39. */
        table_set_width(t, 39);
        text = print_table(t, true);
        cr_assert_str_eq(text,
                         "PROTO  SOURCE       FLAGS  LAST    LINK\n"
                         "udp    10.0.0.1:53  SA     5s ago  eth0\n");
        free(text);
        table_set_width(t, 38);
        text = print_table(t, true);
        cr_assert_str_eq(text,
                         "PROTO  SOURCE       LAST    LINK\n"
                         "udp    10.0.0.1:53  5s ago  eth0\n");
        free(text);
        table_set_width(t, 26);
        text = print_table(t, true);
        cr_assert_str_eq(text,
                         "PROTO  SOURCE       LAST\n"
                         "udp    10.0.0.1:53  5s ago\n");
        free(text);
        /* Priority 0 stays, even when the line is still too long. */
        table_set_width(t, 5);
        text = print_table(t, true);
        cr_assert_str_eq(text,
                         "PROTO  SOURCE\n"
                         "udp    10.0.0.1:53\n");
        free(text);
}

Test(format, table_colour_takes_no_width) {
        _cleanup_table_ Table *t = table_new("STATE", "N", NULL);
        char *text;

        cr_assert_not_null(t);
        cr_assert_eq(table_add_cell(t, "\033[0;31mrst\033[0m"), 0);
        cr_assert_eq(table_add_cell(t, "1"), 0);
        cr_assert_eq(table_add_cell(t, "established"), 0);
        cr_assert_eq(table_add_cell(t, "2"), 0);
        text = print_table(t, true);
        cr_assert_str_eq(text,
                         "STATE        N\n"
                         "\033[0;31mrst\033[0m          1\n"
                         "established  2\n");
        free(text);
}

Test(format, table_empty_and_bad_input) {
        _cleanup_table_ Table *t = table_new("ONLY", NULL);
        char *text;

        cr_assert_null(table_new(NULL, NULL));
        cr_assert_not_null(t);
        cr_assert_eq(table_set_align(t, 1, TABLE_ALIGN_RIGHT), -EINVAL);
        cr_assert_eq(table_add_cell(NULL, "x"), -EINVAL);
        cr_assert_eq(table_rows(t), 0u);
        text = print_table(t, true);
        cr_assert_str_eq(text, "ONLY\n");
        free(text);
        text = print_table(t, false);
        cr_assert_str_eq(text, "");
        free(text);
        cr_assert_null(table_free(NULL));
}

Test(format, table_cap) {
        _cleanup_table_ Table *t = table_new("X", NULL);
        int r = 0;

        cr_assert_not_null(t);
        for (size_t i = 0; i < TABLE_CELLS_MAX; i++) {
                r = table_add_cell(t, "");
                if (r < 0)
                        break;
        }
        cr_assert_eq(r, 0);
        cr_assert_eq(table_add_cell(t, "one too many"), -E2BIG);
        cr_assert_eq(table_rows(t), (size_t) TABLE_CELLS_MAX);
}
