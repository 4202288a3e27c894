"""COW interop with Debian's real tools: uml-utilities' /usr/bin/uml_moo and the real UML
kernel (user-mode-linux's /usr/bin/linux), against our cow.py and our uml_moo."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from usermode.drivers import cow

REPO = Path(__file__).resolve().parents[2]
OUR_MOO = REPO / ".venv" / "bin" / "uml_moo"
REAL_MOO = shutil.which("uml_moo", path="/usr/bin:/usr/sbin:/bin")
REAL_UML = shutil.which("linux", path="/usr/bin:/bin")
BUSYBOX = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
MiB = 1 << 20

needs_real_moo = pytest.mark.skipif(REAL_MOO is None, reason="uml-utilities not installed")


def rand_file(path: Path, size: int, seed: bytes) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha512(seed + i.to_bytes(8, "little")).digest()
        i += 1
    path.write_bytes(bytes(out[:size]))
    return bytes(out[:size])


def moo(tool, *args, cwd=None):
    # the real tool prints its argv[0]; call both by the bare name so usage texts compare
    env = dict(os.environ, PATH=f"{Path(tool).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run(["uml_moo", *map(str, args)], capture_output=True, env=env,
                          cwd=cwd, timeout=120)


def blocks(p: Path) -> int:
    return os.stat(p).st_blocks


@pytest.fixture
def image(tmp_path):
    """An 8 MiB random backing file with a zero region, plus a COW made by our create() and
    written through CowDevice.  Returns (backing, cow, expected merged content)."""
    b = tmp_path / "backing.img"
    data = bytearray(rand_file(b, 8 * MiB, b"interop"))
    data[MiB:2 * MiB] = bytes(MiB)                       # zero sectors in the backing file
    b.write_bytes(data)
    c = tmp_path / "disk.cow"
    writes = [(0, b"\x01" * 512), (7, b"hello".ljust(1024, b"\0")), (100, bytes(4096)),
              (2048 + 5, bytes(512)),                    # zero over zero
              (2048 + 6, b"\xff" * 512),                 # data over zero
              (4000, os.urandom(64 * 512)), (16383, b"L" * 512)]
    with cow.CowDevice(str(c), str(b)) as d:
        for s, buf in writes:
            d.write(s, buf)
            data[s * 512:s * 512 + len(buf)] = buf
    return b, c, bytes(data)


@needs_real_moo
def test_merge_new_file_identical(tmp_path, image):
    b, c, expected = image
    r1 = moo(REAL_MOO, c, tmp_path / "real.img")
    r2 = moo(OUR_MOO, c, tmp_path / "ours.img")
    assert (r1.returncode, r1.stderr) == (0, b"")
    assert (r2.returncode, r2.stderr) == (0, b"")
    real, ours = (tmp_path / "real.img").read_bytes(), (tmp_path / "ours.img").read_bytes()
    assert real == expected
    assert ours == real
    assert blocks(tmp_path / "ours.img") == blocks(tmp_path / "real.img")   # same holes
    assert os.stat(tmp_path / "ours.img").st_mode & 0o777 == os.stat(tmp_path / "real.img").st_mode & 0o777


@needs_real_moo
def test_merge_in_place_identical(tmp_path, image):
    b, c, expected = image
    for who, tool in (("real", REAL_MOO), ("ours", OUR_MOO)):
        d = tmp_path / who
        d.mkdir()
        shutil.copy2(b, d / "backing.img")
        shutil.copy2(c, d / "disk.cow")
        args = ["-b", d / "backing.img", "-d", d / "disk.cow"]
        r = moo(tool, *args)                             # -b before -d: the real tool's quirk
        assert r.returncode == 1 and r.stderr == b"COW file open: No such file or directory\n"
        r = moo(tool, "-d", "-b", d / "backing.img", d / "disk.cow")
        assert (r.returncode, r.stderr) == (0, b""), (who, r.stderr)
    real = (tmp_path / "real" / "backing.img").read_bytes()
    assert real == expected
    assert (tmp_path / "ours" / "backing.img").read_bytes() == real


@needs_real_moo
def test_bad_input_same_messages(tmp_path, image):
    b, c, _ = image
    full = c.read_bytes()
    (tmp_path / "garbage").write_bytes(os.urandom(5000))
    (tmp_path / "t_header").write_bytes(full[:2000])
    (tmp_path / "t_bitmap").write_bytes(full[:9000])
    (tmp_path / "t_data").write_bytes(full[:12288 + 3 * 512])
    moved = tmp_path / "moved.cow"
    shutil.copy(c, moved)
    # the real tool crashes (SIGSEGV, strcmp(NULL)) on a lone "-d"; ours prints the usage
    r = moo(OUR_MOO, "-d")
    assert r.returncode == 1 and r.stderr.startswith(b"uml_moo usage:\n")
    cases = [[], ["-b"], ["only-one"], ["a", "b", "c"], ["-d", "x", "y"],
             ["missing.cow", "out"], ["garbage", "out"], ["t_header", "out"],
             ["t_bitmap", "out"], ["t_data", "out"], ["-b", "nonexistent", "disk.cow", "out"],
             ["-b", "garbage", "disk.cow", "out"], ["disk.cow", "nodir/out"]]
    for args in cases:
        r1 = moo(REAL_MOO, *args, cwd=tmp_path)
        out_real = (tmp_path / "out").read_bytes() if (tmp_path / "out").exists() else None
        if out_real is not None:
            os.unlink(tmp_path / "out")
        r2 = moo(OUR_MOO, *args, cwd=tmp_path)
        out_ours = (tmp_path / "out").read_bytes() if (tmp_path / "out").exists() else None
        if out_ours is not None:
            os.unlink(tmp_path / "out")
        assert (r2.returncode, r2.stderr, r2.stdout) == (r1.returncode, r1.stderr, r1.stdout), args
        assert r1.returncode == 1
        assert out_ours == out_real, args
        assert b"Traceback" not in r2.stderr
    # a changed backing file: same mtime-mismatch message
    st = os.stat(b)
    os.utime(b, (st.st_atime, st.st_mtime + 7))
    r1, r2 = moo(REAL_MOO, c, tmp_path / "o1"), moo(OUR_MOO, c, tmp_path / "o2")
    assert r1.returncode == r2.returncode == 1
    assert r2.stderr == r1.stderr and r1.stderr.startswith(b"mtime mismatch (")


def boot_uml(tmp_path: Path, script: str, ubd: list[str]) -> str:
    root = tmp_path / "root"
    for d in ("bin", "dev", "proc", "sys", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    init = root / "init.sh"
    init.write_text("#!/bin/busybox sh\nexport PATH=/bin\n/bin/busybox --install -s /bin\n"
                    "mount -t proc proc /proc\nmount -t devtmpfs dev /dev 2>/dev/null\n"
                    + script + "\nsync\npoweroff -f\n")
    init.chmod(0o755)
    umldir = tmp_path / "umldir"
    umldir.mkdir(exist_ok=True)
    p = subprocess.run([REAL_UML, "mem=64M", "root=/dev/root", "rootfstype=hostfs",
                        f"rootflags={root}", "rw", "init=/init.sh", *ubd, "con0=fd:0,fd:1",
                        "con=null", f"uml_dir={umldir}"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180,
                       errors="replace")
    return p.stdout + p.stderr


needs_uml = pytest.mark.skipif(REAL_UML is None or BUSYBOX is None or REAL_MOO is None,
                               reason="needs user-mode-linux, busybox and uml-utilities")


@needs_uml
def test_cow_written_by_real_uml(tmp_path):
    b = tmp_path / "backing.img"
    data = bytearray(rand_file(b, 8 * MiB, b"uml-made"))
    c = tmp_path / "uml.cow"
    out = boot_uml(tmp_path, "\n".join([
        "printf 'WRITTEN-BY-UML' | dd of=/dev/ubdb bs=512 seek=3 conv=notrunc,fsync",
        "dd if=/dev/zero of=/dev/ubdb bs=4096 seek=25 count=3 conv=fsync",
        "echo UML-DD-DONE"]), [f"ubdb={c},{b}"])
    assert "UML-DD-DONE" in out, out[-3000:]
    assert f'Creating "{c}" as COW file for "{b}"' in out
    data[3 * 512:3 * 512 + 14] = b"WRITTEN-BY-UML"
    data[25 * 4096:28 * 4096] = bytes(3 * 4096)
    h = cow.open_cow(str(c))
    assert (h.version, h.layout, h.backing_file, h.size, h.sectorsize, h.alignment) == \
        (3, "v3", str(b), 8 * MiB, 512, 4096)
    assert (h.bitmap_offset, h.data_offset) == (8192, 12288)
    assert os.path.getsize(c) == h.file_size
    assert h.mtime == int(os.stat(b).st_mtime)
    # our header writer produces the same bytes as UML's for every field and the path
    ours = cow.pack_header_v3(str(b), h.mtime, h.size)
    raw = c.read_bytes()
    plen = 32 + len(str(b)) + 1
    assert raw[:plen] == ours[:plen]
    with cow.CowDevice(str(c), writable=False) as d:
        assert d.read(0, d.sectors) == bytes(data)
        bits = [s for s in range(d.sectors) if d.test_bit(s)]
        assert 3 in bits and set(range(200, 224)) <= set(bits)
    r1 = moo(REAL_MOO, c, tmp_path / "real.img")
    r2 = moo(OUR_MOO, c, tmp_path / "ours.img")
    assert r1.returncode == r2.returncode == 0, (r1.stderr, r2.stderr)
    assert (tmp_path / "real.img").read_bytes() == (tmp_path / "ours.img").read_bytes() == bytes(data)


@needs_uml
def test_our_cow_used_by_real_uml(tmp_path):
    """A COW made and written by us boots in the real UML: it sees our data, writes more,
    and the result still merges identically with both tools."""
    b = tmp_path / "backing.img"
    data = bytearray(rand_file(b, 8 * MiB, b"ours-in-uml"))
    c = tmp_path / "ours.cow"
    with cow.CowDevice(str(c), str(b)) as d:
        d.write(10, b"FROM-USERMODE".ljust(512, b"."))
    data[10 * 512:11 * 512] = b"FROM-USERMODE".ljust(512, b".")
    out = boot_uml(tmp_path, "\n".join([
        "echo SEEN=$(dd if=/dev/ubdb bs=512 skip=10 count=1 2>/dev/null | head -c 13)",
        "printf 'AND-FROM-UML' | dd of=/dev/ubdb bs=512 seek=40 conv=notrunc,fsync",
        "echo UML-DD-DONE"]), [f"ubdb={c}"])
    assert "SEEN=FROM-USERMODE" in out, out[-3000:]
    assert "UML-DD-DONE" in out
    data[40 * 512:40 * 512 + 12] = b"AND-FROM-UML"
    with cow.CowDevice(str(c), writable=False) as d:
        assert d.read(0, d.sectors) == bytes(data)
    r1 = moo(REAL_MOO, c, tmp_path / "real.img")
    r2 = moo(OUR_MOO, c, tmp_path / "ours.img")
    assert r1.returncode == r2.returncode == 0
    assert (tmp_path / "real.img").read_bytes() == (tmp_path / "ours.img").read_bytes() == bytes(data)


@needs_uml
def test_real_uml_refuses_changed_backing(tmp_path):
    b = tmp_path / "backing.img"
    rand_file(b, 4 * MiB, b"changed")
    c = tmp_path / "x.cow"
    h = cow.create(str(c), str(b))
    os.utime(b, (h.mtime + 5, h.mtime + 5))
    out = boot_uml(tmp_path, "ls /dev/ubdb && echo HAVE-UBDB", [f"ubdb={c}"])
    assert f"mtime mismatch ({h.mtime} vs {h.mtime + 5}) of COW header vs backing file" in out
    with pytest.raises(cow.BackingMismatchError,
                       match=rf"^mtime mismatch \({h.mtime} vs {h.mtime + 5}\) of COW header vs backing file"):
        cow.CowDevice(str(c))


@needs_real_moo
@pytest.mark.parametrize("layout", ["v1", "v2", "v3-broken"])
def test_old_layouts_merge_identically(tmp_path, layout):
    """Hand-built V1, V2 and 64-bit "broken" V3 COW files: both tools merge them alike."""
    import struct
    b = tmp_path / "backing.img"
    data = bytearray(rand_file(b, 2 * MiB, layout.encode()))
    st = os.stat(b)
    size, mtime, path = len(data), int(st.st_mtime), str(b).encode()
    if layout == "v1":
        hdr = struct.pack("<ii256sIQi", cow.COW_MAGIC, 1, path, mtime, size, 512)
    elif layout == "v2":
        hdr = struct.pack(">II4096sIQi", cow.COW_MAGIC, 2, path, mtime, size, 512)
    else:
        hdr = struct.pack(">III4xQIII4096s4x", cow.COW_MAGIC, 3, mtime, size, 512, 4096, 0, path)
    h = cow.parse_header(hdr)
    assert h.layout == layout
    written = {5: b"5" * 512, 6: bytes(512), 1000: b"k" * 512, h.sectors - 1: b"E" * 512}
    bitmap = bytearray(h.bitmap_len)
    body = bytearray(h.data_offset + size)
    body[:len(hdr)] = hdr
    for s, buf in written.items():
        bitmap[s >> 3] |= 1 << (s & 7)
        body[h.data_offset + s * 512:h.data_offset + (s + 1) * 512] = buf
        data[s * 512:(s + 1) * 512] = buf
    body[h.bitmap_offset:h.bitmap_offset + len(bitmap)] = bitmap
    c = tmp_path / "old.cow"
    c.write_bytes(body)
    r1 = moo(REAL_MOO, c, tmp_path / "real.img")
    r2 = moo(OUR_MOO, c, tmp_path / "ours.img")
    assert (r2.returncode, r2.stdout, r2.stderr) == (r1.returncode, r1.stdout, r1.stderr) == \
        (0, b"read_cow_header - broken V3 file with 64-bit layout - recovering content.\n"
         if layout == "v3-broken" else b"", b"")
    assert (tmp_path / "real.img").read_bytes() == (tmp_path / "ours.img").read_bytes() == bytes(data)
    with cow.CowDevice(str(c), writable=False) as d:
        assert d.read(0, d.sectors) == bytes(data)


@needs_uml
def test_locks_exclude_real_uml(tmp_path):
    """Our OFD locks and the real UML's POSIX locks (os_lock_file, taken while the guest
    has the device open) exclude each other."""
    b = tmp_path / "backing.img"
    rand_file(b, 4 * MiB, b"locks")
    c = tmp_path / "x.cow"
    cow.create(str(c), str(b))
    # 1. we hold the COW: the real UML refuses the device
    with cow.CowDevice(str(c)):
        out = boot_uml(tmp_path, "ls /dev/ubdb 2>&1; echo BOOTED", [f"ubdb={c}"])
    assert "BOOTED" in out and "F_SETLK failed, file already locked" in out, out[-2000:]
    # 2. the real UML holds it: we refuse, and so does our uml_moo
    root = tmp_path / "root"
    boot_uml(tmp_path, "true", [])          # builds the root tree
    (root / "init.sh").write_text("#!/bin/busybox sh\nexport PATH=/bin\n"
                                  "mount -t devtmpfs dev /dev\nexec 3<>/dev/ubdb && echo HOLDING\n"
                                  "sleep 10\npoweroff -f\n")
    umldir = tmp_path / "umldir"
    p = subprocess.Popen([REAL_UML, "mem=64M", "root=/dev/root", "rootfstype=hostfs",
                          f"rootflags={root}", "rw", "init=/init.sh", f"ubdb={c}",
                          "con0=fd:0,fd:1", "con=null", f"uml_dir={umldir}"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace",
                         start_new_session=True)
    try:
        for line in p.stdout:
            if "HOLDING" in line:
                break
        else:
            pytest.fail("UML did not come up")
        with pytest.raises(cow.ImageLockedError, match="already in use"):
            cow.CowDevice(str(c))
        r = moo(OUR_MOO, c, tmp_path / "out.img")
        assert r.returncode == 1 and b"COW file open:" in r.stderr and b"already in use" in r.stderr
    finally:
        import signal
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
