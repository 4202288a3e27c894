/* vfork_exec.c - vfork and execve.
 *
 * Covers: vfork (shared memory, parent suspended until the child execs or
 * exits), vfork+execve of /bin/true, /bin/false, /bin/sh -c and of this
 * program, exit statuses propagated; execve errors as Linux gives them
 * (ENOENT, ENOTDIR, EACCES for a non-executable file and a directory,
 * ENOEXEC for garbage, an empty file and an ELF for another machine, ENOENT
 * for a missing #! interpreter); #! scripts (via /bin/sh, via this program
 * with an optional argument that contains spaces, and nested #!); argv[0]
 * and envp passed through; close-on-exec; signal dispositions and the mask
 * across exec; the old address space gone after exec; the initial stack and
 * auxv (alignment, AT_PAGESZ, AT_EXECFN, AT_RANDOM, AT_PHDR, AT_ENTRY ...);
 * and a program that execs itself 100 times counting down in argv.
 *
 * Usage: vfork_exec SCRATCH_DIR          (the test; argv[0] must be absolute)
 *        vfork_exec --MODE ...           (helper modes used by the test)
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define YN(c) ((c) ? "yes" : "no")
#define P(label, cond) printf("%s: %s\n", label, YN(cond))

extern char **environ;
static const char *self;
static const char *dir;

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static const char *base(const char *s) {
    const char *b = strrchr(s, '/');
    return (s[0] == '/' && b) ? b + 1 : s;
}

static void status(const char *label, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", label, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", label, WTERMSIG(st));
    else
        printf("%s: status %#x\n", label, st);
}

/* ---- helper modes (run after an exec) ---- */

static int mode_args(int argc, char **argv) {
    printf("  argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("  argv[%d]=%s\n", i, base(argv[i]));
    P("  argv[argc]==NULL", argv[argc] == NULL);
    int n = 0;
    for (char **e = environ; *e; e++) n++;
    printf("  envc=%d\n", n);
    const char *v = getenv("UM_TEST");
    printf("  UM_TEST=%s\n", v ? v : "(unset)");
    return 0;
}

static int mode_fds(char **argv) {
    int a = atoi(argv[2]), b = atoi(argv[3]);
    P("  inherited fd open", fcntl(a, F_GETFD) >= 0);
    P("  inherited fd has no FD_CLOEXEC", fcntl(a, F_GETFD) == 0);
    errno = 0;
    int r = fcntl(b, F_GETFD);
    printf("  close-on-exec fd: %d %s\n", r, r < 0 ? ename(errno) : "open");
    unsigned long addr = strtoul(argv[4], NULL, 0);
    r = mprotect((void *)addr, 4096, PROT_READ);
    printf("  old mapping after exec: mprotect %d %s\n", r, r < 0 ? ename(errno) : "mapped");
    return 0;
}

static int mode_sigs(void) {
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    P("  handled SIGUSR1 reset to SIG_DFL", sa.sa_handler == SIG_DFL);
    sigaction(SIGUSR2, NULL, &sa);
    P("  ignored SIGUSR2 stays SIG_IGN", sa.sa_handler == SIG_IGN);
    sigset_t m;
    sigprocmask(SIG_SETMASK, NULL, &m);
    P("  blocked SIGINT stays blocked", sigismember(&m, SIGINT));
    P("  SIGTERM not blocked", !sigismember(&m, SIGTERM));
    sigset_t p;
    sigpending(&p);
    P("  pending SIGINT survives exec", sigismember(&p, SIGINT));
    return 0;
}

static int mode_auxv(int argc, char **argv) {
    const char *want = argv[2];
    P("  argc slot 16-byte aligned", ((uintptr_t)(argv - 1) & 15) == 0);
    P("  envp follows argv", environ == argv + argc + 1);
    printf("  AT_PAGESZ=%lu\n", getauxval(AT_PAGESZ));
    const char *fn = (const char *)getauxval(AT_EXECFN);
    P("  AT_EXECFN == path given to execve", fn && strcmp(fn, want) == 0);
    P("  AT_RANDOM set", getauxval(AT_RANDOM) != 0);
    P("  AT_PHDR set", getauxval(AT_PHDR) != 0);
    printf("  AT_PHENT=%lu\n", getauxval(AT_PHENT));
    P("  AT_PHNUM>0", getauxval(AT_PHNUM) > 0);
    P("  AT_ENTRY set", getauxval(AT_ENTRY) != 0);
    P("  AT_BASE set (dynamic only)", getauxval(AT_BASE) != 0);
    printf("  AT_UID=%lu AT_EUID=%lu AT_GID=%lu AT_EGID=%lu\n", getauxval(AT_UID),
           getauxval(AT_EUID), getauxval(AT_GID), getauxval(AT_EGID));
    printf("  AT_SECURE=%lu\n", getauxval(AT_SECURE));
    printf("  AT_CLKTCK=%lu\n", getauxval(AT_CLKTCK));
    const char *plat = (const char *)getauxval(AT_PLATFORM);
    printf("  AT_PLATFORM=%s\n", plat ? plat : "(none)");
    P("  AT_HWCAP set", getauxval(AT_HWCAP) != 0);
    /* the program headers AT_PHDR points at describe this binary */
    Elf64_Phdr *ph = (Elf64_Phdr *)getauxval(AT_PHDR);
    int has_load = 0;
    for (unsigned long i = 0; ph && i < getauxval(AT_PHNUM); i++)
        if (ph[i].p_type == PT_LOAD) has_load = 1;
    P("  AT_PHDR has a PT_LOAD", has_load);
    return 0;
}

static int mode_countdown(char **argv) {
    long n = atol(argv[2]);
    long pid = atol(argv[3]);
    if (getpid() != pid) {
        printf("countdown: pid changed at %ld\n", n);
        return 1;
    }
    if (n == 0) {
        printf("countdown: reached 0, pid unchanged through every exec\n");
        return 42;
    }
    char nb[32];
    snprintf(nb, sizeof nb, "%ld", n - 1);
    char *av[] = {(char *)self, "--countdown", nb, argv[3], NULL};
    execve(self, av, environ);
    printf("countdown: execve failed at %ld: %s\n", n, ename(errno));
    return 1;
}

/* ---- the test ---- */

static char *path(const char *name) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

static void write_file(const char *p, const void *data, size_t n, mode_t mode) {
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, data, n) != (ssize_t)n) {
        printf("cannot write %s: %s\n", base(p), ename(errno));
        exit(2);
    }
    close(fd);
    chmod(p, mode);
}

static int run(char *const av[], char *const ev[]) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        execve(av[0], av, ev);
        printf("execve %s failed: %s\n", base(av[0]), ename(errno));
        fflush(stdout);
        _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    return st;
}

static void vfork_tests(void) {
    printf("== vfork\n");
    volatile int shared = 0;
    fflush(stdout);
    pid_t c = vfork();
    if (c == 0) {
        shared = 1;
        _exit(3);
    }
    int st;
    waitpid(c, &st, 0);
    P("vfork child wrote parent memory", shared == 1);
    status("vfork child _exit(3)", st);

    const char *progs[][2] = {{"/bin/true", "0"}, {"/bin/false", "1"}};
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        c = vfork();
        if (c == 0) {
            char *av[] = {(char *)progs[i][0], NULL};
            execve(av[0], av, environ);
            _exit(127);
        }
        waitpid(c, &st, 0);
        char label[64];
        snprintf(label, sizeof label, "vfork+execve %s", progs[i][0]);
        status(label, st);
    }
    fflush(stdout);
    c = vfork();
    if (c == 0) {
        char *av[] = {"/bin/sh", "-c", "exit 5", NULL};
        execve(av[0], av, environ);
        _exit(127);
    }
    waitpid(c, &st, 0);
    status("vfork+execve /bin/sh -c 'exit 5'", st);
    fflush(stdout);
    c = vfork();
    if (c == 0) {
        char *av[] = {(char *)self, "--exit", "7", NULL};
        execve(self, av, environ);
        _exit(127);
    }
    waitpid(c, &st, 0);
    status("vfork+execve self --exit 7", st);
    fflush(stdout);
    c = vfork();
    if (c == 0) {
        char *av[] = {"/nonexistent/prog", NULL};
        execve(av[0], av, environ);
        _exit(100 + errno);
    }
    waitpid(c, &st, 0);
    P("vfork child sees execve ENOENT", WIFEXITED(st) && WEXITSTATUS(st) == 100 + ENOENT);

    /* output of an exec'd program through a pipe set up with dup2 */
    int fd[2];
    pipe(fd);
    fflush(stdout);
    c = vfork();
    if (c == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char *av[] = {"/bin/echo", "hello from echo", NULL};
        execve(av[0], av, environ);
        _exit(127);
    }
    close(fd[1]);
    char buf[128] = {0};
    ssize_t n, tot = 0;
    while ((n = read(fd[0], buf + tot, sizeof buf - 1 - tot)) > 0) tot += n;
    close(fd[0]);
    waitpid(c, &st, 0);
    printf("echo via pipe: %s", buf);
    status("echo", st);
}

static void exec_errors(void) {
    printf("== execve errors\n");
    char *av[] = {"x", NULL};
    struct { const char *label; const char *p; } cases[16];
    int nc = 0;
    write_file(path("plain"), "#!/bin/sh\necho no\n", 18, 0644);
    write_file(path("garbage"), "\x01\x02garbage, not a program\n", 25, 0755);
    write_file(path("empty"), "", 0, 0755);
    write_file(path("badinterp"), "#!/nonexistent/interp\n", 22, 0755);
    unsigned char eh[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    eh[16] = 2;              /* ET_EXEC */
    eh[18] = 40;             /* EM_ARM */
    eh[20] = 1;              /* EV_CURRENT */
    eh[52] = 64;             /* e_ehsize */
    eh[54] = 56;             /* e_phentsize */
    write_file(path("armelf"), eh, sizeof eh, 0755);
    mkdir(path("subdir"), 0755);
    cases[nc].label = "missing file"; cases[nc++].p = path("missing");
    cases[nc].label = "missing directory"; cases[nc++].p = path("nodir/x");
    cases[nc].label = "file as directory"; cases[nc++].p = path("plain/x");
    cases[nc].label = "not executable (0644)"; cases[nc++].p = path("plain");
    cases[nc].label = "directory"; cases[nc++].p = path("subdir");
    cases[nc].label = "garbage with x bit"; cases[nc++].p = path("garbage");
    cases[nc].label = "empty file with x bit"; cases[nc++].p = path("empty");
    cases[nc].label = "ELF for EM_ARM"; cases[nc++].p = path("armelf");
    cases[nc].label = "#! interpreter missing"; cases[nc++].p = path("badinterp");
    cases[nc].label = "empty path"; cases[nc++].p = "";
    for (int i = 0; i < nc; i++) {
        errno = 0;
        int r = execve(cases[i].p, av, environ);
        printf("execve %s: %d %s\n", cases[i].label, r, ename(errno));
    }
}

static void scripts(void) {
    printf("== #! scripts\n");
    const char *sh = "#!/bin/sh\necho \"script ran with $# args: $1 $2\"\nexit 3\n";
    write_file(path("s1"), sh, strlen(sh), 0755);
    char *av[] = {path("s1"), "one", "two", NULL};
    status("/bin/sh script", run(av, environ));

    char line[4096];
    snprintf(line, sizeof line, "#!%s --args\n", self);
    write_file(path("s2"), line, strlen(line), 0755);
    char *ev[] = {"UM_TEST=from-env", "OTHER=1", NULL};
    char *av2[] = {path("s2"), "a1", "a2", NULL};
    printf("script with interpreter = this program:\n");
    status("self-interpreted script", run(av2, ev));

    snprintf(line, sizeof line, "#! %s   --args with  spaces  \n", self);
    write_file(path("s3"), line, strlen(line), 0755);
    char *av3[] = {path("s3"), "b1", NULL};
    printf("optional argument with spaces:\n");
    status("script 3", run(av3, ev));

    snprintf(line, sizeof line, "#!%s\n", path("s2"));
    write_file(path("s4"), line, strlen(line), 0755);
    char *av4[] = {path("s4"), "c1", NULL};
    printf("nested #! (s4 -> s2 -> this program):\n");
    status("nested script", run(av4, ev));
}

static void args_env(void) {
    printf("== argv and envp\n");
    char *av[] = {(char *)self, "--args", "", "with space", "last", NULL};
    av[0] = (char *)self;
    char *ev[] = {"UM_TEST=42", NULL};
    status("self --args", run(av, ev));
    char *av2[] = {(char *)self, "--args", NULL};
    char *ev2[] = {NULL};
    status("empty environment", run(av2, ev2));
    /* argv[0] need not be the path */
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char *a[] = {"renamed", "--args", NULL};
        execve(self, a, ev);
        _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    status("argv[0]=renamed", st);
}

static void cloexec_and_mm(void) {
    printf("== close-on-exec and the old address space\n");
    int keep[2], drop[2];
    pipe(keep);
    pipe2(drop, O_CLOEXEC);
    void *m = mmap((void *)0x200000000UL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    P("fixed mapping made", m == (void *)0x200000000UL);
    char a[16], b[16], addr[32];
    snprintf(a, sizeof a, "%d", keep[0]);
    snprintf(b, sizeof b, "%d", drop[0]);
    snprintf(addr, sizeof addr, "%#lx", (unsigned long)m);
    char *av[] = {(char *)self, "--fds", a, b, addr, NULL};
    status("self --fds", run(av, environ));
    close(keep[0]); close(keep[1]); close(drop[0]); close(drop[1]);
    munmap(m, 4096);
}

static void on_usr1(int s) { (void)s; }

static void sigs_across_exec(void) {
    printf("== signals across exec\n");
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1;
        sigaction(SIGUSR1, &sa, NULL);
        signal(SIGUSR2, SIG_IGN);
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGINT);
        sigprocmask(SIG_BLOCK, &m, NULL);
        kill(getpid(), SIGINT); /* stays pending */
        char *av[] = {(char *)self, "--sigs", NULL};
        execve(self, av, environ);
        _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    status("self --sigs", st);
}

static void auxv_test(void) {
    printf("== initial stack and auxv\n");
    char *av[] = {(char *)self, "--auxv", (char *)self, NULL};
    status("self --auxv", run(av, environ));
    /* AT_EXECFN is the path as given, here a relative one */
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char d[4096];
        snprintf(d, sizeof d, "%s", self);
        char *slash = strrchr(d, '/');
        *slash = 0;
        if (chdir(d) < 0) _exit(126);
        char rel[4096];
        snprintf(rel, sizeof rel, "./%s", slash + 1);
        char *a[] = {rel, "--auxv", rel, NULL};
        execve(rel, a, environ);
        _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    status("self --auxv via relative path", st);
}

static void countdown(void) {
    printf("== exec itself 100 times\n");
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char pid[32];
        snprintf(pid, sizeof pid, "%d", getpid());
        char *av[] = {(char *)self, "--countdown", "100", pid, NULL};
        execve(self, av, environ);
        _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    status("countdown", st);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    self = argv[0];
    if (argc > 1 && strncmp(argv[1], "--args", 6) == 0) return mode_args(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--exit") == 0) return atoi(argv[2]);
    if (argc > 4 && strcmp(argv[1], "--fds") == 0) return mode_fds(argv);
    if (argc > 1 && strcmp(argv[1], "--sigs") == 0) return mode_sigs();
    if (argc > 2 && strcmp(argv[1], "--auxv") == 0) return mode_auxv(argc, argv);
    if (argc > 3 && strcmp(argv[1], "--countdown") == 0) return mode_countdown(argv);
    if (argc < 2 || self[0] != '/') {
        fprintf(stderr, "usage: /abs/path/vfork_exec SCRATCH_DIR\n");
        return 2;
    }
    dir = argv[1];
    vfork_tests();
    exec_errors();
    scripts();
    args_env();
    cloexec_and_mm();
    sigs_across_exec();
    auxv_test();
    countdown();
    printf("done\n");
    return 0;
}
