"""The room's self-test: config, token, coordinator, control channel, a media loop, devices.

``phonghop-agent check`` runs it on the laptop (the provisioning playbook's
last step); the running agent runs the same checks when the coordinator sends
``run_check`` (the readiness check before meetings). Every failed line says in
Vietnamese what is wrong and what to do about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from node_agent.config import AgentConfig, ConfigError, load_config
from node_agent.devices import NOT_CHECKED, DeviceError, SoundInput, SoundOutput, V4l2Camera, pick
from node_agent.link import control_options, tls
from node_agent.local_auth import SecretError, auth_headers
from node_agent.testsource import CodeReader, TestSource
from phonghop.dialing import refusal_reason
from phonghop.protocol import CheckItem, Welcome, coordinator_message
from phonghop.testpattern import room_code, tone_hz
from phonghop.webrtc import peer_connection

LABELS = {
    "cau_hinh": "Tệp cấu hình",
    "may_chu": "Máy chủ điều phối (HTTP)",
    "ma_phong": "Mã phòng (token)",
    "kenh_dieu_khien": "Kênh điều khiển",
    "truyen_thu": "Truyền hình và âm thanh thử qua máy chủ",
    "camera": "Camera",
    "micro": "Micro",
    "loa": "Loa",
    "man_hinh": "Màn hình TV",
}
DEVICE_CHECKS = {"camera": "camera", "microphone": "micro", "speaker": "loa", "display": "man_hinh"}
MEDIA_LOOP_SECONDS = 20.0


@dataclass
class Report:
    room: str
    checks: list[CheckItem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, message: str, fix: str = "") -> CheckItem:
        item = CheckItem(name=name, ok=ok, message=message[:500], fix="" if ok else fix[:500])
        self.checks.append(item)
        return item

    def as_json(self) -> str:
        return json.dumps(
            {"room": self.room, "ok": self.ok, "checks": [c.model_dump() for c in self.checks]}, ensure_ascii=False
        )

    def text(self) -> str:
        lines = [f"Tự kiểm tra phòng {self.room}"]
        for item in self.checks:
            lines.append(f"  [{'ĐẠT' if item.ok else 'LỖI'}] {LABELS.get(item.name, item.name)}: {item.message}")
            if not item.ok and item.fix:
                lines.append(f"         Cách khắc phục: {item.fix}")
        failed = sum(1 for c in self.checks if not c.ok)
        lines.append("Kết quả: TẤT CẢ ĐẠT" if not failed else f"Kết quả: CÓ LỖI ({failed} mục)")
        return "\n".join(lines)


@dataclass
class LiveState:
    """What a running agent already knows, so its checks do not fight it for the devices."""

    connected: bool
    devices: dict[str, tuple[bool, str | None]]  # device -> (ok, problem)


def _refusal(response: httpx.Response) -> str:
    return refusal_reason(response.status_code, response.content)


async def check_coordinator(config: AgentConfig, report: Report, client: httpx.AsyncClient) -> bool:
    try:
        response = await client.get(f"{config.coordinator_url}/healthz")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        report.add(
            "may_chu",
            False,
            f"Không liên lạc được máy chủ điều phối {config.coordinator_url} ({exc.__class__.__name__}: {exc})",
            "Kiểm tra mạng Internet của phòng (cáp mạng, Wi-Fi, modem), địa chỉ coordinator_url trong "
            "cấu hình, và hỏi quản trị xem máy chủ điều phối có đang chạy không",
        )
        return False
    report.add("may_chu", True, f"Máy chủ {config.coordinator_url} trả lời")
    return True


async def check_token(config: AgentConfig, report: Report, client: httpx.AsyncClient) -> str | None:
    fix = (
        f"Cấp lại mã cho phòng {config.room} trên máy chủ điều phối (POST /api/v1/rooms/{config.room}/token, "
        f"hoặc chạy lại playbook rooms.yml) rồi ghi mã mới vào {config.token_file}"
    )
    try:
        token = config.read_token()
    except ConfigError as exc:
        report.add("ma_phong", False, _unreadable_token(config, exc), fix)
        return None
    try:
        response = await client.get(
            f"{config.coordinator_url}/api/v1/rooms/{config.room}/agent-info",
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        report.add("ma_phong", False, f"Không kiểm tra được mã phòng ({exc})", "Kiểm tra mạng rồi chạy lại")
        return None
    if response.status_code in (401, 403, 404):
        report.add("ma_phong", False, f"Máy chủ từ chối mã phòng {config.room}: {_refusal(response)}", fix)
        return None
    if response.status_code != 200:
        report.add("ma_phong", False, f"Máy chủ trả lời lỗi {_refusal(response)}", "Báo quản trị máy chủ điều phối")
        return None
    name = response.json().get("name", config.room)
    report.add("ma_phong", True, f"Máy chủ nhận mã của phòng {config.room} ({name})")
    return token


_FILE_ERRORS_VI = {errno.ENOENT: "không có tệp này", errno.EACCES: "không có quyền đọc tệp này"}


def _unreadable_token(config: AgentConfig, exc: ConfigError) -> str:
    """Why the token could not be read, in the technician's words (the log keeps the English)."""
    cause = exc.__cause__
    if isinstance(cause, OSError):
        reason = _FILE_ERRORS_VI.get(cause.errno or 0, cause.strerror or str(cause))
        return f"Không đọc được mã phòng từ {config.token_file}: {reason}"
    return f"Không đọc được mã phòng: tệp {config.token_file} trống"


async def check_control(config: AgentConfig, report: Report, token: str) -> None:
    try:
        async with connect(f"{config.control_url}?probe=1", **control_options(config, token)) as websocket:
            message = coordinator_message.validate_json(await asyncio.wait_for(websocket.recv(), 10))
    except InvalidStatus as exc:
        report.add(
            "kenh_dieu_khien",
            False,
            "Máy chủ từ chối kênh điều khiển: " + refusal_reason(exc.response.status_code, exc.response.body),
            "Kiểm tra máy chủ proxy/tường lửa có cho WebSocket đi qua không",
        )
        return
    except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
        report.add(
            "kenh_dieu_khien",
            False,
            f"Không mở được kênh điều khiển {config.control_url} ({exc.__class__.__name__})",
            "Kiểm tra tường lửa/proxy có cho WebSocket (wss://) đi qua không",
        )
        return
    ok = isinstance(message, Welcome)
    report.add(
        "kenh_dieu_khien",
        ok,
        "Kênh điều khiển mở và được chào" if ok else "Máy chủ trả lời lạ",
        "Cập nhật phần mềm phonghop trên máy phòng cho cùng phiên bản với máy chủ",
    )


async def media_loop(config: AgentConfig, token: str, seconds: float = MEDIA_LOOP_SECONDS) -> tuple[bool, str]:
    """Send the room's test picture and tone through the coordinator's echo and read them back."""
    source = await asyncio.to_thread(TestSource, config.room, 320, 180, 15, 300_000)
    pc = peer_connection()
    pc.addTransceiver(source.video, direction="sendrecv")
    pc.addTransceiver(source.audio, direction="sendrecv")
    want_code, want_hz = room_code(config.room), tone_hz(config.room)
    reader = CodeReader()
    got = {"video": False, "audio": False}
    done = asyncio.Event()
    readers: list[asyncio.Task[None]] = []

    async def read(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while not done.is_set():
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    reader.on_video("program", frame)
                elif isinstance(frame, AudioFrame):
                    reader.on_audio("chair_audio", frame)
                decoded = reader.decoded()
                got["video"] |= decoded["program"] == want_code
                got["audio"] |= decoded["audio"][0] is not None and abs(decoded["audio"][0] - want_hz) < 25
                if all(got.values()):
                    done.set()

    @pc.on("track")
    def _track(track: MediaStreamTrack) -> None:
        readers.append(asyncio.create_task(read(track)))

    started = time.monotonic()
    try:
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(verify=tls(config), timeout=15) as client:
            while True:  # the coordinator runs a few loops at once: wait for a turn while there is time
                response = await client.post(
                    f"{config.coordinator_url}/api/v1/rooms/{config.room}/selftest/echo",
                    json={"sdp": pc.localDescription.sdp},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if response.status_code != 429 or time.monotonic() - started > seconds:
                    break
                await asyncio.sleep(2.0)
        if response.status_code != 200:
            return False, f"máy chủ không nhận phiên thử: {_refusal(response)}"
        await pc.setRemoteDescription(RTCSessionDescription(sdp=response.json()["sdp"], type="answer"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), seconds)
    except httpx.HTTPError as exc:
        return False, f"không gửi được phiên thử ({exc})"
    finally:
        done.set()
        await pc.close()
        for task in readers:
            task.cancel()
    took = time.monotonic() - started
    if all(got.values()):
        return True, f"hình và tiếng thử đi qua máy chủ và quay về trong {took:.1f} giây"
    missing = " và ".join(w for w, k in (("hình", "video"), ("tiếng", "audio")) if not got[k])
    return False, f"không nhận lại được {missing} thử sau {seconds:.0f} giây (trạng thái {pc.connectionState})"


async def check_media(config: AgentConfig, report: Report, token: str) -> None:
    ok, message = await media_loop(config, token)
    report.add(
        "truyen_thu",
        ok,
        message[:1].upper() + message[1:],
        "Mạng có thể chặn UDP: mở UDP ra ngoài trên modem/tường lửa, hoặc cấu hình máy chủ TURN của xã; "
        "kiểm tra đường truyền (tốc độ tải lên ít nhất 1 Mbit/s)",
    )


def _device_fix(device: str) -> str:
    return {
        "camera": "Cắm lại camera USB (thử cổng USB khác); xem danh sách: phonghop-agent devices; "
        "sửa [devices] camera trong cấu hình nếu tên thiết bị đổi",
        "microphone": "Cắm lại micro/loa hội nghị; kiểm tra âm lượng và thiết bị mặc định (pavucontrol); "
        "xem danh sách: phonghop-agent devices",
        "speaker": "Cắm lại loa, bật nguồn loa/TV; kiểm tra thiết bị phát mặc định (pavucontrol); "
        "xem danh sách: phonghop-agent devices",
        "display": "Kiểm tra cáp HDMI và nguồn TV; máy phải đăng nhập vào phiên màn hình (kiosk) của phòng",
    }[device]


def _probe_device(config: AgentConfig, device: str) -> tuple[bool, str]:
    """Open the device once (no agent is holding it)."""
    if device == "display":
        if not config.display.enabled:
            return True, "không dùng TV (phòng mô phỏng)"
        from node_agent.tv import probe_display

        return probe_display()
    choice = config.device_choice(device)
    if choice in ("test", "test-raw"):
        return True, "nguồn thử (phòng mô phỏng)"
    try:
        name = pick(device, choice)
        if device == "camera":
            dev = config.devices
            camera = V4l2Camera(name, dev.camera_width, dev.camera_height, dev.camera_fps)
            try:
                camera.read()
            finally:
                camera.close()
        elif device == "microphone":
            mic = SoundInput(name)
            try:
                mic.read()
            finally:
                mic.close()
        else:
            SoundOutput(name).close()
    except DeviceError as exc:
        return False, str(exc)
    return True, f"{name} hoạt động"


def check_devices(config: AgentConfig, report: Report, live: LiveState | None) -> None:
    for device, name in DEVICE_CHECKS.items():
        # The running agent's view when it has one (it may hold the device); a device it has not tried
        # yet is probed here, so that the report says what is wrong rather than "not checked".
        if live is not None and device in live.devices and live.devices[device][1] != NOT_CHECKED:
            ok, problem = live.devices[device]
            message = "hoạt động" if ok else (problem or "không hoạt động")
        else:
            ok, message = _probe_device(config, device)
        report.add(name, ok, message[:1].upper() + message[1:], _device_fix(device))


async def live_state_from_local_api(config: AgentConfig) -> LiveState | None:
    """The running agent's view of its devices (it holds them), if it is running here."""
    if not config.local_api_port:
        return None
    try:
        headers = auth_headers(config)
    except SecretError:
        return None  # no agent running (or not ours to ask): the checks open the devices themselves
    try:
        async with httpx.AsyncClient(timeout=2, headers=headers) as client:
            response = await client.get(f"http://127.0.0.1:{config.local_api_port}/status")
            response.raise_for_status()
            status = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if status.get("room") != config.room:
        return None
    devices = {name: (bool(d["ok"]), d.get("problem")) for name, d in (status.get("devices") or {}).items()}
    return LiveState(connected=bool(status.get("connected")), devices=devices)


async def run_checks(config_path: Path, live: LiveState | None = None, media: bool = True) -> Report:
    """All checks; ``live`` comes from a running agent (then the control channel is known to be up)."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        report = Report(room="?")
        report.add("cau_hinh", False, str(exc), f"Sửa tệp {config_path} theo docs/AGENT.md rồi chạy lại")
        return report
    report = Report(room=config.room)
    report.add("cau_hinh", True, f"{config_path} đọc được (phòng {config.room})")
    if live is None:
        live = await live_state_from_local_api(config)
        if live is not None:
            live = LiveState(connected=False, devices=live.devices)  # probe the channel ourselves anyway
    async with httpx.AsyncClient(verify=tls(config), timeout=10) as client:
        reachable = await check_coordinator(config, report, client)
        token = await check_token(config, report, client) if reachable else None
    skipped = "Chưa kiểm tra được: cần máy chủ trả lời và mã phòng đúng trước"
    if token is None:  # the lines above say why
        report.add("kenh_dieu_khien", False, skipped, "Sửa các lỗi ở trên trước")
        report.add("truyen_thu", False, skipped, "Sửa các lỗi ở trên trước")
    else:
        if live is not None and live.connected:
            report.add("kenh_dieu_khien", True, "Agent đang kết nối với máy chủ")
        else:
            await check_control(config, report, token)
        if media:
            await check_media(config, report, token)
    await asyncio.to_thread(check_devices, config, report, live)
    return report
