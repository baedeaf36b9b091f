"""TLS on the control plane: HTTPS for the API, WSS for the agents, checked against the commune's CA."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Agent, Coordinator, sample, wait_for
from tests.tlslab import lab_ca


@pytest.fixture
def tls_coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    ca_file, cert_file, key_file = lab_ca(tmp_path / "pki")
    env = {"PHONGHOP_TLS_CERT_FILE": str(cert_file), "PHONGHOP_TLS_KEY_FILE": str(key_file)}
    coordinator = Coordinator(tmp_path / "coordinator", env, ca_file=ca_file).start()
    yield coordinator
    coordinator.stop()


def test_agents_connect_over_wss_and_check_the_certificate(tls_coordinator: Coordinator, tmp_path: Path) -> None:
    coordinator = tls_coordinator
    assert coordinator.url.startswith("https://")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{coordinator.url}/healthz", timeout=5)  # a client that does not trust the lab CA

    no_media = "[media]\nenabled = false\n"
    trusting = Agent(
        coordinator,
        "tdp-01",
        coordinator.enroll("tdp-01"),
        tmp_path / "tdp-01",
        f'ca_file = "{coordinator.ca_file}"\n' + no_media,
    ).start()
    distrusting = Agent(coordinator, "tdp-02", coordinator.enroll("tdp-02"), tmp_path / "tdp-02", no_media).start()
    try:
        wait_for(
            lambda: sample(coordinator.metrics(), "phonghop_room_up", room="tdp-01", group="residential_group") == 1,
            20,
            "tdp-01 up over wss",
        )
        wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in distrusting.log.read_text(), 20, "tdp-02 to reject the cert")
        assert sample(coordinator.metrics(), "phonghop_room_up", room="tdp-02", group="residential_group") == 0
    finally:
        trusting.stop(signal.SIGTERM)
        distrusting.stop(signal.SIGTERM)


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from coordinator.settings import Settings

    with pytest.raises(ValidationError, match="PHONGHOP_TLS_CERT_FILE and PHONGHOP_TLS_KEY_FILE"):
        Settings(tls_cert_file=tmp_path / "cert.pem")
