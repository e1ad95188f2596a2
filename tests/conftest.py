"""Fixtures shared by the whole suite.

Every test that uses `db` runs twice: on SQLite and on a real PostgreSQL server started for the test
session. Schemas are migrated once per backend with Alembic (so migrations are tested too) and emptied
after each test.
"""

from __future__ import annotations

import os
import tempfile

# Before anything imports missiva: run background tasks inline, keep data out of the work tree.
os.environ["MISSIVA_HUEY_IMMEDIATE"] = "1"
os.environ.setdefault("MISSIVA_DATA_DIR", tempfile.mkdtemp(prefix="missiva-test-"))
os.environ.setdefault("MISSIVA_SECRET_KEY", "test-secret-key-not-for-production")

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from missiva import migrate, runtime
from missiva.cache import clear_all
from missiva.config import Settings
from missiva.db import Base, get_database
from missiva.testing.postgres import PostgresServer

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _migrated() -> dict[str, str]:
    """Backend name -> URL of a migrated database, created on first use."""
    return {}


def _database_url(
    backend: str,
    migrated: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    if backend not in migrated:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'missiva.db'}"
        else:
            url = request.getfixturevalue("pg_server").create_database("missiva_test")
        migrate.upgrade(url)
        migrated[backend] = url
    return migrated[backend]


def _empty(url: str) -> None:
    db = get_database(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture(params=BACKENDS)
def settings(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    _migrated: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Settings]:
    """Settings for one test on one backend, with a fresh data directory and an empty database."""
    url = _database_url(request.param, _migrated, request, tmp_path_factory)
    base = Settings.from_env(
        {
            "MISSIVA_DATA_DIR": str(tmp_path),
            "MISSIVA_DATABASE_URL": url,
            "MISSIVA_SECRET_KEY": "test-secret",
            "MISSIVA_HUEY_IMMEDIATE": "1",
        }
    )
    current = dataclasses.replace(base, base_url="http://missiva.test")
    runtime.configure(current)
    yield current
    _empty(url)
    clear_all()


@pytest.fixture
def db(settings: Settings):
    """The test's Database (SQLite or PostgreSQL)."""
    return get_database(settings.database_url)


@pytest.fixture
def app(settings: Settings):
    from missiva.app import create_app

    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    """An HTTP client calling the app as if from 127.0.0.1 (on the default allowlist)."""
    with TestClient(app, client=("127.0.0.1", 40000)) as c:
        yield c


def make_account(db, name: str = "Shop", **options: Any) -> dict[str, Any]:
    """Create an account; its id, API key and ready-made auth headers."""
    from missiva.bootstrap import create_account

    with db.session() as session:
        new = create_account(session, name, **options)
        out = {
            "id": new.account.id,
            "key": new.api_key,
            "ws_username": new.ws_username,
            "ws_password": new.ws_password,
        }
    out["headers"] = {"Authorization": f"Bearer {out['key']}"}
    return out


@pytest.fixture
def account(db) -> dict[str, Any]:
    return make_account(db, "Shop A", default_country="IT")


@pytest.fixture
def other_account(db) -> dict[str, Any]:
    return make_account(db, "Shop B", default_country="IT")
