"""The three things done with backups: make one (then check it), check one, put one back on a server."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from coordinator.backup import status
from coordinator.backup.contents import ContentsError, Database, Restored, stage
from coordinator.backup.restic import Restic, ResticError, Snapshot
from coordinator.backup.settings import BackupSettings

log = logging.getLogger(__name__)


class BackupFailed(RuntimeError):
    """A backup, its check or a restore failed; the message is for the technician (Vietnamese)."""


@dataclass
class Backups:
    settings: BackupSettings
    database: Database
    version: str

    @cached_property
    def restic(self) -> Restic:
        return Restic(self.settings)

    def _scratch(self) -> Path:
        scratch = self.settings.work_dir / "scratch"
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True, mode=0o700)
        return scratch

    def init(self) -> bool:
        created = self.restic.ensure_repository()
        status.configured(self.settings.status_file)
        return created

    def run(self) -> Snapshot:
        """Back up, check the new backup by restoring it, and only then drop what the retention no longer keeps
        (a damaged new backup must not push out a good older one)."""
        started = time.monotonic()
        if not self.database.exists():
            raise BackupFailed(f"chưa có cơ sở dữ liệu tại {self.database.sqlite_path}: chưa có gì để sao lưu")
        staging = self.settings.work_dir / "staging"
        try:
            stage(self.database, self.settings.paths, staging, self.settings.host, self.version)
            present = [path for path in self.settings.paths if path.exists()]  # e.g. no province link yet
            summary = self.restic.backup([staging, *present])
        except (ResticError, OSError, SQLAlchemyError) as error:
            raise BackupFailed(f"không sao lưu được: {error}") from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        snapshot = self.restic.find(summary["snapshot_id"])
        self.check(snapshot)
        try:
            self.restic.forget()
        except ResticError as error:
            raise BackupFailed(
                f"đã sao lưu và kiểm tra {snapshot.short_id}, nhưng không xoá được bản cũ: {error}"
            ) from error
        status.update(
            self.settings.status_file,
            last_backup={
                "time": time.time(),
                "snapshot": snapshot.id,
                "seconds": round(time.monotonic() - started, 2),
                "bytes": summary.get("total_bytes_processed", 0),
                "added_bytes": summary.get("data_added", 0),
            },
        )
        return snapshot

    def _restore_checked(self, snapshot: Snapshot) -> tuple[Restored, dict[str, Any]]:
        restored = Restored(self._scratch())
        try:
            self.restic.restore(snapshot, restored.root)
            manifest = restored.verify(self.database)
        except (ResticError, ContentsError, OSError) as error:
            raise BackupFailed(
                f"bản sao lưu {snapshot.short_id} ({snapshot.time[:19]}) hỏng, không dùng được: {error}. "
                "Dùng một bản sao lưu khác (danh sách: phonghop-backup list)."
            ) from error
        return restored, manifest

    def check(self, snapshot: Snapshot, record: bool = True) -> dict[str, Any]:
        """Restore to a scratch folder and verify; the result goes to the status (and so to /metrics)."""
        try:
            _, manifest = self._restore_checked(snapshot)
        except BackupFailed as error:
            if not record:
                raise
            status.update(
                self.settings.status_file,
                last_check={"time": time.time(), "snapshot": snapshot.id, "ok": False, "message": str(error)},
            )
            raise
        finally:
            shutil.rmtree(self.settings.work_dir / "scratch", ignore_errors=True)
        if not record:
            return manifest
        now = time.time()
        status.update(
            self.settings.status_file,
            last_check={"time": now, "snapshot": snapshot.id, "ok": True, "message": ""},
            last_good={"time": now, "snapshot": snapshot.id},
        )
        return manifest

    def restore(self, wanted: str, app_user: str, overwrite: bool = False) -> dict[str, Any]:
        """Check the chosen backup, then put it in place. A server that already has enrolled rooms is left
        alone unless ``overwrite``: restoring there would throw away what happened since the backup."""
        if not overwrite and self.database.exists():
            try:
                rooms = self.database.counts()["rooms"]
            except SQLAlchemyError:
                rooms = 0  # a database without the schema yet: nothing to lose
            if rooms:
                raise BackupFailed(
                    f"máy chủ này đã có dữ liệu ({rooms} phòng đã đăng ký): khôi phục sẽ ghi đè mọi thứ từ sau bản "
                    "sao lưu. Nếu chắc chắn, chạy lại với coordinator_restore_overwrite=true."
                )
        try:
            snapshot = self.restic.find(wanted)
        except ResticError as error:
            raise BackupFailed(str(error)) from error
        try:
            restored, manifest = self._restore_checked(snapshot)
            placed = restored.put_back(self.database, app_user)
        finally:
            shutil.rmtree(self.settings.work_dir / "scratch", ignore_errors=True)
        log.info("restored backup %s (%s): %d files and the database", snapshot.short_id, snapshot.time, len(placed))
        return {"snapshot": snapshot.id, "time": snapshot.time, "files": placed, **manifest["database"]}
