"""Web users: a name, a role and an Argon2 password hash in the database.

Operators may change the schedule and steer meetings; viewers (district or
province staff) only read. The bearer-token API is separate and unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.database import AsyncSession
from coordinator.models import User

log = logging.getLogger(__name__)

Role = Literal["operator", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)
USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
MIN_PASSWORD_LENGTH = 8


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

    async def add(self, name: str, role: str, password: str, *, replace: bool = False) -> User:
        check_name(name)
        check_password(password)
        if role not in ROLES:
            raise UserError(f"vai trò {role!r} không có; chọn một trong: {', '.join(ROLES)}")
        digest = await asyncio.to_thread(self._hasher.hash, password)
        async with self._sessions() as session, session.begin():
            user = await session.scalar(select(User).where(User.name == name))
            if user is not None and not replace:
                raise UserError(f"người dùng {name!r} đã có; thêm --replace để đặt lại mật khẩu và vai trò")
            if user is None:
                user = User(name=name, role=role, password_hash=digest)
                session.add(user)
            else:
                user.role, user.password_hash = role, digest
        log.info("web user %s saved with role %s", name, role)
        return user

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
            await asyncio.to_thread(self._hasher.verify, user.password_hash if user else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if self._hasher.check_needs_rehash(user.password_hash):
            with contextlib.suppress(UserError, IntegrityError):
                await self.add(user.name, user.role, password, replace=True)
        return user
