/* SPDX-License-Identifier: MIT */
/*
 * A polkit text agent for the calls that change something. polkit asks for a password through
 * an agent registered for the caller; a user on a terminal rarely has one, so, as systemctl
 * does, the client starts pkttyagent for its own process, waits until it has registered (it
 * closes the descriptor it was given), makes the call with interactive authorization allowed,
 * and stops it. Not on a terminal, as root (polkit never asks root) or with --no-ask-password,
 * no agent is started.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "packetscopectl.h"

#define POLKIT_AGENT_PATH "/usr/bin/pkttyagent"
/* pkttyagent registers in well under a second; a bus that does not answer must not hang us. */
#define AGENT_READY_TIMEOUT_MS (30 * 1000)
#define AGENT_NOTIFY_FD 3

static pid_t agent_pid;

/* In the child: the agent's notify descriptor as fd 3, every other descriptor above 2 closed,
 * its prompt on the terminal even when our output goes to a pipe, and it dies with us. */
static void agent_exec(pid_t parent, int notify_fd) {
        char process[32], notify[16];
        int tty;

        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);
        if (dup2(notify_fd, AGENT_NOTIFY_FD) < 0)
                _exit(EXIT_FAILURE);
        closefrom(AGENT_NOTIFY_FD + 1);
        if (!isatty(STDOUT_FILENO) || !isatty(STDERR_FILENO)) {
                tty = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
                if (tty >= 0) {
                        if (!isatty(STDOUT_FILENO))
                                (void) dup2(tty, STDOUT_FILENO);
                        if (!isatty(STDERR_FILENO))
                                (void) dup2(tty, STDERR_FILENO);
                }
        }
        snprintf(process, sizeof process, "%d", (int) parent);
        snprintf(notify, sizeof notify, "%d", AGENT_NOTIFY_FD);
        /* No --fallback: the agent is for this one process, which no other agent serves, and
         * polkitd 122 never picks a fallback agent registered for a process. */
        execl(POLKIT_AGENT_PATH, POLKIT_AGENT_PATH, "--process", process, "--notify-fd", notify,
              (char *) NULL);
        _exit(EXIT_FAILURE);
}

int polkit_agent_open(void) {
        struct pollfd p;
        int fds[2], r;
        pid_t parent = getpid(), pid;

        if (agent_pid > 0 || !arg.ask_password)
                return 0;
        /* polkit authorizes root without asking, and only a terminal can answer a prompt. */
        if (geteuid() == 0 || !isatty(STDIN_FILENO))
                return 0;
        if (access(POLKIT_AGENT_PATH, X_OK) < 0)
                return 0;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                r = -errno;
                safe_close(fds[0]);
                safe_close(fds[1]);
                return r;
        }
        if (pid == 0)
                agent_exec(parent, fds[1]);
        agent_pid = pid;
        safe_close(fds[1]);
        /* The agent closes its end once registered; if it cannot start, its exit closes it. */
        p = (struct pollfd) { .fd = fds[0], .events = POLLIN };
        do
                r = poll(&p, 1, AGENT_READY_TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        safe_close(fds[0]);
        return 0;
}

void polkit_agent_close(void) {
        if (agent_pid <= 0)
                return;
        (void) kill(agent_pid, SIGTERM);
        (void) kill(agent_pid, SIGCONT);
        while (waitpid(agent_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        agent_pid = 0;
}
