"""The README's first command: boot the default busybox guest and use its console (issue 3)."""
from __future__ import annotations

import time

import pytest

from tests.integration.console import Console

PROMPT = b"usermode:/$ "


@pytest.fixture
def console():
    c = Console(["quiet"])
    try:
        c.read_until(b"busybox guest ready", 60)
        c.read_until(PROMPT, 30)
        yield c
    finally:
        c.kill()


def test_shell_session(console: Console) -> None:
    out = console.run("ls /", PROMPT)
    for name in (b"bin", b"etc", b"proc", b"sbin", b"usr"):
        assert name in out.split()
    status = console.run("cat /proc/1/status", PROMPT)
    assert b"Name:\tinit" in status and b"Pid:\t1\n" in status and b"PPid:\t0" in status
    assert console.run("echo one two three | wc -w", PROMPT).strip() == b"3"
    assert console.run("echo $((6*7)) | sed s/4/X/", PROMPT).strip() == b"X2"


def test_job_control_and_interrupt(console: Console) -> None:
    console.run("sleep 30 &", PROMPT)
    jobs = console.run("jobs", PROMPT)
    assert b"Running" in jobs and b"sleep 30" in jobs
    console.send(b"fg\r")
    console.read_until(b"sleep 30")
    time.sleep(0.5)
    console.send(b"\x1a")                        # ^Z stops the foreground job
    console.read_until(b"Stopped")
    console.read_until(PROMPT)
    assert b"Stopped" in console.run("jobs", PROMPT)
    console.run("kill %1", PROMPT)
    console.send(b"sleep 40\r")
    console.read_until(b"sleep 40")
    time.sleep(0.5)
    t0 = time.monotonic()
    console.send(b"\x03")                        # ^C ends it at once
    console.read_until(PROMPT, 10)
    assert time.monotonic() - t0 < 5
    assert console.run("echo $?", PROMPT).strip() == b"130"


def test_vi_draws_and_saves(console: Console) -> None:
    console.send(b"vi /tmp/note\r")
    console.read_until(b"/tmp/note")
    time.sleep(0.5)
    console.send(b"ihello from vi")
    time.sleep(0.3)
    console.send(b"\x1b")
    time.sleep(0.5)
    console.send(b":wq\r")
    console.read_until(PROMPT)
    assert console.run("cat /tmp/note", PROMPT).strip() == b"hello from vi"


def test_poweroff_ends_the_instance(console: Console) -> None:
    console.send(b"poweroff\r")
    console.read_until(b"Requesting system poweroff", 30)
    assert console.wait(30) == 0
