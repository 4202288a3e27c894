/* proc_basic.c - identity and per-process resources.
 *
 * Covers: getpid/getppid/gettid relations (also after fork), the process
 * group / session calls, uname sysname+machine, the uid/gid family
 * (including dropping privileges in a child), umask, getrlimit/setrlimit/
 * prlimit (RLIMIT_NOFILE, RLIMIT_STACK, and prlimit on another process),
 * EMFILE at the NOFILE limit, sysinfo sanity and getrandom.
 *
 * Output is deterministic: only relations and fixed values are printed, never
 * raw pids, addresses or times.  The suite runs as root (as CI does): uid and
 * gid values are printed.  argv[1] (a scratch directory) is not used.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
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
        printf("%s: ok\n", label);
}

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

/* Run fn in a child; its output is printed before the parent continues. */
static int in_child(void (*fn)(void)) {
    fflush(stdout);
    pid_t c = fork();
    if (c < 0) { perror("fork"); exit(2); }
    if (c == 0) { fn(); fflush(stdout); _exit(0); }
    int st;
    if (waitpid(c, &st, 0) != c) { perror("waitpid"); exit(2); }
    return st;
}

static void ids(void) {
    printf("== ids\n");
    pid_t pid = getpid(), ppid = getppid();
    P("getpid>0", pid > 0);
    P("getppid>=0", ppid >= 0);
    P("getppid!=getpid", ppid != pid);
    P("gettid==getpid in main thread", gettid_() == pid);
    P("raw SYS_getpid==getpid", syscall(SYS_getpid) == pid);
    P("raw SYS_getppid==getppid", syscall(SYS_getppid) == ppid);

    int fd[2];
    if (pipe(fd) < 0) { perror("pipe"); exit(2); }
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        int r[4];
        r[0] = getppid() == pid;
        r[1] = getpid() != pid;
        r[2] = gettid_() == getpid();
        r[3] = getpid() > 0;
        if (write(fd[1], r, sizeof r) != sizeof r) _exit(3);
        _exit(0);
    }
    int r[4], st;
    close(fd[1]);
    ssize_t n = read(fd[0], r, sizeof r);
    close(fd[0]);
    P("fork returned >0 in parent", c > 0);
    P("child read ok", n == sizeof r);
    P("child: getppid==parent pid", r[0]);
    P("child: getpid!=parent pid", r[1]);
    P("child: gettid==getpid", r[2]);
    P("child: getpid>0", r[3]);
    P("waitpid returns the fork value", waitpid(c, &st, 0) == c);
    P("child exited 0", WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void session_child(void) {
    pid_t me = getpid();
    pid_t s = setsid();
    P("setsid returns own pid", s == me);
    P("getsid(0)==pid after setsid", getsid(0) == me);
    P("getpgid(0)==pid after setsid", getpgid(0) == me);
    P("getpgrp()==pid after setsid", getpgrp() == me);
    errno = 0;
    res("setsid again (leader)", setsid());
    res("setpgid(0,0) as session leader", setpgid(0, 0));
    /* a grandchild in the new session: its own group */
    fflush(stdout);
    pid_t g = fork();
    if (g == 0) {
        int ok = getsid(0) == me && getpgid(0) == me;
        printf("grandchild inherits sid and pgid: %s\n", YN(ok));
        ok = setpgid(0, 0) == 0 && getpgid(0) == getpid() && getsid(0) == me;
        printf("grandchild setpgid(0,0) makes own group: %s\n", YN(ok));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(g, &st, 0);
}

static void sessions(void) {
    printf("== sessions and groups\n");
    pid_t pg = getpgid(0);
    P("getpgid(0)==getpgrp()", pg == getpgrp());
    P("getpgid(getpid())==getpgid(0)", getpgid(getpid()) == pg);
    P("getsid(getpid())==getsid(0)", getsid(getpid()) == getsid(0));
    errno = 0;
    res("getpgid(nonexistent)", getpgid(NOPID));
    res("getsid(nonexistent)", getsid(NOPID));
    res("setpgid(nonexistent,0)", setpgid(NOPID, 0));

    int fd[2];
    pipe(fd);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        close(fd[1]);
        char b;
        read(fd[0], &b, 1); /* parent has moved us to our own group */
        int ok = getpgid(0) == getpid();
        printf("child sees the group the parent set: %s\n", YN(ok));
        fflush(stdout);
        _exit(0);
    }
    close(fd[0]);
    P("child inherited parent's pgid", getpgid(c) == pg);
    P("parent setpgid(child, child)", setpgid(c, c) == 0);
    P("getpgid(child)==child", getpgid(c) == c);
    write(fd[1], "x", 1);
    close(fd[1]);
    int st;
    waitpid(c, &st, 0);
    in_child(session_child);
}

static void uts(void) {
    printf("== uname\n");
    struct utsname u;
    P("uname ok", uname(&u) == 0);
    printf("sysname: %s\n", u.sysname);
    printf("machine: %s\n", u.machine);
    P("release starts with a digit", u.release[0] >= '0' && u.release[0] <= '9');
    P("version nonempty", u.version[0] != 0);
    P("nodename nonempty", u.nodename[0] != 0);
}

static void drop_privs(void) {
    res("setgroups(0,NULL)", setgroups(0, NULL));
    res("setresgid(1000,1000,1000)", setresgid(1000, 1000, 1000));
    res("setresuid(1000,1001,1002)", setresuid(1000, 1001, 1002));
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    printf("getresuid: %d %d %d\n", (int)r, (int)e, (int)s);
    printf("getuid/geteuid: %d %d\n", (int)getuid(), (int)geteuid());
    gid_t gr, ge, gs;
    getresgid(&gr, &ge, &gs);
    printf("getresgid: %d %d %d\n", (int)gr, (int)ge, (int)gs);
    res("setuid(0) unprivileged", setuid(0));
    res("setresuid(-1,1000,-1) (to ruid)", setresuid(-1, 1000, -1));
    printf("geteuid: %d\n", (int)geteuid());
    res("setgid(0) unprivileged", setgid(0));
    res("kill(parent,0) as other uid", kill(getppid(), 0));
    printf("getgroups count: %d\n", getgroups(0, NULL));
}

static void creds(void) {
    printf("== credentials\n");
    printf("uid %d euid %d gid %d egid %d\n", (int)getuid(), (int)geteuid(),
           (int)getgid(), (int)getegid());
    uid_t r, e, s;
    P("getresuid ok", getresuid(&r, &e, &s) == 0);
    P("getresuid == getuid/geteuid", r == getuid() && e == geteuid());
    gid_t gr, ge, gs;
    P("getresgid ok", getresgid(&gr, &ge, &gs) == 0);
    P("getresgid == getgid/getegid", gr == getgid() && ge == getegid());
    int n = getgroups(0, NULL);
    P("getgroups(0) >= 0", n >= 0);
    in_child(drop_privs);
    P("parent still uid 0 after child dropped", getuid() == 0 && geteuid() == 0);

    mode_t old = umask(027);
    (void)old;
    P("umask returns the previous mask", umask(022) == 027);
    P("umask(022) then umask reads 022", umask(022) == 022);
}

static void emfile_child(void) {
    struct rlimit rl = {16, 16};
    res("setrlimit(NOFILE,16)", setrlimit(RLIMIT_NOFILE, &rl));
    int n = 0, fd;
    while ((fd = dup(0)) >= 0) n++;
    int e = errno, used = 0;
    for (int i = 0; i < 64; i++) used += fcntl(i, F_GETFD) >= 0;
    printf("dup until failure: errno %s, fds in use %d, dups made>0: %s\n",
           ename(e), used, YN(n > 0));
    res("open at the limit", open("/", O_RDONLY));
    res("dup2(0, 16) above the limit", dup2(0, 16));
    res("dup2(0, 15) below the limit", dup2(0, 15));
}

static void limits(void) {
    printf("== rlimits\n");
    struct rlimit a, b;
    P("getrlimit(NOFILE) ok", getrlimit(RLIMIT_NOFILE, &a) == 0);
    P("NOFILE cur>0", a.rlim_cur > 0);
    P("NOFILE cur<=max", a.rlim_cur <= a.rlim_max);
    P("prlimit(0,NOFILE) ok", prlimit(0, RLIMIT_NOFILE, NULL, &b) == 0);
    P("prlimit == getrlimit", a.rlim_cur == b.rlim_cur && a.rlim_max == b.rlim_max);
    P("raw prlimit64(getpid) ok",
      syscall(SYS_prlimit64, getpid(), RLIMIT_NOFILE, NULL, &b) == 0 &&
          b.rlim_cur == a.rlim_cur);
    P("getrlimit(STACK) ok", getrlimit(RLIMIT_STACK, &a) == 0);
    P("STACK cur>0", a.rlim_cur > 0);
    P("STACK cur<=max", a.rlim_cur <= a.rlim_max);

    struct rlimit nf;
    getrlimit(RLIMIT_NOFILE, &nf);
    struct rlimit lo = {64, nf.rlim_max};
    P("setrlimit(NOFILE cur=64)", setrlimit(RLIMIT_NOFILE, &lo) == 0);
    getrlimit(RLIMIT_NOFILE, &a);
    P("getrlimit shows cur=64", a.rlim_cur == 64 && a.rlim_max == nf.rlim_max);
    struct rlimit bad = {a.rlim_max, 64};
    if (a.rlim_max > 64) {
        errno = 0;
        res("setrlimit cur>max", setrlimit(RLIMIT_NOFILE, &bad));
    } else {
        printf("setrlimit cur>max: -1 EINVAL\n");
    }
    struct rlimit old;
    P("prlimit set+get old in one call",
      prlimit(0, RLIMIT_NOFILE, &nf, &old) == 0 && old.rlim_cur == 64);
    getrlimit(RLIMIT_NOFILE, &a);
    P("restored", a.rlim_cur == nf.rlim_cur);

    /* prlimit on a child process */
    int p2c[2], c2p[2];
    pipe(p2c);
    pipe(c2p);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char x;
        read(p2c[0], &x, 1);
        struct rlimit r;
        getrlimit(RLIMIT_NOFILE, &r);
        long v = (long)r.rlim_cur;
        write(c2p[1], &v, sizeof v);
        _exit(0);
    }
    struct rlimit cl = {100, nf.rlim_max};
    P("prlimit(child, NOFILE=100)", prlimit(c, RLIMIT_NOFILE, &cl, NULL) == 0);
    struct rlimit cg;
    P("prlimit(child) reads back 100",
      prlimit(c, RLIMIT_NOFILE, NULL, &cg) == 0 && cg.rlim_cur == 100);
    write(p2c[1], "x", 1);
    long v = 0;
    read(c2p[0], &v, sizeof v);
    P("child sees NOFILE=100", v == 100);
    int st;
    waitpid(c, &st, 0);
    close(p2c[0]); close(p2c[1]); close(c2p[0]); close(c2p[1]);
    errno = 0;
    res("prlimit(nonexistent)", prlimit(NOPID, RLIMIT_NOFILE, NULL, &cg));
    in_child(emfile_child);
}

static void sysinfo_(void) {
    printf("== sysinfo\n");
    struct sysinfo si;
    memset(&si, 0, sizeof si);
    P("sysinfo ok", sysinfo(&si) == 0);
    P("totalram>0", si.totalram > 0);
    P("mem_unit>=1", si.mem_unit >= 1);
    P("freeram<=totalram", si.freeram <= si.totalram);
    P("procs>=1", si.procs >= 1);
    P("uptime>=0", si.uptime >= 0);
    P("get_nprocs()>=1", get_nprocs() >= 1);
}

static void random_(void) {
    printf("== getrandom\n");
    unsigned char a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    printf("getrandom(16): %zd\n", getrandom(a, 16, 0));
    printf("getrandom(64,NONBLOCK): %zd\n", getrandom(b, 64, GRND_NONBLOCK));
    printf("getrandom(0): %zd\n", getrandom(a, 0, 0));
    P("two draws differ", memcmp(a, b, 16) != 0);
    static unsigned char big[4096];
    printf("getrandom(4096): %zd\n", getrandom(big, sizeof big, 0));
    int nz = 0;
    for (size_t i = 0; i < sizeof big; i++) nz += big[i] != 0;
    P("4096 bytes mostly nonzero", nz > 3500);
    errno = 0;
    res("getrandom bad flags", getrandom(a, 16, 0x1000));
}

/* /proc/self/auxv: what the loader put on the stack, as getauxval sees it */
static void auxv_(void) {
    printf("== auxv\n");
    unsigned long v[2 * 64];
    int fd = open("/proc/self/auxv", O_RDONLY);
    P("auxv opens", fd >= 0);
    if (fd < 0) return;
    ssize_t n = read(fd, v, sizeof v);
    close(fd);
    P("whole pairs", n > 0 && n % 16 == 0);
    int pairs = (int)(n / 16), same = 1, null_last = pairs > 0 && v[2 * (pairs - 1)] == 0;
    for (int i = 0; i < pairs - 1; i++)     /* glibc answers the HWCAPs from its own copy */
        if (v[2 * i] != AT_HWCAP && v[2 * i] != AT_HWCAP2 && getauxval(v[2 * i]) != v[2 * i + 1])
            same = 0;
    P("every entry as getauxval says", same);
    P("ends with AT_NULL", null_last);
    printf("AT_PAGESZ %lu\n", getauxval(AT_PAGESZ));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    ids();
    sessions();
    uts();
    creds();
    limits();
    sysinfo_();
    random_();
    auxv_();
    printf("done\n");
    return 0;
}
