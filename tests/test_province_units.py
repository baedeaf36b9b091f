"""The province cascade's pieces without a network: the relayed chair in the policy, settings, floor names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coordinator.live_meetings import holder_of
from coordinator.media.budget import SAMPLES, ReceiveBudgets
from coordinator.media.policy import Slots, slots_for
from coordinator.schemas import FloorRequest
from coordinator.settings import Settings
from phonghop.dialing import control_url

ROOMS = {"ubnd", "tdp-01", "tdp-02"}


def test_a_relayed_chair_is_the_program_while_its_media_arrives() -> None:
    live = ROOMS | {"tinh", "tinh/floor"}
    assert slots_for("tdp-01", "tinh", None, live, fallback="ubnd", relay_floor="tinh/floor") == Slots(
        program="tinh", chair_audio="tinh", floor_audio="tinh/floor"
    )
    # The hall is a room like the others while the province is there.
    assert slots_for("ubnd", "tinh", None, live, fallback="ubnd", relay_floor="tinh/floor") == Slots(
        program="tinh", chair_audio="tinh", floor_audio="tinh/floor"
    )


def test_the_hall_stands_in_for_a_relayed_chair_whose_link_is_down() -> None:
    assert slots_for("tdp-01", "tinh", None, ROOMS, fallback="ubnd") == Slots(
        program="ubnd", chair_audio="ubnd", floor_audio=None
    )
    # The hall never receives itself.
    assert slots_for("ubnd", "tinh", None, ROOMS, fallback="ubnd") == Slots(None, None, None)
    # Nobody stands in while the chair is there, and meetings without a fallback are as before.
    assert slots_for("tdp-01", "ubnd", None, ROOMS) == Slots(program="ubnd", chair_audio="ubnd", floor_audio=None)


def test_the_hall_is_seen_and_the_province_heard_while_its_picture_is_held_back() -> None:
    live = ROOMS | {"tinh", "tinh/floor"}
    slots = slots_for("tdp-01", "tinh", None, live, fallback="ubnd", relay_floor="tinh/floor", pictures=live - {"tinh"})
    assert slots == Slots(program="ubnd", chair_audio="tinh", floor_audio="tinh/floor")


class Sources:
    """The chair's picture and the floor's sound as the router counts them, a second at a time."""

    def __init__(self, budgets: ReceiveBudgets) -> None:
        self.budgets = budgets
        self.sent: dict[tuple[str, str], int] = {}
        self.now = 0.0

    def run(self, picture_kbps: float, sound_kbps: float) -> None:
        """Long enough at these rates for the budgets' window to hold nothing else."""
        rates = {("tinh", "video"): picture_kbps * 125, ("tinh/floor", "audio"): sound_kbps * 125}
        for _ in range(SAMPLES):
            for key, bytes_per_second in rates.items():
                self.sent[key] = self.sent.get(key, 0) + int(bytes_per_second)
            self.now += 1.0
            self.budgets.sample(self.sent, self.now)


def test_a_budget_holds_the_picture_back_while_it_does_not_fit_and_not_at_its_edge() -> None:
    wanted = Slots(program="tinh", chair_audio=None, floor_audio="tinh/floor")
    budgets = ReceiveBudgets()
    budgets.set_cap("xa-c", 300)
    sources = Sources(budgets)
    sources.run(250, 40)
    assert (budgets.decide("xa-c", wanted), budgets.held) == (False, set())  # 290 fits 300
    sources.run(520, 40)
    assert (budgets.decide("xa-c", wanted), budgets.held) == (True, {"xa-c"})
    assert budgets.reasons["xa-c"] == "picture 520 kbit/s and sound 40 kbit/s exceed the budget 300 kbit/s"
    sources.run(230, 40)  # 270: under the budget, not under 85 % of it
    assert (budgets.decide("xa-c", wanted), budgets.held) == (False, {"xa-c"})
    sources.run(0, 40)  # the chair stopped sending its picture: nobody else was shown it
    assert (budgets.decide("xa-c", wanted), budgets.held) == (False, {"xa-c"})
    sources.run(200, 40)
    assert (budgets.decide("xa-c", wanted), budgets.held) == (True, set())
    # Without a budget nothing is ever held.
    assert not budgets.decide("xa-a", wanted)
    budgets.set_cap("xa-c", None)
    assert budgets.caps == {}


def test_a_local_floor_holder_takes_the_floor_slot_from_the_other_level() -> None:
    live = ROOMS | {"tinh", "tinh/floor"}
    slots = slots_for("tdp-02", "tinh", "tdp-01", live, fallback="ubnd", relay_floor="tinh/floor")
    assert slots == Slots(program="tdp-01", chair_audio="tinh", floor_audio="tdp-01")
    # The room with the floor sees the province's chair and hears nobody on the floor slot (not itself).
    slots = slots_for("tdp-01", "tinh", "tdp-01", live, fallback="ubnd", relay_floor="tinh/floor")
    assert slots == Slots(program="tinh", chair_audio="tinh", floor_audio=None)


def test_the_floor_goes_to_a_room_or_to_a_commune_room() -> None:
    assert FloorRequest(room="tdp-01").room == "tdp-01"
    assert FloorRequest(room="xa-phong-son/tdp-01").room == "xa-phong-son/tdp-01"
    for bad in ("xa-a/tdp-01/x", "xa a", "xa-a/", "/tdp-01", "tdp-01 "):
        with pytest.raises(ValidationError):
            FloorRequest(room=bad)
    assert holder_of("xa-a/tdp-01") == "xa-a"
    assert holder_of("tdp-01") == "tdp-01"


def test_a_commune_needs_all_three_province_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONGHOP_PROVINCE_URL", "https://tinh.example:8443")
    with pytest.raises(ValidationError, match="PHONGHOP_PROVINCE_TOKEN_FILE"):
        Settings()
    monkeypatch.setenv("PHONGHOP_PROVINCE_TOKEN_FILE", "/etc/phonghop/province.token")
    monkeypatch.setenv("PHONGHOP_COMMUNE_ID", "Xã Phong Sơn")
    with pytest.raises(ValidationError, match="PHONGHOP_COMMUNE_ID"):
        Settings()
    monkeypatch.setenv("PHONGHOP_COMMUNE_ID", "xa-phong-son")
    settings = Settings()
    assert control_url(settings.province_url, settings.commune_id) == (
        "wss://tinh.example:8443/api/v1/rooms/xa-phong-son/control"
    )
    monkeypatch.setenv("PHONGHOP_PROVINCE_URL", "tinh.example")
    with pytest.raises(ValidationError, match="not an http"):
        Settings()
