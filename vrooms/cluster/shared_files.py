"""The data-dir files every node of a cluster must hold the same, shared through PostgreSQL.

Access keys (a key rotated on one node is accepted by all), the token-signing key and resource
id (a token issued through any node is valid on every node), the callback-signing key (one JWKS
for apps) and the TLS CA (each node issues its own server certificate from it, and nodes trust
each other's). At start-up a node offers its files (the first node's win: insert if absent) and
takes the cluster's; while it runs it takes changes (``vrooms keys rotate`` on any node).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from vrooms.api.times import now_micros
from vrooms.config import Settings
from vrooms.store.database import Database
from vrooms.store.files import write_private
from vrooms.store.tables import shared_files

log = logging.getLogger("vrooms.cluster")

KEYS = "keys.json"
_CA = ("tls/ca.pem", "tls/ca-key.pem")
SHARED = (KEYS, "token-signing-key.pem", "resource-id", "callback-signing-key.pem", *_CA)


def _path(settings: Settings, name: str) -> Path:
    return settings.effective_keys_file if name == KEYS else settings.data_dir / name


async def share(settings: Settings, database: Database) -> list[str]:
    """Offer this node's files, take the cluster's; the names of the files that changed here."""
    changed = []
    async with database.write() as conn:
        for name in SHARED:
            path = _path(settings, name)
            if path.exists():
                await conn.execute(
                    insert(shared_files)
                    .values(name=name, content=path.read_bytes(), updated_at=now_micros())
                    .on_conflict_do_nothing()
                )
        rows = (await conn.execute(select(shared_files.c.name, shared_files.c.content))).all()
    for row in rows:
        if _take(settings, str(row.name), bytes(row.content)):
            changed.append(str(row.name))
    if any(name in _CA for name in changed):  # a server certificate of another CA is of no use now
        for stale in ("server.pem", "server-key.pem"):
            (settings.tls_dir / stale).unlink(missing_ok=True)
    return changed


async def publish(settings: Settings, database: Database, name: str) -> None:
    """This node changed a shared file (a key rotation): every node takes it."""
    async with database.write() as conn:
        await conn.execute(
            update(shared_files)
            .where(shared_files.c.name == name)
            .values(content=_path(settings, name).read_bytes(), updated_at=now_micros())
        )


async def take_changes(settings: Settings, database: Database) -> None:
    """Bring the local copies up to date (run every second or so while the node runs)."""
    async with database.read() as conn:
        rows = (await conn.execute(select(shared_files.c.name, shared_files.c.content))).all()
    for row in rows:
        if _take(settings, str(row.name), bytes(row.content)):
            log.warning("took the cluster's new %s", row.name)


def _take(settings: Settings, name: str, content: bytes) -> bool:
    if name not in SHARED:
        return False
    path = _path(settings, name)
    if path.exists() and path.read_bytes() == content:
        return False
    write_private(path, content)
    return True
