/* SPDX-License-Identifier: MIT */
#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/stat.h>

#include "conf.h"
#include "util.h"

Test(conf, defaults) {
        Config c;

        config_init(&c);
        cr_assert_eq(c.flow_table_size, 131072);
        cr_assert_eq(c.icmp_table_size, 65536);
        cr_assert_eq(c.poll_interval_usec, USEC_PER_SEC);
}

Test(conf, parses_every_key) {
        Config c;
        char *err = NULL;

        config_init(&c);
        cr_assert_eq(config_parse(&c,
                "# comment\n; another\n\n[Guard]\nFlowTableSize = 65536\nIcmpTableSize=4096\n"
                "PollIntervalSec=500ms\nIdleTimeoutSec=2min\nClosedTimeoutSec=10s\n"
                "SweepPeriodSec=30s\nMaxLinks=8\n", "t.conf", &err), 0);
        cr_assert_null(err);
        cr_assert_eq(c.flow_table_size, 65536);
        cr_assert_eq(c.icmp_table_size, 4096);
        cr_assert_eq(c.poll_interval_usec, 500000);
        cr_assert_eq(c.idle_timeout_usec, 120 * USEC_PER_SEC);
        cr_assert_eq(c.closed_timeout_usec, 10 * USEC_PER_SEC);
        cr_assert_eq(c.sweep_period_usec, 30 * USEC_PER_SEC);
        cr_assert_eq(c.max_links, 8);
}

static void expect_error(const char *text, const char *needle) {
        Config c, before;
        char *err = NULL;

        config_init(&c);
        before = c;
        cr_assert_eq(config_parse(&c, text, "x.conf", &err), -EINVAL, "accepted: %s", text);
        cr_assert_not_null(err);
        cr_assert(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
        /* Nothing of a rejected file is applied. */
        cr_assert_eq(memcmp(&c, &before, sizeof c), 0);
        free(err);
}

Test(conf, errors_name_file_line_and_accepted) {
        expect_error("[Guard]\nFlowTableSize=12\n", "x.conf:2: invalid FlowTableSize='12'; accepted:");
        expect_error("[Guard]\nFlowTableSize=65536\nBogus=1\n", "x.conf:3: unknown key 'Bogus'");
        expect_error("[Nope]\n", "x.conf:1: unknown section [Nope]");
        expect_error("FlowTableSize=65536\n", "outside of a section");
        expect_error("[Guard]\njust words\n", "x.conf:2: expected Key=Value");
        expect_error("[Guard\n", "malformed section header");
        expect_error("[Guard]\nPollIntervalSec=1ns\n", "invalid PollIntervalSec");
        expect_error("[Guard]\nPollIntervalSec=10ms\n", "from 100ms to 1h");
        expect_error("[Guard]\nMaxLinks=-3\n", "invalid MaxLinks");
        expect_error("[Guard]\nFlowTableSize=99999999999999999999\n", "invalid FlowTableSize");
}

static void write_text(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
}

Test(conf, dropins_override_in_order) {
        char dir[] = "/tmp/ps-test-conf-XXXXXX", p[256];
        Config c;
        char *err = NULL;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(p, sizeof p, "%s/packetscope.conf", dir);
        write_text(p, "[Guard]\nFlowTableSize=4096\nIcmpTableSize=1024\n");
        snprintf(p, sizeof p, "%s/packetscope.conf.d", dir);
        cr_assert_eq(mkdir(p, 0755), 0);
        snprintf(p, sizeof p, "%s/packetscope.conf.d/20-b.conf", dir);
        write_text(p, "[Guard]\nFlowTableSize=16384\n");
        snprintf(p, sizeof p, "%s/packetscope.conf.d/10-a.conf", dir);
        write_text(p, "[Guard]\nFlowTableSize=8192\nMaxLinks=3\n");
        snprintf(p, sizeof p, "%s/packetscope.conf.d/ignored.txt", dir);
        write_text(p, "garbage\n");

        config_init(&c);
        cr_assert_eq(config_load(&c, dir, &err), 0, "%s", err ? err : "");
        cr_assert_eq(c.flow_table_size, 16384);
        cr_assert_eq(c.icmp_table_size, 1024);
        cr_assert_eq(c.max_links, 3);

        snprintf(p, sizeof p, "%s/packetscope.conf.d/30-bad.conf", dir);
        write_text(p, "[Guard]\n\nIdleTimeoutSec=forever\n");
        config_init(&c);
        cr_assert_eq(config_load(&c, dir, &err), -EINVAL);
        cr_assert(strstr(err, "30-bad.conf:3:"), "%s", err);
        free(err);

        /* Leave nothing behind. */
        static const char *const files[] = {
                "packetscope.conf.d/10-a.conf", "packetscope.conf.d/20-b.conf",
                "packetscope.conf.d/30-bad.conf", "packetscope.conf.d/ignored.txt",
                "packetscope.conf.d", "packetscope.conf",
        };
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                snprintf(p, sizeof p, "%s/%s", dir, files[i]);
                cr_assert_eq(remove(p), 0, "%s", p);
        }
        cr_assert_eq(rmdir(dir), 0);
}

Test(conf, missing_dir_is_defaults) {
        Config c;
        char *err = NULL;

        config_init(&c);
        cr_assert_eq(config_load(&c, "/nonexistent/packetscope", &err), 0);
        cr_assert_eq(c.flow_table_size, 131072);
}

Test(conf, management_addresses) {
        Config c;
        char *err = NULL;

        config_init(&c);
        cr_assert_eq(c.n_management, 0);
        cr_assert_eq(c.n_management_ports, 1);
        cr_assert_eq(c.management_ports[0], 22);
        cr_assert_eq(config_parse(&c, "[Filters]\nManagementAddresses=192.0.2.10 2001:db8::/64\n"
                                      "ManagementPorts=22 2222\n", "m.conf", &err), 0, "%s", err ? err : "");
        cr_assert_eq(c.n_management, 2);
        cr_assert_eq(c.management[1].family, 6);
        cr_assert_eq(c.management[1].prefixlen, 64);
        cr_assert_eq(c.n_management_ports, 2);
        cr_assert_eq(c.management_ports[1], 2222);
        /* An empty value resets the list, as in systemd. */
        cr_assert_eq(config_parse(&c, "[Filters]\nManagementAddresses=\n", "m.conf", &err), 0);
        cr_assert_eq(c.n_management, 0);
}

Test(conf, management_errors) {
        expect_error("[Filters]\nManagementAddresses=not-an-ip\n", "invalid ManagementAddresses='not-an-ip'");
        expect_error("[Filters]\nManagementPorts=0\n", "invalid ManagementPorts='0'; accepted:");
        expect_error("[Filters]\nManagementPorts=70000\n", "invalid ManagementPorts");
        expect_error("[Filters]\nFlowTableSize=65536\n", "unknown key 'FlowTableSize' in [Filters]");
}

Test(conf, health_section) {
        Config c;
        char *err = NULL;

        config_init(&c);
        cr_assert_eq(c.health.interval_usec, 10 * USEC_PER_SEC);
        cr_assert_eq(c.health.min_duration_usec, 20 * USEC_PER_SEC);
        cr_assert_eq(c.health.cpu_percent, 80);
        cr_assert_eq(c.health.memory_percent, 85);
        cr_assert_eq(c.health.disk_mbps, 100);
        cr_assert_eq(c.health.pressure_percent, 20);
        cr_assert(c.health.pressure_triggers);
        cr_assert_eq(config_parse(&c,
                "[Health]\nHealthIntervalSec=2s\nMinimumDurationSec=0\nCPUThresholdPercent=50.5\n"
                "MemoryThresholdPercent=90\nDiskIOThresholdMBps=0.5\nPressureThresholdPercent=5\n"
                "PressureTriggers=no\n", "h.conf", &err), 0);
        cr_assert_null(err);
        cr_assert_eq(c.health.interval_usec, 2 * USEC_PER_SEC);
        cr_assert_eq(c.health.min_duration_usec, 0);
        cr_assert_eq(c.health.cpu_percent, 50.5);
        cr_assert_eq(c.health.memory_percent, 90);
        cr_assert_eq(c.health.disk_mbps, 0.5);
        cr_assert_eq(c.health.pressure_percent, 5);
        cr_assert_not(c.health.pressure_triggers);
}

Test(conf, health_errors) {
        expect_error("[Health]\nCPUThresholdPercent=101\n",
                     "x.conf:2: invalid CPUThresholdPercent='101'; accepted: a number from 1 to 100");
        expect_error("[Health]\nCPUThresholdPercent=80%\n", "invalid CPUThresholdPercent='80%'");
        expect_error("[Health]\nMemoryThresholdPercent=nan\n", "invalid MemoryThresholdPercent");
        expect_error("[Health]\nPressureThresholdPercent=100\n", "from 1 to 99");
        expect_error("[Health]\nHealthIntervalSec=100ms\n", "from 500ms to 1h");
        expect_error("[Health]\nMinimumDurationSec=2h\n", "from 0 to 1h");
        expect_error("[Health]\nPressureTriggers=maybe\n", "yes or no");
        expect_error("[Health]\nLoadThreshold=3\n", "known keys: HealthIntervalSec");
}

Test(conf, ssh_ports_default_management_ports) {
        char dir[] = "/tmp/ps-test-ssh-XXXXXX", p[256];
        Config c;
        char *err = NULL;

        cr_assert_not_null(mkdtemp(dir));
        /* No sshd configuration at all: 22 stays. */
        config_init(&c);
        cr_assert_eq(config_ssh_ports(&c, dir), 0);
        cr_assert_eq(c.n_management_ports, 1);
        cr_assert_eq(c.management_ports[0], 22);

        snprintf(p, sizeof p, "%s/sshd_config", dir);
        write_text(p, "Include /etc/ssh/sshd_config.d/*.conf\n#Port 22\nport 2222\n"
                      "  Port=2200 # comment\nPortless yes\nPort 2222\nPort 0\n");
        snprintf(p, sizeof p, "%s/sshd_config.d", dir);
        cr_assert_eq(mkdir(p, 0755), 0);
        snprintf(p, sizeof p, "%s/sshd_config.d/10-extra.conf", dir);
        write_text(p, "Port 8022\n");
        snprintf(p, sizeof p, "%s/sshd_config.d/README", dir);
        write_text(p, "Port 9999\n");
        config_init(&c);
        cr_assert_eq(config_ssh_ports(&c, dir), 3);
        cr_assert_eq(c.n_management_ports, 3);
        cr_assert_eq(c.management_ports[0], 2222);
        cr_assert_eq(c.management_ports[1], 2200);
        cr_assert_eq(c.management_ports[2], 8022);

        /* ManagementPorts= in a file wins, even empty. */
        config_init(&c);
        cr_assert_eq(config_parse(&c, "[Filters]\nManagementPorts=443\n", "m.conf", &err), 0);
        cr_assert_eq(config_ssh_ports(&c, dir), 0);
        cr_assert_eq(c.n_management_ports, 1);
        cr_assert_eq(c.management_ports[0], 443);
        config_init(&c);
        cr_assert_eq(config_parse(&c, "[Filters]\nManagementPorts=\n", "m.conf", &err), 0);
        cr_assert_eq(config_ssh_ports(&c, dir), 0);
        cr_assert_eq(c.n_management_ports, 0);
}
