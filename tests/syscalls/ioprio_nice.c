/* ioprio_nice.c - I/O priority and nice: recorded per process and inherited by fork
 * (ionice, nice). The real-time I/O class is left out: it needs CAP_SYS_NICE, which a
 * container's root may lack.  argv[1] (scratch directory) unused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PRIO(cls, data) (((cls) << 13) | (data))
#define WHO_PROCESS 1

static long get(pid_t who) { return syscall(SYS_ioprio_get, WHO_PROCESS, who); }

static const char *set(pid_t who, int prio) {
    return syscall(SYS_ioprio_set, WHO_PROCESS, who, prio) == 0 ? "ok" : strerrorname_np(errno);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *r = set(0, PRIO(2, 5));
    printf("set best-effort 5: %s, now %#lx\n", r, get(getpid()));
    r = set(0, PRIO(3, 0));
    printf("set idle: %s, now %#lx\n", r, get(0));
    printf("set class 5: %s\n", set(0, PRIO(5, 0)));
    printf("set none with a level: %s\n", set(0, PRIO(0, 3)));
    printf("get of no process: %s\n", get(999999) < 0 ? strerrorname_np(errno) : "found");
    printf("get with which 9: %s\n",
           syscall(SYS_ioprio_get, 9, 0) < 0 ? strerrorname_np(errno) : "ok");
    set(0, PRIO(2, 2));
    setpriority(PRIO_PROCESS, 0, 7);
    pid_t pid = fork();
    if (pid == 0) {
        printf("child inherits ioprio %#lx and nice %d\n", get(0),
               getpriority(PRIO_PROCESS, 0));
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    printf("done\n");
    return 0;
}
