#!/usr/bin/env python3
"""Walk the runbook's first time against the lab: the commands it shows, in order, typed as a technician would.

Why: a runbook drifts from the playbooks unless someone follows it. This follows the "Lần đầu" section of
docs/RUNBOOK.md from hosts that have only the installer's account `kythuat` (the lab tool makes it, with
the lab key in place of `ssh-copy-id`) to a working commune, and checks each step's sign of success as the
runbook states it. Every command below must appear word for word in that section, so the two cannot drift.

What differs from a technician's laptop, and why:
- the machine's console (step 3) is root over SSH with the lab key; `ssh` gets the lab key and no host-key
  prompt; prompts (vault password, the operator's password, the bot token) are typed on a terminal;
- the checkout is a workspace beside the lab: this project's playbooks and roles, and as
  `inventory/phong_son/` the lab's inventory (its hosts and addresses, which is step 4's edit, and its
  overrides: apt proxy, test source) without the lab's connection as root and its ready-made Telegram
  values; steps 1-2 (clone, wheelhouse) are the scenario's create step;
- a runbook batch of rooms that names no lab host, or only hosts already done, is not run.

Usage: ``runbook_walk.py --lab phonghop-molecule --log FILE`` (as root, after the lab is up). Writes
``walked`` in the workspace when every step passed (the scenario runs the walk once).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx
import pexpect

PROJECT = Path(__file__).resolve().parents[2]
LAB_INVENTORY = PROJECT / "molecule/inventory"
sys.path.insert(0, str(Path(__file__).parent))
from phonghop_lab import STATE_DIR, TECHNICIAN, ssh_options  # noqa: E402
from playbook_run import parse_recap  # noqa: E402

CHAT_ID = "-1002000000001"  # the lab's values, the same as molecule/inventory's zz-lab-telegram.yml
BOT_TOKEN = "200000001:lab-token-never-sent"
BACKUP_PASSWORD = "lab-backup-password-not-for-real-use"  # molecule/inventory's group_vars/coordinator/zz-lab.yml
OPERATOR = "vanphong"

# The runbook's commands, as it prints them (placeholders in angle brackets).
CONSOLE = [
    "apt-get install -y sudo python3",
    "usermod -aG sudo kythuat",
    "echo 'kythuat ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/kythuat && chmod 0440 /etc/sudoers.d/kythuat",
]
SUDO_CHECK = "ssh kythuat@<địa chỉ máy> sudo true"
PING = "ansible -m ansible.builtin.ping all"
VAULT = (
    "ansible-vault encrypt_string --stdin-name vault_monitoring_telegram_bot_token"
    " --output inventory/phong_son/group_vars/monitoring/vault.yml"
)
BACKUP_VAULT = (
    "ansible-vault encrypt_string --stdin-name vault_coordinator_backup_password"
    " --output inventory/phong_son/group_vars/coordinator/vault.yml"
)
SERVER = [
    "ansible-playbook playbooks/coordinator.yml --ask-vault-pass",
    "ansible-playbook playbooks/monitoring.yml --ask-vault-pass",
]
OPERATOR_ADD = (
    "ssh -t kythuat@<địa chỉ máy chủ> \"sudo -u phonghop sh -c 'set -a; . /etc/phonghop/coordinator.env;"
    " exec /opt/phonghop/venv/bin/phonghop-coordinator user add <tên> --role operator'\""
)
ROOM_BATCHES = [
    "ansible-playbook playbooks/rooms.yml --limit 'ubnd,tdp-01,tdp-02'",
    "ansible-playbook playbooks/rooms.yml --limit residential_groups",
    "ansible-playbook playbooks/rooms.yml --limit schools,public_services",
]
CHECK = "ansible-playbook playbooks/check.yml"
LATER = "ansible-playbook playbooks/site.yml --ask-vault-pass"


class WalkFailed(SystemExit):
    pass


def first_time_section() -> str:
    text = (PROJECT / "docs/RUNBOOK.md").read_text()
    start = text.index("## Lần đầu")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def check_runbook_shows_every_command() -> None:
    section = " ".join(first_time_section().split())
    missing = [
        c
        for c in [*CONSOLE, SUDO_CHECK, PING, VAULT, BACKUP_VAULT, *SERVER, OPERATOR_ADD, *ROOM_BATCHES, CHECK, LATER]
        if " ".join(c.split()) not in section
    ]
    if missing:
        raise WalkFailed(
            "the runbook's first time no longer shows these commands; update the walk with it:\n" + "\n".join(missing)
        )


class Walk:
    def __init__(self, lab: str, log: TextIO) -> None:
        self.log = log
        self.lab_dir = STATE_DIR / lab
        self.home = self.lab_dir / "technician"
        self.checkout = self.home / "phonghop"
        self.connection = json.loads((self.lab_dir / "inventory.json").read_text())
        self.hostvars: dict[str, dict[str, Any]] = self.connection["all"]["hosts"]
        self.key = next(iter(self.hostvars.values()))["ansible_ssh_private_key_file"]
        self.vault_password = secrets.token_urlsafe(12)
        self.operator_password = secrets.token_urlsafe(12)
        self.env = self._environment()
        self.done_rooms: set[str] = set()
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        line = f"[walk {time.monotonic() - self.started:6.1f} s] {message}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    # The technician's workspace.

    def set_up_workspace(self) -> None:
        """The checkout with the lab's inventory as inventory/phong_son, connecting as the technician."""
        shutil.rmtree(self.home, ignore_errors=True)
        inventory = self.checkout / "inventory/phong_son"
        inventory.mkdir(parents=True)
        shutil.copy(PROJECT / "ansible.cfg", self.checkout / "ansible.cfg")
        for name in ("playbooks", "roles"):
            (self.checkout / name).symlink_to(PROJECT / name)
        shutil.copy(LAB_INVENTORY / "hosts.yml", inventory / "hosts.yml")
        for source in sorted((LAB_INVENTORY / "group_vars").glob("*/*.yml")):
            if source.name in ("zz-lab-connection.yml", "zz-lab-telegram.yml"):
                continue
            target = inventory / "group_vars" / source.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.name == "alerting.yml":  # the technician edits this one (step 5)
                shutil.copy(source.resolve(), target)
            else:
                target.symlink_to(source.resolve())
        # As the technician, with the lab key and no host-key question: the lab's hosts, and the inventory
        # hosts that name a lab machine another way (the commune's entry in the province's list).
        technician = {
            "ansible_user": TECHNICIAN,
            "ansible_ssh_private_key_file": self.key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        }
        (inventory / "group_vars/all/zz-lab-technician.yml").write_text(json.dumps(technician, indent=2) + "\n")
        as_technician = {name: {**hv, **technician} for name, hv in self.hostvars.items()}
        lab = {"all": {**self.connection["all"], "hosts": as_technician}}  # and the lab's vars (apt proxy)
        (self.home / "connection.json").write_text(json.dumps(lab, indent=2))

    def _environment(self) -> dict[str, str]:
        """The technician's shell: none of Molecule's settings, the checkout's ansible.cfg, the lab inventory."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        env["ANSIBLE_INVENTORY"] = f"{self.checkout}/inventory/phong_son/hosts.yml,{self.home}/connection.json"
        env["ANSIBLE_NOCOLOR"] = "1"
        env["EDITOR"] = "false"  # nothing in the first time should open an editor
        return env

    # Running what the runbook shows.

    def address(self, host: str) -> str:
        return str(self.hostvars[host]["ansible_host"])

    def argv(self, command: str, **fill: str) -> list[str]:
        for placeholder, value in fill.items():
            command = command.replace(f"<{placeholder}>", value)
        argv = shlex.split(command)
        if argv[0] == "ssh":  # the lab key instead of the technician's own
            argv[1:1] = ssh_options(self.key)
        return argv

    def run(
        self, argv: list[str], answers: Sequence[tuple[str, str | None]] = (), timeout: float = 1200, exit_code: int = 0
    ) -> str:
        """Run on a terminal, answering each prompt in turn (None: end of input); fail on another exit code."""
        self.log.write(f"$ {shlex.join(argv)}\n")
        started = time.monotonic()
        output = io.StringIO()
        child = pexpect.spawn(
            argv[0], argv[1:], cwd=str(self.checkout), env=self.env, encoding="utf-8", timeout=120, dimensions=(50, 200)
        )
        child.logfile_read = output
        try:
            for prompt, reply in answers:
                child.expect_exact(prompt)
                if reply is None:
                    child.sendeof()
                else:
                    child.sendline(reply)
            child.expect(pexpect.EOF, timeout=timeout)
        except pexpect.ExceptionPexpect as error:
            child.close(force=True)
            text = output.getvalue().replace("\r\n", "\n")
            self.log.write(text + "\n")
            raise WalkFailed(
                f"{shlex.join(argv)}: {type(error).__name__} waiting for a prompt or the end;"
                f" last output:\n{text[-2000:]}"
            ) from None
        child.close()
        text = output.getvalue().replace("\r\n", "\n")
        self.log.write(f"{text}\n[rc={child.exitstatus} in {time.monotonic() - started:.1f} s]\n")
        self.log.flush()
        if child.exitstatus != exit_code:
            tail = "\n".join(text.splitlines()[-40:])
            raise WalkFailed(f"{shlex.join(argv)} exited {child.exitstatus}:\n{tail}")
        return text

    def playbook(self, command: str, vault: bool = False) -> dict[str, dict[str, int]]:
        """Run a playbook the runbook shows; every host in its recap must have no failure."""
        started = time.monotonic()
        answers = [("Vault password: ", self.vault_password)] if vault else []
        recap = parse_recap(self.run(self.argv(command), answers))
        broken = {h: c for h, c in recap.items() if c["failed"] or c["unreachable"]}
        if not recap or broken:
            raise WalkFailed(f"{command}: recap {recap}")
        changed = sum(c["changed"] for c in recap.values())
        self.say(f"{command}: failed=0 on {', '.join(recap)}; {changed} changes ({time.monotonic() - started:.0f} s)")
        return recap

    def hosts_of(self, pattern: str) -> list[str]:
        text = self.run(["ansible", pattern, "--list-hosts"], timeout=60)
        return [line.strip() for line in text.splitlines() if line.startswith("    ")]

    # The steps.

    def technician_account(self) -> None:
        """Step 3: sudo for kythuat from each machine's console, then sudo without a password over SSH."""
        machines = self.hosts_of("coordinator:monitoring:backup_store:rooms")
        for host in machines:
            console = self.argv(f"ssh root@{self.address(host)}")
            self.run([*console, f"sh -ec {shlex.quote(chr(10).join(CONSOLE))}"])
            self.run(self.argv(SUDO_CHECK, **{"địa chỉ máy": self.address(host)}))
        self.say(f"step 3: `ssh kythuat@… sudo true` asks nothing on {', '.join(machines)}")

    def inventory_answers(self) -> None:
        """Step 4: every host of the inventory answers pong."""
        hosts = self.hosts_of("all")
        text = self.run(self.argv(PING))
        answered = {h for h in hosts if re.search(rf"^{re.escape(h)} \| SUCCESS", text, re.MULTILINE)}
        if answered != set(hosts):
            raise WalkFailed(f"{PING}: pong from {sorted(answered)} of {hosts}")
        self.say(f"step 4: pong from all {len(hosts)} hosts ({', '.join(hosts)})")

    def notification_vault(self) -> None:
        """Step 5: the chat id in alerting.yml, the bot token encrypted into vault.yml."""
        alerting = self.checkout / "inventory/phong_son/group_vars/monitoring/alerting.yml"
        text, count = re.subn(
            r"^monitoring_telegram_chat_id: .*$",
            f"monitoring_telegram_chat_id: {CHAT_ID}",
            alerting.read_text(),
            flags=re.MULTILINE,
        )
        if count != 1:
            raise WalkFailed(f"{alerting}: no `monitoring_telegram_chat_id:` line to edit, as the runbook says")
        alerting.write_text(text)
        self.encrypt(VAULT, BOT_TOKEN)
        self.encrypt(BACKUP_VAULT, BACKUP_PASSWORD)
        self.say("step 5: chat id in alerting.yml; vault.yml files hold the bot token and backup password encrypted")

    def encrypt(self, command: str, secret: str) -> None:
        """One secret typed into `ansible-vault encrypt_string`, its file as the runbook shows it."""
        output = self.run(
            self.argv(command),
            [
                ("New Vault password: ", self.vault_password),
                ("Confirm New Vault password: ", self.vault_password),
                ("Reading plaintext input from stdin", secret),
                ("", None),
            ],
        )
        args = shlex.split(command)
        name, path = args[args.index("--stdin-name") + 1], args[args.index("--output") + 1]
        vault = (self.checkout / path).read_text()
        if "Encryption successful" not in output or not vault.startswith(f"{name}: !vault |") or secret in vault:
            raise WalkFailed(f"{command}: the output or {path} is not what the runbook shows:\n{vault}")

    def commune_server(self) -> None:
        """Step 6: the server's two playbooks, its login page over HTTPS, an operator who can sign in."""
        self.playbook(SERVER[0], vault=True)
        self.playbook(SERVER[1], vault=True)
        server = self.address(self.hosts_of("coordinator")[0])
        with httpx.Client(base_url=f"https://{server}", verify=False, timeout=30) as web:
            login = web.get("/dang-nhap")
            if login.status_code != 200 or "csrf_token" not in login.text:
                raise WalkFailed(f"https://{server}/dang-nhap answered {login.status_code}, not the login page")
            self.run(
                self.argv(OPERATOR_ADD, **{"địa chỉ máy chủ": server, "tên": OPERATOR}),
                [
                    ("Mật khẩu: ", self.operator_password),
                    ("Nhập lại mật khẩu: ", self.operator_password),
                ],
            )
            self.sign_in(web)
        self.say(f"step 6: https://{server}/ serves the login page; operator {OPERATOR} signs in")

    def sign_in(self, web: httpx.Client) -> None:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/dang-nhap").text)
        data = {
            "csrf_token": csrf.group(1) if csrf else "",
            "name": OPERATOR,
            "password": self.operator_password,
            "next": "/",
        }
        answer = web.post("/dang-nhap", data=data)
        if answer.status_code != 303:
            raise WalkFailed(f"signing in as {OPERATOR} answered {answer.status_code}")

    def rooms_in_batches(self) -> None:
        """Step 7: each batch the runbook shows, then every room "Trực tuyến" on the overview."""
        for command in ROOM_BATCHES:
            pattern = shlex.split(command)[-1]
            hosts = self.hosts_of(pattern)
            if not hosts or set(hosts) <= self.done_rooms:
                self.say(f"step 7: {command}: not run (lab hosts in it: {', '.join(hosts) or 'none'}; none new)")
                continue
            self.playbook(command)
            self.done_rooms.update(hosts)
        server = self.address(self.hosts_of("coordinator")[0])
        names = {room: self.room_name(room) for room in sorted(self.done_rooms)}
        with httpx.Client(base_url=f"https://{server}", verify=False, timeout=30) as web:
            self.sign_in(web)
            deadline = time.monotonic() + 60
            while True:
                rows = web.get("/").text.split("<tr")
                online = {r for r, n in names.items() if any(n in row and "Trực tuyến" in row for row in rows)}
                if online == set(names):
                    break
                if time.monotonic() > deadline:
                    raise WalkFailed(f"the overview shows {sorted(online)} online of {sorted(names)} after 60 s")
                time.sleep(2)
        self.say(f"step 7: the overview shows {', '.join(names.values())} Trực tuyến")

    def room_name(self, room: str) -> str:
        return str(self.room_vars(room)["phonghop_room_name"])

    def room_vars(self, room: str) -> dict[str, Any]:
        text = self.run(["ansible-inventory", "--host", room], timeout=60)
        return dict(json.loads(text[text.index("{") :]))

    def check_before_the_meeting(self) -> None:
        """Step 8: check.yml's table says ĐẠT for every room, except the lab room on production device
        settings: it says LỖI for exactly the hardware a container lacks (the runbook's "Thiết bị hỏng"),
        never for a missing library, and check.yml then exits non-zero as it must."""
        started = time.monotonic()
        no_hardware = {
            room: set(hardware)
            for room in sorted(self.done_rooms)
            if (hardware := self.room_vars(room).get("node_agent_selftest_allowed_failures"))
        }
        text = self.run(self.argv(CHECK), exit_code=2 if no_hardware else 0)
        rows = table_rows(text)
        for room in sorted(self.done_rooms):
            result, failing = rows.get(room, ("", set()))
            expected = ("LỖI", no_hardware[room]) if room in no_hardware else ("ĐẠT", set())
            if (result, failing) != expected:
                raise WalkFailed(f"{CHECK}: {room} shows {result or 'no row'} {sorted(failing)}, not {expected}")
        passed = ", ".join(sorted(set(self.done_rooms) - set(no_hardware)))
        lacking = "; ".join(f"{room}: {' '.join(sorted(hardware))}" for room, hardware in no_hardware.items())
        self.say(
            f"step 8: {CHECK}: ĐẠT for {passed}; LỖI for missing hardware only ({lacking or 'none'})"
            f" ({time.monotonic() - started:.0f} s)"
        )

    def later_runs_change_nothing(self) -> None:
        """After the first time: site.yml on the whole commune changes nothing."""
        recap = self.playbook(LATER, vault=True)
        changed = {h: c["changed"] for h, c in recap.items() if c["changed"]}
        if changed:
            raise WalkFailed(f"{LATER} changed something after the first time: {changed}")
        self.say(f"after: {LATER} changed=0 on {', '.join(recap)}")


def table_rows(output: str) -> dict[str, tuple[str, set[str]]]:
    """check.yml's table: room -> (ĐẠT or LỖI, the names of its failing checks)."""
    rows: dict[str, tuple[str, set[str]]] = {}
    room = ""
    for line in output.splitlines():
        row = re.match(r"^\s*(\S+)\s+(ĐẠT|LỖI)\b\s*(?:(\w+):)?", line)
        if row:
            room = row.group(1)
            rows[room] = (row.group(2), {row.group(3)} if row.group(3) else set())
            continue
        more = re.match(r"^\s{20,}(\w+): ", line)
        if room and more:
            rows[room][1].add(more.group(1))
        elif not line.strip() or "PHÒNG" in line:
            continue
        else:
            room = ""
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", required=True)
    parser.add_argument("--log", required=True, type=Path)
    args = parser.parse_args()
    check_runbook_shows_every_command()
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with args.log.open("w") as log:
        walk = Walk(args.lab, log)
        walk.set_up_workspace()
        walk.technician_account()
        walk.inventory_answers()
        walk.notification_vault()
        walk.commune_server()
        walk.rooms_in_batches()
        walk.check_before_the_meeting()
        walk.later_runs_change_nothing()
        (walk.home / "walked").write_text(f"{time.monotonic() - walk.started:.1f}\n")
        walk.say("the first time, walked: a working commune")


if __name__ == "__main__":
    main()
