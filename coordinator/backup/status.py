"""The backups' state for the operator: written by the backup job, read by the coordinator's /metrics."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


def read(path: Path) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return status


def update(path: Path, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the status file (written whole, then renamed: a reader never sees half)."""
    status = {**read(path), **changes}
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".new")
    staged.write_text(json.dumps(status, indent=2, ensure_ascii=False) + "\n")
    os.chmod(staged, 0o644)
    staged.rename(path)
    return status


def configured(path: Path) -> None:
    """Start the clock of the "no good backup" alert when backups are first set up on this server."""
    if "configured_at" not in read(path):
        update(path, configured_at=time.time())


# (status section, its field, metric, help): one gauge each once the section exists.
_GAUGES = (
    ("last_check", "ok", "phonghop_backup_check_ok", "1 when the last restore check passed, 0 when it failed."),
    ("last_check", "time", "phonghop_backup_last_check_timestamp_seconds", "When the last restore check ran."),
    ("last_backup", "seconds", "phonghop_backup_duration_seconds", "How long the last backup took, with its check."),
    ("last_backup", "bytes", "phonghop_backup_size_bytes", "The last backup's size before deduplication."),
    ("last_backup", "added_bytes", "phonghop_backup_added_bytes", "What the last backup added to the repository."),
)


class BackupCollector(Collector):
    """The newest good backup's time (or, before the first one, when backups were set up), the last
    check's result, and the last backup's duration and size."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        status = read(self.path)
        if not status:
            return
        good = status.get("last_good", {}).get("time", status.get("configured_at"))
        if good is not None:
            yield GaugeMetricFamily(
                "phonghop_backup_last_good_timestamp_seconds",
                "When the newest backup that passed its restore check was made (before the first: when backups "
                "were set up).",
                value=good,
            )
        for section, key, name, documentation in _GAUGES:
            if section in status:
                yield GaugeMetricFamily(name, documentation, value=float(status[section][key]))
