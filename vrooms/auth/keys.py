"""Access keys for HMAC authentication: two of them, so one can be rotated at a time.

Keys live in ``<data_dir>/keys.json`` (mode 0600) unless both are given in the
environment. A running server notices a rotated file within a second, so rotating
the secondary key, moving clients to it, then rotating the primary causes no downtime.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vrooms.config import Settings
from vrooms.store.files import write_private

KeyName = Literal["primary", "secondary"]
_RELOAD_INTERVAL_SECONDS = 1.0


def generate_key() -> str:
    """A key shaped like an ACS access key: base64 of 64 random bytes."""
    return base64.b64encode(secrets.token_bytes(64)).decode()


@dataclass(frozen=True)
class AccessKeys:
    primary: str
    secondary: str

    def decoded(self) -> tuple[bytes, bytes]:
        return base64.b64decode(self.primary), base64.b64decode(self.secondary)


def _write_atomically(path: Path, keys: AccessKeys) -> None:
    write_private(path, json.dumps({"primary": keys.primary, "secondary": keys.secondary}).encode())


def load_or_create(settings: Settings) -> AccessKeys:
    if settings.access_key_primary is not None:
        primary = settings.access_key_primary.get_secret_value()
        secondary = (
            settings.access_key_secondary.get_secret_value() if settings.access_key_secondary is not None else primary
        )
        return AccessKeys(primary, secondary)
    path = settings.effective_keys_file
    if not path.exists():
        _write_atomically(path, AccessKeys(generate_key(), generate_key()))
    data = json.loads(path.read_text())
    return AccessKeys(data["primary"], data["secondary"])


def rotate(settings: Settings, which: KeyName) -> AccessKeys:
    if settings.access_key_primary is not None:
        raise RuntimeError(
            "The access keys come from VROOMS_ACCESS_KEY_* environment variables; change them there instead."
        )
    current = load_or_create(settings)
    new = (
        AccessKeys(generate_key(), current.secondary)
        if which == "primary"
        else AccessKeys(current.primary, generate_key())
    )
    _write_atomically(settings.effective_keys_file, new)
    return new


class KeyRing:
    """The keys a server accepts, re-read from disk when the file changes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._from_env = settings.access_key_primary is not None
        self._keys = load_or_create(settings).decoded()
        self._checked_at = time.monotonic()
        self._mtime = self._file_mtime()

    def _file_mtime(self) -> float:
        if self._from_env:
            return 0.0
        return self._settings.effective_keys_file.stat().st_mtime

    def keys(self) -> tuple[bytes, bytes]:
        now = time.monotonic()
        if not self._from_env and now - self._checked_at >= _RELOAD_INTERVAL_SECONDS:
            self._checked_at = now
            mtime = self._file_mtime()
            if mtime != self._mtime:
                self._mtime = mtime
                self._keys = load_or_create(self._settings).decoded()
        return self._keys
