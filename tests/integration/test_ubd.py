"""The ubd block driver end to end: busybox in the guest reads and writes /dev/ubdb, backed by
a host image or a COW file over one (merged afterwards by Debian's real uml_moo)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.console import USERMODE
from usermode.drivers import ubd
from usermode.tools.busybox_root import default_root

MiB = 1 << 20
REAL_MOO = shutil.which("uml_moo", path="/usr/bin:/usr/sbin:/bin")
WRITE = "echo data | dd of=/dev/ubdb bs=512 seek=3 conv=notrunc 2>/dev/null; sync"
# (the guest's stderr is the console, which is the host's stdout)


@pytest.fixture(scope="module")
def root() -> str:
    return default_root()


def make_image(path: Path) -> Path:
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", "count=8", "status=none"],
                   check=True)
    with open(path, "r+b") as f:
        f.write(b"BOOTSECT")
    return path


def run(root: str, specs: list[str], script: str, timeout: int = 90,
        **kw) -> subprocess.CompletedProcess:
    argv = [USERMODE, "run", "--root", root]
    for s in specs:
        argv += ["--ubd", s]
    return subprocess.run(argv + ["--", "/bin/sh", "-c", script], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def sector(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(n * 512)
        return f.read(512)


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_read_and_write_plain_image(tmp_path, root):
    img = make_image(tmp_path / "disk.img")
    p = run(root, [f"ubdb={img}"],
            "ls -l /dev/ubdb; dd if=/dev/ubdb bs=512 count=1 2>/dev/null | od -c | head -1; "
            + WRITE + "; blockdev --getsize64 /dev/ubdb; blockdev --getsz /dev/ubdb; "
            "blockdev --getss /dev/ubdb; blockdev --getro /dev/ubdb; cat /proc/partitions")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("b"), out                          # a block device node ...
    assert "98,  16" in out                                  # ... major 98, minor 16
    assert "B   O   O   T   S   E   C   T" in out
    assert sector(img, 3) == b"data\n".ljust(512, b"\0")
    assert "\n8388608\n16384\n512\n0\n" in out
    assert "  98       16       8192 ubdb" in out


def test_cow_keeps_backing_pristine_and_real_uml_moo_merges(tmp_path, root):
    img = make_image(tmp_path / "base.img")
    before = hashlib.sha256(img.read_bytes()).hexdigest()
    cowf = tmp_path / "disk.cow"
    p = run(root, [f"ubdb={cowf},{img}"], WRITE + "; dd if=/dev/ubdb bs=8 count=1 2>/dev/null")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("BOOTSECT")                   # unwritten sectors: the backing
    assert hashlib.sha256(img.read_bytes()).hexdigest() == before
    assert cowf.exists() and b"data\n" in cowf.read_bytes()
    # Found again from the COW header alone, the data is still there.
    p = run(root, [f"ubdb={cowf}"], "dd if=/dev/ubdb bs=512 skip=3 count=1 2>/dev/null")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("data\n")
    if REAL_MOO is None:
        pytest.skip("uml-utilities (uml_moo) not installed")
    merged = tmp_path / "merged.img"
    m = subprocess.run([REAL_MOO, str(cowf), str(merged)], capture_output=True, timeout=60)
    assert m.returncode == 0, m.stdout + m.stderr
    assert sector(merged, 3) == b"data\n".ljust(512, b"\0")
    assert sector(merged, 0).startswith(b"BOOTSECT")
    assert hashlib.sha256(img.read_bytes()).hexdigest() == before


def test_read_only_flag_refuses_writes(tmp_path, root):
    img = make_image(tmp_path / "disk.img")
    before = img.read_bytes()
    p = run(root, [f"ubdbr={img}"],
            "blockdev --getro /dev/ubdb; echo data | dd of=/dev/ubdb conv=notrunc; "
            "echo rc=$?; dd if=/dev/ubdb bs=8 count=1 2>/dev/null")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("1\n")
    assert "rc=1" in p.stdout
    assert "BOOTSECT" in p.stdout
    assert img.read_bytes() == before


def test_writes_past_the_end(tmp_path, root):
    img = make_image(tmp_path / "disk.img")
    p = run(root, [f"ubdb={img}"],
            "dd if=/dev/zero of=/dev/ubdb bs=512 seek=16384 count=1; echo rc=$?; "
            "dd if=/dev/ubdb bs=512 skip=16383 2>/dev/null | wc -c")
    assert p.returncode == 0, p.stderr
    assert "No space left on device" in p.stdout
    assert "rc=1" in p.stdout
    assert p.stdout.split()[-1] == "512"
    assert img.stat().st_size == 8 * MiB


def test_locked_image_is_a_one_line_error(tmp_path, root):
    img = make_image(tmp_path / "disk.img")
    first = subprocess.Popen([USERMODE, "run", "--root", root, "--ubd", f"ubdb={img}", "--",
                              "/bin/sh", "-c", "echo ready; sleep 60"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        # the guest runs only after its devices are open, so "ready" means the lock is held
        assert first.stdout.readline().strip() == "ready"
        line = one_line_error(run(root, [f"ubdb={img}"], "true"))
        assert "ubdb" in line and "already in use" in line
        # nor can a COW file use it as its backing file while it is open writable
        line = one_line_error(run(root, [f"ubdb={tmp_path}/x.cow,{img}"], "true"))
        assert "already in use" in line
        assert not (tmp_path / "x.cow").exists()
        # shared (c) does not lock
        p = run(root, [f"ubdbc={img}"], "dd if=/dev/ubdb bs=8 count=1 2>/dev/null")
        assert p.returncode == 0, p.stderr
        assert p.stdout == "BOOTSECT"
    finally:
        first.kill()
        first.wait()


def test_diskstats_counts_io(tmp_path, root):
    img = make_image(tmp_path / "disk.img")
    p = run(root, [f"ubdb={img}"],
            "dd if=/dev/ubdb of=/dev/null bs=4096 count=4 2>/dev/null; " + WRITE
            + "; grep ubdb /proc/diskstats")
    assert p.returncode == 0, p.stderr
    f = p.stdout.split()
    assert f[:3] == ["98", "16", "ubdb"], p.stdout
    reads, sectors_read, writes, sectors_written = int(f[3]), int(f[5]), int(f[7]), int(f[9])
    assert reads >= 1 and writes >= 1
    assert sectors_read >= 32 and sectors_written >= 1


@pytest.mark.parametrize("spec,message", [
    ("ubdb={tmp}/missing.img", "No such file or directory"),
    ("ubdq9={tmp}/missing.img", "unknown flag"),
    ("ubd16={tmp}/x", "out of range"),
])
def test_bad_ubd_is_one_line(tmp_path, root, spec, message):
    line = one_line_error(run(root, [spec.format(tmp=tmp_path)], "true"))
    assert message in line


def test_missing_backing_file(tmp_path, root):
    p = run(root, [f"ubdb={tmp_path}/new.cow,{tmp_path}/missing.img"], "true")
    assert "missing.img" in one_line_error(p)
    assert not (tmp_path / "new.cow").exists()


def test_uml_boot_switch(tmp_path, root):
    img = make_image(tmp_path / "disk.img")
    p = subprocess.run([USERMODE, f"root={root}", "quiet", f"ubd1={img}", "init=/bin/true"],
                       capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([USERMODE, f"root={root}", "quiet", f"ubd1r={tmp_path}/none.img",
                        "init=/bin/true"],
                       capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert "ubdb: " in one_line_error(p)


def test_parse():
    s = ubd.parse("ubd0rs=a.cow:b.img")
    assert (s.index, s.file, s.backing, s.readonly, s.sync) == (0, "a.cow", "b.img", True, True)
    assert s.name == "ubda" and s.minor == 0
    s = ubd.parse("ubdcdc=x.img")
    assert (s.index, s.minor, s.data_only, s.shared, s.backing) == (2, 32, True, True, None)
    s = ubd.parse("ubd15=x,y")
    assert (s.name, s.minor, s.backing) == ("ubdp", 240, "y")
    for bad in ("ubd=x", "ubdb", "ubdb=", "ubdbx=y", "ubd1d=a,b", "ubd16=a"):
        with pytest.raises(ubd.UbdError):
            ubd.parse(bad)
    with pytest.raises(ubd.UbdError):
        ubd.parse_all(["ubda=x", "ubd0=y"])
