"""One typed settings object for the whole service.

Values come from, in order of precedence: CLI flags (passed as keyword arguments),
``VROOMS_*`` environment variables, then the defaults below. Worker processes
started by uvicorn read the same environment, which is why the CLI exports its
flags as ``VROOMS_*`` variables before it starts them.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "vrooms"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VROOMS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    data_dir: Path = Field(default_factory=_default_data_dir)
    # None means "SQLite file in the data dir"; see ``effective_database_url``.
    database_url: str | None = None
    tls: bool = True
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)

    # Access keys: from the environment, or else from ``<data_dir>/keys.json``
    # (created on first start, rotated with ``vrooms keys rotate``).
    access_key_primary: SecretStr | None = None
    access_key_secondary: SecretStr | None = None
    keys_file: Path | None = None

    # ACS accepts an ``x-ms-date`` up to 15 minutes away from the server clock.
    hmac_clock_skew_seconds: int = Field(default=15 * 60, ge=0)
    # Largest roster a room may have; ACS documents a per-room participant limit too.
    max_room_participants: int = Field(default=1000, ge=1)
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    # ACS tracks repeatable requests for 5 minutes (REST docs, "Repeatable requests").
    repeatability_window_seconds: int = Field(default=5 * 60, ge=1)
    default_page_size: int = Field(default=100, ge=1, le=1000)
    # The operation log is written in batches so that reads stay read-only on disk.
    oplog_flush_interval_seconds: float = Field(default=0.2, gt=0)
    log_level: str = "info"

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'vrooms.db'}"

    @property
    def effective_keys_file(self) -> Path:
        return self.keys_file or self.data_dir / "keys.json"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"
