"""`mem=` is a limit on guest memory (issue 2): under `usermode run --mem 64M` a guest
that commits past 64 MiB gets ENOMEM, while reservations, thread stacks and arenas do not
count. Not differential (natively the host's own overcommit policy applies): the guest
program prints what it saw and the test asserts on that."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USERMODE = REPO / ".venv" / "bin" / "usermode"

PROGRAM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MiB (1UL << 20)
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static const char *en(int e) { return e ? strerrorname_np(e) : "ok"; }

static void *map(const char *what, size_t n, int prot, int flags) {
    errno = 0;
    void *p = mmap(NULL, n, prot, flags, -1, 0);
    if (p == MAP_FAILED) {
        printf("%s: %s\n", what, en(errno));
        return NULL;
    }
    printf("%s: ok\n", what);
    return p;
}

static void touch(char *p, size_t n) {
    for (size_t i = 0; i < n; i += 4096)
        p[i] = 1;
}

static long meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':')
            v = atol(line + n + 1);
    if (f)
        fclose(f);
    return v;
}

static void *worker(void *arg) {
    char *p = malloc(256 * 1024);
    touch(p, 256 * 1024);
    free(p);
    return arg;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "after-exec")) {
        /* the parent holds 24 MiB; the pre-exec copy of it was released by exec */
        char *p = map("after exec: mmap 32M", 32 * MiB, RW, ANON);
        if (p)
            touch(p, 32 * MiB);
        return 0;
    }
    printf("CommitLimit: %ld kB\n", meminfo("CommitLimit"));

    char *a = malloc(16 * MiB);
    touch(a, 16 * MiB);
    printf("malloc 16M: %s\n", a ? "ok" : "failed");
    map("mmap 256M rw", 256 * MiB, RW, ANON);
    void *r = map("mmap 256M PROT_NONE", 256 * MiB, PROT_NONE, ANON);
    munmap(r, 256 * MiB);
    r = map("mmap 256M MAP_NORESERVE", 256 * MiB, RW, ANON | MAP_NORESERVE);
    munmap(r, 256 * MiB);
    r = map("mmap 256M read-only", 256 * MiB, PROT_READ, ANON);
    munmap(r, 256 * MiB);
    map("mmap 256M shared", 256 * MiB, RW, MAP_SHARED | MAP_ANONYMOUS);

    /* brk: charged when it grows, returned when it shrinks */
    errno = 0;
    printf("sbrk 64M: %s\n", sbrk(64 * MiB) == (void *)-1 ? en(errno) : "ok");
    errno = 0;
    char *h = sbrk(8 * MiB);
    printf("sbrk 8M: %s\n", h == (void *)-1 ? en(errno) : "ok");
    touch(h, 8 * MiB);
    map("with 16M+8M held: mmap 48M", 48 * MiB, RW, ANON);
    printf("sbrk -8M: %s\n", sbrk(-(long)(8 * MiB)) == (void *)-1 ? "failed" : "ok");
    r = map("with 16M held: mmap 40M", 40 * MiB, RW, ANON);
    munmap(r, 40 * MiB);

    /* munmap returns the commit */
    char *b = map("mmap 24M", 24 * MiB, RW, ANON);
    touch(b, 24 * MiB);
    map("with 16M+24M held: mmap 32M", 32 * MiB, RW, ANON);
    long cas = meminfo("Committed_AS");
    printf("Committed_AS >= 40M: %s\n", cas >= 40 * 1024 ? "yes" : "no");

    /* fork: the child's copy counts again (80M > 64M); exit returns it */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        map("forked child: mmap 2M", 2 * MiB, RW, ANON);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    r = map("after the child exited: mmap 2M", 2 * MiB, RW, ANON);
    munmap(r, 2 * MiB);

    free(a);
    char *c = map("after freeing the 16M: mmap 32M", 32 * MiB, RW, ANON);
    touch(c, 32 * MiB);
    map("with 24M+32M held: mmap 12M", 12 * MiB, RW, ANON);

    /* a partial munmap returns just the overlap */
    printf("munmap 8M out of the middle: %s\n", en(munmap(c + 8 * MiB, 8 * MiB) ? errno : 0));
    r = map("with 24M+24M held: mmap 12M", 12 * MiB, RW, ANON);
    munmap(r, 12 * MiB);

    /* mremap: growth is checked first, shrinking returns the tail */
    errno = 0;
    void *m = mremap(b, 24 * MiB, 200 * MiB, MREMAP_MAYMOVE);
    printf("mremap 24M -> 200M: %s\n", m == MAP_FAILED ? en(errno) : "ok");
    if (m != MAP_FAILED)
        b = m;
    m = mremap(b, 24 * MiB, 4 * MiB, 0);
    printf("mremap 24M -> 4M: %s\n", m == MAP_FAILED ? en(errno) : "ok");
    r = map("with 4M+24M held: mmap 20M", 20 * MiB, RW, ANON);
    munmap(r, 20 * MiB);
    errno = 0;
    b = mremap(b, 4 * MiB, 16 * MiB, MREMAP_MAYMOVE);
    printf("mremap 4M -> 16M: %s\n", b == MAP_FAILED ? en(errno) : "ok");
    touch(b, 16 * MiB);
    map("with 16M+24M held: mmap 32M", 32 * MiB, RW, ANON);
    munmap(c, 8 * MiB);
    munmap(c + 16 * MiB, 16 * MiB);
    munmap(b, 8 * MiB);                       /* b: 16M -> its upper 8M */
    b += 8 * MiB;

    /* exec releases the forked copy: the new image can map 32M next to our 8M */
    char *x = map("mmap 16M", 16 * MiB, RW, ANON);
    touch(x, 16 * MiB);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl(argv[0], argv[0], "after-exec", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("exec'd child status: %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    munmap(x, 16 * MiB);
    munmap(b, 8 * MiB);

    /* threads: 8 MiB stacks and 64 MiB arenas are reservations, not commit */
    pthread_t th[8];
    int ok = 1;
    for (int i = 0; i < 8; i++)
        ok &= pthread_create(&th[i], NULL, worker, (void *)(long)i) == 0;
    for (int i = 0; i < 8; i++) {
        void *ret;
        ok &= pthread_join(th[i], &ret) == 0 && ret == (void *)(long)i;
    }
    printf("8 threads: %s\n", ok ? "ok" : "failed");
    r = map("after the threads: mmap 48M", 48 * MiB, RW, ANON);
    if (r)
        touch(r, 48 * MiB);
    printf("done\n");
    return 0;
}
"""

EXPECTED = """\
CommitLimit: 65536 kB
malloc 16M: ok
mmap 256M rw: ENOMEM
mmap 256M PROT_NONE: ok
mmap 256M MAP_NORESERVE: ok
mmap 256M read-only: ok
mmap 256M shared: ENOMEM
sbrk 64M: ENOMEM
sbrk 8M: ok
with 16M+8M held: mmap 48M: ENOMEM
sbrk -8M: ok
with 16M held: mmap 40M: ok
mmap 24M: ok
with 16M+24M held: mmap 32M: ENOMEM
Committed_AS >= 40M: yes
forked child: mmap 2M: ENOMEM
after the child exited: mmap 2M: ok
after freeing the 16M: mmap 32M: ok
with 24M+32M held: mmap 12M: ENOMEM
munmap 8M out of the middle: ok
with 24M+24M held: mmap 12M: ok
mremap 24M -> 200M: ENOMEM
mremap 24M -> 4M: ok
with 4M+24M held: mmap 20M: ok
mremap 4M -> 16M: ok
with 16M+24M held: mmap 32M: ENOMEM
mmap 16M: ok
after exec: mmap 32M: ok
exec'd child status: 0
8 threads: ok
after the threads: mmap 48M: ok
done
"""


@pytest.fixture(scope="module")
def prog(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed")
    d = tmp_path_factory.mktemp("memlimit")
    src = d / "memlimit.c"
    src.write_text(PROGRAM)
    exe = d / "memlimit"
    subprocess.run(["gcc", "-O1", "-static", "-pthread", "-o", str(exe), str(src)],
                   check=True, capture_output=True)
    return exe


def run(prog: Path, mem: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(USERMODE), "run", "--mem", mem, "--", str(prog)],
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)


def test_mem_limit_64m(prog: Path) -> None:
    p = run(prog, "64M")
    err = p.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert p.stdout.decode() == EXPECTED, err[-2000:]
    assert p.returncode == 0, err[-2000:]


def test_mem_limit_scales(prog: Path) -> None:
    """With more memory the same program's 256 MiB mapping succeeds."""
    p = run(prog, "1G")
    out = p.stdout.decode()
    assert "mmap 256M rw: ok" in out and "sbrk 64M: ok" in out, p.stderr.decode()[-2000:]
    assert out.endswith("done\n") and p.returncode == 0
