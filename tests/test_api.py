"""The REST API of a real coordinator process: rooms, meetings, floor, errors."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from icalendar import Calendar
from sqlalchemy import create_engine, text

from coordinator.database import sync_url
from tests.harness import BOTH_DATABASES, Coordinator
from tests.webtools import png_of

pytestmark = BOTH_DATABASES


def _error(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"], body
    return dict(body["error"])


def _meeting(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "Giao ban tuần",
        "chair_room": "ubnd",
        "invited_groups": ["residential_group"],
        "start": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "duration_seconds": 3600,
    }
    body.update(overrides)
    return body


def test_enroll_shows_the_token_once_and_stores_only_its_hash(coordinator: Coordinator) -> None:
    token = coordinator.enroll("tdp-01", name="Tổ dân phố 1")
    with coordinator.api() as api:
        listed = api.get("/api/v1/rooms").json()
        one = api.get("/api/v1/rooms/tdp-01").json()
    assert [r["id"] for r in listed] == ["tdp-01"]
    assert one["name"] == "Tổ dân phố 1"
    assert one["up"] is False
    assert "token" not in one
    assert "token_hash" not in one
    engine = create_engine(sync_url(coordinator.database_url))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM rooms")).mappings().all()
    engine.dispose()
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in rows[0].values())


def test_token_reissue_and_removal(coordinator: Coordinator) -> None:
    first = coordinator.enroll("tdp-02")
    with coordinator.api() as api:
        again = api.post("/api/v1/rooms", json={"id": "tdp-02", "name": "x", "group": "school"})
        assert again.status_code == 409
        assert "/api/v1/rooms/tdp-02/token" in _error(again)["message"]
        second = api.post("/api/v1/rooms/tdp-02/token").json()["token"]
        assert second != first
        renamed = api.patch("/api/v1/rooms/tdp-02", json={"name": "Tổ dân phố 2"}).json()
        assert renamed["name"] == "Tổ dân phố 2"
        assert api.delete("/api/v1/rooms/tdp-02").status_code == 204
        missing = api.get("/api/v1/rooms/tdp-02")
        assert missing.status_code == 404
        assert "not enrolled" in _error(missing)["message"]


def test_state_changes_need_the_operator(coordinator: Coordinator) -> None:
    body = {"id": "tdp-03", "name": "x", "group": "school"}
    with coordinator.api(token=None) as anonymous:
        refused = anonymous.post("/api/v1/rooms", json=body)
    assert refused.status_code == 401
    assert "Authorization: Bearer" in _error(refused)["message"]
    with coordinator.api(token="not-the-operator-token") as wrong:
        assert wrong.post("/api/v1/rooms", json=body).status_code == 403
        assert wrong.post("/api/v1/meetings", json=_meeting()).status_code == 403
    room_token = coordinator.enroll("tdp-04")
    with coordinator.api(token=room_token) as room:
        assert room.delete("/api/v1/rooms/tdp-04").status_code == 403
    with coordinator.api() as api:
        assert [r["id"] for r in api.get("/api/v1/rooms").json()] == ["tdp-04"]


def test_malformed_bodies_are_explained(coordinator: Coordinator) -> None:
    with coordinator.api() as api:
        broken = api.post("/api/v1/rooms", content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 422
        assert "not valid JSON" in _error(broken)["fields"]["body"]
        bad_id = api.post("/api/v1/rooms", json={"id": "Tổ 1", "name": "x", "group": "residential_group"})
        assert "id" in _error(bad_id)["fields"]
        bad_group = api.post("/api/v1/rooms", json={"id": "tdp-05", "name": "x", "group": "market"})
        assert "group" in _error(bad_group)["fields"]
        extra = api.post("/api/v1/rooms", json={"id": "tdp-05", "name": "x", "group": "school", "admin": True})
        assert "admin" in _error(extra)["fields"]
        unknown = api.get("/api/v1/nothing-here")
        assert unknown.status_code == 404
        assert "/docs" in _error(unknown)["message"]
        assert api.get("/api/v1/rooms").json() == []


def test_meeting_lifecycle_and_calendar(coordinator: Coordinator) -> None:
    coordinator.enroll("ubnd", "hall")
    coordinator.enroll("tdp-01")
    with coordinator.api() as api:
        created = api.post(
            "/api/v1/meetings",
            json=_meeting(start="2026-11-30T07:30:00", rrule="FREQ=WEEKLY;BYDAY=MO"),
        )
        assert created.status_code == 201, created.text
        meeting = created.json()
        # A start without an offset is read in Asia/Ho_Chi_Minh (UTC+7).
        assert meeting["start"].startswith("2026-11-30T00:30:00")
        assert meeting["expected_rooms"] == ["tdp-01", "ubnd"]
        assert meeting["next_start"] is not None
        patched = api.patch(f"/api/v1/meetings/{meeting['id']}", json={"title": "Giao ban sáng thứ Hai"})
        assert patched.json()["title"] == "Giao ban sáng thứ Hai"

        feed = api.get("/api/v1/meetings/calendar.ics")
        assert feed.headers["content-type"].startswith("text/calendar")
        events = [c for c in Calendar.from_ical(feed.content).walk("VEVENT")]
        assert [str(e["summary"]) for e in events] == ["Giao ban sáng thứ Hai"]
        assert events[0]["rrule"]["FREQ"] == ["WEEKLY"]
        assert events[0]["dtstart"].dt.hour == 7

        assert api.delete(f"/api/v1/meetings/{meeting['id']}").status_code == 204
        assert api.get(f"/api/v1/meetings/{meeting['id']}").status_code == 404
        assert api.get("/api/v1/meetings").json() == []


def test_bad_meetings_are_rejected_and_nothing_is_saved(coordinator: Coordinator) -> None:
    coordinator.enroll("ubnd", "hall")
    with coordinator.api() as api:
        cases = {
            "rrule": _meeting(rrule="FREQ=FORTNIGHTLY"),
            "invited_rooms": _meeting(invited_rooms=["tdp-99"]),
            "chair_room": _meeting(chair_room="tdp-42"),
            "duration_seconds": _meeting(duration_seconds=0),
            "timezone": _meeting(timezone="Mars/Olympus"),
            "start": _meeting(start="next monday"),
        }
        for field, body in cases.items():
            response = api.post("/api/v1/meetings", json=body)
            assert response.status_code == 422, (field, response.text)
            assert field in _error(response)["fields"], (field, response.json())
        nobody = api.post("/api/v1/meetings", json=_meeting(invited_groups=[]))
        assert nobody.status_code == 422
        assert "invite at least one" in _error(nobody)["message"]
        assert api.get("/api/v1/meetings").json() == []


def test_start_end_now_and_floor(coordinator: Coordinator) -> None:
    coordinator.enroll("ubnd", "hall")
    coordinator.enroll("tdp-01")
    coordinator.enroll("th-phong-son", "school")
    with coordinator.api() as api:
        meeting_id = api.post("/api/v1/meetings", json=_meeting()).json()["id"]
        assert api.put(f"/api/v1/meetings/{meeting_id}/floor", json={"room": "tdp-01"}).status_code == 409
        started = api.post(f"/api/v1/meetings/{meeting_id}/start").json()
        assert started["running"]["missing"] == ["tdp-01", "ubnd"]
        assert api.post(f"/api/v1/meetings/{meeting_id}/start").status_code == 409
        given = api.put(f"/api/v1/meetings/{meeting_id}/floor", json={"room": "tdp-01"})
        assert given.json() == {"meeting": meeting_id, "floor": "tdp-01", "hands": [], "speaker": None}
        outsider = api.put(f"/api/v1/meetings/{meeting_id}/floor", json={"room": "th-phong-son"})
        assert outsider.status_code == 422
        assert "not invited" in _error(outsider)["message"]
        assert api.get(f"/api/v1/meetings/{meeting_id}/floor").json()["floor"] == "tdp-01"
        assert api.delete(f"/api/v1/meetings/{meeting_id}/floor").json()["floor"] is None
        ended = api.post(f"/api/v1/meetings/{meeting_id}/end").json()
        assert ended["running"] is None
        history = api.get(f"/api/v1/meetings/{meeting_id}/occurrences").json()
        assert len(history) == 1
        assert history[0]["ended_at"] is not None
        assert api.post("/api/v1/meetings/999/start").status_code == 404


def test_health_and_openapi(coordinator: Coordinator) -> None:
    with coordinator.api(token=None) as api:
        assert api.get("/healthz").json() == {"status": "ok"}
        assert api.get("/readyz").json()["status"] == "ready"
        assert api.get("/openapi.json").status_code == 401
    with coordinator.api() as api:
        paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/v1/rooms", "/api/v1/meetings", "/api/v1/meetings/{meeting_id}/floor"} <= set(paths)


def test_a_room_uploads_its_tv_picture_and_only_its_own(coordinator: Coordinator) -> None:
    token_a = coordinator.enroll("tdp-04")
    coordinator.enroll("tdp-05")
    png = png_of(64, 36)
    with coordinator.api(token=token_a) as room:
        assert room.put("/api/v1/rooms/tdp-04/screen", content=png).status_code == 204
        other = room.put("/api/v1/rooms/tdp-05/screen", content=png)
        assert other.status_code == 403
        assert "can only act as itself" in _error(other)["message"]
        garbage = room.put("/api/v1/rooms/tdp-04/screen", content=b"<html>")
        assert garbage.status_code == 422
        assert "PNG" in _error(garbage)["message"]
        too_big = room.put("/api/v1/rooms/tdp-04/screen", content=png + b"\x00" * 1_000_000)
        assert too_big.status_code == 413
        # 175 KB that would decode to 2.7 GB in every operator's browser.
        huge = room.put("/api/v1/rooms/tdp-04/screen", content=png_of(30000, 30000))
        assert huge.status_code == 422
        assert "30000x30000" in _error(huge)["message"]
        headless = room.put("/api/v1/rooms/tdp-04/screen", content=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        assert headless.status_code == 422
        assert "IHDR" in _error(headless)["message"]
    with coordinator.api(token=None) as anonymous:
        assert anonymous.put("/api/v1/rooms/tdp-04/screen", content=png).status_code == 401
        assert anonymous.get("/api/v1/rooms/tdp-04/screen").status_code == 401
    with coordinator.api() as operator:
        shown = operator.get("/api/v1/rooms/tdp-04/screen")
        assert shown.status_code == 200
        assert shown.headers["content-type"] == "image/png"
        assert shown.headers["x-content-type-options"] == "nosniff"
        assert shown.content == png, "the last good picture survives the rejected uploads"
        assert operator.get("/api/v1/rooms/tdp-05/screen").status_code == 404
