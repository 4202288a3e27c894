/* files.c - basic file descriptors (modest: the filesystem layer has its
 * own tests).
 *
 * Covers, in the scratch directory argv[1]: open O_CREAT|O_EXCL (EEXIST the
 * second time), write/read, lseek SEEK_SET/CUR/END and past the end (a hole
 * reads as zeros), pread/pwrite, readv/writev, fstat/stat/lstat sizes and
 * types, O_APPEND, ftruncate, unlink (ENOENT after; an open fd keeps
 * working), mkdir/rmdir, rename; pipes (data, EOF when the writer closes,
 * EPIPE with SIGPIPE ignored, O_NONBLOCK EAGAIN, 1 MiB through a pipe to a
 * child); dup, dup2 (same fd, shared offset), dup3 O_CLOEXEC, fcntl F_DUPFD,
 * F_GETFD/F_SETFD, F_GETFL; getcwd/chdir; the lowest free fd is reused.
 *
 * Paths under the scratch directory are never printed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define YN(c) ((c) ? "yes" : "no")
#define P(label, cond) printf("%s: %s\n", label, YN(cond))

static const char *dir;

static const char *ename(int e) {
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static void res(const char *label, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", label, ename(errno));
    else
        printf("%s: %ld\n", label, r);
}

static char *path(const char *name) {
    static char bufs[4][4096];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

static void basic(void) {
    printf("== open/read/write/lseek\n");
    int fd = open(path("f"), O_RDWR | O_CREAT | O_EXCL, 0644);
    P("open O_CREAT|O_EXCL", fd >= 0);
    errno = 0;
    res("open O_EXCL again", open(path("f"), O_RDWR | O_CREAT | O_EXCL, 0644));
    res("write 11", write(fd, "hello world", 11));
    res("lseek SEEK_CUR 0", lseek(fd, 0, SEEK_CUR));
    res("lseek SEEK_SET 6", lseek(fd, 6, SEEK_SET));
    char b[64] = {0};
    res("read", read(fd, b, sizeof b));
    printf("read back: %s\n", b);
    res("read at EOF", read(fd, b, sizeof b));
    res("lseek SEEK_END -5", lseek(fd, -5, SEEK_END));
    res("lseek past the end", lseek(fd, 100, SEEK_SET));
    res("write after the hole", write(fd, "!", 1));
    struct stat st;
    fstat(fd, &st);
    printf("fstat size: %lld regular: %s\n", (long long)st.st_size, YN(S_ISREG(st.st_mode)));
    memset(b, 'x', sizeof b);
    res("pread in the hole", pread(fd, b, 10, 20));
    P("hole reads as zeros", b[0] == 0 && b[9] == 0);
    res("pwrite at 0", pwrite(fd, "HELLO", 5, 0));
    res("offset unchanged by pread/pwrite", lseek(fd, 0, SEEK_CUR));
    pread(fd, b, 11, 0);
    b[11] = 0;
    printf("after pwrite: %s\n", b);
    struct iovec iov[3] = {{"ab", 2}, {"cde", 3}, {"f", 1}};
    lseek(fd, 0, SEEK_SET);
    res("writev 3 buffers", writev(fd, iov, 3));
    char r1[3] = {0}, r2[4] = {0};
    struct iovec riov[2] = {{r1, 2}, {r2, 3}};
    lseek(fd, 0, SEEK_SET);
    res("readv", readv(fd, riov, 2));
    printf("readv: %s|%s\n", r1, r2);
    res("ftruncate 4", ftruncate(fd, 4));
    fstat(fd, &st);
    printf("size after ftruncate: %lld\n", (long long)st.st_size);
    errno = 0;
    res("lseek negative", lseek(fd, -1, SEEK_SET));
    res("lseek bad whence", lseek(fd, 0, 99));
    close(fd);

    fd = open(path("f"), O_WRONLY | O_APPEND);
    lseek(fd, 0, SEEK_SET);
    write(fd, "XY", 2);
    close(fd);
    stat(path("f"), &st);
    printf("O_APPEND: size %lld\n", (long long)st.st_size);
    P("stat mode 0644 (umask 022)", (st.st_mode & 0777) == 0644);

    res("mkdir", mkdir(path("d"), 0755));
    errno = 0;
    res("mkdir again", mkdir(path("d"), 0755));
    stat(path("d"), &st);
    P("stat: directory", S_ISDIR(st.st_mode));
    res("rename file into the directory", rename(path("f"), path("d/g")));
    errno = 0;
    res("open the old name", open(path("f"), O_RDONLY));
    fd = open(path("d/g"), O_RDONLY);
    P("open the new name", fd >= 0);
    res("unlink while open", unlink(path("d/g")));
    res("read from the unlinked file", read(fd, b, sizeof b));
    close(fd);
    errno = 0;
    res("stat after unlink", stat(path("d/g"), &st));
    res("rmdir", rmdir(path("d")));
    errno = 0;
    res("rmdir missing", rmdir(path("d")));
    res("open O_DIRECTORY on a file-less path", open(path("nothing"), O_RDONLY | O_DIRECTORY));
    res("symlink", symlink("target-that-does-not-exist", path("ln")));
    lstat(path("ln"), &st);
    P("lstat: symlink", S_ISLNK(st.st_mode));
    errno = 0;
    res("stat of a dangling symlink", stat(path("ln"), &st));
    unlink(path("ln"));
}

static void pipes(void) {
    printf("== pipes\n");
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    res("pipe", pipe(p));
    res("write", write(p[1], "abc", 3));
    char b[16] = {0};
    res("read", read(p[0], b, sizeof b));
    printf("got: %s\n", b);
    struct stat st;
    fstat(p[0], &st);
    P("fstat: FIFO", S_ISFIFO(st.st_mode));
    errno = 0;
    res("lseek on a pipe", lseek(p[0], 0, SEEK_CUR));
    close(p[1]);
    res("read with the writer closed (EOF)", read(p[0], b, sizeof b));
    close(p[0]);
    pipe(p);
    close(p[0]);
    errno = 0;
    res("write with the reader closed", write(p[1], "x", 1));
    close(p[1]);
    res("pipe2 O_NONBLOCK", pipe2(p, O_NONBLOCK));
    errno = 0;
    res("read empty nonblocking pipe", read(p[0], b, 1));
    P("F_GETFL has O_NONBLOCK", (fcntl(p[0], F_GETFL) & O_NONBLOCK) != 0);
    long total = 0;
    ssize_t n;
    static char chunk[65536];
    while ((n = write(p[1], chunk, sizeof chunk)) > 0) total += n;
    printf("fill nonblocking pipe: stopped with %s, capacity >= 4096: %s\n", ename(errno), YN(total >= 4096));
    close(p[0]);
    close(p[1]);
    signal(SIGPIPE, SIG_DFL);

    /* 1 MiB from a child */
    pipe(p);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        close(p[0]);
        static char buf[4096];
        for (int i = 0; i < 256; i++) {
            memset(buf, 'a' + i % 26, sizeof buf);
            if (write(p[1], buf, sizeof buf) != sizeof buf) _exit(1);
        }
        _exit(0);
    }
    close(p[1]);
    long got = 0, bad = 0;
    while ((n = read(p[0], chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (chunk[i] != 'a' + ((got + i) / 4096) % 26) bad++;
        got += n;
    }
    close(p[0]);
    int stt;
    waitpid(c, &stt, 0);
    printf("1 MiB through a pipe: %ld bytes, %ld wrong, child status %d\n", got, bad, WEXITSTATUS(stt));
}

static void dups(void) {
    printf("== dup family and fcntl\n");
    int fd = open(path("dupfile"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789", 10);
    lseek(fd, 2, SEEK_SET);
    int d = dup(fd);
    P("dup returns a new fd", d >= 0 && d != fd);
    char c;
    read(d, &c, 1);
    printf("dup shares the offset: read '%c', original now at %ld\n", c, (long)lseek(fd, 0, SEEK_CUR));
    res("dup2 to 50", dup2(fd, 50));
    res("dup2 to itself", dup2(fd, fd));
    errno = 0;
    res("dup3 to itself", dup3(fd, fd, 0));
    res("dup3 O_CLOEXEC to 51", dup3(fd, 51, O_CLOEXEC));
    printf("F_GETFD 51: %d, F_GETFD 50: %d\n", fcntl(51, F_GETFD), fcntl(50, F_GETFD));
    res("F_SETFD FD_CLOEXEC", fcntl(50, F_SETFD, FD_CLOEXEC));
    printf("F_GETFD 50 now: %d\n", fcntl(50, F_GETFD));
    res("F_DUPFD from 60", fcntl(fd, F_DUPFD, 60));
    res("F_DUPFD_CLOEXEC from 60", fcntl(fd, F_DUPFD_CLOEXEC, 60));
    printf("F_GETFD 61: %d\n", fcntl(61, F_GETFD));
    printf("F_GETFL access mode O_RDWR: %s\n", YN((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR));
    /* dup2 over an open fd closes it first */
    int other = open(path("dupfile"), O_RDONLY);
    res("dup2 over an open fd", dup2(fd, other));
    lseek(fd, 7, SEEK_SET);
    printf("the replaced fd follows the new file offset: %ld\n", (long)lseek(other, 0, SEEK_CUR));
    close(50); close(51); close(60); close(61); close(other); close(d);
    /* lowest free fd */
    int a = open("/", O_RDONLY);
    int b2 = open("/", O_RDONLY);
    close(a);
    int again = open("/", O_RDONLY);
    P("lowest free fd reused", again == a);
    close(again);
    close(b2);
    errno = 0;
    res("close(-1)", close(-1));
    res("close(fd) twice", (close(fd), close(fd)));
    res("dup of a closed fd", dup(fd));
    res("fcntl of a closed fd", fcntl(fd, F_GETFD));
    res("read of a closed fd", read(fd, &c, 1));
    unlink(path("dupfile"));
}

static void cwd(void) {
    printf("== getcwd/chdir\n");
    char here[4096], now[4096];
    P("getcwd", getcwd(here, sizeof here) != NULL);
    res("chdir to the scratch dir", chdir(dir));
    getcwd(now, sizeof now);
    char real[4096];
    P("getcwd is the scratch dir", realpath(dir, real) && strcmp(now, real) == 0);
    int fd = open("rel", O_CREAT | O_WRONLY, 0600);
    P("relative open lands in the cwd", fd >= 0 && access(path("rel"), F_OK) == 0);
    close(fd);
    unlink("rel");
    res("chdir ..", chdir(".."));
    errno = 0;
    res("chdir to a missing dir", chdir(path("missing")));
    res("getcwd into a 1-byte buffer", getcwd(now, 1) ? 0 : -1);
    chdir(here);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: files SCRATCH_DIR\n");
        return 2;
    }
    dir = argv[1];
    umask(022);
    basic();
    pipes();
    dups();
    cwd();
    printf("done\n");
    return 0;
}
