"""The mconsole wire format and the command table against a fake kernel and transport."""
from __future__ import annotations

import struct

from usermode.drivers import mconsole_proto as proto
from usermode.drivers.mconsole import MConsole


def test_request_roundtrip_and_errors() -> None:
    data = proto.build_request("proc meminfo")
    assert len(data) == proto.REQUEST_SIZE
    assert struct.unpack_from("=III", data) == (0xCAFEBABE, 2, 12)
    req, err = proto.parse_request(data)
    assert err is None and req.text == "proc meminfo"
    assert proto.parse_request(b"\x00" * 5)[1]
    assert "Version 0" in proto.parse_request(struct.pack("=III", 1, 2, 0))[1]
    assert proto.parse_request(struct.pack("=III", proto.MAGIC, 2, 512))[1] == "Request too large"
    assert proto.parse_request(data + b"x")[1] == "Request too large"
    assert "version 2" in proto.parse_request(struct.pack("=III", proto.MAGIC, 3, 0))[1]


def test_replies_split_like_uml() -> None:
    text = "x" * 1200
    packets = proto.build_replies(text, err=1)
    reps = [proto.parse_reply(p) for p in packets]
    assert [r.more for r in reps] == [1, 1, 0]
    assert [r.err for r in reps] == [1, 0, 0]
    assert "".join(r.text for r in reps) == text
    assert struct.unpack_from("=III", packets[0])[2] == 512      # 511 chars + NUL
    assert len(packets[0]) == 12 + 512
    one = proto.parse_reply(proto.build_replies("")[0])
    assert (one.err, one.more, one.text) == (0, 0, "")


def test_notify_packet() -> None:
    pkt = proto.build_notify(proto.NOTIFY_SOCKET, "/x/mconsole\0")
    assert struct.unpack_from("=IIII", pkt) == (proto.MAGIC, 2, 0, 12)
    assert proto.parse_notify(pkt) == (0, b"/x/mconsole\0")


class FakeKernel:
    def __init__(self) -> None:
        self.logged: list[str] = []
        self.frozen = False
        self.halted = None
        self.cad_enabled = True
        self.hostname = b"usermode"
        self.procs: dict = {}
        self.threads: dict = {}
        self.init = None

    def printk(self, msg: str) -> None:
        self.logged.append(msg)

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False

    def halt(self, status: int, reason: str = "") -> None:
        self.halted = reason


def serve(m: MConsole, text: str) -> list[proto.Reply]:
    sent: list[bytes] = []
    m.send = lambda addr, data: sent.append(data) or True
    m.datagram(proto.build_request(text), "client")
    return [proto.parse_reply(p) for p in sent]


def test_commands() -> None:
    k = FakeKernel()
    m = MConsole(k, None)
    assert serve(m, "version")[0].text.startswith("Linux usermode 6.1.0-usermode")
    assert serve(m, "log hello world")[0].err == 0 and k.logged[-1] == "hello world"
    assert serve(m, "bogus")[0].text == "Unknown command"
    assert serve(m, "stop")[0].text == "stopped" and k.frozen
    assert serve(m, "stop")[0].err == 1
    assert serve(m, "go")[0].err == 0 and not k.frozen
    assert serve(m, "go")[0].text == "Not stopped"
    assert serve(m, "sysrq s")[0].text.startswith("sysrq: Emergency Sync")
    assert "reboot(b)" in serve(m, "sysrq h")[0].text
    assert serve(m, "remove ubdb")[0].err == 1
    assert serve(m, "stack x")[0].text == "Please specify a pid"
    assert serve(m, "stack 5")[0].text == "Couldn't find that pid"
    assert serve(m, "cad")[0].err == 0 and k.halted == "reboot"
    assert serve(m, "halt")[0].err == 0
