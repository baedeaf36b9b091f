"""Bad input and abuse against a real coordinator process, each refused clearly and never a 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from coordinator.settings import Settings
from phonghop.webrtc import peer_connection
from tests.harness import Coordinator, sample
from tests.webtools import csrf_of


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    """One coordinator for the module: every test here leaves the schedule and rooms as it found them."""
    coordinator = Coordinator(tmp_path_factory.mktemp("hardening") / "coordinator").start()
    coordinator.enroll("ubnd", "hall")
    coordinator.enroll("tdp-01")
    yield coordinator
    coordinator.stop()


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


def _meeting(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "Giao ban tuần",
        "chair_room": "ubnd",
        "invited_rooms": ["tdp-01"],
        "start": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "duration_seconds": 3600,
    }
    body.update(overrides)
    return body


def test_a_runaway_recurrence_rule_is_refused_fast_and_health_answers_meanwhile(coord: Coordinator) -> None:
    answers: list[float] = []
    done = threading.Event()

    def poll_health() -> None:
        with httpx.Client(base_url=coord.url, timeout=10) as client:
            while not done.is_set():
                began = time.monotonic()
                assert client.get("/healthz").status_code == 200
                answers.append(time.monotonic() - began)
                time.sleep(0.05)

    poller = threading.Thread(target=poll_health)
    poller.start()
    try:
        with coord.api() as api:
            for rule in ("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"):
                began = time.monotonic()
                refused = api.post("/api/v1/meetings", json=_meeting(rrule=rule))
                assert time.monotonic() - began < 2, rule
                assert refused.status_code == 422, refused.text
                reason = str(_error(refused)["fields"])
                assert "quy tắc lặp lại" in reason or "tần suất" in reason, reason
            # A rare rule the calendar search must cut off (never within 5 years), in a thread.
            slow = api.post(
                "/api/v1/meetings", json=_meeting(rrule="FREQ=DAILY;INTERVAL=7;BYDAY=TU", start="2026-11-23T07:30:00")
            )
            assert slow.status_code == 422
            assert "never occurs" in str(_error(slow)["fields"])
            assert api.get("/api/v1/meetings").json() == []
    finally:
        done.set()
        poller.join()
    assert answers
    assert max(answers) < 1.0, f"/healthz waited {max(answers):.1f} s"


HUGE = "18446744073709551615"


def test_ids_beyond_the_database_integer_are_not_found(coord: Coordinator) -> None:
    with coord.api() as api:
        for method, path in (
            ("GET", f"/api/v1/meetings/{HUGE}"),
            ("PATCH", f"/api/v1/meetings/{HUGE}"),
            ("DELETE", f"/api/v1/meetings/{HUGE}"),
            ("POST", f"/api/v1/meetings/{HUGE}/start"),
            ("GET", f"/api/v1/meetings/{HUGE}/occurrences"),
            ("GET", f"/api/v1/meetings/{HUGE}/readiness"),
            ("GET", "/api/v1/meetings/2147483648"),
            ("GET", "/api/v1/meetings/-1"),
        ):
            response = api.request(method, path, json={"title": "x"} if method == "PATCH" else None)
            assert response.status_code == 404, (method, path, response.text)
            assert "no meeting with id" in str(_error(response)["message"])


def test_patch_refuses_explicit_nulls_and_long_rules(coord: Coordinator) -> None:
    with coord.api() as api:
        created = api.post("/api/v1/meetings", json=_meeting(rrule="FREQ=WEEKLY;BYDAY=MO"))
        assert created.status_code == 201, created.text
        meeting_id = created.json()["id"]
        try:
            for field in ("mode", "timezone", "title", "start", "chair_room", "duration_seconds", "invited_rooms"):
                response = api.patch(f"/api/v1/meetings/{meeting_id}", json={field: None})
                assert response.status_code == 422, (field, response.text)
                assert "cannot be null" in str(_error(response)["fields"]), field
            too_long = api.patch(f"/api/v1/meetings/{meeting_id}", json={"rrule": "FREQ=DAILY;" + "X" * 600})
            assert too_long.status_code == 422
            assert "rrule" in str(_error(too_long)["fields"])
            for start in ("0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59-07:00"):
                far = api.patch(f"/api/v1/meetings/{meeting_id}", json={"start": start})
                assert far.status_code == 422, far.text
            one_off = api.patch(f"/api/v1/meetings/{meeting_id}", json={"rrule": None})
            assert one_off.status_code == 200, one_off.text
            assert one_off.json()["rrule"] is None
        finally:
            api.delete(f"/api/v1/meetings/{meeting_id}")


async def _echo_offer() -> str:
    pc = peer_connection()
    pc.addTransceiver("video", direction="sendrecv")
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


def _open_files(coordinator: Coordinator) -> int:
    assert coordinator.proc is not None
    return len(os.listdir(f"/proc/{coordinator.proc.pid}/fd"))


async def test_self_test_echo_checks_the_offer_and_gives_each_room_one_loop(coord: Coordinator) -> None:
    token = coord.enroll("tdp-echo-1")
    other = coord.enroll("tdp-echo-2")
    files_before = _open_files(coord)
    with coord.api(token=token) as room:
        for sdp, fragment in (
            ("v=0\r\nm=audio x y z\r\n", "does not parse"),
            ("garbage", "not SDP"),
            ("v=0\r\n" + "a=x\r\n" * 700, "lines, over the limit"),
        ):
            refused = room.post("/api/v1/rooms/tdp-echo-1/selftest/echo", json={"sdp": sdp})
            assert refused.status_code == 422, refused.text
            assert _error(refused)["code"] == "bad_offer"
            assert fragment in str(_error(refused)["message"])
        assert _open_files(coord) <= files_before + 1, "a refused offer leaves no peer open"
        offer = await _echo_offer()
        answers = [room.post("/api/v1/rooms/tdp-echo-1/selftest/echo", json={"sdp": offer}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429], [a.text for a in answers]
    assert "try again" in str(_error(answers[-1])["message"])
    with coord.api(token=other) as second:
        assert second.post("/api/v1/rooms/tdp-echo-2/selftest/echo", json={"sdp": offer}).status_code == 200
    log = coord.log.read_text()
    assert log.count("room tdp-echo-1: self-test media loop closed") >= 2, "each new self-test replaced the last"


def _rss_mb(coordinator: Coordinator) -> float:
    assert coordinator.proc is not None
    status = Path(f"/proc/{coordinator.proc.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def test_bodies_are_limited_and_the_credential_comes_first(coord: Coordinator) -> None:
    rss_before = _rss_mb(coord)
    big = b'{"title": "' + b"x" * 20_000_000 + b'"}'
    with coord.api(token=None) as anonymous:
        declared = anonymous.post("/api/v1/meetings", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413
        assert "over the limit" in str(_error(declared)["message"])
        unsigned = anonymous.post("/api/v1/meetings", json=_meeting())
        assert unsigned.status_code == 401
        assert "Authorization: Bearer" in str(_error(unsigned)["message"])

    def chunks() -> Iterator[bytes]:
        yield b'{"title": "'
        for _ in range(200):
            yield b"x" * 100_000

    with coord.api() as api:
        streamed = api.post("/api/v1/meetings", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413, streamed.text
        assert api.get("/api/v1/meetings").json() == []
    with httpx.Client(base_url=coord.url, timeout=30) as browser:
        page = browser.get("/dang-nhap")
        csrf = csrf_of(page.text)
        upload = browser.post(
            "/dang-nhap",
            data={"csrf_token": csrf, "name": "x", "password": "y"},
            files={"attachment": ("big.bin", b"\0" * 30_000, "application/octet-stream")},
        )
        assert upload.status_code == 400
        assert "không nhận tệp đính kèm" in upload.text
        huge_form = browser.post(
            "/dang-nhap",
            content=b"a=" + b"x" * 5_000_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert huge_form.status_code == 413
    assert _rss_mb(coord) < rss_before + 30, "nothing big was read into memory"


def test_pages_and_api_send_the_protective_headers(coord: Coordinator) -> None:
    with httpx.Client(base_url=coord.url, timeout=10) as client:
        page = client.get("/dang-nhap")
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["x-frame-options"] == "DENY"
        assert "onsubmit=" not in page.text
        api = client.get("/healthz")
        assert api.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in api.headers


def _sign_in(client: httpx.Client, name: str, password: str, **headers: str) -> httpx.Response:
    csrf = csrf_of(client.get("/dang-nhap").text)
    data = {"csrf_token": csrf, "name": name, "password": password, "next": "/"}
    return client.post("/dang-nhap", data=data, headers=headers)


def test_sign_in_failures_are_throttled_per_user_and_per_address(coord: Coordinator) -> None:
    assert coord.add_user("thu-ky", "viewer", "dung-mat-khau").returncode == 0
    # As nginx forwards it: the address is the client's, not the proxy's (the other tests sign in from 127.0.0.1).
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    with httpx.Client(base_url=coord.url, timeout=30, headers=forwarded) as client:
        statuses = [_sign_in(client, "thu-ky", f"sai-{n}").status_code for n in range(6)]
        assert statuses == [401] * 5 + [429], statuses
        throttled = _sign_in(client, "thu-ky", "dung-mat-khau")
        assert throttled.status_code == 429, "the right password waits too: guessing must not pay"
        assert "Hãy chờ" in throttled.text
        assert "giây" in throttled.text
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        # Other names from this address: ten failures in all, then the address waits.
        others = [_sign_in(client, f"khach-{n}", "sai-mat-khau").status_code for n in range(6)]
        assert others[:5] == [401] * 5
        assert others[5] == 429
        assert "Hãy chờ" in _sign_in(client, "khach-moi", "sai").text


def test_the_session_cookie_is_secure_over_https_behind_a_proxy(coord: Coordinator) -> None:
    assert coord.add_user("bi-thu", "viewer", "mat-khau-bi-thu").returncode == 0
    with httpx.Client(base_url=coord.url, timeout=30) as plain:
        cookie = _sign_in(plain, "bi-thu", "mat-khau-bi-thu").headers["set-cookie"]
        assert "secure" not in cookie.lower(), "plain HTTP on loopback: a lab, the cookie could not come back"
    with httpx.Client(base_url=coord.url, timeout=30, headers={"X-Forwarded-Proto": "https"}) as proxied:
        cookie = _sign_in(proxied, "bi-thu", "mat-khau-bi-thu").headers["set-cookie"]
    assert "phonghop_phien=" in cookie
    assert "; secure" in cookie.lower()
    assert "httponly" in cookie.lower()


def test_sign_out_and_a_new_password_end_old_sessions(coord: Coordinator) -> None:
    assert coord.add_user("chu-tich", "operator", "mat-khau-cu-1").returncode == 0
    with httpx.Client(base_url=coord.url, timeout=30) as first, httpx.Client(base_url=coord.url, timeout=30) as second:
        assert _sign_in(first, "chu-tich", "mat-khau-cu-1").status_code == 303
        assert _sign_in(second, "chu-tich", "mat-khau-cu-1").status_code == 303
        saved = dict(first.cookies)
        assert first.get("/").status_code == 200
        signed_out = first.post("/dang-xuat", data={"csrf_token": csrf_of(first.get("/").text)})
        assert signed_out.status_code == 303
        with httpx.Client(base_url=coord.url, timeout=30, cookies=saved) as replay:
            assert replay.get("/").status_code == 303, "a cookie saved before sign-out opens nothing"
        assert second.get("/").status_code == 303, "signing out ends the user's other sessions too"

        assert _sign_in(second, "chu-tich", "mat-khau-cu-1").status_code == 303
        assert second.get("/").status_code == 200
        changed = subprocess.run(
            [sys.executable, "-m", "coordinator", "user", "add", "chu-tich", "--role", "operator", "--replace"],
            input="mat-khau-moi-2\n",
            capture_output=True,
            text=True,
            env=coord.env,
            timeout=60,
        )
        assert changed.returncode == 0, changed.stderr
        assert second.get("/").status_code == 303, "a new password ends the sessions signed in with the old one"

        assert _sign_in(second, "chu-tich", "mat-khau-moi-2").status_code == 303
        removed = subprocess.run(
            [sys.executable, "-m", "coordinator", "user", "remove", "chu-tich"],
            capture_output=True,
            text=True,
            env=coord.env,
            timeout=60,
        )
        assert removed.returncode == 0, removed.stderr
        assert coord.add_user("chu-tich", "operator", "mat-khau-moi-2").returncode == 0
        assert second.get("/").status_code == 303, "a user removed and made again gets none of the old sessions"


async def test_a_room_flooding_its_control_channel_is_cut_off_and_counted(coord: Coordinator) -> None:
    token = coord.enroll("tdp-flood")
    hello = json.dumps({"type": "hello", "version": "test", "devices": {"camera": True}})
    url = coord.ws_url("tdp-flood")

    async def flood() -> None:
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            for _ in range(2000):
                await ws.send(hello)
            while True:
                await asyncio.wait_for(ws.recv(), 10)

    with pytest.raises(ConnectionClosed) as closed:
        await flood()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert "rate limit" in closed.value.rcvd.reason
    assert sample(coord.metrics(), "phonghop_control_errors_total", room="tdp-flood", reason="rate_limited") == 1
    processed = coord.log.read_text().count("room tdp-flood: hello from agent")
    assert processed <= 100, f"{processed} hellos processed: the flood went on"
    # Within the limit the room connects again at once. The bucket is the room's, not the connection's:
    # a reconnect finds it refilled at the configured rate (an agent waits longer than this before it
    # dials again), so the test waits two messages' worth of it first.
    await asyncio.sleep(2 / Settings().control_messages_per_second)
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(hello)
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] in ("welcome", "command")


def test_reads_need_a_credential_and_the_calendar_has_its_own_secret_url(coord: Coordinator) -> None:
    reads = [
        "/api/v1/rooms",
        "/api/v1/rooms/ubnd",
        "/api/v1/meetings",
        "/api/v1/meetings/1",
        "/api/v1/meetings/1/occurrences",
        "/api/v1/meetings/1/floor",
        "/api/v1/meetings/calendar.ics",
        "/openapi.json",
    ]
    with coord.api(token=None) as anonymous:
        for path in reads:
            refused = anonymous.get(path)
            assert refused.status_code == 401, (path, refused.text)
            assert "Authorization: Bearer" in str(_error(refused)["message"]), path
        docs = anonymous.get("/docs")
        assert docs.status_code == 303
        assert docs.headers["location"].startswith("/dang-nhap")
        assert anonymous.get("/metrics").status_code == 200, "Prometheus scrapes without a token (nginx limits who)"
    read_token = (coord.data_dir / "read.token").read_text().strip()
    with coord.api(token=read_token) as staff:
        assert [r["id"] for r in staff.get("/api/v1/rooms").json()][:2] == ["ubnd", "tdp-01"]
        assert staff.get("/api/v1/meetings").status_code == 200
        assert staff.get("/openapi.json").status_code == 200
        assert staff.get("/docs").status_code == 200
        changed = staff.post("/api/v1/meetings", json=_meeting())
        assert changed.status_code == 403, "the read-only token changes nothing"
        assert staff.get("/api/v1/calendar").status_code == 403, "only the operator sees the feed's secret URL"
    with coord.api() as api:
        feed = api.get("/api/v1/calendar").json()["path"]
    with coord.api(token=None) as calendar_app:
        subscribed = calendar_app.get(feed)
        assert subscribed.status_code == 200
        assert subscribed.headers["content-type"].startswith("text/calendar")
        assert calendar_app.get("/api/v1/calendar/guessed-secret.ics").status_code == 404
    with coord.api() as api:
        rotated = api.post("/api/v1/calendar/rotate").json()["path"]
    assert rotated != feed
    with coord.api(token=None) as calendar_app:
        assert calendar_app.get(feed).status_code == 404, "the old address stops at once"
        assert calendar_app.get(rotated).status_code == 200


def test_web_routes_with_ids_beyond_the_database_integer_are_not_found(coord: Coordinator) -> None:
    assert coord.add_user("van-thu", "operator", "mat-khau-van-thu").returncode == 0
    with httpx.Client(base_url=coord.url, timeout=30, headers={"X-Forwarded-For": "198.51.100.9"}) as client:
        assert _sign_in(client, "van-thu", "mat-khau-van-thu").status_code == 303
        csrf = csrf_of(client.get("/").text)
        for path in (f"/cuoc-hop/{HUGE}", f"/lich-hop/{HUGE}/sua", f"/cuoc-hop/{HUGE}?fragment=1"):
            page = client.get(path)
            assert page.status_code == 404, (path, page.status_code)
            assert "Không có cuộc họp số" in page.text
        for path in (f"/lich-hop/{HUGE}/huy", f"/cuoc-hop/{HUGE}/bat-dau", f"/lich-hop/{HUGE}/sua"):
            posted = client.post(path, data={"csrf_token": csrf})
            assert posted.status_code in (404, 409), (path, posted.status_code)
