/* Compile-and-run macrobenchmark: a small program with a few headers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

int main(void) {
    char *words[] = {"usermode", "linux", "uml", "gvisor", "proot"};
    qsort(words, 5, sizeof *words, cmp);
    for (int i = 0; i < 5; i++)
        printf("%s%c", words[i], i < 4 ? ' ' : '\n');
    return 0;
}
