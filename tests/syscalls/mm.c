/* mm.c - the address space.
 *
 * Covers: brk grow/touch/shrink (and the freed range faulting), brk(0) and
 * failing brk leaving the break alone; anonymous mmap (zero-filled, page
 * aligned), partial munmap, access after munmap -> SIGSEGV/SEGV_MAPERR;
 * MAP_FIXED replacing, MAP_FIXED_NOREPLACE -> EEXIST; mprotect: write to a
 * read-only page -> SIGSEGV/SEGV_ACCERR with si_addr, PROT_NONE, and code
 * made executable with mprotect; mremap grow (MAYMOVE keeps the data, no
 * MAYMOVE -> ENOMEM when blocked), shrink, MREMAP_FIXED; file-backed
 * MAP_PRIVATE mappings read back correctly (with an offset, zero tail past
 * EOF, private writes not reaching the file, SIGBUS past the last page);
 * madvise(MADV_DONTNEED) zeroes anonymous pages and re-reads file pages;
 * copy-on-write after fork; MAP_SHARED|MAP_ANONYMOUS shared with a child;
 * 16 MiB touched page by page; the stack growing by 2 MiB; and the EINVAL,
 * EBADF, EACCES, ENOMEM, EFAULT errors of mmap/munmap/mprotect/mremap.
 *
 * Usage: mm SCRATCH_DIR
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define YN(c) ((c) ? "yes" : "no")
#define P(label, cond) printf("%s: %s\n", label, YN(cond))
#define PG 4096UL

static const char *dir;

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

static void resp(const char *label, void *p) {
    if (p == MAP_FAILED)
        printf("%s: MAP_FAILED %s\n", label, ename(errno));
    else
        printf("%s: mapped\n", label);
}

/* fault probes: 0 = no fault, else the signal, with code/addr recorded */
static sigjmp_buf jb;
static volatile int f_sig, f_code;
static void *volatile f_addr;
static void on_fault(int s, siginfo_t *si, void *uc) {
    (void)uc;
    f_sig = s;
    f_code = si->si_code;
    f_addr = si->si_addr;
    siglongjmp(jb, 1);
}

static int probe(volatile char *p, int write) {
    f_sig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        if (write)
            *p = 1;
        else
            (void)*p;
        return 0;
    }
    return f_sig;
}

static const char *code_name(int sig, int code) {
    if (sig == SIGSEGV) return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : "?";
    if (sig == SIGBUS) return code == BUS_ADRERR ? "BUS_ADRERR" : "?";
    return "-";
}

static void show_probe(const char *label, volatile char *p, int write) {
    int s = probe(p, write);
    if (!s)
        printf("%s: no fault\n", label);
    else
        printf("%s: %s %s addr==target:%s\n", label, strsignal(s), code_name(s, f_code),
               YN(f_addr == (void *)p));
}

static void brk_test(void) {
    printf("== brk\n");
    char *cur = (char *)syscall(SYS_brk, 0);
    P("brk(0) returns the break", cur != NULL && cur == (char *)syscall(SYS_brk, 0));
    char *want = cur + 1024 * 1024;
    char *got = (char *)syscall(SYS_brk, want);
    P("grow by 1 MiB", got == want);
    int ok = 1;
    for (char *p = cur; p < want; p += 997) *p = (char)(uintptr_t)p;
    for (char *p = cur; p < want; p += 997)
        if (*p != (char)(uintptr_t)p) ok = 0;
    P("new heap writable and readable", ok);
    got = (char *)syscall(SYS_brk, cur);
    P("shrink back", got == cur);
    char *gone = (char *)(((uintptr_t)cur + 2 * PG + PG - 1) & ~(PG - 1));
    show_probe("touch freed heap", gone, 0);
    got = (char *)syscall(SYS_brk, cur + (1UL << 40));
    P("brk(+1 TiB) fails, break unchanged", got == cur);
    got = (char *)syscall(SYS_brk, (void *)4096);
    P("brk(below start) fails, break unchanged", got == cur);
    got = (char *)syscall(SYS_brk, cur + 10);
    P("unaligned brk accepted", got == cur + 10);
    ((volatile char *)cur)[5] = 1;
    syscall(SYS_brk, cur);
}

static void anon_test(void) {
    printf("== anonymous mmap\n");
    size_t n = 16 * PG;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    resp("mmap 16 pages", p);
    P("page aligned", ((uintptr_t)p & (PG - 1)) == 0);
    int zero = 1;
    for (size_t i = 0; i < n; i++)
        if (p[i]) zero = 0;
    P("zero filled", zero);
    for (size_t i = 0; i < n; i++) p[i] = (char)(i * 7);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        if (p[i] != (char)(i * 7)) ok = 0;
    P("pattern reads back", ok);
    res("munmap middle page", munmap(p + 5 * PG, PG));
    show_probe("read unmapped middle page", p + 5 * PG, 0);
    P("neighbours intact", p[4 * PG] == (char)(4 * PG * 7) && p[6 * PG + 1] == (char)((6 * PG + 1) * 7));
    res("munmap all (spanning the hole)", munmap(p, n));
    show_probe("read after munmap", p, 0);
    show_probe("write after munmap", p + n - 1, 1);

    char *a = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 0x5a, 4 * PG);
    char *b = mmap(a + PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    P("MAP_FIXED at the requested address", b == a + PG);
    P("MAP_FIXED replaced the contents (zero)", b[0] == 0 && b[PG - 1] == 0);
    P("around it untouched", a[0] == 0x5a && a[2 * PG] == 0x5a);
    errno = 0;
    char *c = mmap(a + 2 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    resp("MAP_FIXED_NOREPLACE over a mapping", c);
    munmap(a, 4 * PG);
    errno = 0;
    res("munmap of an unmapped range", munmap(a, 4 * PG));
}

static int (*fnptr)(void);

static void protect_test(void) {
    printf("== mprotect\n");
    char *p = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 'x', 3 * PG);
    res("mprotect middle page PROT_READ", mprotect(p + PG, PG, PROT_READ));
    show_probe("write read-only page", p + PG + 100, 1);
    show_probe("read read-only page", p + PG + 100, 0);
    P("content kept", p[PG + 100] == 'x');
    show_probe("write the page before", p + 10, 1);
    res("mprotect PROT_NONE", mprotect(p + PG, PG, PROT_NONE));
    show_probe("read PROT_NONE page", p + PG, 0);
    res("mprotect back to RW", mprotect(p + PG, PG, PROT_READ | PROT_WRITE));
    show_probe("write again", p + PG, 1);
    munmap(p, 3 * PG);

    unsigned char code[] = {0xb8, 42, 0, 0, 0, 0xc3}; /* mov $42,%eax; ret */
    unsigned char *x = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(x, code, sizeof code);
    res("mprotect PROT_READ|PROT_EXEC", mprotect(x, PG, PROT_READ | PROT_EXEC));
    fnptr = (int (*)(void))x;
    printf("generated code returns %d\n", fnptr());
    show_probe("write to the code page", (char *)x, 1);
    munmap(x, PG);
}

static void remap_test(void) {
    printf("== mremap\n");
    char *p = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < 2 * PG; i++) p[i] = (char)(i % 251);
    /* the third page, made read-only, blocks growth in place */
    char *blk = p + 2 * PG;
    P("blocker made read-only right after", mprotect(blk, PG, PROT_READ) == 0);
    errno = 0;
    char *q = mremap(p, 2 * PG, 8 * PG, 0);
    resp("grow in place when blocked", q);
    q = mremap(p, 2 * PG, 64 * PG, MREMAP_MAYMOVE);
    resp("grow with MREMAP_MAYMOVE", q);
    int ok = 1;
    for (size_t i = 0; i < 2 * PG; i++)
        if (q[i] != (char)(i % 251)) ok = 0;
    P("data preserved", ok);
    P("moved (old place is free)", q != p);
    memset(q + 2 * PG, 1, 62 * PG);
    P("new part writable", q[64 * PG - 1] == 1);
    char *r = mremap(q, 64 * PG, 4 * PG, 0);
    P("shrink in place", r == q);
    show_probe("beyond the shrunk end", q + 5 * PG, 0);
    char *target = mmap(NULL, 4 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *m = mremap(q, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    P("MREMAP_FIXED moves to the target", m == target);
    P("contents moved along", m[0] == 0 && m[1] == 1 && m[2 * PG] == 1);
    show_probe("old address after the move", q, 0);
    munmap(m, 4 * PG);
    munmap(blk, PG);
    errno = 0;
    resp("mremap of an unmapped range", mremap(q, PG, 2 * PG, MREMAP_MAYMOVE));
    resp("mremap with bad flags", mremap(blk, PG, PG, 0x80));
}

static char *path(const char *name) {
    static char b[4096];
    snprintf(b, sizeof b, "%s/%s", dir, name);
    return b;
}

static void file_test(void) {
    printf("== file-backed MAP_PRIVATE\n");
    size_t len = 3 * PG + 1000;
    char *data = malloc(len);
    for (size_t i = 0; i < len; i++) data[i] = (char)('A' + (i * 13) % 26);
    int fd = open(path("data"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
        printf("cannot write the file: %s\n", ename(errno));
        return;
    }
    char *m = mmap(NULL, 5 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    resp("mmap file MAP_PRIVATE (5 pages over 3.25)", m);
    P("contents match the file", memcmp(m, data, len) == 0);
    int tail0 = 1;
    for (size_t i = len; i < 4 * PG; i++)
        if (m[i]) tail0 = 0;
    P("tail of the last page is zero", tail0);
    show_probe("page past EOF", m + 4 * PG, 0);
    memset(m, 'z', 100);
    char buf[100];
    pread(fd, buf, 100, 0);
    P("private write does not reach the file", memcmp(buf, data, 100) == 0);
    P("private write visible in the mapping", m[99] == 'z');
    res("madvise(MADV_DONTNEED) on file page", madvise(m, PG, MADV_DONTNEED));
    P("file page re-read after DONTNEED", memcmp(m, data, PG) == 0);
    char *o = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, fd, 2 * PG);
    resp("mmap with offset 2 pages", o);
    P("offset contents match", memcmp(o, data + 2 * PG, PG) == 0);
    munmap(o, PG);
    munmap(m, 5 * PG);
    int ro = open(path("data"), O_RDONLY);
    errno = 0;
    resp("MAP_SHARED|PROT_WRITE on O_RDONLY fd", mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0));
    resp("MAP_PRIVATE|PROT_WRITE on O_RDONLY fd", mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0));
    resp("unaligned offset", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, ro, 100));
    close(ro);
    close(fd);
    /* mapping stays valid after close and unlink */
    fd = open(path("data"), O_RDONLY);
    m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    unlink(path("data"));
    P("mapping valid after close+unlink", memcmp(m, data, len) == 0);
    munmap(m, len);
    free(data);
}

static void dontneed_test(void) {
    printf("== madvise\n");
    char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 0x77, 4 * PG);
    res("madvise(MADV_DONTNEED) 2 pages", madvise(p + PG, 2 * PG, MADV_DONTNEED));
    P("those pages read as zero", p[PG] == 0 && p[3 * PG - 1] == 0);
    P("the others keep their data", p[0] == 0x77 && p[3 * PG] == 0x77);
    res("madvise(MADV_WILLNEED)", madvise(p, 4 * PG, MADV_WILLNEED));
    errno = 0;
    res("madvise unaligned", madvise(p + 1, PG, MADV_DONTNEED));
    res("madvise bad advice", madvise(p, PG, 12345));
    munmap(p, 4 * PG);
}

static void fork_test(void) {
    printf("== fork and memory\n");
    char *priv = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *shared = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    resp("MAP_SHARED|MAP_ANONYMOUS", shared);
    strcpy(priv, "parent");
    strcpy(shared, "parent");
    static char heap_like[64] = "parent";
    int fd[2];
    pipe(fd);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        int ok = strcmp(priv, "parent") == 0 && strcmp(heap_like, "parent") == 0;
        strcpy(priv, "child");
        strcpy(heap_like, "child");
        strcpy(shared, "child");
        write(fd[1], &ok, sizeof ok);
        _exit(0);
    }
    int ok = 0;
    read(fd[0], &ok, sizeof ok);
    waitpid(c, NULL, 0);
    P("child saw the parent's data", ok);
    P("child's private write not seen by parent", strcmp(priv, "parent") == 0);
    P("child's .data write not seen by parent", strcmp(heap_like, "parent") == 0);
    P("child's shared write seen by parent", strcmp(shared, "child") == 0);
    close(fd[0]);
    close(fd[1]);
    munmap(priv, PG);
    munmap(shared, PG);
}

static int recurse(int n) {
    volatile char chunk[4096];
    chunk[0] = (char)n;
    chunk[4095] = (char)n;
    if (n == 0) return chunk[0];
    return recurse(n - 1) + chunk[4095] - (char)n;
}

static void big_test(void) {
    printf("== larger areas\n");
    size_t n = 16UL << 20;
    char *p = malloc(n);
    P("malloc 16 MiB", p != NULL);
    for (size_t i = 0; i < n; i += PG) p[i] = (char)(i >> 12);
    int ok = 1;
    for (size_t i = 0; i < n; i += PG)
        if (p[i] != (char)(i >> 12)) ok = 0;
    P("every page touched and read back", ok);
    free(p);
    P("stack grows by 2 MiB", recurse(512) == 0);
}

static void errors_test(void) {
    printf("== errors\n");
    errno = 0;
    resp("mmap length 0", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    resp("mmap neither SHARED nor PRIVATE", mmap(NULL, PG, PROT_READ, MAP_ANONYMOUS, -1, 0));
    resp("mmap file with fd -1", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, -1, 0));
    resp("mmap fd 999", mmap(NULL, PG, PROT_READ, MAP_PRIVATE, 999, 0));
    resp("mmap MAP_FIXED unaligned", mmap((void *)0x10000001, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    resp("mmap huge length", mmap(NULL, 1UL << 50, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    char *p = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    res("munmap unaligned", munmap(p + 1, PG));
    res("munmap length 0", munmap(p, 0));
    res("mprotect unaligned", mprotect(p + 1, PG, PROT_READ));
    res("mprotect bad prot", mprotect(p, PG, 0x100));
    munmap(p, PG);
    res("mprotect unmapped", mprotect(p, PG, PROT_READ));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: mm SCRATCH_DIR\n");
        return 2;
    }
    dir = argv[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    brk_test();
    anon_test();
    protect_test();
    remap_test();
    file_test();
    dontneed_test();
    fork_test();
    big_test();
    errors_test();
    printf("done\n");
    return 0;
}
