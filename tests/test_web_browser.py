"""The operator pages in a real headless Chromium (Debian's package, driven by Playwright).

A coordinator and simulated rooms run as real processes; the browser signs in,
schedules a meeting a few seconds ahead, watches the rooms join on the
overview, gives the floor to a room and sees the console and the program
follow, then signs out. Screenshots go to artifacts/ (desktop and phone).
"""

from __future__ import annotations

import re
import shutil
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from phonghop.testpattern import draw_frame, room_code, tone_hz
from tests.browserlab import CHROMIUM, CHROMIUM_ARGS, KEEP_PEERS_JS, room_in_video, tone_in_video_is
from tests.harness import ROOT, Agent, Coordinator, free_port, sample, wait_for

ARTIFACTS = ROOT / "artifacts" / "web"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 360, "height": 740}
ROOMS = {"ubnd": "hall", "tdp-01": "residential_group", "tdp-02": "residential_group", "th-phong-son": "school"}
AUDIENCE = {"tdp-02", "th-phong-son"}  # rooms whose program slot the console shows following the floor
TV_ROOM = "tdp-02"  # composes its TV picture on a dummy display and uploads it, as a real room does
TV = (
    "[display]\nenabled = true\nfullscreen = false\nwidth = 640\nheight = 360\nupload_seconds = 1\n"
    "thumbnail_width = 320\n"
)
SOURCE_FPS = 10
SMALL_SOURCE = f"[test_source]\nwidth = 320\nheight = 180\nfps = {SOURCE_FPS}\nbitrate = 150000\n"
PASSWORD = "mat-khau-thu-nghiem"
GUEST_SOURCE = "khach-thu-nghiem"  # whose test code and tone the guest's fake camera and microphone carry
WAIT_MS = 60_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is missing (./dev test)")


@dataclass
class Commune:
    coordinator: Coordinator
    agents: dict[str, Agent]


@pytest.fixture
def commune(tmp_path: Path) -> Iterator[Commune]:
    coordinator = Coordinator(tmp_path / "coordinator").start()
    agents: dict[str, Agent] = {}
    try:
        for room, group in ROOMS.items():
            token = coordinator.enroll(room, group, name=f"Phòng {room}")
            extra = SMALL_SOURCE
            env = {}
            if room == TV_ROOM:
                extra += TV
                env["SDL_VIDEODRIVER"] = "dummy"
            port = free_port() if room == TV_ROOM else 0  # the test reads what this room decodes
            agents[room] = Agent(coordinator, room, token, tmp_path / "rooms" / room, extra, port, env).start()
        for name, role in (("vanhanh", "operator"), ("huyen", "viewer")):
            result = coordinator.add_user(name, role, PASSWORD)
            assert result.returncode == 0, result.stderr
        yield Commune(coordinator, agents)
    finally:
        for agent in agents.values():
            agent.stop()
        coordinator.stop()


def _camera_and_microphone(folder: Path) -> list[str]:
    """Chromium's fake camera and microphone play the guest's test code and tone (a guest's page asks for them)."""
    video, audio = folder / "camera.y4m", folder / "micro.wav"
    with av.open(str(video), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=15)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for index in range(30):
            picture = draw_frame(room_code(GUEST_SOURCE), index, 640, 360)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="yuv420p")))
        out.mux(stream.encode())
    rate = 48000
    samples = np.sin(2 * np.pi * tone_hz(GUEST_SOURCE) * np.arange(2 * rate) / rate)
    with wave.open(str(audio), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(rate)
        sound.writeframes((samples * 12000).astype("<i2").tobytes())
    return [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",  # the guest's "allow" to camera and microphone
        f"--use-file-for-fake-video-capture={video}",
        f"--use-file-for-fake-audio-capture={audio}",
    ]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        args = CHROMIUM_ARGS + _camera_and_microphone(tmp_path)
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield chromium
        chromium.close()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _sign_in(page: Page, base: str, name: str = "vanhanh") -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/dang-nhap\?next=/$"))
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Đăng nhập')")
    expect(page.locator("h1")).to_have_text("Tổng quan các phòng họp")


def _start_and_end_in_a_few_seconds() -> tuple[datetime, datetime]:
    """A start 25 s from now and an end up to half an hour later on the same day (the form's meetings
    never cross midnight); in the day's last five minutes this waits for the next day."""
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    start = datetime.now(zone).replace(microsecond=0) + timedelta(seconds=25)
    last_second = datetime.combine(start.date(), datetime.max.time(), zone).replace(microsecond=0)
    if last_second - start < timedelta(minutes=5):
        time.sleep((last_second - start).total_seconds() + 1)
        return _start_and_end_in_a_few_seconds()
    return start, min(start + timedelta(minutes=30), last_second)


def test_operator_runs_a_meeting_from_the_browser(commune: Commune, browser: Browser) -> None:
    coordinator = commune.coordinator
    base = coordinator.url
    page = browser.new_page(viewport=DESKTOP, locale="vi-VN")
    page.set_default_timeout(WAIT_MS)

    page.goto(f"{base}/lich-hop")
    expect(page).to_have_url(re.compile(r"/dang-nhap\?next=/lich-hop$"))
    _shot(page, "desktop-dang-nhap")
    _sign_in(page, base)
    for room in ROOMS:
        expect(page.locator(f"#room-{room} .state")).to_have_text("Trực tuyến")

    # A meeting that starts in a few seconds, made with the form; first with an end before the start
    # (midnight: no start on that day is earlier).
    start, end = _start_and_end_in_a_few_seconds()
    page.click("text=Lịch họp")
    page.click("text=+ Tạo cuộc họp")
    page.fill("#title", "Giao ban thử nghiệm")
    page.fill("#date", start.date().isoformat())
    page.fill("#start_time", start.strftime("%H:%M:%S"))
    page.fill("#end_time", "00:00:00")
    page.check("input[name=invited_groups][value=residential_group]")
    page.check("input[name=invited_groups][value=school]")
    page.click("button:has-text('Lưu')")
    expect(page.locator("#error-end_time")).to_contain_text("Giờ kết thúc phải sau giờ bắt đầu")
    _shot(page, "desktop-loi-bieu-mau")
    with coordinator.api() as api:
        assert api.get("/api/v1/meetings").json() == []
    page.fill("#end_time", end.strftime("%H:%M:%S"))
    page.click("button:has-text('Lưu')")
    expect(page.locator(".flash")).to_contain_text("Đã lưu cuộc họp")
    with coordinator.api() as api:
        (meeting,) = api.get("/api/v1/meetings").json()
    assert sorted(meeting["expected_rooms"]) == sorted(ROOMS)

    # The overview follows the rooms into the meeting without a reload.
    page.click("text=Tổng quan")
    page.evaluate("window.__sameDocument = true")
    for room in ROOMS:
        expect(page.locator(f"#room-{room} .meeting")).to_contain_text("Đang họp", timeout=90_000)
    assert page.evaluate("window.__sameDocument === true")
    expect(page.locator("#room-tdp-02 .meeting")).to_contain_text("nhận hình ubnd")
    _shot(page, "desktop-tong-quan")

    # The console: everyone in; give the floor to tdp-01 and the program follows.
    page.click("a.running")
    expect(page.locator("#attendance")).to_contain_text("4/4 đã vào")
    expect(page.locator("#on-program")).to_contain_text("ubnd")
    # The live view: the page itself receives what the audience gets, the chair's picture and tone.
    clicked = time.monotonic()
    page.click("#live-view .live-start")
    expect(page.locator("#live-state")).to_have_text("Đang xem trực tiếp.")
    wait_for(lambda: room_in_video(page, ROOMS) == "ubnd", 30, "the chair's test code in the live view")
    print(f"MEASURED live view: the chair's code read in the page {time.monotonic() - clicked:.2f} s after the click")
    # Chromium decodes the forwarded program at the chair's full frame rate.
    frames, started = page.evaluate(LIVE_FRAMES_JS), time.monotonic()
    time.sleep(4)
    rate = (page.evaluate(LIVE_FRAMES_JS) - frames) / (time.monotonic() - started)
    print(f"MEASURED live view: {rate:.1f} frames/s decoded (the chair sends {SOURCE_FPS})")
    assert rate >= 0.9 * SOURCE_FPS
    wait_for(lambda: tone_in_video_is(page, "ubnd"), 30, "the chair's tone in the live view")
    page.click("#live-view .live-sound")
    expect(page.locator("#live-view .live-sound")).to_have_text("Tắt tiếng")
    assert page.evaluate("document.querySelector('#live-video').muted") is False
    page.locator("#c-tdp-01 button:has-text('Trao lời')").click()
    expect(page.locator(".flash")).to_contain_text("Đã trao lời cho phòng tdp-01")
    expect(page.locator("#c-tdp-01 .floor")).to_be_visible()
    expect(page.locator("#on-program")).to_contain_text("tdp-01")
    # What the router sends the rooms follows too.
    for room in AUDIENCE:
        expect(page.locator(f"#c-{room} .receives")).to_have_attribute("data-room", "tdp-01", timeout=30_000)
    # The TV picture tdp-02's agent uploads reaches the console without a reload.
    picture = page.locator("#program-picture")
    expect(picture).to_have_attribute("src", re.compile(r"^/phong/tdp-02/man-hinh\.png\?v="))
    page.wait_for_function("document.querySelector('#program-picture').naturalWidth === 320")
    expect(page.locator("#program-caption")).to_contain_text("Phòng tdp-02")
    # The live view follows the floor; it came back by itself after the form's reload, sound on as left.
    expect(page.locator("#live-state")).to_have_text("Đang xem trực tiếp.")
    assert page.evaluate("document.querySelector('#live-video').muted") is False
    wait_for(lambda: room_in_video(page, ROOMS) == "tdp-01", 30, "the floor holder's test code in the live view")
    with coordinator.api() as api:
        assert "phonghop_live_viewers 1.0" in api.get("/metrics").text

    # Mute the floor holder, then take the floor back.
    page.locator("#c-tdp-01 button:has-text('Tắt tiếng')").click()
    expect(page.locator("#c-tdp-01 .muted-badge")).to_be_visible()
    wait_for(lambda: room_in_video(page, ROOMS) == "tdp-01", 30, "the live view back after the reload")
    _shot(page, "desktop-dieu-hanh")
    page.click("button:has-text('Lấy lại lời về chủ trì')")
    expect(page.locator("#on-program")).to_contain_text("ubnd")
    for room in AUDIENCE:
        expect(page.locator(f"#c-{room} .receives")).to_have_attribute("data-room", "ubnd", timeout=30_000)

    _a_guest_joins_from_a_phone(commune, browser, page, meeting["id"])

    # The room page.
    page.click("#c-tdp-01 a")
    expect(page.locator("#agent-version")).to_have_text("0.1.0")
    expect(page.locator("#uptime")).to_contain_text("%")
    _shot(page, "desktop-phong")

    # The same pages on a phone, signed in as a viewer: readable, and no buttons that change things.
    phone = browser.new_page(viewport=PHONE, locale="vi-VN", is_mobile=True, has_touch=True)
    phone.set_default_timeout(WAIT_MS)
    _sign_in(phone, base, "huyen")
    expect(phone.locator("#room-tdp-01 .meeting")).to_contain_text("Đang họp")
    _shot(phone, "phone-tong-quan")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.goto(f"{base}/cuoc-hop/{meeting['id']}")
    expect(phone.locator("#attendance")).to_contain_text("4/4 đã vào")
    assert phone.locator("button:has-text('Trao lời')").count() == 0
    assert phone.locator("button:has-text('Kết thúc cuộc họp')").count() == 0
    _shot(phone, "phone-dieu-hanh")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.goto(f"{base}/lich-hop")
    assert phone.locator("text=+ Tạo cuộc họp").count() == 0
    phone.close()

    # End the meeting from the console, then sign out: the pages are closed again.
    page.goto(f"{base}/cuoc-hop/{meeting['id']}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Kết thúc cuộc họp')")
    expect(page.locator("#meeting-state")).to_contain_text("Chưa diễn ra")
    # The meeting was recorded: its piece plays in the browser, as long as the meeting ran.
    with coordinator.api() as api:
        (occurrence,) = api.get(f"/api/v1/meetings/{meeting['id']}/occurrences").json()
    ran = (
        datetime.fromisoformat(occurrence["ended_at"]) - datetime.fromisoformat(occurrence["started_at"])
    ).total_seconds()
    page.reload()
    expect(page.locator("#minutes a")).to_have_count(1)
    piece = page.locator("#recordings a:has-text('Xem')").first.get_attribute("href")
    page.goto(f"{base}{piece}")
    page.wait_for_function("document.querySelector('video') && document.querySelector('video').readyState >= 1")
    played = page.evaluate("document.querySelector('video').duration")
    print(f"MEASURED recording: {played:.2f} s in the browser for a meeting of {ran:.2f} s")
    assert abs(played - ran) < 1.5, (played, ran)
    page.evaluate("document.querySelector('video').muted = true; document.querySelector('video').play()")
    page.wait_for_function("document.querySelector('video').currentTime > 1")
    page.goto(f"{base}/cuoc-hop/{meeting['id']}/bien-ban/{occurrence['id']}")
    expect(page.locator("#minutes-happenings")).to_contain_text("Trao lời cho Phòng tdp-01")
    _shot(page, "desktop-bien-ban")
    page.goto(f"{base}/cuoc-hop/{meeting['id']}")
    page.click("button:has-text('Đăng xuất')")
    expect(page).to_have_url(re.compile(r"/dang-nhap$"))
    page.goto(f"{base}/cuoc-hop/{meeting['id']}")
    expect(page).to_have_url(re.compile(r"/dang-nhap\?next="))
    page.close()


# Run before the guest's page: its offer lists H264 before VP8, as Safari's does; the answer must still
# make both ways VP8.
H264_FIRST_JS = """(() => {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (kind, init) {
    const transceiver = add.call(this, kind, init);
    if (kind === 'video') {
      const codecs = RTCRtpReceiver.getCapabilities('video').codecs;
      const rank = (c) => (c.mimeType === 'video/H264' ? 0 : c.mimeType === 'video/VP8' ? 1 : 2);
      transceiver.setCodecPreferences(codecs.slice().sort((a, b) => rank(a) - rank(b)));
    }
    return transceiver;
  };
})();"""
SENT_VIDEO_CODEC_JS = """async () => {
  const pc = window.__peers[window.__peers.length - 1];
  const stats = await pc.getStats();
  let codec = null;
  stats.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.codecId) codec = stats.get(s.codecId).mimeType;
  });
  return codec;
}"""
FRAMES_JS = "document.querySelector('#guest-program').getVideoPlaybackQuality().totalVideoFrames"
LIVE_FRAMES_JS = "document.querySelector('#live-video').getVideoPlaybackQuality().totalVideoFrames"


def _a_guest_joins_from_a_phone(commune: Commune, browser: Browser, console: Page, meeting: int) -> None:
    """The operator invites a guest from the console; the guest joins from a phone with the link, sees and
    hears the chair, raises the hand, is given the floor and is seen and heard in the rooms, then is sent away."""
    coordinator, audience = commune.coordinator, commune.agents["tdp-02"]
    console.fill("#guest-name", "Chủ tịch xã (đang đi công tác)")
    console.click("button:has-text('Tạo lời mời')")
    expect(console.locator("#invite-code")).to_have_text(re.compile(r"^\d{6}$"))
    link = console.locator("#invite-link").input_value()
    expect(console.locator("#guests")).to_contain_text("Chưa vào")

    phone = browser.new_context(viewport=PHONE, locale="vi-VN", is_mobile=True, has_touch=True)
    guest = phone.new_page()
    guest.set_default_timeout(WAIT_MS)
    guest.add_init_script(KEEP_PEERS_JS)
    guest.add_init_script(H264_FIRST_JS)
    guest.goto(f"{coordinator.url}/khach")  # where a code read out on the phone is typed
    guest.fill("#code", "12345")
    guest.click("button:has-text('Tiếp tục')")
    expect(guest.locator("#guest-error")).to_have_text("Mã mời gồm 6 chữ số; hãy nhập lại.")
    _shot(guest, "phone-khach-nhap-ma")
    guest.goto(link)
    expect(guest).to_have_url(re.compile(r"/khach/phong$"))  # the secret is gone from the address
    expect(guest.locator("#guest-name")).to_have_text("Chủ tịch xã (đang đi công tác)")
    expect(guest.locator("#guest-state")).to_have_text("Camera và micrô sẵn sàng. Bấm “Vào họp”.")
    _shot(guest, "phone-khach-moi")
    assert guest.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert guest.locator("#guest-hand").is_hidden()  # only once in the meeting

    clicked = time.monotonic()
    guest.click("#guest-join")
    wait_for(lambda: room_in_video(guest, ROOMS, "#guest-program") == "ubnd", 30, "the chair's code at the guest")
    print(f"MEASURED guest: the chair's code decoded {time.monotonic() - clicked:.2f} s after 'Vào họp'")
    expect(guest.locator("#guest-state")).to_contain_text("Bạn đang dự họp")
    wait_for(lambda: tone_in_video_is(guest, "ubnd", "#guest-program"), 30, "the chair's tone at the guest")
    samples = coordinator.metrics()
    assert sample(samples, "phonghop_meeting_guests", meeting=str(meeting)) == 1.0

    guest.click("#guest-hand")
    console.reload()
    expect(console.locator("#guests .badge.warn")).to_contain_text("✋ 1", timeout=10_000)
    expect(console.locator("#hands")).to_contain_text("Khách: Chủ tịch xã")
    console.locator("#guests button:has-text('Trao lời')").click()
    expect(console.locator(".flash")).to_have_text("Đã trao lời cho khách Chủ tịch xã (đang đi công tác).")
    for room in AUDIENCE:
        expect(console.locator(f"#c-{room} .receives")).to_have_text("Khách: Chủ tịch xã (đang đi công tác)")
    expect(guest.locator("#guest-state")).to_contain_text("Bạn đang phát biểu")
    rooms = [*ROOMS, GUEST_SOURCE]
    wait_for(lambda: audience.decoded(rooms)[0] == GUEST_SOURCE, 30, "the guest's picture in the room tdp-02")
    wait_for(lambda: audience.decoded(rooms)[1][1] == GUEST_SOURCE, 30, "the guest's voice in the room tdp-02")
    assert guest.evaluate(SENT_VIDEO_CODEC_JS) == "video/VP8"
    _shot(console, "desktop-dieu-hanh-khach")

    console.click("button:has-text('Lấy lại lời về chủ trì')")
    wait_for(lambda: room_in_video(guest, ROOMS, "#guest-program") == "ubnd", 30, "the chair back at the guest")
    frames = guest.evaluate(FRAMES_JS)
    wait_for(lambda: guest.evaluate(FRAMES_JS) >= frames + 5, 5, "the guest's program still moving")
    wait_for(lambda: audience.decoded(rooms)[0] == "ubnd", 30, "the chair back in the room tdp-02")

    console.once("dialog", lambda dialog: dialog.accept())
    console.locator("#guests button:has-text('Mời ra')").click()
    expect(guest.locator("#guest-state")).to_contain_text("Người điều hành đã mời bạn ra khỏi cuộc họp")
    expect(console.locator("#guests")).to_contain_text("Đã thu hồi lời mời")
    phone.close()


def test_phone_forms_are_usable(commune: Commune, browser: Browser) -> None:
    """The schedule form on a 360 px phone: fits the width; an invalid recurrence is refused by its field."""
    coordinator = commune.coordinator
    page = browser.new_page(viewport=PHONE, locale="vi-VN", is_mobile=True, has_touch=True)
    page.set_default_timeout(WAIT_MS)
    _sign_in(page, coordinator.url)
    _shot(page, "phone-tong-quan-ngoai-gio")
    page.goto(f"{coordinator.url}/lich-hop/moi")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.fill("#title", "Họp chuyên đề")
    page.select_option("#repeat", "custom")
    page.fill("#rrule_text", "FREQ=SOMETIMES")
    page.check("input[name=invited_groups][value=school]")
    # A room id nobody enrolled, as a forged form would send it.
    page.evaluate(
        """() => { const box = document.createElement('input'); box.type = 'checkbox'; box.name = 'invited_rooms';
        box.value = 'khong-co'; box.checked = true; document.querySelector('.rooms-pick').appendChild(box); }"""
    )
    page.click("button:has-text('Lưu')")
    expect(page.locator("#error-repeat")).to_contain_text("Quy tắc lặp lại không dùng được")
    expect(page.locator("#error-invited")).to_contain_text("khong-co")
    _shot(page, "phone-loi-bieu-mau")
    with coordinator.api() as api:
        assert api.get("/api/v1/meetings").json() == []
    page.close()


def test_chromium_is_the_debian_one() -> None:
    """Never a downloaded browser: the executable is the distribution's."""
    assert shutil.which("chromium") == str(CHROMIUM) or CHROMIUM.exists()
