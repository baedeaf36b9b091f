"""The inventory is the one source of room identity."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from phonghop.identity import InventoryError, is_valid_room_id, load_rooms


def test_reference_commune_has_28_rooms_in_four_kinds() -> None:
    rooms = load_rooms()
    assert len(rooms) == 28
    assert len({r.id for r in rooms}) == 28
    assert Counter(r.group for r in rooms) == {
        "residential_group": 16,
        "school": 9,
        "public_service": 2,
        "hall": 1,
    }
    assert rooms[0].id == "ubnd"
    assert {"tdp-01", "tdp-16", "cong-an", "tram-y-te"} <= {r.id for r in rooms}
    assert all(is_valid_room_id(r.id) and r.name for r in rooms)


@pytest.mark.parametrize("room_id", ["TDP-01", "-tdp", "tdp_01", "a" * 33, "", "tdp-01-"])
def test_invalid_room_ids(room_id: str) -> None:
    assert not is_valid_room_id(room_id)


def test_unknown_group_kind_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "hosts.yml"
    bad.write_text(
        "all:\n  children:\n    rooms:\n      children:\n        shops:\n"
        "          vars: {phonghop_room_group: shop}\n          hosts: {cho-1: {phonghop_room_name: Chợ}}\n"
    )
    with pytest.raises(InventoryError, match=r"shops.*phonghop_room_group=.shop."):
        load_rooms(bad)


def test_bad_host_name_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "hosts.yml"
    bad.write_text(
        "all:\n  children:\n    rooms:\n      children:\n        hall:\n"
        "          vars: {phonghop_room_group: hall}\n          hosts: {UBND_1: {phonghop_room_name: X}}\n"
    )
    with pytest.raises(InventoryError, match="UBND_1"):
        load_rooms(bad)
