"""mconsole=notify:SOCKET notifications (issue 5) on a host datagram socket, in the wire
format of UML's struct mconsole_notify: "socket" at boot, "user" for what the guest writes
to /proc/mconsole, "panic" when init exits (the watchdog's "hang" is in test_watchdog.py)."""
from __future__ import annotations

import socket
import struct
import subprocess

from tests.integration.console import USERMODE
from usermode.drivers import mconsole_proto as proto


def listen(path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(60)
    return s


def test_socket_user_and_panic_notifications(tmp_path) -> None:
    note = tmp_path / "notify.sock"
    listener = listen(note)
    script = (b"ls -l /proc/mconsole | cut -c1-10\n"
              b"cat /proc/mconsole 2>/dev/null || echo unreadable\n"
              b"printf 'hello from the guest' > /proc/mconsole && echo sent\n"
              b"exit 3\n")
    try:
        p = subprocess.run([USERMODE, "quiet", "umid=note", f"uml_dir={tmp_path / 'uml'}",
                            f"mconsole=notify:{note}", "init=/bin/sh"], input=script,
                           capture_output=True, timeout=60)
        assert p.stdout == b"--w-------\nunreadable\nsent\n", p.stderr
        assert p.returncode == 3
        got = [listener.recv(4096) for _ in range(3)]
    finally:
        listener.close()
    # every datagram: magic, version, type, len, then len bytes of data
    for data in got:
        magic, version, kind, length = struct.unpack_from("=IIII", data)
        assert (magic, version) == (0xCAFEBABE, 2) and len(data) == 16 + length
    kinds = [proto.parse_notify(d) for d in got]
    assert kinds[0] == (proto.NOTIFY_SOCKET,
                        str(tmp_path / "uml" / "note" / "mconsole").encode() + b"\0")
    assert kinds[1] == (proto.NOTIFY_USER, b"hello from the guest")
    assert kinds[2] == (proto.NOTIFY_PANIC, b"Attempted to kill init! exitcode=0x00000300\0")


def test_no_proc_mconsole_without_notify(tmp_path) -> None:
    # no exit: the end of the piped input ends init (it used to wait forever: the SIGIO
    # for the data stood for the end of file as well)
    p = subprocess.run([USERMODE, "quiet", f"uml_dir={tmp_path}", "init=/bin/sh"],
                       input=b"ls /proc/mconsole 2>&1\n", capture_output=True, timeout=60)
    assert p.stdout == b"ls: /proc/mconsole: No such file or directory\n"


def test_kernel_error_is_a_panic_notification(tmp_path, monkeypatch) -> None:
    import pytest
    from usermode.kernel.kernel import Kernel
    from usermode.machine import Machine
    from usermode.tools.busybox_root import default_root

    def broken(self) -> int:
        raise RuntimeError("boom")
    monkeypatch.setattr(Kernel, "run", broken)
    note = tmp_path / "n.sock"
    listener = listen(note)
    try:
        m = Machine(root=default_root(), init=["/bin/true"], uml_dir=str(tmp_path / "uml"),
                    mconsole_notify=str(note))
        with pytest.raises(RuntimeError):
            m.run()
        assert proto.parse_notify(listener.recv(4096))[0] == proto.NOTIFY_SOCKET
        assert proto.parse_notify(listener.recv(4096)) == (
            proto.NOTIFY_PANIC, b"usermode: RuntimeError: boom\0")
    finally:
        listener.close()


def notifications(cmd: list[str], note, n: int) -> list[tuple[int, bytes]]:
    s = listen(note)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return [proto.parse_notify(s.recv(4096)) for _ in range(n)]
    finally:
        s.close()
        import os
        import signal
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_same_notifications_as_the_real_uml(tmp_path) -> None:
    """The real UML kernel and we, same guest script: the same user and panic datagrams."""
    import os
    import shutil

    import pytest
    from usermode.tools.busybox_root import find_busybox
    real = shutil.which("linux", path="/usr/bin:/bin")
    if real is None or find_busybox() is None:
        pytest.skip("needs user-mode-linux and busybox")
    root = tmp_path / "root"
    for d in ("bin", "dev", "proc", "sys", "tmp"):
        (root / d).mkdir(parents=True)
    shutil.copy(find_busybox(), root / "bin" / "busybox")
    (root / "init.sh").write_text("#!/bin/busybox sh\nexport PATH=/bin\n"
                                  "/bin/busybox --install -s /bin\nmount -t proc proc /proc\n"
                                  "printf 'user text' > /proc/mconsole\nexit 3\n")
    os.chmod(root / "init.sh", 0o755)
    common = [f"rootflags={root}", "init=/init.sh", "con0=fd:0,fd:1", "con=null"]
    theirs = notifications([real, "mem=64M", "root=/dev/root", "rootfstype=hostfs", "rw",
                            *common, "umid=r", f"uml_dir={tmp_path / 'r'}",
                            f"mconsole=notify:{tmp_path / 'r.sock'}"], tmp_path / "r.sock", 3)
    ours = notifications([USERMODE, "quiet", *common, "umid=o", f"uml_dir={tmp_path / 'o'}",
                          f"mconsole=notify:{tmp_path / 'o.sock'}"], tmp_path / "o.sock", 3)
    assert [k for k, _ in ours] == [k for k, _ in theirs] == [
        proto.NOTIFY_SOCKET, proto.NOTIFY_USER, proto.NOTIFY_PANIC]
    assert ours[1:] == theirs[1:]
    assert theirs[2][1] == b"Attempted to kill init! exitcode=0x00000300\0"
