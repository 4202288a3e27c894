"""Hotplug through mconsole (issue 5): `config ubdb=IMG` / `config ubdb` / `remove ubdb`
and `config con1=pts` / `config ssl2=null` / `remove con1`, driven by Debian's real
uml_mconsole and by ours, with the effects checked inside the guest."""
from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time

import pytest

from tests.integration.console import Console
from tests.integration.test_mconsole import CLIENTS, PROMPT, REAL, mc
from usermode.tools.busybox_root import find_busybox

MKE2FS = shutil.which("mke2fs", path="/usr/sbin:/sbin:/usr/bin:/bin")
REAL_UML = shutil.which("linux", path="/usr/bin:/bin")
pytestmark = [pytest.mark.skipif(not os.path.exists(REAL), reason="uml-utilities not installed"),
              pytest.mark.skipif(MKE2FS is None, reason="mke2fs not installed")]


@pytest.fixture
def instance(tmp_path):
    c = Console(["quiet", "umid=hot", f"uml_dir={tmp_path / 'uml'}"])
    try:
        c.read_until(PROMPT, 60)
        yield c, str(tmp_path / "uml" / "hot" / "mconsole")
    finally:
        c.kill()


def image(tmp_path, text: str) -> str:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "hello.txt").write_text(text)
    img = str(tmp_path / "disk.img")
    subprocess.run([MKE2FS, "-q", "-t", "ext2", "-d", str(src), img, "1M"], check=True,
                   capture_output=True)
    return img


def test_ubd_hot_add_query_busy_remove(instance, tmp_path) -> None:
    """Exit statuses are the reply's err (a negative errno from the driver, as in UML)
    taken by both clients as their exit status."""
    c, sock = instance
    img = image(tmp_path, "hello from a hot-added disk\n")
    for client in CLIENTS:
        rc, out = mc(client, sock, "config", f"ubdb={tmp_path}/missing.img")
        assert (rc, out) == (254, "ERR Couldn't determine size of device's file\n"), client
        assert mc(client, sock, "version")[0] == 0              # still running
        assert c.run("ls /dev/ubdb 2>&1", PROMPT) == b"ls: /dev/ubdb: No such file or directory\n"

        assert mc(client, sock, "config", f"ubdb={img}") == (0, "OK \n"), client
        assert mc(client, sock, "config", f"ubdb={img}")[1] == "ERR Device is already configured\n"
        assert mc(client, sock, "config", "ubdb") == (0, f"OK {img}\n")
        assert mc(client, sock, "config", "ubdc") == (0, "OK \n")      # not configured
        ls = c.run("ls -l /dev/ubdb", PROMPT).decode()
        assert ls.startswith("brw-") and re.search(r"\b98,\s+16\b", ls), ls
        assert re.search(r"98\s+16\s+1024 ubdb", c.run("cat /proc/partitions", PROMPT).decode())
        out = c.run("mkdir -p /mnt && mount -t ext2 -o ro /dev/ubdb /mnt && cat /mnt/hello.txt",
                    PROMPT)
        assert out == b"hello from a hot-added disk\n"

        # mounted, then held open: refused with UML's text; free: removed
        assert mc(client, sock, "remove", "ubdb") == (240, "ERR Device is currently open\n")
        c.run("umount /mnt; exec 3</dev/ubdb", PROMPT)
        assert mc(client, sock, "remove", "ubdb") == (240, "ERR Device is currently open\n")
        c.run("exec 3<&-", PROMPT)
        assert mc(client, sock, "remove", "ubdb") == (0, "OK \n")
        assert c.run("ls /dev/ubdb 2>&1; grep -c ubdb /proc/partitions", PROMPT) == \
            b"ls: /dev/ubdb: No such file or directory\n0\n"
        assert mc(client, sock, "remove", "ubdb") == (237, "ERR Device doesn't exist\n")
    assert mc(REAL, sock, "config", "xyz0=1") == (1, "ERR Bad configuration option\n")
    assert mc(REAL, sock, "remove", "xyz0") == (1, "ERR Bad remove option\n")
    assert mc(REAL, sock, "remove", "ubd99") == \
        (1, "ERR Invalid device number - must be between 0 and 15\n")
    assert mc(REAL, sock, "remove", "ubd?") == (1, "ERR Couldn't parse device number\n")


def read_until(fd: int, buf: bytearray, pattern: bytes, timeout: float = 20) -> bytes:
    end = time.monotonic() + timeout
    while pattern not in buf:
        assert time.monotonic() < end, bytes(buf)
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            buf += os.read(fd, 4096)
    i = buf.index(pattern) + len(pattern)
    out = bytes(buf[:i])
    del buf[:i]
    return out


def test_console_line_hot_add_talk_remove(instance) -> None:
    c, sock = instance
    for client in CLIENTS:
        assert mc(client, sock, "config", "con1") == (0, "OK none\n")
        assert mc(client, sock, "config", "con1=pts") == (0, "OK \n"), client
        rc, out = mc(client, sock, "config", "con1")
        m = re.fullmatch(r"OK pts:(/dev/pts/\d+)\n", out)
        assert rc == 0 and m, out
        fd = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY)
        try:
            c.run("setsid sh -c 'exec sh -i </dev/tty1 >/dev/tty1 2>&1' &", PROMPT)
            buf = bytearray()
            read_until(fd, buf, PROMPT)
            os.write(fd, b"echo hel''lo; tty\r")
            assert b"\r\nhello\r\n/dev/tty1\r\n" in read_until(fd, buf, PROMPT)
            assert mc(client, sock, "remove", "con1") == (234, "ERR Device is already open\n")
            os.write(fd, b"exit\r")
            deadline = time.monotonic() + 20
            while mc(client, sock, "remove", "con1")[0] != 0:      # once the shell is gone
                assert time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            os.close(fd)
        assert mc(client, sock, "config", "con1") == (0, "OK none\n")
        assert b"No such device" in c.run("echo x >/dev/tty1", PROMPT)

        assert mc(client, sock, "config", "ssl2=null") == (0, "OK \n")
        assert mc(client, sock, "config", "ssl2") == (0, "OK null\n")
        assert c.run("echo gone >/dev/ttyS2 && echo written", PROMPT) == b"written\n"
        assert mc(client, sock, "remove", "ssl2") == (0, "OK \n")
        assert mc(client, sock, "config", "ssl2") == (0, "OK none\n")
        assert mc(client, sock, "remove", "ssl2") == (234, "ERR configured as 'none'\n")
    assert mc(REAL, sock, "config", "con=pts")[1] == "ERR Can't configure all devices from mconsole\n"
    assert mc(REAL, sock, "config", "con0=null")[1] == "ERR Device is already open\n"
    assert mc(REAL, sock, "config", "con99=null")[1] == "ERR Device number out of range\n"
    assert mc(REAL, sock, "config", "ssl1=bogus:1") == (255, "ERR failed to parse channel pair\n")
    assert mc(REAL, sock, "remove", "con64") == (234, "ERR Device number out of range\n")


def test_getty_on_a_hot_added_serial_line(instance) -> None:
    """busybox getty runs on a serial line added while the guest runs."""
    c, sock = instance
    assert mc(REAL, sock, "config", "ssl1=pts") == (0, "OK \n")
    path = re.fullmatch(r"OK pts:(/dev/pts/\d+)\n", mc(REAL, sock, "config", "ssl1")[1]).group(1)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        c.run("setsid getty -n -l /bin/sh 0 ttyS1 &", PROMPT)
        buf = bytearray()
        os.write(fd, b"\r")
        read_until(fd, buf, PROMPT)
        os.write(fd, b"tty; echo via-getty\r")
        assert b"\r\n/dev/ttyS1\r\nvia-getty\r\n" in read_until(fd, buf, PROMPT)
    finally:
        os.close(fd)


def boot_real_uml(tmp_path) -> tuple[subprocess.Popen, str]:
    """Debian's real UML kernel on a busybox hostfs root, waiting; its mconsole socket."""
    root = tmp_path / "umlroot"
    for d in ("bin", "dev", "proc", "sys", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(find_busybox(), root / "bin" / "busybox")
    (root / "init.sh").write_text("#!/bin/busybox sh\nexport PATH=/bin\n"
                                  "/bin/busybox --install -s /bin\nmount -t proc proc /proc\n"
                                  "echo READY\nsleep 120\npoweroff -f\n")
    (root / "init.sh").chmod(0o755)
    p = subprocess.Popen([REAL_UML, "mem=64M", "root=/dev/root", "rootfstype=hostfs",
                          f"rootflags={root}", "rw", "init=/init.sh", "con0=fd:0,fd:1",
                          "con=null", "umid=real", f"uml_dir={tmp_path / 'realdir'}"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace",
                         start_new_session=True)
    for line in p.stdout:
        if "READY" in line:
            return p, str(tmp_path / "realdir" / "real" / "mconsole")
    pytest.fail("the real UML did not come up")


@pytest.mark.skipif(REAL_UML is None or find_busybox() is None,
                    reason="needs user-mode-linux and busybox")
def test_replies_match_the_real_uml(tmp_path) -> None:
    """The same config/remove requests to the real UML kernel and to us: same replies."""
    import signal
    img = image(tmp_path, "x\n")
    requests = ["config ubdb=/nonexistent", f"config ubdb={img}", f"config ubdb={img}",
                "config ubdb", "config ubdc", "config ubd99", "remove ubdb", "remove ubdb",
                "remove ubd99", "remove ubd?", "config xyz0=1", "remove xyz0", "config con1",
                "config ssl2=null", "config ssl2", "remove ssl2", "config ssl2", "remove ssl2",
                "config con=pts", "config con0=null", "config con99=null", "remove con64",
                "config ssl1=bogus:1"]
    real, real_sock = boot_real_uml(tmp_path)
    ours = Console(["quiet", "umid=ours", f"uml_dir={tmp_path / 'ourdir'}", "con=null"])
    try:
        ours.read_until(PROMPT, 60)
        our_sock = str(tmp_path / "ourdir" / "ours" / "mconsole")
        for req in requests:
            want = mc(REAL, real_sock, *req.split())
            assert mc(REAL, our_sock, *req.split()) == want, req
    finally:
        ours.kill()
        os.killpg(real.pid, signal.SIGKILL)
        real.wait()
