/* 4 KiB block I/O on a block device or image file: sequential and random writes and
 * reads, in microseconds per operation ("name value" lines, like micro.c).
 *     ubdio PATH COUNT     (PATH must hold at least COUNT * 4 KiB) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static long pick(long i, long n, int random) {
    return random ? (long)(((unsigned long)i * 2654435761UL + 12345) % (unsigned long)n) : i;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: ubdio PATH COUNT\n"); return 2; }
    long n = atol(argv[2]);
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) { perror(argv[1]); return 1; }
    char buf[4096];
    memset(buf, 0x5a, sizeof buf);
    const char *names[4] = {"ubd_seq_write_4k", "ubd_rand_write_4k",
                            "ubd_seq_read_4k", "ubd_rand_read_4k"};
    for (int k = 0; k < 4; k++) {
        int random = k & 1, reading = k >= 2;
        double t0 = now();
        for (long i = 0; i < n; i++) {
            off_t off = (off_t)pick(i, n, random) * 4096;
            ssize_t r = reading ? pread(fd, buf, sizeof buf, off)
                                : pwrite(fd, buf, sizeof buf, off);
            if (r != (ssize_t)sizeof buf) { perror("io"); return 1; }
        }
        if (!reading)
            fsync(fd);
        printf("%s %.3f\n", names[k], (now() - t0) / n);
        fflush(stdout);
    }
    return 0;
}
