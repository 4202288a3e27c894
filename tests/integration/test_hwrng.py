"""/dev/hwrng (issue 5): char 10,183, filled from the host's random source, any size."""
from __future__ import annotations

import subprocess

from tests.integration.console import USERMODE


def test_hwrng_reads(tmp_path) -> None:
    script = (b"ls -l /dev/hwrng | awk '{print $1, $5, $6}'\n"
              b"dd if=/dev/hwrng bs=1000000 count=1 2>/dev/null | wc -c\n"
              b"dd if=/dev/hwrng bs=1 count=7 2>/dev/null | wc -c\n"
              b"a=$(od -An -tx1 -N32 /dev/hwrng); b=$(od -An -tx1 -N32 /dev/hwrng)\n"
              b"[ \"$a\" != \"$b\" ] && echo differ\n"
              b"dd if=/dev/hwrng bs=65536 count=4 2>/dev/null | gzip -c | wc -c\n"
              b"echo x >/dev/hwrng 2>/dev/null || echo no-writes; exit 0\n")
    p = subprocess.run([USERMODE, "quiet", f"uml_dir={tmp_path}", "init=/bin/sh"],
                       input=script, capture_output=True, timeout=60)
    lines = p.stdout.decode().split("\n")
    assert lines[:4] == ["crw------- 10, 183", "1000000", "7", "differ"], p.stdout
    assert int(lines[4]) > 262144          # random data does not compress
    assert lines[5] == "no-writes"
