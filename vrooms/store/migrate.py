"""Bring a database to the newest schema with Alembic (run by ``vrooms serve`` and ``vrooms migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from vrooms.store.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade_to_head(database: Database) -> None:
    async with database.write() as connection:
        await connection.run_sync(_upgrade)
