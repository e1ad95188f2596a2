"""The settings and database this process serves, set once by `serve`, the worker or a test.

Background tasks run far from the request that queued them; they find their database here rather than
through arguments, so a task payload stays a few ids.
"""

from __future__ import annotations

from missiva.config import Settings, get_settings
from missiva.db import Database, get_database

_current: Settings | None = None


def configure(settings: Settings) -> None:
    """Make `settings` the process's settings."""
    global _current
    _current = settings


def settings() -> Settings:
    """The configured settings (the environment's if none were set)."""
    return _current or get_settings()


def database() -> Database:
    """The database of the configured settings."""
    return get_database(settings().database_url)
