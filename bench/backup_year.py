"""What an off-box backup costs for a commune with a year of history: size and time, first and nightly.

python -m bench.backup_year [--rooms 28] [--out docs/bench-backup.jsonl]

Generates a year of the reference commune's history into a fresh SQLite database with the coordinator's
own schema (a weekly briefing and two topic meetings a month with every room attending, reconnects inside
meetings, the floor and hands, readiness checks before each start, a few outages a week per room, guests'
invitations), then backs it up with the real restic as the nightly job does, checks it by restoring it, adds
a day of history and backs up again (the nightly increment). Each step's seconds and the repository's size
are printed as one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from coordinator.backup.contents import Database
from coordinator.backup.jobs import Backups
from coordinator.backup.settings import BackupSettings
from coordinator.database import migrate
from coordinator.models import (
    Attendance,
    Invitation,
    Meeting,
    MeetingEvent,
    Occurrence,
    PresenceEvent,
    ReadinessCheck,
    Room,
    User,
)
from phonghop import __version__


def _day_of_history(session: Session, rooms: list[str], day: datetime, meetings: dict[str, Meeting]) -> None:
    """One day: outages now and then for every room, and the day's meeting if there is one."""
    for room in rooms:
        if random.random() < 0.5:  # about three outages a week: a down and an up event
            down = day + timedelta(minutes=random.randrange(0, 1440))
            session.add(PresenceEvent(room_id=room, at=down, up=False, reason="heartbeat timeout"))
            session.add(PresenceEvent(room_id=room, at=down + timedelta(minutes=random.randrange(1, 30)), up=True))
    kind = "weekly" if day.weekday() == 0 else "topic" if day.day in (10, 24) else None
    if kind is None:
        return
    meeting = meetings[kind]
    start = day.replace(hour=1)  # 08:00 in Vietnam
    occurrence = Occurrence(
        meeting_id=meeting.id,
        scheduled_start=start,
        started_at=start,
        ends_at=start + timedelta(hours=2),
        ended_at=start + timedelta(hours=2),
        invited_rooms=rooms,
    )
    session.add(occurrence)
    session.flush()
    for stage, lead in (("lead", 60), ("final", 10)):
        for room in rooms:
            ok = random.random() > 0.05
            session.add(
                ReadinessCheck(
                    meeting_id=meeting.id, scheduled_start=start, ends_at=start + timedelta(hours=2), stage=stage,
                    room_id=room, checked_at=start - timedelta(minutes=lead), ok=ok,
                    failed_check=None if ok else "camera",
                    checks=[{"name": n, "ok": ok or n != "camera", "detail": "ok"} for n in
                            ("camera", "micro", "loa", "man-hinh", "mang")],
                )
            )  # fmt: skip
    for room in rooms:
        joined = start + timedelta(seconds=random.randrange(0, 120))
        if random.random() < 0.15:  # a reconnect in the middle
            middle = joined + timedelta(minutes=random.randrange(10, 100))
            session.add(Attendance(occurrence_id=occurrence.id, room_id=room, joined_at=joined, left_at=middle,
                                   left_reason="connection lost"))  # fmt: skip
            joined = middle + timedelta(seconds=20)
        session.add(Attendance(occurrence_id=occurrence.id, room_id=room, joined_at=joined,
                               left_at=start + timedelta(hours=2), left_reason="meeting ended"))  # fmt: skip
    for minute in range(0, 120, 4):  # the floor moves and hands go up and down
        at = start + timedelta(minutes=minute)
        room = random.choice(rooms)
        session.add(MeetingEvent(occurrence_id=occurrence.id, at=at, kind="hand_up", participant=room))
        session.add(MeetingEvent(occurrence_id=occurrence.id, at=at + timedelta(seconds=30), kind="floor",
                                 participant=room))  # fmt: skip
        session.add(MeetingEvent(occurrence_id=occurrence.id, at=at + timedelta(minutes=3), kind="hand_down",
                                 participant=room))  # fmt: skip
    for guest in range(3):
        session.add(
            Invitation(
                meeting_id=meeting.id, scheduled_start=start, expires_at=start + timedelta(hours=2),
                guest_name=f"Khách {guest + 1}", secret_hash=f"{random.getrandbits(256):064x}",
                code_hash=f"{random.getrandbits(256):064x}", created_by="vanhanh",
            )
        )  # fmt: skip


def generate(url: str, rooms: int, first: datetime, days: int, meetings: dict[str, Meeting] | None = None) -> Any:
    engine = create_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        ids = [f"tdp-{n:02d}" for n in range(1, rooms + 1)]
        if meetings is None:
            for room in ids:
                session.add(
                    Room(
                        id=room,
                        name=room,
                        group="residential_group",
                        token_hash=hashlib.sha256(room.encode()).hexdigest(),
                    )
                )
            for name in ("vanhanh", "chutich", "xem"):
                session.add(User(name=name, role="operator", password_hash="$argon2id$" + "x" * 80))
            meetings = {
                "weekly": Meeting(title="Giao ban tuần", chair_room=ids[0], invited_rooms=ids, start=first,
                                  duration_seconds=7200, rrule="FREQ=WEEKLY;BYDAY=MO"),
                "topic": Meeting(title="Họp chuyên đề", chair_room=ids[0], invited_rooms=ids, start=first,
                                 duration_seconds=7200, rrule="FREQ=MONTHLY;BYMONTHDAY=10,24"),
            }  # fmt: skip
            session.add_all(meetings.values())
            session.flush()
        for day in range(days):
            _day_of_history(session, ids, first + timedelta(days=day), meetings)
        session.commit()
    engine.dispose()
    return meetings


def timed(what: dict[str, Any], key: str, action: Any) -> Any:
    started = time.monotonic()
    result = action()
    what[key] = round(time.monotonic() - started, 2)
    return result


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=28)
    parser.add_argument("--out", type=Path, default=Path("docs/bench-backup.jsonl"))
    args = parser.parse_args()
    random.seed(20261203)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        url = f"sqlite:///{root / 'coordinator.db'}"
        migrate(url)
        first = datetime(2025, 12, 1, tzinfo=UTC)
        meetings = generate(url, args.rooms, first, 365)
        secrets = root / "etc"
        secrets.mkdir()
        (secrets / "operator.token").write_text("x" * 43 + "\n")
        (root / "password").write_text("bench-backup-password\n")
        repository = root / "repository"  # a folder, as on a mounted share
        settings = BackupSettings(
            repository=str(repository), password_file=root / "password", paths=[secrets], host="may-chu-xa",
            work_dir=root / "work", status_file=root / "status.json",
        )  # fmt: skip
        database = Database(url)
        backups = Backups(settings, database, __version__)
        backups.init()
        result: dict[str, Any] = {"rooms": args.rooms, "days": 365, "counts": database.counts()}
        result["database_bytes"] = database.sqlite_path.stat().st_size
        timed(result, "first_backup_and_check_s", backups.run)
        result["repository_bytes_first"] = du(repository)
        status = json.loads(settings.status_file.read_text())
        result["first_added_bytes"] = status["last_backup"]["added_bytes"]
        generate(url, args.rooms, first + timedelta(days=365), 1, meetings)
        # Both runs fall on one calendar day, where the daily retention keeps one snapshot: without the
        # retention this time, the repository's growth is the nightly increment.
        backups.restic.forget = lambda: None  # type: ignore[method-assign]
        timed(result, "nightly_backup_and_check_s", backups.run)
        status = json.loads(settings.status_file.read_text())
        result["nightly_added_bytes"] = status["last_backup"]["added_bytes"]  # restic's figure, before compression
        result["repository_bytes_after_nightly"] = du(repository)
        timed(result, "check_only_s", lambda: backups.check(backups.restic.find("latest")))
        result["restic"] = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.split()[1]
    line = json.dumps(result, ensure_ascii=False)
    print(line)
    with args.out.open("a") as out:
        out.write(line + "\n")


if __name__ == "__main__":
    main()
