"""After-commit hooks and savepoints: inbound actions unsubscribe inside SAVEPOINTs (`begin_nested`),
and what they queue (webhook nudges) must run after the real commit, never at a savepoint."""

from __future__ import annotations

from sqlalchemy import text

from missiva.db import on_commit


def test_hooks_run_once_after_the_outer_commit_and_survive_a_rolled_back_savepoint(db) -> None:
    ran: list[str] = []
    with db.session() as session:
        on_commit(session, lambda: ran.append("outer"))
        with session.begin_nested():
            session.execute(text("SELECT 1"))
            on_commit(session, lambda: ran.append("inside"))
        assert ran == []  # a released savepoint is not a commit
        try:
            with session.begin_nested():
                raise LookupError("not subscribed")  # an expected error, caught
        except LookupError:
            pass
        assert ran == []
    assert ran == ["outer", "inside"]


def test_hooks_are_dropped_when_the_transaction_rolls_back(db) -> None:
    ran: list[str] = []
    session = db.sessionmaker()
    try:
        session.execute(text("SELECT 1"))
        on_commit(session, lambda: ran.append("x"))
        session.rollback()
        session.commit()
    finally:
        session.close()
    assert ran == []
