"""Coordinator settings, from PHONGHOP_* environment variables or a .env file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from phonghop.identity import ROOM_ID_HINT, is_valid_room_id


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHONGHOP_", env_file=None, extra="ignore")

    data_dir: Path = Path("/var/lib/phonghop")
    # sqlite:///path or postgresql+psycopg://user@host/db; empty means <data_dir>/coordinator.db
    database_url: str = ""
    # File holding the operator's bearer token; created with a fresh token if missing.
    operator_token_file: Path | None = None
    # File holding the read-only API token (district or province staff); created if missing.
    read_token_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    timezone: str = "Asia/Ho_Chi_Minh"
    heartbeat_interval: float = Field(default=5.0, gt=0, le=300)
    missed_heartbeats: int = Field(default=3, ge=1, le=100)
    scheduler_tick: float = Field(default=1.0, gt=0, le=60)
    # Control messages larger than this are refused with an error (SDP fits easily).
    max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    # Control messages per room: this many at once, then this many a second; past that the channel is closed
    # (an agent sends a heartbeat and a media report every few seconds, and a few answers and offers).
    control_message_burst: int = Field(default=60, ge=1)
    control_messages_per_second: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"
    # Serve HTTPS and WSS directly (a lab, or no reverse proxy in front); both files or neither.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # The session cookie's Secure flag. Unset: on every request served over HTTPS, whether the coordinator holds
    # the TLS files itself or a reverse proxy on this host says so (X-Forwarded-Proto: https, trusted from
    # 127.0.0.1). true: always (the Ansible role sets it: nginx serves HTTPS). false: never (a plain-HTTP lab).
    cookie_secure: bool | None = None
    # Readiness check: invited rooms run their self-test this long before each start, and again closer to it.
    readiness_lead_seconds: float = Field(default=3600, ge=0)
    readiness_final_lead_seconds: float = Field(default=600, ge=0)
    readiness_wait_seconds: float = Field(default=60, gt=0, le=600)  # how long a room may take to answer
    # Closer than this to the start a check is skipped: nobody could fix anything in time (and a meeting
    # scheduled to start at once does not make every room run its self-test as it starts).
    readiness_min_seconds: float = Field(default=120, ge=0)
    # A commune that takes part in its province's meetings: the province coordinator's URL, the token
    # the province issued when it enrolled this commune (group "commune"), and this commune's id there.
    province_url: str = ""
    province_token_file: Path | None = None
    commune_id: str = ""
    province_ca_file: Path | None = None
    # Inside the commune the province meeting's chair is this source (not a room; do not enrol a room so named).
    province_source: str = "tinh"
    # The most the province may send this commune, kbit/s (its link's budget); unset: no limit.
    province_budget_kbps: int | None = Field(default=None, ge=64)
    # Shown to the rooms while the province link is down; empty means the commune's hall room.
    province_fallback_room: str = ""
    # At the province: the Prometheus that receives every commune's series (the page "Các xã" reads it).
    prometheus_url: str = ""
    # TURN for guests' browsers on networks that block UDP (coturn with TLS): its URL, e.g.
    # "turns:may-chu.phongson.vn:443?transport=tcp", and the file with coturn's static-auth-secret, from
    # which each invitation gets credentials that expire with it. Unset: guests connect directly only.
    turn_url: str = ""
    turn_secret_file: Path | None = None
    # The off-box backups' status file (written by `phonghop-coordinator backup run`), shown in /metrics.
    backup_status_file: Path | None = None
    # Recordings of meetings that are recorded ("ghi hình"): their folder (default <data_dir>/recordings) and
    # the length of one file; a crash loses at most the piece in progress.
    recordings_dir: Path | None = None
    recording_piece_seconds: float = Field(default=3600, ge=5)
    recording_min_free_mb: int = Field(default=1024, ge=0)  # under this much free space recording stops

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both PHONGHOP_TLS_CERT_FILE and PHONGHOP_TLS_KEY_FILE, or neither")
        return self

    @model_validator(mode="after")
    def _province_triple(self) -> Settings:
        given = [bool(self.province_url), self.province_token_file is not None, bool(self.commune_id)]
        if any(given) and not all(given):
            raise ValueError(
                "a commune in a province needs PHONGHOP_PROVINCE_URL, PHONGHOP_PROVINCE_TOKEN_FILE and "
                "PHONGHOP_COMMUNE_ID together (or none of them)"
            )
        if self.commune_id and not is_valid_room_id(self.commune_id):
            raise ValueError(f"PHONGHOP_COMMUNE_ID {self.commune_id!r}: {ROOM_ID_HINT}")
        return self

    @model_validator(mode="after")
    def _turn_pair(self) -> Settings:
        if bool(self.turn_url) != (self.turn_secret_file is not None):
            raise ValueError("set both PHONGHOP_TURN_URL and PHONGHOP_TURN_SECRET_FILE, or neither")
        if self.turn_url and urlsplit(self.turn_url).scheme not in ("turn", "turns"):
            raise ValueError(f"PHONGHOP_TURN_URL {self.turn_url!r} is not a turn: or turns: URL")
        return self

    @field_validator("province_url", "prometheus_url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"PHONGHOP_{str(info.field_name).upper()} {value!r} is not an http:// or https:// URL")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def heartbeat_timeout(self) -> float:
        return self.heartbeat_interval * self.missed_heartbeats

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'coordinator.db'}"

    @property
    def resolved_operator_token_file(self) -> Path:
        return self.operator_token_file or self.data_dir / "operator.token"

    @property
    def resolved_recordings_dir(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def resolved_read_token_file(self) -> Path:
        return self.read_token_file or self.data_dir / "read.token"

    @property
    def calendar_secret_file(self) -> Path:
        """The secret in the calendar feed's URL (rotated with POST /api/v1/calendar/rotate)."""
        return self.data_dir / "calendar.token"
