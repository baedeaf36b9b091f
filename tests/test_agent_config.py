"""The agent's config: what it refuses to load, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.config import ConfigError, load_config
from node_agent.link import control_options


def _write(tmp_path: Path, url: str, extra: str = "") -> Path:
    (tmp_path / "room.token").write_text("ma-phong-bi-mat\n")
    config = tmp_path / "agent.toml"
    config.write_text(
        f'room = "tdp-01"\n{extra}coordinator_url = "{url}"\ntoken_file = "{tmp_path / "room.token"}"\n',
        encoding="utf-8",
    )
    return config


def test_a_plain_http_coordinator_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(_write(tmp_path, "http://10.0.0.1:8080"))
    message = str(refused.value)
    assert "coordinator_url" in message
    assert "unencrypted" in message
    assert "https://" in message
    assert "allow_plain_http = true" in message


def test_plain_http_only_where_the_config_says_it_is_a_lab(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "http://127.0.0.1:8080", "allow_plain_http = true\n"))
    assert config.control_url == "ws://127.0.0.1:8080/api/v1/rooms/tdp-01/control"
    secure = load_config(_write(tmp_path, "https://phonghop.example/"))
    assert secure.control_url == "wss://phonghop.example/api/v1/rooms/tdp-01/control"


@pytest.mark.parametrize(
    "url", ["https://phonghop.example/?token=abc", "https://phonghop.example/#x", "https://tdp-01:abc@phonghop.example"]
)
def test_no_credential_or_query_in_the_coordinator_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="never in the URL"):
        load_config(_write(tmp_path, url))


def test_the_room_token_goes_in_a_header_never_in_the_url(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "https://phonghop.example:8443/base"))
    token = config.read_token()
    assert token not in config.control_url
    assert "?" not in config.control_url
    assert control_options(config, token)["additional_headers"] == {"Authorization": f"Bearer {token}"}
