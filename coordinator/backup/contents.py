"""What a backup holds: a consistent copy of the database and the listed files, with a manifest.

The manifest names every file with its checksum, mode and owner (by name: a rebuilt server's account ids may
differ) and counts the database's rows, so the restore check can tell a restored copy is whole and the
technician can see what a backup holds.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from coordinator.database import sync_url

MANIFEST = "phonghop-backup-manifest.json"
SQLITE_COPY = "coordinator.db"
POSTGRES_DUMP = "coordinator.pgdump"
# The tables whose rows a restore must bring back (counted in the manifest, compared by the check).
COUNTED_TABLES = ("rooms", "meetings", "occurrences", "attendance", "users", "readiness_checks")


class ContentsError(RuntimeError):
    """A backup's contents are not what their manifest says."""


@dataclass(frozen=True)
class Database:
    """The coordinator's database, from its SQLAlchemy URL."""

    url: str

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    @property
    def sqlite_path(self) -> Path:
        return Path(make_url(self.url).database or "")

    @property
    def copy_name(self) -> str:
        return SQLITE_COPY if self.is_sqlite else POSTGRES_DUMP

    def _libpq(self) -> tuple[str, dict[str, str]]:
        """pg_dump's connection string without the password, which goes in its environment."""
        url = make_url(self.url)
        env = {**os.environ, "PGPASSWORD": url.password or ""}
        return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env

    def exists(self) -> bool:
        return not self.is_sqlite or self.sqlite_path.is_file()

    def copy_to(self, dest: Path) -> None:
        """A consistent copy while the coordinator runs: SQLite's online backup, or pg_dump."""
        if self.is_sqlite:
            with sqlite3.connect(self.sqlite_path) as source, sqlite3.connect(dest) as target:
                source.backup(target)
            return
        conninfo, env = self._libpq()
        subprocess.run(["pg_dump", "--format=custom", "--file", str(dest), conninfo], env=env, check=True)

    def counts(self) -> dict[str, int]:
        engine = create_engine(sync_url(self.url))
        try:
            with engine.connect() as conn:
                return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in COUNTED_TABLES}
        finally:
            engine.dispose()

    def put_back(self, copy: Path, owner: str) -> None:
        """Replace the database with a checked copy (the coordinator is stopped)."""
        if self.is_sqlite:
            path = self.sqlite_path
            path.parent.mkdir(parents=True, exist_ok=True)
            staged = path.with_name(path.name + ".restoring")
            shutil.copyfile(copy, staged)
            os.chmod(staged, 0o640)
            _chown(staged, owner, owner)
            for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
            staged.rename(path)
            return
        conninfo, env = self._libpq()
        subprocess.run(
            ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "--dbname", conninfo,
             str(copy)],
            env=env,
            check=True,
        )  # fmt: skip


def check_copy(database: Database, copy: Path) -> dict[str, int]:
    """The copy opens and is whole; its row counts (SQLite) or its table of contents is readable (pg_dump)."""
    if database.is_sqlite:
        with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as conn:
            verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise ContentsError(f"cơ sở dữ liệu trong bản sao lưu bị hỏng: {verdict}")
            return Database(f"sqlite:///{copy}").counts()
    listing = subprocess.run(["pg_restore", "--list", str(copy)], capture_output=True, text=True, check=False)
    if listing.returncode != 0 or "TABLE DATA public rooms" not in listing.stdout:
        raise ContentsError(f"bản pg_dump trong bản sao lưu không đọc được: {listing.stderr.strip()[-300:]}")
    return {}


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _chown(path: Path, owner: str, group: str) -> None:
    """By name, falling back to root; only root may give files away (a developer's test run keeps its own)."""
    if os.geteuid() != 0:
        return
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        uid = 0
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = 0
    os.chown(path, uid, gid)


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            found.append(path)
    return found


def stage(database: Database, paths: list[Path], staging: Path, host: str, version: str) -> dict[str, Any]:
    """Copy the database into ``staging`` and write the manifest beside it; returns the manifest."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True, mode=0o700)
    copy = staging / database.copy_name
    database.copy_to(copy)
    files = []
    for path in _files(paths):
        info = path.stat()
        files.append({
            "path": str(path),
            "sha256": _sha256(path),
            "mode": oct(info.st_mode & 0o7777),
            "owner": pwd.getpwuid(info.st_uid).pw_name,
            "group": grp.getgrgid(info.st_gid).gr_name,
        })  # fmt: skip
    manifest = {
        "host": host,
        "version": version,
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"file": copy.name, "sha256": _sha256(copy), "counts": database.counts()},
        "files": files,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


@dataclass
class Restored:
    """A backup restored to a scratch folder: restic puts every path under it as it was on the server."""

    root: Path

    @cached_property
    def manifest_path(self) -> Path:
        found = list(self.root.rglob(MANIFEST))
        if len(found) != 1:
            raise ContentsError(f"bản sao lưu không có bảng kê {MANIFEST} (thấy {len(found)})")
        return found[0]

    @cached_property
    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads(self.manifest_path.read_text())
        return manifest

    def copy_of(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def database_copy(self) -> Path:
        name: str = self.manifest["database"]["file"]
        return self.manifest_path.parent / name

    def verify(self, database: Database) -> dict[str, Any]:
        """Every listed file is there with its checksum, the database copy is whole and has its rows."""
        manifest = self.manifest
        broken = [f["path"] for f in manifest["files"] if not self.copy_of(f["path"]).is_file()
                  or _sha256(self.copy_of(f["path"])) != f["sha256"]]  # fmt: skip
        copy = self.database_copy
        if _sha256(copy) != manifest["database"]["sha256"]:
            broken.append(f"cơ sở dữ liệu ({copy.name})")
        if broken:
            raise ContentsError("các tệp sau khác với bảng kê của bản sao lưu: " + ", ".join(broken))
        counts = check_copy(database, copy)
        expected = manifest["database"]["counts"]
        if counts and counts != expected:
            raise ContentsError(f"số dòng trong cơ sở dữ liệu khác bảng kê: {counts} thay vì {expected}")
        return manifest

    def put_back(self, database: Database, app_user: str) -> list[str]:
        """Files to their places with their modes and owners, then the database; returns what was placed."""
        manifest = self.manifest
        placed = []
        for entry in manifest["files"]:
            target = Path(entry["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(target.name + ".restoring")
            shutil.copyfile(self.copy_of(entry["path"]), staged)
            os.chmod(staged, int(entry["mode"], 8))
            _chown(staged, entry["owner"], entry["group"])
            staged.rename(target)
            placed.append(entry["path"])
        database.put_back(self.database_copy, app_user)
        return placed
