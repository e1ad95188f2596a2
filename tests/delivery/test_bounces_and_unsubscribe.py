"""One-click unsubscribe (RFC 8058) and SMTP-time hard bounces feed back into the audience."""

from __future__ import annotations

import email
import email.policy
import re

from sqlalchemy import select

from missiva.audience.models import AudienceEvent, Subscription
from missiva.delivery import suppression

from .conftest import HARD, received_to, subscribe_many


def _mailing(client, shop, start: bool = True) -> dict:
    message = client.post(
        f"/api/v1/lists/{shop['list_id']}/messages",
        headers=shop["headers"],
        json={"subject": "News", "text": "Hello"},
    ).json()
    response = client.post(
        "/api/v1/mailings", headers=shop["headers"], json={"message_id": message["id"], "start": start}
    )
    assert response.status_code == 201, response.text
    return client.get(f"/api/v1/mailings/{response.json()['id']}", headers=shop["headers"]).json()


def _unsubscribe_path(sink, address: str) -> str:
    for message in sink.handler.received:
        if address in message.rcpt_tos:
            parsed = email.message_from_bytes(message.content, policy=email.policy.default)
            return re.search(r"<https://missiva\.test(/u/[^>]+)>", parsed["List-Unsubscribe"]).group(1)
    raise AssertionError(f"nothing sent to {address}")


def _status(db, address: str) -> tuple[str, str | None]:
    with db.session() as session:
        from missiva.audience.models import Recipient

        row = session.execute(
            select(Subscription.status, Subscription.unsubscribe_reason)
            .join(Recipient, Recipient.id == Subscription.recipient_id)
            .where(Recipient.email == address)
        ).one()
        return row.status, row.unsubscribe_reason


def test_one_click_post_unsubscribes_at_once_and_suppresses(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["anna@example.org", "bruno@example.org"])
    mailing = _mailing(client, shop)
    path = _unsubscribe_path(sink, "anna@example.org")

    page = client.get(path)
    assert page.status_code == 200 and 'method="post"' in page.text
    assert _status(db, "anna@example.org") == ("subscribed", None)  # GET changes nothing

    done = client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert done.status_code == 200
    assert _status(db, "anna@example.org") == ("unsubscribed", "list_unsubscribe")
    with db.session() as session:
        entry = suppression.find(session, shop["id"], "anna@example.org")
        assert entry.reason == "list_unsubscribe" and entry.mailing_id == mailing["id"]
        event = session.scalars(select(AudienceEvent).where(AudienceEvent.reason == "list_unsubscribe")).one()
        assert event.mailing_id == mailing["id"] and event.source == "recipient"
    sink.handler.reset()
    later = _mailing(client, shop)
    assert received_to(sink) == ["bruno@example.org"]
    assert later["counters"]["suppressed_by_reason"] == {"unsubscribed": 1}


def test_forged_or_altered_tokens_are_refused_and_change_nothing(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["anna@example.org"])
    _mailing(client, shop)
    path = _unsubscribe_path(sink, "anna@example.org")
    token = path.rsplit("/", 1)[1]
    mailing_part, recipient_part, tag = token.split(".")
    forged = [
        f"/u/{mailing_part}.r{int(recipient_part[1:]) + 1}.{tag}",  # another recipient, same tag
        f"/u/{mailing_part}.{recipient_part}.{'a' * len(tag)}",
        "/u/not-a-token",
    ]
    for bad in forged:
        assert client.post(bad, content="List-Unsubscribe=One-Click").status_code == 404
        assert client.get(bad).status_code == 404
    assert _status(db, "anna@example.org") == ("subscribed", None)
    with db.session() as session:
        assert suppression.count(session, shop["id"]) == 0


def test_550_5_1_1_hard_bounces_suppresses_unsubscribes_and_later_mailings_skip(
    client, db, shop, sink
) -> None:
    subscribe_many(
        db, shop["id"], shop["list_id"], ["good@example.org", "dead@example.org", "full@example.org"]
    )
    sink.handler.rcpt_replies["dead@example.org"] = HARD.format("dead@example.org")
    sink.handler.rcpt_replies["full@example.org"] = "552 5.2.2 Mailbox full"

    first = _mailing(client, shop)

    assert first["counters"]["sent"] == 1
    assert first["counters"]["hard_bounced"] == 1 and first["counters"]["failed"] == 1
    ledger = {
        r["address"]: r
        for r in client.get(f"/api/v1/mailings/{first['id']}/ledger", headers=shop["headers"]).json()
    }
    assert ledger["dead@example.org"]["state"] == "hard_bounce"
    assert ledger["dead@example.org"]["reply_status"] == "5.1.1"
    assert ledger["full@example.org"]["state"] == "failed" and ledger["full@example.org"]["reply_code"] == 552
    assert _status(db, "dead@example.org") == ("unsubscribed", "hard_bounce")
    assert _status(db, "full@example.org") == ("subscribed", None)
    with db.session() as session:
        assert suppression.find(session, shop["id"], "dead@example.org").reason == "hard_bounce"
        event = session.scalars(select(AudienceEvent).where(AudienceEvent.reason == "hard_bounce")).one()
        assert event.source == "system" and event.mailing_id == first["id"]

    sink.handler.reset()
    second = _mailing(client, shop)
    assert sorted(received_to(sink)) == ["full@example.org", "good@example.org"]
    assert second["counters"]["suppressed_by_reason"] == {"unsubscribed": 1}


def test_4xx_is_retried_with_backoff_then_delivered(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["slow@example.org"])
    sink.handler.transient["slow@example.org"] = 1

    mailing = _mailing(client, shop)

    row = client.get(f"/api/v1/mailings/{mailing['id']}/ledger", headers=shop["headers"]).json()[0]
    assert mailing["status"] == "finished"
    assert mailing["counters"]["sent"] == 1 and mailing["counters"]["deferred"] == 0
    assert row["state"] == "sent" and row["attempts"] == 2
    assert received_to(sink) == ["slow@example.org"]


def test_4xx_until_attempts_run_out_is_a_failure_with_its_code(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["never@example.org"])
    sink.handler.rcpt_replies["never@example.org"] = "450 4.2.0 Mailbox busy"
    mailing = _mailing(client, shop)
    row = client.get(f"/api/v1/mailings/{mailing['id']}/ledger", headers=shop["headers"]).json()[0]
    assert mailing["status"] == "finished"
    assert row["state"] == "failed" and row["reason"] == "retries_exhausted" and row["reply_code"] == 450
    assert row["attempts"] == 3
