/* fork_wait.c - the process tree: fork, exit, zombies, wait4/waitpid/waitid.
 *
 * Covers: ECHILD with no children; 200 children exiting with distinct
 * statuses, reaped by pid (waitpid) and by "any" (wait4 with rusage);
 * 50 children blocked at once and released together; WNOHANG before a child
 * exits; waitid P_PID/P_ALL/P_PGID with WEXITED, WNOWAIT and WNOHANG;
 * waitpid(0) and waitpid(-pgid); ECHILD for a non-child; exit status
 * truncation (_exit(256+3), exit(-1)); a zombie stays visible to kill(pid,0)
 * until reaped; clone() without an exit signal needs __WALL/__WCLONE;
 * and (last) an orphaned grandchild is re-parented when its parent exits.
 *
 * Deterministic output, no raw pids.  argv[1] (scratch directory) unused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOPID 1000000000 /* far above any pid_max */
#define YN(c) ((c) ? "yes" : "no")
#define P(label, cond) printf("%s: %s\n", label, YN(cond))

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static void res(const char *label, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", label, ename(errno));
    else
        printf("%s: %ld\n", label, r);
}

static pid_t xfork(void) {
    fflush(stdout);
    pid_t c = fork();
    if (c < 0) { perror("fork"); exit(2); }
    return c;
}

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static void no_children(void) {
    printf("== no children\n");
    errno = 0;
    res("wait(NULL)", wait(NULL));
    res("waitpid(-1,WNOHANG)", waitpid(-1, NULL, WNOHANG));
    siginfo_t si;
    res("waitid(P_ALL,WEXITED)", waitid(P_ALL, 0, &si, WEXITED));
    res("waitpid(nonexistent)", waitpid(NOPID, NULL, 0));
}

#define NCHILD 200
static void many_children(void) {
    printf("== %d children\n", NCHILD);
    pid_t pids[NCHILD];
    for (int i = 0; i < NCHILD; i++) {
        pid_t c = xfork();
        if (c == 0) _exit((i * 37) % 256);
        pids[i] = c;
    }
    int distinct = 1;
    for (int i = 0; i < NCHILD; i++)
        for (int j = 0; j < i; j++)
            if (pids[i] == pids[j]) distinct = 0;
    P("all child pids distinct", distinct);
    /* first half by pid, in reverse order */
    int bad = 0, reaped = 0;
    for (int i = NCHILD / 2 - 1; i >= 0; i--) {
        int st;
        pid_t r = waitpid(pids[i], &st, 0);
        if (r != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != (i * 37) % 256) bad++;
        else reaped++;
    }
    /* second half by "any child", with rusage */
    int seen[NCHILD] = {0};
    for (int k = NCHILD / 2; k < NCHILD; k++) {
        int st;
        struct rusage ru;
        pid_t r = wait4(-1, &st, 0, &ru);
        int idx = -1;
        for (int i = NCHILD / 2; i < NCHILD; i++)
            if (pids[i] == r) idx = i;
        if (idx < 0 || seen[idx] || !WIFEXITED(st) || WEXITSTATUS(st) != (idx * 37) % 256) {
            bad++;
        } else {
            seen[idx] = 1;
            reaped++;
        }
    }
    printf("reaped %d, wrong %d\n", reaped, bad);
    errno = 0;
    res("then wait(NULL)", wait(NULL));
}

static void blocked_together(void) {
    printf("== 50 blocked children released together\n");
    int fd[2];
    pipe(fd);
    pid_t pids[50];
    for (int i = 0; i < 50; i++) {
        pid_t c = xfork();
        if (c == 0) {
            close(fd[1]);
            char b;
            ssize_t n = read(fd[0], &b, 1); /* blocks until EOF */
            _exit(n == 0 ? 100 + i % 7 : 1);
        }
        pids[i] = c;
    }
    close(fd[0]);
    int none = 1;
    for (int i = 0; i < 50; i++)
        if (waitpid(pids[i], NULL, WNOHANG) != 0) none = 0;
    P("none exited before release (WNOHANG -> 0)", none);
    P("waitpid(-1,WNOHANG) -> 0", waitpid(-1, NULL, WNOHANG) == 0);
    close(fd[1]);
    int ok = 0;
    for (int i = 0; i < 50; i++) {
        int st;
        if (waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) &&
            WEXITSTATUS(st) == 100 + i % 7)
            ok++;
    }
    printf("saw EOF and exited correctly: %d/50\n", ok);
}

static void waitid_tests(void) {
    printf("== waitid\n");
    pid_t c = xfork();
    if (c == 0) _exit(42);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    P("waitid(P_PID,WEXITED|WNOWAIT) ok", waitid(P_PID, c, &si, WEXITED | WNOWAIT) == 0);
    P("si_pid==child", si.si_pid == c);
    P("si_signo==SIGCHLD", si.si_signo == SIGCHLD);
    P("si_code==CLD_EXITED", si.si_code == CLD_EXITED);
    printf("si_status: %d\n", si.si_status);
    P("si_uid==getuid", si.si_uid == getuid());
    memset(&si, 0, sizeof si);
    P("waitid(P_ALL,WEXITED) after WNOWAIT", waitid(P_ALL, 0, &si, WEXITED) == 0);
    P("same child, same status", si.si_pid == c && si.si_status == 42);
    errno = 0;
    res("then waitid(P_PID) again", waitid(P_PID, c, &si, WEXITED));

    /* WNOHANG with a live child: 0 and si_pid zeroed */
    int fd[2];
    pipe(fd);
    c = xfork();
    if (c == 0) {
        close(fd[1]);
        char b;
        read(fd[0], &b, 1);
        _exit(7);
    }
    close(fd[0]);
    memset(&si, 0x55, sizeof si);
    P("waitid(WNOHANG) live child returns 0", waitid(P_PID, c, &si, WEXITED | WNOHANG) == 0);
    P("si_pid zeroed", si.si_pid == 0);
    P("si_signo zeroed", si.si_signo == 0);
    close(fd[1]);
    memset(&si, 0, sizeof si);
    P("waitid(P_PID,WEXITED) blocks until exit", waitid(P_PID, c, &si, WEXITED) == 0);
    printf("status: %d\n", si.si_status);
    errno = 0;
    res("waitid without WEXITED/WSTOPPED/WCONTINUED", waitid(P_ALL, 0, &si, WNOHANG));
    res("waitid bad idtype", waitid(77, 0, &si, WEXITED));

    /* P_PGID */
    c = xfork();
    if (c == 0) {
        setpgid(0, 0);
        msleep(50);
        _exit(9);
    }
    setpgid(c, c); /* also done by the child; either may win */
    memset(&si, 0, sizeof si);
    P("waitid(P_PGID,child group)", waitid(P_PGID, c, &si, WEXITED) == 0);
    P("P_PGID found the child", si.si_pid == c && si.si_status == 9);
}

static void pgrp_wait(void) {
    printf("== waitpid(0) and waitpid(-pgid)\n");
    int fd[2];
    pipe(fd);
    pid_t other = xfork();
    if (other == 0) {
        setpgid(0, 0);
        close(fd[1]);
        char b;
        read(fd[0], &b, 1);
        _exit(11);
    }
    setpgid(other, other);
    pid_t same = xfork();
    if (same == 0) {
        close(fd[1]);
        char b;
        read(fd[0], &b, 1);
        _exit(12);
    }
    close(fd[0]);
    close(fd[1]); /* release both */
    int st;
    pid_t r = waitpid(0, &st, 0);
    P("waitpid(0) reaps the same-group child", r == same && WEXITSTATUS(st) == 12);
    errno = 0;
    res("waitpid(0) again (only other-group child left)", waitpid(0, &st, WNOHANG));
    r = waitpid(-other, &st, 0);
    P("waitpid(-pgid) reaps the other-group child", r == other && WEXITSTATUS(st) == 11);
}

static void statuses(void) {
    printf("== exit statuses\n");
    int st;
    pid_t c = xfork();
    if (c == 0) _exit(256 + 3);
    waitpid(c, &st, 0);
    printf("_exit(259): exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));
    c = xfork();
    if (c == 0) exit(-1);
    waitpid(c, &st, 0);
    printf("exit(-1): exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));
    c = xfork();
    if (c == 0) syscall(SYS_exit_group, 77);
    waitpid(c, &st, 0);
    printf("exit_group(77): exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));
    c = xfork();
    if (c == 0) syscall(SYS_exit, 78);
    waitpid(c, &st, 0);
    printf("exit(78) single thread: exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));
    c = xfork();
    if (c == 0) _exit(5);
    P("waitpid(c, NULL, 0)", waitpid(c, NULL, 0) == c);
    errno = 0;
    pid_t g = xfork();
    if (g == 0) _exit(0);
    waitpid(g, NULL, 0);
    res("waitpid(already reaped)", waitpid(g, NULL, 0));
    res("waitpid(own pid)", waitpid(getpid(), NULL, WNOHANG));
}

static void zombie(void) {
    printf("== zombie\n");
    pid_t c = xfork();
    if (c == 0) _exit(3);
    msleep(100);
    P("kill(zombie,0) succeeds", kill(c, 0) == 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    P("waitid WNOHANG sees the zombie", waitid(P_PID, c, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == c);
    int st;
    P("waitpid reaps it", waitpid(c, &st, 0) == c && WEXITSTATUS(st) == 3);
    errno = 0;
    res("kill(reaped,0)", kill(c, 0));
}

static void clone_no_signal(void) {
    printf("== clone without exit signal\n");
    fflush(stdout);
    long c = syscall(SYS_clone, 0L, 0L, NULL, NULL, 0L);
    if (c == 0) _exit(5);
    if (c < 0) { printf("clone failed: %s\n", ename(errno)); return; }
    int st;
    errno = 0;
    res("waitpid(c,0) without __WCLONE", waitpid(c, &st, WNOHANG));
    P("waitpid(c,__WALL) reaps", waitpid(c, &st, __WALL) == c && WEXITSTATUS(st) == 5);

    c = syscall(SYS_clone, 0L, 0L, NULL, NULL, 0L);
    if (c == 0) _exit(6);
    P("waitpid(c,__WCLONE) reaps", waitpid(c, &st, __WCLONE) == c && WEXITSTATUS(st) == 6);

    c = syscall(SYS_clone, (long)SIGCHLD, 0L, NULL, NULL, 0L);
    if (c == 0) _exit(7);
    errno = 0;
    res("clone(SIGCHLD) child with __WCLONE", waitpid(c, &st, __WCLONE | WNOHANG));
    P("clone(SIGCHLD) child with 0 reaps", waitpid(c, &st, 0) == c && WEXITSTATUS(st) == 7);
}

static void orphan(void) {
    printf("== orphan\n");
    int fd[2];
    pipe(fd);
    pid_t c = xfork();
    if (c == 0) {
        pid_t g = fork();
        if (g == 0) {
            close(fd[0]);
            pid_t orig = getppid();
            long r[3] = {orig, 0, 0};
            kill(orig, SIGKILL); /* make sure the parent dies now */
            for (int i = 0; i < 500; i++) {
                if (getppid() != orig) { r[1] = 1; break; }
                msleep(10);
            }
            r[2] = getppid() > 0;
            write(fd[1], r, sizeof r);
            _exit(0);
        }
        pause();
        _exit(1);
    }
    close(fd[1]);
    long r[3] = {0, 0, 0};
    ssize_t n = read(fd[0], r, sizeof r);
    close(fd[0]);
    int st;
    pid_t w = waitpid(c, &st, 0);
    P("grandchild reported", n == sizeof r);
    P("grandchild's original parent was the child", r[0] == c);
    P("parent reaped, killed by SIGKILL", w == c && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    P("grandchild re-parented (getppid changed)", r[1]);
    P("new getppid > 0", r[2]);
    /* If we are the reaper (as init under usermode) collect the orphan
     * quietly; natively it went elsewhere. */
    msleep(50);
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    no_children();
    many_children();
    blocked_together();
    waitid_tests();
    pgrp_wait();
    statuses();
    zombie();
    clone_no_signal();
    orphan();
    printf("done\n");
    return 0;
}
