"""Scheduled meetings start by themselves and rooms follow: real agents, real faults."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.alerting import NODE_EXPORTER, MonitoringStack, Timing
from tests.harness import (
    BOTH_DATABASES,
    Agent,
    Coordinator,
    Samples,
    free_port,
    holds,
    sample,
    small_disk,
    wait_for,
)
from tests.postgres import PostgresServer
from tests.webtools import signed_in

ROOMS = {"ubnd": "hall", "tdp-01": "residential_group", "th-phong-son": "school"}


def _schedule(coordinator: Coordinator, start_in: float, minutes: float = 10) -> int:
    return coordinator.schedule(["tdp-01"], ["school"], start_in=start_in, seconds=int(minutes * 60))


def _in_meeting(coordinator: Coordinator, room: str, meeting: int) -> bool:
    return sample(coordinator.metrics(), "phonghop_room_in_meeting", room=room, meeting=str(meeting)) == 1


def _up(metrics: Samples, room: str) -> float | None:
    return sample(metrics, "phonghop_room_up", room=room, group=ROOMS[room])


def _start_rooms(start_agent: Callable[..., Agent]) -> dict[str, Agent]:
    agents = {room: start_agent(room, group) for room, group in ROOMS.items() if room != "th-phong-son"}
    agents["th-phong-son"] = start_agent("th-phong-son", "school", '[test_source]\nmissing_devices = ["camera"]\n')
    return agents


def test_scheduled_meeting_starts_and_metrics_tell_the_truth(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    _start_rooms(start_agent)
    meeting = _schedule(coordinator, start_in=3, minutes=10)

    def noted() -> Samples | None:
        metrics = coordinator.metrics()
        return metrics if sample(metrics, "phonghop_meeting_active", meeting=str(meeting)) is not None else None

    # The API wakes the scheduler, which notes the new meeting a moment later.
    before = wait_for(noted, 10, "the scheduler to note the new meeting")
    assert sample(before, "phonghop_meeting_active", meeting=str(meeting)) == 0
    assert sample(before, "phonghop_meeting_next_start_timestamp_seconds", meeting=str(meeting)) > time.time()

    for room in ROOMS:
        wait_for(lambda room=room: _in_meeting(coordinator, room, meeting), 20, f"{room} in meeting {meeting}")
    metrics = coordinator.metrics()
    assert sample(metrics, "phonghop_meeting_active", meeting=str(meeting)) == 1
    assert sample(metrics, "phonghop_meeting_expected_rooms", meeting=str(meeting)) == 3
    assert sample(metrics, "phonghop_meeting_info", meeting=str(meeting), title="Giao ban tuần", chair="ubnd") == 1
    for room in ROOMS:
        assert _up(metrics, room) == 1
        assert sample(metrics, "phonghop_agent_info", room=room, version="0.1.0") == 1
        seen = sample(metrics, "phonghop_room_last_seen_timestamp_seconds", room=room)
        assert seen is not None
        assert time.time() - seen < 5
        assert sample(metrics, "phonghop_room_device_ok", room=room, device="microphone") == 1
    assert sample(metrics, "phonghop_room_device_ok", room="tdp-01", device="camera") == 1
    assert sample(metrics, "phonghop_room_device_ok", room="th-phong-son", device="camera") == 0
    # The process itself, for the soak and for an operator: tasks (a room's peer and channel are a few each),
    # open files and memory.
    assert sample(metrics, "phonghop_coordinator_tasks") > len(ROOMS)
    assert sample(metrics, "process_open_fds") > len(ROOMS)
    assert sample(metrics, "process_resident_memory_bytes") > 50e6
    assert sample(metrics, "phonghop_coordinator_heap_bytes", state="in_use") > 10e6
    assert sample(metrics, "phonghop_coordinator_heap_bytes", state="free") is not None

    with coordinator.api() as api:
        running = api.get(f"/api/v1/meetings/{meeting}").json()["running"]
        assert running["joined"] == sorted(ROOMS)
        assert running["missing"] == []
        assert api.get("/api/v1/rooms/tdp-01").json()["meeting"] == meeting
        for floor in ("tdp-01", "th-phong-son"):
            api.put(f"/api/v1/meetings/{meeting}/floor", json={"room": floor}).raise_for_status()
        api.delete(f"/api/v1/meetings/{meeting}/floor").raise_for_status()
        api.post(f"/api/v1/meetings/{meeting}/end").raise_for_status()
    for room in ROOMS:
        wait_for(lambda room=room: not _in_meeting(coordinator, room, meeting), 10, f"{room} to leave")
    # Every room acknowledges its leave command, and the coordinator expects those answers like a join's.
    wait_for(lambda: coordinator.log.read_text().count("confirmed it left") == len(ROOMS), 10, "the leave answers")
    after = coordinator.metrics()
    assert sample(after, "phonghop_room_in_meeting", room="tdp-01", meeting=str(meeting)) is None
    assert _up(after, "tdp-01") == 1
    errors = [key for key in after if key[0] == "phonghop_control_errors_total"]
    assert errors == [], errors
    warnings = [line for line in coordinator.log.read_text().splitlines() if " WARNING " in line]
    assert [w for w in warnings if "coordinator.auth: created a new" not in w] == []  # first-start credentials


def test_killed_agent_goes_down_and_rejoins(coordinator: Coordinator, start_agent: Callable[..., Agent]) -> None:
    agents = _start_rooms(start_agent)
    meeting = _schedule(coordinator, start_in=1)
    for room in ROOMS:
        wait_for(lambda room=room: _in_meeting(coordinator, room, meeting), 20, f"{room} in the meeting")

    agents["tdp-01"].stop(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: _up(coordinator.metrics(), "tdp-01") == 0, 5, "tdp-01 down")
    assert time.monotonic() - killed < 1.5 + 1.0  # 3 missed heartbeats of 0.5 s, plus a tick
    assert not _in_meeting(coordinator, "tdp-01", meeting)
    assert _up(coordinator.metrics(), "ubnd") == 1

    agents["tdp-01"].start()
    wait_for(lambda: _in_meeting(coordinator, "tdp-01", meeting), 20, "tdp-01 back in the meeting")  # a new process
    with coordinator.api() as api:
        history = api.get(f"/api/v1/meetings/{meeting}/occurrences").json()
    stays = [a for a in history[0]["attendance"] if a["room"] == "tdp-01"]
    assert len(stays) == 2
    assert stays[0]["left_at"] is not None
    assert stays[1]["left_at"] is None


def test_frozen_agent_misses_heartbeats_and_recovers(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    """A hung laptop keeps its TCP connection open: only heartbeats tell."""
    agent = start_agent("tdp-01")
    wait_for(lambda: _up(coordinator.metrics(), "tdp-01") == 1, 15, "tdp-01 up")
    agent.send(signal.SIGSTOP)
    wait_for(lambda: _up(coordinator.metrics(), "tdp-01") == 0, 5, "tdp-01 down while frozen")
    wait_for(lambda: "no heartbeat for" in coordinator.log.read_text(), 5, "the coordinator to drop the silent room")
    agent.send(signal.SIGCONT)
    wait_for(lambda: _up(coordinator.metrics(), "tdp-01") == 1, 10, "tdp-01 up after thawing")


@BOTH_DATABASES
def test_coordinator_restart_mid_meeting_loses_nothing(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    _start_rooms(start_agent)
    meeting = _schedule(coordinator, start_in=1)
    for room in ROOMS:
        wait_for(lambda room=room: _in_meeting(coordinator, room, meeting), 20, f"{room} in the meeting")
    with coordinator.api() as api:
        api.put(f"/api/v1/meetings/{meeting}/floor", json={"room": "tdp-01"}).raise_for_status()
        schedule_before = api.get("/api/v1/meetings").json()
        occurrence_before = api.get(f"/api/v1/meetings/{meeting}/occurrences").json()

    for sig in (signal.SIGTERM, signal.SIGKILL):
        coordinator.stop(sig)
        coordinator.start()
        restarted = time.monotonic()  # serving again
        for room in ROOMS:
            wait_for(lambda room=room: _in_meeting(coordinator, room, meeting), 10, f"{room} back after {sig!r}")
        assert time.monotonic() - restarted < 10

    with coordinator.api() as api:
        schedule_after = api.get("/api/v1/meetings").json()
        occurrences = api.get(f"/api/v1/meetings/{meeting}/occurrences").json()
    strip = [{k: v for k, v in m.items() if k not in ("running", "next_start")} for m in schedule_before]
    assert strip == [{k: v for k, v in m.items() if k not in ("running", "next_start")} for m in schedule_after]
    assert len(occurrences) == 1
    assert occurrences[0]["id"] == occurrence_before[0]["id"]
    assert occurrences[0]["floor"] == "tdp-01"
    assert occurrences[0]["ended_at"] is None
    by_room: dict[str, list[dict[str, str]]] = {}
    for stay in occurrences[0]["attendance"]:
        by_room.setdefault(stay["room"], []).append(stay)
    for room in ROOMS:
        stays = by_room[room]
        assert len(stays) == 3, stays  # before, between and after the two restarts
        assert [s["left_reason"] for s in stays[:2]] == ["coordinator stopped", "coordinator restarted"]
        assert stays[2]["left_at"] is None
        old_stay = next(s for s in occurrence_before[0]["attendance"] if s["room"] == room)
        assert stays[0]["joined_at"] == old_stay["joined_at"]


def test_a_running_meeting_follows_its_new_end(coordinator: Coordinator, start_agent: Callable[..., Agent]) -> None:
    """The operator lengthens a running meeting, then shortens it: it runs on, then ends at the new end."""
    for room in ("ubnd", "tdp-01"):
        start_agent(room, ROOMS[room])
    meeting = _schedule(coordinator, start_in=1)
    for room in ("ubnd", "tdp-01"):
        wait_for(lambda room=room: _in_meeting(coordinator, room, meeting), 20, f"{room} in the meeting")
    with coordinator.api() as api:
        api.patch(f"/api/v1/meetings/{meeting}", json={"duration_seconds": 1200}).raise_for_status()
        start = datetime.fromisoformat(api.get(f"/api/v1/meetings/{meeting}/occurrences").json()[0]["scheduled_start"])
        longer = start + timedelta(seconds=1200)
        running = wait_for(
            lambda: (
                (r := api.get(f"/api/v1/meetings/{meeting}").json()["running"])
                and datetime.fromisoformat(r["ends_at"]) == longer
                and r
            ),
            10,
            "the running meeting to take its new end",
        )
        assert sorted(running["joined"]) == ["tdp-01", "ubnd"]
        occurrence = api.get(f"/api/v1/meetings/{meeting}/occurrences").json()[0]
        assert datetime.fromisoformat(occurrence["ends_at"]) == longer, "the new end is kept for a restart"

        seconds = max(10, int((datetime.now(UTC) - start).total_seconds()) + 3)
        api.patch(f"/api/v1/meetings/{meeting}", json={"duration_seconds": seconds}).raise_for_status()
        ended = wait_for(
            lambda: (o := api.get(f"/api/v1/meetings/{meeting}/occurrences").json()[0])["ended_at"] and o,
            20,
            "the meeting to end and its end to be recorded",
        )
        assert api.get(f"/api/v1/meetings/{meeting}").json()["running"] is None
    assert datetime.fromisoformat(ended["ended_at"]) >= start + timedelta(seconds=seconds)
    assert not _in_meeting(coordinator, "tdp-01", meeting)


@pytest.mark.parametrize("coordinator", ["postgresql"], indirect=True)
def test_a_database_outage_mid_meeting_loses_nothing(
    coordinator: Coordinator, start_agent: Callable[..., Agent], postgres: PostgresServer
) -> None:
    """PostgreSQL stops during a meeting: media and the meeting go on, a change is refused with a clear
    error instead of half-made, and once the database is back every write works and no stay was cut."""
    for room in ("ubnd", "tdp-01"):
        start_agent(room, ROOMS[room])
    meeting = _schedule(coordinator, start_in=1)
    for room in ("ubnd", "tdp-01"):
        wait_for(lambda room=room: _in_meeting(coordinator, room, meeting), 20, f"{room} in the meeting")
    assert coordinator.add_user("vanhanh", "operator", "mat-khau-van-hanh").returncode == 0

    with signed_in(coordinator, "vanhanh", "mat-khau-van-hanh") as (web, _):
        postgres.stop()
        try:
            with coordinator.api() as api:
                refused = api.patch(f"/api/v1/meetings/{meeting}", json={"title": "Giao ban (đổi tên)"})
            page = web.get("/lich-hop")
            holds(
                lambda: _in_meeting(coordinator, "ubnd", meeting) and _in_meeting(coordinator, "tdp-01", meeting),
                5,
                "both rooms to stay in the meeting without the database",
            )
        finally:
            postgres.resume()
    assert page.status_code == 503
    assert "Cơ sở dữ liệu tạm thời không trả lời" in page.text, "the pages say it in Vietnamese"
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "database_unavailable"
    assert "try again" in error["message"]
    assert refused.headers["retry-after"]

    with coordinator.api() as api:
        changed = wait_for(
            lambda: (
                (r := api.patch(f"/api/v1/meetings/{meeting}", json={"title": "Giao ban (đổi tên)"})).status_code == 200
                and r
            ),
            20,
            "the change to go through once the database is back",
        )
        assert changed.json()["title"] == "Giao ban (đổi tên)"
        stays = api.get(f"/api/v1/meetings/{meeting}/occurrences").json()[0]["attendance"]
    assert sorted((s["room"], s["left_at"]) for s in stays) == [("tdp-01", None), ("ubnd", None)]


def test_a_full_database_disk_mid_meeting_loses_nothing(tmp_path: Path) -> None:
    """The coordinator's database on a small disk of its own (an ext4 image), filled up during a meeting:
    media and the meeting go on, the disk alert fires, writes go through until the disk refuses one with a
    clear error (SQLite's write-ahead log first reuses the space it holds), nothing stored is lost, and once
    there is space again it all works without a restart."""
    with small_disk(tmp_path / "disk") as disk:
        _database_disk_fills_up(tmp_path, disk)


def _database_disk_fills_up(tmp_path: Path, disk: Path) -> None:
    coordinator = Coordinator(tmp_path / "coordinator", {"PHONGHOP_DATABASE_URL": f"sqlite:///{disk / 'db.sqlite'}"})
    exporter_port = free_port()
    # This machine's node exporter, as the monitoring role scrapes it on the server (filesystems only).
    listen = f"--web.listen-address=127.0.0.1:{exporter_port}"
    exporter = subprocess.Popen(
        [NODE_EXPORTER, listen, "--collector.disable-defaults", "--collector.filesystem"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    monitoring: MonitoringStack | None = None
    agents: list[Agent] = []
    try:
        coordinator.start()
        monitoring = stack = MonitoringStack(
            tmp_path / "monitoring",
            coordinator.port,
            None,
            Timing(),
            {"monitoring_node_exporter_groups": ["coordinator"], "monitoring_node_exporter_port": exporter_port},
        ).start()
        for room in ("ubnd", "tdp-01"):
            token = coordinator.enroll(room, ROOMS[room])
            agents.append(Agent(coordinator, room, token, tmp_path / "rooms" / room).start())
        meeting = _schedule(coordinator, start_in=1)
        for room in ("ubnd", "tdp-01"):
            wait_for(lambda room=room: _in_meeting(coordinator, room, meeting), 20, f"{room} in the meeting")

        filler = disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
        with coordinator.api() as api:
            stored, refused = _write_until_refused(api)
            print(f"MEASURED full disk: {len(stored)} new meetings stored before the disk refused one")
            holds(
                lambda: _in_meeting(coordinator, "ubnd", meeting) and _in_meeting(coordinator, "tdp-01", meeting),
                5,
                "both rooms to stay in the meeting on a full disk",
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "database_unavailable"
            alert = wait_for(
                lambda: [a for a in stack.alerts() if a["labels"].get("mountpoint") == str(disk)], 30, "the disk alert"
            )
            assert alert[0]["labels"]["alertname"] == "PhongHopDiskNearlyFull"
            assert "sắp đầy" in alert[0]["annotations"]["summary"]

            filler.unlink()
            changed = api.patch(f"/api/v1/meetings/{meeting}", json={"title": "Giao ban (đổi tên)"})
            assert changed.status_code == 200, changed.text
            listed = {m["id"]: m["title"] for m in api.get("/api/v1/meetings").json()}
            stays = api.get(f"/api/v1/meetings/{meeting}/occurrences").json()[0]["attendance"]
        assert {id_: listed.get(id_) for id_ in stored} == stored, "every write that went through is kept"
        assert sorted((s["room"], s["left_at"]) for s in stays) == [("tdp-01", None), ("ubnd", None)]
        assert coordinator.proc is not None
        assert coordinator.proc.poll() is None, "the coordinator kept running"
    finally:
        for agent in agents:
            agent.stop()
        coordinator.stop()
        if monitoring is not None:
            monitoring.stop()
        exporter.terminate()
        exporter.wait()


def _write_until_refused(api: httpx.Client) -> tuple[dict[int, str], httpx.Response]:
    """New meetings until the full disk refuses one: the ones stored (id -> title) and the refusal."""
    stored: dict[int, str] = {}
    start = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for number in range(500):
        title = f"Họp lấp đầy đĩa {number} " + "x" * 150
        body = {"title": title, "chair_room": "ubnd", "invited_rooms": ["tdp-01"], "start": start}
        response = api.post("/api/v1/meetings", json={**body, "duration_seconds": 600})
        if response.status_code != 201:
            return stored, response
        stored[int(response.json()["id"])] = title
    raise AssertionError("500 meetings written on a full disk: the disk is not full")


def test_operator_commands_reach_the_agent_and_come_back(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    agent = start_agent("th-phong-son", "school", '[test_source]\nmissing_devices = ["camera"]\n')
    wait_for(lambda: _up(coordinator.metrics(), "th-phong-son") == 1, 15, "th-phong-son up")
    with coordinator.api() as api:
        check = api.post("/api/v1/rooms/th-phong-son/commands", json={"action": "run_check"}).json()
        assert check["ok"] is False
        assert "camera" in check["detail"]
        assert [c["name"] for c in check["checks"] if not c["ok"]] == ["camera"]
        agent.config.write_text(agent.config.read_text().replace('"camera"', ""))
        reload = api.post("/api/v1/rooms/th-phong-son/commands", json={"action": "reload_config"}).json()
        assert reload["ok"] is True
        check = api.post("/api/v1/rooms/th-phong-son/commands", json={"action": "run_check"}).json()
        assert check["ok"] is True, check
        wait_for(
            lambda: sample(coordinator.metrics(), "phonghop_room_device_ok", room="th-phong-son", device="camera") == 1,
            5,
            "the camera to be reported back",
        )
        agent.stop()
        wait_for(lambda: _up(coordinator.metrics(), "th-phong-son") == 0, 5, "th-phong-son down")
        offline = api.post("/api/v1/rooms/th-phong-son/commands", json={"action": "run_check"})
        assert offline.status_code == 409
        assert "not connected" in offline.json()["error"]["message"]


def test_a_room_raises_its_hand_and_gets_the_floor(coordinator: Coordinator, start_agent: Callable[..., Agent]) -> None:
    agent = start_agent("tdp-01", local_api_port=free_port())
    chair_agent = start_agent("ubnd", "hall", local_api_port=free_port())
    with agent.local() as local, chair_agent.local() as chair_local:
        wait_for(lambda: local.get("/status").json()["connected"], 30, "the agent's local API")
        too_early = local.post("/hand")
        assert too_early.status_code == 409
        assert "đang không họp" in too_early.json()["error"]
        meeting = _schedule(coordinator, start_in=0.5)
        for room_api in (local, chair_local):
            wait_for(lambda room_api=room_api: room_api.get("/status").json()["meeting"], 15, "both rooms in it")
        assert local.post("/hand").json() == {"hand_raised": True}
        with coordinator.api() as api:
            wait_for(
                lambda: api.get(f"/api/v1/meetings/{meeting}/floor").json()["hands"] == ["tdp-01"],
                5,
                "the raised hand in the queue",
            )
            floor = api.put(f"/api/v1/meetings/{meeting}/floor", json={"room": "tdp-01"}).json()
            assert floor["floor"] == "tdp-01"
            assert floor["hands"] == []
        wait_for(lambda: local.get("/status").json()["floor"] == "tdp-01", 5, "the agent to know it has the floor")
        assert local.get("/status").json()["hand_raised"] is False
        # Only the chair room takes the floor back (or gives it) from its own remote.
        assert local.put("/floor", json={"room": None}).status_code == 409
        chair = chair_local.put("/floor", json={"room": None})
        assert chair.status_code == 200, chair.text
        wait_for(lambda: local.get("/status").json()["floor"] is None, 5, "the floor back with the chair")
    assert agent.local_api is not None
