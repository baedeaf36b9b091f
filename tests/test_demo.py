"""The README's demo: the whole reference commune on this machine."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from phonghop.identity import load_rooms
from tests.harness import ROOT, free_port, parse_metrics, sample, wait_for
from tests.webtools import csrf_of


def test_demo_brings_every_room_into_the_meeting(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phonghop.cli",
            "demo",
            "--port",
            str(port),
            "--duration",
            "60",
            "--start-in",
            "3",
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Ctrl-C" in line for line in lines) or demo.poll() is not None, 90, "the demo to start")
        urls = [line.strip() for line in lines if line.startswith("http://")]
        assert f"http://127.0.0.1:{port}/metrics" in urls
        assert f"http://127.0.0.1:{port}/docs" in urls
        # The web pages: their address and a way to sign in are printed.
        assert f"http://127.0.0.1:{port}/" in urls
        login = re.search(r"Đăng nhập: tên (\S+), mật khẩu (\S+)", "".join(lines))
        assert login is not None
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as web:
            token = csrf_of(web.get("/dang-nhap").text)
            data = {"csrf_token": token, "name": login.group(1), "password": login.group(2)}
            assert web.post("/dang-nhap", data=data).status_code == 303
            assert "Tổng quan các phòng họp" in web.get("/").text
        meeting = re.search(r"/api/v1/meetings/(\d+)$", "\n".join(urls), re.MULTILINE)
        assert meeting is not None

        rooms = load_rooms()

        def everyone_in() -> bool:
            metrics = parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
            return all(
                sample(metrics, "phonghop_room_up", room=r.id, group=r.group) == 1
                and sample(metrics, "phonghop_room_in_meeting", room=r.id, meeting=meeting.group(1)) == 1
                for r in rooms
            )

        wait_for(everyone_in, 120, "all 28 rooms up and in the demo meeting", interval=1)
        metrics = parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        assert sample(metrics, "phonghop_meeting_expected_rooms", meeting=meeting.group(1)) == 28
        wait_for(lambda: any("đang họp: 28/28 phòng" in line for line in lines), 10, "the demo to report 28/28")
        # Each stage with its time: the coordinator first, everyone in the meeting after the rest (rooms may
        # still be coming online when the meeting starts), then the timed stop, which counts from there.
        stages = [
            "Máy chủ điều phối đã sẵn sàng",
            "Cả 28 phòng đã trực tuyến",
            f"Cuộc họp {meeting.group(1)} đã bắt đầu",
            "Cả 28 phòng đã vào cuộc họp",
            "Trình diễn sẽ dừng sau 60 giây nữa.",
        ]
        wait_for(lambda: any(stages[-1] in line for line in lines), 10, "the demo to say when it stops")
        found = [next(i for i, line in enumerate(lines) if text in line) for text in stages]
        ready, online, started, everyone, stop = found
        assert ready < min(online, started), f"stages out of order: {found}"
        assert max(online, started) <= everyone < stop, f"stages out of order: {found}"
        took = {text: re.search(r"sau ([0-9.]+) giây\)", lines[i]) for text, i in zip(stages, found, strict=True)}
        print("MEASURED demo stages:", {text: m.group(1) for text, m in took.items() if m})
        processes = _processes_of(tmp_path / "demo")
        assert len(processes) == 3 + len(rooms), "the demo, its coordinator, the rooms' fleet and every room"
        for room in rooms:  # each room its own process, found by its config as a lone agent would be
            config = tmp_path / "demo" / "rooms" / room.id / "agent.toml"
            assert sum(f"phonghop-agent run --config {config}" in p for p in processes) == 1, room.id
        stopping = time.monotonic()
        demo.terminate()  # as Ctrl-C does, long before the timer
        demo.wait(timeout=60)
        print(f"MEASURED demo exited {time.monotonic() - stopping:.1f} s after SIGTERM")
        reader.join(timeout=5)
        stopped = [line for line in lines if "Đã dừng mọi tiến trình của trình diễn" in line]
        assert stopped, "".join(lines[-5:])
        print("MEASURED", stopped[0].strip())
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        reader.join(timeout=5)
    assert demo.returncode == 0, "".join(lines)
    assert _processes_of(tmp_path / "demo") == [], "no room or coordinator may outlive the demo"


def _processes_of(data_dir: Path) -> list[str]:
    """Running processes that name the demo's data folder: rooms in their command line (their config),
    the coordinator in its environment (PHONGHOP_DATA_DIR)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environment = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) in command + environment and _running(int(proc.name)):
            found.append(f"{proc.name}: {command}")
    return found


def _running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_demos_processes_do_not_outlive_it(tmp_path: Path) -> None:
    """Even a demo killed with SIGKILL (no chance to clean up) takes its rooms and coordinator with it."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from phonghop.demo import Commune\n"
        "commune = Commune(Path(sys.argv[1]), 0)\n"
        "child = commune._spawn(['-c', 'import time; time.sleep(600)'], Path(sys.argv[1]) / 'child.log')\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    demo = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert demo.stdout is not None
    child = int(demo.stdout.readline())
    assert _running(child)
    demo.kill()
    demo.wait()
    try:
        wait_for(lambda: not _running(child), 10, "the demo's process to stop with it")
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)
