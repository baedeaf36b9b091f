"""restic, run as a program: the repository, its password and the SSH command come from the settings."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.backup.settings import BackupSettings

TAG = "phonghop"


class ResticError(RuntimeError):
    """restic failed; the message says what the technician can do about it."""


# restic's own words for the usual faults, and what they mean for the technician.
_HINTS = (
    ("wrong password", "sai mật khẩu kho sao lưu (coordinator_backup_password trong vault của kỹ thuật viên)"),
    ("ciphertext verification failed", "dữ liệu trong kho sao lưu đã bị thay đổi hoặc hỏng"),
    ("does not match", "dữ liệu trong kho sao lưu đã bị thay đổi hoặc hỏng"),
    ("unable to open config file", "chưa có kho sao lưu ở địa chỉ này (hoặc không vào được)"),
    ("Host key verification failed", "khóa SSH của máy lưu trữ khác với khóa đã biết"),
    ("Permission denied", "máy lưu trữ không nhận khóa SSH của máy chủ này"),
    ("Connection refused", "không kết nối được máy lưu trữ"),
    ("No route to host", "không kết nối được máy lưu trữ"),
    ("no snapshot", "không có bản sao lưu nào như thế trong kho"),
)


def explain(output: str) -> str:
    """A Vietnamese reason for restic's output, with the line of restic's that gave it away."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for pattern, reason in _HINTS:
        found = [line for line in lines if pattern.lower() in line.lower()]
        if found:
            return f"{reason} (restic: {found[0]})"
    return f"restic báo lỗi (restic: {' | '.join(lines[-3:])})"


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: str

    @property
    def short_id(self) -> str:
        return self.id[:8]


class Restic:
    def __init__(self, settings: BackupSettings) -> None:
        self.settings = settings

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RESTIC_REPOSITORY": self.settings.repository,
            "RESTIC_PASSWORD_FILE": str(self.settings.password_file),
            "RESTIC_CACHE_DIR": str(self.settings.work_dir / "cache"),
        }

    def _options(self) -> list[str]:
        """For an sftp: repository, ssh with this server's key and the backup host's known key only."""
        repository = self.settings.repository
        if not repository.startswith("sftp:") or self.settings.ssh_key is None:
            return []
        target = repository.removeprefix("sftp:").split(":", 1)[0]
        ssh = ["ssh", "-i", str(self.settings.ssh_key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]
        if self.settings.known_hosts is not None:
            ssh += ["-o", f"UserKnownHostsFile={self.settings.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        return ["-o", "sftp.command=" + shlex.join([*ssh, target, "-s", "sftp"])]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["restic", *self._options(), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise ResticError(explain(result.stderr + result.stdout))
        return result

    def ensure_repository(self) -> bool:
        """Create the repository unless it exists; True when it was created."""
        if self.run("cat", "config", check=False).returncode == 0:
            return False
        self.run("init")
        return True

    def backup(self, paths: list[Path]) -> dict[str, Any]:
        result = self.run("backup", "--json", "--host", self.settings.host, "--tag", TAG, *map(str, paths))
        summaries = [json.loads(line) for line in result.stdout.splitlines() if '"summary"' in line]
        if not summaries:
            raise ResticError(f"restic backup gave no summary: {result.stdout[-500:]}")
        summary: dict[str, Any] = summaries[-1]
        return summary

    def snapshots(self) -> list[Snapshot]:
        """This server's snapshots, oldest first."""
        result = self.run("snapshots", "--json", "--host", self.settings.host, "--tag", TAG)
        return [Snapshot(s["id"], s["time"]) for s in json.loads(result.stdout or "[]")]

    def find(self, wanted: str) -> Snapshot:
        """``latest`` or a snapshot id (or its first characters)."""
        found = self.snapshots()
        if wanted == "latest" and found:
            return found[-1]
        matches = [s for s in found if s.id.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(f"{s.short_id} ({s.time[:16]})" for s in found[-5:]) or "không có"
        raise ResticError(f"không có bản sao lưu {wanted!r} của {self.settings.host}; các bản mới nhất: {known}")

    def restore(self, snapshot: Snapshot, target: Path) -> None:
        """Without the local cache: everything read from the repository, as a rebuilt server would."""
        self.run("--no-cache", "restore", snapshot.id, "--target", str(target))

    def forget(self) -> None:
        s = self.settings
        self.run(
            "forget", "--host", s.host, "--tag", TAG, "--prune",
            "--keep-daily", str(s.keep_daily), "--keep-weekly", str(s.keep_weekly),
            "--keep-monthly", str(s.keep_monthly),
        )  # fmt: skip
