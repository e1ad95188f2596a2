"""Engine, sessions and the declarative Base shared by every domain's models.

SQLite and PostgreSQL run the same code path. On SQLite every transaction starts with BEGIN IMMEDIATE so
two writers queue on the database lock instead of failing when a read lock is upgraded mid-transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# A 64-bit key that SQLite still treats as its rowid alias (only INTEGER PRIMARY KEY autoincrements there).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite drops the offset on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base for every table."""

    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine configured for `url`'s database (SQLite pragmas, PostgreSQL pool)."""
    if "poolclass" not in kwargs:
        is_sqlite = url.startswith("sqlite")
        kwargs.setdefault("pool_size", 8 if is_sqlite else 20)
        kwargs.setdefault("max_overflow", 16 if is_sqlite else 20)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the "begin" hook below own transactions
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # SQLite has one writer at a time. Threads of this process queue on a lock and start the moment
        # it is free, instead of polling in SQLite's busy handler, whose growing sleeps make the tail.
        # A plain Lock, because a transaction may end in another thread than it began (async routes);
        # a flag on the connection makes each begin release exactly once.
        writer = threading.Lock()

        def _release(info: dict[str, Any]) -> None:
            if info.pop("missiva_writer", False):
                writer.release()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if not writer.acquire(timeout=30):
                raise TimeoutError("database is locked by another transaction for 30 s")
            conn.info["missiva_writer"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(conn.info)
                raise

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _sqlite_end(conn: Any) -> None:
            _release(conn.info)

        @event.listens_for(engine, "checkin")
        def _sqlite_checkin(_dbapi_conn: Any, record: Any) -> None:
            _release(record.info)  # a transaction that ended without an event still frees the lock

        return engine
    # No pre-ping: it costs a round trip per request; a dropped connection fails one call and is replaced.
    return create_engine(url, **kwargs)


class Database:
    """An engine and its session factory; one per database URL per process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends without error and rolls back otherwise."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


_databases: dict[str, Database] = {}
_lock = threading.Lock()


def get_database(url: str) -> Database:
    """The process-wide Database for `url`."""
    with _lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = Database(url)
        return db


def on_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run `fn` once `session`'s current transaction has committed (never if it rolls back).

    Side effects that leave the database (enqueueing a confirmation mail) must not happen for a change
    that is then rolled back.
    """
    session.info.setdefault("on_commit", []).append(fn)


@event.listens_for(Session, "after_commit")
def _run_on_commit(session: Session) -> None:
    # SQLAlchemy also fires after_commit when a SAVEPOINT is released: the real transaction (and, on
    # SQLite, the database lock) is still open then, so the hooks wait for the outermost commit.
    if session.get_nested_transaction() is not None:
        return
    hooks = session.info.pop("on_commit", [])
    for fn in hooks:
        fn()


@event.listens_for(Session, "after_rollback")
def _drop_on_commit(session: Session) -> None:
    # A savepoint rolled back (an expected error caught inside the transaction) leaves the outer
    # transaction, and what it queued, alive.
    if session.get_nested_transaction() is not None:
        return
    session.info.pop("on_commit", None)


def dialect_insert(session: Session) -> Any:
    """The `insert` construct of the session's database, the one with ON CONFLICT clauses."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def insert_ignore(
    session: Session,
    model: type[Base],
    values: dict[str, Any],
    conflict: list[str] | None = None,
    *,
    returning_entity: bool = False,
) -> Any:
    """INSERT a row unless it clashes with a unique key (`conflict`, or any when None).

    Returns whether a row was inserted, or with `returning_entity` the new ORM object (None when the
    row existed). Two concurrent callers creating the same row both succeed and exactly one row exists
    afterwards, which a SELECT-then-INSERT cannot promise.
    """
    stmt = dialect_insert(session)(model).values(**values).on_conflict_do_nothing(index_elements=conflict)
    if returning_entity:
        return session.scalars(stmt.returning(model)).first()
    key = list(model.__table__.primary_key.columns)
    return session.execute(stmt.returning(*key)).first() is not None
