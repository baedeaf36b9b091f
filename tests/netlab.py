"""A site behind a network link of its own (a room, or a whole commune): a network namespace joined
to this machine by a veth pair.

The link is cut for real (the host's end set down: no carrier on either side), shaped with ``tbf``
(a rate) and made lossy with nftables' ``numgen random`` (a share of packets dropped, both ways);
this kernel has no netem. A process runs behind the link with :meth:`Link.prefix`. A port behind the
link can also be reached from this machine's loopback through a console that is not the link
(:meth:`Link.expose`), the way a technician reads a site over another path: a cut does not blind
the test. Needs root, iproute2 and nftables.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import subprocess
import threading
from dataclasses import dataclass, field


def _run(*command: str, check: bool = True) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")


@dataclass(eq=False)
class Link:
    index: int  # 1..250: names and addresses of this link
    consoles: list[Console] = field(default_factory=list, repr=False)

    @property
    def namespace(self) -> str:
        return f"phonghop-site-{self.index}"

    @property
    def host_device(self) -> str:
        return f"phs{self.index}h"

    @property
    def site_device(self) -> str:
        return f"phs{self.index}s"

    @property
    def host_address(self) -> str:
        """This machine's end: what the site dials."""
        return f"10.231.{self.index}.1"

    @property
    def site_address(self) -> str:
        return f"10.231.{self.index}.2"

    @property
    def prefix(self) -> list[str]:
        """Put in front of a command to run it behind the link."""
        return ["ip", "netns", "exec", self.namespace]

    def create(self) -> Link:
        self.destroy()  # what a killed run may have left
        _run("ip", "netns", "add", self.namespace)
        _run("ip", "link", "add", self.host_device, "type", "veth", "peer", "name", self.site_device)
        _run("ip", "link", "set", self.site_device, "netns", self.namespace)
        _run("ip", "address", "add", f"{self.host_address}/30", "dev", self.host_device)
        _run("ip", "link", "set", self.host_device, "up")
        _run("ip", "-n", self.namespace, "address", "add", f"{self.site_address}/30", "dev", self.site_device)
        _run("ip", "-n", self.namespace, "link", "set", self.site_device, "up")
        _run("ip", "-n", self.namespace, "link", "set", "lo", "up")
        return self

    def expose(self, port: int) -> None:
        """127.0.0.1:``port`` here reaches 127.0.0.1:``port`` behind the link, cut or not."""
        self.consoles.append(Console(self.namespace, port).start())

    def destroy(self) -> None:
        for console in self.consoles:
            console.stop()
        self.consoles.clear()
        _run("ip", "netns", "delete", self.namespace, check=False)
        _run("ip", "link", "delete", self.host_device, check=False)

    def cut(self) -> None:
        _run("ip", "link", "set", self.host_device, "down")

    def restore(self) -> None:
        _run("ip", "link", "set", self.host_device, "up")

    def degrade(self, rate: str, loss_percent: int) -> None:
        """At most ``rate`` each way (tbf) and ``loss_percent`` of the packets dropped each way."""
        for device, prefix in ((self.host_device, []), (self.site_device, self.prefix)):
            _run(*prefix, "tc", "qdisc", "replace", "dev", device, "root", "tbf", "rate", rate,
                 "burst", "32kbit", "latency", "400ms")  # fmt: skip
        rule = f"numgen random mod 100 < {loss_percent} drop"
        ruleset = (
            "table inet phonghop_loss {\n"
            f"  chain inbound {{ type filter hook input priority 0; policy accept; {rule}; }}\n"
            f"  chain outbound {{ type filter hook output priority 0; policy accept; {rule}; }}\n"
            "}\n"
        )
        result = subprocess.run([*self.prefix, "nft", "-f", "-"], input=ruleset, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"nft refused the loss rules: {result.stderr.strip()}")

    def heal(self) -> None:
        """Back to a clean link."""
        _run(*self.prefix, "nft", "delete", "table", "inet", "phonghop_loss", check=False)
        _run("tc", "qdisc", "delete", "dev", self.host_device, "root", check=False)
        _run(*self.prefix, "tc", "qdisc", "delete", "dev", self.site_device, "root", check=False)


_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _connect_inside(namespace: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` opened from inside ``namespace``: a socket keeps the
    namespace it was made in, and setns moves only the calling thread, here a thread of its own."""
    made: list[socket.socket | BaseException] = []

    def inside() -> None:
        try:
            with open(f"/run/netns/{namespace}") as ns:
                if _libc.setns(ns.fileno(), _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {namespace}")
            made.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except BaseException as exc:  # handed to the caller's thread
            made.append(exc)

    thread = threading.Thread(target=inside, daemon=True)
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


class Console:
    """Forwards TCP from this machine's 127.0.0.1:port to the same port inside a namespace."""

    def __init__(self, namespace: str, port: int) -> None:
        self.namespace = namespace
        self.port = port
        self._listener = socket.create_server(("127.0.0.1", port))
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> Console:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                outside, _ = self._listener.accept()
            except OSError:
                return  # stopped
            try:
                inside = _connect_inside(self.namespace, self.port)
            except OSError:
                outside.close()  # nothing listens behind the link (yet): the client sees a closed connection
                continue
            inside.settimeout(None)
            with self._lock:
                self._open.update((outside, inside))
            threading.Thread(target=self._relay, args=(outside, inside), daemon=True).start()

    def _relay(self, outside: socket.socket, inside: socket.socket) -> None:
        back = threading.Thread(target=_pump, args=(inside, outside), daemon=True)
        back.start()
        _pump(outside, inside)
        back.join()
        with self._lock:
            self._open.difference_update((outside, inside))
        outside.close()
        inside.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._lock:
            for sock in self._open:
                sock.close()
            self._open.clear()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
