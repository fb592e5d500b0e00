"""Files of the data directory: private to the service's user from the moment they exist.

The data directory holds the database (identities, rosters, call records, webhook
secrets), the access and signing keys, TLS keys and Janus's configuration with its
secrets. Another local user must not read any of it, and a file created 0644 and then
``chmod``-ed is readable in between, so the process's umask does the work: every file
and socket the service, its workers, the call host and Janus create is born private.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def seal_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` private, and make what an older version left there private too."""
    os.umask(PRIVATE_UMASK)  # inherited by every child process (workers, call host, Janus)
    data_dir.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    for path in (data_dir, *data_dir.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
            continue
        path.chmod(DIRECTORY_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    tmp = path.with_name(f"{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def append_private(path: Path, data: bytes) -> None:
    """Add ``data`` at the end of ``path`` (created readable by this user only); not synced: a
    line lost in a crash costs little where this is used (a transcript's line)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    with os.fdopen(fd, "ab") as handle:
        handle.write(data)
