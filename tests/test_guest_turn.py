"""A guest on a network that blocks UDP (a hotel's, an office's) reaches the meeting through TURN over TLS.

The guest's Chromium runs behind a link of its own (tests/netlab.py) that drops every UDP packet; coturn,
as Debian ships it, listens with TLS only (TCP), with the shared secret the coordinator derives each
invitation's credentials from. The chair's picture reaching the guest's page, over a relayed candidate
pair whose relay protocol is TLS, is the proof; without TURN nothing at all would arrive.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, expect, sync_playwright

from tests.browserlab import CHROMIUM, CHROMIUM_ARGS, KEEP_PEERS_JS, room_in_video
from tests.harness import Agent, Coordinator, free_port, sample, stop_process, wait_for
from tests.netlab import Link
from tests.tlslab import lab_ca
from tests.webtools import invite

TURNSERVER = Path("/usr/bin/turnserver")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium package is missing (./dev test)"),
    pytest.mark.skipif(not TURNSERVER.exists(), reason="Debian's coturn package is missing (./dev test)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]
ROOMS = {"ubnd": "hall"}
OPERATOR = ("vanhanh", "mat-khau-van-hanh")
# The candidate pair the page's connection uses: the guest's side must be a TURN relay reached over TLS.
SELECTED_PAIR_JS = """async () => {
  const pc = window.__peers[window.__peers.length - 1];
  if (!pc) return null;
  const stats = await pc.getStats();
  let found = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId);
      found = {type: local.candidateType, relayProtocol: local.relayProtocol || null, state: pair.state};
    }
  });
  return found;
}"""


@dataclass
class Lab:
    coordinator: Coordinator
    link: Link
    meeting: int
    turn_pin: str  # coturn's key, which the guest's browser is told to trust (the lab CA is in no trust store)


def _spki_pin(cert: Path) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list takes: the base64 SHA-256 of the key's SPKI."""
    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def _coturn(folder: Path, cert: Path, key: Path, address: str, port: int, secret: str) -> subprocess.Popen[bytes]:
    """coturn with TLS on ``port`` only (no UDP, no plain TCP), relaying from this machine's end of the link."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "turnserver.conf"
    config.write_text(
        f"listening-ip={address}\nrelay-ip={address}\ntls-listening-port={port}\n"
        "no-udp\nno-tcp\nno-dtls\nno-cli\nfingerprint\n"
        f"use-auth-secret\nstatic-auth-secret={secret}\nrealm=phonghop.lab\n"
        f"cert={cert}\npkey={key}\nuserdb={folder / 'turndb'}\npidfile={folder / 'turnserver.pid'}\n"
        "log-file=stdout\nsimple-log\n"
    )
    with (folder / "turnserver.log").open("ab") as log:
        proc = subprocess.Popen([str(TURNSERVER), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)

    def listening() -> bool:
        assert proc.poll() is None, (folder / "turnserver.log").read_text()[-2000:]
        with socket.socket() as probe:
            return probe.connect_ex((address, port)) == 0

    wait_for(listening, 15, "coturn to listen")
    return proc


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    link = Link(40).create()
    # The guest's network: every UDP packet out of it is dropped, TCP goes through.
    rules = "table inet no_udp {\n  chain out { type filter hook output priority 0; meta l4proto udp drop; }\n}\n"
    subprocess.run([*link.prefix, "nft", "-f", "-"], input=rules, text=True, check=True)
    secret = secrets.token_urlsafe(32)
    turn_port = free_port()
    _, cert, key = lab_ca(tmp_path / "pki", link.host_address)
    turn = _coturn(tmp_path / "turn", cert, key, link.host_address, turn_port, secret)
    secret_file = tmp_path / "turn.secret"
    secret_file.write_text(secret + "\n")
    env = {
        "PHONGHOP_HOST": "0.0.0.0",  # the guest reaches the coordinator at this machine's end of its link
        "PHONGHOP_TURN_URL": f"turns:{link.host_address}:{turn_port}?transport=tcp",
        "PHONGHOP_TURN_SECRET_FILE": str(secret_file),
    }
    coordinator = Coordinator(tmp_path / "coordinator", env).start()
    agents: list[Agent] = []
    try:
        for room, group in ROOMS.items():
            token = coordinator.enroll(room, group)
            agents.append(Agent(coordinator, room, token, tmp_path / "rooms" / room).start())
        result = coordinator.add_user(OPERATOR[0], "operator", OPERATOR[1])
        assert result.returncode == 0, result.stderr
        yield Lab(coordinator, link, coordinator.schedule(list(ROOMS), start_in=0, seconds=600), _spki_pin(cert))
    finally:
        for agent in agents:
            agent.stop()
        coordinator.stop()
        stop_process(turn, 15)
        link.destroy()


@pytest.fixture
def browser_behind_link(lab: Lab, tmp_path: Path) -> Iterator[Browser]:
    """Chromium started inside the guest's network namespace (Playwright talks to it over a pipe)."""
    wrapper = tmp_path / "chromium-behind-link"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(lab.link.prefix)} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    origin = f"http://{lab.link.host_address}:{lab.coordinator.port}"
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--unsafely-treat-insecure-origin-as-secure={origin}",  # camera and microphone on the lab's plain HTTP
        f"--ignore-certificate-errors-spki-list={lab.turn_pin}",  # Chromium checks the TURN server's certificate
    ]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(wrapper), args=args)
        yield chromium
        chromium.close()


def test_a_guest_behind_a_udp_blocking_network_joins_through_turn_over_tls(
    lab: Lab, browser_behind_link: Browser
) -> None:
    coordinator = lab.coordinator
    active = {"meeting": str(lab.meeting)}
    wait_for(lambda: sample(coordinator.metrics(), "phonghop_meeting_active", **active) == 1.0, 20, "the meeting")
    link, _ = invite(coordinator, lab.meeting, OPERATOR, "Khách ở khách sạn")
    link = link.replace("127.0.0.1", lab.link.host_address)
    page = browser_behind_link.new_page()
    page.set_default_timeout(60_000)
    page.add_init_script(KEEP_PEERS_JS)
    page.goto(link)
    expect(page.locator("#guest-state")).to_contain_text("Bấm “Vào họp”")
    page.click("#guest-join")
    wait_for(lambda: room_in_video(page, ROOMS, "#guest-program") == "ubnd", 30, "the chair's picture at the guest")
    pair = page.evaluate(SELECTED_PAIR_JS)
    assert pair == {"type": "relay", "relayProtocol": "tls", "state": "succeeded"}, pair
