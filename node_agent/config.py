"""The agent's TOML config (written by the node_agent Ansible role)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from phonghop.dialing import control_url
from phonghop.identity import ROOM_ID_HINT, is_valid_room_id
from phonghop.protocol import DeviceName


class ConfigError(Exception):
    """The config cannot be used; the message says which key and how to fix it."""


@dataclass(frozen=True)
class Voice:
    """How a room's sound is encoded: Opus, one channel, at a voice's bitrate (aiortc's default is 96 kbit/s
    stereo), with in-band FEC so that a lost packet is mostly rebuilt from the next one."""

    bitrate: int = 24_000
    fec: bool = True
    expected_loss: int = 5  # percent of packets the FEC is sized for


class TestSource(BaseModel):
    """The synthetic room used by the demo and the tests instead of real devices."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    # Devices to report as missing, to exercise monitoring without unplugging anything.
    missing_devices: list[DeviceName] = Field(default_factory=list)
    # Send the room's tone (True) or silence (False), to exercise the active speaker.
    talking: bool = True
    width: int = Field(default=640, ge=64, le=1920, multiple_of=2)
    height: int = Field(default=360, ge=64, le=1080, multiple_of=2)
    fps: int = Field(default=15, ge=1, le=30)
    bitrate: int = Field(default=500_000, ge=50_000, le=4_000_000)


class Media(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    # Decode what arrives (a real room, or a test reading the test-source codes back).
    # A simulated room only counts packets, so that many fit on one machine.
    decode: bool = False
    # The room's sound: Opus mono at a voice bitrate, with in-band FEC sized for this much loss (percent).
    opus_bitrate: int = Field(default=24_000, ge=6_000, le=128_000)
    opus_fec: bool = True
    opus_expected_loss: int = Field(default=5, ge=0, le=50)
    # The most the room's link carries towards it (kbit/s; a room known to be on 3G): the coordinator
    # sends it the lower quality of the picture while the higher one and the sound would not fit.
    receive_kbps: int | None = Field(default=None, ge=64, le=1_000_000)
    # The picture is also sent in a lower quality, which the coordinator gives to rooms on weak links.
    two_qualities: bool = True
    low_width: int = Field(default=320, ge=64, le=1280, multiple_of=2)
    low_height: int = Field(default=180, ge=64, le=720, multiple_of=2)
    low_bitrate: int = Field(default=150_000, ge=30_000, le=1_000_000)

    @property
    def voice(self) -> Voice:
        return Voice(self.opus_bitrate, self.opus_fec, self.opus_expected_loss)


class Devices(BaseModel):
    """Which camera, microphone and speaker to use.

    "auto" takes the test source while ``[test_source] enabled`` is true (simulated rooms)
    and the first device found otherwise; "test" always takes the test source; anything
    else names a device: a V4L2 path such as /dev/video0 for the camera, an ALSA or
    PulseAudio/PipeWire device name (as ``phonghop-agent devices`` lists it) for sound.
    """

    model_config = ConfigDict(extra="forbid")
    camera: str = Field(default="auto", min_length=1)
    microphone: str = Field(default="auto", min_length=1)
    speaker: str = Field(default="auto", min_length=1)
    camera_width: int = Field(default=1280, ge=64, le=1920, multiple_of=2)
    camera_height: int = Field(default=720, ge=64, le=1080, multiple_of=2)
    camera_fps: int = Field(default=15, ge=1, le=30)
    # How often a missing or failed device is looked for again.
    retry_seconds: float = Field(default=3.0, gt=0, le=300)


class Display(BaseModel):
    """The TV: an SDL2 window (full screen on the room's TV); off for simulated rooms."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    fullscreen: bool = True
    width: int = Field(default=1280, ge=320, le=3840)
    height: int = Field(default=720, ge=180, le=2160)
    fps: int = Field(default=10, ge=1, le=30)
    # Upload a thumbnail of the TV to the coordinator this often while the picture changes; 0 never.
    upload_seconds: float = Field(default=5.0, ge=0, le=3600)
    thumbnail_width: int = Field(default=640, ge=160, le=1920)
    font_file: Path | None = Field(default=None, description="a TTF with Vietnamese glyphs; default DejaVu Sans")


class Debug(BaseModel):
    """Test hooks; never enable them on a room laptop."""

    model_config = ConfigDict(extra="forbid")
    # POST /debug/hang on the local API blocks the event loop (tests the systemd watchdog).
    allow_hang: bool = False
    # POST /debug/devices/{name}/fail and .../restore break a test-source device (tests unplugging).
    allow_device_faults: bool = False


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str
    # The room's name as people say it (the inventory's phonghop_room_name), for the TV and the slate.
    room_name: str = Field(default="", max_length=200)
    # For lab and test coordinators only: let coordinator_url be http://, which sends the room token
    # unencrypted. A room laptop always dials https:// (before coordinator_url: its check reads this).
    allow_plain_http: bool = False
    coordinator_url: str = Field(description="https://host:port of the coordinator (http:// only in labs)")
    token_file: Path
    ca_file: Path | None = Field(default=None, description="CA bundle for a lab coordinator's TLS")
    heartbeat_interval: float = Field(default=5.0, gt=0, le=300)
    reconnect_initial_delay: float = Field(default=1.0, ge=0, le=60)
    # At least this often the agent dials again while it cannot reach the coordinator: back within
    # seconds of a link's return or a coordinator's restart.
    reconnect_max_delay: float = Field(default=4.0, gt=0, le=600)
    log_level: str = "INFO"
    # Status and raise-hand API on 127.0.0.1 for the technician and the room's remote; 0 turns it off.
    local_api_port: int = Field(default=8765, ge=0, le=65535)
    # The local API's secret, made anew at every start (mode 0600); the local tools read it from here.
    # Default: local-api.secret next to token_file. Under systemd: a file in the unit's RuntimeDirectory.
    local_api_secret_file: Path | None = None
    test_source: TestSource = Field(default_factory=TestSource)
    media: Media = Field(default_factory=Media)
    devices: Devices = Field(default_factory=Devices)
    display: Display = Field(default_factory=Display)
    debug: Debug = Field(default_factory=Debug)

    @property
    def local_api_secret_path(self) -> Path:
        return self.local_api_secret_file or self.token_file.parent / "local-api.secret"

    @property
    def display_name(self) -> str:
        return self.room_name or self.room

    def device_choice(self, kind: str) -> str:
        """The configured device with "auto" resolved for simulated rooms ("test") or real ones ("auto")."""
        value = str(getattr(self.devices, kind))
        if value == "auto" and self.test_source.enabled:
            return "test"
        return value

    @field_validator("room")
    @classmethod
    def _room_id(cls, value: str) -> str:
        if not is_valid_room_id(value):
            raise ValueError(f"{value!r} is not a room id: {ROOM_ID_HINT}")
        return value

    @field_validator("coordinator_url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an https:// URL, e.g. https://phonghop.example:8443")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(
                f"{value!r} carries a query, fragment or user name; give only https://host[:port][/path] "
                "(the room token is read from token_file and sent in a header, never in the URL)"
            )
        if parts.scheme == "http" and not info.data.get("allow_plain_http", False):
            raise ValueError(
                f"{value!r} would send the room token unencrypted; use the coordinator's https:// address "
                "(e.g. https://phonghop.example), or, for a lab or test coordinator only, "
                "set allow_plain_http = true at the top of the config"
            )
        return value.rstrip("/")

    @property
    def control_url(self) -> str:
        return control_url(self.coordinator_url, self.room)

    def read_token(self) -> str:
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the room token from {self.token_file} ({exc.strerror}); "
                "enroll the room (or re-issue its token) and write the token there"
            ) from exc
        if not token:
            raise ConfigError(f"the token file {self.token_file} is empty; re-issue the room's token")
        return token


def load_config(path: Path) -> AgentConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from exc
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        raise ConfigError(f"config {path}: {problems}") from exc
