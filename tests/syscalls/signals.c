/* signals.c - Linux signal semantics.
 *
 * Covers: sigaction handlers and kill(getpid()) delivered before kill returns;
 * SA_SIGINFO si_signo/si_code/si_pid/si_uid for kill, sigqueue, tgkill;
 * sigprocmask block/unblock with pending delivery, coalescing of standard
 * signals, queueing and order of real-time signals, lowest-number-first
 * delivery; SIGKILL/SIGSTOP cannot be blocked; sa_mask and nesting,
 * SA_NODEFER, SA_RESETHAND, SA_RESTART read back; sigaltstack (SA_ONSTACK,
 * SS_ONSTACK, ENOMEM, SS_DISABLE); faults caught by handlers: NULL write
 * (SIGSEGV/SEGV_MAPERR, si_addr), unmapped address, integer division by zero
 * (SIGFPE/FPE_INTDIV), ud2 (SIGILL/ILL_ILLOPN, resumed by editing the saved
 * RIP), int3 (SIGTRAP); FPU state survives a handler; SIGCHLD with siginfo
 * on child exit, SIGCHLD set to SIG_IGN auto-reaps; default actions in
 * children (terminate, ignore, stop, continue; SIGPIPE; abort); stop/continue
 * seen through waitpid(WUNTRACED/WCONTINUED) and waitid(WSTOPPED/WCONTINUED);
 * kill(0) to the process group; EINTR vs SA_RESTART for a pipe read
 * interrupted by SIGALRM (alarm), nanosleep/pause/sigsuspend EINTR,
 * sigtimedwait timeout; and a 1000-round signal ping-pong between parent and
 * child (sigsuspend on one side, sigwaitinfo on the other).
 *
 * The program never sends itself a signal whose default action would kill
 * it: under usermode it runs as init, which Linux protects from those.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define YN(c) ((c) ? "yes" : "no")
#define P(label, cond) printf("%s: %s\n", label, YN(cond))

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static pid_t xfork(void) {
    fflush(stdout);
    pid_t c = fork();
    if (c < 0) { perror("fork"); exit(2); }
    return c;
}

static void status(const char *label, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", label, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", label, WTERMSIG(st));
    else if (WIFSTOPPED(st))
        printf("%s: stopped by signal %d\n", label, WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        printf("%s: continued\n", label);
    else
        printf("%s: status %#x\n", label, st);
}

static void set_handler(int sig, void (*h)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) < 0) { perror("sigaction"); exit(2); }
}

static void set_action(int sig, void (*h)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = flags | SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) < 0) { perror("sigaction"); exit(2); }
}

static void block(int sig, int how) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, sig);
    sigprocmask(how, &m, NULL);
}

/* ---- basic delivery ---- */

static volatile int count;
static void on_count(int s) { (void)s; count++; }

static siginfo_t last_si;
static volatile int info_count;
static void on_info(int s, siginfo_t *si, void *uc) {
    (void)s; (void)uc;
    last_si = *si;
    info_count++;
}

static void basic(void) {
    printf("== delivery\n");
    set_handler(SIGUSR1, on_count, 0);
    count = 0;
    kill(getpid(), SIGUSR1);
    printf("handler ran before kill returned: %d\n", count);
    raise(SIGUSR1);
    printf("after raise: %d\n", count);

    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    P("sigaction reads back the handler", old.sa_handler == on_count);

    set_action(SIGUSR1, on_info, SA_RESTART);
    sigaction(SIGUSR1, NULL, &old);
    P("flags read back SA_SIGINFO|SA_RESTART",
      (old.sa_flags & (SA_SIGINFO | SA_RESTART)) == (SA_SIGINFO | SA_RESTART));
    kill(getpid(), SIGUSR1);
    printf("kill: si_signo=%d si_code=%s pid==getpid:%s uid==getuid:%s\n", last_si.si_signo,
           last_si.si_code == SI_USER ? "SI_USER" : "other", YN(last_si.si_pid == getpid()),
           YN(last_si.si_uid == getuid()));
    union sigval v = {.sival_int = 1234};
    sigqueue(getpid(), SIGUSR1, v);
    printf("sigqueue: si_code=%s value=%d\n", last_si.si_code == SI_QUEUE ? "SI_QUEUE" : "other",
           last_si.si_value.sival_int);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1);
    printf("tgkill: si_code=%s pid==getpid:%s\n", last_si.si_code == SI_TKILL ? "SI_TKILL" : "other",
           YN(last_si.si_pid == getpid()));
    printf("info handler calls: %d\n", info_count);

    set_handler(SIGUSR2, SIG_IGN, 0);
    kill(getpid(), SIGUSR2);
    P("ignored signal does nothing", 1);
    sigset_t p;
    sigpending(&p);
    P("ignored signal not pending", !sigismember(&p, SIGUSR2));
    set_handler(SIGUSR2, SIG_DFL, 0);
}

/* ---- masks ---- */

static int order[8];
static volatile int norder;
static void on_order(int s) { order[norder++] = s; }

static volatile int rt_vals[8], nrt;
static void on_rt(int s, siginfo_t *si, void *uc) {
    (void)s; (void)uc;
    rt_vals[nrt++] = si->si_value.sival_int;
}

static void masks(void) {
    printf("== sigprocmask\n");
    set_handler(SIGUSR1, on_count, 0);
    count = 0;
    block(SIGUSR1, SIG_BLOCK);
    kill(getpid(), SIGUSR1);
    kill(getpid(), SIGUSR1);
    printf("while blocked: handler calls %d\n", count);
    sigset_t p;
    sigpending(&p);
    P("SIGUSR1 pending", sigismember(&p, SIGUSR1));
    block(SIGUSR1, SIG_UNBLOCK);
    printf("after unblock: handler calls %d (standard signals coalesce)\n", count);
    sigpending(&p);
    P("nothing pending", !sigismember(&p, SIGUSR1));

    /* real-time signals queue, in order */
    set_action(SIGRTMIN, on_rt, 0);
    block(SIGRTMIN, SIG_BLOCK);
    for (int i = 1; i <= 3; i++) sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = i});
    block(SIGRTMIN, SIG_UNBLOCK);
    printf("SIGRTMIN queued deliveries: %d values %d %d %d\n", nrt, rt_vals[0], rt_vals[1], rt_vals[2]);

    /* several pending: lowest number first */
    set_handler(SIGUSR1, on_order, 0);
    set_handler(SIGUSR2, on_order, 0);
    set_handler(SIGTERM, on_order, 0);
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGUSR2);
    sigaddset(&m, SIGTERM);
    sigprocmask(SIG_BLOCK, &m, &old);
    kill(getpid(), SIGTERM);
    kill(getpid(), SIGUSR2);
    kill(getpid(), SIGUSR1);
    sigprocmask(SIG_SETMASK, &old, NULL);
    /* Linux dequeues the lowest number first but stacks one frame per
     * pending signal before returning to user mode, so the handlers run
     * highest first. */
    printf("handler run order:");
    for (int i = 0; i < norder; i++) printf(" %d", order[i]);
    printf("\n");
    set_handler(SIGTERM, SIG_DFL, 0);

    sigfillset(&m);
    sigprocmask(SIG_SETMASK, &m, &old);
    sigprocmask(SIG_SETMASK, NULL, &m);
    P("SIGKILL cannot be blocked", !sigismember(&m, SIGKILL));
    P("SIGSTOP cannot be blocked", !sigismember(&m, SIGSTOP));
    P("SIGUSR1 blocked by sigfillset", sigismember(&m, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    sigprocmask(SIG_SETMASK, NULL, &m);
    P("mask restored (SIGUSR1 unblocked)", !sigismember(&m, SIGUSR1));
}

/* ---- nesting, NODEFER, RESETHAND ---- */

static volatile int in_h, usr2_during, usr1_masked_in_h, usr2_masked_in_h, usr2_pending_in_h;
static void on_usr1_nest(int s) {
    (void)s;
    in_h = 1;
    sigset_t m, p;
    sigprocmask(SIG_SETMASK, NULL, &m);
    usr1_masked_in_h = sigismember(&m, SIGUSR1);
    usr2_masked_in_h = sigismember(&m, SIGUSR2);
    raise(SIGUSR2);
    sigpending(&p);
    usr2_pending_in_h = sigismember(&p, SIGUSR2);
    in_h = 0;
}
static void on_usr2_nest(int s) {
    (void)s;
    if (in_h) usr2_during = 1;
    count++;
}

static volatile int depth, maxdepth, calls;
static void on_nodefer(int s) {
    calls++;
    depth++;
    if (depth > maxdepth) maxdepth = depth;
    if (calls < 3) raise(s);
    depth--;
}

static void nesting(void) {
    printf("== sa_mask, SA_NODEFER, SA_RESETHAND\n");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1_nest;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    set_handler(SIGUSR2, on_usr2_nest, 0);
    count = 0;
    raise(SIGUSR1);
    P("in handler: own signal masked", usr1_masked_in_h);
    P("in handler: sa_mask signal masked", usr2_masked_in_h);
    P("in handler: raised SIGUSR2 pending", usr2_pending_in_h);
    P("SIGUSR2 not run inside the handler", !usr2_during);
    printf("SIGUSR2 ran after the handler returned: %d\n", count);
    sigset_t m;
    sigprocmask(SIG_SETMASK, NULL, &m);
    P("mask restored after handler", !sigismember(&m, SIGUSR1) && !sigismember(&m, SIGUSR2));

    set_handler(SIGUSR1, on_nodefer, SA_NODEFER);
    raise(SIGUSR1);
    printf("SA_NODEFER: calls %d, max nesting depth %d\n", calls, maxdepth);
    maxdepth = 0;
    calls = 0;
    set_handler(SIGUSR1, on_nodefer, 0);
    raise(SIGUSR1);
    printf("without SA_NODEFER: calls %d, max nesting depth %d\n", calls, maxdepth);

    set_handler(SIGUSR1, on_count, SA_RESETHAND);
    count = 0;
    raise(SIGUSR1);
    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    printf("SA_RESETHAND: ran %d, now SIG_DFL: %s\n", count, YN(old.sa_handler == SIG_DFL));
    set_handler(SIGUSR2, SIG_DFL, 0);
}

/* ---- sigaltstack ---- */

static char *alt_base;
static size_t alt_size;
static volatile int on_alt, alt_flag_in_h;
static void on_altstack(int s) {
    (void)s;
    char local;
    on_alt = &local >= alt_base && &local < alt_base + alt_size;
    stack_t cur;
    sigaltstack(NULL, &cur);
    alt_flag_in_h = (cur.ss_flags & SS_ONSTACK) != 0;
}

static void altstack(void) {
    printf("== sigaltstack\n");
    alt_size = 64 * 1024;
    alt_base = mmap(NULL, alt_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0}, old;
    P("sigaltstack set", sigaltstack(&ss, &old) == 0);
    P("previous: disabled", (old.ss_flags & SS_DISABLE) != 0);
    stack_t cur;
    sigaltstack(NULL, &cur);
    P("query: same stack, not on it",
      cur.ss_sp == alt_base && cur.ss_size == alt_size && !(cur.ss_flags & SS_ONSTACK));
    set_handler(SIGUSR1, on_altstack, SA_ONSTACK);
    raise(SIGUSR1);
    P("SA_ONSTACK handler ran on the alternate stack", on_alt);
    P("SS_ONSTACK reported inside the handler", alt_flag_in_h);
    set_handler(SIGUSR1, on_altstack, 0);
    raise(SIGUSR1);
    P("handler without SA_ONSTACK on the normal stack", !on_alt);
    stack_t small = {.ss_sp = alt_base, .ss_size = 512, .ss_flags = 0};
    errno = 0;
    int r = sigaltstack(&small, NULL);
    printf("tiny alt stack: %d %s\n", r, ename(errno));
    stack_t dis = {.ss_flags = SS_DISABLE};
    P("SS_DISABLE", sigaltstack(&dis, NULL) == 0);
    sigaltstack(NULL, &cur);
    P("now disabled", (cur.ss_flags & SS_DISABLE) != 0);
    set_handler(SIGUSR1, SIG_DFL, 0);
}

/* ---- faults ---- */

static sigjmp_buf jb;
static siginfo_t fault_si;
static void on_fault(int s, siginfo_t *si, void *uc) {
    (void)s; (void)uc;
    fault_si = *si;
    siglongjmp(jb, 1);
}

static volatile uintptr_t zero_addr = 0;
static volatile int zero_int = 0;

static const char *segv_code(int c) {
    return c == SEGV_MAPERR ? "SEGV_MAPERR" : c == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
}

static volatile int ill_count;
static void on_ill_skip(int s, siginfo_t *si, void *ucv) {
    (void)s;
    ucontext_t *uc = ucv;
    fault_si = *si;
    ill_count++;
    uc->uc_mcontext.gregs[REG_RIP] += 2; /* skip ud2 */
}

static volatile int trap_count;
static void on_trap(int s, siginfo_t *si, void *uc) {
    (void)s; (void)uc;
    fault_si = *si;
    trap_count++;
}

static volatile double fpu_in;
static void on_fpu(int s) {
    (void)s;
    volatile double x = 0;
    for (int i = 0; i < 100; i++) x += 3.25 * i;
    fpu_in = x;
}

static void faults(void) {
    printf("== faults\n");
    set_action(SIGSEGV, on_fault, 0);
    if (sigsetjmp(jb, 1) == 0) {
        *(volatile int *)zero_addr = 1;
        printf("NULL write did not fault\n");
    } else {
        printf("NULL write: signo=%d code=%s addr==NULL:%s\n", fault_si.si_signo,
               segv_code(fault_si.si_code), YN(fault_si.si_addr == NULL));
    }
    volatile uintptr_t far = 0xdead0000UL;
    if (sigsetjmp(jb, 1) == 0) {
        (void)*(volatile int *)far;
        printf("unmapped read did not fault\n");
    } else {
        printf("unmapped read: code=%s addr matches:%s\n", segv_code(fault_si.si_code),
               YN(fault_si.si_addr == (void *)0xdead0000UL));
    }
    sigset_t m;
    sigprocmask(SIG_SETMASK, NULL, &m);
    P("siglongjmp restored the mask (SIGSEGV unblocked)", !sigismember(&m, SIGSEGV));

    set_action(SIGFPE, on_fault, 0);
    if (sigsetjmp(jb, 1) == 0) {
        int a = 7, d = zero_int, q;
        __asm__ volatile("cltd; idivl %2" : "=a"(q) : "a"(a), "r"(d) : "edx");
        printf("division by zero did not fault (%d)\n", q);
    } else {
        printf("division by zero: signo=%d code=%s addr set:%s\n", fault_si.si_signo,
               fault_si.si_code == FPE_INTDIV ? "FPE_INTDIV" : "other",
               YN(fault_si.si_addr != NULL));
    }

    set_action(SIGILL, on_ill_skip, 0);
    __asm__ volatile("ud2");
    printf("ud2: resumed after editing RIP, calls=%d signo=%d code=%s\n", ill_count,
           fault_si.si_signo, fault_si.si_code == ILL_ILLOPN ? "ILL_ILLOPN" : "other");

    set_action(SIGTRAP, on_trap, 0);
    __asm__ volatile("int3");
    printf("int3: calls=%d signo=%d code=%s\n", trap_count, fault_si.si_signo,
           fault_si.si_code == SI_KERNEL ? "SI_KERNEL" : "other");

    set_handler(SIGUSR1, on_fpu, 0);
    volatile double a = 1.5;
    double b = a * 3.0;
    raise(SIGUSR1);
    b = b + a;
    printf("FPU state across a handler: %.2f (handler computed %.1f)\n", b, fpu_in);

    set_handler(SIGSEGV, SIG_DFL, 0);
    set_handler(SIGFPE, SIG_DFL, 0);
    set_handler(SIGILL, SIG_DFL, 0);
    set_handler(SIGTRAP, SIG_DFL, 0);
    set_handler(SIGUSR1, SIG_DFL, 0);
}

/* ---- SIGCHLD ---- */

static void sigchld(void) {
    printf("== SIGCHLD\n");
    set_action(SIGCHLD, on_info, 0);
    block(SIGCHLD, SIG_BLOCK);
    info_count = 0;
    pid_t c = xfork();
    if (c == 0) _exit(4);
    sigset_t empty;
    sigemptyset(&empty);
    while (info_count == 0) sigsuspend(&empty);
    printf("SIGCHLD: signo=%d code=%s pid==child:%s status=%d\n", last_si.si_signo,
           last_si.si_code == CLD_EXITED ? "CLD_EXITED" : "other", YN(last_si.si_pid == c),
           last_si.si_status);
    int st;
    P("child still reapable after the handler", waitpid(c, &st, 0) == c);
    block(SIGCHLD, SIG_UNBLOCK);

    set_handler(SIGCHLD, SIG_IGN, 0);
    c = xfork();
    if (c == 0) { msleep(20); _exit(4); }
    errno = 0;
    int r = waitpid(c, &st, 0);
    printf("SIGCHLD=SIG_IGN: waitpid %d %s (auto-reaped)\n", r, ename(errno));
    set_handler(SIGCHLD, SIG_DFL, 0);
}

/* ---- default actions ---- */

static void defaults(void) {
    printf("== default actions (in children)\n");
    struct { int sig; const char *name; } kills[] = {
        {SIGTERM, "SIGTERM"}, {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
        {SIGRTMIN + 1, "SIGRTMIN+1"}};
    for (size_t i = 0; i < sizeof kills / sizeof kills[0]; i++) {
        int ready[2];
        pipe(ready);
        pid_t c = xfork();
        if (c == 0) {
            struct rlimit no = {0, 0};
            setrlimit(RLIMIT_CORE, &no);
            write(ready[1], "r", 1);
            for (;;) pause();
        }
        char b;
        read(ready[0], &b, 1);
        close(ready[0]); close(ready[1]);
        kill(c, kills[i].sig);
        int st;
        waitpid(c, &st, 0);
        char label[64];
        snprintf(label, sizeof label, "kill %s", kills[i].name);
        status(label, st);
    }
    /* ignored by default: the child survives, then exits by itself */
    int ready[2];
    pipe(ready);
    pid_t c = xfork();
    if (c == 0) {
        write(ready[1], "r", 1);
        msleep(100);
        _exit(0);
    }
    char b;
    read(ready[0], &b, 1);
    kill(c, SIGCHLD);
    kill(c, SIGWINCH);
    kill(c, SIGURG);
    kill(c, SIGCONT);
    int st;
    waitpid(c, &st, 0);
    status("SIGCHLD/SIGWINCH/SIGURG/SIGCONT ignored", st);
    close(ready[0]); close(ready[1]);

    c = xfork();
    if (c == 0) {
        struct rlimit no = {0, 0};
        setrlimit(RLIMIT_CORE, &no);
        *(volatile int *)zero_addr = 1;
        _exit(0);
    }
    waitpid(c, &st, 0);
    status("NULL write without handler", st);
    c = xfork();
    if (c == 0) {
        struct rlimit no = {0, 0};
        setrlimit(RLIMIT_CORE, &no);
        abort();
    }
    waitpid(c, &st, 0);
    status("abort()", st);
    c = xfork();
    if (c == 0) {
        int p[2];
        pipe(p);
        close(p[0]);
        write(p[1], "x", 1);
        _exit(0);
    }
    waitpid(c, &st, 0);
    status("write to a pipe with no reader", st);
    c = xfork();
    if (c == 0) {
        signal(SIGTERM, SIG_IGN);
        kill(getpid(), SIGTERM);
        block(SIGHUP, SIG_BLOCK);
        kill(getpid(), SIGHUP);
        _exit(3);
    }
    waitpid(c, &st, 0);
    status("SIGTERM ignored, SIGHUP blocked", st);
    c = xfork();
    if (c == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        kill(getpid(), SIGKILL);
        _exit(3);
    }
    waitpid(c, &st, 0);
    status("SIGKILL with everything blocked", st);
}

/* ---- stop / continue ---- */

static void stop_continue(void) {
    printf("== stop and continue\n");
    int ready[2];
    pipe(ready);
    pid_t c = xfork();
    if (c == 0) {
        write(ready[1], "r", 1);
        for (;;) pause();
    }
    char b;
    read(ready[0], &b, 1);
    int st;
    kill(c, SIGSTOP);
    P("waitpid(WUNTRACED) returns the child", waitpid(c, &st, WUNTRACED) == c);
    status("after SIGSTOP", st);
    P("stopped state reported once (WNOHANG -> 0)", waitpid(c, &st, WUNTRACED | WNOHANG) == 0);
    kill(c, SIGCONT);
    P("waitpid(WCONTINUED) returns the child", waitpid(c, &st, WCONTINUED) == c);
    status("after SIGCONT", st);
    kill(c, SIGSTOP);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, c, &si, WSTOPPED);
    printf("waitid WSTOPPED: code=%s status=%d\n", si.si_code == CLD_STOPPED ? "CLD_STOPPED" : "other",
           si.si_status);
    kill(c, SIGCONT);
    memset(&si, 0, sizeof si);
    waitid(P_PID, c, &si, WCONTINUED);
    printf("waitid WCONTINUED: code=%s status=%d\n",
           si.si_code == CLD_CONTINUED ? "CLD_CONTINUED" : "other", si.si_status);
    kill(c, SIGSTOP);
    waitpid(c, &st, WUNTRACED);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    status("SIGKILL while stopped", st);
    close(ready[0]); close(ready[1]);

    /* SIGTSTP stops only outside an orphaned process group: a grandchild in
     * its own group whose parent (not init) is in another group of the same
     * session */
    c = xfork();
    if (c == 0) {
        int rp[2];
        pipe(rp);
        pid_t g = fork();
        if (g == 0) {
            setpgid(0, 0);
            write(rp[1], "r", 1);
            for (;;) pause();
        }
        setpgid(g, g);
        read(rp[0], &b, 1);
        kill(g, SIGTSTP);
        int s2;
        siginfo_t gi;
        memset(&gi, 0, sizeof gi);
        int stopped = waitid(P_PID, g, &gi, WSTOPPED) == 0 && gi.si_code == CLD_STOPPED &&
                      gi.si_status == SIGTSTP;
        kill(g, SIGKILL);
        waitpid(g, &s2, 0);
        _exit(stopped ? 20 : 1);
    }
    waitpid(c, &st, 0);
    status("SIGTSTP stops a job in a non-orphaned group (20 = stopped)", st);

    /* kill(0, sig): the whole process group */
    c = xfork();
    if (c == 0) {
        setpgid(0, 0);
        signal(SIGTERM, SIG_IGN);
        int rp[2];
        pipe(rp);
        pid_t g[3];
        for (int i = 0; i < 3; i++) {
            g[i] = fork();
            if (g[i] == 0) {
                signal(SIGTERM, SIG_DFL);
                write(rp[1], "r", 1);
                for (;;) pause();
            }
        }
        for (int i = 0; i < 3; i++) read(rp[0], &b, 1);
        kill(0, SIGTERM);
        int n = 0;
        for (int i = 0; i < 3; i++) {
            int s;
            if (waitpid(g[i], &s, 0) == g[i] && WIFSIGNALED(s) && WTERMSIG(s) == SIGTERM) n++;
        }
        _exit(n);
    }
    waitpid(c, &st, 0);
    status("kill(0,SIGTERM) killed group members (count)", st);
}

/* ---- EINTR and SA_RESTART ---- */

static int pfd[2];
static volatile int alarms;
static void on_alarm(int s) {
    (void)s;
    alarms++;
    write(pfd[1], "A", 1);
}

static void eintr(void) {
    printf("== EINTR and SA_RESTART\n");
    pipe(pfd);
    char b[8];
    set_handler(SIGALRM, on_alarm, 0);
    alarm(1);
    errno = 0;
    ssize_t n = read(pfd[0], b, sizeof b);
    printf("read without SA_RESTART: %zd %s\n", n, ename(errno));
    n = read(pfd[0], b, sizeof b);
    printf("the handler's byte is then readable: %zd\n", n);

    set_handler(SIGALRM, on_alarm, SA_RESTART);
    alarm(1);
    errno = 0;
    n = read(pfd[0], b, sizeof b);
    printf("read with SA_RESTART: %zd (%c) errno %s\n", n, n > 0 ? b[0] : '?', errno ? ename(errno) : "0");
    printf("alarms: %d\n", alarms);
    P("alarm(0) with nothing pending returns 0", alarm(0) == 0);
    alarm(100);
    P("alarm() returns the seconds left", alarm(0) > 90);

    /* nanosleep is never restarted: EINTR and the time left */
    set_handler(SIGUSR1, on_count, SA_RESTART);
    pid_t me = getpid();
    pid_t c = xfork();
    if (c == 0) {
        msleep(100);
        kill(me, SIGUSR1);
        _exit(0);
    }
    struct timespec ts = {5, 0}, rem = {0, 0};
    errno = 0;
    int r = nanosleep(&ts, &rem);
    printf("nanosleep interrupted: %d %s, time left > 3s: %s\n", r, ename(errno),
           YN(rem.tv_sec >= 3));
    waitpid(c, NULL, 0);

    /* waitpid is restarted under SA_RESTART */
    c = xfork();
    if (c == 0) {
        msleep(100);
        kill(me, SIGUSR1);
        msleep(100);
        _exit(6);
    }
    count = 0;
    int st;
    r = waitpid(c, &st, 0);
    printf("waitpid across a SA_RESTART handler: returned child %s, handler %d\n",
           YN(r == c), count);

    c = xfork();
    if (c == 0) {
        msleep(100);
        kill(me, SIGUSR1);
        _exit(0);
    }
    errno = 0;
    r = pause();
    printf("pause: %d %s\n", r, ename(errno));
    waitpid(c, NULL, 0);

    sigset_t w;
    sigemptyset(&w);
    sigaddset(&w, SIGUSR2);
    block(SIGUSR2, SIG_BLOCK);
    struct timespec to = {0, 50000000};
    errno = 0;
    r = sigtimedwait(&w, NULL, &to);
    printf("sigtimedwait timeout: %d %s\n", r, ename(errno));
    kill(getpid(), SIGUSR2);
    siginfo_t si;
    r = sigtimedwait(&w, &si, &to);
    printf("sigtimedwait pending: returns %d, si_code=%s\n", r,
           si.si_code == SI_USER ? "SI_USER" : "other");
    block(SIGUSR2, SIG_UNBLOCK);
    set_handler(SIGUSR1, SIG_DFL, 0);
    set_handler(SIGALRM, SIG_DFL, 0);
    close(pfd[0]);
    close(pfd[1]);
}

/* ---- ping-pong ---- */

#define ROUNDS 1000
static volatile int pongs;
static void on_pong(int s) { (void)s; pongs++; }

static void pingpong(void) {
    printf("== ping-pong %d rounds\n", ROUNDS);
    set_handler(SIGUSR2, on_pong, 0);
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, &old);
    pid_t parent = getpid();
    pid_t c = xfork();
    if (c == 0) {
        sigset_t w;
        sigemptyset(&w);
        sigaddset(&w, SIGUSR1);
        int ok = 0;
        for (int i = 0; i < ROUNDS; i++) {
            siginfo_t si;
            if (sigwaitinfo(&w, &si) == SIGUSR1 && si.si_pid == parent && si.si_code == SI_USER) ok++;
            kill(parent, SIGUSR2);
        }
        _exit(ok == ROUNDS ? 0 : 1);
    }
    sigset_t waitmask = old;
    sigdelset(&waitmask, SIGUSR2);
    pongs = 0;
    int interrupted = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int before = pongs;
        kill(c, SIGUSR1);
        while (pongs == before)
            if (sigsuspend(&waitmask) < 0 && errno == EINTR) interrupted++;
    }
    int st;
    waitpid(c, &st, 0);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("pongs: %d, sigsuspend EINTR returns: %d\n", pongs, interrupted);
    status("child (sigwaitinfo side, 0 = all pings seen)", st);
    set_handler(SIGUSR2, SIG_DFL, 0);
}

/* Start from Linux's defaults whatever the native harness inherited
 * (e.g. SIGHUP ignored under nohup); a guest init starts this way anyway. */
static void reset_signals(void) {
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP || (s >= 32 && s < SIGRTMIN)) continue;
        signal(s, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    reset_signals();
    basic();
    masks();
    nesting();
    altstack();
    faults();
    sigchld();
    defaults();
    stop_continue();
    eintr();
    pingpong();
    printf("done\n");
    return 0;
}
