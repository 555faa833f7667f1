/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>

#include "health.h"

Test(health, pressure_parse_some_and_full) {
        PressureValues v;

        cr_assert_eq(pressure_parse("some avg10=12.50 avg60=3.25 avg300=0.10 total=123456\n"
                                    "full avg10=1.00 avg60=0.50 avg300=0.00 total=42\n", &v), 0);
        cr_assert(v.present);
        cr_assert_eq(v.some_avg10, 12.5);
        cr_assert_eq(v.some_avg60, 3.25);
        cr_assert_eq(v.some_total_usec, 123456);
        cr_assert_eq(v.full_avg10, 1.0);
        cr_assert_eq(v.full_avg60, 0.5);
}

Test(health, pressure_parse_cpu_without_full) {
        PressureValues v;

        /* Kernels before 5.13 have no "full" line for cpu. */
        cr_assert_eq(pressure_parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", &v), 0);
        cr_assert_eq(v.full_avg10, 0);
        cr_assert_eq(v.some_total_usec, 0);
}

Test(health, pressure_parse_refuses_other_text) {
        PressureValues v = { .some_avg10 = 7 };

        cr_assert_eq(pressure_parse("", &v), -EBADMSG);
        cr_assert_eq(pressure_parse("full avg10=1.00 avg60=0.50 avg300=0.00 total=42\n", &v),
                     -EBADMSG);
        cr_assert_eq(pressure_parse("some avg10=x\n", &v), -EBADMSG);
        cr_assert_eq(v.some_avg10, 7, "a refused text leaves the result alone");
}

Test(health, kind_names) {
        cr_assert_str_eq(health_kind_to_string(HEALTH_CPU), "cpu");
        cr_assert_str_eq(health_kind_to_string(HEALTH_IO_PRESSURE), "io-pressure");
        cr_assert_null(health_kind_to_string(_HEALTH_KIND_MAX));
        cr_assert_str_eq(pressure_source_to_string(PRESSURE_SOURCE_TRIGGERS), "triggers");
        cr_assert_str_eq(pressure_source_to_string(PRESSURE_SOURCE_SAMPLER), "sampler");
}
