"""The demo commune: a coordinator and simulated rooms on this machine.

Every part is the real program in its own process, talking over real
sockets; only the rooms' cameras and microphones are test sources.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from phonghop.identity import DEFAULT_INVENTORY, RoomIdentity, load_rooms
from phonghop.lifetime import die_with_parent

# How long the coordinator gets to stop after SIGTERM before SIGKILL: Ctrl-C ends the whole demo within
# about this, whatever state its rooms are in.
STOP_SECONDS = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", type=int, default=0, help="how many rooms (default: all in the inventory)")
    parser.add_argument(
        "--duration",
        type=float,
        default=0,
        help="stop this many seconds after every room is in the meeting (default: at Ctrl-C)",
    )
    parser.add_argument("--port", type=int, default=8080, help="coordinator port on 127.0.0.1 (default 8080)")
    parser.add_argument("--data-dir", type=Path, help="keep state here (default: a new temporary folder)")
    parser.add_argument("--start-in", type=float, default=5, help="seconds until the demo meeting starts")
    parser.add_argument("--meeting-minutes", type=float, default=60, help="length of the demo meeting")
    parser.add_argument("--no-record", action="store_true", help="do not record the demo meeting")
    parser.add_argument("--inventory", type=Path, default=DEFAULT_INVENTORY, help="inventory that names the rooms")


class Commune:
    """The processes of the demo and how to reach them."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.processes: list[subprocess.Popen[bytes]] = []

    def _spawn(
        self, args: list[str], log: Path, env: dict[str, str] | None = None, own_group: bool = False
    ) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                preexec_fn=die_with_parent,  # SIGTERM when the demo dies; it starts them from one thread
                start_new_session=own_group,
            )
        self.processes.append(proc)
        return proc

    def start_coordinator(self) -> None:
        self._spawn(
            ["-m", "coordinator", "--port", str(self.port)],
            self.data_dir / "coordinator.log",
            {"PHONGHOP_DATA_DIR": str(self.data_dir), "PHONGHOP_HEARTBEAT_INTERVAL": "2"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.processes[0].poll() is not None:
                raise SystemExit(f"the coordinator exited; see {self.data_dir / 'coordinator.log'}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the coordinator did not become ready in 30 s; see {self.data_dir / 'coordinator.log'}")

    def web_user(self, name: str) -> str:
        """An operator account for the web pages, made with the coordinator's CLI; a fresh password each run."""
        password = secrets.token_urlsafe(12)
        result = subprocess.run(
            [sys.executable, "-m", "coordinator", "user", "add", name, "--role", "operator", "--replace"],
            input=password + "\n",
            capture_output=True,
            text=True,
            env={**os.environ, "PHONGHOP_DATA_DIR": str(self.data_dir)},
            timeout=120,
        )
        if result.returncode != 0:
            raise SystemExit(f"could not create the web user: {result.stderr.strip()}")
        return password

    def operator(self) -> httpx.Client:
        token = (self.data_dir / "operator.token").read_text().strip()
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def enroll(self, api: httpx.Client, room: RoomIdentity) -> Path:
        """Enroll the room (or re-issue its token) and write its agent config."""
        response = api.post("/api/v1/rooms", json={"id": room.id, "name": room.name, "group": room.group})
        if response.status_code == 409:
            response = api.post(f"/api/v1/rooms/{room.id}/token")
        response.raise_for_status()
        folder = self.data_dir / "rooms" / room.id
        folder.mkdir(parents=True, exist_ok=True)
        token_file = folder / "room.token"
        token_file.write_text(response.json()["token"] + "\n")
        token_file.chmod(0o600)
        config = folder / "agent.toml"
        config.write_text(
            f'room = "{room.id}"\n'
            f'coordinator_url = "{self.base}"\n'
            # The demo's coordinator serves plain HTTP on loopback: a lab setting, never a room laptop's.
            "allow_plain_http = true\n"
            f'token_file = "{token_file}"\n'
            "heartbeat_interval = 2.0\n"
            "reconnect_max_delay = 3.0\n"
            "local_api_port = 0\n"
            # A smaller picture keeps 28 simulated rooms and the coordinator comfortable on two cores.
            "[test_source]\nwidth = 320\nheight = 180\nfps = 10\nbitrate = 150000\n"
        )
        return config

    def start_rooms(self, configs: list[Path]) -> None:
        """The rooms, each its own agent process, forked from one start (`phonghop-agent fleet`).

        The fleet and its rooms form a process group of their own, which the stop kills in one call.
        """
        args = ["-m", "node_agent", "fleet", *map(str, configs)]
        self._spawn(args, self.data_dir / "fleet.log", own_group=True)

    def stop(self) -> None:
        """Switch the simulated rooms off, then stop the coordinator, which records that each room left.

        The rooms are killed like laptops losing power: they keep nothing, and 28 rooms closing their peers
        at once on two cores take seconds. Alone, the coordinator then stops cleanly in under a second;
        after STOP_SECONDS it is killed too (its next start closes what it left open), and at once on a
        second Ctrl-C.
        """
        if not self.processes:
            return
        coordinator, rooms = self.processes[0], self.processes[1:]
        for fleet in rooms:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(fleet.pid, signal.SIGKILL)
        if coordinator.poll() is None:
            coordinator.send_signal(signal.SIGTERM)
        for fleet in rooms:
            fleet.wait()
        try:
            coordinator.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if coordinator.poll() is None:
                coordinator.kill()
                coordinator.wait()


@contextmanager
def _interrupts_as_exit() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    rooms = load_rooms(args.inventory)
    if args.rooms:
        rooms = rooms[: args.rooms]
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="phonghop-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    commune = Commune(data_dir.resolve(), args.port)
    began = time.monotonic()
    print(f"Thư mục dữ liệu: {commune.data_dir}", flush=True)
    with _interrupts_as_exit():
        try:
            commune.start_coordinator()
            _say_stage("Máy chủ điều phối đã sẵn sàng", began)
            password = commune.web_user(WEB_USER)  # before the rooms start, while the machine is quiet
            with commune.operator() as api:
                commune.start_rooms([commune.enroll(api, room) for room in rooms])
                start = datetime.now(UTC) + timedelta(seconds=args.start_in)
                meeting = api.post(
                    "/api/v1/meetings",
                    json={
                        "title": "Giao ban tuần (trình diễn)",
                        "chair_room": rooms[0].id,
                        "invited_rooms": [r.id for r in rooms],
                        "start": start.isoformat(),
                        "duration_seconds": int(args.meeting_minutes * 60),
                        "record": not args.no_record,
                    },
                )
                meeting.raise_for_status()
                meeting_id = meeting.json()["id"]
                _print_sign_in(commune, password)
                _print_addresses(commune, len(rooms), meeting_id, args.start_in)
                _watch(api, meeting_id, len(rooms), args.duration, began)
        except KeyboardInterrupt:
            print("\nDừng trình diễn...", flush=True)
        finally:
            stopping = time.monotonic()
            commune.stop()
            print(f"Đã dừng mọi tiến trình của trình diễn sau {time.monotonic() - stopping:.1f} giây.", flush=True)
    return 0


def _print_addresses(commune: Commune, room_count: int, meeting_id: int, start_in: float) -> None:
    base = commune.base
    print(f"{room_count} phòng họp mô phỏng đang kết nối; cuộc họp {meeting_id} bắt đầu sau {start_in:.0f} giây.")
    print("Địa chỉ:")
    for url in (
        f"{base}/docs",
        f"{base}/metrics",
        f"{base}/api/v1/rooms",
        f"{base}/api/v1/meetings/{meeting_id}",
    ):
        print(url)
    calendar = (commune.data_dir / "calendar.token").read_text().strip()
    print(f"Lịch họp cho ứng dụng lịch (địa chỉ bí mật): {base}/api/v1/calendar/{calendar}.ics")
    print(f"Mã quản trị (operator token): {commune.data_dir / 'operator.token'}")
    print(f"Mã chỉ đọc (read-only token, cho huyện/tỉnh): {commune.data_dir / 'read.token'}")
    print("Nhấn Ctrl-C để dừng.", flush=True)


WEB_USER = "vanhanh"


def _print_sign_in(commune: Commune, password: str) -> None:
    print("Trang điều hành (mở trong trình duyệt, cả trên điện thoại):")
    print(f"{commune.base}/")
    print(f"Đăng nhập: tên {WEB_USER}, mật khẩu {password}  (mật khẩu mới mỗi lần chạy; chỉ in ra một lần)")
    print(
        "Thêm tài khoản: PHONGHOP_DATA_DIR=" + str(commune.data_dir) + " phonghop-coordinator user add TÊN "
        "--role operator|viewer",
        flush=True,
    )


def _watch(api: httpx.Client, meeting_id: int, room_count: int, duration: float, began: float) -> None:
    """Print the meeting's attendance whenever it changes, and each stage once with the seconds since the
    demo began; ``duration`` counts from the moment every room is in the meeting."""
    deadline = float("inf")
    stages: set[str] = set()
    last = ""

    def stage(name: str, text: str) -> None:
        if name not in stages:
            stages.add(name)
            _say_stage(text, began)

    while time.monotonic() < deadline:
        try:
            running = api.get(f"/api/v1/meetings/{meeting_id}").json().get("running")
            up = sum(1 for room in api.get("/api/v1/rooms").json() if room["up"])
        except (httpx.HTTPError, ValueError):
            line = "Không liên lạc được với máy chủ điều phối"
        else:
            joined = len(running["joined"]) if running else 0
            state = f"đang họp: {joined}/{room_count} phòng" if running else "chưa bắt đầu"
            line = f"Phòng trực tuyến: {up}/{room_count}; cuộc họp {meeting_id} {state}"
            if up == room_count:
                stage("online", f"Cả {room_count} phòng đã trực tuyến")
            if running:
                stage("started", f"Cuộc họp {meeting_id} đã bắt đầu")
            if joined == room_count:
                stage("everyone", f"Cả {room_count} phòng đã vào cuộc họp")
                if duration and deadline == float("inf"):
                    deadline = time.monotonic() + duration
                    print(f"Trình diễn sẽ dừng sau {duration:.0f} giây nữa.", flush=True)
        if line != last:
            print(f"{datetime.now().strftime('%H:%M:%S')} {line}", flush=True)
            last = line
        # Often while rooms come in (the stages' times are read here), then every 2 s.
        pause = 2.0 if "everyone" in stages else 0.5
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))


def _say_stage(text: str, began: float) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {text} (sau {time.monotonic() - began:.1f} giây)", flush=True)
