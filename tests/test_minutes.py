"""The minutes of a meeting: two invited rooms absent, a hand raised, the floor given and taken back,
shown exactly so on the printable page and in the CSV, to signed-in users only."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import httpx

from tests.harness import Agent, Coordinator, free_port, sample, wait_for
from tests.webtools import signed_in

VIEWER = ("huyen", "mat-khau-chi-xem")


def test_minutes_tell_who_was_absent_and_who_had_the_floor(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    start_agent("ubnd", "hall")
    speaker = start_agent("tdp-01", local_api_port=free_port())
    for absent in ("tdp-02", "tdp-03"):
        coordinator.enroll(absent)
    assert coordinator.add_user(VIEWER[0], "viewer", VIEWER[1]).returncode == 0
    meeting = coordinator.schedule(["tdp-01", "tdp-02", "tdp-03"], start_in=0, seconds=600)
    for room in ("ubnd", "tdp-01"):
        wait_for(
            lambda room=room: (
                sample(coordinator.metrics(), "phonghop_room_in_meeting", room=room, meeting=str(meeting)) == 1.0
            ),
            30,
            f"{room} in the meeting",
        )
    with speaker.local() as local:
        assert local.post("/hand").status_code == 200
    with coordinator.api() as api:
        wait_for(lambda: "✋" in _console(coordinator, meeting), 10, "the hand on the console")
        assert api.put(f"/api/v1/meetings/{meeting}/floor", json={"room": "tdp-01"}).status_code == 200
        assert api.delete(f"/api/v1/meetings/{meeting}/floor").status_code == 200
        assert api.post(f"/api/v1/meetings/{meeting}/end").status_code == 200
        occurrence = api.get(f"/api/v1/meetings/{meeting}/occurrences").json()[0]["id"]

    path = f"/cuoc-hop/{meeting}/bien-ban/{occurrence}"
    with signed_in(coordinator, *VIEWER) as (client, _):
        assert path in client.get(f"/cuoc-hop/{meeting}").text  # the console links the minutes
        page = client.get(path).text
        table = _rows_of(client.get(f"{path}?csv=1"))
    assert "4 phòng được mời, 2 có mặt, 2 vắng" in page  # the chair is invited too
    absent = re.findall(r'<tr class="down" data-participant="([^"]+)">', page)
    assert sorted(absent) == ["tdp-02", "tdp-03"]
    happenings = re.findall(r"</time>: ([^<]+)</li>", page)
    assert happenings == ["tdp-01 xin phát biểu (giơ tay)", "Trao lời cho tdp-01", "Lấy lại lời về chủ trì"]
    assert sorted(row["ma"] for row in table if row["muc"] == "vang") == ["tdp-02", "tdp-03"]
    assert sorted(row["ma"] for row in table if row["muc"] == "co_mat") == ["tdp-01", "ubnd"]
    assert [row["ghi_chu"] for row in table if row["muc"] == "dien_bien"] == happenings
    with coordinator.api(token=None) as anonymous:
        assert anonymous.get(path).status_code == 303  # to the sign-in page


def _console(coordinator: Coordinator, meeting: int) -> str:
    with signed_in(coordinator, *VIEWER) as (client, _):
        return client.get(f"/cuoc-hop/{meeting}?fragment=1").text


def _rows_of(response: httpx.Response) -> list[dict[str, str]]:
    text = response.text
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
