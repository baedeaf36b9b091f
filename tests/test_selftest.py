"""`phonghop-agent check` and the coordinator's readiness check before meetings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node_agent.devices import NOT_CHECKED
from node_agent.selftest import LiveState, Report, check_devices, load_config
from tests.harness import BOTH_DATABASES, ROOT, Agent, Coordinator, free_port, sample, wait_for
from tests.webtools import signed_in


def _check(config: Path, *extra: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "node_agent", "check", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    return result.returncode, result.stdout


def _room(coordinator: Coordinator, tmp_path: Path, room: str, extra: str = "", token: str | None = None) -> Agent:
    real = coordinator.enroll(room)
    return Agent(coordinator, room, token or real, tmp_path / room, extra)


def _by_name(output: str) -> dict[str, dict[str, Any]]:
    report = json.loads(output)
    return {check["name"]: check for check in report["checks"]}


def test_check_passes_on_a_healthy_simulated_room(coordinator: Coordinator, tmp_path: Path) -> None:
    agent = _room(coordinator, tmp_path, "tdp-01")
    code, out = _check(agent.config, "--json")
    checks = _by_name(out)
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    assert list(checks) == [
        "cau_hinh",
        "may_chu",
        "ma_phong",
        "kenh_dieu_khien",
        "truyen_thu",
        "camera",
        "micro",
        "loa",
        "man_hinh",
    ]
    assert "quay về" in checks["truyen_thu"]["message"]  # the test media went out and came back
    code, text = _check(agent.config)
    assert code == 0
    assert "Tự kiểm tra phòng tdp-01" in text
    assert "Kết quả: TẤT CẢ ĐẠT" in text


def test_check_a_wrong_token(coordinator: Coordinator, tmp_path: Path) -> None:
    agent = _room(coordinator, tmp_path, "tdp-01", token="sai-ma-phong-0123456789")
    code, out = _check(agent.config, "--json")
    assert code == 1
    checks = _by_name(out)
    assert checks["may_chu"]["ok"] is True
    assert checks["ma_phong"]["ok"] is False
    assert "Máy chủ từ chối mã phòng tdp-01" in checks["ma_phong"]["message"]
    assert "Cấp lại mã" in checks["ma_phong"]["fix"]
    code, text = _check(agent.config)
    assert code == 1
    assert "[LỖI] Mã phòng (token)" in text
    assert "Cách khắc phục: Cấp lại mã cho phòng tdp-01" in text

    agent.token_file.unlink()
    code, out = _check(agent.config, "--json")
    assert code == 1
    missing = _by_name(out)["ma_phong"]
    assert missing["message"] == f"Không đọc được mã phòng từ {agent.token_file}: không có tệp này"
    assert "Cấp lại mã" in missing["fix"]


def test_check_an_unreachable_coordinator(tmp_path: Path) -> None:
    folder = tmp_path / "tdp-01"
    folder.mkdir()
    (folder / "room.token").write_text("x" * 32)
    config = folder / "agent.toml"
    config.write_text(
        f'room = "tdp-01"\ncoordinator_url = "http://127.0.0.1:{free_port()}"\ntoken_file = "{folder / "room.token"}"\n'
        "allow_plain_http = true\nlocal_api_port = 0\n"
    )
    code, out = _check(config, "--json")
    assert code == 1
    checks = _by_name(out)
    assert checks["may_chu"]["ok"] is False
    assert "Không liên lạc được máy chủ điều phối" in checks["may_chu"]["message"]
    assert "mạng Internet" in checks["may_chu"]["fix"]
    assert checks["camera"]["ok"] is True  # the test source: devices are checked all the same


def test_check_a_missing_camera(coordinator: Coordinator, tmp_path: Path) -> None:
    agent = _room(coordinator, tmp_path, "tdp-01", '[devices]\ncamera = "/dev/video-khong-co"\n')
    code, out = _check(agent.config, "--json")
    assert code == 1
    checks = _by_name(out)
    assert [name for name, check in checks.items() if not check["ok"]] == ["camera"]
    assert "/dev/video-khong-co" in checks["camera"]["message"]
    assert "Cắm lại camera USB" in checks["camera"]["fix"]


def test_check_beside_a_running_agent_on_the_production_settings(coordinator: Coordinator, tmp_path: Path) -> None:
    """A real room's settings (no test source) on this machine, which has no camera, microphone or sound
    card: the check names what is missing for each, even for devices the idle agent has not opened yet."""
    production = "[test_source]\nenabled = false\n"
    token = coordinator.enroll("tdp-01")
    agent = Agent(coordinator, "tdp-01", token, tmp_path / "tdp-01", production, local_api_port=free_port()).start()
    try:
        wait_for(lambda: agent.status().get("connected"), 20, "the agent connected, its local API answering")
        code, out = _check(agent.config, "--json")
    finally:
        agent.stop()
    assert code == 1
    failed = {name: check["message"] for name, check in _by_name(out).items() if not check["ok"]}
    assert sorted(failed) == ["camera", "loa", "micro"], failed
    assert failed["camera"].startswith("Không thấy camera"), failed
    assert failed["micro"].startswith("Không thấy micro"), failed
    assert failed["loa"].startswith("Không thấy loa"), failed


def test_check_probes_what_the_running_agent_has_not_tried_yet(tmp_path: Path) -> None:
    """Right after a (re)start the agent has not opened its camera and microphone yet: the check, run at
    that moment by the provisioning, probes them itself instead of reporting "not checked yet"."""
    (tmp_path / "room.token").write_text("x" * 32)
    config = tmp_path / "agent.toml"
    config.write_text(
        'room = "tdp-01"\ncoordinator_url = "https://phong-son.example"\n'
        f'token_file = "{tmp_path / "room.token"}"\n[test_source]\nenabled = false\n'
    )
    report = Report(room="tdp-01")
    idle = {"camera": (False, NOT_CHECKED), "microphone": (False, NOT_CHECKED), "speaker": (False, "hỏng")}
    check_devices(load_config(config), report, LiveState(connected=True, devices=idle))
    messages = {check.name: check.message for check in report.checks}
    assert messages["camera"].startswith("Không thấy camera"), messages  # this machine has none
    assert messages["micro"].startswith("Không thấy micro"), messages
    assert messages["loa"] == "Hỏng", "what the agent knows is kept"


def test_check_an_unreadable_config(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('room = "TDP 01"\n')
    code, out = _check(bad)
    assert code == 2
    assert "[LỖI] Tệp cấu hình" in out


@BOTH_DATABASES
def test_readiness_check_runs_before_the_meeting_and_survives_a_restart(
    coordinator: Coordinator, start_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    coordinator.stop()
    coordinator.env.update(
        {
            "PHONGHOP_READINESS_LEAD_SECONDS": "60",
            "PHONGHOP_READINESS_FINAL_LEAD_SECONDS": "20",
            "PHONGHOP_READINESS_MIN_SECONDS": "5",
            # Several self-tests at once load a shared two-core machine; do not drop rooms for a slow heartbeat.
            "PHONGHOP_MISSED_HEARTBEATS": "10",
        }
    )
    coordinator.start()
    start_agent("ubnd", "hall")
    start_agent("tdp-01")
    start_agent("th-phong-son", "school", '[devices]\ncamera = "/dev/video-khong-co"\n')
    coordinator.enroll("tdp-02")  # enrolled, but its laptop is off
    for room in ("ubnd", "tdp-01", "th-phong-son"):
        wait_for(
            lambda room=room: sample(coordinator.metrics(), "phonghop_room_up", room=room, group=_group(room)) == 1,
            40,
            f"{room} up",
        )
    meeting = coordinator.schedule(["tdp-01", "tdp-02", "th-phong-son"], start_in=33)

    def ready(room: str) -> float | None:
        return sample(coordinator.metrics(), "phonghop_room_ready", room=room, meeting=str(meeting))

    wait_for(lambda: ready("tdp-02") is not None and ready("tdp-01") is not None, 60, "the early readiness check")
    metrics = coordinator.metrics()
    assert ready("ubnd") == 1
    assert ready("tdp-01") == 1
    assert ready("th-phong-son") == 0
    failed = "phonghop_room_ready_failed_check"
    assert sample(metrics, failed, room="th-phong-son", meeting=str(meeting), check="camera") == 1
    assert sample(metrics, "phonghop_room_ready", room="tdp-02", meeting=str(meeting)) == 0
    assert sample(metrics, failed, room="tdp-02", meeting=str(meeting), check="ket_noi") == 1
    with coordinator.api() as api:
        body = api.get(f"/api/v1/meetings/{meeting}/readiness").json()
    rooms = {r["room"]: r for r in body["rooms"]}
    assert rooms["th-phong-son"]["failed_check"] == "camera"
    assert rooms["tdp-01"]["stage"] == "lead"
    assert any(c["name"] == "truyen_thu" and c["ok"] for c in rooms["tdp-01"]["checks"])
    # The overview shows the same to the people watching the commune.
    coordinator.add_user("kiem-tra", "viewer", "mat-khau-rat-dai-1")
    with signed_in(coordinator, "kiem-tra", "mat-khau-rat-dai-1") as (web, _):
        overview = web.get("/").text
    assert re.search(r'id="room-th-phong-son"(?:(?!</tr>).)*Chưa sẵn sàng: camera', overview, re.S), (
        "overview lacks readiness"
    )

    def stage() -> str:
        with coordinator.api() as api:
            return str(api.get(f"/api/v1/meetings/{meeting}/readiness").json()["rooms"][0].get("stage"))

    wait_for(lambda: stage() == "final", 60, "the final readiness check shortly before the start")
    coordinator.stop()
    coordinator.start()
    assert sample(coordinator.metrics(), failed, room="th-phong-son", meeting=str(meeting), check="camera") == 1
    assert sample(coordinator.metrics(), "phonghop_room_ready", room="tdp-01", meeting=str(meeting)) == 1


def _group(room: str) -> str:
    return {"ubnd": "hall", "th-phong-son": "school"}.get(room, "residential_group")
