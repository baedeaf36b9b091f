"""The province cascade with real processes: a province coordinator and its chair, commune coordinators
that dial it as participants, and their rooms, all with real aiortc peers.

One lab serves the whole file (starting eleven processes is most of its cost);
the tests run in order on one province meeting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
        15,
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
