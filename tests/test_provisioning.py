"""Provisioning: ansible-lint, syntax checks, inventory validation and the Molecule scenarios.

The scenarios boot real Debian 12 hosts with systemd (molecule/lab/) and run the real playbooks over SSH,
so they need root, debootstrap and systemd-nspawn (``./dev test`` installs them). Each scenario's output
goes to ``artifacts/provisioning/<scenario>.log`` with per-step timings in ``<scenario>.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "artifacts" / "provisioning"
PLAYBOOKS = sorted(p.name for p in (ROOT / "playbooks").glob("*.yml"))

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (mounts, namespaces, nspawn)")
# The scenarios converge the whole commune on booted test hosts (most of a CI run's time); a developer
# who is not touching provisioning may leave them out with PHONGHOP_LAB_SCENARIOS=0.
lab_scenario = pytest.mark.skipif(
    os.environ.get("PHONGHOP_LAB_SCENARIOS") == "0",
    reason="PHONGHOP_LAB_SCENARIOS=0: Molecule scenarios left out",
)
LAB_TOOL = ROOT / "molecule" / "lab" / "phonghop_lab.py"
LAB_NAME = "phonghop-molecule"


def tool_env() -> dict[str, str]:
    """Ansible and Molecule from this virtualenv, no colours (output is parsed and kept in logs)."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
        "PYTHONUNBUFFERED": "1",
    }


def run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=timeout, **kw)


def test_ansible_lint_production_profile() -> None:
    result = run([str(VENV_BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor"], 900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str) -> None:
    result = run(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "inventory/phong_son/hosts.yml",
         f"playbooks/{playbook}"],
        120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize(
    ("inventory", "groups"),
    [("phong_son", "*"), ("thanh_hoa", "province"), ("thanh_hoa", "communes")],
)
def test_lab_inventory_links_every_group_vars_file(inventory: str, groups: str) -> None:
    """The lab reuses the real group_vars through symlinks (the commune's, and the province's for its node
    and its communes); a new file there must be linked too."""
    real = ROOT / "inventory" / inventory / "group_vars"
    lab = ROOT / "molecule" / "inventory" / "group_vars"
    missing = [
        str(f.relative_to(real))
        for f in real.glob(f"{groups}/*.yml")
        if not (lab / f.relative_to(real)).is_symlink() or (lab / f.relative_to(real)).resolve() != f.resolve()
    ]
    assert not missing, f"link these into molecule/inventory/group_vars (same name): {missing}"


# --------------------------------------------------------------------------- wrong inventory values


def broken_inventory(tmp_path: Path, mutate: Any) -> Path:
    """A copy of the real inventory whose hosts cannot be reached (127.0.0.1 port 1): only checks that
    run before any connection can produce the expected message."""
    inventory = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory" / "phong_son", inventory)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"].setdefault("vars", {}).update({"ansible_host": "127.0.0.1", "ansible_port": 1})
    mutate(hosts, inventory)
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts, allow_unicode=True))
    return inventory


def add_unknown_group(hosts: dict[str, Any], _: Path) -> None:
    rooms = hosts["all"]["children"]["rooms"]["children"]
    rooms["truong_hoc"] = {"hosts": {"th-moi": {"phonghop_room_name": "Trường mới"}}}


def invalid_room_id(hosts: dict[str, Any], _: Path) -> None:
    residential = hosts["all"]["children"]["rooms"]["children"]["residential_groups"]["hosts"]
    residential["TDP_01"] = residential.pop("tdp-01")


def missing_coordinator_url(_: dict[str, Any], inventory: Path) -> None:
    for path in (inventory / "group_vars").rglob("*.yml"):
        text = path.read_text()
        if re.search(r"^phonghop_coordinator_url:", text, flags=re.M):
            path.write_text(re.sub(r"^phonghop_coordinator_url:.*$", "phonghop_coordinator_url: ''", text, flags=re.M))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (add_unknown_group, ["truong_hoc"]),
        (invalid_room_id, ["TDP_01", "room id"]),
        (missing_coordinator_url, ["phonghop_coordinator_url"]),
    ],
    ids=["unknown-group", "invalid-room-id", "missing-coordinator-url"],
)
def test_wrong_inventory_fails_early_naming_the_variable(tmp_path: Path, mutate: Any, expected: list[str]) -> None:
    _fails_early(broken_inventory(tmp_path, mutate) / "hosts.yml", "playbooks/site.yml", expected)


def _fails_early(inventory: Path, playbook: str, expected: list[str]) -> None:
    """The playbook stops on the inventory, naming ``expected``, before it reaches any host."""
    result = run([str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), playbook], 300)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for text in expected:
        assert text in output, f"{text!r} not in the failure:\n{output[-3000:]}"
    assert "UNREACHABLE" not in output, (
        f"the run tried to reach hosts before rejecting the inventory:\n{output[-3000:]}"
    )


def broken_province_inventory(tmp_path: Path, mutate: Any) -> Path:
    """A copy of the province's inventory (beside a copy of Phong Sơn's, which it names) whose hosts
    cannot be reached: only checks that run before any connection can produce the expected message."""
    for name in ("thanh_hoa", "phong_son"):
        shutil.copytree(ROOT / "inventory" / name, tmp_path / name)
    inventory = tmp_path / "thanh_hoa"
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"].setdefault("vars", {}).update({"ansible_port": 1})
    hosts["all"]["children"]["province"]["hosts"]["may-chu-tinh"] = {"ansible_host": "127.0.0.1"}
    mutate(hosts["all"]["children"]["communes"]["hosts"])
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts, allow_unicode=True))
    return inventory


def invalid_commune_id(communes: dict[str, Any]) -> None:
    communes["Phong_Son"] = communes.pop("phong-son")


def missing_commune_inventory(communes: dict[str, Any]) -> None:
    communes["cam-tu"] = {"phonghop_commune_name": "Xã Cẩm Tú", "phonghop_commune_inventory": "../cam_tu"}


def missing_commune_name(communes: dict[str, Any]) -> None:
    del communes["phong-son"]["phonghop_commune_name"]


def commune_id_unlike_its_monitoring_label(communes: dict[str, Any]) -> None:
    communes["cam-thuy"] = communes.pop("phong-son")  # Phong Sơn's monitoring labels it phong-son


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (invalid_commune_id, ["Phong_Son", "mã xã"]),
        (missing_commune_inventory, ["cam-tu", "cam_tu/hosts.yml", "phonghop_commune_inventory"]),
        (missing_commune_name, ["phong-son", "phonghop_commune_name"]),
        (commune_id_unlike_its_monitoring_label, ["cam-thuy", "commune='phong-son'", "monitoring_commune: cam-thuy"]),
    ],
    ids=["invalid-commune-id", "missing-commune-inventory", "missing-commune-name", "commune-id-not-its-label"],
)
def test_wrong_province_inventory_fails_early(tmp_path: Path, mutate: Any, expected: list[str]) -> None:
    _fails_early(broken_province_inventory(tmp_path, mutate), "playbooks/province.yml", expected)


# --------------------------------------------------------------------------- Molecule scenarios

# "default ➜ converge: Executing" on a terminal, "[default > converge] Executing" in a pipe
STEP = re.compile(r"(?:\w+\s+➜\s+(?P<step>\w+):|\[\w+ > (?P<step2>\w+)\])\s+(?P<what>Executing|Executed)")


def molecule_test(scenario: str, *options: str) -> dict[str, float]:
    """``molecule test -s SCENARIO``, streamed to a log with the duration of each step."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"{scenario}.log"
    timings: dict[str, float] = {}
    started: dict[str, float] = {}
    begin = time.monotonic()
    with log_path.open("w", buffering=1) as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "molecule"), "test", "-s", scenario, *options],
            cwd=ROOT,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            match = STEP.search(re.sub(r"\x1b\[[0-9;]*m", "", line))
            if match:
                step = match["step"] or match["step2"]
                if match["what"] == "Executing":
                    started[step] = time.monotonic()
                elif step in started:
                    # destroy runs twice: keep the first (cleanup) and the last separately
                    key = step if step not in timings else f"{step}_final"
                    timings[key] = round(time.monotonic() - started.pop(step), 1)
        rc = proc.wait(timeout=60)
    timings["total"] = round(time.monotonic() - begin, 1)
    (ARTIFACTS / f"{scenario}.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"molecule {scenario} step durations (s): {timings}")
    if rc != 0:
        tail = log_path.read_text().splitlines()[-150:]
        pytest.fail(f"molecule test -s {scenario} failed (rc {rc}); full log {log_path}\n" + "\n".join(tail))
    return timings


@pytest.fixture(scope="module")
def lab() -> Any:
    """One lab for the three scenarios: `default` converges it and leaves it up, `new_room` adds a room to
    it, `rebuild` replaces its server and destroys it. Torn down here too, whatever failed; Molecule's own
    state is reset with it, or a run after a failed one would take the removed hosts for created ones."""
    subprocess.run([sys.executable, str(LAB_TOOL), "down", "--lab", LAB_NAME], check=True, timeout=300)
    run([str(VENV_BIN / "molecule"), "reset", "--all"], 120)
    yield LAB_NAME
    subprocess.run([sys.executable, str(LAB_TOOL), "down", "--lab", LAB_NAME], check=True, timeout=300)


@needs_root
@lab_scenario
def test_molecule_default(lab: str) -> None:
    """Coordinator + monitoring + 2 rooms and the province node: converge site.yml then province.yml,
    idempotence on every host, verify (services, rooms up, Prometheus targets, the commune online at the
    province, province.yml --check clean, watchdog restart). The hosts stay up for new_room."""
    timings = molecule_test("default", "--destroy=never")
    assert {"converge", "idempotence", "verify"} <= timings.keys()


@needs_root
@lab_scenario
def test_molecule_new_room(lab: str) -> None:
    """A third room joins the converged commune with rooms.yml --limit: up within 60 s, no other host
    changed. Run alone, its prepare step converges the commune first."""
    timings = molecule_test("new_room", "--destroy=never")
    assert {"prepare", "side_effect", "verify"} <= timings.keys()
    report = json.loads((ARTIFACTS / "new_room-rooms.json").read_text())
    print(f"new room provisioned from an empty host in {report['seconds']} s")


@needs_root
@lab_scenario
def test_molecule_rebuild(lab: str) -> None:
    """The server dies after a meeting and a backup to the backup host; an empty host at its address is
    restored by playbooks/restore.yml: every room back without a change on its host, the attendance and the
    web user there, a damaged backup refused. Run alone, its prepare step converges the commune first."""
    timings = molecule_test("rebuild")
    assert {"prepare", "side_effect", "verify"} <= timings.keys()
    times = json.loads((ARTIFACTS / "rebuild-times.json").read_text())
    print(f"rebuild: empty host to every room back in {times['empty_host_to_rooms_back_seconds']} s")
