"""A guest that fills its disk gets ENOSPC, as on Linux, and stays usable: the space comes
back after rm and the filesystem is clean for e2fsck afterwards."""
from __future__ import annotations

import subprocess

from tests.integration.console import USERMODE
from usermode.tools.busybox_root import default_root

SCRIPT = """
mount -t tmpfs none /tmp && mkdir /tmp/small && mount -t ext2 /dev/ubdb /tmp/small || exit 1
dd if=/dev/zero of=/tmp/small/fill bs=64k count=1000 2>&1 | grep -o 'No space left on device'
echo more > /tmp/small/more.txt || echo "echo: ENOSPC too"
df /tmp/small | tail -1 | awk '{print "avail", $4}'
rm /tmp/small/fill && echo after-rm > /tmp/small/after.txt && cat /tmp/small/after.txt
umount /tmp/small && echo unmounted
"""
# (the scratch mount point is on a guest tmpfs, so the shared busybox tree stays as it is)


def test_filling_an_ext2_disk_gives_enospc(tmp_path):
    img = tmp_path / "small.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-m", "0", str(img), "4M"], check=True)
    p = subprocess.run([USERMODE, "run", "--root", default_root(), "--ubd", f"ubdb={img}",
                        "--", "/bin/sh", "-c", SCRIPT], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    out = p.stdout
    assert "Traceback" not in out + p.stderr
    assert "No space left on device" in out
    assert "avail 0" in out
    assert "after-rm" in out and "unmounted" in out
    assert subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True).returncode == 0
