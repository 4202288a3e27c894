"""Debian bookworm's own programs in usermode (issue 7, step 2): bash, coreutils, python3
(stdlib, threads, processes, venv + pip), gcc + make, tar, find, procps. Each workload runs
with /bin/bash as init of a machine whose root is the debootstrap tree, and natively in a
chroot of the same tree; where the output is deterministic the two must be identical. dpkg
builds, installs and removes a package too."""
from __future__ import annotations

import io
import zipfile

from tests.integration.debian import both, debian_root, guest, native  # noqa: F401 (fixture)

COREUTILS = r"""
set -e
declare -A seen; words=(pear apple fig apple kiwi fig apple)
for w in "${words[@]}"; do seen[$w]=$(( ${seen[$w]:-0} + 1 )); done
for k in $(printf '%s\n' "${!seen[@]}" | sort); do echo "$k ${seen[$k]}"; done
f() { local n=$1; (( n <= 1 )) && echo 1 || echo $(( n * $(f $((n-1))) )); }; echo "10! = $(f 10)"
cat <<EOF | tr a-z A-Z
here document ${words[0]}
EOF
ls -l /usr/share/doc/bash /etc/apt | grep -v '^total'
ls -ld /usr/bin/su /etc/shadow; stat -c "%a %U" /tmp
seq 1 20000 | sort -rn | head -3; seq 1 20000 | sort | md5sum
wc -l /etc/passwd /etc/group; wc -c /usr/bin/bash
md5sum /usr/bin/bash /usr/bin/ls /etc/os-release
sha256sum /usr/lib/os-release | cut -c1-16
cut -d: -f1,7 /etc/passwd | sort | head -5
awk -F: '{ n += NF } END { print "fields", n }' /etc/passwd
sed -n 's/^ID=//p' /etc/os-release
stat -c '%n %s %a %U:%G %F' /usr/bin/bash /etc /usr/bin/sh
du -sk /usr/include | cut -f1; ls /usr/bin | wc -l
printf '%s\n' c b a | sort | tac | paste -sd,
echo "$(( 2**40 ))" $((0x10 + 010)); expr 6 \* 7; basename /a/b/c.txt .txt; readlink -f /bin
comm -12 <(printf 'a\nb\nc\n') <(printf 'b\nc\nd\n'); join <(printf '1 a\n2 b\n') <(printf '1 x\n2 y\n')
split -l 2 /etc/passwd /tmp/split-$$-; ls /tmp/split-$$-* | wc -l; rm /tmp/split-$$-*
date -u -d @1700000000 '+%F %T %s'; env -i /usr/bin/printenv | wc -l
"""

PY_STDLIB = r"""
import json, sqlite3, ssl, multiprocessing, subprocess, hashlib, zlib, os, locale
print(json.dumps({"a": [1, 2.5, None], "b": "é"}, sort_keys=True))
db = sqlite3.connect("/tmp/py-%d.db" % os.getpid())
db.execute("create table t (k integer primary key, v text)")
db.executemany("insert into t (v) values (?)", [(str(i),) for i in range(1000)])
db.commit()
print(db.execute("select count(*), sum(k), max(v) from t").fetchone(), sqlite3.sqlite_version)
db.close(); os.unlink("/tmp/py-%d.db" % os.getpid())
ctx = ssl.create_default_context()
print(ssl.OPENSSL_VERSION, ctx.verify_mode, ctx.check_hostname)
print(hashlib.sha256(b"usermode").hexdigest(), zlib.crc32(b"x" * 1000))
print(subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True))
print(subprocess.check_output("ls /usr/lib/python3.11/json | head -3", shell=True, text=True))
with multiprocessing.Pool(2) as p:
    print(p.map(abs, range(-5, 5)))
q = multiprocessing.Queue(); pr = multiprocessing.Process(target=q.put, args=("via queue",))
pr.start(); print(q.get()); pr.join(); print("exitcode", pr.exitcode)
print(locale.getpreferredencoding(), os.uname().sysname)
"""

PY_THREADS = r"""
import threading, concurrent.futures, queue, time
def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    print(list(ex.map(fib, range(18))))
with concurrent.futures.ProcessPoolExecutor(3) as ex:
    print(sum(ex.map(fib, [15] * 12)))
lock, count = threading.Lock(), [0]
def bump():
    for _ in range(2000):
        with lock: count[0] += 1
ts = [threading.Thread(target=bump) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]; print("count", count[0])
cv, items = threading.Condition(), queue.Queue()
def producer():
    for i in range(50): items.put(i)
    items.put(None)
threading.Thread(target=producer).start()
got = []
while (x := items.get()) is not None: got.append(x)
print("consumed", len(got), sum(got))
ev = threading.Event(); threading.Timer(0.2, ev.set).start(); print("event", ev.wait(10))
b = threading.Barrier(4); r = []
def meet(i): b.wait(); r.append(i)
ts = [threading.Thread(target=meet, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]; print("barrier", sorted(r))
"""

C_MAIN = r"""
#include <stdio.h>
#include "lib.h"
int main(void) {
    printf("sum(1..100) = %ld\n", sum_to(100));
    printf("primes below 10000: %d\n", count_primes(10000));
    return 0;
}
"""
C_LIB = r"""
#include <stdlib.h>
#include <string.h>
#include "lib.h"
long sum_to(int n) { long s = 0; for (int i = 1; i <= n; i++) s += i; return s; }
int count_primes(int n) {
    char *sieve = calloc(n, 1); int c = 0;
    for (int i = 2; i < n; i++) {
        if (sieve[i]) continue;
        c++;
        for (long j = (long)i * i; j < n; j += i) sieve[j] = 1;
    }
    free(sieve); return c;
}
"""
C_HDR = "long sum_to(int n);\nint count_primes(int n);\n"
MAKEFILE = """\
CFLAGS = -O2 -Wall -Werror
prog: main.o lib.o
\t$(CC) $(CFLAGS) -o $@ $^
%.o: %.c lib.h
\t$(CC) $(CFLAGS) -c $<
clean:
\trm -f *.o prog
"""


def make_wheel(path) -> None:
    """A tiny pure-python wheel: one module, the three dist-info files pip needs."""
    di = "tinywheel-1.0.dist-info"
    files = {"tinywheel.py": "def hello():\n    return 'hello from tinywheel'\n",
             f"{di}/METADATA": "Metadata-Version: 2.1\nName: tinywheel\nVersion: 1.0\n",
             f"{di}/WHEEL": "Wheel-Version: 1.0\nGenerator: usermode-tests\n"
                            "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{di}/RECORD"] = "".join(f"{k},,\n" for k in files) + f"{di}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    path.write_bytes(buf.getvalue())


def test_bash_and_coreutils(debian_root) -> None:
    n, g = both(debian_root, COREUTILS)
    assert "10! = 3628800" in g.out and "HERE DOCUMENT PEAR" in g.out
    assert g.out == n.out


def test_python_stdlib(debian_root) -> None:
    (debian_root / "tmp/stdlib.py").write_text(PY_STDLIB)
    n, g = both(debian_root, "python3 /tmp/stdlib.py")
    assert "via queue" in g.out and "(1000, 500500, '999')" in g.out
    assert g.out == n.out


def test_python_threads_and_futures(debian_root) -> None:
    (debian_root / "tmp/threads.py").write_text(PY_THREADS)
    n, g = both(debian_root, "python3 /tmp/threads.py")
    assert "count 16000" in g.out and "barrier [0, 1, 2, 3]" in g.out
    assert g.out == n.out


def test_venv_and_pip_install_of_a_wheel(debian_root) -> None:
    make_wheel(debian_root / "tmp/tinywheel-1.0-py3-none-any.whl")
    script = ("d=/tmp/venv-$1; rm -rf $d; python3 -m venv $d && "
              "$d/bin/pip install -q --no-index --disable-pip-version-check "
              "/tmp/tinywheel-1.0-py3-none-any.whl && "
              "$d/bin/python -c 'import sys, tinywheel; print(tinywheel.hello(), "
              "sys.prefix != sys.base_prefix)' && $d/bin/pip list --format=freeze")
    n, g = both(debian_root, f"set -- side; {script}", timeout=400)
    assert "hello from tinywheel True" in g.out and "tinywheel==1.0" in g.out
    assert g.out == n.out


def test_gcc_and_make_of_a_multi_file_project(debian_root) -> None:
    for side in ("native", "guest"):
        d = debian_root / "tmp" / f"proj-{side}"
        d.mkdir(exist_ok=True)
        for name, text in {"main.c": C_MAIN, "lib.c": C_LIB, "lib.h": C_HDR,
                           "Makefile": MAKEFILE}.items():
            (d / name).write_text(text)
    script = "cd /tmp/proj-{} && make clean && make -j2 && ./prog && file -b prog | cut -d, -f1"
    n = native(debian_root, script.format("native"))
    g = guest(debian_root, script.format("guest"))
    assert n.status == 0 and g.status == 0, g.err
    assert "primes below 10000: 1229" in g.out and "ELF 64-bit LSB pie executable" in g.out
    assert sorted(g.out.splitlines()) == sorted(n.out.splitlines())    # -j2: any order


def test_tar_czf_of_usr(debian_root) -> None:
    script = ("tar czf /tmp/usr.tgz -C / usr && tar tzvf /tmp/usr.tgz | md5sum && "
              "tar tzf /tmp/usr.tgz | wc -l && tar xzOf /tmp/usr.tgz | md5sum; rm /tmp/usr.tgz")
    n, g = both(debian_root, script, timeout=600)
    assert len(g.out.splitlines()) == 3 and int(g.out.splitlines()[1]) > 10000
    assert g.out == n.out


def test_find_whole_root_xdev(debian_root) -> None:
    # /dev, /proc, /sys are the kernel's in the guest and plain directories in the chroot
    script = ("find / -xdev \\( -path /dev -o -path /proc -o -path /sys -o -path /tmp \\) "
              "-prune -o -print | LC_ALL=C sort > /tmp/find.out; wc -l < /tmp/find.out; "
              "md5sum < /tmp/find.out; find /usr -xdev -type f | wc -l")
    n, g = both(debian_root, script)
    assert int(g.out.split()[0]) > 10000
    assert g.out == n.out


def test_procps_reads_our_proc(debian_root) -> None:
    script = ("ps -eo pid,ppid,user,stat,comm --no-headers; echo ---; free -k; echo ---; "
              "top -b -n1 | head -12; echo ---; uptime; ps -o rss=,vsz= -p $$; pgrep -x bash; "
              "vmstat 1 2 | tail -1 | wc -w; sleep 3 & pidof sleep; kill %1")
    g = guest(debian_root, script, mem="256M")
    assert g.status == 0, g.err
    ps, free, top, rest = g.out.split("---\n")
    rows = [line.split() for line in ps.splitlines()]
    assert rows[0] == ["1", "0", "root", "Ss", "bash"]
    assert ["ps"] == [r[4] for r in rows if r[4] == "ps"] and all(r[1] == "1" for r in rows[1:])
    mem = free.splitlines()[1].split()
    assert mem[0] == "Mem:" and mem[1] == "262144" and 0 < int(mem[2]) < 262144
    assert top.startswith("top - ") and "load average:" in top
    assert "Tasks:" in top and "MiB Mem :    256.0 total" in top
    assert any(line.split()[-1] == "top" for line in top.splitlines()[7:])
    up, psmem, pgrep, vmstat, sleeppid = rest.split("\n")[:5]
    assert " up " in up and "load average: " in up
    rss, vsz = map(int, psmem.split())
    assert 0 < rss < vsz
    assert pgrep == "1" and vmstat == "17" and int(sleeppid) > 1


DPKG = r"""
set -e
rm -rf /tmp/pkg-$1; mkdir -p /tmp/pkg-$1/DEBIAN /tmp/pkg-$1/usr/bin
printf 'Package: hello-um\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n' > /tmp/pkg-$1/DEBIAN/control
printf '#!/bin/sh\necho hello from a deb\n' > /tmp/pkg-$1/usr/bin/hello-um
chmod 755 /tmp/pkg-$1/usr/bin/hello-um
SOURCE_DATE_EPOCH=1700000000 dpkg-deb --root-owner-group --build /tmp/pkg-$1 /tmp/hello-$1.deb
dpkg-deb --contents /tmp/hello-$1.deb | awk '{ print $1, $2, $3, $6 }'
dpkg -i /tmp/hello-$1.deb; hello-um; dpkg -s hello-um | grep Status; dpkg -r hello-um
dpkg -s hello-um 2>&1 | head -1; rm -rf /tmp/pkg-$1 /tmp/hello-$1.deb
"""


def test_dpkg_builds_installs_and_removes_a_package(debian_root) -> None:
    (debian_root / "tmp/dpkg.sh").write_text(DPKG)
    n = native(debian_root, "bash /tmp/dpkg.sh native")
    g = guest(debian_root, "bash /tmp/dpkg.sh guest")
    assert n.status == 0 and g.status == 0, g.err + g.out
    assert "hello from a deb" in g.out and "-rwxr-xr-x root/root 32 ./usr/bin/hello-um" in g.out
    assert g.out.replace("guest", "native") == n.out
