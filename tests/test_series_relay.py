"""The monitoring series' way up: who may hand a batch to which coordinator, and what is kept for later.

Real coordinators: a province (its Prometheus not started, so batches reaching it are held) and a
commune linked to it. The whole way to a real province Prometheus, through a cut link, is in
tests/test_province.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Coordinator, free_port, sample

BATCH = b"\x00" * 64  # the coordinators pass batches on without reading them
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    folder = tmp_path_factory.mktemp("province")
    silent_prometheus = f"http://127.0.0.1:{free_port()}"
    coordinator = Coordinator(folder, {"PHONGHOP_PROMETHEUS_URL": silent_prometheus}).start()
    yield coordinator
    coordinator.stop()


@pytest.fixture(scope="module")
def commune(province: Coordinator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    folder = tmp_path_factory.mktemp("commune")
    token_file = folder / "province.token"
    token_file.write_text(province.enroll("xa-a", "commune") + "\n")
    env = {
        "PHONGHOP_PROVINCE_URL": province.url,
        "PHONGHOP_PROVINCE_TOKEN_FILE": str(token_file),
        "PHONGHOP_COMMUNE_ID": "xa-a",
    }
    coordinator = Coordinator(folder / "data", env).start()
    yield coordinator
    coordinator.stop()


def post(coordinator: Coordinator, path: str, token: str | None = None, **headers: str) -> httpx.Response:
    with coordinator.api(token) as client:
        return client.post(path, content=BATCH, headers={**HEADERS, **headers})


def test_only_the_commune_itself_hands_series_to_the_province(province: Coordinator, commune: Coordinator) -> None:
    room_token = province.enroll("phong-hop-tinh", "hall")
    other_commune = province.enroll("xa-b", "commune")
    refusals = {
        "no token": post(province, "/api/v1/rooms/xa-a/series"),
        "a room's token": post(province, "/api/v1/rooms/phong-hop-tinh/series", room_token),
        "another commune's token": post(province, "/api/v1/rooms/xa-a/series", other_commune),
        "a wrong token": post(province, "/api/v1/rooms/xa-a/series", "khong-phai-ma-that-0123456789"),
    }
    assert {what: r.status_code for what, r in refusals.items()} == {
        "no token": 401,
        "a room's token": 403,
        "another commune's token": 403,
        "a wrong token": 401,
    }
    assert "only communes send their series" in refusals["a room's token"].json()["error"]["message"]
    assert "a room can only act as itself" in refusals["another commune's token"].json()["error"]["message"]
    too_large = httpx.post(
        f"{province.url}/api/v1/rooms/xa-b/series",
        content=b"\x00" * 2_100_000,
        headers={"Authorization": f"Bearer {other_commune}"},
    )
    assert too_large.status_code == 413


def test_a_batch_the_province_cannot_store_is_held_for_prometheus_to_send_again(
    province: Coordinator, commune: Coordinator
) -> None:
    """The commune's Prometheus on the loopback → the commune's coordinator → the province's → the
    province's Prometheus, which is not running: 503 at every hop, so the commune's Prometheus keeps it."""
    answer = post(commune, "/local/province-series")
    assert answer.status_code == 503, answer.text
    assert "the province answered 503" in answer.text
    assert "the province's Prometheus did not answer" in answer.text
    assert sample(commune.metrics(), "phonghop_series_batches_total", result="held") == 1
    assert sample(province.metrics(), "phonghop_series_batches_total", result="held") == 1


def test_a_refused_commune_token_holds_the_series_until_it_is_fixed(
    province: Coordinator, commune: Coordinator, tmp_path: Path
) -> None:
    token_file = Path(commune.env["PHONGHOP_PROVINCE_TOKEN_FILE"])
    good = token_file.read_text()
    token_file.write_text("ma-cu-da-bi-thu-hoi-0123456789abcdef\n")
    try:
        answer = post(commune, "/local/province-series")
    finally:
        token_file.write_text(good)
    assert answer.status_code == 503, "a 4xx would make Prometheus drop the batch"
    assert "refused the commune's token (401" in answer.text
    assert "playbooks/province.yml" in answer.text


def test_only_the_prometheus_beside_the_coordinator_writes_there(tmp_path: Path, province: Coordinator) -> None:
    """Through nginx a request carries X-Forwarded-For; a commune in no province keeps nothing."""
    forwarded = post(province, "/local/province-series", None, **{"X-Forwarded-For": "203.0.113.9"})
    assert forwarded.status_code == 403
    assert forwarded.json()["error"]["code"] == "not_local"
    alone = post(province, "/local/province-series")
    assert alone.status_code == 204
