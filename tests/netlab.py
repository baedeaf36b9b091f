"""A room behind a network link of its own: a network namespace joined to this machine by a veth pair.

The link is cut for real (the host's end set down: no carrier on either side), shaped with ``tbf``
(a rate) and made lossy with nftables' ``numgen random`` (a share of packets dropped, both ways);
this kernel has no netem. A process runs behind the link with :meth:`RoomLink.prefix`. Needs root,
iproute2 and nftables.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass


def _run(*command: str, check: bool = True) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")


@dataclass(frozen=True)
class RoomLink:
    index: int  # 1..250: names and addresses of this link

    @property
    def namespace(self) -> str:
        return f"phonghop-room-{self.index}"

    @property
    def host_device(self) -> str:
        return f"phr{self.index}h"

    @property
    def room_device(self) -> str:
        return f"phr{self.index}r"

    @property
    def host_address(self) -> str:
        """This machine's end: what the room dials."""
        return f"10.231.{self.index}.1"

    @property
    def room_address(self) -> str:
        return f"10.231.{self.index}.2"

    @property
    def prefix(self) -> list[str]:
        """Put in front of a command to run it behind the link."""
        return ["ip", "netns", "exec", self.namespace]

    def create(self) -> RoomLink:
        self.destroy()  # what a killed run may have left
        _run("ip", "netns", "add", self.namespace)
        _run("ip", "link", "add", self.host_device, "type", "veth", "peer", "name", self.room_device)
        _run("ip", "link", "set", self.room_device, "netns", self.namespace)
        _run("ip", "address", "add", f"{self.host_address}/30", "dev", self.host_device)
        _run("ip", "link", "set", self.host_device, "up")
        _run("ip", "-n", self.namespace, "address", "add", f"{self.room_address}/30", "dev", self.room_device)
        _run("ip", "-n", self.namespace, "link", "set", self.room_device, "up")
        _run("ip", "-n", self.namespace, "link", "set", "lo", "up")
        return self

    def destroy(self) -> None:
        _run("ip", "netns", "delete", self.namespace, check=False)
        _run("ip", "link", "delete", self.host_device, check=False)

    def cut(self) -> None:
        _run("ip", "link", "set", self.host_device, "down")

    def restore(self) -> None:
        _run("ip", "link", "set", self.host_device, "up")

    def degrade(self, rate: str, loss_percent: int) -> None:
        """At most ``rate`` each way (tbf) and ``loss_percent`` of the packets dropped each way."""
        for device, prefix in ((self.host_device, []), (self.room_device, self.prefix)):
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
        _run(*self.prefix, "tc", "qdisc", "delete", "dev", self.room_device, "root", check=False)
