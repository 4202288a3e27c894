"""Pseudo-terminals end to end: a static C program (posix_openpt/grantpt/unlockpt/ptsname,
a child shell on the slave as its controlling tty) and Python's os.openpty, each run
natively and under `usermode run` with the outputs compared."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
USERMODE = REPO / ".venv" / "bin" / "usermode"
PYTHON = "/usr/bin/python3"

PTY_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void show(const char *buf, size_t n) {
    /* \r and \n made visible, /dev/pts/<digits> printed as /dev/pts/N */
    for (size_t i = 0; i < n; i++) {
        if (i + 9 <= n && memcmp(buf + i, "/dev/pts/", 9) == 0) {
            fputs("/dev/pts/N", stdout);
            i += 9;
            while (i < n && buf[i] >= '0' && buf[i] <= '9') i++;
            i--;
        } else if (buf[i] == '\r') fputs("\\r", stdout);
        else if (buf[i] == '\n') fputs("\\n\n", stdout);
        else putchar(buf[i]);
    }
}

static int lines(const char *buf, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += buf[i] == '\n';
    return c;
}

int main(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) { perror("posix_openpt"); return 1; }
    if (grantpt(m) != 0) { perror("grantpt"); return 1; }
    char *name = ptsname(m);
    if (!name) { perror("ptsname"); return 1; }
    char path[64];
    snprintf(path, sizeof path, "%s", name);
    printf("ptsname prefix ok: %d\n", strncmp(path, "/dev/pts/", 9) == 0);
    int early = open(path, O_RDWR | O_NOCTTY);
    printf("open before unlockpt: %s\n", early < 0 ? strerror(errno) : "opened");
    if (unlockpt(m) != 0) { perror("unlockpt"); return 1; }
    struct stat st;
    if (stat(path, &st) != 0) { perror("stat"); return 1; }
    printf("slave: chr=%d mode_ok=%d mine=%d major=%d\n", S_ISCHR(st.st_mode) != 0,
           (st.st_mode & 0600) == 0600 && !(st.st_mode & 07), st.st_uid == getuid(),
           (int)(st.st_rdev >> 8) & 0xfff);
    printf("isatty(master)=%d\n", isatty(m));
    struct winsize ws = {.ws_row = 30, .ws_col = 100};
    ioctl(m, TIOCSWINSZ, &ws);
    memset(&ws, 0, sizeof ws);
    ioctl(m, TIOCGWINSZ, &ws);
    printf("winsize %dx%d\n", ws.ws_row, ws.ws_col);
    fflush(stdout);

    pid_t pid = fork();
    if (pid == 0) {
        close(m);
        setsid();
        int s = open(path, O_RDWR);
        if (s < 0) _exit(90);
        dup2(s, 0); dup2(s, 1); dup2(s, 2);
        if (s > 2) close(s);
        if (tcgetsid(0) == getpid()) write(1, "ctty ok\n", 8);
        execl("/bin/sh", "sh", "-c", "echo hello; tty; stty size; read x; echo got $x; exit 3",
              (char *)0);
        _exit(91);
    }
    char buf[4096];
    size_t n = 0;
    int wrote = 0;
    for (;;) {
        ssize_t r = read(m, buf + n, sizeof buf - n);
        if (r <= 0) {
            printf("master read end: %s\n", r < 0 ? strerror(errno) : "EOF");
            break;
        }
        n += r;
        if (!wrote && lines(buf, n) >= 4) {     /* ctty ok, hello, tty, stty size */
            write(m, "abc\n", 4);
            wrote = 1;
        }
    }
    int status;
    waitpid(pid, &status, 0);
    show(buf, n);
    printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
"""

EXPECTED_TAIL = """\
ctty ok\\r\\n
hello\\r\\n
/dev/pts/N\\r\\n
30 100\\r\\n
abc\\r\\n
got abc\\r\\n
child exit 3
"""


def run(argv: list[str], timeout: float = 60, guest: bool = False) -> subprocess.CompletedProcess:
    if guest:
        argv = [str(USERMODE), "run", "--"] + argv
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def pty_prog(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("pty")
    src = d / "ptytest.c"
    src.write_text(PTY_C)
    exe = d / "ptytest"
    r = subprocess.run(["gcc", "-O1", "-static", "-o", str(exe), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("static glibc not available: " + r.stderr[-300:])
    return exe


def test_posix_openpt_shell_session_matches_native(pty_prog: Path) -> None:
    native = run([str(pty_prog)])
    guest = run([str(pty_prog)], guest=True)
    assert native.returncode == 0, native.stderr
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout.decode() == native.stdout.decode()
    out = guest.stdout.decode()
    assert "open before unlockpt: Input/output error" in out
    assert "slave: chr=1 mode_ok=1 mine=1 major=136" in out
    assert "master read end: Input/output error" in out
    assert out.endswith(EXPECTED_TAIL)


def test_python_openpty_matches_native() -> None:
    code = "import os, pty; m, s = os.openpty(); os.write(s, b'hi\\n'); print(os.read(m, 10))"
    native = run([PYTHON, "-c", code])
    guest = run([PYTHON, "-c", code], guest=True)
    assert native.stdout == b"b'hi\\r\\n'\n"
    assert guest.stdout == native.stdout, guest.stderr


def test_devpts_lists_live_ptys_and_ttyname() -> None:
    code = ("import os; m, s = os.openpty(); print(sorted(os.listdir('/dev/pts')));"
            "print(os.ttyname(s)); st = os.stat(os.ttyname(s));"
            "print(oct(st.st_mode & 0o7777), st.st_uid == os.getuid());"
            "os.close(s); os.close(m); print(sorted(os.listdir('/dev/pts')))")
    guest = run([PYTHON, "-c", code], guest=True)
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout.decode().splitlines() == [
        "['0', 'ptmx']", "/dev/pts/0", "0o620 True", "['ptmx']"]


def test_mount_devpts() -> None:
    code = ("import os, tempfile, subprocess; d = tempfile.mkdtemp();"
            "subprocess.run(['mount', '-t', 'devpts', 'devpts', d], check=True);"
            "m, s = os.openpty(); print(sorted(os.listdir(d)));"
            "subprocess.run(['umount', d], check=True); os.rmdir(d)")
    guest = run([PYTHON, "-c", code], guest=True)
    assert guest.returncode == 0, guest.stderr
    assert guest.stdout == b"['0', 'ptmx']\n"


def test_pty_fork_large_output_blocks_and_completes() -> None:
    code = r"""
import os, pty, time
pid, fd = pty.fork()
if pid == 0:
    os.write(1, b"x" * 200000 + b"\n")
    line = os.read(0, 100000)
    os.write(1, b"len=%d\n" % len(line))
    os._exit(0)
time.sleep(0.5)
out = b""
while len(out) < 200002:
    out += os.read(fd, 65536)
os.write(fd, b"y" * 3000 + b"\n")
rest = b""
while True:
    try:
        d = os.read(fd, 65536)
    except OSError:
        break
    if not d:
        break
    rest += d
print(len(out), rest[-12:], os.waitpid(pid, 0)[1])
"""
    native = run([PYTHON, "-c", code])
    guest = run([PYTHON, "-c", code], guest=True)
    assert native.stdout == b"200002 b'\\r\\nlen=3001\\r\\n' 0\n"
    assert guest.stdout == native.stdout, guest.stderr


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script not installed")
def test_script_runs_a_command_on_a_pty() -> None:
    argv = [shutil.which("script"), "-qec", "echo hi; tty", "/dev/null"]
    native = run(argv)
    guest = run(argv, guest=True)
    norm = lambda b: re.sub(rb"/dev/pts/\d+", b"/dev/pts/N", b)  # noqa: E731
    assert norm(native.stdout) == b"hi\r\n/dev/pts/N\r\n"
    assert norm(guest.stdout) == norm(native.stdout), guest.stderr
