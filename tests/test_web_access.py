"""The web pages' gatekeeping and forms, over real HTTP against a running coordinator."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiortc import RTCPeerConnection

from tests.harness import Coordinator, wait_for
from tests.webtools import csrf_of, field_error, signed_in

OPERATOR = ("vanhanh", "mat-khau-van-hanh")
VIEWER = ("huyen", "mat-khau-chi-xem")
PAGES = [
    "/",
    "/?fragment=1",
    "/lich-hop",
    "/lich-hop/moi",
    "/lich-hop/1/sua",
    "/cuoc-hop/1",
    "/phong/ubnd",
    "/phong/ubnd/man-hinh.png",
]


@pytest.fixture
def site(coordinator: Coordinator) -> Coordinator:
    for name, group in (("ubnd", "hall"), ("tdp-01", "residential_group"), ("tdp-02", "residential_group")):
        coordinator.enroll(name, group)
    with ThreadPoolExecutor() as pool:  # each CLI run is mostly its imports
        users = ((OPERATOR[0], "operator", OPERATOR[1]), (VIEWER[0], "viewer", VIEWER[1]))
        added = list(pool.map(lambda user: coordinator.add_user(*user), users))
    for result in added:
        assert result.returncode == 0, result.stderr
    return coordinator


def _meetings(coordinator: Coordinator) -> list[dict[str, object]]:
    with coordinator.api() as api:
        return list(api.get("/api/v1/meetings").json())


def _form(csrf: str, **changes: object) -> dict[str, object]:
    day = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date() + timedelta(days=1)
    form: dict[str, object] = {
        "csrf_token": csrf,
        "title": "Giao ban tuần",
        "chair_room": "ubnd",
        "invited_groups": ["residential_group"],
        "date": day.isoformat(),
        "start_time": "07:30",
        "end_time": "09:00",
        "repeat": "weekly",
        "weekdays": ["MO"],
        "mode": "presentation",
    }
    form.update(changes)
    return form


def test_every_page_redirects_to_sign_in(site: Coordinator) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as client:
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/dang-nhap?next="), path
        page = client.get("/lich-hop", follow_redirects=True)
        assert "Đăng nhập" in page.text
        assert 'value="/lich-hop"' in page.text  # back to the page asked for after signing in
        for path in ("/lich-hop/moi", "/cuoc-hop/1/trao-loi", "/dang-xuat"):
            response = client.post(path, data={"csrf_token": "x"})
            assert response.status_code == 303
            assert response.headers["location"].startswith("/dang-nhap")
    assert _meetings(site) == []


def test_wrong_password_and_unknown_user_are_refused(site: Coordinator) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as client:
        for name, password in (("vanhanh", "sai-mat-khau"), ("khong-ai", "mat-khau-van-hanh")):
            token = csrf_of(client.get("/dang-nhap").text)
            response = client.post("/dang-nhap", data={"csrf_token": token, "name": name, "password": password})
            assert response.status_code == 401
            assert "Sai tên đăng nhập hoặc mật khẩu" in response.text
            assert client.get("/").status_code == 303


def test_sign_in_leads_back_and_never_off_site(site: Coordinator) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as client:
        token = csrf_of(client.get("/dang-nhap").text)
        data = {"csrf_token": token, "name": OPERATOR[0], "password": OPERATOR[1], "next": "//evil.example/"}
        response = client.post("/dang-nhap", data=data)
        assert response.headers["location"] == "/"


def test_post_without_a_valid_csrf_token_is_refused(site: Coordinator) -> None:
    with signed_in(site, *OPERATOR) as (client, csrf):
        for token in (None, "", "not-the-token", csrf[:-1]):
            data = _form(token) if token is not None else {k: v for k, v in _form(csrf).items() if k != "csrf_token"}
            response = client.post("/lich-hop/moi", data=data)
            assert response.status_code == 403
            assert "CSRF" in response.text
        assert _meetings(site) == []
        # A token from another session does not work either.
        with signed_in(site, *OPERATOR) as (_, other_csrf):
            pass
        assert client.post("/lich-hop/moi", data=_form(other_csrf)).status_code == 403
        assert client.post("/dang-xuat", data={}).status_code == 403
        # Signing in needs the token too (no login CSRF).
        with httpx.Client(base_url=site.url, timeout=10) as fresh:
            response = fresh.post("/dang-nhap", data={"name": OPERATOR[0], "password": OPERATOR[1]})
            assert response.status_code == 403
        # With the token the same form is saved.
        assert client.post("/lich-hop/moi", data=_form(csrf)).status_code == 303
        assert len(_meetings(site)) == 1


def test_viewer_reads_but_cannot_change_anything(site: Coordinator) -> None:
    meeting = site.schedule(["tdp-01"], start_in=0, seconds=600)
    with site.api() as api:
        wait_for(lambda: api.get(f"/api/v1/meetings/{meeting}").json()["running"], 10, "the meeting to start")
    with signed_in(site, *VIEWER) as (client, csrf):
        for path in ("/", "/lich-hop", f"/cuoc-hop/{meeting}", "/phong/tdp-01"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert "huyen" in page.text
            for action in ("/lich-hop/moi", "/sua", "/huy", "/trao-loi", "/tat-tieng", "/ket-thuc", "/tu-kiem-tra"):
                assert f'{action}"' not in page.text, (path, action)
        assert client.get("/lich-hop/moi").status_code == 403
        assert client.get(f"/lich-hop/{meeting}/sua").status_code == 403
        posts = {
            "/lich-hop/moi": _form(csrf),
            f"/lich-hop/{meeting}/sua": _form(csrf, title="Đổi tên"),
            f"/lich-hop/{meeting}/huy": {"csrf_token": csrf},
            f"/cuoc-hop/{meeting}/trao-loi": {"csrf_token": csrf, "room": "tdp-01"},
            f"/cuoc-hop/{meeting}/tat-tieng": {"csrf_token": csrf, "room": "tdp-01", "muted": "1"},
            f"/cuoc-hop/{meeting}/ket-thuc": {"csrf_token": csrf},
            "/phong/tdp-01/tu-kiem-tra": {"csrf_token": csrf},
        }
        for path, data in posts.items():
            response = client.post(path, data=data)
            assert response.status_code == 403, path
            assert "chỉ có quyền xem" in response.text
    meetings = _meetings(site)
    assert [m["title"] for m in meetings] == ["Giao ban tuần"]
    assert meetings[0]["running"] is not None
    with site.api() as api:
        assert api.get(f"/api/v1/meetings/{meeting}/floor").json()["floor"] is None


BAD_FORMS = [
    ({"end_time": "07:00"}, "end_time", "Giờ kết thúc phải sau giờ bắt đầu"),
    ({"invited_rooms": ["tdp-01", "khong-co"]}, "invited", "khong-co"),
    ({"invited_rooms": ["KHÔNG HỢP LỆ"]}, "invited", "KHÔNG HỢP LỆ"),
    ({"invited_groups": []}, "invited", "Mời ít nhất một phòng"),
    ({"chair_room": "phong-la"}, "chair_room", "Chọn phòng chủ trì"),
    ({"repeat": "custom", "rrule_text": "FREQ=SOMETIMES"}, "repeat", "Quy tắc lặp lại không dùng được"),
    ({"repeat": "custom", "rrule_text": "FREQ=DAILY;UNTIL=20000101T000000Z"}, "repeat", "không dùng được"),
    ({"repeat": "weekly", "weekdays": []}, "repeat", "chọn ít nhất một thứ"),
    ({"title": ""}, "title", "Nhập tên cuộc họp"),
    ({"date": "30/02/2026"}, "date", "Chọn ngày họp"),
]


def test_bad_meeting_forms_show_the_error_by_the_field_and_save_nothing(site: Coordinator) -> None:
    with signed_in(site, *OPERATOR) as (client, csrf):
        for changes, field, words in BAD_FORMS:
            response = client.post("/lich-hop/moi", data=_form(csrf, **changes))
            assert response.status_code == 422, changes
            message = field_error(response.text, field)
            assert message is not None, (changes, response.text)
            assert words in message, (changes, message)
            assert "Chưa lưu" in response.text
            title = str(changes.get("title", "Giao ban tuần"))
            assert f'value="{title}"' in response.text  # what was typed comes back
    assert _meetings(site) == []


def test_edit_and_cancel_a_recurring_meeting(site: Coordinator) -> None:
    with signed_in(site, *OPERATOR) as (client, csrf):
        assert client.post("/lich-hop/moi", data=_form(csrf, weekdays=["MO", "TH"])).status_code == 303
        (meeting,) = _meetings(site)
        assert meeting["rrule"] == "FREQ=WEEKLY;BYDAY=MO,TH"
        listing = client.get("/lich-hop").text
        assert "Thứ Hai, Thứ Năm hằng tuần lúc 07:30" in listing
        edit = client.get(f"/lich-hop/{meeting['id']}/sua").text
        assert 'value="TH" checked' in edit
        bad = client.post(f"/lich-hop/{meeting['id']}/sua", data=_form(csrf, end_time="06:00"))
        assert field_error(bad.text, "end_time") is not None
        assert _meetings(site)[0]["duration_seconds"] == 90 * 60
        good = client.post(f"/lich-hop/{meeting['id']}/sua", data=_form(csrf, end_time="08:00", weekdays=["FR"]))
        assert good.status_code == 303
        (changed,) = _meetings(site)
        assert (changed["rrule"], changed["duration_seconds"]) == ("FREQ=WEEKLY;BYDAY=FR", 30 * 60)
        assert client.post(f"/lich-hop/{meeting['id']}/huy", data={"csrf_token": csrf}).status_code == 303
        assert _meetings(site) == []
        assert "Đã hủy cuộc họp" in client.get("/lich-hop").text


def test_user_cli_checks_its_input(site: Coordinator) -> None:
    short = site.add_user("ngan", "operator", "1234")
    assert short.returncode == 1
    assert "ít nhất 8 ký tự" in short.stderr
    again = site.add_user(OPERATOR[0], "viewer", "mat-khau-moi-dai")
    assert again.returncode == 1
    assert "đã có" in again.stderr
    bad_name = site.add_user("Tên Có Dấu", "viewer", "mat-khau-dai-du")
    assert bad_name.returncode == 1
    # The stored hash is Argon2, never the password.
    with httpx.Client(base_url=site.url, timeout=10) as client:
        token = csrf_of(client.get("/dang-nhap").text)
        response = client.post("/dang-nhap", data={"csrf_token": token, "name": VIEWER[0], "password": VIEWER[1]})
        assert response.status_code == 303


async def _watching_offer() -> str:
    """What a browser's live view offers: the three slots, receive-only (made here by aiortc)."""
    pc = RTCPeerConnection()
    for kind in ("video", "audio", "audio"):
        pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


def test_the_live_view_answers_a_page_and_refuses_what_it_cannot_serve(site: Coordinator) -> None:
    meeting = site.schedule(["tdp-01"], start_in=0, seconds=600)
    with site.api() as api:
        wait_for(lambda: api.get(f"/api/v1/meetings/{meeting}").json()["running"], 10, "the meeting to start")
    offer = asyncio.run(_watching_offer())
    with signed_in(site, *VIEWER) as (client, csrf):
        watch = f"/cuoc-hop/{meeting}/xem-truc-tiep"
        assert client.post(watch, data={"sdp": offer}).status_code == 403  # no CSRF token
        not_running = client.post("/cuoc-hop/999/xem-truc-tiep", data={"csrf_token": csrf, "sdp": offer})
        assert (not_running.status_code, not_running.json()["message"]) == (409, "Cuộc họp này không diễn ra lúc này.")
        garbage = client.post(watch, data={"csrf_token": csrf, "sdp": "xin chào"})
        assert garbage.status_code == 422
        assert "không dùng được" in garbage.json()["message"]
        assert "v=0" in garbage.json()["message"]
        answer = client.post(watch, data={"csrf_token": csrf, "sdp": offer})
        assert answer.status_code == 200, answer.text
        sections = answer.json()["sdp"].split("m=")[1:]
        assert [s.split()[0] for s in sections] == ["video", "audio", "audio"]
        assert all("a=sendonly" in s for s in sections), "the page only receives"
        assert "VP8/90000" in sections[0]
        assert "H264" not in sections[0]
        # A page that reconnects in a loop is slowed down, and told how long to wait.
        answers = [client.post(watch, data={"csrf_token": csrf, "sdp": offer}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[-1].status_code == 429
        assert answers[-1].json()["retry_after"] > 0
        assert "hãy chờ" in answers[-1].json()["message"]
    with site.api() as api:
        metrics = api.get("/metrics").text
    assert "phonghop_live_viewers 1.0" in metrics
    assert 'room="xem:' not in metrics, "a page watching is not a room"
