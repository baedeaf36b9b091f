"""`phonghop-coordinator backup ...`: make, check, list and restore the off-box backups (as root)."""

from __future__ import annotations

import argparse
import json
import sys

from coordinator.backup.contents import Database
from coordinator.backup.jobs import BackupFailed, Backups
from coordinator.backup.restic import ResticError
from coordinator.backup.settings import BackupSettings
from coordinator.settings import Settings
from phonghop import __version__


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="phonghop-coordinator backup", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the repository if missing")
    commands.add_parser("run", help="back up now, apply the retention, check the new backup")
    check = commands.add_parser("check", help="restore a backup to a scratch folder and verify it")
    check.add_argument("--snapshot", default="latest")
    check.add_argument(
        "--repository", help="check a copy elsewhere (another restic repository of this server's backups); "
        "its result is not recorded as this server's",
    )  # fmt: skip
    commands.add_parser("list", help="this server's backups, oldest first")
    restore = commands.add_parser("restore", help="check a backup, then put it in place (coordinator stopped)")
    restore.add_argument("--snapshot", default="latest")
    restore.add_argument("--app-user", default="phonghop")
    restore.add_argument("--overwrite", action="store_true", help="even over a server with enrolled rooms")
    args = parser.parse_args(argv)

    settings = BackupSettings()
    if getattr(args, "repository", None):
        settings = settings.model_copy(update={"repository": args.repository})
    backups = Backups(settings, Database(Settings().resolved_database_url), __version__)
    try:
        if args.command == "init":
            created = backups.init()
            print("Đã tạo kho sao lưu." if created else "Kho sao lưu đã có.")
        elif args.command == "run":
            snapshot = backups.run()
            print(f"Đã sao lưu và kiểm tra: {snapshot.short_id} ({snapshot.time[:19]}).")
        elif args.command == "check":
            manifest = backups.check(backups.restic.find(args.snapshot), record=not args.repository)
            print(f"Bản sao lưu dùng được: {json.dumps(manifest['database']['counts'], ensure_ascii=False)}")
        elif args.command == "list":
            for snapshot in backups.restic.snapshots():
                print(f"{snapshot.short_id}\t{snapshot.time[:19]}")
        else:
            result = backups.restore(args.snapshot, args.app_user, overwrite=args.overwrite)
            print(json.dumps(result, ensure_ascii=False))
    except (BackupFailed, ResticError) as error:
        print(f"LỖI: {error}", file=sys.stderr)
        return 1
    return 0
