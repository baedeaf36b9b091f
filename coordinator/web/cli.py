"""`phonghop-coordinator user ...`: web sign-in accounts, kept in the coordinator's database."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from coordinator.database import make_engine, make_sessionmaker, migrate
from coordinator.settings import Settings
from coordinator.web.users import ROLES, UserError, Users


def _password(args: argparse.Namespace) -> str:
    """From the prompt (typed twice) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("Mật khẩu: ")
        if getpass.getpass("Nhập lại mật khẩu: ") != first:
            raise UserError("hai lần nhập mật khẩu không khớp")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.resolved_database_url
    await asyncio.to_thread(migrate, url)
    engine = make_engine(url)
    users = Users(make_sessionmaker(engine))
    try:
        if args.command == "add":
            await users.add(args.name, args.role, _password(args), replace=args.replace)
            print(f"Đã lưu người dùng {args.name} (vai trò {args.role}).")
        elif args.command == "list":
            for user in await users.all():
                print(f"{user.name}\t{user.role}")
        elif args.command == "remove":
            if not await users.remove(args.name):
                raise UserError(f"không có người dùng {args.name!r}")
            print(f"Đã xóa người dùng {args.name}.")
    finally:
        await engine.dispose()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="phonghop-coordinator user", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a user (password from the prompt, or stdin when piped)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.add_argument("--replace", action="store_true", help="reset the password and role of an existing user")
    commands.add_parser("list", help="list users and their roles")
    remove = commands.add_parser("remove", help="delete a user")
    remove.add_argument("name")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_run(args, Settings()))
    except UserError as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 1
