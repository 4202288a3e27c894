/* badargs.c - garbage pointers, flags and numbers.
 *
 * Every call is made through syscall(2) (no libc checks in between, no vDSO)
 * and prints the return value and errno name Linux gives: EFAULT for bad
 * pointers, EBADF for bad descriptors, EINVAL for bad flags/values, ESRCH for
 * missing processes, ENOSYS for numbers that do not exist (999, 335-423,
 * -1) and for futex ops that do not exist, ECHILD, ERANGE, ENAMETOOLONG ...
 * The kernel under test must never crash on any of them.
 *
 * Usage: badargs SCRATCH_DIR (unused)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOPID 1000000000L
#define BAD ((void *)1)
#define KBAD ((void *)0xffff800000001000UL) /* kernel half */

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

#define T(label, ...)                                                           \
    do {                                                                        \
        errno = 0;                                                              \
        long r_ = syscall(__VA_ARGS__);                                         \
        if (r_ < 0)                                                             \
            printf("%-52s -1 %s\n", label, ename(errno));                       \
        else                                                                    \
            printf("%-52s ok\n", label);                                        \
    } while (0)

/* same, but print the value (for calls whose result is deterministic) */
#define TV(label, ...)                                                          \
    do {                                                                        \
        errno = 0;                                                              \
        long r_ = syscall(__VA_ARGS__);                                         \
        if (r_ < 0)                                                             \
            printf("%-52s -1 %s\n", label, ename(errno));                       \
        else                                                                    \
            printf("%-52s %ld\n", label, r_);                                   \
    } while (0)

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int p[2];
    if (pipe(p) < 0) return 2;
    char buf[64];
    char longpath[PATH_MAX + 10];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    char longname[300];
    memset(longname, 'b', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = 0;

    printf("== read/write\n");
    T("write(1, (void*)1, 10)", SYS_write, 1, BAD, 10);
    T("write(1, kernel address, 10)", SYS_write, 1, KBAD, 10);
    TV("write(1, NULL, 0)", SYS_write, 1, NULL, 0);
    T("read(-1, buf, 10)", SYS_read, -1, buf, 10);
    T("read(999, buf, 10)", SYS_read, 999, buf, 10);
    T("write(-1, buf, 10)", SYS_write, -1, buf, 10);
    write(p[1], "xyz", 3);
    T("read(pipe, (void*)1, 10) with data", SYS_read, p[0], BAD, 10);
    T("read(write end of a pipe)", SYS_read, p[1], buf, 1);
    T("write(read end of a pipe)", SYS_write, p[0], "x", 1);
    T("readv(pipe, (void*)1, 1)", SYS_readv, p[0], BAD, 1);
    T("readv(pipe, iov, -1)", SYS_readv, p[0], buf, -1);
    T("writev(1, iov, 100000)", SYS_writev, 1, buf, 100000);
    struct iovec biov = {BAD, 5};
    T("writev(1, {bad base}, 1)", SYS_writev, 1, &biov, 1);
    T("pread64(pipe)", SYS_pread64, p[0], buf, 1, 0);
    T("lseek(pipe)", SYS_lseek, p[0], 0, SEEK_SET);
    T("lseek(-1)", SYS_lseek, -1, 0, SEEK_SET);

    printf("== paths and fds\n");
    T("open(NULL)", SYS_open, NULL, O_RDONLY);
    T("open((void*)1)", SYS_open, BAD, O_RDONLY);
    T("open(\"\")", SYS_open, "", O_RDONLY);
    T("open(PATH_MAX+ path)", SYS_open, longpath, O_RDONLY);
    T("open(component > NAME_MAX)", SYS_open, longname, O_RDONLY);
    T("openat(999, \"x\")", SYS_openat, 999, "x", O_RDONLY);
    T("openat(pipe fd, \"x\") (not a dir)", SYS_openat, p[0], "x", O_RDONLY);
    T("open(\"/\", O_WRONLY)", SYS_open, "/", O_WRONLY);
    T("open(\"/nonexistent/x\", O_CREAT)", SYS_open, "/nonexistent/x", O_CREAT | O_WRONLY, 0644);
    T("close(-1)", SYS_close, -1);
    T("close(999)", SYS_close, 999);
    T("dup(-1)", SYS_dup, -1);
    T("dup2(999, 5)", SYS_dup2, 999, 5);
    T("dup2(1, -1)", SYS_dup2, 1, -1);
    T("dup3(1, 1, 0)", SYS_dup3, 1, 1, 0);
    T("dup3(1, 5, bad flags)", SYS_dup3, 1, 5, 0x1234);
    T("fcntl(-1, F_GETFD)", SYS_fcntl, -1, F_GETFD);
    T("fcntl(1, bad cmd)", SYS_fcntl, 1, 12345);
    T("fcntl(1, F_DUPFD, -1)", SYS_fcntl, 1, F_DUPFD, -1);
    T("pipe((void*)1)", SYS_pipe, BAD);
    T("pipe2(fds, bad flags)", SYS_pipe2, buf, 0x1234);
    T("getcwd(buf, 1)", SYS_getcwd, buf, 1);
    T("getcwd((void*)1, 100)", SYS_getcwd, BAD, 100);
    T("chdir(NULL)", SYS_chdir, NULL);
    T("stat(\"/\", (void*)1)", SYS_stat, "/", BAD);
    T("fstat(-1, buf)", SYS_fstat, -1, buf);

    printf("== processes\n");
    T("kill(getpid(), 999)", SYS_kill, getpid(), 999);
    T("kill(getpid(), -1)", SYS_kill, getpid(), -1);
    T("kill(nonexistent, 0)", SYS_kill, NOPID, 0);
    T("kill(-nonexistent pgrp, 0)", SYS_kill, -NOPID, 0);
    T("kill(INT_MIN, 0)", SYS_kill, INT_MIN, 0);
    T("tgkill(getpid(), 0, 0)", SYS_tgkill, getpid(), 0, 0);
    T("tgkill(-1, gettid, 0)", SYS_tgkill, -1, syscall(SYS_gettid), 0);
    T("tgkill(getpid(), gettid, 999)", SYS_tgkill, getpid(), syscall(SYS_gettid), 999);
    T("tkill(0, 0)", SYS_tkill, 0, 0);
    T("wait4(-1, NULL, bad options, NULL)", SYS_wait4, -1, NULL, 0x12345678, NULL);
    T("wait4(-1, NULL, 0, NULL) no children", SYS_wait4, -1, NULL, 0, NULL);
    T("waitid(bad idtype)", SYS_waitid, 99, 0, buf, WEXITED, NULL);
    T("waitid(P_ALL, no WEXITED etc.)", SYS_waitid, P_ALL, 0, buf, 0, NULL);
    pid_t c = fork();
    if (c == 0) _exit(0);
    T("wait4(child, (void*)1, 0, NULL)", SYS_wait4, c, BAD, 0, NULL);
    waitpid(c, NULL, 0);
    T("setpgid(-1, 0)", SYS_setpgid, -1, 0);
    T("setpgid(0, -1)", SYS_setpgid, 0, -1);
    T("getpgid(nonexistent)", SYS_getpgid, NOPID);
    T("getsid(nonexistent)", SYS_getsid, NOPID);
    T("getpriority(bad which)", SYS_getpriority, 99, 0);
    T("sched_getaffinity(0, 0, buf)", SYS_sched_getaffinity, 0, 0, buf);
    T("uname((void*)1)", SYS_uname, BAD);
    T("sysinfo(NULL)", SYS_sysinfo, NULL);
    T("getrlimit(999, buf)", SYS_getrlimit, 999, buf);
    T("getrlimit(NOFILE, (void*)1)", SYS_getrlimit, RLIMIT_NOFILE, BAD);
    T("prlimit64(nonexistent, NOFILE)", SYS_prlimit64, NOPID, RLIMIT_NOFILE, NULL, buf);
    T("prlimit64(0, 999)", SYS_prlimit64, 0, 999, NULL, buf);
    T("getrandom(buf, 16, bad flags)", SYS_getrandom, buf, 16, 0xff);
    T("getrandom((void*)1, 16, 0)", SYS_getrandom, BAD, 16, 0);
    T("getresuid((void*)1, ...)", SYS_getresuid, BAD, buf, buf + 8);
    T("getgroups(-1, buf)", SYS_getgroups, -1, buf);
    T("setgroups(-1, buf)", SYS_setgroups, -1, buf);
    T("clone(CLONE_SIGHAND without CLONE_VM)", SYS_clone, CLONE_SIGHAND, 0, NULL, NULL, 0);
    T("clone(CLONE_THREAD without CLONE_SIGHAND)", SYS_clone, CLONE_THREAD | CLONE_VM, 0, NULL, NULL, 0);
    T("clone(CLONE_NEWNS|CLONE_FS)", SYS_clone, CLONE_NEWNS | CLONE_FS, 0, NULL, NULL, 0);
    T("execve(NULL, argv, envp)", SYS_execve, NULL, NULL, NULL);
    char *av[] = {"true", NULL};
    T("execve(\"/bin/true\", (void*)1, NULL)", SYS_execve, "/bin/true", BAD, NULL);
    char *bad_av[] = {"true", BAD, NULL};
    T("execve(\"/bin/true\", {.., (void*)1}, NULL)", SYS_execve, "/bin/true", bad_av, NULL);
    T("execve(\"/bin/true\", argv, (void*)1)", SYS_execve, "/bin/true", av, BAD);
    T("arch_prctl(bad code)", SYS_arch_prctl, 0x9999, 0);
    T("arch_prctl(ARCH_GET_FS, (void*)1)", SYS_arch_prctl, 0x1003, BAD);
    T("prctl(bad option)", SYS_prctl, 0x7fffffff, 0, 0, 0, 0);

    printf("== signals\n");
    char sa[64] = {0};
    T("rt_sigaction(SIGKILL, act)", SYS_rt_sigaction, SIGKILL, sa, NULL, 8);
    T("rt_sigaction(SIGSTOP, act)", SYS_rt_sigaction, SIGSTOP, sa, NULL, 8);
    T("rt_sigaction(0, act)", SYS_rt_sigaction, 0, sa, NULL, 8);
    T("rt_sigaction(65, act)", SYS_rt_sigaction, 65, sa, NULL, 8);
    T("rt_sigaction(SIGUSR1, act, NULL, sigsetsize 4)", SYS_rt_sigaction, SIGUSR1, sa, NULL, 4);
    T("rt_sigaction(SIGUSR1, (void*)1)", SYS_rt_sigaction, SIGUSR1, BAD, NULL, 8);
    T("rt_sigaction(SIGUSR1, NULL, (void*)1)", SYS_rt_sigaction, SIGUSR1, NULL, BAD, 8);
    T("rt_sigaction(SIGKILL, NULL, old) (query)", SYS_rt_sigaction, SIGKILL, NULL, sa, 8);
    T("rt_sigprocmask(bad how)", SYS_rt_sigprocmask, 99, buf, NULL, 8);
    T("rt_sigprocmask(SIG_BLOCK, set, NULL, 4)", SYS_rt_sigprocmask, SIG_BLOCK, buf, NULL, 4);
    T("rt_sigprocmask(SIG_BLOCK, (void*)1)", SYS_rt_sigprocmask, SIG_BLOCK, BAD, NULL, 8);
    T("rt_sigprocmask(bad how, NULL set)", SYS_rt_sigprocmask, 99, NULL, NULL, 8);
    T("rt_sigpending((void*)1)", SYS_rt_sigpending, BAD, 8);
    T("rt_sigpending(buf, 4)", SYS_rt_sigpending, buf, 4);
    T("rt_sigsuspend(set, 4)", SYS_rt_sigsuspend, buf, 4);
    T("rt_sigtimedwait((void*)1)", SYS_rt_sigtimedwait, BAD, NULL, NULL, 8);
    struct timespec badts = {0, 2000000000L};
    memset(buf, 0, 8);
    buf[1] = 0x10; /* SIGURG, harmless */
    T("rt_sigtimedwait(set, NULL, bad timeout)", SYS_rt_sigtimedwait, buf, NULL, &badts, 8);
    T("sigaltstack((void*)1, NULL)", SYS_sigaltstack, BAD, NULL);
    stack_t ss = {.ss_sp = buf, .ss_flags = 0x1234, .ss_size = 65536};
    T("sigaltstack(bad flags)", SYS_sigaltstack, &ss, NULL);
    ss.ss_flags = 0;
    ss.ss_size = 100;
    T("sigaltstack(size 100)", SYS_sigaltstack, &ss, NULL);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_code = SI_KERNEL; /* not allowed from user space */
    c = fork();
    if (c == 0) {
        for (;;) pause();
    }
    T("rt_sigqueueinfo(child, SIGUSR1, si_code SI_KERNEL)", SYS_rt_sigqueueinfo, c, SIGUSR1, &si);
    si.si_code = SI_TKILL;
    T("rt_sigqueueinfo(child, SIGUSR1, si_code SI_TKILL)", SYS_rt_sigqueueinfo, c, SIGUSR1, &si);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);

    printf("== memory\n");
    T("mmap(len 0)", SYS_mmap, NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T("mmap(flags 0)", SYS_mmap, NULL, 4096, PROT_READ, 0, -1, 0);
    T("mmap(flags MAP_ANONYMOUS only)", SYS_mmap, NULL, 4096, PROT_READ, MAP_ANONYMOUS, -1, 0);
    T("mmap(flags SHARED|PRIVATE)", SYS_mmap, NULL, 4096, PROT_READ, MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T("mmap(fd -1 without MAP_ANONYMOUS)", SYS_mmap, NULL, 4096, PROT_READ, MAP_PRIVATE, -1, 0);
    T("mmap(pipe fd)", SYS_mmap, NULL, 4096, PROT_READ, MAP_PRIVATE, p[0], 0);
    T("mmap(unaligned offset)", SYS_mmap, NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1);
    T("mmap(MAP_FIXED at 0x1001)", SYS_mmap, 0x1001, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    T("mmap(MAP_FIXED in the kernel half)", SYS_mmap, KBAD, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    T("mmap(len 2^63)", SYS_mmap, NULL, 1UL << 63, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T("munmap(0x1001, 4096)", SYS_munmap, 0x1001, 4096);
    T("munmap(addr, 0)", SYS_munmap, 0x10000, 0);
    T("munmap(kernel half)", SYS_munmap, KBAD, 4096);
    T("mprotect(0x1001)", SYS_mprotect, 0x1001, 4096, PROT_READ);
    T("mprotect(unmapped 0x10000)", SYS_mprotect, 0x10000, 4096, PROT_READ);
    T("mprotect(bad prot bits)", SYS_mprotect, 0x10000, 4096, 0x1000);
    T("mremap(unmapped)", SYS_mremap, 0x10000, 4096, 8192, MREMAP_MAYMOVE);
    T("mremap(bad flags)", SYS_mremap, 0x10000, 4096, 8192, 0x80);
    T("mremap(new len 0)", SYS_mremap, 0x10000, 4096, 0, MREMAP_MAYMOVE);
    T("madvise(unaligned)", SYS_madvise, 0x1001, 4096, MADV_DONTNEED);
    T("madvise(bad advice)", SYS_madvise, 0x10000, 4096, 9999);
    T("madvise(unmapped, MADV_WILLNEED)", SYS_madvise, 0x10000, 4096, MADV_WILLNEED);
    T("mincore(unaligned)", SYS_mincore, 0x1001, 4096, buf);

    printf("== time\n");
    T("clock_gettime(12345, &ts)", SYS_clock_gettime, 12345, buf);
    T("clock_gettime(MONOTONIC, (void*)1)", SYS_clock_gettime, CLOCK_MONOTONIC, BAD);
    T("clock_gettime(-1, &ts)", SYS_clock_gettime, -1, buf);
    T("clock_getres(12345, &ts)", SYS_clock_getres, 12345, buf);
    T("clock_settime(MONOTONIC, ...)", SYS_clock_settime, CLOCK_MONOTONIC, buf);
    T("nanosleep((void*)1, NULL)", SYS_nanosleep, BAD, NULL);
    T("nanosleep({0, 2e9}, NULL)", SYS_nanosleep, &badts, NULL);
    T("clock_nanosleep(12345, 0, ts)", SYS_clock_nanosleep, 12345, 0, &badts, NULL);
    T("gettimeofday((void*)1, NULL)", SYS_gettimeofday, BAD, NULL);
    T("time((void*)1)", SYS_time, BAD);
    T("times((void*)1)", SYS_times, BAD);
    T("getrusage(99, buf)", SYS_getrusage, 99, buf);
    T("setitimer(99, ...)", SYS_setitimer, 99, buf, NULL);
    T("getitimer(ITIMER_REAL, (void*)1)", SYS_getitimer, ITIMER_REAL, BAD);

    printf("== futex\n");
    int fw = 1;
    T("futex(NULL, FUTEX_WAIT, 0)", SYS_futex, NULL, FUTEX_WAIT, 0, NULL, NULL, 0);
    T("futex(unaligned, FUTEX_WAIT, 0)", SYS_futex, (char *)&fw + 1, FUTEX_WAIT, 0, NULL, NULL, 0);
    T("futex(&w, FUTEX_WAIT, wrong value)", SYS_futex, &fw, FUTEX_WAIT, 0, NULL, NULL, 0);
    T("futex(&w, FUTEX_WAIT, bad timeout)", SYS_futex, &fw, FUTEX_WAIT, 1, &badts, NULL, 0);
    T("futex(&w, op 99)", SYS_futex, &fw, 99, 0, NULL, NULL, 0);
    TV("futex(&w, FUTEX_WAKE, 1) no waiters", SYS_futex, &fw, FUTEX_WAKE, 1, NULL, NULL, 0);
    T("set_robust_list(head, bad len)", SYS_set_robust_list, buf, 1);

    printf("== syscall numbers\n");
    T("syscall 999", 999);
    T("syscall 400 (unassigned)", 400);
    T("syscall 423 (unassigned)", 423);
    T("syscall 1000000", 1000000);
    T("syscall -1", -1);
    T("syscall 512 (x32 range, no x32 bit)", 512);
    T("syscall 547 (x32 range, no x32 bit)", 547);

    printf("== still alive\n");
    printf("getpid works: %s\n", syscall(SYS_getpid) == getpid() ? "yes" : "no");
    printf("done\n");
    return 0;
}
