"""uml_mconsole: talk to a running usermode (or real UML) instance's management console.

    uml_mconsole UMID|SOCKET [request ...]    send one request; exit 0 on OK, 1 on ERR
    uml_mconsole UMID|SOCKET                  interactive, with a "(UMID) " prompt

UMID names UML_DIR/UMID/mconsole (UML_DIR: $UML_DIR, else ~/.uml, then /tmp/uml); a name
with a "/" is the socket itself. Local commands, as in uml-utilities' client: quit,
switch UMID, log -f FILE, mconsole-version, int (SIGINT to the instance), help.
"""
from __future__ import annotations

import os
import signal
import socket
import sys

from usermode.drivers import mconsole_proto as proto

LOCAL_HELP = """Additional local mconsole commands:
    quit - Quit mconsole
    switch <socket-name> - Switch control to the given machine
    log -f <filename> - use contents of <filename> as UML log messages
    mconsole-version - version of this mconsole program
    int  - Interrupt UML session
"""
TIMEOUT = float(os.environ.get("UML_MCONSOLE_TIMEOUT", "60"))


def socket_path(name: str) -> str:
    """The mconsole socket of a umid (or the path itself)."""
    if "/" in name:
        return name
    dirs = [os.environ.get("UML_DIR"), os.path.expanduser("~/.uml"), "/tmp/uml"]
    for d in dirs:
        if d and os.path.exists(os.path.join(d, name, "mconsole")):
            return os.path.join(d, name, "mconsole")
    return os.path.join(os.path.expanduser("~/.uml"), name, "mconsole")


class Client:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = socket_path(name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("")                  # autobind: an abstract address to reply to
        self.sock.settimeout(TIMEOUT)

    def request(self, text: str) -> tuple[int, str]:
        """Send one request; (err, the whole reply text, multi-part replies joined)."""
        self.sock.sendto(proto.build_request(text), self.path)
        parts, err = [], None
        while True:
            data = self.sock.recv(proto.REPLY_SIZE + 16)
            rep = proto.parse_reply(data)
            if rep is None:
                continue
            if err is None:
                err = rep.err
            parts.append(rep.text)
            if not rep.more:
                return err, "".join(parts)

    def pid(self) -> int | None:
        try:
            with open(os.path.join(os.path.dirname(self.path), "pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        self.sock.close()


def show(err: int, text: str) -> None:
    sys.stdout.write(("ERR " if err else "OK ") + text + ("" if text.endswith("\n") else "\n"))
    sys.stdout.flush()


def send(client: Client, line: str) -> int:
    try:
        err, text = client.request(line)
    except socket.timeout:
        sys.stderr.write(f"uml_mconsole: no reply from {client.path}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"Sending command to '{client.path}' : {e.strerror or e}\n")
        return 2
    show(err, text)
    return (err & 0xFF) or 1 if err else 0        # as uml-utilities': exit(err)


def local(client: Client, line: str) -> tuple[Client, int] | None:
    """A client-side command: (the client to use next, status), or None to send line."""
    word, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    if word == "mconsole-version":
        print(f"uml_mconsole client version {proto.VERSION}")
        return client, 0
    if word == "switch" and rest:
        client.close()
        client = Client(rest)
        print(f"Switched to '{rest}'")
        return client, 0
    if word == "int":
        pid = client.pid()
        if pid is None:
            sys.stderr.write(f"uml_mconsole: no pid file beside {client.path}\n")
            return client, 1
        try:
            os.kill(pid, signal.SIGINT)
        except OSError as e:
            sys.stderr.write(f"uml_mconsole: kill {pid}: {e.strerror}\n")
            return client, 1
        return client, 0
    if word == "log" and rest.startswith("-f"):
        fname = rest[2:].strip()
        try:
            with open(fname, errors="replace") as f:
                content = f.read()
        except OSError as e:
            sys.stderr.write(f"uml_mconsole: {fname}: {e.strerror}\n")
            return client, 1
        status = 0
        room = proto.MAX_DATA - 1 - len("log ")
        for i in range(0, len(content), room):
            status |= send(client, "log " + content[i:i + room])
        return client, status
    if word == "help":
        status = send(client, "help")
        sys.stdout.write(LOCAL_HELP)
        return client, status
    return None


def interactive(client: Client) -> int:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    status = 0
    while True:
        try:
            line = input(f"({client.name}) ")
        except EOFError:
            print()
            return status
        line = line.strip()
        if not line:
            continue
        if line == "quit":
            return status
        done = local(client, line)
        if done is not None:
            client, status = done
            continue
        status = send(client, line)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: uml_mconsole UMID|SOCKET [request ...]\n")
        return 0 if argv else 2
    client = Client(argv[0])
    try:
        if len(argv) > 1:
            line = " ".join(argv[1:])
            if line == "quit":
                return 0
            done = local(client, line)
            return done[1] if done is not None else send(client, line)
        return interactive(client)
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
