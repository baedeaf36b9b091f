"""Web users: a name, a role and an Argon2 password hash in the database.

Operators may change the schedule and steer meetings; viewers (district or
province staff) only read. The bearer-token API is separate and unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.database import AsyncSession
from coordinator.models import User

log = logging.getLogger(__name__)

Role = Literal["operator", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)
USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
MIN_PASSWORD_LENGTH = 8
# Argon2 takes 64 MiB and tens of milliseconds per hash: this many at once, the others wait their turn.
MAX_HASHES_AT_ONCE = 2


def new_generation() -> str:
    return secrets.token_hex(16)


class UserError(ValueError):
    """A user cannot be created or changed; the message says why, in Vietnamese."""


def check_name(name: str) -> str:
    if re.fullmatch(USER_NAME_PATTERN, name) is None:
        raise UserError(
            f"tên đăng nhập {name!r} không hợp lệ: dùng 2-64 chữ thường không dấu, số, dấu chấm, gạch ngang "
            "hoặc gạch dưới, ví dụ 'vanhanh' hoặc 'huyen.cam-thuy'"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"mật khẩu cần ít nhất {MIN_PASSWORD_LENGTH} ký tự")
    return password


class Users:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._hasher = PasswordHasher()
        # Verifying against this when the name is unknown keeps the answer time the same.
        self._dummy = self._hasher.hash("không có người dùng này")
        self._hashing = asyncio.Semaphore(MAX_HASHES_AT_ONCE)

    async def add(self, name: str, role: str, password: str, *, replace: bool = False) -> User:
        check_name(name)
        check_password(password)
        if role not in ROLES:
            raise UserError(f"vai trò {role!r} không có; chọn một trong: {', '.join(ROLES)}")
        async with self._hashing:
            digest = await asyncio.to_thread(self._hasher.hash, password)
        async with self._sessions() as session, session.begin():
            user = await session.scalar(select(User).where(User.name == name))
            if user is not None and not replace:
                raise UserError(f"người dùng {name!r} đã có; thêm --replace để đặt lại mật khẩu và vai trò")
            # A new password or role ends every session signed in before it.
            if user is None:
                user = User(name=name, role=role, password_hash=digest, session_generation=new_generation())
                session.add(user)
            else:
                user.role, user.password_hash, user.session_generation = role, digest, new_generation()
        log.info("web user %s saved with role %s", name, role)
        return user

    async def end_sessions(self, name: str) -> str:
        """Every session of the user ends (sign-out); returns the new generation."""
        generation = new_generation()
        async with self._sessions() as session, session.begin():
            await session.execute(update(User).where(User.name == name).values(session_generation=generation))
        return generation

    async def get(self, name: str) -> User | None:
        async with self._sessions() as session:
            return await session.scalar(select(User).where(User.name == name))

    async def all(self) -> list[User]:
        async with self._sessions() as session:
            return list((await session.scalars(select(User).order_by(User.name))).all())

    async def remove(self, name: str) -> bool:
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(User).where(User.name == name))
        return bool(getattr(result, "rowcount", 0))

    async def authenticate(self, name: str, password: str) -> User | None:
        """Argon2 is slow on purpose: it runs in a thread so the event loop keeps forwarding media."""
        user = await self.get(name)
        try:
            async with self._hashing:
                await asyncio.to_thread(self._hasher.verify, user.password_hash if user else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if self._hasher.check_needs_rehash(user.password_hash):
            with contextlib.suppress(UserError, IntegrityError):
                user = await self.add(user.name, user.role, password, replace=True)
        if not user.session_generation:  # made before sessions had generations
            user.session_generation = await self.end_sessions(user.name)
        return user
