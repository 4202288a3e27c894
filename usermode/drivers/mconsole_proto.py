"""The MConsole wire format (UML's arch/um/include/shared/mconsole.h, mconsole_user.c).

All fields are u32 in host byte order; data is at most MAX_DATA bytes and, in replies and
requests alike, NUL-terminated inside `len`:

    request: magic (0xcafebabe), version (2), len, data[len]
    reply:   err, more, len, data[len]          (len counts the trailing NUL)
    notify:  magic, version, type, len, data[len]

`err` is 0 for success; drivers' failures carry a negative errno (as a u32), as UML's
do. A reply longer than MAX_DATA - 1 characters is sent as several packets, `more` = 1 on all
but the last; `err` is only ever set on the first packet, as UML does. Parsing never raises:
bad datagrams come back as an error text for the transport to answer with.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0xCAFEBABE
VERSION = 2
MAX_DATA = 512
HEADER = struct.Struct("=III")                 # request and reply headers
NOTIFY_HEADER = struct.Struct("=IIII")
REQUEST_SIZE = HEADER.size + MAX_DATA          # the largest datagram we accept
REPLY_SIZE = HEADER.size + MAX_DATA

# notification types (enum in struct mconsole_notify)
NOTIFY_SOCKET, NOTIFY_PANIC, NOTIFY_HANG, NOTIFY_USER = range(4)


@dataclass
class Request:
    """One parsed request: its command text (NUL and surrounding spaces stripped)."""
    text: str
    version: int = VERSION
    origin: object = None           # the client's address, for the transport


@dataclass
class Reply:
    err: int
    more: int
    text: str


def parse_request(data: bytes) -> tuple[Request | None, str | None]:
    """(request, None) for a good datagram, (None, error text) for a bad one.

    The errors are UML's: an unversioned (wrong magic) client, a too large request, a
    client of another protocol version."""
    if len(data) > REQUEST_SIZE:
        return None, "Request too large"
    if len(data) < HEADER.size:
        return None, "ERR Version 0 mconsole clients are not supported by this driver"
    magic, version, length = HEADER.unpack_from(data)
    if magic != MAGIC:
        return None, "ERR Version 0 mconsole clients are not supported by this driver"
    if length >= MAX_DATA:
        return None, "Request too large"
    if version != VERSION:
        return None, f"This driver only supports version {VERSION} clients"
    body = data[HEADER.size:HEADER.size + length]
    body = body.split(b"\0", 1)[0]
    return Request(body.decode(errors="replace").strip(), version), None


def build_request(text: str | bytes) -> bytes:
    """A client's request datagram (the text is cut to MAX_DATA - 1 bytes)."""
    raw = text.encode() if isinstance(text, str) else text
    raw = raw[:MAX_DATA - 1]
    return HEADER.pack(MAGIC, VERSION, len(raw)) + raw + b"\0" * (MAX_DATA - len(raw))


def build_replies(text: str | bytes, err: int = 0, more: bool = False) -> list[bytes]:
    """The reply datagrams for text: MAX_DATA - 1 characters each, more=1 on all but
    the last (whose `more` is the caller's), err on the first only."""
    raw = text.encode(errors="replace") if isinstance(text, str) else text
    out = []
    while True:
        chunk, raw = raw[:MAX_DATA - 1], raw[MAX_DATA - 1:]
        m = 1 if raw else int(bool(more))
        out.append(HEADER.pack(err & 0xFFFFFFFF, m, len(chunk) + 1) + chunk + b"\0")
        err = 0
        if not raw:
            return out


def parse_reply(data: bytes) -> Reply | None:
    """A reply datagram as a client reads it; None if it is too short to be one."""
    if len(data) < HEADER.size:
        return None
    err, more, length = HEADER.unpack_from(data)
    body = data[HEADER.size:HEADER.size + min(length, MAX_DATA)].split(b"\0", 1)[0]
    return Reply(err, more, body.decode(errors="replace"))


def build_notify(kind: int, data: str | bytes) -> bytes:
    """A notification datagram (socket: data is the mconsole socket path, NUL included)."""
    raw = data.encode() if isinstance(data, str) else data
    raw = raw[:MAX_DATA]
    return NOTIFY_HEADER.pack(MAGIC, VERSION, kind, len(raw)) + raw


def parse_notify(data: bytes) -> tuple[int, bytes] | None:
    """(type, data) of a notification datagram, or None when it is not one."""
    if len(data) < NOTIFY_HEADER.size:
        return None
    magic, version, kind, length = NOTIFY_HEADER.unpack_from(data)
    if magic != MAGIC:
        return None
    return kind, data[NOTIFY_HEADER.size:NOTIFY_HEADER.size + min(length, MAX_DATA)]
