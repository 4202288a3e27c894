/* escape.c - attempts to reach the host from inside the guest.
 *
 * Run ONLY under usermode (natively most of these succeed, by design):
 *     escape SCRATCH_DIR KERNEL_HOST_PID OTHER_HOST_PID
 * KERNEL_HOST_PID is the host pid of the usermode kernel process, and
 * OTHER_HOST_PID another host process (the test runner).
 *
 * Every attempt runs in its own child and prints one line
 *     "<attempt>: refused (<how>)"   or   "<attempt>: confined (<how>)"
 * when the guest stayed inside, and "<attempt>: ESCAPED (<how>)" when it
 * reached the host.  A child killed by a signal counts as refused.
 *
 * Attempts: the 32-bit int $0x80 entry (getpid, and kill of a host pid), x32
 * syscall numbers (getpid, kill), io_uring_setup, ptrace of the parent, of the
 * kernel and of a host process, kill of the kernel and of a host pid,
 * process_vm_readv/writev against the kernel and against pid 1, reading the
 * kernel's memory and command line through /proc/<kernel pid>/, host file
 * descriptors 3..63 (fcntl, fstat, read, mmap), and clone(CLONE_UNTRACED)
 * whose child then checks whether it can see the host, and rewriting the stub page
 * through which the kernel injects calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define X32 0x40000000L

static long kpid, hpid, ppid0;
static volatile long secret = 0x5ec12e7;

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static FILE *out; /* the child's report pipe */

static void report(const char *verdict, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const char *verdict, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(out, "%s (", verdict);
    vfprintf(out, fmt, ap);
    fprintf(out, ")");
    va_end(ap);
}

/* errno values that mean "the guest kernel said no" for a host target */
static int is_refusal(int e) {
    return e == ESRCH || e == EPERM || e == ENOSYS || e == EACCES || e == ENOENT || e == EBADF;
}

static void refused_or_escaped(long r, const char *what) {
    if (r < 0 && is_refusal(errno))
        report("refused", "%s -1 %s", what, ename(errno));
    else if (r < 0)
        report("ESCAPED", "%s -1 %s: the host kernel acted on it", what, ename(errno));
    else
        report("ESCAPED", "%s returned %ld", what, r);
}

static long int80(long nr, long a, long b) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b) : "memory");
    return r;
}

/* ---- attempts, each run in a child ---- */

static void a_int80_getpid(void) {
    long r = int80(20, 0, 0); /* __NR_getpid (i386) */
    if (r < 0)
        report("refused", "returned -%s", ename((int)-r));
    else if (r == getpid())
        report("ESCAPED", "32-bit entry served (guest pid)");
    else
        report("ESCAPED", "32-bit entry reached the host (host pid)");
}

static void a_int80_kill(void) {
    long r = int80(37, hpid, 0); /* __NR_kill (i386) */
    if (r < 0)
        report("refused", "returned -%s", ename((int)-r));
    else
        report("ESCAPED", "kill(host pid, 0) returned %ld", r);
}

static void a_x32_getpid(void) {
    errno = 0;
    long r = syscall(X32 | 39);
    if (r < 0 && errno == ENOSYS)
        report("refused", "-1 ENOSYS");
    else if (r < 0)
        report("refused", "-1 %s", ename(errno));
    else
        report("ESCAPED", "x32 getpid returned a pid");
}

static void a_x32_kill(void) {
    errno = 0;
    long r = syscall(X32 | 62, hpid, 0);
    refused_or_escaped(r, "x32 kill(host pid, 0)");
}

static void a_io_uring(void) {
    char params[120];
    memset(params, 0, sizeof params);
    errno = 0;
    long r = syscall(425, 8, params); /* io_uring_setup */
    if (r < 0 && (errno == ENOSYS || errno == EPERM))
        report("refused", "-1 %s", ename(errno));
    else if (r < 0)
        report("refused", "-1 %s (unexpected errno)", ename(errno));
    else
        report("ESCAPED", "io_uring fd %ld", r);
}

static void a_ptrace_parent(void) {
    errno = 0;
    /* our parent is the guest's pid 1: attaching may be emulated or
     * refused, but must not stop a host process */
    long r = ptrace(PTRACE_SEIZE, getppid(), 0, 0);
    if (r < 0)
        report("refused", "-1 %s", ename(errno));
    else
        report("confined", "guest-level ptrace of the guest parent");
}

static void a_ptrace_kernel(void) {
    errno = 0;
    long r = ptrace(PTRACE_SEIZE, (pid_t)kpid, 0, 0);
    refused_or_escaped(r, "PTRACE_SEIZE kernel");
}

static void a_ptrace_host(void) {
    errno = 0;
    long r = ptrace(PTRACE_SEIZE, (pid_t)hpid, 0, 0);
    refused_or_escaped(r, "PTRACE_SEIZE host pid");
}

static void a_ptrace_attach_ppid0(void) {
    /* as the guest's init, getppid() is 0; anything else is a host pid
     * leaking in, and is not attached to (that would stop it) */
    if (ppid0 != 0) {
        report("ESCAPED", "guest init sees a parent pid");
        return;
    }
    errno = 0;
    long r = syscall(SYS_ptrace, PTRACE_ATTACH, ppid0, 0, 0);
    if (r < 0)
        report("refused", "-1 %s", ename(errno));
    else
        report("ESCAPED", "PTRACE_ATTACH(getppid()) succeeded");
}

static void a_kill_kernel(void) {
    errno = 0;
    refused_or_escaped(kill((pid_t)kpid, 0), "kill(kernel, 0)");
}

static void a_kill_host(void) {
    errno = 0;
    refused_or_escaped(kill((pid_t)hpid, 0), "kill(host pid, 0)");
}

static void a_tgkill_host(void) {
    errno = 0;
    refused_or_escaped(syscall(SYS_tgkill, hpid, hpid, 0), "tgkill(host pid, host pid, 0)");
}

static void a_vm_readv_kernel(void) {
    char b[8];
    struct iovec l = {b, sizeof b}, r = {NULL, sizeof b};
    errno = 0;
    refused_or_escaped(process_vm_readv((pid_t)kpid, &l, 1, &r, 1, 0), "process_vm_readv(kernel)");
}

static void a_vm_writev_kernel(void) {
    char b[8] = {0};
    /* remote address NULL: even if it reached the host nothing is written */
    struct iovec l = {b, sizeof b}, r = {NULL, sizeof b};
    errno = 0;
    refused_or_escaped(process_vm_writev((pid_t)kpid, &l, 1, &r, 1, 0), "process_vm_writev(kernel)");
}

static void a_vm_readv_init(void) {
    /* guest pid 1 is this program's parent (run as init): reading its
     * `secret` may be emulated (confined) or refused; anything else came from
     * the host's pid 1 */
    long v = 0;
    struct iovec l = {&v, sizeof v}, r = {(void *)&secret, sizeof v};
    errno = 0;
    long n = process_vm_readv(1, &l, 1, &r, 1, 0);
    if (n < 0 && is_refusal(errno))
        report("refused", "-1 %s", ename(errno));
    else if (n == (long)sizeof v && v == secret)
        report("confined", "read guest pid 1's memory");
    else if (n < 0)
        report("ESCAPED", "-1 %s: the host's pid 1 was looked at", ename(errno));
    else
        report("ESCAPED", "read host pid 1's memory");
}

static void a_proc_mem(void) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/mem", kpid);
    int fd = open(p, O_RDONLY);
    if (fd < 0) {
        report("refused", "open -1 %s", ename(errno));
        return;
    }
    /* find a readable address from maps */
    snprintf(p, sizeof p, "/proc/%ld/maps", kpid);
    FILE *m = fopen(p, "r");
    unsigned long lo = 0;
    if (m && fscanf(m, "%lx-", &lo) == 1) {
        char b[16];
        ssize_t n = pread(fd, b, sizeof b, (off_t)lo);
        if (n > 0)
            report("ESCAPED", "read %zd bytes of the kernel's memory", n);
        else
            report("refused", "opened, but read -1 %s", ename(errno));
    } else {
        report("ESCAPED", "opened the kernel's mem file");
    }
}

static void a_proc_cmdline(void) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/cmdline", kpid);
    int fd = open(p, O_RDONLY);
    if (fd < 0) {
        report("refused", "open -1 %s", ename(errno));
        return;
    }
    char b[256];
    ssize_t n = read(fd, b, sizeof b);
    if (n > 0)
        report("ESCAPED", "read the kernel's command line");
    else
        report("refused", "opened, read %zd", n);
}

static void a_host_fds(void) {
    int leaked = 0, first = -1;
    for (int fd = 3; fd < 64; fd++) {
        if (fd == fileno(out)) continue; /* our own report pipe */
        struct stat st;
        char b;
        int hit = fcntl(fd, F_GETFD) >= 0 || syscall(SYS_fstat, fd, &st) == 0 ||
                  syscall(SYS_read, fd, &b, 0) == 0;
        void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            hit = 1;
            munmap(m, 4096);
        } else if (errno != EBADF) {
            hit = 1;
        }
        if (hit) {
            leaked++;
            if (first < 0) first = fd;
        }
    }
    if (leaked == 0)
        report("refused", "fds 3..63 all EBADF");
    else
        report("ESCAPED", "%d descriptors usable, first %d", leaked, first);
}

static void a_clone_untraced(void) {
    fflush(out);
    errno = 0;
    long c = syscall(SYS_clone, (long)(CLONE_UNTRACED | SIGCHLD), 0L, NULL, NULL, 0L);
    if (c < 0) {
        report("refused", "clone -1 %s", ename(errno));
        return;
    }
    if (c == 0) {
        /* if this child runs untraced on the host, it can see host pids */
        long r = syscall(SYS_kill, hpid, 0);
        _exit(r == 0 ? 100 : 0);
    }
    int st;
    waitpid((pid_t)c, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 100)
        report("ESCAPED", "the CLONE_UNTRACED child saw the host");
    else
        report("confined", "the child stayed in the guest");
}

/* usermode injects calls into a stopped guest task through the stub's `syscall; int3`
 * page. Rewrite that page so the next injected call runs a call of our choosing (kill of
 * the kernel's host pid, which the filter traps and only an injected call would be let
 * through), then make the kernel inject (mmap of a file). Sealed, the page refuses to
 * become writable; otherwise the kernel must kill us rather than run it. */
static const char *self_path;
static void a_stub_rewrite(void) {
    unsigned char *page = (unsigned char *)0x3FF000001000UL;
    if (mprotect(page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
        report("refused", "mprotect of the stub page -1 %s", ename(errno));
        return;
    }
    unsigned char code[] = {0x48, 0xc7, 0xc0, SYS_kill, 0, 0, 0,   /* mov rax, SYS_kill */
                            0x48, 0xbf, 0, 0, 0, 0, 0, 0, 0, 0,   /* movabs rdi, kpid */
                            0x31, 0xf6, 0x0f, 0x05, 0xcc};        /* xor esi,esi; syscall; int3 */
    memcpy(code + 9, &kpid, 8);
    memcpy(page, code, sizeof code);
    int fd = open(self_path, O_RDONLY);
    void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    report("ESCAPED", "the kernel ran the rewritten stub and went on (mmap %s)",
           m == MAP_FAILED ? ename(errno) : "ok");
}

struct attempt {
    const char *name;
    void (*fn)(void);
};

static const struct attempt attempts[] = {
    {"host fds 3..63", a_host_fds},
    {"int $0x80 getpid", a_int80_getpid},
    {"int $0x80 kill(host pid)", a_int80_kill},
    {"x32 getpid", a_x32_getpid},
    {"x32 kill(host pid)", a_x32_kill},
    {"io_uring_setup", a_io_uring},
    {"ptrace(PTRACE_ATTACH, getppid())", a_ptrace_attach_ppid0},
    {"ptrace seize guest parent", a_ptrace_parent},
    {"ptrace seize the kernel", a_ptrace_kernel},
    {"ptrace seize a host pid", a_ptrace_host},
    {"kill the kernel", a_kill_kernel},
    {"kill a host pid", a_kill_host},
    {"tgkill a host pid", a_tgkill_host},
    {"process_vm_readv kernel", a_vm_readv_kernel},
    {"process_vm_writev kernel", a_vm_writev_kernel},
    {"process_vm_readv pid 1", a_vm_readv_init},
    {"/proc/<kernel>/mem", a_proc_mem},
    {"/proc/<kernel>/cmdline", a_proc_cmdline},
    {"clone(CLONE_UNTRACED)", a_clone_untraced},
    {"rewrite the stub's code", a_stub_rewrite},
};

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4) {
        fprintf(stderr, "usage: escape SCRATCH_DIR KERNEL_HOST_PID OTHER_HOST_PID\n");
        return 2;
    }
    self_path = argv[0];
    kpid = atol(argv[2]);
    hpid = atol(argv[3]);
    ppid0 = getppid();
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        int p[2];
        if (pipe(p) < 0) return 2;
        fflush(stdout);
        pid_t c = fork();
        if (c < 0) {
            printf("%s: cannot fork: %s\n", attempts[i].name, ename(errno));
            continue;
        }
        if (c == 0) {
            close(p[0]);
            out = fdopen(p[1], "w");
            attempts[i].fn();
            fclose(out);
            _exit(0);
        }
        close(p[1]);
        char line[512] = {0};
        ssize_t n = 0, k;
        while (n < (ssize_t)sizeof line - 1 && (k = read(p[0], line + n, sizeof line - 1 - n)) > 0) n += k;
        close(p[0]);
        int st;
        waitpid(c, &st, 0);
        if (n > 0)
            printf("%s: %s\n", attempts[i].name, line);
        else if (WIFSIGNALED(st))
            printf("%s: refused (killed by signal %d)\n", attempts[i].name, WTERMSIG(st));
        else
            printf("%s: no report (status %#x)\n", attempts[i].name, st);
    }
    printf("done\n");
    return 0;
}
