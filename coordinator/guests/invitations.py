"""Invitations: made by an operator for one occurrence, admitting one named guest until that occurrence ends.

The link carries a 256-bit secret after '#', which a browser never sends to a
server (so no access log or proxy holds it); the page posts it. The six-digit
code is for reading out on the phone: a million codes are quick to try, so
entries are rate-limited per address, and a code means something only until
its occurrence ends. Both are stored as hashes, like the rooms' tokens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.database import AsyncSession
from coordinator.live_meetings import ActiveMeeting, LiveMeetings
from coordinator.models import Invitation, Occurrence, utcnow
from coordinator.tokens import hash_token, new_token

CODE_DIGITS = 6
MAX_NAME = 100

# running: the occurrence runs now; waiting: it has not started; the others admit nobody.
Standing = Literal["running", "waiting", "revoked", "expired"]


@dataclass(frozen=True)
class Issued:
    """A new invitation with its secret and code, shown once to the operator and never stored."""

    invitation: Invitation
    secret: str
    code: str


def _new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def normal_code(text: str) -> str | None:
    """The code as typed (spaces, dashes allowed), or None if it cannot be one."""
    digits = "".join(ch for ch in text if not ch.isspace() and ch != "-")
    return digits if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit() else None


class Invitations:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def issue(
        self, meeting_id: int, scheduled_start: datetime, expires_at: datetime, guest_name: str, by: str
    ) -> Issued:
        secret = new_token()
        now = utcnow()
        async with self._sessions() as session, session.begin():
            while True:  # a code no invitation that still admits anyone has
                code = _new_code()
                taken = await session.scalar(
                    select(Invitation.id).where(
                        Invitation.code_hash == hash_token(code),
                        Invitation.revoked_at.is_(None),
                        Invitation.expires_at > now,
                    )
                )
                if taken is None:
                    break
            row = Invitation(
                meeting_id=meeting_id,
                scheduled_start=scheduled_start,
                expires_at=expires_at,
                guest_name=guest_name,
                secret_hash=hash_token(secret),
                code_hash=hash_token(code),
                created_by=by,
            )
            session.add(row)
        return Issued(row, secret, code)

    async def by_secret(self, secret: str) -> Invitation | None:
        async with self._sessions() as session:
            return await session.scalar(select(Invitation).where(Invitation.secret_hash == hash_token(secret)))

    async def by_code(self, code: str) -> Invitation | None:
        """The newest invitation with this code (older ones with it have ended)."""
        async with self._sessions() as session:
            return await session.scalar(
                select(Invitation).where(Invitation.code_hash == hash_token(code)).order_by(Invitation.id.desc())
            )

    async def get(self, invitation_id: int) -> Invitation | None:
        async with self._sessions() as session:
            return await session.get(Invitation, invitation_id)

    async def for_occurrence(self, meeting_id: int, scheduled_start: datetime) -> list[Invitation]:
        async with self._sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(Invitation)
                        .where(Invitation.meeting_id == meeting_id, Invitation.scheduled_start == scheduled_start)
                        .order_by(Invitation.id)
                    )
                ).all()
            )

    async def names(self, invitation_ids: set[int]) -> dict[int, str]:
        if not invitation_ids:
            return {}
        async with self._sessions() as session:
            rows = await session.execute(
                select(Invitation.id, Invitation.guest_name).where(Invitation.id.in_(invitation_ids))
            )
            return {row.id: row.guest_name for row in rows}

    async def revoke(self, invitation_id: int) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Invitation)
                .where(Invitation.id == invitation_id, Invitation.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )

    async def standing(self, invitation: Invitation, live: LiveMeetings) -> tuple[Standing, ActiveMeeting | None]:
        """Whether the invitation admits its guest now, and to which running meeting."""
        if invitation.revoked_at is not None:
            return "revoked", None
        active = live.meetings.get(invitation.meeting_id)
        if active is not None and active.scheduled_start == invitation.scheduled_start:
            return "running", active
        if utcnow() >= invitation.expires_at:
            return "expired", None
        async with self._sessions() as session:
            ended = await session.scalar(
                select(Occurrence.ended_at).where(
                    Occurrence.meeting_id == invitation.meeting_id,
                    Occurrence.scheduled_start == invitation.scheduled_start,
                )
            )
        return ("expired" if ended is not None else "waiting"), None
