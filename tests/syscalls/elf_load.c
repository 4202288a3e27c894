/* elf_load.c - what exec leaves in the address space.
 *
 * Covers: initialised data and a bss that shares its first page with the data (the
 * rest of that page zeroed, as Linux's padzero does, and the bss zero), writes to data
 * and bss staying private to the process (a forked child and a re-exec see the original
 * values), the executable's own segments listed in /proc/self/maps under its path with
 * the permissions of its PT_LOAD headers, and text readable as bytes (the ELF magic at
 * the start of the first mapping).
 *
 * Usage: elf_load SCRATCH_DIR [child]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int data_word = 0x1234;
static char data_text[64] = "initialised data";
static char bss[200000];
extern char _end[];

static long bss_sum(void) {
    long s = 0;
    for (size_t i = 0; i < sizeof bss; i++)
        s += bss[i];
    return s;
}

static int rest_of_page_zero(void) {
    char *p = _end;
    char *page_end = (char *)(((unsigned long)p + 4095) & ~4095UL);
    for (; p < page_end; p++)
        if (*p)
            return 0;
    return 1;
}

static void own_maps(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) {
        printf("readlink exe failed\n");
        return;
    }
    exe[n] = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[8192];
    int count = 0, magic = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off;
        char perms[8], path[4096] = "";
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %4095s", &lo, &hi, perms, &off, path) < 4)
            continue;
        if (strcmp(path, exe) != 0)
            continue;
        if (count == 0)
            magic = memcmp((void *)lo, "\177ELF", 4) == 0;
        printf("exe mapping %d: %s\n", count++, perms);
    }
    if (f)
        fclose(f);
    printf("exe mappings: %s, ELF magic at the first: %s\n", count ? "yes" : "no",
           magic ? "yes" : "no");
}

int main(int argc, char **argv) {
    if (argc > 2) {
        printf("child after exec: data %#x %s, bss sum %ld\n", data_word, data_text, bss_sum());
        return 0;
    }
    printf("data %#x %s\n", data_word, data_text);
    printf("bss sum %ld, rest of the page after _end zero: %s\n", bss_sum(),
           rest_of_page_zero() ? "yes" : "no");
    own_maps();
    data_word = 0x5678;
    strcpy(data_text, "changed");
    memset(bss, 1, sizeof bss);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        printf("child after fork: data %#x %s, bss sum %ld\n", data_word, data_text, bss_sum());
        fflush(stdout);
        execl("/proc/self/exe", argv[0], argv[1], "child", (char *)0);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    printf("child status %d; parent: data %#x %s, bss sum %ld\n", WEXITSTATUS(st), data_word,
           data_text, bss_sum());
    printf("done\n");
    return 0;
}
