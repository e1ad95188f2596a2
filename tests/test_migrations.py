"""The Alembic migrations build exactly the schema the models describe, on both databases.

Every test runs against a migrated database, so a model change without its migration would only
show up as odd failures (a missing column on PostgreSQL, a missing index that makes a claim slow);
this names the difference instead.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from missiva.db import Base


def test_the_migrated_schema_matches_the_models(db):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_the_latest_migration_adds_the_webhook_batch_size_with_a_default(db):
    columns = {c["name"]: c for c in inspect(db.engine).get_columns("webhook_endpoints")}
    assert "batch_size" in columns and not columns["batch_size"]["nullable"]
    assert "1" in str(columns["batch_size"]["default"])
