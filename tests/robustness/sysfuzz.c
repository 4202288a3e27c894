/* Random syscalls with garbage arguments, each batch in a throwaway child bounded by
 * alarm(). Run as init of a disposable guest: the kernel must answer every call with a
 * value (usually -errno) and stay up; the parent prints only a summary. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const int skip[] = { SYS_fork, SYS_vfork, SYS_clone, SYS_clone3, SYS_execve,
    SYS_execveat, SYS_reboot, SYS_kill, SYS_tkill, SYS_tgkill, SYS_rt_sigqueueinfo,
    SYS_rt_tgsigqueueinfo, SYS_exit, SYS_exit_group, SYS_mount, SYS_umount2, SYS_chroot,
    SYS_pivot_root, SYS_setrlimit, SYS_prlimit64, SYS_vhangup, SYS_sethostname,
    SYS_setdomainname, SYS_pidfd_send_signal, SYS_ptrace, SYS_seccomp, SYS_prctl, 0 };

static uint64_t rnd(void) { return ((uint64_t)random() << 33) ^ ((uint64_t)random() << 2) ^ random(); }

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    srandom(argc > 2 ? atoi(argv[2]) : 1);
    char *rw = mmap(0, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *edge = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(edge + 4096, 4096);
    int calls = 0, children = 0;
    for (int r = 0; r < rounds; r++) {
        for (long nr = 0; nr < 460; nr++) {
            int bad = 0;
            for (int i = 0; skip[i]; i++) if (skip[i] == nr) bad = 1;
            if (bad) continue;
            pid_t c = fork();
            if (c == 0) {
                alarm(1);
                for (int j = 0; j < 8; j++) {
                    uint64_t a[6];
                    for (int k = 0; k < 6; k++) {
                        switch (random() % 9) {
                        case 0: a[k] = 0; break;
                        case 1: a[k] = (uint64_t)-1; break;
                        case 2: a[k] = random() % 64; break;
                        case 3: a[k] = (uint64_t)(rw + random() % 65000); break;
                        case 4: a[k] = (uint64_t)ro; break;
                        case 5: a[k] = (uint64_t)(edge + 4090); break;
                        case 6: a[k] = 0x7fffffffffffULL; break;
                        case 7: a[k] = rnd(); break;
                        default: a[k] = 1ULL << (random() % 64);
                        }
                    }
                    for (int k = 0; k < 256; k++) rw[random() % 65536] = random();
                    syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
                }
                _exit(0);
            }
            if (c > 0) {
                children++;
                calls += 8;
                int st;
                waitpid(c, &st, 0);
            }
        }
    }
    printf("fuzz done: %d children, %d calls, kernel alive\n", children, calls);
    return 0;
}
