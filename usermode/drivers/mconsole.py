"""The mconsole command table (UML's mconsole_kern.c): every handler answers through
reply(req, text, err, more), which the transport turns into datagrams (mconsole_proto).

The transport (usermode/host/mconsole_sock.py) gives us datagrams and client addresses;
Machine wires it to the kernel loop with attach(). `stop` freezes the whole instance
(Kernel.freeze): guest tasks stay held, and only mconsole requests are served until `go`.
"""
from __future__ import annotations

import errno
import signal
from typing import Callable

from usermode.drivers import mconsole_proto as proto
from usermode.drivers.hotplug import HotplugError, HotplugRegistry
from usermode.host import ptrace as pt
from usermode.kernel import task as ts
from usermode.kernel.errors import Errno

HELP = """Commands: 
    version - Get kernel version 
    help - Print this message 
    halt - Halt UML 
    reboot - Reboot UML 
    config <dev>=<config> - Add a new device to UML;  
	same syntax as command line 
    config <dev> - Query the configuration of a device 
    remove <dev> - Remove a device from UML 
    sysrq <letter> - Performs the SysRq action controlled by the letter 
    cad - invoke the Ctrl-Alt-Del handler 
    stop - pause the UML; it will do nothing until it receives a 'go' 
    go - continue the UML after a 'stop' 
    log <string> - make UML enter <string> into the kernel log
    proc <file> - returns the contents of the UML's /proc/<file>
    stack <pid> - returns the stack of the specified pid
"""

SYSRQ_HELP = ("sysrq: HELP : reboot(b) terminate-all-tasks(e) help(h) kill-all-tasks(i) "
              "show-memory-usage(m) poweroff(o) sync(s) show-task-states(t) unmount(u)")

STATE_LETTER = {ts.RUNNING: "R", ts.STOPPED: "R", ts.PARKED: "S", ts.HELD: "T",
                ts.NEW: "R", ts.DEAD: "X"}


class MConsole:
    """One instance's mconsole: commands in, replies out through `send(addr, bytes)`."""

    def __init__(self, kernel, send: Callable[[object, bytes], bool],
                 notify: Callable[[int, bytes], bool] | None = None) -> None:
        self.kernel = kernel
        self.send = send
        self.notify = notify
        if notify is not None:
            self.add_proc_mconsole()
        self.requests = 0
        self.commands: dict[str, Callable[[proto.Request, str], None]] = {
            "version": self.do_version, "help": self.do_help, "halt": self.do_halt,
            "reboot": self.do_reboot, "config": self.do_config, "remove": self.do_remove,
            "sysrq": self.do_sysrq, "cad": self.do_cad, "stop": self.do_stop,
            "go": self.do_go, "log": self.do_log, "proc": self.do_proc,
            "stack": self.do_stack,
        }

    def add_proc_mconsole(self) -> None:
        """/proc/mconsole (write-only, as UML makes it with a notify socket): what a guest
        writes there reaches the listener as a "user" notification."""
        from usermode.fs import procfs

        def refuse(t) -> bytes:
            raise Errno(errno.EINVAL)

        def write(t, data: bytes) -> None:
            self.notify(proto.NOTIFY_USER, bytes(data))
        procfs.add_root_file(self.kernel, "mconsole", refuse, write, 0o200)

    @property
    def hotplug(self) -> HotplugRegistry:
        """The booted kernel's device registry (an empty one before the devices exist)."""
        reg = getattr(self.kernel, "hotplug", None)
        return reg if reg is not None else HotplugRegistry()

    # ---- the transport side
    def datagram(self, data: bytes, origin) -> None:
        """Serve one datagram from a client; bad ones get an error reply."""
        self.requests += 1
        req, error = proto.parse_request(data)
        if req is None:
            self.reply(proto.Request("", origin=origin), error, err=1)
            return
        req.origin = origin
        word, _, rest = req.text.partition(" ")
        handler = self.commands.get(word.lower())
        if handler is None:
            self.reply(req, "Unknown command", err=1)
            return
        try:
            handler(req, rest.strip())
        except Errno as e:
            self.reply(req, f"error {e.errno}", err=1)

    def reply(self, req: proto.Request, text: str, err: int = 0, more: bool = False) -> None:
        """Answer req: text split in MAX_DATA - 1 byte parts, more=1 on all but the last."""
        for packet in proto.build_replies(text, err, more):
            if not self.send(req.origin, packet):
                return

    # ---- commands
    def do_version(self, req, arg: str) -> None:
        k = self.kernel
        host = getattr(k, "hostname", b"usermode")
        host = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
        self.reply(req, f"Linux {host} 6.1.0-usermode #1 x86_64")

    def do_help(self, req, arg: str) -> None:
        self.reply(req, HELP)

    def do_halt(self, req, arg: str) -> None:
        self.reply(req, "")
        self.kernel.printk("reboot: System halted")
        self.kernel.thaw()
        self.kernel.halt(0, "halt")

    def do_reboot(self, req, arg: str) -> None:
        self.reply(req, "")
        self.kernel.printk("reboot: Restarting system")
        self.kernel.thaw()
        self.kernel.halt(0, "reboot")

    def do_cad(self, req, arg: str) -> None:
        """Ctrl-Alt-Del as Linux runs it: restart when C-A-D is enabled, else SIGINT to
        init (busybox init then runs its ::ctrlaltdel: action)."""
        self.reply(req, "")
        k = self.kernel
        if k.cad_enabled:
            k.printk("reboot: Restarting system")
            k.thaw()
            k.halt(0, "reboot")
        elif k.init is not None:
            k.send_signal(k.init, signal.SIGINT)

    def do_stop(self, req, arg: str) -> None:
        if self.kernel.frozen:
            self.reply(req, "Already stopped", err=1)
            return
        self.kernel.freeze()
        self.reply(req, "stopped")

    def do_go(self, req, arg: str) -> None:
        if not self.kernel.frozen:
            self.reply(req, "Not stopped", err=1)
            return
        self.kernel.thaw()
        self.reply(req, "")

    def do_log(self, req, arg: str) -> None:
        self.kernel.printk(arg)
        self.reply(req, "")

    def do_proc(self, req, arg: str) -> None:
        name = arg.split()[0] if arg else ""
        if not name or ".." in name.split("/"):
            self.reply(req, "Failed to open file", err=1)
            return
        try:
            text = self.read_proc(name.lstrip("/"))
        except Errno:
            self.reply(req, "Failed to open file", err=1)
            return
        self.reply(req, text.decode(errors="replace"))

    def read_proc(self, name: str) -> bytes:
        """The contents of the guest's /proc/NAME, read through the VFS as root."""
        from usermode.fs.file import O_RDONLY
        from usermode.machine import BootContext
        from usermode.kernel.creds import Creds
        k = self.kernel
        ctx = BootContext(k, k.vfs.new_context(), Creds())
        p = k.vfs.lookup_kernel("/proc/" + name)
        f = k.vfs.open_path(ctx, p, O_RDONLY)
        out, off = [], 0
        while off < 1 << 20:
            data = f.pread(ctx, 65536, off)
            if not data:
                break
            out.append(data)
            off += len(data)
        release = getattr(f, "release", None)
        if release is not None:
            try:
                release()
            except TypeError:
                pass
        return b"".join(out)

    def do_config(self, req, arg: str) -> None:
        """config DEV=CONF adds/changes a device, config DEV queries it (UML's replies:
        "" on success, the driver's error text with err=1 on failure)."""
        name, eq, conf = arg.partition("=")
        name = name.strip()
        driver = self.hotplug.find(name) if name else None
        if driver is None:
            self.reply(req, "Bad configuration option", err=1)
            return
        try:
            if eq:
                driver.config(name, conf.strip())
                self.reply(req, "")
            else:
                self.reply(req, driver.query(name))
        except HotplugError as e:
            self.reply(req, str(e), err=e.err)

    def do_remove(self, req, arg: str) -> None:
        name = arg.strip()
        driver = self.hotplug.find(name) if name else None
        if driver is None:
            self.reply(req, "Bad remove option", err=1)
            return
        try:
            driver.remove(name)
        except HotplugError as e:
            self.reply(req, str(e), err=e.err)
            return
        self.reply(req, "")

    def do_sysrq(self, req, arg: str) -> None:
        letter = arg[:1]
        if not letter:
            self.reply(req, "Need a SysRq letter", err=1)     # UML ignores it silently
            return
        k = self.kernel
        lines: list[str] = []
        if letter == "b":
            self.reply(req, "")                 # b reboots without a chance to reply
            k.printk("sysrq: Resetting")
            k.thaw()
            k.halt(0, "reboot")
            return
        if letter == "o":
            lines.append("sysrq: Power Off")
            k.thaw()
            k.halt(0, "poweroff")
        elif letter == "m":
            lines.append("sysrq: Show Memory")
            lines += self.read_proc("meminfo").decode().splitlines()
        elif letter == "t":
            lines.append("sysrq: Show State")
            lines += self.task_lines()
        elif letter == "s":
            lines += ["sysrq: Emergency Sync", "Emergency Sync complete"]
        elif letter == "u":
            lines += ["sysrq: Emergency Remount R/O", "Emergency Remount complete"]
        elif letter in "ei":
            sig = signal.SIGTERM if letter == "e" else signal.SIGKILL
            lines.append("sysrq: Terminate All Tasks" if letter == "e" else
                         "sysrq: Kill All Tasks")
            for p in list(k.procs.values()):
                if p is not k.init and not p.zombie:
                    k.send_signal(p, sig)
        else:
            lines.append(SYSRQ_HELP)
        for line in lines:
            k.printk(line)
        self.reply(req, "\n".join(lines) + "\n")

    def task_lines(self) -> list[str]:
        out = []
        for p in sorted(self.kernel.procs.values(), key=lambda p: p.pid):
            ppid = p.parent.pid if p.parent is not None else 0
            for t in p.threads:
                st = "Z" if p.zombie else ("T" if p.stopped else STATE_LETTER.get(t.state, "?"))
                comm = (t.comm or p.comm).decode(errors="replace")
                out.append(f"task:{comm:<15} state:{st} pid:{t.tid:<5} ppid:{ppid:<5} "
                           f"tgid:{p.pid}")
        return out

    def do_stack(self, req, arg: str) -> None:
        word = arg.split()[0] if arg else ""
        if not word.isdigit():
            self.reply(req, "Please specify a pid", err=1)
            return
        k = self.kernel
        t = k.threads.get(int(word))
        if t is None or int(word) == 0 or t.state == ts.DEAD:
            self.reply(req, "Couldn't find that pid", err=1)
            return
        comm = (t.comm or t.process.comm).decode(errors="replace")
        lines = [f"task:{comm} pid:{t.tid} state:{STATE_LETTER.get(t.state, '?')}"]
        if t.state in (ts.STOPPED, ts.PARKED, ts.HELD):
            try:
                if not t.regs.dirty:
                    t.regs.load()
                r = t.regs.r
                if t.in_syscall_nr >= 0 and t.state == ts.PARKED:
                    lines.append(f"in syscall {k.table.name(t.in_syscall_nr)}")
                names = pt.REG_NAMES
                for i in range(0, 21, 3):
                    lines.append(" ".join(f"{names[j].upper()}: {r[j]:016x}"
                                          for j in range(i, min(i + 3, 21))))
            except OSError:
                lines.append("registers unavailable")
        else:
            lines.append("running in user mode (registers are shown while the instance "
                         "is stopped)")
        self.reply(req, "\n".join(lines) + "\n")
