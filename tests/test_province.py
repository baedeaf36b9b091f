"""The province cascade with real processes: a province coordinator and its chair, commune coordinators
that dial it as participants, and their rooms, all with real aiortc peers.

One lab serves the whole file (starting eleven processes is most of its cost);
the tests run in order on one province meeting. The waits leave room for a busy
machine; the times the issue sets are measured (MEASURED lines) and written down
in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from phonghop.protocol import Hand, Hello
from tests.harness import sample, wait_for
from tests.province_lab import CHAIR, SOURCE, Lab, everyone_up, hears, shows, start_lab, wait_rooms

COMMUNES = {
    "xa-a": [("a-ubnd", "hall"), ("a-tdp-01", "residential_group")],
    "xa-b": [("b-ubnd", "hall"), ("b-tdp-01", "residential_group")],
    "xa-c": [("c-ubnd", "hall"), ("c-th-01", "school")],
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    started = start_lab(Path(tmp_path_factory.mktemp("province")), COMMUNES)
    yield started
    started.stop()


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


def test_a_cut_uplink_falls_back_to_the_hall_and_comes_back(lab: Lab, meeting: int) -> None:
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

    commune.token_file.write_text(response.json()["token"] + "\n")
    back = time.monotonic()
    seconds = wait_rooms(
        commune.rooms, lambda agent: shows(agent, CHAIR) and hears(agent, CHAIR), 20, "the chair back at A"
    )
    print(f"MEASURED uplink back: chair on commune A's rooms {seconds:.2f} s after the token ({back - cut:.1f} s cut)")
    assert sample(commune.coordinator.metrics(), "phonghop_uplink_reconnects_total", commune="xa-a") >= 1


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
