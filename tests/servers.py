"""Real servers for tests (kept importable from here for older test modules)."""

from missiva.testing.postgres import PostgresServer, pg_bin

__all__ = ["PostgresServer", "pg_bin"]
