"""The province cascade with real processes: a province coordinator and its chair, commune coordinators
that dial it as participants, and their rooms, all with real aiortc peers.

One lab serves the whole file (starting fourteen processes and four Prometheus
servers is most of its cost); the tests run in order on one province meeting.
The waits leave room for a busy machine; the target times are measured
(MEASURED lines) and written down in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from phonghop.protocol import Hand, Hello
from tests.alerting import MonitoringStack, Timing
from tests.harness import Agent, free_port, sample, wait_for
from tests.province_lab import CHAIR, SOURCE, Commune, Lab, everyone_up, hears, shows, start_lab, wait_rooms
from tests.webtools import signed_in

COMMUNES = {
    "xa-a": [("a-ubnd", "hall"), ("a-tdp-01", "residential_group"), ("a-th-01", "school")],
    "xa-b": [("b-ubnd", "hall"), ("b-tdp-01", "residential_group"), ("b-tram-y-te", "public_service")],
    "xa-c": [("c-ubnd", "hall"), ("c-th-01", "school"), ("c-cong-an", "public_service")],
}
ROOMS_EACH = "3"  # rooms per commune, as the province page counts them


CUT = "xa-a"  # the commune behind a link of its own, the one the fault tests cut
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
        linked=(CUT,),
    )
    added = started.province.add_user(VIEWER[0], "viewer", VIEWER[1])
    assert added.returncode == 0, added.stderr
    yield started
    started.stop()


@pytest.fixture(scope="module")
def monitoring(lab: Lab, prometheus_port: int) -> Iterator[MonitoringStack]:
    """The province's Prometheus (taking remote writes) and each commune's, configured by the monitoring
    role; a commune's runs inside the commune and writes to its coordinator, which carries the series
    across its link to the province's coordinator and on to the province's Prometheus. Returns the
    province's."""
    province = MonitoringStack(
        lab.folder / "province-monitoring",
        lab.province.port,
        None,
        Timing(),
        {
            "monitoring_commune": PROVINCE_LABEL,
            "monitoring_remote_write_receiver": True,
            "monitoring_remote_write_url": "",
        },
        prometheus_port,
    )

    def commune_stack(commune: Commune) -> MonitoringStack:
        stack = MonitoringStack(
            lab.folder / f"{commune.id}-monitoring",
            commune.coordinator.port,
            None,
            Timing(),
            {"monitoring_commune": commune.id},
            prefix=commune.prefix,
        )
        if commune.link is not None:
            commune.link.expose(stack.prometheus_port)
        return stack

    with ThreadPoolExecutor() as pool:  # the role renders them side by side
        communes = list(pool.map(commune_stack, lab.communes.values()))
    province.start()
    for stack in communes:
        stack.start()
    yield province
    for stack in communes:
        stack.stop()  # first: they would wait for the province to take their last writes
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
    """Every commune's Prometheus writes to the province's."""
    expected = {
        "link": "Đang kết nối",
        "media": "Đang nhận",
        "online": f"{ROOMS_EACH}/{ROOMS_EACH}",
        "in-meeting": ROOMS_EACH,
    }

    def reported(rows: dict[str, dict[str, str]]) -> dict[str, dict[str, str]] | None:
        fresh = [row.items() >= expected.items() and row["reported"].startswith("cách đây") for row in rows.values()]
        return rows if set(rows) >= set(COMMUNES) and all(fresh) else None

    with signed_in(lab.province, *VIEWER) as (client, _):
        rows = wait_for(lambda: reported(_communes(client)), 60, "every commune's report on the province page")
    assert set(rows) == set(COMMUNES), "one row per commune, none for the province itself"
    written = monitoring.query(f'phonghop_room_up{{group!="commune",commune!="{PROVINCE_LABEL}"}}')
    assert sorted((s["metric"]["commune"], s["metric"]["room"]) for s in written) == sorted(
        (c, room) for c, rooms in COMMUNES.items() for room, _ in rooms
    ), "each commune's rooms, under its own label"


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


CUT_SECONDS = 60


def test_a_cut_uplink_falls_back_to_the_hall_and_loses_no_series(
    lab: Lab, meeting: int, monitoring: MonitoringStack
) -> None:
    """Commune A's own link cut for real for a minute (no carrier on its veth): its rooms stay in their
    meeting on the hall's picture, B and C see no gap, the province says once that A is unreachable; with
    the link back, A's rooms show the chair again and A's Prometheus delivers what it kept."""
    commune, rooms = lab.communes[CUT], lab.rooms()
    assert commune.link is not None
    a_rooms = {room: rooms[room] for room in commune.rooms if room != commune.hall}
    others = {room: agent for room, agent in rooms.items() if room not in commune.rooms}
    with _lapses(others, lambda agent: shows(agent, CHAIR)) as lapses:
        cut_at = time.time()
        commune.link.cut()
        try:
            seconds = _on_their_hall(commune, a_rooms)
            print(f"MEASURED link cut: hall on commune A's rooms {seconds:.2f} s after the cut")
            wait_for(
                lambda: sample(commune.coordinator.metrics(), "phonghop_uplink_up", commune=CUT) == 0,
                20,
                "commune A to see its uplink down",
            )
            with commune.coordinator.api() as api:
                local = [m for m in api.get("/api/v1/meetings").json() if m["running"]]
            assert sorted(local[0]["running"]["joined"]) == sorted(commune.rooms), "A's rooms stay in their meeting"
            _the_province_sees_a_cut(lab, monitoring)
            time.sleep(max(0.0, cut_at + CUT_SECONDS - time.time()))  # the cut lasts its whole minute
        finally:
            commune.link.restore()
        seconds = wait_rooms(
            commune.rooms, lambda agent: shows(agent, CHAIR) and hears(agent, CHAIR), 30, "the chair back at A"
        )
        print(f"MEASURED link back after {CUT_SECONDS} s: chair on commune A's rooms {seconds:.2f} s later")
    assert not lapses, f"B's and C's rooms lost the chair's picture for a second or more: {lapses}"
    _nothing_missing_from(monitoring, f'phonghop_room_up{{commune="{CUT}",room="{commune.hall}"}}', cut_at)
    batches = commune.coordinator.metrics()
    held, sent = (sample(batches, "phonghop_series_batches_total", result=r) or 0 for r in ("held", "sent"))
    print(f"MEASURED series batches carried by commune A's coordinator: {sent:.0f} sent, {held:.0f} held back")
    assert held >= 1, "the batches written during the cut were answered as held, so Prometheus kept them"


def _on_their_hall(commune: Commune, rooms: dict[str, Agent]) -> float:
    """Seconds until the commune's rooms show and hear their hall instead of the province."""
    return wait_rooms(
        rooms,
        lambda agent: shows(agent, commune.hall) and hears(agent, commune.hall),
        10,
        f"{commune.id}'s rooms to fall back to their hall",
    )


@contextmanager
def _lapses(agents: dict[str, Agent], ok: Callable[[Agent], bool]) -> Iterator[list[tuple[str, float]]]:
    """Watches the rooms while the block runs; yields the (room, second) of every reading where ``ok`` failed.
    A room reads its program's code from frames of the last second: one failed reading is a gap of a second."""
    lapses: list[tuple[str, float]] = []
    done = threading.Event()
    started = time.monotonic()

    def watch() -> None:
        with ThreadPoolExecutor(len(agents)) as pool:
            while not done.wait(0.25):
                readings = pool.map(lambda agent: _reading(ok, agent), agents.values())
                for room, good in zip(agents, readings, strict=True):
                    if good is False:
                        lapses.append((room, round(time.monotonic() - started, 1)))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield lapses
    finally:
        done.set()
        watcher.join()


def _reading(ok: Callable[[Agent], bool], agent: Agent) -> bool | None:
    """``ok`` for the room now; None when its local API did not answer (a busy machine, not a gap)."""
    try:
        return ok(agent)
    except httpx.HTTPError:
        return None


def _nothing_missing_from(monitoring: MonitoringStack, series: str, since: float) -> None:
    """Once the backlog has arrived, the province holds the series at every scrape since ``since``."""
    window = int(time.time() - since) + 30

    def delivered() -> list[float]:
        found = monitoring.query(f"{series}[{window}s]")
        stamps = [float(at) for at, _ in found[0]["values"]] if found else []
        return stamps if stamps and stamps[-1] > time.time() - 5 else []

    stamps = wait_for(delivered, 60, f"the backlog of {series} at the province")
    stamps = [at for at in stamps if at >= since - 5]
    widest = max(later - earlier for earlier, later in itertools.pairwise(stamps))
    print(f"MEASURED remote write after the cut: {len(stamps)} samples, widest gap {widest:.1f} s")
    assert widest < 3, f"{series} has a {widest:.1f} s hole at the province (scraped every second)"


def test_a_reissued_commune_token_cuts_the_uplink_until_the_new_one_arrives(lab: Lab, meeting: int) -> None:
    """Commune A's token is re-issued at the province: the province closes the link and refuses the old
    token; A's rooms stay in their meeting on the hall's picture, the others see no change, and A is back
    with the chair soon after its new token arrives, with no other step."""
    commune, rooms = lab.communes[CUT], lab.rooms()
    a_rooms = {room: rooms[room] for room in commune.rooms if room != commune.hall}
    others = {room: agent for room, agent in rooms.items() if room not in commune.rooms}
    with lab.province.api() as api:
        response = api.post(f"/api/v1/rooms/{CUT}/token")
        cut = time.monotonic()
    response.raise_for_status()
    seconds = _on_their_hall(commune, a_rooms)
    print(f"MEASURED token re-issued: hall on commune A's rooms {seconds:.2f} s later")
    wait_for(
        lambda: sample(commune.coordinator.metrics(), "phonghop_uplink_up", commune=CUT) == 0,
        20,
        "commune A to see its uplink down",
    )
    assert all(shows(agent, CHAIR) for agent in others.values()), "the other communes saw a change"

    commune.token_file.write_text(response.json()["token"] + "\n")
    back = time.monotonic()
    seconds = wait_rooms(
        commune.rooms, lambda agent: shows(agent, CHAIR) and hears(agent, CHAIR), 20, "the chair back at A"
    )
    print(f"MEASURED new token: chair on commune A's rooms {seconds:.2f} s after it ({back - cut:.1f} s cut)")
    assert (sample(commune.coordinator.metrics(), "phonghop_uplink_reconnects_total", commune=CUT) or 0) >= 1


def _the_province_sees_a_cut(lab: Lab, monitoring: MonitoringStack) -> None:
    """Commune A's link is down: the page says so (and shows A's last report); the province's
    Prometheus alerts about commune A as a participant, never about another commune."""
    with signed_in(lab.province, *VIEWER) as (client, _):
        rows = wait_for(
            lambda: (found := _communes(client))["xa-a"]["link"] == "Mất kết nối" and found,
            20,
            "the province page to show commune A's link down",
        )
    assert rows["xa-b"]["link"] == "Đang kết nối"
    assert rows["xa-a"]["in-meeting"] == ROOMS_EACH, "A's last report: its rooms in the meeting"
    firing = wait_for(
        lambda: [a for a in monitoring.alerts() if a["labels"]["alertname"] == "PhongHopCommuneUnreachable"],
        30,
        "the province's Prometheus to alert that commune A is unreachable",
    )
    assert [a["labels"]["room"] for a in firing] == ["xa-a"]
    # Alerts on what the communes wrote here carry their own commune label: the province's Alertmanager
    # routes those to nobody (each commune's own Alertmanager tells its technician). None of the
    # province's own alerts is about a commune's room.
    ours = {
        (a["labels"]["alertname"], a["labels"]["room"])
        for a in monitoring.alerts()
        if a["labels"]["commune"] == PROVINCE_LABEL and "room" in a["labels"]
    }
    commune_rooms = {room for commune in lab.communes.values() for room in commune.rooms}
    assert not {room for _, room in ours} & commune_rooms, ours


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


def test_a_commune_on_a_budget_sees_its_hall_and_hears_the_province(
    lab: Lab, meeting: int, monitoring: MonitoringStack
) -> None:
    """Commune C's coordinator restarted with a budget below the province's picture and sound: the province
    holds the picture back from C alone (its sound still goes); C's rooms show their hall and hear the
    province's chair, the other communes keep the chair's picture; the province page says C gets sound only."""
    commune, rooms = lab.communes["xa-c"], lab.rooms()
    commune.coordinator.stop()
    commune.coordinator.env["PHONGHOP_PROVINCE_BUDGET_KBPS"] = "64"
    commune.coordinator.start()
    c_rooms = {room: rooms[room] for room in commune.rooms if room != commune.hall}
    seconds = wait_rooms(
        c_rooms,
        lambda agent: shows(agent, commune.hall) and hears(agent, CHAIR),
        60,
        "commune C's rooms to show their hall and hear the province's chair",
    )
    print(f"MEASURED budget: C's rooms on their hall with the province's sound {seconds:.1f} s after the restart")
    province = lab.province.metrics()
    assert sample(province, "phonghop_program_picture_held", room="xa-c") == 1
    assert sample(province, "phonghop_program_picture_held", room="xa-a") is None, "no budget, nothing to hold"
    others = {room: agent for room, agent in rooms.items() if room not in commune.rooms}
    assert all(shows(agent, CHAIR) for agent in others.values()), "the other communes keep the chair's picture"

    def sent_to_c() -> dict[str, float]:
        samples = lab.province.metrics()
        return {
            kind: sample(samples, "phonghop_rtp_bytes_total", room="xa-c", direction="out", kind=kind) or 0.0
            for kind in ("video", "audio")
        }

    before = sent_to_c()
    time.sleep(3)  # a window in which no picture may go to C: nothing to wait for
    sent = {kind: total - before[kind] for kind, total in sent_to_c().items()}
    print(f"MEASURED budget: sent to C in 3 s: picture {sent['video']:.0f} B, sound {sent['audio']:.0f} B")
    assert sent["video"] == 0, "no picture goes to the commune over its budget"
    assert sent["audio"] > 0, "its sound does"
    with signed_in(lab.province, *VIEWER) as (client, _):
        rows = wait_for(
            lambda: (found := _communes(client))["xa-c"]["media"].startswith("Chỉ nhận tiếng") and found,
            20,
            "the province page to say commune C gets the sound only",
        )
    assert rows["xa-c"]["media"] == "Chỉ nhận tiếng (vượt giới hạn băng thông)"
    assert rows["xa-b"]["media"] == "Đang nhận"


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


def test_a_commune_just_enrolled_shows_with_no_report_yet(lab: Lab, monitoring: MonitoringStack) -> None:
    """Last: the newcomer stays offline, and the province alerts about it as it should."""
    newcomer = "xa-moi"
    lab.province.enroll(newcomer, "commune")
    with signed_in(lab.province, *VIEWER) as (client, _):
        rows = wait_for(lambda: newcomer in (found := _communes(client)) and found, 30, "the new commune's row")
    assert rows[newcomer]["link"] == "Mất kết nối"
    assert rows[newcomer]["online"] == "—"
    assert rows[newcomer]["reported"] == "Chưa nhận được số liệu"
