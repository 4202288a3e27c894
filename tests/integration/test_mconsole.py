"""mconsole: a running instance driven by Debian's real /usr/bin/uml_mconsole and by ours
(umid directory, commands, stop/go, bad datagrams, notify, shutdown cleanup)."""
from __future__ import annotations

import os
import re
import select
import shutil
import socket
import struct
import subprocess
import time

import pytest

from tests.integration.console import ROOT, USERMODE, Console
from usermode.drivers import mconsole_proto as proto

PROMPT = b"usermode:/$ "
REAL = "/usr/bin/uml_mconsole"
OURS = os.path.join(ROOT, ".venv", "bin", "uml_mconsole")
CLIENTS = [c for c in (REAL, OURS) if os.path.exists(c)]


def mc(client: str, sock: str, *request: str, timeout: float = 30) -> tuple[int, str]:
    p = subprocess.run([client, sock, *request], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout


def raw(sock: str, data: bytes) -> list[proto.Reply]:
    """Send one raw datagram, return the reply packets."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("")
    s.settimeout(20)
    try:
        s.sendto(data, sock)
        out = []
        while True:
            rep = proto.parse_reply(s.recv(4096))
            out.append(rep)
            if not rep.more:
                return out
    finally:
        s.close()


def drain(c: Console, seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        r, _, _ = select.select([c.master], [], [], left)
        if r:
            try:
                c.buf += os.read(c.master, 65536)
            except OSError:
                return


def counter(c: Console) -> int:
    nums = [int(x) for x in re.findall(rb"C(\d+)\r?\n", c.buf)]
    return max(nums, default=0)


@pytest.fixture
def instance(tmp_path):
    uml_dir = tmp_path / "uml"
    c = Console(["quiet", "umid=testX", f"uml_dir={uml_dir}"])
    try:
        c.read_until(PROMPT, 60)
        yield c, str(uml_dir / "testX" / "mconsole"), uml_dir
    finally:
        c.kill()


@pytest.mark.skipif(not os.path.exists(REAL), reason="uml-utilities not installed")
def test_mconsole_real_and_ours(instance, tmp_path) -> None:
    c, sock, uml_dir = instance
    d = uml_dir / "testX"
    assert int((d / "pid").read_text()) == c.proc.pid
    assert (d / "mconsole").is_socket()
    for client in CLIENTS:
        rc, out = mc(client, sock, "version")
        assert rc == 0 and out.startswith("OK Linux usermode 6.1.0-usermode"), (client, out)
        rc, out = mc(client, sock, "help")
        assert rc == 0 and "stop - pause the UML" in out and "proc <file>" in out
        rc, out = mc(client, sock, "nosuchcommand")
        assert rc != 0 and out.startswith("ERR Unknown command")
        tag = "hello-from-" + os.path.basename(client)
        assert mc(client, sock, "log", tag)[0] == 0
        assert tag.encode() in c.run(f"dmesg | grep {tag}", PROMPT)
        rc, out = mc(client, sock, "proc", "meminfo")
        assert rc == 0 and out.startswith("OK MemTotal:")
        ours = re.search(r"MemTotal:\s+(\d+) kB", out).group(1)
        guest = c.run("grep MemTotal /proc/meminfo", PROMPT).decode()
        assert re.search(r"MemTotal:\s+(\d+) kB", guest).group(1) == ours
        rc, out = mc(client, sock, "proc", "nonexistent")
        assert rc != 0 and "Failed to open" in out
        rc, out = mc(client, sock, "sysrq", "t")
        assert rc == 0 and "task:sh" in out
        rc, out = mc(client, sock, "config", "ubdb=/nonexistent")
        assert rc != 0 and "Couldn't determine size" in out     # the instance runs on
        rc, out = mc(client, sock, "stack", "1")
        assert rc == 0 and "pid:1" in out
        rc, out = mc(client, sock, "stack", "9999")
        assert rc != 0
    # ours: single-shot mconsole-version; the umid form with $UML_DIR
    p = subprocess.run([OURS, "testX", "mconsole-version"], capture_output=True, text=True,
                       env={**os.environ, "UML_DIR": str(uml_dir)}, timeout=30)
    assert p.returncode == 0 and "client version 2" in p.stdout
    p = subprocess.run([OURS, "testX"], input="version\nquit\n", capture_output=True,
                       text=True, env={**os.environ, "UML_DIR": str(uml_dir)}, timeout=30)
    assert "(testX) " in p.stdout and "OK Linux usermode" in p.stdout

    # multi-part replies: proc meminfo is longer than one 511-byte packet
    parts = raw(sock, proto.build_request("proc meminfo"))
    assert len(parts) > 1 and all(p.more for p in parts[:-1]) and not parts[-1].more

    # stop freezes the guest; go resumes it
    c.send(b"(i=0; while :; do i=$((i+1)); echo C$i; sleep 0.05; done) &\r")
    drain(c, 1.5)
    assert counter(c) > 3
    for client in CLIENTS:
        rc, out = mc(client, sock, "stop")
        assert rc == 0 and "stopped" in out
        assert mc(client, sock, "stop")[0] != 0          # already stopped
        assert mc(client, sock, "version")[0] == 0       # mconsole still answers
        drain(c, 0.5)
        frozen = counter(c)
        drain(c, 1.5)
        assert counter(c) == frozen, "the guest ran while stopped"
        rc, out = mc(client, sock, "go")
        assert rc == 0
        drain(c, 1.5)
        assert counter(c) > frozen, "the guest did not resume"
        assert mc(client, sock, "go")[0] != 0            # not stopped
    c.send(b"kill $!\r")
    drain(c, 0.5)

    # bad input: wrong magic, oversized, bad len, short, other version: error replies
    bad = [struct.pack("=III", 0x12345678, 2, 7) + b"version" + b"\0" * 505,
           proto.build_request("version") + b"x" * 3000,
           struct.pack("=III", proto.MAGIC, 2, 9999) + b"version\0",
           b"ab",
           struct.pack("=III", proto.MAGIC, 1, 7) + b"version\0"]
    for data in bad:
        reps = raw(sock, data)
        assert reps[0].err == 1 and reps[0].text, data[:16]
    assert mc(OURS, sock, "version")[0] == 0                # still running

    # a second instance with the same umid fails with one line
    p = subprocess.run([USERMODE, "quiet", "umid=testX", f"uml_dir={uml_dir}", "init=/bin/true"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert p.stderr.count("\n") == 1 and "in use" in p.stderr, p.stderr
    assert (d / "pid").exists()

    # cad runs init's ctrl-alt-del action (busybox init: reboot); mconsole survives it
    assert mc(REAL, sock, "cad")[0] == 0
    c.read_until(b"busybox guest ready", 60)
    c.read_until(PROMPT, 30)
    assert mc(REAL, sock, "version")[0] == 0
    # halt: the instance exits and its umid directory is removed
    rc, out = mc(REAL, sock, "halt")
    assert rc == 0
    assert c.wait(30) == 0
    assert not d.exists()


def test_stale_umid_taken_over_and_notify(tmp_path) -> None:
    uml_dir = tmp_path / "uml"
    stale = uml_dir / "old"
    stale.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (stale / "pid").write_text(f"{dead.pid}\n")
    (stale / "mconsole").write_text("leftover")
    note = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(note))
    listener.settimeout(60)
    try:
        p = subprocess.Popen([USERMODE, "quiet", "umid=old", f"uml_dir={uml_dir}",
                              f"mconsole=notify:{note}", "init=/bin/sh"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        data = listener.recv(4096)
        kind, body = proto.parse_notify(data)
        assert kind == proto.NOTIFY_SOCKET
        assert body.rstrip(b"\0").decode() == str(stale / "mconsole")
        assert int((stale / "pid").read_text()) == p.pid
        assert mc(OURS, str(stale / "mconsole"), "halt")[0] == 0
        p.communicate(timeout=30)
        assert p.returncode == 0
        assert not stale.exists()
    finally:
        listener.close()
        if p.poll() is None:
            p.kill()


def test_random_umid_printed(tmp_path) -> None:
    uml_dir = tmp_path / "uml"
    p = subprocess.run([USERMODE, f"uml_dir={uml_dir}", "init=/bin/true"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    m = re.search(r"mconsole \(version 2\) initialized on (\S+)/(\w+)/mconsole", p.stderr)
    assert m and m.group(1) == str(uml_dir), p.stderr
    assert not os.path.exists(os.path.join(m.group(1), m.group(2)))
    shutil.rmtree(uml_dir, ignore_errors=True)


def test_load_four_clients(tmp_path) -> None:
    """10,000 requests from 4 concurrent clients while the guest works: all answered,
    the guest's work complete."""
    import threading
    uml_dir = tmp_path / "uml"
    script = (b"i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo $i > /tmp/n; done; "
              b"echo DONE $(cat /tmp/n)\n")
    p = subprocess.Popen([USERMODE, "quiet", "umid=load", f"uml_dir={uml_dir}", "init=/bin/sh"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sock = str(uml_dir / "load" / "mconsole")
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        p.stdin.write(script)
        p.stdin.flush()
        answered, errors = [], []

        def worker() -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind("")
            s.settimeout(30)
            n = 0
            for _ in range(2500):
                s.sendto(proto.build_request("version"), sock)
                r = proto.parse_reply(s.recv(4096))
                if r.err or not r.text.startswith("Linux"):
                    errors.append(r)
                n += 1
            answered.append(n)
            s.close()
        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = 10000 / (time.monotonic() - t0)
        print(f"mconsole: {rate:.0f} requests/s")
        assert sum(answered) == 10000 and not errors
        assert mc(OURS, sock, "log", "load-done")[0] == 0
        p.stdin.write(b"dmesg | grep -c load-done; poweroff -f\n")
        p.stdin.flush()
        out, _ = p.communicate(timeout=60)
        assert b"DONE 3000" in out and b"1\n" in out
    finally:
        if p.poll() is None:
            p.kill()
