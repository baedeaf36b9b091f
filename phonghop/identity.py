"""Room identity as the inventory defines it.

A room id is its inventory hostname; its kind (``group``) comes from the
inventory group it is in. The demo and the tests read rooms from the
inventory file through this module, so nothing else keeps a room list, and
the playbooks read the room id pattern and the room groups from here
(``playbooks/lookup_plugins/phonghop_identity.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

# The kinds of room a commune has.
RoomKind = Literal["hall", "residential_group", "school", "public_service"]
ROOM_KINDS: tuple[str, ...] = get_args(RoomKind)
# What may enroll at a coordinator: a commune's rooms, and at a province the communes themselves
# ("commune": a commune coordinator taking part in the province's meetings through its uplink).
RoomGroup = Literal["hall", "residential_group", "school", "public_service", "commune"]
ROOM_GROUPS: tuple[str, ...] = get_args(RoomGroup)
# The inventory group (under ``rooms``) that holds each kind of room.
ROOM_INVENTORY_GROUPS: dict[str, str] = dict(
    zip(("hall", "residential_groups", "schools", "public_services"), ROOM_KINDS, strict=True)
)
# A hostname label: lowercase letters, digits and inner hyphens, at most 32 characters.
ROOM_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
ROOM_ID_HINT = (
    "a room id is the room laptop's inventory hostname: 1-32 lowercase letters, digits "
    "or inner hyphens, e.g. 'tdp-01' or 'tram-y-te'"
)

DEFAULT_INVENTORY = Path(__file__).resolve().parent.parent / "inventory" / "phong_son" / "hosts.yml"


@dataclass(frozen=True)
class RoomIdentity:
    id: str
    name: str
    group: str


class InventoryError(ValueError):
    """The inventory does not describe rooms the way the project expects."""


def is_valid_room_id(room_id: str) -> bool:
    return re.fullmatch(ROOM_ID_PATTERN, room_id) is not None


def load_rooms(path: Path = DEFAULT_INVENTORY) -> list[RoomIdentity]:
    """Rooms of the inventory's ``rooms`` group, hall first, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        room_groups: dict[str, Any] = data["all"]["children"]["rooms"]["children"]
    except (KeyError, TypeError) as exc:
        raise InventoryError(f"{path}: no 'all.children.rooms.children' groups") from exc
    rooms: list[RoomIdentity] = []
    for group_name, group in room_groups.items():
        kind = (group.get("vars") or {}).get("phonghop_room_group")
        if kind not in ROOM_GROUPS:
            raise InventoryError(
                f"{path}: group '{group_name}' sets phonghop_room_group={kind!r}; use one of {', '.join(ROOM_GROUPS)}"
            )
        if ROOM_INVENTORY_GROUPS.get(group_name) != kind:
            raise InventoryError(
                f"{path}: rooms of kind {kind} go under the group "
                f"{next(g for g, k in ROOM_INVENTORY_GROUPS.items() if k == kind)}, not '{group_name}'"
            )
        for room_id, host_vars in (group.get("hosts") or {}).items():
            if not is_valid_room_id(room_id):
                raise InventoryError(f"{path}: host {room_id!r} is not a valid room id: {ROOM_ID_HINT}")
            name = (host_vars or {}).get("phonghop_room_name")
            if not name:
                raise InventoryError(f"{path}: room {room_id} has no phonghop_room_name")
            rooms.append(RoomIdentity(id=room_id, name=str(name), group=kind))
    rooms.sort(key=lambda r: r.group != "hall")
    return rooms
