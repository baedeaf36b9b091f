"""The room registry: enrolled rooms in the database, mirrored in memory.

The mirror lets the control channel authenticate and /metrics list every
room without touching the database on each request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.database import AsyncSession
from coordinator.models import Room, utcnow
from coordinator.tokens import hash_token, new_token, token_matches

log = logging.getLogger(__name__)


class RoomExists(Exception):
    pass


class RoomNotFound(Exception):
    pass


@dataclass
class RoomRecord:
    id: str
    name: str
    group: str
    token_hash: str
    enrolled_at: datetime
    token_issued_at: datetime
    last_seen: datetime | None = None
    agent_version: str | None = None
    devices: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Room) -> RoomRecord:
        return cls(
            id=row.id,
            name=row.name,
            group=row.group,
            token_hash=row.token_hash,
            enrolled_at=row.enrolled_at,
            token_issued_at=row.token_issued_at,
            last_seen=row.last_seen,
            agent_version=row.agent_version,
            devices=dict(row.devices or {}),
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "group": self.group,
            "enrolled_at": self.enrolled_at,
            "token_issued_at": self.token_issued_at,
            "last_seen": self.last_seen,
            "agent_version": self.agent_version,
            "devices": self.devices,
        }


class Registry:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.rooms: dict[str, RoomRecord] = {}

    async def load(self) -> None:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Room).order_by(Room.id))).all()
        self.rooms = {row.id: RoomRecord.from_row(row) for row in rows}

    def get(self, room_id: str) -> RoomRecord:
        try:
            return self.rooms[room_id]
        except KeyError:
            raise RoomNotFound(room_id) from None

    def authenticate(self, room_id: str, token: str) -> bool:
        record = self.rooms.get(room_id)
        return record is not None and token_matches(token, record.token_hash)

    def owner_of(self, token: str) -> str | None:
        """Which room a token belongs to, to tell 'wrong room' from 'bad token'."""
        digest = hash_token(token)
        return next((r.id for r in self.rooms.values() if r.token_hash == digest), None)

    async def enroll(self, room_id: str, name: str, group: str) -> tuple[RoomRecord, str]:
        if room_id in self.rooms:
            raise RoomExists(room_id)
        token = new_token()
        now = utcnow()
        row = Room(
            id=room_id,
            name=name,
            group=group,
            token_hash=hash_token(token),
            enrolled_at=now,
            token_issued_at=now,
            devices={},
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        record = RoomRecord.from_row(row)
        self.rooms[room_id] = record
        log.info("room %s enrolled (%s, %s)", room_id, group, name)
        return record, token

    async def rotate_token(self, room_id: str) -> tuple[RoomRecord, str]:
        record = self.get(room_id)
        token = new_token()
        now = utcnow()
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Room).where(Room.id == room_id).values(token_hash=hash_token(token), token_issued_at=now)
            )
        record.token_hash = hash_token(token)
        record.token_issued_at = now
        log.info("room %s: token re-issued; the old token no longer works", room_id)
        return record, token

    async def update_identity(self, room_id: str, name: str | None, group: str | None) -> RoomRecord:
        record = self.get(room_id)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = record.name = name
        if group is not None:
            values["group"] = record.group = group
        if values:
            async with self._sessions() as session, session.begin():
                await session.execute(update(Room).where(Room.id == room_id).values(**values))
        return record

    async def remove(self, room_id: str) -> None:
        self.get(room_id)
        async with self._sessions() as session, session.begin():
            await session.execute(delete(Room).where(Room.id == room_id))
        del self.rooms[room_id]
        log.info("room %s removed", room_id)

    async def record_agent(
        self,
        room_id: str,
        *,
        seen: datetime,
        version: str | None = None,
        devices: dict[str, bool] | None = None,
    ) -> None:
        """Persist what the agent said about itself (on hello, and now and then)."""
        record = self.rooms.get(room_id)
        if record is None:
            return
        record.last_seen = seen
        if version is not None:
            record.agent_version = version
        if devices is not None:
            record.devices = dict(devices)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Room)
                .where(Room.id == room_id)
                .values(
                    last_seen=record.last_seen,
                    agent_version=record.agent_version,
                    devices=record.devices,
                )
            )
