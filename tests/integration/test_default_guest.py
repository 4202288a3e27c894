"""The default guest (no root switches): the cached busybox ext2 image booted read-write
as /dev/ubda through a COW file of the instance, so the image itself never changes."""
import hashlib
import subprocess
from pathlib import Path

from usermode.tools.busybox_root import default_image

REPO = Path(__file__).resolve().parents[2]
USERMODE = REPO / ".venv" / "bin" / "usermode"


def _boot(script: str, *switches: str) -> str:
    p = subprocess.run([str(USERMODE), "quiet", *switches], input=script + "\npoweroff\n",
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p.stdout


def _md5(path: str) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_default_guest_writes_to_its_cow_only(tmp_path):
    image = default_image()
    before = _md5(image)
    out = _boot("mount | grep ' / '; echo persisted > /root/note; cat /root/note; df / | tail -1",
                f"uml_dir={tmp_path}")
    assert "/dev/ubda on / type ext2 (rw" in out
    assert "persisted" in out
    assert _md5(image) == before                       # pristine
    assert subprocess.run(["e2fsck", "-fn", image], capture_output=True).returncode == 0
    # each instance has its own disposable COW: the next boot starts from the image again
    out = _boot("cat /root/note 2>&1", f"uml_dir={tmp_path}")
    assert "No such file or directory" in out
    assert list(tmp_path.iterdir()) == []              # umid directory and COW removed


def test_ubda_without_root_is_the_root(tmp_path):
    """UML's root= defaults to /dev/ubda: a ubda switch alone picks the root."""
    cow = tmp_path / "mine.cow"
    image = default_image()
    out = _boot("echo kept > /root/kept; sync", "rw", f"ubda={cow},{image}",
                f"uml_dir={tmp_path / 'uml'}")
    assert cow.exists()
    out = _boot("cat /root/kept; mount | grep ' / '", f"ubda={cow},{image}",
                f"uml_dir={tmp_path / 'uml'}")
    assert "kept" in out
    assert "/dev/ubda on / type ext2 (ro" in out        # no "rw": read-only, as Linux
