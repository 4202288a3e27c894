/* timeit NAME REPS PROG ARGS...: runs PROG REPS times (fork, exec, wait) inside whichever
 * system runs us and prints "NAME microseconds-per-run", so that boot time is not counted.
 * PROG's own stdout goes through; a failing run prints "NAME-failed STATUS". */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: timeit NAME REPS PROG [ARGS...]\n");
        return 2;
    }
    int reps = atoi(argv[2]);
    double t0 = now();
    for (int i = 0; i < reps; i++) {
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) {
            execv(argv[3], argv + 3);
            _exit(127);
        }
        int st;
        waitpid(p, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            printf("%s-failed %d\n", argv[1], st);
            return 1;
        }
    }
    printf("%s %.3f\n", argv[1], (now() - t0) / reps);
    return 0;
}
