"""UML COW file format (usermode/drivers/cow.py) and its host layer (usermode/host/blockfile.py)."""
from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys

import pytest

from usermode.drivers import cow
from usermode.host import blockfile

MiB = 1 << 20


def make_backing(path, size=8 * MiB, seed=b"backing"):
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha512(seed + i.to_bytes(8, "little")).digest()
        i += 1
    path.write_bytes(bytes(out[:size]))
    return bytes(out[:size])


@pytest.fixture
def backing(tmp_path):
    p = tmp_path / "backing.img"
    data = make_backing(p)
    return p, data


def test_create_v3_layout(tmp_path, backing):
    bpath, data = backing
    cpath = tmp_path / "disk.cow"
    h = cow.create(str(cpath), str(bpath))
    raw = cpath.read_bytes()
    st = os.stat(bpath)
    assert raw[0:4] == bytes.fromhex("4f4f4f4d")       # htonl(0x4f4f4f4d)
    assert struct.unpack(">I", raw[4:8])[0] == 3
    assert struct.unpack(">I", raw[8:12])[0] == int(st.st_mtime) & 0xFFFFFFFF
    assert struct.unpack(">Q", raw[12:20])[0] == len(data)
    assert struct.unpack(">III", raw[20:32]) == (512, 4096, 0)
    name = str(bpath).encode()
    assert raw[32:32 + len(name)] == name and raw[32 + len(name)] == 0
    assert raw[32 + len(name):] == bytes(len(raw) - 32 - len(name))   # bitmap and data zero
    assert (h.bitmap_offset, h.bitmap_len, h.data_offset) == (8192, 2048, 12288)
    assert len(raw) == 12288 + len(data) == h.file_size
    assert cow.open_cow(str(cpath)) == h
    with pytest.raises(OSError, match="File exists"):
        cow.create(str(cpath), str(bpath))        # never overwrites an existing COW
    assert cpath.read_bytes() == raw


def test_sizes_odd_backing(tmp_path):
    b = tmp_path / "odd.img"
    make_backing(b, size=3 * MiB + 300)
    h = cow.create(str(tmp_path / "odd.cow"), str(b))
    nsect = (3 * MiB + 300 + 511) // 512                  # 6145 sectors, last one partial
    assert h.bitmap_len == (nsect + 7) // 8 == 769
    assert h.data_offset == 12288 and h.sectors == nsect - 1
    with cow.CowDevice(str(tmp_path / "odd.cow")) as d:
        assert d.sectors == nsect
        last = d.read(nsect - 1, 1)
        assert last[:300] == b.read_bytes()[-300:] and last[300:] == bytes(212)


def test_relative_backing_is_absolutized(tmp_path, backing, monkeypatch):
    bpath, _ = backing
    monkeypatch.chdir(tmp_path)
    h = cow.create("rel.cow", "backing.img")
    assert h.backing_file == str(tmp_path.resolve() / "backing.img")


def test_read_write_bitmap_persisted(tmp_path, backing):
    bpath, data = backing
    cpath = tmp_path / "disk.cow"
    before = hashlib.sha256(bpath.read_bytes()).hexdigest()
    with cow.CowDevice(str(cpath), str(bpath)) as d:      # created on first use
        assert d.read(0, 16) == data[:16 * 512]
        d.write(3, b"A" * 512)
        d.write(9, b"B" * 1024)                           # 9, 10
        d.write(4095, b"C" * 512 * 3)                     # crosses bitmap bytes
        d.write(d.sectors - 1, b"Z" * 512)
        assert d.read(2, 2) == data[1024:1536] + b"A" * 512
        with pytest.raises(cow.CowError):
            d.write(0, b"short")
        with pytest.raises(cow.CowError):
            d.read(d.sectors, 1)
    assert hashlib.sha256(bpath.read_bytes()).hexdigest() == before    # backing untouched
    raw = cpath.read_bytes()
    bm = raw[8192:8192 + 2048]
    set_bits = [i for i in range(16384) if bm[i >> 3] >> (i & 7) & 1]
    assert set_bits == [3, 9, 10, 4095, 4096, 4097, 16383]
    assert raw[12288 + 3 * 512:12288 + 4 * 512] == b"A" * 512
    with cow.CowDevice(str(cpath), writable=False) as d:   # backing found from the header
        exp = bytearray(data)
        exp[3 * 512:4 * 512] = b"A" * 512
        exp[9 * 512:11 * 512] = b"B" * 1024
        exp[4095 * 512:4098 * 512] = b"C" * 1536
        exp[-512:] = b"Z" * 512
        assert d.read(0, d.sectors) == bytes(exp)
        with pytest.raises(cow.CowError):
            d.write(0, bytes(512))


def test_mtime_and_size_mismatch(tmp_path, backing):
    bpath, _ = backing
    cpath = tmp_path / "disk.cow"
    h = cow.create(str(cpath), str(bpath))
    os.utime(bpath, (h.mtime + 100, h.mtime + 100))
    with pytest.raises(cow.BackingMismatchError,
                       match=rf"^mtime mismatch \({h.mtime} vs {h.mtime + 100}\) of COW header vs backing file"):
        cow.CowDevice(str(cpath))
    os.utime(bpath, (h.mtime, h.mtime))
    cow.CowDevice(str(cpath)).close()
    with open(bpath, "ab") as f:
        f.write(b"x" * 512)
    os.utime(bpath, (h.mtime, h.mtime))
    with pytest.raises(cow.BackingMismatchError,
                       match=rf"^Size mismatch \({h.size} vs {h.size + 512}\) of COW header vs backing file"):
        cow.CowDevice(str(cpath))
    os.unlink(bpath)
    with pytest.raises(cow.BackingMismatchError, match="No such file"):
        cow.CowDevice(str(cpath))


def test_garbage_and_truncated(tmp_path, backing):
    bpath, _ = backing
    g = tmp_path / "garbage"
    g.write_bytes(os.urandom(9000))
    with pytest.raises(cow.NotCowError, match="not a COW file"):
        cow.open_cow(str(g))
    e = tmp_path / "empty"
    e.write_bytes(b"")
    with pytest.raises(cow.CowFormatError, match="short COW header"):
        cow.open_cow(str(e))
    cpath = tmp_path / "disk.cow"
    cow.create(str(cpath), str(bpath))
    full = cpath.read_bytes()
    t = tmp_path / "t1.cow"
    t.write_bytes(full[:1000])
    with pytest.raises(cow.CowFormatError, match="truncated V3 COW header"):
        cow.open_cow(str(t))
    t.write_bytes(full[:9000])
    with pytest.raises(cow.CowFormatError, match="truncated COW file"):
        cow.CowDevice(str(t))
    bad = bytearray(full[:4200])
    bad[4:8] = struct.pack(">I", 7)
    t.write_bytes(bad)
    with pytest.raises(cow.CowFormatError, match="invalid COW version 7"):
        cow.open_cow(str(t))
    bad[4:8] = struct.pack(">I", 3)
    bad[24:28] = bytes(4)
    t.write_bytes(bad)
    with pytest.raises(cow.CowFormatError, match="align == 0"):
        cow.open_cow(str(t))
    for exc in (cow.NotCowError, cow.CowFormatError, cow.BackingMismatchError):
        assert issubclass(exc, ValueError)
    with pytest.raises(OSError, match="No such file"):
        cow.open_cow(str(tmp_path / "missing.cow"))


def test_old_versions_parsed():
    path = b"/some/backing"
    v1 = struct.pack("<ii256sIQi", cow.COW_MAGIC, 1, path, 1234, 8 * MiB, 512)
    h = cow.parse_header(v1)
    assert (h.version, h.backing_file, h.mtime, h.size, h.sectorsize) == (1, "/some/backing", 1234, 8 * MiB, 512)
    assert h.bitmap_offset == 280 and h.bitmap_len == 2048 and h.data_offset == 2560
    v2 = struct.pack(">II4096sIQi", cow.COW_MAGIC, 2, path, 99, 8 * MiB, 512)
    h = cow.parse_header(v2)
    assert (h.version, h.mtime, h.bitmap_offset, h.data_offset) == (2, 99, 4120, 6656)
    # 64-bit "broken" V3: 4 bytes of padding after mtime, path at 36
    b3 = struct.pack(">III4xQIII4096s4x", cow.COW_MAGIC, 3, 77, 8 * MiB, 512, 4096, 0, path)
    h = cow.parse_header(b3)
    assert (h.layout, h.mtime, h.size, h.backing_file, h.bitmap_offset) == ("v3-broken", 77, 8 * MiB, "/some/backing", 8192)
    h = cow.parse_header(cow.pack_header_v3("/some/backing", 77, 8 * MiB))
    assert h.layout == "v3" and h.bitmap_offset == 8192 and h.data_offset == 12288


def test_locking(tmp_path, backing):
    bpath, _ = backing
    cpath = tmp_path / "disk.cow"
    d = cow.CowDevice(str(cpath), str(bpath))
    with pytest.raises(cow.ImageLockedError, match="already in use"):
        cow.CowDevice(str(cpath))
    # read-only users of the backing file share it
    cow.CowDevice(str(cpath), writable=False, lock=False).close()
    with blockfile.BlockFile(str(bpath), writable=False):
        pass
    with pytest.raises(cow.ImageLockedError):
        blockfile.BlockFile(str(bpath), writable=True)
    d.close()
    cow.CowDevice(str(cpath)).close()
    # a classic POSIX lock, as the real UML kernel takes (os_lock_file), also excludes us
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,sys,time; f=open(sys.argv[1],'r+b'); fcntl.lockf(f, fcntl.LOCK_EX);"
         " print('locked', flush=True); time.sleep(30)", str(cpath)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(cow.ImageLockedError, match=rf"locked by pid {holder.pid}"):
            cow.CowDevice(str(cpath))
    finally:
        holder.kill()
        holder.wait()


def test_backing_switch(tmp_path, backing):
    bpath, data = backing
    cpath = tmp_path / "disk.cow"
    h = cow.create(str(cpath), str(bpath))
    moved = tmp_path / "moved.img"
    os.rename(bpath, moved)
    with pytest.raises(cow.BackingMismatchError):
        cow.CowDevice(str(cpath))
    with cow.CowDevice(str(cpath), str(moved)) as d:    # same size and mtime: header updated
        assert d.switched and d.read(0, 1) == data[:512]
        assert d.warnings[-1] == f"Switching backing file to '{moved}'"
    assert cow.open_cow(str(cpath)).backing_file == str(moved)
    other = tmp_path / "other.img"
    make_backing(other, seed=b"other")
    os.utime(other, (h.mtime - 50, h.mtime - 50))
    # a mismatching one is not switched to: UML warns and keeps the header's backing file
    with cow.CowDevice(str(cpath), str(other)) as d:
        assert not d.switched and d.backing_path == str(moved)
        assert d.warnings == [f'Backing file mismatch - "{other}" requested, "{moved}" '
                              f'specified in COW header of "{cpath}"']
    assert cow.open_cow(str(cpath)).backing_file == str(moved)
    assert h.size == len(data)


def test_kill9_never_leaves_a_bit_without_data(tmp_path, backing):
    """A writer killed with SIGKILL mid-stream: every sector whose bit is set holds data the
    writer wrote for it (data is written before its bitmap byte), the backing is untouched."""
    import signal
    import time
    bpath, data = backing
    cpath = tmp_path / "disk.cow"
    cow.create(str(cpath), str(bpath))
    before = bpath.read_bytes()
    code = (
        "import sys, random\n"
        "from usermode.drivers import cow\n"
        "d = cow.CowDevice(sys.argv[1])\n"
        "r = random.Random(1)\n"
        "print('go', flush=True)\n"
        "while True:\n"
        "    s = r.randrange(d.sectors - 8); n = r.randrange(1, 8)\n"
        "    d.write(s, b''.join((b'S%08d' % (s + i)) * 56 + b'XXXXXXXX' for i in range(n)))\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(cpath)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "go"
    time.sleep(0.5)
    assert p.poll() is None, 'writer died early'
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert bpath.read_bytes() == before
    with cow.CowDevice(str(cpath), writable=False) as d:
        seen = 0
        for s in range(d.sectors):
            sec = d.read(s, 1)
            if d.test_bit(s):
                seen += 1
                assert sec == (b"S%08d" % s) * 56 + b"XXXXXXXX", s
            else:
                assert sec == data[s * 512:(s + 1) * 512]
        assert seen > 0
