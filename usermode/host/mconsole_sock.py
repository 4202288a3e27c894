"""The host side of mconsole (UML's mconsole_user.c and umid.c): the umid directory, the
unix datagram socket the clients talk to, and notifications.

    UML_DIR/UMID/pid        the host pid of the instance (the kernel process)
    UML_DIR/UMID/mconsole   a unix datagram socket; replies go to each client's address

A directory whose pid file names a dead process (or has no pid file) is stale and taken
over; one naming a live process is in use.
"""
from __future__ import annotations

import errno
import os
import random
import shutil
import socket
import string

from usermode.drivers.mconsole_proto import REQUEST_SIZE

DEFAULT_UML_DIR = "~/.uml"


class UmidInUse(Exception):
    """The umid directory belongs to a running instance: one line for the user."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def random_umid() -> str:
    """Six random letters and digits, as UML's mkdtemp-made umids look."""
    alphabet = string.ascii_letters + string.digits
    return "".join(random.SystemRandom().choice(alphabet) for _ in range(6))


class UmidDir:
    """DIR/UMID with its pid file; remove() at shutdown."""

    def __init__(self, uml_dir: str | None, umid: str | None) -> None:
        base = os.path.abspath(os.path.expanduser(uml_dir or DEFAULT_UML_DIR))
        if umid is not None and (not umid or "/" in umid or umid in (".", "..")):
            raise UmidInUse(f"umid={umid}: not a valid name")
        try:
            os.makedirs(base, 0o777, exist_ok=True)
        except OSError as e:
            raise UmidInUse(f"uml_dir={base}: {e.strerror}") from None
        if umid is None:
            self.sweep(base)
        while True:
            name = umid or random_umid()
            path = os.path.join(base, name)
            try:
                os.mkdir(path, 0o777)
                break
            except FileExistsError:
                if umid is None:
                    continue
            except OSError as e:
                raise UmidInUse(f"umid {name}: cannot create {path}: {e.strerror}") from None
            owner = self._owner(path)
            if owner is not None and owner != os.getpid() and pid_alive(owner):
                raise UmidInUse(f"umid {name} is in use by pid {owner} ({path})")
            shutil.rmtree(path, ignore_errors=True)    # stale: a dead instance's leftovers
            try:
                os.mkdir(path, 0o777)
                break
            except OSError as e:
                raise UmidInUse(f"umid {name}: cannot take over {path}: {e.strerror}") from None
        self.umid = name
        self.path = path
        with open(os.path.join(path, "pid"), "w") as f:
            f.write(f"{os.getpid()}\n")

    @classmethod
    def sweep(cls, base: str) -> None:
        """Remove umid directories of dead instances (only a pid file, a socket and the
        default guest's disposable COW file in them), so instances that were killed do
        not pile up in ~/.uml."""
        try:
            names = os.listdir(base)
        except OSError:
            return
        for name in names:
            path = os.path.join(base, name)
            try:
                entries = set(os.listdir(path))
            except OSError:
                continue
            if not entries <= {"pid", "mconsole", "root.cow"} or "pid" not in entries:
                continue
            owner = cls._owner(path)
            if owner is not None and not pid_alive(owner):
                shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def _owner(path: str) -> int | None:
        try:
            with open(os.path.join(path, "pid")) as f:
                return int(f.read().strip() or "0") or None
        except (OSError, ValueError):
            return None

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def remove(self) -> None:
        if self._owner(self.path) == os.getpid():
            shutil.rmtree(self.path, ignore_errors=True)


class DatagramSocket:
    """The mconsole socket: non-blocking recvfrom/sendto on a bound unix datagram socket."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(path)
        except OSError as e:
            self.sock.close()
            raise UmidInUse(f"mconsole socket {path}: {e.strerror or e}") from None
        self.sock.setblocking(False)
        # room for many queued requests (a load of concurrent clients)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self, limit: int = 256) -> list[tuple[bytes, object]]:
        """Up to limit waiting datagrams as (data, client address). A datagram larger
        than a request comes back one byte longer than REQUEST_SIZE (so it is refused)."""
        out = []
        for _ in range(limit):
            try:
                data, addr = self.sock.recvfrom(REQUEST_SIZE + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            out.append((data, addr))
        return out

    def send(self, addr, data: bytes) -> bool:
        """Send one reply; False if the client is gone (an unbound or vanished address)."""
        if not addr:
            return False
        for _ in range(100):
            try:
                self.sock.sendto(data, addr)
                return True
            except InterruptedError:
                continue
            except BlockingIOError:
                # the client's queue is full: it is reading, give it a moment
                import select
                select.select([], [self.sock], [], 0.01)
                continue
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTCONN):
                    return False
                return False
        return False

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def send_notify(path: str, packet: bytes) -> bool:
    """Send one notification datagram to a listener's socket (mconsole=notify:PATH)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(packet, path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class MconsoleHost:
    """One instance's management endpoint across reboots: the umid directory and socket
    (made once), attached to each boot's kernel loop. close() removes them."""

    def __init__(self, uml_dir: str | None, umid: str | None,
                 notify: str | None = None) -> None:
        self.dir = UmidDir(uml_dir, umid)
        try:
            self.sock = DatagramSocket(self.dir.file("mconsole"))
        except UmidInUse:
            self.dir.remove()
            raise
        self.umid = self.dir.umid
        self.path = self.sock.path
        self.notify = notify
        self.notified = False
        self.console = None

    def attach(self, kernel) -> None:
        """Serve mconsole on this kernel's loop (each boot has its own kernel)."""
        from usermode.drivers import mconsole_proto as proto
        from usermode.drivers.mconsole import MConsole
        self.console = MConsole(kernel, self.sock.send,
                                self.send_notification if self.notify else None)
        kernel.mconsole = self.console
        kernel.printk(f"mconsole (version {proto.VERSION}) initialized on {self.path}")
        kernel.loop.add_reader(self.sock.fileno(), self._readable)
        if self.notify and not self.notified:
            self.notified = True
            if not self.send_notification(proto.NOTIFY_SOCKET, self.path + "\0"):
                kernel.printk(f"mconsole: could not notify {self.notify}")

    def send_notification(self, kind: int, data: str | bytes) -> bool:
        """One notification to the mconsole=notify:SOCKET listener (False: none or gone)."""
        from usermode.drivers import mconsole_proto as proto
        if not self.notify:
            return False
        return send_notify(self.notify, proto.build_notify(kind, data))

    def _readable(self, fd: int) -> None:
        while True:
            batch = self.sock.receive()
            if not batch:
                return
            for data, addr in batch:
                self.console.datagram(data, addr)

    def close(self) -> None:
        self.sock.close()
        self.dir.remove()
