/* unix_sockets.c - AF_UNIX semantics, printed so native and usermode runs can be diffed.
 *
 * Covers: socket() type/flag/protocol errors, SOCK_CLOEXEC/SOCK_NONBLOCK, fstat S_IFSOCK
 * and the /proc/self/fd name; bind to a path (getsockname lengths, EADDRINUSE, EINVAL
 * lengths), autobind, listen on dgram (EOPNOTSUPP), EPROTOTYPE, ENOENT; connect/accept4
 * with flags, data before accept, SO_PEERCRED, poll masks, shutdown/EOF/EPIPE; datagram
 * MSG_TRUNC, zero-length datagrams, SIOCINQ/SIOCOUTQ, unnamed-sender address length;
 * SCM_RIGHTS with MSG_CTRUNC and MSG_CMSG_CLOEXEC, a NULL control buffer, a bad
 * cmsg_len; SCM_CREDENTIALS with SO_PASSCRED; sendmmsg/recvmmsg; SO_SNDBUF/SO_TYPE/
 * SO_DOMAIN/SO_RCVTIMEO (jiffies rounding, EAGAIN on expiry); and a forked client
 * streaming 100000 bytes to a MSG_WAITALL reader.
 * argv[1]: a scratch directory for the socket path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/sockios.h>
#include <unistd.h>

#define R(x) do { long _r = (long)(x); printf("%-60s = %ld%s%s\n", #x, _r, _r < 0 ? " " : "", _r < 0 ? strerrorname_np(errno) : ""); } while (0)

static socklen_t mk(struct sockaddr_un *a, const char *p, int abstract) {
    memset(a, 0, sizeof *a); a->sun_family = AF_UNIX;
    if (abstract) { a->sun_path[0] = 0; memcpy(a->sun_path + 1, p, strlen(p)); return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(p); }
    strcpy(a->sun_path, p); return sizeof *a;
}

static char P[200];

int main(int argc, char **argv) {
    struct sockaddr_un a, b; socklen_t len; int sv[2], fd, l, c, s;
    char buf[256]; struct stat st;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(P, sizeof P, "%s/us.sock", argc > 1 ? argv[1] : "/tmp");

    R(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) >= 0);
    R(socket(AF_UNIX, 11, 0)); R(socket(AF_UNIX, 0, 0)); R(socket(AF_UNIX, SOCK_STREAM, 7));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    R(fcntl(fd, F_GETFD)); R(fcntl(fd, F_GETFL));
    fstat(fd, &st); R(S_ISSOCK(st.st_mode)); R(st.st_mode & 07777); R(st.st_size);
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", fd);
    { char l2[64] = {0}; R(readlink(buf, l2, 63) > 8); printf("  %.8s\n", l2); }

    /* names */
    unlink(P);
    l = socket(AF_UNIX, SOCK_STREAM, 0);
    R(bind(l, (void *)&a, mk(&a, P, 0)));
    len = sizeof b; R(getsockname(l, (void *)&b, &len)); R(len); printf("  %d\n", strcmp(b.sun_path, P));
    len = 5; R(getsockname(l, (void *)&b, &len)); R(len);
    R(stat(P, &st) == 0 && S_ISSOCK(st.st_mode));
    R(bind(socket(AF_UNIX, SOCK_STREAM, 0), (void *)&a, mk(&a, P, 0)));
    R(bind(socket(AF_UNIX, SOCK_STREAM, 0), (void *)&a, 1));
    R(bind(socket(AF_UNIX, SOCK_STREAM, 0), (void *)&a, 111));
    R(connect(socket(AF_UNIX, SOCK_STREAM, 0), (void *)&a, mk(&a, "/nonexistent/us_no_such", 0)));
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    R(bind(s, (void *)&a, offsetof(struct sockaddr_un, sun_path)));
    len = sizeof b; R(getsockname(s, (void *)&b, &len)); R(len);
    R(listen(l, 1)); R(listen(s, 1));
    R(connect(socket(AF_UNIX, SOCK_DGRAM, 0), (void *)&a, mk(&a, P, 0)));

    /* connect / accept4 */
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    R(connect(c, (void *)&a, mk(&a, P, 0)));
    R(write(c, "early", 5));
    len = sizeof b; memset(&b, 0x55, sizeof b);
    s = accept4(l, (void *)&b, &len, SOCK_NONBLOCK | SOCK_CLOEXEC); R(s >= 0); R(len); R(b.sun_family);
    R(fcntl(s, F_GETFL) & O_NONBLOCK); R(fcntl(s, F_GETFD));
    R(read(s, buf, sizeof buf)); R(read(s, buf, sizeof buf));
    len = sizeof b; R(getpeername(c, (void *)&b, &len)); R(len);
    len = sizeof b; R(getsockname(s, (void *)&b, &len)); R(len);
    { struct ucred u; len = sizeof u; R(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &u, &len)); R(u.pid == getpid()); R(len); }
    R(accept4(l, NULL, NULL, 0x10));
    { struct pollfd p = {l, POLLIN | POLLOUT, 0}; R(poll(&p, 1, 0)); R(p.revents); }
    { struct pollfd p = {c, 0xffff, 0}; R(poll(&p, 1, 0)); R(p.revents); }
    R(shutdown(s, SHUT_WR)); R(read(c, buf, 10));
    { struct pollfd p = {c, 0xffff, 0}; R(poll(&p, 1, 0)); R(p.revents); }
    R(close(s)); R(write(c, "x", 1)); R(send(c, "x", 1, MSG_NOSIGNAL));

    /* datagrams, MSG_TRUNC, SIOCINQ/OUTQ */
    R(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    R(send(sv[0], "0123456789", 10, 0)); R(send(sv[0], "", 0, 0));
    { int n; R(ioctl(sv[1], SIOCINQ, &n)); R(n); R(ioctl(sv[0], SIOCOUTQ, &n)); R(n); }
    R(recv(sv[1], buf, 4, MSG_TRUNC)); R(recv(sv[1], buf, 4, MSG_DONTWAIT)); R(recv(sv[1], buf, 4, MSG_DONTWAIT));
    { struct sockaddr_un from; len = sizeof from; R(send(sv[0], "z", 1, 0)); R(recvfrom(sv[1], buf, 4, 0, (void *)&from, &len)); R(len); }

    /* SCM_RIGHTS + MSG_CTRUNC + MSG_CMSG_CLOEXEC */
    R(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    {
        int fds[3] = {0, 1, 2}; char cbuf[CMSG_SPACE(sizeof fds)]; struct iovec io = {"D", 1};
        struct msghdr m = {0}; m.msg_iov = &io; m.msg_iovlen = 1; m.msg_control = cbuf; m.msg_controllen = sizeof cbuf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(sizeof fds);
        memcpy(CMSG_DATA(cm), fds, sizeof fds);
        R(sendmsg(sv[0], &m, 0)); R(sendmsg(sv[0], &m, 0));
        char rb[CMSG_SPACE(2 * sizeof(int))]; char d[4]; struct iovec ri = {d, 4};
        struct msghdr rm = {0}; rm.msg_iov = &ri; rm.msg_iovlen = 1; rm.msg_control = rb; rm.msg_controllen = sizeof rb;
        R(recvmsg(sv[1], &rm, MSG_CMSG_CLOEXEC)); R(rm.msg_flags); R(rm.msg_controllen);
        cm = CMSG_FIRSTHDR(&rm); R(cm->cmsg_len); int got[2]; memcpy(got, CMSG_DATA(cm), 8);
        R(fcntl(got[0], F_GETFD)); R(got[1] > got[0]);
        rm.msg_controllen = sizeof rb; R(recvmsg(sv[1], &rm, 0)); R(rm.msg_flags); R(rm.msg_controllen);
        cm = CMSG_FIRSTHDR(&rm); memcpy(got, CMSG_DATA(cm), 8); R(fcntl(got[0], F_GETFD));
        R(sendmsg(sv[0], &m, 0)); rm.msg_control = NULL; rm.msg_controllen = 0;
        R(recvmsg(sv[1], &rm, 0)); R(rm.msg_flags);
        cm = CMSG_FIRSTHDR(&m); cm->cmsg_len = CMSG_LEN(0) - 1; R(sendmsg(sv[0], &m, 0));
    }

    /* SCM_CREDENTIALS */
    R(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
    { int on = 1; R(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on)); }
    R(send(sv[0], "c", 1, 0));
    {
        char rb[CMSG_SPACE(sizeof(struct ucred))]; char d[4]; struct iovec ri = {d, 4};
        struct msghdr rm = {0}; rm.msg_iov = &ri; rm.msg_iovlen = 1; rm.msg_control = rb; rm.msg_controllen = sizeof rb;
        R(recvmsg(sv[1], &rm, 0)); struct cmsghdr *cm = CMSG_FIRSTHDR(&rm);
        R(cm->cmsg_type); R(cm->cmsg_len); struct ucred u; memcpy(&u, CMSG_DATA(cm), sizeof u);
        R(u.pid == getpid()); R(u.uid == getuid());
    }

    /* sendmmsg / recvmmsg */
    R(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    {
        struct mmsghdr mm[3]; struct iovec io[3] = {{"aa", 2}, {"bbb", 3}, {"c", 1}};
        memset(mm, 0, sizeof mm);
        for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &io[i]; mm[i].msg_hdr.msg_iovlen = 1; }
        R(sendmmsg(sv[0], mm, 3, 0)); R(mm[1].msg_len);
        char bufs[3][8]; struct iovec ri[3] = {{bufs[0], 8}, {bufs[1], 8}, {bufs[2], 8}};
        memset(mm, 0, sizeof mm);
        for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &ri[i]; mm[i].msg_hdr.msg_iovlen = 1; }
        R(recvmmsg(sv[1], mm, 3, MSG_DONTWAIT, NULL)); R(mm[2].msg_len);
    }

    /* socket options */
    { int v; len = sizeof v; R(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &len)); R(v);
      v = 1; R(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v)); len = 4; getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &len); R(v);
      len = 4; R(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &len)); R(v);
      len = 4; R(getsockopt(sv[0], SOL_SOCKET, SO_DOMAIN, &v, &len)); R(v);
      len = 4; R(getsockopt(sv[0], SOL_SOCKET, 999, &v, &len));
      struct timeval tv = {0, 300000}; R(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
      R(recv(sv[1], buf, 1, 0));
      len = sizeof tv; R(getsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, &len)); R(tv.tv_usec); }

    /* fork + blocking connect/accept across processes + peer creds of child */
    pid_t pid = fork();
    if (pid == 0) {
        int cc = socket(AF_UNIX, SOCK_STREAM, 0);
        connect(cc, (void *)&a, mk(&a, P, 0));
        char big[100000]; memset(big, 'q', sizeof big);
        size_t off = 0; while (off < sizeof big) { ssize_t n = write(cc, big + off, sizeof big - off); if (n <= 0) _exit(1); off += n; }
        _exit(0);
    }
    s = accept(l, NULL, NULL);
    { struct ucred u; len = sizeof u; getsockopt(s, SOL_SOCKET, SO_PEERCRED, &u, &len); R(u.pid == pid); }
    { static char big[100000]; R(recv(s, big, sizeof big, MSG_WAITALL)); R(big[99999]); }
    { int st2; waitpid(pid, &st2, 0); R(WEXITSTATUS(st2)); }
    unlink(P);
    printf("done\n");
    return 0;
}
