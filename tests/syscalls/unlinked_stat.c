/* unlinked_stat.c - fstat of an open file whose name is gone.
 *
 * dpkg-deb writes each member of a .deb into an unlinked temporary file (a child
 * compressor writes it) and takes the member's size from fstat. The size, nlink and
 * statx of the open file must follow writes by this process and by a child sharing
 * the open file, with no name left to look the file up by.
 *
 * argv[1]: scratch directory (on the filesystem under test).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, int fd) {
    struct stat st;
    struct statx sx;
    fstat(fd, &st);
    statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_NLINK, &sx);
    printf("%s: size %lld nlink %d statx size %lld\n", what, (long long)st.st_size,
           (int)st.st_nlink, (long long)sx.stx_size);
}

int main(int argc, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/unlinked", argc > 1 ? argv[1] : ".");
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    write(fd, "abc", 3);
    show("named", fd);
    unlink(path);
    write(fd, "def", 3);
    show("unlinked, own write", fd);
    if (fork() == 0) {
        write(fd, "0123456789", 10);
        _exit(0);
    }
    wait(NULL);
    show("unlinked, child write", fd);
    ftruncate(fd, 4);
    show("truncated", fd);
    printf("lseek end: %lld\n", (long long)lseek(fd, 0, SEEK_END));
    close(fd);
    printf("done\n");
    return 0;
}
