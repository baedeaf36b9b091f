"""The province cascade with real processes: a province coordinator and its chair, commune coordinators
that dial it as participants, and their rooms, all with real aiortc peers.

One lab serves the whole file (starting eleven processes and two Prometheus
servers is most of its cost); the tests run in order on one province meeting.
The waits leave room for a busy machine; the target times are measured
(MEASURED lines) and written down in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from phonghop.protocol import Hand, Hello
from tests.alerting import MonitoringStack, Timing
from tests.harness import free_port, sample, wait_for
from tests.province_lab import CHAIR, SOURCE, Lab, everyone_up, hears, shows, start_lab, wait_rooms
from tests.webtools import signed_in

COMMUNES = {
    "xa-a": [("a-ubnd", "hall"), ("a-tdp-01", "residential_group")],
    "xa-b": [("b-ubnd", "hall"), ("b-tdp-01", "residential_group")],
    "xa-c": [("c-ubnd", "hall"), ("c-th-01", "school")],
}


PROVINCE_LABEL = "tinh-thu-nghiem"  # the province's own `commune` label in its Prometheus
VIEWER = ("can-bo-tinh", "mat-khau-xem-cac-xa")


@pytest.fixture(scope="module")
def prometheus_port() -> int:
    """The province Prometheus's port: the province coordinator's page reads from it."""
    return free_port()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, prometheus_port: int) -> Iterator[Lab]:
    started = start_lab(
        Path(tmp_path_factory.mktemp("province")),
        COMMUNES,
        province_env={"PHONGHOP_PROMETHEUS_URL": f"http://127.0.0.1:{prometheus_port}"},
    )
    added = started.province.add_user(VIEWER[0], "viewer", VIEWER[1])
    assert added.returncode == 0, added.stderr
    yield started
    started.stop()


@pytest.fixture(scope="module")
def monitoring(lab: Lab, prometheus_port: int) -> Iterator[MonitoringStack]:
    """The province's Prometheus (taking remote writes) and commune A's, configured by the monitoring role;
    B and C have no monitoring yet. Returns the province's."""
    province_url = f"http://127.0.0.1:{prometheus_port}"
    with ThreadPoolExecutor() as pool:  # the role renders both side by side
        province, commune_a = pool.map(
            lambda args: MonitoringStack(*args),
            [
                (
                    lab.folder / "province-monitoring",
                    lab.province.port,
                    None,
                    Timing(),
                    {"monitoring_commune": PROVINCE_LABEL, "monitoring_remote_write_receiver": True},
                    prometheus_port,
                ),
                (
                    lab.folder / "xa-a-monitoring",
                    lab.communes["xa-a"].coordinator.port,
                    None,
                    Timing(),
                    {"monitoring_commune": "xa-a", "monitoring_remote_write_url": f"{province_url}/api/v1/write"},
                ),
            ],
        )
    province.start()
    commune_a.start()
    yield province
    commune_a.stop()  # first: it would wait for the province to take its last writes
    province.stop()


@pytest.fixture(scope="module")
def meeting(lab: Lab) -> int:
    """The province meeting, started once all communes are connected to the province."""
    wait_for(lambda: everyone_up(lab), 120, "the chair, every commune's uplink and every room to be up", interval=0.5)
    return lab.schedule()


def test_every_commune_room_gets_the_province_chair(lab: Lab, meeting: int) -> None:
    seconds = wait_rooms(
        lab.rooms(),
        lambda agent: shows(agent, CHAIR) and hears(agent, CHAIR),
        30,
        "every commune room to decode the province chair's picture and tone",
    )
    print(f"MEASURED province chair decoded in every commune room {seconds:.1f} s after the meeting started")
    # Inside each commune the province meeting runs as a local meeting chaired by the province.
    for commune in lab.communes.values():
        with commune.coordinator.api() as api:
            local = [m for m in api.get("/api/v1/meetings").json() if m["running"]]
        assert [m["chair_room"] for m in local] == [SOURCE]
        assert sorted(local[0]["running"]["joined"]) == sorted(commune.rooms)
        assert sample(commune.coordinator.metrics(), "phonghop_uplink_up", commune=commune.id) == 1


def test_the_province_page_says_when_its_prometheus_is_down(lab: Lab, prometheus_port: int) -> None:
    """Runs before the province's Prometheus starts."""
    with signed_in(lab.province, *VIEWER) as (client, _):
        response = client.get("/cac-xa")
    assert response.status_code == 503
    assert "Không đọc được số liệu các xã" in response.text
    assert f"không kết nối được tới http://127.0.0.1:{prometheus_port}" in response.text
    assert 'href="/cac-xa"' in response.text, "the province's pages link to it"


def _communes(client: httpx.Client) -> dict[str, dict[str, str]]:
    """The province page's rows: commune id -> cell class -> the cell's text."""
    response = client.get("/cac-xa", params={"fragment": 1})
    assert response.status_code == 200, response.text
    rows = {}
    for row in re.finditer(r'<tr id="commune-([^"]+)".*?</tr>', response.text, re.DOTALL):
        cells = re.finditer(r'<td data-label="[^"]*" class="([^"]+)">(.*?)</td>', row.group(0), re.DOTALL)
        rows[row.group(1)] = {cell.group(1): " ".join(re.sub(r"<[^>]+>", " ", cell.group(2)).split()) for cell in cells}
    return rows


def test_the_province_page_shows_every_commune(lab: Lab, meeting: int, monitoring: MonitoringStack) -> None:
    """Commune A's Prometheus writes to the province's; B and C have no monitoring yet."""
    with signed_in(lab.province, *VIEWER) as (client, _):
        rows = wait_for(
            lambda: (found := _communes(client)).get("xa-a", {}).get("in-meeting") == "2" and found,
            60,
            "commune A's rooms in the meeting, on the province page",
        )
    assert set(rows) == set(COMMUNES), "one row per commune, none for the province itself"
    assert rows["xa-a"]["link"] == "Đang kết nối"
    assert rows["xa-a"]["media"] == "Đang nhận"
    assert rows["xa-a"]["online"] == "2/2"
    assert rows["xa-a"]["reported"].startswith("cách đây")
    for commune in ("xa-b", "xa-c"):
        assert rows[commune]["link"] == "Đang kết nối"
        assert rows[commune]["online"] == "—"
        assert rows[commune]["reported"] == "Chưa nhận được số liệu"
    written = monitoring.query('phonghop_room_up{commune="xa-a"}')
    assert sorted(s["metric"]["room"] for s in written) == sorted(r for r, _ in COMMUNES["xa-a"])


def _floor(lab: Lab, meeting: int) -> dict[str, Any]:
    with lab.province.api() as api:
        return dict(api.get(f"/api/v1/meetings/{meeting}/floor").json())


def _video_up(lab: Lab) -> dict[str, float]:
    """Video bytes the province received from each commune so far."""
    metrics = lab.province.metrics()
    return {c: sample(metrics, "phonghop_rtp_bytes_total", room=c, direction="in", kind="video") or 0 for c in COMMUNES}


def test_a_commune_rooms_hand_and_floor_reach_every_commune(lab: Lab, meeting: int) -> None:
    rooms, speaker = lab.rooms(), "a-tdp-01"
    with rooms[speaker].local() as local:
        local.post("/hand").raise_for_status()
    # The hand waits in the province chair's queue as "commune/room".
    wait_for(lambda: _floor(lab, meeting)["hands"] == [f"xa-a/{speaker}"], 10, "the hand in the province's queue")

    before = _video_up(lab)
    with lab.province.api() as api:
        api.put(f"/api/v1/meetings/{meeting}/floor", json={"room": f"xa-a/{speaker}"}).raise_for_status()
    try:
        _floor_everywhere(lab, meeting, speaker, before)
    finally:
        with lab.province.api() as api:
            api.delete(f"/api/v1/meetings/{meeting}/floor").raise_for_status()
    wait_rooms(rooms, lambda agent: shows(agent, CHAIR) and hears(agent, CHAIR), 20, "the chair back everywhere")


def _floor_everywhere(lab: Lab, meeting: int, speaker: str, before: dict[str, float]) -> None:
    rooms = lab.rooms()
    others = {room: agent for room, agent in rooms.items() if room != speaker}
    seconds = wait_rooms(
        {**others, CHAIR: lab.chair},
        lambda agent: shows(agent, speaker) and hears(agent, None if agent is lab.chair else CHAIR, speaker),
        20,
        f"every other room, in every commune, to show and hear {speaker}",
    )
    print(f"MEASURED floor to a commune's room visible in every commune {seconds:.2f} s after it was given")
    wait_rooms({speaker: rooms[speaker]}, lambda agent: shows(agent, CHAIR) and hears(agent, CHAIR), 10, "the chair")
    assert _floor(lab, meeting) | {"speaker": None} == {
        "meeting": meeting,
        "floor": f"xa-a/{speaker}",
        "hands": [],
        "speaker": None,
    }
    # Video goes up only from the commune that has the floor.
    after = _video_up(lab)
    assert after["xa-a"] > before["xa-a"]
    assert after["xa-b"] == before["xa-b"], (before, after)
    assert after["xa-c"] == before["xa-c"], (before, after)


def test_a_cut_uplink_falls_back_to_the_hall_and_comes_back(
    lab: Lab, meeting: int, monitoring: MonitoringStack
) -> None:
    """Commune A loses the province (its token is re-issued there: the province closes the link and
    refuses the old token); its rooms stay in their meeting on the hall's picture, the others see no
    change, and A is back with the chair soon after its new token arrives, with no other step."""
    commune, rooms = lab.communes["xa-a"], lab.rooms()
    a_rooms = {room: rooms[room] for room in commune.rooms if room != commune.hall}
    others = {room: agent for room, agent in rooms.items() if room not in commune.rooms}
    with lab.province.api() as api:
        response = api.post("/api/v1/rooms/xa-a/token")
        cut = time.monotonic()
    response.raise_for_status()
    seconds = wait_rooms(
        a_rooms,
        lambda agent: shows(agent, commune.hall) and hears(agent, commune.hall),
        10,
        "commune A's rooms to fall back to their hall",
    )
    print(f"MEASURED uplink cut: hall on commune A's rooms {seconds:.2f} s after the cut")
    assert sample(commune.coordinator.metrics(), "phonghop_uplink_up", commune="xa-a") == 0
    with commune.coordinator.api() as api:
        local = [m for m in api.get("/api/v1/meetings").json() if m["running"]]
    assert sorted(local[0]["running"]["joined"]) == sorted(commune.rooms), "A's rooms stay in their meeting"
    assert all(shows(agent, CHAIR) for agent in others.values()), "the other communes saw a change"
    _the_province_sees_a_cut(lab, monitoring)

    commune.token_file.write_text(response.json()["token"] + "\n")
    back = time.monotonic()
    seconds = wait_rooms(
        commune.rooms, lambda agent: shows(agent, CHAIR) and hears(agent, CHAIR), 20, "the chair back at A"
    )
    print(f"MEASURED uplink back: chair on commune A's rooms {seconds:.2f} s after the token ({back - cut:.1f} s cut)")
    assert (sample(commune.coordinator.metrics(), "phonghop_uplink_reconnects_total", commune="xa-a") or 0) >= 1


def _the_province_sees_a_cut(lab: Lab, monitoring: MonitoringStack) -> None:
    """Commune A's link is down: the page says so, and A's own report still arrives; the province's
    Prometheus alerts about commune A as a participant, never about another commune."""
    with signed_in(lab.province, *VIEWER) as (client, _):
        rows = wait_for(
            lambda: (found := _communes(client))["xa-a"]["link"] == "Mất kết nối" and found,
            20,
            "the province page to show commune A's link down",
        )
    assert rows["xa-b"]["link"] == "Đang kết nối"
    assert rows["xa-a"]["in-meeting"] == "2", "A's rooms stay in their meeting"
    firing = wait_for(
        lambda: [a for a in monitoring.alerts() if a["labels"]["alertname"] == "PhongHopCommuneUnreachable"],
        30,
        "the province's Prometheus to alert that commune A is unreachable",
    )
    assert [a["labels"]["room"] for a in firing] == ["xa-a"]
    # Alerts on what the communes wrote here carry their own commune label: the province's Alertmanager
    # routes those to nobody (each commune's own Alertmanager tells its technician).
    alerts = [a for a in monitoring.alerts() if a["labels"]["commune"] == PROVINCE_LABEL and "room" in a["labels"]]
    assert {a["labels"]["room"] for a in alerts} == {"xa-a"}, alerts


def test_a_restarted_province_resumes_everywhere(lab: Lab, meeting: int) -> None:
    """The province killed: every commune shows its hall; started again, the meeting is back everywhere."""
    rooms = lab.rooms()
    hall_of = {room: c.hall for c in lab.communes.values() for room in c.rooms if room != c.hall}
    lab.province.stop(signal.SIGKILL)
    wait_rooms(
        {room: rooms[room] for room in hall_of},
        lambda agent: shows(agent, hall_of[agent.room_id]),
        10,
        "the communes' rooms to fall back to their halls",
    )
    restarted = time.monotonic()
    lab.province.start()
    ready = time.monotonic() - restarted
    seconds = wait_rooms(
        rooms, lambda agent: shows(agent, CHAIR) and hears(agent, CHAIR), 30, "the province meeting back everywhere"
    )
    print(f"MEASURED province restart: chair back everywhere {seconds:.1f} s after it was ready ({ready:.1f} s start)")


async def test_only_a_commune_raises_a_hand_for_another_room(lab: Lab, meeting: int) -> None:
    token = lab.province.enroll("tinh-khach", "hall")
    url = lab.province.ws_url("tinh-khach")
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as websocket:
        await websocket.send(Hello(version="test").model_dump_json())
        assert json.loads(await websocket.recv())["type"] == "welcome"
        await websocket.send(Hand(raised=True, room="a-tdp-01").model_dump_json())
        while (reply := json.loads(await websocket.recv()))["type"] != "error":
            pass
    assert reply["code"] == "not_commune"
    assert "a-tdp-01" not in str(_floor(lab, meeting)["hands"])


def test_a_province_meeting_made_longer_is_longer_in_every_commune(lab: Lab, meeting: int) -> None:
    title = "Giao ban tỉnh (kéo dài)"
    with lab.province.api() as api:
        api.patch(f"/api/v1/meetings/{meeting}", json={"duration_seconds": 2400, "title": title}).raise_for_status()
        start = datetime.fromisoformat(api.get(f"/api/v1/meetings/{meeting}/occurrences").json()[-1]["scheduled_start"])
    ends = start + timedelta(seconds=2400)

    def local_meetings() -> list[dict[str, Any]]:
        found = []
        for commune in lab.communes.values():
            with commune.coordinator.api() as api:
                found += [m for m in api.get("/api/v1/meetings").json() if m["running"]]
        return found

    def follows(local: dict[str, Any]) -> bool:
        # The commune's meeting counts whole seconds from when it was created.
        return (
            local["title"] == title
            and abs(datetime.fromisoformat(local["running"]["ends_at"]) - ends).total_seconds() < 1
        )

    found = wait_for(
        lambda: (found := local_meetings()) and all(follows(m) for m in found) and found,
        15,
        "every commune's meeting to take the province meeting's new end and title",
    )
    assert len(found) == len(COMMUNES)


def test_a_commune_coordinator_stops_at_once_with_its_uplink_open(lab: Lab, meeting: int) -> None:
    """SIGTERM while the province keeps the uplink up: the commune coordinator closes it and exits."""
    commune = lab.communes["xa-c"]
    assert sample(lab.province.metrics(), "phonghop_room_up", room=commune.id, group="commune") == 1
    proc = commune.coordinator.proc
    assert proc is not None
    asked = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: proc.poll() is not None, 15, "the commune coordinator to exit by itself")
    assert "coordinator stopped" in commune.coordinator.log.read_text()
    print(f"MEASURED commune coordinator stopped {time.monotonic() - asked:.1f} s after SIGTERM")
    wait_for(
        lambda: sample(lab.province.metrics(), "phonghop_room_up", room=commune.id, group="commune") == 0,
        10,
        "the province to see the commune leave",
    )
