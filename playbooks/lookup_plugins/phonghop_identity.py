"""Room identity for the playbooks, read from the one definition in phonghop/identity.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: phonghop_identity
short_description: The room id pattern and the room groups of phonghop
description:
  - Reads C(phonghop/identity.py) of this repository, the one place they are defined.
  - Returns one dictionary with C(room_id_pattern) (a regular expression for a room id, the inventory
    hostname), C(room_groups) (inventory group under C(rooms) to the room kind its hosts get in
    C(phonghop_room_group)) and C(room_kinds) (the kinds, in the order the coordinator shows them).
options: {}
"""

EXAMPLES = r"""
- name: Check a room id
  ansible.builtin.assert:
    that: inventory_hostname is match(lookup('phonghop_identity').room_id_pattern)
"""

RETURN = r"""
_raw:
  description: One dictionary with room_id_pattern, room_groups and room_kinds.
  type: list
  elements: dict
"""

IDENTITY = Path(__file__).resolve().parents[2] / "phonghop" / "identity.py"


def _identity() -> Any:
    module = sys.modules.get("phonghop.identity")
    if module is None:
        spec = importlib.util.spec_from_file_location("phonghop.identity", IDENTITY)
        if spec is None or spec.loader is None:
            raise AnsibleLookupError(f"cannot read {IDENTITY}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        identity = _identity()
        return [
            {
                "room_id_pattern": identity.ROOM_ID_PATTERN,
                "room_groups": dict(identity.ROOM_INVENTORY_GROUPS),
                "room_kinds": list(identity.ROOM_KINDS),
            }
        ]
