"""Bad control messages are explained in words, naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from phonghop.protocol import Heartbeat, Hello, agent_message, explain


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "malformed JSON"),
        ('{"type": "dance"}', "unknown message type 'dance'"),
        ("{}", "no 'type' field"),
        ('{"type": "hello"}', "hello.version: Field required"),
        ('{"type": "heartbeat", "devices": {"tv": true}}', "heartbeat.devices.tv"),
        ('{"type": "heartbeat", "extra": 1}', "heartbeat.extra"),
    ],
)
def test_explain(raw: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        agent_message.validate_json(raw)
    assert fragment in explain(info.value)


def test_round_trip() -> None:
    hello = Hello(version="1.0", devices={"camera": True})
    assert agent_message.validate_json(hello.model_dump_json()) == hello
    assert isinstance(agent_message.validate_json('{"type":"heartbeat"}'), Heartbeat)
