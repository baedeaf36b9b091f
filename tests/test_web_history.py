"""The room page tells the truth: a real agent's outage shows in its history, the self-test result is kept."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

from tests.harness import BOTH_DATABASES, Agent, Coordinator, sample, wait_for
from tests.webtools import signed_in

pytestmark = BOTH_DATABASES

PASSWORD = "mat-khau-van-hanh"


def _up(coordinator: Coordinator, room: str) -> bool:
    return sample(coordinator.metrics(), "phonghop_room_up", room=room, group="residential_group") == 1


def test_outage_and_self_test_on_the_room_page(coordinator: Coordinator, start_agent: Callable[..., Agent]) -> None:
    assert coordinator.add_user("vanhanh", "operator", PASSWORD).returncode == 0
    agent = start_agent("tdp-01")
    wait_for(lambda: _up(coordinator, "tdp-01"), 30, "tdp-01 up")
    with signed_in(coordinator, "vanhanh", PASSWORD) as (client, csrf):
        page = client.get("/phong/tdp-01").text
        assert "Không có lần mất kết nối nào" in page
        assert "Chưa chạy tự kiểm tra" in page

        agent.stop(signal.SIGKILL)
        wait_for(lambda: not _up(coordinator, "tdp-01"), 10, "tdp-01 down")
        # The outage is written to the history just after the room is marked down.
        page = wait_for(
            lambda: "vẫn đang mất" in (text := client.get("/phong/tdp-01").text) and text,
            10,
            "the ongoing outage on the room page",
        )
        assert "mất tín hiệu định kỳ (heartbeat)" in page or "máy phòng ngắt kết nối" in page

        agent.start()
        wait_for(lambda: _up(coordinator, "tdp-01"), 30, "tdp-01 up again")
        page = client.get("/phong/tdp-01").text
        assert "vẫn đang mất" not in page
        assert len(re.findall(r"<tr><td>", page.split('id="outages"')[1].split("</table>")[0])) == 1
        uptime = re.search(r'id="uptime"><strong>([\d.]+)%', page)
        assert uptime is not None
        assert 0 < float(uptime.group(1)) < 100

        response = client.post("/phong/tdp-01/tu-kiem-tra", data={"csrf_token": csrf})
        assert response.status_code == 303
        page = client.get("/phong/tdp-01").text
        assert "Tự kiểm tra:" in page  # the flash
        assert 'id="self-test"' in page
        assert "Chưa chạy tự kiểm tra" not in page

    # Both are kept across a coordinator restart; the history closes the stay the restart cut.
    coordinator.stop()
    coordinator.start()
    wait_for(lambda: _up(coordinator, "tdp-01"), 30, "tdp-01 back after the restart")
    with signed_in(coordinator, "vanhanh", PASSWORD) as (client, _):
        page = client.get("/phong/tdp-01").text
        assert "Chưa chạy tự kiểm tra" not in page
        assert "máy chủ điều phối" in page
