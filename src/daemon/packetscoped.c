/* SPDX-License-Identifier: MIT */
/* packetscoped: main only sets up; the Manager owns everything else. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "manager-bus.h"
#include "manager.h"
#include "util.h"

#define SSH_CONFIG_DIR "/etc/ssh"

static void help(void) {
        printf("packetscoped [OPTIONS...]\n\n"
               "The packetscope network guard daemon (org.packetscope.Guarder1 on the system bus).\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --bpffs-root=PATH      Where programs and maps are pinned\n"
               "                            (default /sys/fs/bpf/packetscope)\n"
               "     --state-dir=PATH       State directory (default $STATE_DIRECTORY or\n"
               "                            /var/lib/packetscope)\n"
               "     --config-dir=PATH      Configuration directory (default\n"
               "                            $CONFIGURATION_DIRECTORY or /etc/packetscope)\n"
               "     --log-target=TARGET    auto, journal or stderr\n"
               "     --log-level=LEVEL      debug, info, notice, warning, err, crit, alert, emerg\n"
               "     --check-config         Check the configuration files and drop-ins, print\n"
               "                            each problem as FILE:LINE: MESSAGE, and exit\n"
               "\nSee packetscoped(8).\n");
}

/* $STATE_DIRECTORY may list several colon-separated paths; the first is ours. */
static char *first_path(const char *env, const char *fallback) {
        const char *e = getenv(env);

        if (e && *e)
                return strndup(e, strcspn(e, ":"));
        return strdup(fallback);
}

/* systemctl reload packetscope (ExecReload= sends SIGHUP): as Manager.Reload(), which logs. */
static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        _cleanup_free_ char *applied = NULL, *pending = NULL, *err = NULL;
        char uid[32], pid[32], who[96];
        const char *fields[] = { uid, pid, NULL };
        Manager *m = userdata;

        /* The sender of the signal, as the bus methods name their caller (the service manager
         * for systemctl reload). */
        snprintf(uid, sizeof uid, "CALLER_UID=%u", si->ssi_uid);
        snprintf(pid, sizeof pid, "CALLER_PID=%u", si->ssi_pid);
        snprintf(who, sizeof who, "SIGHUP from uid %u (pid %u)", si->ssi_uid, si->ssi_pid);
        (void) sd_notify(false, "RELOADING=1");
        (void) manager_reload(m, who, fields, &applied, &pending, &err);
        (void) sd_notify(false, "READY=1");
        return 0;
}

static int run(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_BPFFS, ARG_STATE, ARG_CONFIG, ARG_LOG_TARGET, ARG_LOG_LEVEL,
               ARG_CHECK_CONFIG };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "bpffs-root", required_argument, NULL, ARG_BPFFS },
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "config-dir", required_argument, NULL, ARG_CONFIG },
                { "log-target", required_argument, NULL, ARG_LOG_TARGET },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                {}
        };
        _cleanup_free_ char *bpffs = NULL, *state = NULL, *config = NULL, *err = NULL;
        LogTarget target = LOG_TARGET_AUTO;
        int level = LOG_INFO, c, r;
        bool check_config = false;
        Manager *m = NULL;
        sigset_t mask;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("packetscoped %s\n", PACKETSCOPE_VERSION);
                        return 0;
                case ARG_BPFFS:
                        free(bpffs);
                        bpffs = strdup(optarg);
                        break;
                case ARG_STATE:
                        free(state);
                        state = strdup(optarg);
                        break;
                case ARG_CONFIG:
                        free(config);
                        config = strdup(optarg);
                        break;
                case ARG_LOG_TARGET:
                        if (log_parse_target(optarg, &target) < 0) {
                                fprintf(stderr, "Invalid --log-target='%s'; accepted: auto, "
                                        "journal, stderr\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_CHECK_CONFIG:
                        check_config = true;
                        break;
                case ARG_LOG_LEVEL:
                        if (log_parse_level(optarg, &level) < 0) {
                                fprintf(stderr, "Invalid --log-level='%s'; accepted: debug, info, "
                                        "notice, warning, err, crit, alert, emerg\n", optarg);
                                return -EINVAL;
                        }
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "Unexpected argument '%s'; see --help\n", argv[optind]);
                return -EINVAL;
        }
        if (check_config) {
                /* What the daemon would load, every problem at once; nothing else starts. */
                _cleanup_free_ char *dir = config ? strdup(config)
                                                  : first_path("CONFIGURATION_DIRECTORY",
                                                               "/etc/packetscope");
                Config cfg;

                if (!dir)
                        return -ENOMEM;
                config_init(&cfg);
                r = config_load(&cfg, dir, &err);
                if (r < 0)
                        fprintf(stderr, "%s\n", err ? err : strerror(-r));
                return r < 0 ? -EINVAL : 0;
        }
        log_setup(target, level);

        r = manager_new(&m);
        if (r < 0)
                return log_error_errno(r, "Out of memory");
        m->bus_register = manager_bus_register;
        m->bpffs_root = bpffs ? TAKE_PTR(bpffs) : strdup("/sys/fs/bpf/packetscope");
        m->state_dir = state ? TAKE_PTR(state) : first_path("STATE_DIRECTORY", "/var/lib/packetscope");
        m->config_dir = config ? TAKE_PTR(config)
                               : first_path("CONFIGURATION_DIRECTORY", "/etc/packetscope");
        m->ssh_config_dir = SSH_CONFIG_DIR;
        if (!m->bpffs_root || !m->state_dir || !m->config_dir) {
                manager_free(m);
                return log_error_errno(-ENOMEM, "Out of memory");
        }

        r = config_load(&m->config, m->config_dir, &err);
        if (r < 0) {
                log_struct_internal(LOG_ERR, r, PS_MESSAGE_CONFIG_ERROR, NULL,
                                    "Refusing to start: %s", err ? err : strerror(-r));
                manager_free(m);
                return r;
        }

        /* Without ManagementPorts=, the SSH server's own ports (22 when it names none). */
        r = config_ssh_ports(&m->config, SSH_CONFIG_DIR);
        if (r > 0)
                log_info("ManagementPorts= is not set: the lock-out guard protects the %d "
                         "port%s of the SSH server's configuration in %s (first %u)", r,
                         r == 1 ? "" : "s", SSH_CONFIG_DIR, m->config.management_ports[0]);

        /* Signals are handled in the loop, so block them first. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = manager_start(m);
        if (r < 0)
                goto finish;
        r = sd_event_add_signal(m->event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m);
        if (r < 0) {
                log_error_errno(r, "Failed to install signal handlers: %m");
                goto finish;
        }

        log_struct_internal(LOG_INFO, 0, PS_MESSAGE_STARTED, NULL,
                            "packetscoped %s started: %zu link(s) guarded, bpffs root %s",
                            PACKETSCOPE_VERSION, m->n_links, m->bpffs_root);
        (void) sd_notify(false, "READY=1");
        manager_update_status(m, true);

        r = sd_event_loop(m->event);
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down; pinned guards stay attached");
        manager_stop(m);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");
        else
                log_struct_internal(LOG_INFO, 0, PS_MESSAGE_STOPPED, NULL,
                                    "packetscoped stopping; %zu pinned guard(s) stay attached",
                                    m->n_links);
finish:
        manager_free(m);
        return r;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
