"""How one batch resolves its rows: recipients it creates, recipients it finds, and rows of the same
batch that meet on one mobile number (SQLite and PostgreSQL take the same steps to the same state)."""

from __future__ import annotations

from pathlib import Path

from import_helpers import audience_state, counters, import_file, make_list
from sqlalchemy import select

from missiva.audience import events
from missiva.audience.models import AudienceEvent, Recipient


def events_of(db, account_id: int) -> list[tuple[str, str | None, str | None, dict]]:
    with db.session() as session:
        rows = session.execute(
            select(AudienceEvent.type, AudienceEvent.channel, Recipient.email, AudienceEvent.data)
            .join(Recipient, Recipient.id == AudienceEvent.recipient_id)
            .where(AudienceEvent.account_id == account_id)
            .order_by(AudienceEvent.id)
        ).all()
    return [(r.type, r.channel, r.email, r.data) for r in rows]


def test_rows_sharing_a_mobile_in_one_batch_meet_on_the_recipient_the_first_created(db, account, tmp_path):
    lst = make_list(db, account["id"])
    path = Path(tmp_path / "crm.csv")
    path.write_text(
        "email;cellulare;nome\n"
        "anna@example.it;+393331112222;Anna\n"
        "bruno@example.it;;Bruno\n"
        ";+393331112222;Anna SMS\n"
    )
    run = import_file(db, account["id"], path, list_id=lst["id"], channels="both")
    assert counters(run) == {
        "total": 3,
        "new": 2,
        "updated": 1,
        "unchanged": 0,
        "unsubscribed": 0,
        "skipped": 0,
        "errors": 0,
    }
    state = audience_state(db, account["id"])
    assert state["recipients"] == [
        ("anna@example.it", "+393331112222", {"1": "Anna SMS"}),
        ("bruno@example.it", None, {"1": "Bruno"}),
    ]
    assert [(s[0], s[2], s[3]) for s in state["subscriptions"]] == [
        ("anna@example.it", "email", "subscribed"),
        ("anna@example.it", "sms", "subscribed"),
        ("bruno@example.it", "email", "subscribed"),
    ]


def test_every_imported_event_carries_the_recipient_as_the_batch_left_it(db, account, tmp_path):
    lst = make_list(db, account["id"], groups=("Vip",))
    path = Path(tmp_path / "crm.csv")
    path.write_text(
        "email;cellulare;nome;gruppi\n"
        "anna@example.it;+393331112222;Anna;Vip\n"
        "bruno@example.it;;Bruno;\n"
        ";+393331112222;Anna SMS;\n"
    )
    import_file(db, account["id"], path, list_id=lst["id"], channels="both")
    with db.session() as session:
        now = {
            r.email: events.snapshot(session, r)
            for r in session.scalars(select(Recipient).where(Recipient.account_id == account["id"]))
        }
    seen = events_of(db, account["id"])
    assert sorted((t, c, e) for t, c, e, _ in seen) == [
        ("recipient.updated", None, "anna@example.it"),
        ("subscription.confirmed", "email", "anna@example.it"),
        ("subscription.confirmed", "email", "bruno@example.it"),
        ("subscription.confirmed", "sms", "anna@example.it"),
    ]
    for _, _, email, data in seen:
        assert {k: data[k] for k in now[email]} == now[email]


def test_an_import_into_a_list_with_known_recipients_creates_only_the_new_ones(db, account, tmp_path):
    lst = make_list(db, account["id"])
    first = Path(tmp_path / "first.csv")
    first.write_text("email;nome\n" + "".join(f"old{i}@example.it;Old {i}\n" for i in range(30)))
    import_file(db, account["id"], first, list_id=lst["id"], batch_size=7)
    mixed = Path(tmp_path / "mixed.csv")
    mixed.write_text(
        "email;nome\n"
        + "".join(f"old{i}@example.it;Old {i}\n" for i in range(0, 30, 2))
        + "".join(f"new{i}@example.it;New {i}\n" for i in range(20))
        + "".join(f"old{i}@example.it;Renamed {i}\n" for i in range(1, 30, 2))
    )
    run = import_file(db, account["id"], mixed, list_id=lst["id"], batch_size=7)
    assert (run.rows_new, run.rows_updated, run.rows_unchanged) == (20, 15, 15)
    again = import_file(db, account["id"], mixed, list_id=lst["id"], batch_size=7)
    assert (again.rows_new, again.rows_updated, again.rows_unchanged) == (0, 0, 50)
    with db.session() as session:
        assert session.query(AudienceEvent).filter_by(type="subscription.confirmed").count() == 50
        assert session.query(AudienceEvent).filter_by(type="recipient.updated").count() == 15
