#!/usr/bin/env python3
"""Test hosts for the Molecule scenarios: Debian 12 booted with systemd, one network namespace each.

Why this exists: the roles must be tested the way a technician uses them (ansible-playbook over SSH
against Debian with systemd), and this machine has no Docker. So a lab is

- one Debian 12 base tree made by debootstrap once per machine (cached under /var/cache/phonghop-lab),
- per host: an overlayfs on that tree, its own network namespace with a veth to a lab bridge on the
  controller side, and ``systemd-nspawn -b`` booting it (sshd with the lab's key for root),
- on the bridge address: the lab's apt proxy (``apt_proxy.py``; lab hosts have no other route out).

Everything a lab creates is written into its state file, and ``down`` removes exactly that: it SIGTERMs
the nspawn processes it started (by PID), unmounts its overlays and deletes its namespaces, veths and
bridge. It never kills anything by name.

Run as root: ``phonghop_lab.py up --lab NAME --subnet 10.213.1 --host may-chu-xa=11 --host tdp-01=21``,
``phonghop_lab.py down --lab NAME``, ``phonghop_lab.py base`` (build or reuse the base tree only).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What every host needs to be managed and what all hosts install anyway (the roles still declare theirs;
# having them in the base only saves download and unpack time per host).
BASE_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "python3",
    "python3-apt",
    "python3-venv",
    "sudo",
    "iproute2",
    "ca-certificates",
    "curl",
    "nftables",
    "systemd-timesyncd",
    "unattended-upgrades",
    "tzdata",
    "locales",
    "gnupg",
]
# Installed with apt-get inside the new tree (debootstrap's own resolver cannot pick virtual packages).
EXTRA_PACKAGES = ["sqlite3", "python3-cryptography"]
TOOL_VERSION = "2"  # bump when the base tree's preparation changes
# A converged host powers off in a few seconds; longer means a stop job waits: its jobs and processes are
# shown then, and a test host still up at POWER_OFF_LIMIT is killed (nothing on it is kept).
SLOW_POWER_OFF = 10.0
POWER_OFF_LIMIT = 30.0
TECHNICIAN = "kythuat"  # the runbook's account on every machine

CACHE_DIR = Path(os.environ.get("PHONGHOP_LAB_CACHE", "/var/cache/phonghop-lab"))
DATA_DIR = Path(os.environ.get("PHONGHOP_LAB_DATA", "/var/lib/phonghop-lab"))
STATE_DIR = Path(os.environ.get("PHONGHOP_LAB_STATE", "/run/phonghop-lab"))


def log(message: str) -> None:
    print(f"[phonghop-lab] {message}", file=sys.stderr, flush=True)


def run(*cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, text=True, **kw)


def quiet(*cmd: str) -> bool:
    """Run a clean-up step; a missing thing is not an error when tearing down."""
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


# --------------------------------------------------------------------------- base tree


def base_key() -> str:
    text = "\n".join([SUITE, MIRROR, TOOL_VERSION, *sorted(BASE_PACKAGES), *sorted(EXTRA_PACKAGES)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_base() -> Path:
    """Return the cached base tree, building it with debootstrap the first time (under a lock)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    base = CACHE_DIR / f"base-{SUITE}-{base_key()}"
    with open(CACHE_DIR / "base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (base / ".phonghop-lab-ready").exists():
            return base
        tmp = base.with_name(base.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        started = time.monotonic()
        log(f"building the Debian {SUITE} base tree with debootstrap into {base}")
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(tmp),
            MIRROR,
            stdout=subprocess.DEVNULL,
        )
        install_extra(tmp)
        prepare_base(tmp)
        (tmp / ".phonghop-lab-ready").write_text(f"built in {time.monotonic() - started:.0f} s\n")
        tmp.rename(base)
        log(f"base tree ready in {time.monotonic() - started:.0f} s")
        return base


def install_extra(root: Path) -> None:
    """apt-get inside the fresh tree, with the controller's DNS for the time of the install."""
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copy("/etc/resolv.conf", resolv)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("chroot", str(root), "apt-get", "update", "-qq", env=env)
    run(
        "chroot",
        str(root),
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        *EXTRA_PACKAGES,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    resolv.unlink()


def prepare_base(root: Path) -> None:
    """Make the tree boot cleanly as a container and fetch packages only through the lab's proxy."""
    (root / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {SUITE} main\n"
        f"deb {MIRROR} {SUITE}-updates main\n"
        f"deb http://deb.debian.org/debian-security {SUITE}-security main\n"
    )
    run("chroot", str(root), "apt-get", "clean")
    # Each host gets its own identity at boot / when it is created.
    (root / "etc/machine-id").write_text("")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/hostname").write_text("lab\n")
    # No console getty, no waiting for a network manager the lab does not use.
    for unit in ("console-getty.service", "getty@tty1.service"):
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
    # Locale for Vietnamese text in tools' output.
    locale_gen = root / "etc/locale.gen"
    locale_gen.write_text("en_US.UTF-8 UTF-8\nvi_VN UTF-8\n")
    run("chroot", str(root), "locale-gen", stdout=subprocess.DEVNULL)


# --------------------------------------------------------------------------- lab state


def state_path(lab: str) -> Path:
    return STATE_DIR / lab / "state.json"


def load_state(lab: str) -> dict[str, Any]:
    path = state_path(lab)
    if path.exists():
        return dict(json.loads(path.read_text()))
    return {"lab": lab, "hosts": {}}


def save_state(state: dict[str, Any]) -> None:
    path = state_path(state["lab"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def short(lab: str) -> str:
    """A short stable tag for interface names (15 characters at most in Linux)."""
    return hashlib.sha1(lab.encode()).hexdigest()[:5]


# --------------------------------------------------------------------------- network


def ensure_bridge(state: dict[str, Any], subnet: str) -> None:
    bridge = f"phl{short(state['lab'])}br"
    if not Path(f"/sys/class/net/{bridge}").exists():
        run("ip", "link", "add", bridge, "type", "bridge")
        state["bridge"] = bridge
        save_state(state)
        run("ip", "addr", "add", f"{subnet}.1/24", "dev", bridge)
        run("ip", "link", "set", bridge, "up")
    state["bridge"] = bridge
    state["subnet"] = subnet
    state["gateway"] = f"{subnet}.1"
    save_state(state)


def ensure_proxy(state: dict[str, Any]) -> None:
    """The lab's apt proxy on the bridge address; its package cache is shared by all labs on the machine."""
    proxy = state.get("proxy")
    if proxy and pid_alive(proxy["pid"]):
        return
    address = state["gateway"]
    logdir = STATE_DIR / state["lab"] / "apt-proxy"
    logdir.mkdir(parents=True, exist_ok=True)
    port_file = logdir / "port"
    port_file.unlink(missing_ok=True)
    with open(logdir / "proxy.log", "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("apt_proxy.py")),
                "--bind",
                address,
                "--cache",
                str(CACHE_DIR / "apt"),
                "--port-file",
                str(port_file),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state["proxy"] = {"pid": proc.pid}
    save_state(state)
    wait_for(port_file.exists, 30, "the apt proxy to listen")
    state["proxy"]["url"] = f"http://{address}:{port_file.read_text().strip()}"
    save_state(state)
    log(f"apt proxy at {state['proxy']['url']} (pid {proc.pid})")


# --------------------------------------------------------------------------- hosts


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def tcp_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def ensure_key(state: dict[str, Any]) -> Path:
    key = STATE_DIR / state["lab"] / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"phonghop-lab-{state['lab']}", "-f", str(key))
    state["ssh_key"] = str(key)
    save_state(state)
    return key


def technician_account(root: Path, key: Path) -> None:
    """The user `kythuat` with the lab key and no sudo: what the Debian installer and `ssh-copy-id` leave.

    The runbook's first time gives it sudo from the machine's console; the lab's walk does that as root.
    """
    run("useradd", "--root", str(root), "--create-home", "--shell", "/bin/bash", TECHNICIAN)
    entry = next(line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith(f"{TECHNICIAN}:"))
    uid, gid = (int(field) for field in entry.split(":")[2:4])
    ssh_dir = root / "home" / TECHNICIAN / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(Path(f"{key}.pub").read_text())
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        os.chown(path, uid, gid)


def start_host(state: dict[str, Any], base: Path, name: str, where: str, key: Path) -> None:
    hosts = state["hosts"]
    if name in hosts and pid_alive(hosts[name]["pid"]):
        return
    # A new name takes an index no other host of the lab has (a removed host's may be free again).
    index = hosts[name]["index"] if name in hosts else max((h["index"] for h in hosts.values()), default=-1) + 1
    tag = short(state["lab"])
    netns = f"phl-{tag}-{name}"
    veth = f"phl{tag}h{index}"
    address = where if "." in where else f"{state['subnet']}.{where}"
    if not address.startswith(state["subnet"] + "."):
        raise SystemExit(f"{name}: address {address} is not in the lab subnet {state['subnet']}.0/24")
    top = DATA_DIR / state["lab"] / name
    merged, upper, work = top / "merged", top / "upper", top / "work"
    host: dict[str, Any] = {"index": index, "netns": netns, "veth": veth, "address": address, "dir": str(top)}
    hosts[name] = host
    save_state(state)

    # Filesystem: a fresh overlay over the shared base tree.
    if top.exists():
        quiet("umount", str(merged))
        shutil.rmtree(top)
    for d in (merged, upper, work):
        d.mkdir(parents=True)
    run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={base},upperdir={upper},workdir={work}", str(merged))
    host["mounted"] = True
    save_state(state)
    (merged / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    (merged / "etc/hostname").write_text(f"{name}\n")
    (merged / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
    (merged / "etc/resolv.conf").unlink(missing_ok=True)
    (merged / "etc/resolv.conf").write_text("# lab host: no DNS; packages come through the apt proxy\n")
    # Ansible's SSH session starts root's user manager. When a host powers off with that session still
    # open, the stop job of user@0.service stays "running" after its processes are gone (seen on the
    # server: only systemd, journald and dbus-daemon were left) until the unit's 120 s stop timeout.
    # Nothing of the lab lives in that manager, so 5 s is plenty.
    drop_in = merged / "etc/systemd/system/user@0.service.d"
    drop_in.mkdir(parents=True, exist_ok=True)
    (drop_in / "phonghop-lab.conf").write_text("[Service]\nTimeoutStopSec=5s\n")
    # A persistent journal: the start of a slow shutdown is read from it after the host is gone (its
    # end is not: journald moves back to /run when the shutdown lets go of /var).
    (merged / "var/log/journal").mkdir(parents=True, exist_ok=True)
    ssh_dir = merged / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    technician_account(merged, key)
    run("ssh-keygen", "-q", "-A", "-f", str(merged))

    # Network: own namespace, veth to the lab bridge, no default route (nothing outside is reachable).
    run("ip", "netns", "add", netns)
    host["netns_created"] = True
    save_state(state)
    run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    host["veth_created"] = True
    save_state(state)
    run("ip", "link", "set", veth, "master", state["bridge"], "up")
    run("ip", "-n", netns, "link", "set", "lo", "up")
    run("ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
    run("ip", "-n", netns, "link", "set", "eth0", "up")

    # Boot.
    Path("/run/systemd/nspawn").mkdir(parents=True, exist_ok=True)
    with open(top / "console.log", "ab") as console_log:
        proc = subprocess.Popen(
            [
                "systemd-nspawn",
                "-b",
                "-D",
                str(merged),
                f"--machine=phl-{tag}-{name}"[:64],
                f"--hostname={name}",
                f"--network-namespace-path=/run/netns/{netns}",
                "--register=no",
                "--keep-unit",
                # Its own network namespace: the host may manage its firewall (nftables) there.
                "--capability=CAP_NET_ADMIN",
                "--console=passive",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=console_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host["pid"] = proc.pid
    save_state(state)
    log(f"booting {name} at {address} (nspawn pid {proc.pid})")


def ssh_options(key: str) -> list[str]:
    """`ssh` with the lab's key and no host-key question (lab hosts get new keys at every boot)."""
    return ["-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]


def ssh_args(state: dict[str, Any], address: str) -> list[str]:
    return ["ssh", *ssh_options(state["ssh_key"]), "-o", "ConnectTimeout=3", f"root@{address}"]


def wait_booted(state: dict[str, Any], name: str, timeout: float) -> None:
    host = state["hosts"][name]
    address = host["address"]

    def ready() -> bool:
        if not pid_alive(host["pid"]):
            raise SystemExit(f"{name}: systemd-nspawn exited; see {host['dir']}/console.log")
        if not tcp_open(address, 22):
            return False
        probe = subprocess.run(
            [*ssh_args(state, address), "systemctl", "is-system-running", "--wait"],
            capture_output=True,
            text=True,
        )
        return probe.stdout.strip() in {"running", "degraded"}

    wait_for(ready, timeout, f"{name} to boot and accept SSH")


def write_inventory(state: dict[str, Any], path: Path) -> None:
    """Connection details (addresses, key, apt proxy) as an Ansible inventory to sit beside the lab one."""
    hosts = {
        name: {
            "ansible_host": host["address"],
            "ansible_user": "root",
            "ansible_ssh_private_key_file": state["ssh_key"],
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        }
        for name, host in state["hosts"].items()
    }
    inventory = {"all": {"hosts": hosts, "vars": {"phonghop_lab_apt_proxy": state["proxy"]["url"]}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(inventory, indent=2) + "\n")


def up(args: argparse.Namespace) -> None:
    started = time.monotonic()
    base = ensure_base()
    state = load_state(args.lab)
    ensure_bridge(state, args.subnet)
    ensure_proxy(state)
    key = ensure_key(state)
    wanted = [spec.split("=", 1) for spec in args.host]
    for name, octet in wanted:
        start_host(state, base, name, octet, key)
    for name, _ in wanted:
        wait_booted(state, name, args.timeout)
    if args.inventory:
        write_inventory(state, Path(args.inventory))
    log(f"lab {args.lab} up with {len(wanted)} host(s) in {time.monotonic() - started:.1f} s")
    print(json.dumps(state, indent=2))


def started_by_us(pid: int, marker: str) -> bool:
    """Guard against a recycled PID: only signal a process whose command line names our own path."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def power_off(host: dict[str, Any]) -> None:
    """Ask the host's systemd to shut down (SIGTERM to nspawn); waiting is left to ``stop_host``."""
    pid = host.get("pid")
    if pid and pid_alive(pid) and started_by_us(pid, host["dir"]):
        os.kill(pid, signal.SIGTERM)


def console_end(host: dict[str, Any]) -> None:
    """The end of the host's console and of its persistent journal (on its overlay until it is unmounted)."""
    console = Path(host["dir"]) / "console.log"
    for line in console.read_text(errors="replace").splitlines()[-15:] if console.exists() else []:
        log(f"  {line}")
    journal = Path(host["dir"]) / "merged" / "var/log/journal"
    if journal.is_dir():
        shown = subprocess.run(
            ["journalctl", f"--directory={journal}", "--no-pager", "-o", "short-monotonic", "-n", "30"],
            capture_output=True,
            text=True,
        )
        log("  its journal's end:")
        for line in shown.stdout.splitlines():
            log(f"  {line}")


def parents() -> dict[int, int]:
    """Every process's parent, read from /proc."""
    found: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, ValueError):
            for line in status.read_text().splitlines():
                if line.startswith("PPid:"):
                    found[int(status.parent.name)] = int(line.split()[1])
    return found


def show_stop_jobs(name: str, nspawn_pid: int) -> None:
    """What a host still shutting down waits for: its queued systemd jobs and the processes left in it."""
    parent_of = parents()
    inside = {nspawn_pid}
    while grown := {pid for pid, parent in parent_of.items() if parent in inside} - inside:
        inside |= grown
    init = min((pid for pid, parent in parent_of.items() if parent == nspawn_pid), default=None)
    if init is None:
        return
    jobs = subprocess.run(
        ["nsenter", f"--target={init}", "--mount", "--pid", "systemctl", "list-jobs", "--no-pager"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    log(f"  {name}'s systemd jobs while it shuts down:")
    for line in (jobs.stdout + jobs.stderr).splitlines():
        log(f"    {line}")
    log(f"  {name}'s processes:")
    for pid in sorted(inside - {nspawn_pid}):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            log(f"    {pid} {args.strip()}")


def stop_host(name: str, host: dict[str, Any], started: float, deadline: float) -> None:
    pid = host.get("pid")
    if pid and pid_alive(pid) and started_by_us(pid, host["dir"]):
        shown = False
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            if not shown and time.monotonic() - started > SLOW_POWER_OFF:
                shown = True
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    show_stop_jobs(name, pid)
            time.sleep(0.2)
        took = time.monotonic() - started
        if pid_alive(pid):
            log(f"{name} (nspawn pid {pid}) did not power off in time; sending SIGKILL. Its console's end:")
            console_end(host)
            os.kill(pid, signal.SIGKILL)
        elif took > SLOW_POWER_OFF:
            log(f"{name} powered off in {took:.1f} s, slowly. Its console's end:")
            console_end(host)
        else:
            log(f"{name} powered off in {took:.1f} s")
    top = Path(host["dir"])
    merged = top / "merged"
    if host.get("mounted"):
        for _ in range(50):
            if quiet("umount", str(merged)) or not os.path.ismount(merged):
                break
            time.sleep(0.2)
    if host.get("veth_created"):
        quiet("ip", "link", "del", host["veth"])
    if host.get("netns_created"):
        quiet("ip", "netns", "del", host["netns"])
    if top.exists() and not os.path.ismount(merged):
        shutil.rmtree(top, ignore_errors=True)


def down(args: argparse.Namespace) -> None:
    state = load_state(args.lab)
    # All hosts shut down at once: one host's slow stop job must not add to the others'.
    for name, host in state["hosts"].items():
        log(f"powering off {name}")
        power_off(host)
    started = time.monotonic()
    deadline = started + POWER_OFF_LIMIT
    for name, host in list(state["hosts"].items()):
        stop_host(name, host, started, deadline)
        del state["hosts"][name]
        save_state(state)
    proxy = state.get("proxy")
    if proxy and pid_alive(proxy["pid"]) and started_by_us(proxy["pid"], "apt_proxy.py"):
        os.kill(proxy["pid"], signal.SIGTERM)
    if state.get("bridge"):
        quiet("ip", "link", "del", state["bridge"])
    shutil.rmtree(STATE_DIR / args.lab, ignore_errors=True)
    shutil.rmtree(DATA_DIR / args.lab, ignore_errors=True)
    log(f"lab {args.lab} removed")


def remove(args: argparse.Namespace) -> None:
    """One host powered off for good: its overlay (everything it wrote) is deleted with its network."""
    state = load_state(args.lab)
    for name in args.host:
        if name not in state["hosts"]:
            raise SystemExit(f"lab {args.lab} has no host {name}")
        log(f"powering off {name} for good")
        host = state["hosts"][name]
        power_off(host)
        started = time.monotonic()
        stop_host(name, host, started, started + POWER_OFF_LIMIT)
        del state["hosts"][name]
        save_state(state)
    if args.inventory:
        write_inventory(state, Path(args.inventory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("base", help="build (once) and print the base tree's path")
    p_up = sub.add_parser("up", help="create and boot lab hosts")
    p_up.add_argument("--lab", required=True)
    p_up.add_argument("--subnet", required=True, help="first three octets, e.g. 10.213.1")
    p_up.add_argument("--host", action="append", default=[], help="NAME=LAST_OCTET or NAME=ADDRESS, repeatable")
    p_up.add_argument("--inventory", help="write the connection inventory (JSON/YAML) here")
    p_up.add_argument("--timeout", type=float, default=180)
    p_down = sub.add_parser("down", help="stop and remove everything the lab created")
    p_down.add_argument("--lab", required=True)
    p_remove = sub.add_parser("remove", help="power hosts off and delete them (a dead machine)")
    p_remove.add_argument("--lab", required=True)
    p_remove.add_argument("--host", action="append", default=[], help="NAME, repeatable")
    p_remove.add_argument("--inventory", help="rewrite the connection inventory (JSON/YAML) here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("phonghop-lab must run as root (mounts, namespaces, systemd-nspawn)")
    if args.command == "base":
        print(ensure_base())
    elif args.command == "up":
        up(args)
    elif args.command == "remove":
        remove(args)
    else:
        down(args)


if __name__ == "__main__":
    main()
