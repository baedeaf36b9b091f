"""What guests cost the coordinator, and how soon a guest sees the meeting.

python -m bench.guests [--rooms 28] [--guests 5] [--seconds 20] [--out docs/bench-guests.jsonl]

Runs ``phonghop demo``, waits until every room is in its meeting, reads the coordinator's CPU
(``process_cpu_seconds_total``) over a window, then signs in as the demo's operator, invites the
guests and lets as many aiortc peers take part the way a guest's page does (the invitation's code
into a session cookie, the control channel, the rooms' three m-lines), and reads the CPU over the
same window again. A guest's join time runs from opening its channel to the first program frame
it decodes. Browsers' own join time is printed by tests/test_web_browser.py ("MEASURED guest").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import connect

from tests.harness import Samples, free_port, parse_metrics, sample
from tests.webtools import csrf_of

SIGN_IN = re.compile(r"Đăng nhập: tên (\S+), mật khẩu (\S+)")


def _metrics(base: str) -> Samples:
    return parse_metrics(httpx.get(f"{base}/metrics", timeout=5).text)


def _cpu_share(base: str, seconds: float) -> float:
    """The coordinator's CPU over ``seconds``, as a share of one core."""
    before = sample(_metrics(base), "process_cpu_seconds_total") or 0.0
    time.sleep(seconds)
    return ((sample(_metrics(base), "process_cpu_seconds_total") or 0.0) - before) / seconds


def _invite(base: str, user: str, password: str, meeting: int, count: int) -> list[str]:
    codes = []
    with httpx.Client(base_url=base, timeout=30) as client:
        csrf = csrf_of(client.get("/dang-nhap").text)
        client.post("/dang-nhap", data={"csrf_token": csrf, "name": user, "password": password, "next": "/"})
        csrf = csrf_of(client.get("/").text)
        for number in range(count):
            client.post(f"/cuoc-hop/{meeting}/moi-khach", data={"csrf_token": csrf, "name": f"Khách {number + 1}"})
            page = client.get(f"/cuoc-hop/{meeting}").text
            found = re.search(r'id="invite-code">(\d+)<', page)
            assert found is not None, "no invitation code on the console"
            codes.append(found.group(1))
    return codes


async def _guest(base: str, code: str, joined: asyncio.Event, leave: asyncio.Event) -> float:
    """One guest for the whole run; returns seconds from opening its channel to its first program frame."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        csrf = csrf_of((await client.get("/khach")).text)
        await client.post("/khach", data={"csrf_token": csrf, "code": code})
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    url = base.replace("http", "ws", 1) + "/khach/kenh"
    pc = RTCPeerConnection()
    async with connect(url, additional_headers={"Cookie": cookie, "Origin": base}) as ws:
        opened = time.monotonic()
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "command" and message["action"] == "join":
                pc.addTransceiver("video", direction="sendrecv")
                pc.addTransceiver("audio", direction="sendrecv")
                pc.addTransceiver("audio", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                sdp = pc.localDescription.sdp
                offer = {"type": "offer", "occurrence": message["meeting"]["occurrence"], "sdp": sdp}
                await ws.send(json.dumps(offer))
            elif message["type"] == "answer":
                await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
                break
        await asyncio.wait_for(pc.getTransceivers()[0].receiver.track.recv(), 60)  # the program's first frame
        seconds = time.monotonic() - opened
        joined.set()
        await leave.wait()
    await pc.close()
    return seconds


def one_run(rooms: int, guests: int, seconds: float) -> dict[str, object]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="bench-guests-"))
    demo = subprocess.Popen(
        [sys.executable, "-m", "phonghop.cli", "demo", "--port", str(port), "--data-dir", str(data), "--start-in", "1"]
        + (["--rooms", str(rooms)] if rooms else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            found = SIGN_IN.search(line)
            if found:
                user, password = found.groups()
                break
        else:
            raise SystemExit(f"the demo did not print its sign-in; see {data}")
        deadline = time.time() + 120
        while time.time() < deadline:
            metrics = _metrics(base)
            states = [v for (name, _), v in metrics.items() if name == "phonghop_room_in_meeting"]
            if states and all(states) and len(states) == (rooms or len(states)):
                break
            time.sleep(0.5)
        meeting = next(int(dict(labels)["meeting"]) for (name, labels), v in _metrics(base).items()
                       if name == "phonghop_meeting_active" and v == 1)  # fmt: skip
        time.sleep(5)  # past the start's keyframes
        without = _cpu_share(base, seconds)
        codes = _invite(base, user, password, meeting, guests)

        async def with_guests() -> tuple[list[float], float]:
            leave = asyncio.Event()
            events = [asyncio.Event() for _ in codes]
            tasks = [
                asyncio.ensure_future(_guest(base, code, joined, leave))
                for code, joined in zip(codes, events, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in events)), 90)
            await asyncio.sleep(3)
            share = await asyncio.to_thread(_cpu_share, base, seconds)
            leave.set()
            return list(await asyncio.gather(*tasks)), share

        joins, with_share = asyncio.run(with_guests())
        return {
            "rooms": len(states),
            "guests": guests,
            "cpu_without_guests_pct": round(without * 100, 1),
            "cpu_with_guests_pct": round(with_share * 100, 1),
            "cpu_per_guest_pct": round((with_share - without) * 100 / guests, 2),
            "guest_first_frame_s": sorted(round(j, 2) for j in joins),
        }
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=0, help="default: every room of the inventory")
    parser.add_argument("--guests", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--label", default="quiet", help="what else ran on the machine")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for _ in range(args.runs):
        result = {"label": args.label, **one_run(args.rooms, args.guests, args.seconds)}
        print(json.dumps(result, ensure_ascii=False), flush=True)
        if args.out:
            with args.out.open("a") as out:
                out.write(json.dumps(result, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
