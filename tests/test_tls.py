"""TLS on the control plane: HTTPS for the API, WSS for the agents, checked against the commune's CA."""

from __future__ import annotations

import datetime
import ipaddress
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness import Agent, Coordinator, sample, wait_for


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _lab_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, as the lab's local CA would issue them."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("phonghop lab CA"))
        .issuer_name(_name("phonghop lab CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("coordinator"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "coordinator.pem", folder / "coordinator.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


@pytest.fixture
def tls_coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    ca_file, cert_file, key_file = _lab_ca(tmp_path / "pki")
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
