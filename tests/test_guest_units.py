"""Guests' small parts: codes as people type them, TURN credentials, the TURN settings' check."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from coordinator.guests.invitations import normal_code
from coordinator.guests.turn import OVERRUN, turn_server
from coordinator.participants import guest_id, invitation_of, is_guest, kind_of
from coordinator.settings import Settings


@pytest.mark.parametrize(
    ("typed", "code"),
    [("123456", "123456"), ("123 456", "123456"), ("12-34-56", "123456"), (" 000001 ", "000001"),
     ("12345", None), ("1234567", None), ("12a456", None), ("١٢٣٤٥٦", None), ("", None)],
)  # fmt: skip
def test_a_code_is_six_ascii_digits_however_it_is_typed(typed: str, code: str | None) -> None:
    assert normal_code(typed) == code


def test_turn_credentials_expire_after_the_meeting_and_are_coturns_hmac() -> None:
    ends = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    server = turn_server("turns:may-chu:5349?transport=tcp", "bi-mat", "khach-7", ends)
    expiry, _, who = server["username"].partition(":")
    assert int(expiry) == int((ends + OVERRUN).timestamp())
    assert who == "khach-7"
    digest = hmac.new(b"bi-mat", server["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(server["credential"]) == digest
    assert server["urls"] == ["turns:may-chu:5349?transport=tcp"]


def test_guest_ids_are_never_room_ids() -> None:
    assert guest_id(12) == "khach:12"
    assert is_guest("khach:12")
    assert invitation_of("khach:12") == 12
    assert invitation_of("khach-12") is None  # a valid room id
    assert not is_guest("khach-12")
    assert [kind_of(p) for p in ("khach:12", "xem:vanhanh", "ghi:hinh", "khach-12")] == [
        "guest",
        "viewer",
        "recorder",
        "room",
    ]


def test_turn_settings_come_as_a_pair_of_a_turn_url_and_a_secret(tmp_path: Path) -> None:
    secret = tmp_path / "turn.secret"
    with pytest.raises(ValidationError, match="PHONGHOP_TURN_SECRET_FILE"):
        Settings(turn_url="turns:may-chu:5349?transport=tcp")
    with pytest.raises(ValidationError, match="not a turn: or turns: URL"):
        Settings(turn_url="https://may-chu:5349", turn_secret_file=secret)
    assert Settings(turn_url="turns:may-chu:5349?transport=tcp", turn_secret_file=secret).turn_url
