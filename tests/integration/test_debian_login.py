"""Debian bookworm with a real init (issue 7, step 3): sysvinit runs agetty on the console,
login checks the password in the guest's /etc/shadow, useradd/chpasswd/su work, the
kernel enforces file permissions between guest users, and `poweroff` halts the machine."""
from __future__ import annotations

import time

import pytest

from tests.integration.console import Console
from tests.integration.debian import debian_root  # noqa: F401 (fixture)
from usermode.tools.debian_image import ROOT_PASSWORD

PROMPT = "[{}]% "


class Session:
    """A console at agetty's login prompt, logged in and out by user name."""

    def __init__(self, c: Console) -> None:
        self.c = c

    def login(self, user: str, password: str) -> None:
        self.c.read_until(b"usermode login: ", 60)
        self.c.send(user.encode() + b"\r")
        self.c.read_until(b"Password: ", 20)
        self.c.send(password.encode() + b"\r")
        self.c.read_until(b"@usermode:~" + (b"# " if user == "root" else b"$ "), 30)
        # a plain prompt without bracketed-paste codes, so outputs can be cut at it
        self.c.send(b"bind 'set enable-bracketed-paste off'; PS1='[\\u]% '\r")
        self.c.read_until(PROMPT.format(user).encode(), 10)
        self.user = user

    def run(self, line: str, timeout: float = 30) -> str:
        return self.c.run(line, PROMPT.format(self.user).encode(), timeout).decode()

    def logout(self) -> None:
        self.c.send(b"exit\r")


@pytest.fixture
def session(debian_root):
    c = Console(["root=/dev/root", "rootfstype=hostfs", f"rootflags={debian_root}", "mem=256M",
                 "init=/sbin/init", "quiet"])
    try:
        yield Session(c)
    finally:
        c.kill()


def test_login_users_permissions_and_poweroff(session: Session) -> None:
    s = session
    s.login("root", ROOT_PASSWORD)
    assert s.run("id").strip() == "uid=0(root) gid=0(root) groups=0(root)"
    assert s.run("tty").strip() == "/dev/console"
    assert "init [2]" in s.run("ps -o args= -p 1")
    for user, pw in (("ann", "ann-pw"), ("ben", "ben-pw")):
        assert s.run(f"useradd -m -s /bin/bash {user} && echo {user}:{pw} | chpasswd; "
                     "echo $?").strip().endswith("0")
    assert s.run("grep -c '^ann:\\$y\\$' /etc/shadow").strip() == "1"
    out = s.run("su ann -c 'echo secret > ~/note; chmod 600 ~/note; stat -c \"%a %U\" ~/note; id -un'")
    assert out.split() == ["600", "ann", "ann"]
    out = s.run("su ben -c 'cat /home/ann/note; echo > /home/ann/x; id -un'")
    assert "cat: /home/ann/note: Permission denied" in out
    assert "/home/ann/x: Permission denied" in out and out.strip().endswith("ben")
    s.logout()

    s.c.read_until(b"usermode login: ", 30)          # a wrong password is refused
    s.c.send(b"ann\r")
    s.c.read_until(b"Password: ", 20)
    s.c.send(b"wrong\r")
    s.c.read_until(b"Login incorrect", 30)

    s.login("ann", "ann-pw")
    assert s.run("id -un; cat ~/note").split() == ["ann", "secret"]
    s.c.send(b"su ben -c 'id -un; cat /home/ann/note'\r")
    s.c.read_until(b"Password: ", 20)
    s.c.send(b"ben-pw\r")
    out = s.c.read_until(PROMPT.format("ann").encode(), 30).decode()
    assert "ben" in out and "Permission denied" in out
    s.logout()

    s.login("root", ROOT_PASSWORD)
    s.c.send(b"poweroff\r")
    assert s.c.wait(60) == 0


def test_full_screen_tools_on_the_console(session: Session) -> None:
    s = session
    s.login("root", ROOT_PASSWORD)
    s.c.send(b"top -d 1\r")
    time.sleep(2.5)
    s.c.send(b"q")
    out = s.c.read_until(PROMPT.format("root").encode(), 20)
    assert b"load average" in out and b"MiB Mem" in out
    s.c.send(b"less /etc/login.defs\r")
    s.c.read_until(b"\x1b[7m/etc/login.defs", 20)        # the first page, then its prompt
    s.c.send(b" q")
    s.c.read_until(PROMPT.format("root").encode(), 20)
    s.c.send(b"vi /tmp/vinote\r")
    s.c.read_until(b"/tmp/vinote", 20)
    time.sleep(1)
    s.c.send(b"ihello from vim.tiny\x1b")
    time.sleep(0.5)
    s.c.send(b":wq\r")
    s.c.read_until(PROMPT.format("root").encode(), 20)
    assert s.run("cat /tmp/vinote").strip() == "hello from vim.tiny"
    assert s.run("stty size").strip() == "30 100"
    assert s.run("script -qc 'tty; stty size' /dev/null").split() == ["/dev/pts/0", "30", "100"]
    s.c.send(b"sleep 50\r")
    s.c.read_until(b"sleep 50")
    time.sleep(1)
    s.c.send(b"\x03")
    s.c.read_until(PROMPT.format("root").encode(), 10)
    assert s.run("echo $?").strip() == "130"
    s.c.send(b"reboot\r")             # runlevel 6 ends in reboot(2): the instance restarts
    s.c.read_until(b"usermode login: ", 60)
