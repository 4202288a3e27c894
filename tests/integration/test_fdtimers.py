"""timerfd and signalfd, differentially: a C program compiled at test time (static and
glibc-dynamic, gcc -O1) runs natively and under `usermode run`; stdout and exit status must
be identical. It prints only deterministic lines (counts compared with bounds, pids
compared with getpid()/the child's pid)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import assert_native_ok, assert_same, run_guest, run_native

PROGRAM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *en(int e) { return e ? strerrorname_np(e) : "ok"; }
#define SHOW(label, call) do { errno = 0; long _r = (long)(call); int _e = errno; \
        printf("%s: %ld %s\n", label, _r, en(_e)); } while (0)

static long ms_since(struct timespec *a) {
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

static void timers(void) {
    struct timespec t0;
    uint64_t n = 0;
    ssize_t r;
    int fd = timerfd_create(CLOCK_MONOTONIC, 0);
    printf("timerfd_create: %s\n", fd >= 0 ? "ok" : en(errno));
    SHOW("bad clock", timerfd_create(12345, 0));
    SHOW("bad flags", timerfd_create(CLOCK_MONOTONIC, 1));

    /* one-shot 50 ms, blocking read */
    struct itimerspec its = {{0, 0}, {0, 50 * 1000000}}, cur;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("settime: %d\n", timerfd_settime(fd, 0, &its, NULL));
    timerfd_gettime(fd, &cur);
    printf("gettime armed: interval %ld.%09ld, value in (0,50ms]: %d\n",
           (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec,
           cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 50000000);
    SHOW("short read", read(fd, &n, 4));
    r = read(fd, &n, 8);
    long el = ms_since(&t0);
    printf("one-shot read: %zd count %llu, waited >= 45ms: %d\n", r, (unsigned long long)n, el >= 45);
    timerfd_gettime(fd, &cur);
    printf("gettime expired: %ld %ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);

    /* bad values */
    struct itimerspec bad = {{0, 0}, {0, 1000000000}};
    SHOW("nsec 1e9", timerfd_settime(fd, 0, &bad, NULL));
    bad.it_value.tv_nsec = -1;
    SHOW("nsec -1", timerfd_settime(fd, 0, &bad, NULL));
    SHOW("bad flags", timerfd_settime(fd, 8, &its, NULL));
    SHOW("not a timerfd", timerfd_settime(1, 0, &its, NULL));
    SHOW("bad fd", timerfd_settime(99, 0, &its, NULL));

    /* periodic 20 ms, read late */
    struct itimerspec per = {{0, 20 * 1000000}, {0, 20 * 1000000}}, old;
    timerfd_settime(fd, 0, &per, NULL);
    usleep(110 * 1000);
    r = read(fd, &n, 8);
    printf("periodic after 110ms: %zd, >= 5: %d\n", r, n >= 5);
    timerfd_gettime(fd, &cur);
    printf("gettime periodic: interval %ld.%09ld\n", (long)cur.it_interval.tv_sec,
           cur.it_interval.tv_nsec);
    /* blocking read of a periodic timer: one more period */
    r = read(fd, &n, 8);
    printf("periodic blocking read: %zd, count >= 1: %d\n", r, n >= 1);

    /* disarm, old value */
    struct itimerspec zero = {{0, 0}, {0, 0}};
    timerfd_settime(fd, 0, &zero, &old);
    printf("old interval %ld.%09ld, old value nonzero: %d\n", (long)old.it_interval.tv_sec,
           old.it_interval.tv_nsec, old.it_value.tv_nsec > 0 || old.it_value.tv_sec > 0);
    timerfd_gettime(fd, &cur);
    printf("disarmed: %ld %ld %ld %ld\n", (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec,
           (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
    close(fd);

    /* nonblocking EAGAIN, poll */
    fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    SHOW("nonblocking unarmed", read(fd, &n, 8));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec abs = {{0, 0}, {now.tv_sec, now.tv_nsec}};
    abs.it_value.tv_nsec += 30 * 1000000;
    if (abs.it_value.tv_nsec >= 1000000000) {
        abs.it_value.tv_sec++;
        abs.it_value.tv_nsec -= 1000000000;
    }
    printf("abstime settime: %d\n", timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &abs, NULL));
    SHOW("nonblocking armed", read(fd, &n, 8));
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 0);
    printf("poll before: %d %x\n", pr, p.revents);
    pr = poll(&p, 1, 2000);
    printf("poll: %d %x\n", pr, p.revents);
    r = read(fd, &n, 8);
    printf("read: %zd %llu\n", r, (unsigned long long)n);
    close(fd);

    /* epoll on a periodic boottime timer */
    fd = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    struct itimerspec p10 = {{0, 10 * 1000000}, {0, 10 * 1000000}};
    timerfd_settime(fd, 0, &p10, NULL);
    int got = 0;
    for (int i = 0; i < 3; i++) {
        struct epoll_event out;
        int k = epoll_wait(ep, &out, 1, 2000);
        if (k == 1 && out.data.u64 == 42 && read(fd, &n, 8) == 8 && n >= 1)
            got++;
    }
    printf("epoll wakeups: %d\n", got);
    /* edge-triggered */
    ev.events = EPOLLIN | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    got = 0;
    for (int i = 0; i < 3; i++) {
        struct epoll_event out;
        int k = epoll_wait(ep, &out, 1, 2000);
        if (k == 1)
            got++;
        read(fd, &n, 8);
    }
    printf("epoll ET wakeups: %d\n", got);
    close(ep);
    close(fd);
}

static void print_info(const char *what, struct signalfd_siginfo *si, pid_t want) {
    printf("%s: signo %u code %d pid-match %d uid-match %d\n", what, si->ssi_signo,
           si->ssi_code, (pid_t)si->ssi_pid == want, si->ssi_uid == getuid());
}

static void signals(void) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, NULL);
    SHOW("bad sizemask", syscall(289, -1, &m, 4, 0));
    SHOW("bad flags", signalfd(-1, &m, 1));
    SHOW("not a signalfd", signalfd(1, &m, 0));
    int fd = signalfd(-1, &m, SFD_CLOEXEC);
    printf("signalfd: %s\n", fd >= 0 ? "ok" : en(errno));
    printf("update: %d\n", signalfd(fd, &m, 0) == fd);

    struct pollfd p = {fd, POLLIN, 0};
    printf("poll empty: %d\n", poll(&p, 1, 0));
    kill(getpid(), SIGUSR1);
    kill(getpid(), SIGUSR2);
    int pp = poll(&p, 1, 0);
    printf("poll pending: %d %x\n", pp, p.revents);
    struct signalfd_siginfo si[4];
    ssize_t r = read(fd, si, sizeof si);
    printf("read two: %zd\n", r);
    for (int i = 0; i < r / 128; i++)
        print_info("  record", &si[i], getpid());
    SHOW("short buffer", read(fd, si, 100));

    /* a child's kill; the parent blocks in read */
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        usleep(50 * 1000);
        kill(getppid(), SIGUSR2);
        _exit(0);
    }
    r = read(fd, si, sizeof si);
    printf("blocking read: %zd\n", r);
    print_info("  from child", &si[0], c);
    waitpid(c, NULL, 0);

    /* epoll waiting for a signal from a child */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    fflush(stdout);
    c = fork();
    if (c == 0) {
        usleep(50 * 1000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    struct epoll_event out;
    int k = epoll_wait(ep, &out, 1, 5000);
    printf("epoll: %d %llu\n", k, (unsigned long long)out.data.u64);
    r = read(fd, si, sizeof si);
    printf("read after epoll: %zd\n", r);
    print_info("  from child", &si[0], c);
    waitpid(c, NULL, 0);
    close(ep);

    /* sigqueue value */
    union sigval v = {.sival_int = 1234};
    sigqueue(getpid(), SIGUSR1, v);
    r = read(fd, si, sizeof si);
    printf("sigqueue: %zd code %d int %d pid-match %d\n", r, si[0].ssi_code, si[0].ssi_int,
           (pid_t)si[0].ssi_pid == getpid());

    /* mask narrowing and nonblocking */
    sigset_t only1;
    sigemptyset(&only1);
    sigaddset(&only1, SIGUSR1);
    int nb = signalfd(-1, &only1, SFD_NONBLOCK);
    kill(getpid(), SIGUSR2);
    SHOW("nonblocking, other signal pending", read(nb, si, sizeof si));
    r = read(fd, si, sizeof si);
    printf("other fd gets it: %zd signo %u\n", r, si[0].ssi_signo);
    SHOW("nonblocking empty", read(nb, si, sizeof si));
    close(nb);
    close(fd);
}

static int tfd_sig;

static void *reader(void *arg) {
    struct signalfd_siginfo si;
    ssize_t r = read(tfd_sig, &si, sizeof si);
    printf("thread read: %zd signo %u code %d pid-match %d\n", r, si.ssi_signo, si.ssi_code,
           (pid_t)si.ssi_pid == getpid());
    return NULL;
}

static void threads(void) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    tfd_sig = signalfd(-1, &m, 0);
    pthread_t th;
    pthread_create(&th, NULL, reader, NULL);
    usleep(50 * 1000);
    pthread_kill(th, SIGUSR1);
    pthread_join(th, NULL);
    struct pollfd p = {tfd_sig, POLLIN, 0};
    int pr = poll(&p, 1, 0);
    printf("after thread: poll %d\n", pr);
    close(tfd_sig);
}

static void sigchld(void) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGCHLD);
    sigprocmask(SIG_BLOCK, &m, NULL);
    int fd = signalfd(-1, &m, 0);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0)
        _exit(3);
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 5000);
    printf("sigchld poll: %d\n", pr);
    struct signalfd_siginfo si;
    ssize_t r = read(fd, &si, sizeof si);
    printf("sigchld read: %zd signo %u code %d pid-match %d status %d\n", r, si.ssi_signo,
           si.ssi_code, (pid_t)si.ssi_pid == c, si.ssi_status);
    waitpid(c, NULL, 0);
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    timers();
    signals();
    threads();
    sigchld();
    printf("done\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def progs(tmp_path_factory) -> dict[str, Path]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed")
    d = tmp_path_factory.mktemp("fdtimers")
    src = d / "fdtimers.c"
    src.write_text(PROGRAM)
    out = {}
    for link in ("static", "dynamic"):
        exe = d / f"fdtimers-{link}"
        cmd = [gcc, "-O1", "-Wall", "-pthread"] + (["-static"] if link == "static" else [])
        p = subprocess.run(cmd + ["-o", str(exe), str(src)], capture_output=True, text=True)
        if p.returncode != 0:
            pytest.fail(f"compile failed: {' '.join(cmd)}\n{p.stderr}", pytrace=False)
        out[link] = exe
    return out


@pytest.mark.parametrize("link", ["static", "dynamic"])
def test_fdtimers(progs: dict[str, Path], link: str, tmp_path: Path) -> None:
    exe = progs[link]
    native = run_native(exe, [], tmp_path)
    assert_native_ok(native)
    guest = run_guest(exe, [], tmp_path)
    assert_same(native, guest)
