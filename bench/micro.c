/* Microbenchmarks run natively, in the real UML and in usermode (bench/run.py).
 * Prints "name microseconds-per-op" lines. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}
#define BENCH(name, n, body) do { double t0 = now(); for (int i = 0; i < (n); i++) { body; } \
    printf("%s %.3f\n", name, (now() - t0) / (n)); fflush(stdout); } while (0)

int main(int argc, char **argv) {
    int scale = argc > 1 ? atoi(argv[1]) : 1;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    char path[256];
    snprintf(path, sizeof path, "%s/bench.dat", dir);
    struct timespec ts;
    BENCH("getppid", 20000 * scale, syscall(SYS_getppid));
    BENCH("clock_gettime", 200000 * scale, clock_gettime(CLOCK_MONOTONIC, &ts));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    BENCH("write4k", 2000 * scale, pwrite(fd, buf, sizeof buf, (off_t)(i % 256) * 4096));
    BENCH("read4k", 2000 * scale, pread(fd, buf, sizeof buf, (off_t)(i % 256) * 4096));
    close(fd);
    int p1[2], p2[2];
    pipe(p1); pipe(p2);
    pid_t c = fork();
    if (c == 0) {
        char b;
        close(p1[1]);
        close(p2[0]);
        while (read(p1[0], &b, 1) == 1) write(p2[1], &b, 1);
        _exit(0);
    }
    BENCH("pipe_pingpong", 1000 * scale, { char b = 1; write(p1[1], &b, 1); read(p2[0], &b, 1); });
    close(p1[1]);
    waitpid(c, NULL, 0);
    BENCH("fork_wait", 100 * scale, { pid_t p = fork(); if (p == 0) _exit(0); waitpid(p, NULL, 0); });
    BENCH("fork_exec_wait", 30 * scale, { pid_t p = fork(); if (p == 0) { execl("/bin/true", "true", (char *)0); _exit(127); } waitpid(p, NULL, 0); });
    BENCH("mmap_touch_1m", 200 * scale, { char *m = mmap(0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); for (int j = 0; j < (1 << 20); j += 4096) m[j] = 1; munmap(m, 1 << 20); });
    BENCH("open_close", 2000 * scale, close(open(path, O_RDONLY)));
    struct stat st;
    BENCH("stat", 2000 * scale, stat(path, &st));
    unlink(path);
    return 0;
}
