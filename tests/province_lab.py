"""A province on one machine: its coordinator and chair room, and communes with their coordinators and rooms.

Every commune coordinator dials the province as a participant of group
``commune``; its rooms are ordinary simulated rooms that decode what they
receive, so a test reads back, from each room's local API, whose picture and
tones it gets. Room ids are unique across the province so that every test
code names one room.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from phonghop.testpattern import room_code, tone_hz
from tests.harness import Agent, Coordinator, free_port, sample, wait_for
from tests.netlab import Link

CHAIR = "tinh-ubnd"
SOURCE = "tinh"  # the province chair's name inside a commune
# Small pictures at a low rate: the codes read back the same and eight decoding rooms fit on two cores.
ROOM_MEDIA = "[media]\ndecode = true\n[test_source]\nwidth = 320\nheight = 180\nfps = 5\nbitrate = 100000\n"


PROVINCE_HEARTBEATS = {"PHONGHOP_HEARTBEAT_INTERVAL": "1", "PHONGHOP_MISSED_HEARTBEATS": "4"}
FIRST_LINK = 201  # netlab indexes of the communes' own links (the room link tests use small ones)


@dataclass
class Commune:
    id: str
    coordinator: Coordinator
    token_file: Path
    link: Link | None = None  # the commune's own uplink: its coordinator and rooms sit behind it
    rooms: dict[str, Agent] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> list[str]:
        """Put in front of a command to run it inside the commune (behind its link, if it has one)."""
        return self.link.prefix if self.link is not None else []

    @property
    def hall(self) -> str:
        return next(iter(self.rooms))


@dataclass
class Lab:
    province: Coordinator
    chair: Agent
    communes: dict[str, Commune]
    folder: Path

    def rooms(self) -> dict[str, Agent]:
        return {room: agent for c in self.communes.values() for room, agent in c.rooms.items()}

    def everyone(self) -> list[str]:
        return [CHAIR, *self.rooms()]

    def schedule(self, title: str = "Giao ban tỉnh", seconds: int = 1800) -> int:
        """A province meeting chaired by the province hall, for every commune, starting now."""
        with self.province.api() as api:
            response = api.post(
                "/api/v1/meetings",
                json={
                    "title": title,
                    "chair_room": CHAIR,
                    "invited_groups": ["commune"],
                    "start": datetime.now(UTC).isoformat(),
                    "duration_seconds": seconds,
                },
            )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def stop(self) -> None:
        for agent in [self.chair, *self.rooms().values()]:
            agent.stop()
        for commune in self.communes.values():
            commune.coordinator.stop()
        self.province.stop()
        for commune in self.communes.values():
            if commune.link is not None:
                commune.link.destroy()


def start_lab(
    folder: Path,
    communes: dict[str, list[tuple[str, str]]],
    room_media: str = ROOM_MEDIA,
    chair_media: str = ROOM_MEDIA,
    province_env: dict[str, str] | None = None,
    linked: tuple[str, ...] = (),
) -> Lab:
    """The province (with ``province_env`` settings) and its chair, then each commune
    (``id -> [(room, group)]``, hall first). The communes in ``linked`` sit behind a network link of
    their own (coordinator and rooms in its namespace, their ports reachable here through consoles)."""
    # Heartbeats a little slower than the other tests': a dozen busy processes on two cores.
    reachable = {"PHONGHOP_HOST": "0.0.0.0"} if linked else {}  # the linked communes dial across their link
    province = Coordinator(folder / "province", {**PROVINCE_HEARTBEATS, **reachable, **(province_env or {})}).start()
    chair = _agent(province, CHAIR, "hall", folder / "province-rooms", chair_media)
    lab = Lab(province, chair, {}, folder)
    for index, commune_id in enumerate(communes, start=FIRST_LINK):
        token_file = folder / commune_id / "province.token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(province.enroll(commune_id, "commune") + "\n")
        link = Link(index).create() if commune_id in linked else None
        coordinator = Coordinator(
            folder / commune_id / "coordinator",
            {
                "PHONGHOP_PROVINCE_URL": f"http://{link.host_address}:{province.port}" if link else province.url,
                "PHONGHOP_PROVINCE_TOKEN_FILE": str(token_file),
                "PHONGHOP_COMMUNE_ID": commune_id,
            },
            prefix=link.prefix if link else (),
        )
        if link is not None:
            link.expose(coordinator.port)
        lab.communes[commune_id] = Commune(commune_id, coordinator, token_file, link)
    with ThreadPoolExecutor() as pool:  # the coordinators start (migrations, imports) side by side
        list(pool.map(lambda c: c.coordinator.start(), lab.communes.values()))
    for commune_id, rooms in communes.items():
        commune = lab.communes[commune_id]
        for room, group in rooms:
            commune.rooms[room] = _agent(
                commune.coordinator, room, group, folder / commune_id / "rooms", room_media, commune.link
            )
            commune.groups[room] = group
    return lab


def everyone_up(lab: Lab) -> bool:
    """The chair, every commune's uplink and every room are connected and greeted."""
    up = lab.province.metrics()
    if not sample(up, "phonghop_room_up", room=CHAIR, group="hall"):
        return False
    for commune in lab.communes.values():
        if not sample(up, "phonghop_room_up", room=commune.id, group="commune"):
            return False
        local = commune.coordinator.metrics()
        if not all(sample(local, "phonghop_room_up", room=r, group=g) for r, g in commune.groups.items()):
            return False
    return all(_local_api_up(agent) for agent in [lab.chair, *lab.rooms().values()])


def _local_api_up(agent: Agent) -> bool:
    try:
        return httpx.get(f"{agent.local_api}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _agent(
    coordinator: Coordinator, room: str, group: str, folder: Path, media: str, link: Link | None = None
) -> Agent:
    token = coordinator.enroll(room, group)
    port = free_port()
    if link is not None:
        link.expose(port)
    prefix = link.prefix if link is not None else ()
    return Agent(coordinator, room, token, folder / room, media, local_api_port=port, prefix=prefix).start()


# --- what a room receives, read back from its local API ----------------------------------


def decoded(agent: Agent) -> dict[str, Any]:
    """What the simulated room decodes now: its program's test code and its two slots' tones."""
    return dict(agent.status().get("decoded") or {})


def shows(agent: Agent, room: str) -> bool:
    """The room's TV shows ``room``'s test picture now."""
    return decoded(agent).get("program") == room_code(room)


def hears(agent: Agent, chair: str | None, floor: str | None = None) -> bool:
    """The room plays ``chair``'s tone on its chair slot (and ``floor``'s on its floor slot, if given)."""
    heard = decoded(agent).get("audio") or [None, None]

    def is_tone(hz: float | None, room: str | None) -> bool:
        if room is None:
            return True
        return hz is not None and abs(hz - tone_hz(room)) < 25

    return is_tone(heard[0], chair) and (floor is None or is_tone(heard[1], floor))


def wait_rooms(agents: dict[str, Agent], ok: Callable[[Agent], bool], timeout: float, what: str) -> float:
    """Wait until ``ok`` holds for every room; returns the seconds it took, or fails naming who lags."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(agents)) as pool:  # every room at once: a poll takes the slowest, not the sum

        def everyone() -> bool:
            return all(pool.map(lambda agent: _safe(ok, agent), agents.values()))

        try:
            wait_for(everyone, timeout, what, interval=0.2)
        except AssertionError as exc:
            lagging = {room: _describe(agent) for room, agent in agents.items() if not _safe(ok, agent)}
            raise AssertionError(f"{exc}; lagging: {lagging}") from None
    return time.monotonic() - started


def _safe(ok: Callable[[Agent], bool], agent: Agent) -> bool:
    try:
        return ok(agent)
    except httpx.HTTPError:
        return False


def _describe(agent: Agent) -> str:
    try:
        got = decoded(agent)
    except httpx.HTTPError as exc:
        return f"local API: {exc}"
    return f"program code {got.get('program')}, tones {got.get('audio')}"
