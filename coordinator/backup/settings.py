"""Where the backups go and what they hold: PHONGHOP_BACKUP_* (written by the coordinator role)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BackupSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHONGHOP_BACKUP_", env_file=None, extra="ignore")

    # restic repository: sftp:USER@HOST:/PATH (another host of the commune) or a folder (a mounted share).
    repository: str
    # The repository's password; the technician keeps it outside the server (Ansible vault).
    password_file: Path
    # SSH key and known hosts for an sftp: repository (a restricted account on the backup host).
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    # Files and folders backed up besides the database.
    paths: list[Path] = Field(default_factory=list)
    # The name snapshots are filed under: the server's inventory name, the same on a rebuilt server.
    host: str
    keep_daily: int = Field(default=14, ge=1)
    keep_weekly: int = Field(default=8, ge=0)
    keep_monthly: int = Field(default=12, ge=0)
    # Staging copy of the database, restic's cache and the scratch folder of the restore check.
    work_dir: Path = Path("/var/cache/phonghop-backup")
    # The last backup's and check's result, read by the coordinator's /metrics.
    status_file: Path = Path("/var/lib/phonghop-backup/status.json")
