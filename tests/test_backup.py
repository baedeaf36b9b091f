"""Off-box backups with the real restic (a repository in a folder, as on a mounted share): a commune's
database and secrets backed up, checked by a restore to scratch, put back on an empty server; a flipped
byte and a wrong password refused with a clear message; PostgreSQL through pg_dump."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from coordinator.backup.contents import Database
from coordinator.backup.jobs import BackupFailed, Backups
from coordinator.backup.settings import BackupSettings
from coordinator.backup.status import BackupCollector
from coordinator.database import migrate, sync_url
from coordinator.models import Attendance, Meeting, Occurrence, Room, User
from tests.postgres import PostgresServer

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic (Debian package) is missing")


def commune_history(url: str) -> None:
    """One room, one meeting that ran with the room attending, one web user."""
    migrate(url)
    start = datetime.now(UTC) - timedelta(days=1)
    engine = create_engine(sync_url(url))
    with Session(engine) as session:
        session.add(Room(id="tdp-01", name="Tổ dân phố 1", group="residential_group", token_hash="a" * 64))
        meeting = Meeting(title="Giao ban", chair_room="tdp-01", start=start, duration_seconds=3600)
        session.add(meeting)
        session.flush()
        occurrence = Occurrence(meeting_id=meeting.id, scheduled_start=start, ends_at=start + timedelta(hours=1))
        session.add(occurrence)
        session.flush()
        session.add(Attendance(occurrence_id=occurrence.id, room_id="tdp-01", joined_at=start))
        session.add(User(name="vanhanh", role="operator", password_hash="x"))
        session.commit()
    engine.dispose()


class Server:
    """A commune server's files in a temporary folder, and its backups in a folder repository."""

    def __init__(self, root: Path, database_url: str | None = None) -> None:
        self.etc = root / "etc/phonghop"
        self.tls = root / "etc/ssl/phonghop"
        self.data = root / "var/lib/phonghop"
        for folder in (self.etc, self.tls, self.data):
            folder.mkdir(parents=True)
        (self.etc / "operator.token").write_text("operator-secret\n")
        (self.etc / "operator.token").chmod(0o640)
        (self.tls / "ca.key").write_text("-----BEGIN PRIVATE KEY-----\n")
        (self.tls / "ca.key").chmod(0o600)
        (root / "backup.password").write_text("correct horse battery staple\n")
        self.database = Database(database_url or f"sqlite:///{self.data / 'coordinator.db'}")
        self.settings = BackupSettings(
            repository=str(root / "repository"),
            password_file=root / "backup.password",
            paths=[self.etc, self.tls],
            host="may-chu-xa",
            work_dir=root / "work",
            status_file=root / "status.json",
        )
        self.backups = Backups(self.settings, self.database, "test")

    def metrics(self) -> str:
        registry = CollectorRegistry()
        registry.register(BackupCollector(self.settings.status_file))
        return generate_latest(registry).decode()

    def lose_everything(self) -> None:
        for folder in (self.etc, self.tls):
            shutil.rmtree(folder)
        if self.database.is_sqlite:
            self.database.sqlite_path.unlink()


def metric(text: str, name: str) -> float:
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " "))


def test_backup_is_checked_and_restores_onto_an_empty_server(tmp_path: Path) -> None:
    server = Server(tmp_path)
    commune_history(server.database.url)
    assert server.backups.init() is True
    assert "phonghop_backup_check_ok" not in server.metrics()
    configured = metric(server.metrics(), "phonghop_backup_last_good_timestamp_seconds")

    snapshot = server.backups.run()
    text = server.metrics()
    assert metric(text, "phonghop_backup_check_ok") == 1
    assert metric(text, "phonghop_backup_last_good_timestamp_seconds") > configured
    assert metric(text, "phonghop_backup_size_bytes") > 0

    # Rows written after the backup are what a rebuild loses; a server with rooms is not overwritten.
    with pytest.raises(BackupFailed, match="đã có dữ liệu \\(1 phòng"):
        server.backups.restore("latest", "root")

    server.lose_everything()
    result = server.backups.restore(snapshot.id[:8], "root")
    assert result["counts"] == {
        "rooms": 1, "meetings": 1, "occurrences": 1, "attendance": 1, "users": 1, "readiness_checks": 0,
    }  # fmt: skip
    assert (server.etc / "operator.token").read_text() == "operator-secret\n"
    assert (server.tls / "ca.key").stat().st_mode & 0o777 == 0o600
    assert server.database.counts()["attendance"] == 1


def test_a_flipped_byte_is_refused_by_the_restore_check(tmp_path: Path) -> None:
    server = Server(tmp_path)
    commune_history(server.database.url)
    server.backups.init()
    snapshot = server.backups.run()
    packs = sorted((tmp_path / "repository/data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    largest = packs[-1]
    largest.chmod(0o644)
    content = bytearray(largest.read_bytes())
    content[len(content) // 3] ^= 0xFF
    largest.write_bytes(bytes(content))

    with pytest.raises(BackupFailed) as refused:
        server.backups.check(snapshot)
    message = str(refused.value)
    assert f"bản sao lưu {snapshot.short_id}" in message, message
    assert "hỏng" in message, message
    assert "Dùng một bản sao lưu khác" in message, message
    assert "restic: ignoring error" in message, message  # restic's own line naming the damaged file
    assert metric(server.metrics(), "phonghop_backup_check_ok") == 0
    # Nothing of the server was touched by the refused check.
    assert server.database.counts()["rooms"] == 1


def test_a_wrong_password_is_named(tmp_path: Path) -> None:
    server = Server(tmp_path)
    commune_history(server.database.url)
    server.backups.init()
    server.settings.password_file.write_text("not the password\n")
    with pytest.raises(BackupFailed, match="sai mật khẩu kho sao lưu"):
        server.backups.run()


def test_postgresql_is_backed_up_with_pg_dump(tmp_path: Path, postgres: PostgresServer) -> None:
    server = Server(tmp_path, postgres.new_database())
    commune_history(server.database.url)
    server.backups.init()
    server.backups.run()
    server.lose_everything()
    result = server.backups.restore("latest", "root", overwrite=True)
    assert result["file"] == "coordinator.pgdump"
    assert server.database.counts()["attendance"] == 1
    assert (server.etc / "operator.token").is_file()
