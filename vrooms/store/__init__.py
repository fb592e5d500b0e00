"""Storage: one SQLAlchemy Core code path for SQLite (default) and PostgreSQL."""

from vrooms.store.database import Database

__all__ = ["Database"]
