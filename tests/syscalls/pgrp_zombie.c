/* pgrp_zombie.c - a process group lives as long as any member, a zombie included.
 *
 * A shell builds a pipeline `echo x | wc`: the first child leads the group and may
 * exit before the second joins it with setpgid(pid, leader). Linux keeps the group
 * until the zombie leader is reaped; after that, joining it is EPERM.
 *
 * Deterministic output, no raw pids.  argv[1] (scratch directory) unused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *res(int r) { return r == 0 ? "ok" : strerrorname_np(errno); }

static pid_t child(int pause_first) {
    pid_t pid = fork();
    if (pid == 0) {
        if (pause_first)
            pause();
        _exit(0);
    }
    return pid;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t leader = child(0);
    printf("setpgid(leader, leader): %s\n", res(setpgid(leader, leader)));
    siginfo_t si;
    waitid(P_PID, leader, &si, WEXITED | WNOWAIT);  /* a zombie now, not reaped */
    pid_t second = child(1);
    printf("join the zombie's group: %s\n", res(setpgid(second, leader)));
    printf("second's group is the leader's: %s\n", getpgid(second) == leader ? "yes" : "no");
    printf("kill(-leader, 0): %s\n", res(kill(-leader, 0)));
    waitpid(leader, NULL, 0);                       /* reaped; second still holds it */
    printf("group alive through its member: %s\n", res(kill(-leader, 0)));
    kill(second, SIGKILL);
    waitpid(second, NULL, 0);
    pid_t third = child(1);
    printf("join a group that is gone: %s\n", res(setpgid(third, leader)));
    kill(third, SIGKILL);
    waitpid(third, NULL, 0);
    printf("done\n");
    return 0;
}
