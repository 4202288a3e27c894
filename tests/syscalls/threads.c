/* threads.c - clone with threads, futexes, thread exit and exec.
 *
 * Covers: 8 pthreads incrementing a counter under a pthread_mutex 100000
 * times each; pthread_join with return values (CLONE_CHILD_CLEARTID + futex
 * wake on exit); gettid differs per thread while getpid is shared; TLS per
 * thread (CLONE_SETTLS); condition variable broadcast and a barrier; a raw
 * clone() thread with CLONE_PARENT_SETTID/CHILD_SETTID/CHILD_CLEARTID;
 * set_tid_address; futex WAIT/WAKE/timeout/EAGAIN; pthread_kill (tgkill)
 * reaching the right thread and a process-directed signal reaching the one
 * thread that does not block it; thread churn (100 create/join); fork from a
 * non-main thread; exit_group from a non-main thread; the main thread
 * exiting first (the process is reported only when the last thread exits);
 * and execve from a non-main thread of a multi-threaded process.
 *
 * Usage: threads SCRATCH_DIR (unused); argv[0] must be absolute.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define YN(c) ((c) ? "yes" : "no")
#define P(label, cond) printf("%s: %s\n", label, YN(cond))
#define NT 8
#define ITER 100000

static const char *self;

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static long futex(int *uaddr, int op, int val, const struct timespec *ts) {
    return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static void status(const char *label, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", label, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", label, WTERMSIG(st));
    else
        printf("%s: status %#x\n", label, st);
}

/* ---- counter, ids, TLS ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static pid_t tids[NT], pids[NT];
static __thread int tls_var = 1234;
static int tls_ok[NT];
static pthread_barrier_t bar;

static void *worker(void *arg) {
    int i = (int)(intptr_t)arg;
    tids[i] = gettid_();
    pids[i] = getpid();
    int fresh = tls_var == 1234;
    tls_var = i;
    pthread_barrier_wait(&bar);
    for (int k = 0; k < ITER; k++) {
        pthread_mutex_lock(&mu);
        counter++;
        pthread_mutex_unlock(&mu);
    }
    tls_ok[i] = fresh && tls_var == i;
    return (void *)(intptr_t)(i * 3);
}

static void counter_test(void) {
    printf("== %d threads x %d mutex increments\n", NT, ITER);
    pthread_t th[NT];
    pthread_barrier_init(&bar, NULL, NT);
    tls_var = 99;
    for (int i = 0; i < NT; i++) pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    int rv_ok = 1;
    for (int i = 0; i < NT; i++) {
        void *rv;
        if (pthread_join(th[i], &rv) != 0 || rv != (void *)(intptr_t)(i * 3)) rv_ok = 0;
    }
    printf("counter: %ld\n", counter);
    P("join return values", rv_ok);
    int distinct = 1, samepid = 1, notmain = 1, tls = 1;
    for (int i = 0; i < NT; i++) {
        if (pids[i] != getpid()) samepid = 0;
        if (tids[i] == getpid() || tids[i] == gettid_()) notmain = 0;
        if (!tls_ok[i]) tls = 0;
        for (int j = 0; j < i; j++)
            if (tids[i] == tids[j]) distinct = 0;
    }
    P("gettid distinct per thread", distinct);
    P("thread tids differ from main", notmain);
    P("getpid same in every thread", samepid);
    P("TLS per thread (initial value, own copy)", tls);
    P("main TLS untouched", tls_var == 99);
    pthread_barrier_destroy(&bar);
}

/* ---- condvar ---- */

static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go, woke;

static void *waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!go) pthread_cond_wait(&cv, &mu);
    woke++;
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void condvar_test(void) {
    printf("== condition variable\n");
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) pthread_create(&th[i], NULL, waiter, NULL);
    msleep(20);
    pthread_mutex_lock(&mu);
    go = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    printf("woken by broadcast: %d\n", woke);
}

/* ---- raw clone thread ---- */

static volatile int raw_ran;
static pid_t raw_tid_seen;

static int raw_fn(void *arg) {
    (void)arg;
    raw_tid_seen = (pid_t)syscall(SYS_gettid);
    raw_ran = 1;
    return 0; /* glibc's clone() then calls exit (thread exit) */
}

static void raw_clone_test(void) {
    printf("== raw clone thread\n");
    size_t sz = 256 * 1024;
    char *stk = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    static int ptid, ctid;
    ptid = 0;
    ctid = -1;
    int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                CLONE_SYSVSEM | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
    /* no CLONE_SETTLS: raw_fn touches no TLS */
    int tid = clone(raw_fn, stk + sz, flags, NULL, &ptid, NULL, &ctid);
    P("clone returned a tid", tid > 0);
    /* wait for the kernel to clear ctid and wake us */
    int spins = 0;
    while (1) {
        int v = __atomic_load_n(&ctid, __ATOMIC_SEQ_CST);
        if (v == 0) break;
        futex(&ctid, FUTEX_WAIT, v, &(struct timespec){1, 0});
        if (++spins > 10) break;
    }
    P("CLONE_PARENT_SETTID stored the tid", ptid == tid);
    P("thread ran", raw_ran);
    P("thread's gettid == clone's return", raw_tid_seen == tid);
    P("CLONE_CHILD_CLEARTID cleared ctid at exit", ctid == 0);
    munmap(stk, sz);
    P("set_tid_address returns gettid", syscall(SYS_set_tid_address, NULL) == gettid_());
}

/* ---- futex ---- */

static int fword;

static void *futex_waiter(void *arg) {
    (void)arg;
    long r = futex(&fword, FUTEX_WAIT_PRIVATE, 0, NULL);
    return (void *)(intptr_t)(r == 0 ? 1 : -errno);
}

static void futex_test(void) {
    printf("== futex\n");
    int w = 5;
    errno = 0;
    long r = futex(&w, FUTEX_WAIT_PRIVATE, 6, NULL);
    printf("FUTEX_WAIT value mismatch: %ld %s\n", r, ename(errno));
    r = futex(&w, FUTEX_WAIT_PRIVATE, 5, &(struct timespec){0, 20000000});
    printf("FUTEX_WAIT 20ms timeout: %ld %s\n", r, ename(errno));
    printf("FUTEX_WAKE no waiters: %ld\n", futex(&w, FUTEX_WAKE_PRIVATE, 1, NULL));
    pthread_t t;
    fword = 0;
    pthread_create(&t, NULL, futex_waiter, NULL);
    long woken = 0;
    for (int i = 0; i < 500 && woken == 0; i++) {
        msleep(5);
        woken = futex(&fword, FUTEX_WAKE_PRIVATE, 1, NULL);
    }
    void *rv;
    pthread_join(t, &rv);
    printf("FUTEX_WAKE woke: %ld, waiter returned %ld\n", woken, (long)(intptr_t)rv);
}

/* ---- signals and threads ---- */

static volatile pid_t sig_tid;
static volatile int sig_got;

static void on_sig(int s) {
    (void)s;
    sig_tid = (pid_t)syscall(SYS_gettid);
    sig_got = 1;
}

static pid_t target_tid;
static volatile int target_ready;

static void *sig_target(void *arg) {
    int unblock = (int)(intptr_t)arg;
    if (unblock) {
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGUSR2);
        pthread_sigmask(SIG_UNBLOCK, &m, NULL);
    }
    target_tid = gettid_();
    target_ready = 1;
    for (int i = 0; i < 5000 && !sig_got; i++) msleep(1);
    return NULL;
}

static void thread_signals(void) {
    printf("== signals to threads\n");
    signal(SIGUSR1, on_sig);
    signal(SIGUSR2, on_sig);
    pthread_t t;
    sig_got = 0;
    target_ready = 0;
    pthread_create(&t, NULL, sig_target, (void *)0);
    while (!target_ready) msleep(1);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    P("pthread_kill handled", sig_got);
    P("handler ran in the target thread", sig_tid == target_tid);

    /* process-directed signal goes to the only thread not blocking it */
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &m, &old);
    sig_got = 0;
    target_ready = 0;
    pthread_create(&t, NULL, sig_target, (void *)1);
    while (!target_ready) msleep(1);
    kill(getpid(), SIGUSR2);
    pthread_join(t, NULL);
    P("kill(getpid) handled", sig_got);
    P("delivered to the thread that unblocked it", sig_tid == target_tid);
    sigset_t pend;
    sigpending(&pend);
    P("nothing left pending in main", !sigismember(&pend, SIGUSR2));
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    errno = 0;
    long r = syscall(SYS_tgkill, getpid(), 1000000000, SIGUSR1);
    printf("tgkill(nonexistent tid): %ld %s\n", r, ename(errno));
    sig_got = 0;
    r = syscall(SYS_tgkill, getpid(), gettid_(), SIGUSR1);
    P("tgkill(self) handled synchronously", r == 0 && sig_got && sig_tid == gettid_());
    sig_got = 0;
    r = syscall(SYS_tkill, gettid_(), SIGUSR1);
    P("tkill(self) handled", r == 0 && sig_got);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
}

/* ---- churn ---- */

static void *nop(void *arg) { return arg; }

static int detached_done;

static void *bump(void *arg) {
    __atomic_add_fetch(&detached_done, 1, __ATOMIC_SEQ_CST);
    return arg;
}

static void churn(void) {
    printf("== thread churn\n");
    int ok = 0;
    for (int i = 0; i < 100; i++) {
        pthread_t t;
        void *rv;
        if (pthread_create(&t, NULL, nop, (void *)(intptr_t)i) == 0 &&
            pthread_join(t, &rv) == 0 && rv == (void *)(intptr_t)i)
            ok++;
    }
    printf("created and joined: %d/100\n", ok);
    /* detached threads: nobody joins them, they still run and exit */
    for (int i = 0; i < 10; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_create(&t, &a, bump, NULL);
        pthread_attr_destroy(&a);
    }
    for (int i = 0; i < 5000 && __atomic_load_n(&detached_done, __ATOMIC_SEQ_CST) < 10; i++)
        msleep(1);
    printf("detached threads ran: %d/10\n", __atomic_load_n(&detached_done, __ATOMIC_SEQ_CST));
}

/* ---- fork from a thread ---- */

static void *forker(void *arg) {
    (void)arg;
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        int ok = gettid_() == getpid();
        _exit(ok ? 21 : 22);
    }
    return (void *)(intptr_t)c;
}

static void fork_from_thread(void) {
    printf("== fork from a non-main thread\n");
    pthread_t t;
    void *rv;
    pthread_create(&t, NULL, forker, NULL);
    pthread_join(t, &rv);
    pid_t c = (pid_t)(intptr_t)rv;
    int st;
    P("main thread reaps the thread's child", waitpid(c, &st, 0) == c);
    status("child (tid==pid in child -> 21)", st);
}

/* ---- process-wide exits, in children ---- */

static void *blocker(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

static void *exiter(void *arg) {
    (void)arg;
    msleep(20);
    exit(9);
}

static int pipefd[2];

static void *last_one(void *arg) {
    (void)arg;
    char b;
    read(pipefd[0], &b, 1);
    exit(11);
}

static void *execer(void *arg) {
    (void)arg;
    msleep(20);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", getpid());
    char *av[] = {(char *)self, "--after-exec", pid, NULL};
    execv(self, av);
    _exit(99);
}

static void group_exits(void) {
    printf("== exit_group from a thread\n");
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        pthread_t t;
        for (int i = 0; i < 3; i++) pthread_create(&t, NULL, blocker, NULL);
        pthread_create(&t, NULL, exiter, NULL);
        for (;;) pause();
    }
    int st;
    waitpid(c, &st, 0);
    status("exit(9) in a thread while others block", st);

    printf("== main thread exits first\n");
    int ready[2];
    pipe(ready);
    pipe(pipefd);
    fflush(stdout);
    c = fork();
    if (c == 0) {
        pthread_t t;
        pthread_create(&t, NULL, last_one, NULL);
        write(ready[1], "r", 1);
        pthread_exit(NULL);
    }
    char b;
    read(ready[0], &b, 1);
    msleep(100);
    P("not reported while a thread lives (WNOHANG -> 0)", waitpid(c, &st, WNOHANG) == 0);
    write(pipefd[1], "x", 1);
    P("reported when the last thread exits", waitpid(c, &st, 0) == c);
    status("last thread exit(11)", st);
    close(ready[0]); close(ready[1]); close(pipefd[0]); close(pipefd[1]);

    printf("== execve from a non-main thread\n");
    fflush(stdout);
    c = fork();
    if (c == 0) {
        pthread_t t;
        for (int i = 0; i < 3; i++) pthread_create(&t, NULL, blocker, NULL);
        pthread_create(&t, NULL, execer, NULL);
        for (;;) pause();
    }
    waitpid(c, &st, 0);
    status("exec'd image", st);
    errno = 0;
    P("no other child left over", waitpid(-1, &st, WNOHANG | __WALL) < 0 && errno == ECHILD);
}

static int after_exec(char **argv) {
    pid_t want = (pid_t)atol(argv[2]);
    printf("  after exec: pid unchanged: %s\n", YN(getpid() == want));
    printf("  after exec: gettid==getpid: %s\n", YN(gettid_() == getpid()));
    /* the new image is single-threaded: a fresh thread works */
    pthread_t t;
    void *rv;
    int ok = pthread_create(&t, NULL, nop, (void *)7) == 0 && pthread_join(t, &rv) == 0 &&
             rv == (void *)7;
    printf("  after exec: threads work: %s\n", YN(ok));
    fflush(stdout);
    return 5;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    self = argv[0];
    if (argc > 2 && strcmp(argv[1], "--after-exec") == 0) return after_exec(argv);
    if (self[0] != '/') {
        fprintf(stderr, "argv[0] must be absolute\n");
        return 2;
    }
    counter_test();
    condvar_test();
    raw_clone_test();
    futex_test();
    thread_signals();
    churn();
    fork_from_thread();
    group_exits();
    printf("done\n");
    return 0;
}
