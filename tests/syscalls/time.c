/* time.c - clocks and sleeping.
 *
 * Covers: clock_gettime for REALTIME, MONOTONIC, BOOTTIME, the coarse
 * clocks, PROCESS_CPUTIME_ID and THREAD_CPUTIME_ID, both through libc (vDSO)
 * and through the raw syscall; MONOTONIC never goes backwards over 10000
 * reads; clock_getres; CPU time advances with work; gettimeofday and time()
 * agree with CLOCK_REALTIME within a second (libc and raw); nanosleep 50 ms
 * takes >= 50 ms; clock_nanosleep relative and TIMER_ABSTIME; a sleep of 0;
 * nanosleep/clock_nanosleep errors (EINVAL for a bad tv_nsec, a negative
 * time, an unknown clock; EFAULT); getrusage and times() sanity.
 *
 * Usage: time SCRATCH_DIR (unused)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>

#define YN(c) ((c) ? "yes" : "no")
#define P(label, cond) printf("%s: %s\n", label, YN(cond))

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec; }

static int64_t now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return ns(t);
}

static volatile double sink;
static void burn(int ms) {
    int64_t end = now(CLOCK_MONOTONIC) + (int64_t)ms * 1000000;
    while (now(CLOCK_MONOTONIC) < end)
        for (int i = 0; i < 1000; i++) sink += i * 0.5;
}

static void clocks(void) {
    printf("== clock_gettime\n");
    struct { clockid_t id; const char *name; } cl[] = {
        {CLOCK_REALTIME, "REALTIME"},
        {CLOCK_MONOTONIC, "MONOTONIC"},
        {CLOCK_BOOTTIME, "BOOTTIME"},
        {CLOCK_MONOTONIC_RAW, "MONOTONIC_RAW"},
        {CLOCK_REALTIME_COARSE, "REALTIME_COARSE"},
        {CLOCK_MONOTONIC_COARSE, "MONOTONIC_COARSE"},
        {CLOCK_PROCESS_CPUTIME_ID, "PROCESS_CPUTIME_ID"},
        {CLOCK_THREAD_CPUTIME_ID, "THREAD_CPUTIME_ID"},
    };
    for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++) {
        struct timespec a = {-1, -1}, b = {-1, -1};
        int r1 = clock_gettime(cl[i].id, &a);
        int r2 = (int)syscall(SYS_clock_gettime, cl[i].id, &b);
        int sane = a.tv_sec >= 0 && a.tv_nsec >= 0 && a.tv_nsec < 1000000000L && b.tv_nsec >= 0 &&
                   b.tv_nsec < 1000000000L;
        int ordered = ns(b) >= ns(a);
        if (cl[i].id == CLOCK_REALTIME_COARSE || cl[i].id == CLOCK_MONOTONIC_COARSE)
            ordered = ns(b) + 20000000 >= ns(a); /* coarse clocks tick late */
        printf("%s: libc %d raw %d sane %s raw>=libc %s\n", cl[i].name, r1, r2, YN(sane), YN(ordered));
        struct timespec res = {0, 0};
        int r3 = clock_getres(cl[i].id, &res);
        printf("  getres %d, res>0 %s, res<=10ms %s\n", r3, YN(ns(res) > 0), YN(ns(res) <= 10000000));
    }
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC, &res);
    printf("MONOTONIC resolution: %lld ns\n", (long long)ns(res));

    int back = 0;
    int64_t prev = now(CLOCK_MONOTONIC);
    for (int i = 0; i < 10000; i++) {
        int64_t t = now(CLOCK_MONOTONIC);
        if (t < prev) back++;
        prev = t;
    }
    printf("MONOTONIC went backwards: %d times in 10000 reads\n", back);
    back = 0;
    struct timespec t0;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t0);
    prev = ns(t0);
    for (int i = 0; i < 200; i++) {
        struct timespec t;
        syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
        if (ns(t) < prev) back++;
        prev = ns(t);
    }
    printf("raw MONOTONIC went backwards: %d times in 200 reads\n", back);
    P("BOOTTIME >= MONOTONIC", now(CLOCK_BOOTTIME) >= now(CLOCK_MONOTONIC) - 1000000);

    /* work until both CPU clocks advanced 20 ms (at most 10 s of wall time,
     * so a loaded machine only makes it slower, not different) */
    int64_t c0 = now(CLOCK_PROCESS_CPUTIME_ID), t0c = now(CLOCK_THREAD_CPUTIME_ID);
    int64_t w0 = now(CLOCK_MONOTONIC);
    while ((now(CLOCK_PROCESS_CPUTIME_ID) - c0 < 20000000 || now(CLOCK_THREAD_CPUTIME_ID) - t0c < 20000000) &&
           now(CLOCK_MONOTONIC) - w0 < 10000000000LL)
        burn(5);
    int64_t c1 = now(CLOCK_PROCESS_CPUTIME_ID), t1c = now(CLOCK_THREAD_CPUTIME_ID);
    P("process CPU time advanced >= 20ms with work", c1 - c0 >= 20000000);
    P("thread CPU time advanced >= 20ms", t1c - t0c >= 20000000);
    P("CPU time did not outrun wall time", c1 - c0 <= now(CLOCK_MONOTONIC) - w0 + 10000000);
    struct rusage ru;
    P("getrusage(SELF) ok", getrusage(RUSAGE_SELF, &ru) == 0);
    P("ru_utime+ru_stime > 0", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec > 0);
    {   /* ru_maxrss of a live process: its peak so far, at least what it touched */
        size_t n = 8 << 20;
        volatile char *big = malloc(n);
        for (size_t i = 0; i < n; i += 4096)
            big[i] = 1;
        getrusage(RUSAGE_SELF, &ru);
        P("ru_maxrss(SELF) >= 8 MiB touched", ru.ru_maxrss >= 8192);
        getrusage(RUSAGE_THREAD, &ru);
        P("ru_maxrss(THREAD) >= 8 MiB touched", ru.ru_maxrss >= 8192);
        free((void *)big);
    }
    struct tms tm;
    clock_t tk = times(&tm);
    P("times() returns >= 0", tk != (clock_t)-1);
    P("sysconf(_SC_CLK_TCK)==100", sysconf(_SC_CLK_TCK) == 100);
}

static void wallclock(void) {
    printf("== wall clock\n");
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    struct timeval tv;
    P("gettimeofday ok", gettimeofday(&tv, NULL) == 0);
    time_t t = time(NULL);
    time_t t2;
    time(&t2);
    P("gettimeofday within 1s of REALTIME", llabs((long long)tv.tv_sec - (long long)rt.tv_sec) <= 1);
    P("tv_usec in range", tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    P("time() within 1s of REALTIME", llabs((long long)t - (long long)rt.tv_sec) <= 1);
    P("time(&t) stores the same", llabs((long long)t2 - (long long)t) <= 1);
    struct timeval rtv;
    P("raw gettimeofday ok", syscall(SYS_gettimeofday, &rtv, NULL) == 0);
    P("raw gettimeofday within 1s", llabs((long long)rtv.tv_sec - (long long)rt.tv_sec) <= 1);
    time_t rawt = (time_t)syscall(SYS_time, NULL);
    P("raw time within 1s", llabs((long long)rawt - (long long)rt.tv_sec) <= 1);
    P("after 2020", rt.tv_sec > 1577836800);
    struct timezone tz;
    P("gettimeofday with timezone ok", gettimeofday(&tv, &tz) == 0);
}

static void sleeps(void) {
    printf("== sleeping\n");
    int64_t a = now(CLOCK_MONOTONIC);
    struct timespec d = {0, 50000000}, rem = {9, 9};
    int r = nanosleep(&d, &rem);
    int64_t el = now(CLOCK_MONOTONIC) - a;
    printf("nanosleep 50ms: %d, took >= 50ms: %s, < 5s: %s\n", r, YN(el >= 50000000), YN(el < 5000000000LL));
    a = now(CLOCK_MONOTONIC);
    r = (int)syscall(SYS_nanosleep, &d, NULL);
    el = now(CLOCK_MONOTONIC) - a;
    printf("raw nanosleep 50ms: %d, took >= 50ms: %s\n", r, YN(el >= 50000000));
    a = now(CLOCK_MONOTONIC);
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL);
    el = now(CLOCK_MONOTONIC) - a;
    printf("clock_nanosleep relative 50ms: %d, took >= 50ms: %s\n", r, YN(el >= 50000000));
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_nsec += 80000000;
    if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
    P("clock_nanosleep TIMER_ABSTIME returns 0", r == 0);
    P("woke at or after the deadline", now(CLOCK_MONOTONIC) >= ns(dl));
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += 30000000;
    if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
    r = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &dl, NULL);
    P("REALTIME absolute sleep returns 0", r == 0);
    struct timespec past = {1, 0};
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL);
    P("absolute deadline in the past returns at once", r == 0);
    struct timespec z = {0, 0};
    P("nanosleep(0) returns 0", nanosleep(&z, NULL) == 0);
    P("usleep(10000) returns 0", usleep(10000) == 0);
    P("sleep(0) returns 0", sleep(0) == 0);
    a = now(CLOCK_MONOTONIC);
    sleep(1);
    el = now(CLOCK_MONOTONIC) - a;
    P("sleep(1) took >= 1s", el >= 1000000000LL);

    printf("== errors\n");
    struct timespec bad = {0, 1000000000L};
    errno = 0;
    r = nanosleep(&bad, NULL);
    printf("nanosleep tv_nsec=1e9: %d %s\n", r, ename(errno));
    struct timespec neg = {-1, 0};
    errno = 0;
    r = nanosleep(&neg, NULL);
    printf("nanosleep tv_sec=-1: %d %s\n", r, ename(errno));
    struct timespec negns = {0, -5};
    errno = 0;
    r = nanosleep(&negns, NULL);
    printf("nanosleep tv_nsec=-5: %d %s\n", r, ename(errno));
    errno = 0;
    r = (int)syscall(SYS_nanosleep, (void *)1, NULL);
    printf("nanosleep bad pointer: %d %s\n", r, ename(errno));
    printf("clock_nanosleep bad clock: %s\n", ename(clock_nanosleep(12345, 0, &d, NULL)));
    printf("clock_nanosleep bad flags tv_nsec: %s\n", ename(clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL)));
    printf("clock_nanosleep THREAD_CPUTIME: %s\n", ename(clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &d, NULL)));
    errno = 0;
    r = (int)syscall(SYS_clock_gettime, 12345, &d);
    printf("clock_gettime bad clock: %d %s\n", r, ename(errno));
    errno = 0;
    r = (int)syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)1);
    printf("clock_gettime bad pointer: %d %s\n", r, ename(errno));
    errno = 0;
    r = (int)syscall(SYS_clock_getres, 12345, &d);
    printf("clock_getres bad clock: %d %s\n", r, ename(errno));
    r = (int)syscall(SYS_clock_getres, CLOCK_MONOTONIC, NULL);
    printf("clock_getres NULL res: %d\n", r);
    errno = 0;
    r = (int)syscall(SYS_gettimeofday, (void *)1, NULL);
    printf("gettimeofday bad pointer: %d %s\n", r, ename(errno));
    errno = 0;
    long tr = syscall(SYS_time, (void *)1);
    printf("time bad pointer: %ld %s\n", tr < 0 ? -1L : 0L, tr < 0 ? ename(errno) : "stored");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    clocks();
    wallclock();
    sleeps();
    printf("done\n");
    return 0;
}
