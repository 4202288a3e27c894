"""Differential tests: each tests/syscalls/NAME.c program, static and dynamic,
must print the same stdout and exit with the same status natively and as init
under `usermode run --root / -- PROGRAM SCRATCH_DIR`."""

import pytest

from conftest import LINKS, assert_native_ok, assert_same, programs, run_guest, run_native


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("program", programs())
def test_differential(program, link, build, tmp_path):
    exe = build(program, link)
    # same-length names: a program may print lengths of paths under them
    ndir = tmp_path / "run-n"
    gdir = tmp_path / "run-g"
    ndir.mkdir()
    gdir.mkdir()
    native = run_native(exe, [ndir], cwd=ndir)
    assert_native_ok(native)
    guest = run_guest(exe, [gdir], cwd=gdir)
    assert_same(native, guest)
