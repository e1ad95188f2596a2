"""Message -> mailing -> ledger -> SMTP -> counters, over the REST API against a real SMTP server."""

from __future__ import annotations

import email
import email.policy

from missiva.inbound import verp
from missiva.keys import derived_secret

from .conftest import received_to, subscribe_many


def test_a_mailing_reaches_every_subscriber_once_with_standard_headers(client, db, shop, sink) -> None:
    emails = [f"p{i}@example.org" for i in range(7)]
    subscribe_many(db, shop["id"], shop["list_id"], emails, fields={"nome": "Anna"})
    created = client.post(
        f"/api/v1/lists/{shop['list_id']}/messages",
        headers=shop["headers"],
        json={"subject": "Ciao [nome|amico]", "html": "<p>Hello [nome], this is for [email]</p>"},
    )
    assert created.status_code == 201, created.text

    started = client.post(
        "/api/v1/mailings",
        headers=shop["headers"],
        json={"message_id": created.json()["id"], "start": True},
    )
    assert started.status_code == 201, started.text
    mailing = client.get(f"/api/v1/mailings/{started.json()['id']}", headers=shop["headers"]).json()

    assert mailing["status"] == "finished"
    assert mailing["counters"]["sent"] == 7 and mailing["counters"]["queued"] == 0
    assert sorted(received_to(sink)) == sorted(emails)
    message = email.message_from_bytes(sink.handler.received[0].content, policy=email.policy.default)
    assert str(message["Subject"]) == "Ciao Anna"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = message["List-Unsubscribe"]
    assert "<https://missiva.test/u/m" in unsubscribe and "mailto:unsubscribe+m" in unsubscribe
    assert "@bounces.example.com>" in unsubscribe
    assert message["Message-ID"].endswith("@news.example.com>")
    assert message["Feedback-ID"]
    envelope = sink.handler.received[0].mail_from
    mailing_id, recipient_id = verp.decode(envelope, secret=derived_secret("verp"))
    assert mailing_id == mailing["id"]
    ledger = client.get(f"/api/v1/mailings/{mailing['id']}/ledger", headers=shop["headers"]).json()
    assert {row["state"] for row in ledger} == {"sent"}
    assert recipient_id in {row["recipient_id"] for row in ledger}
    assert all(row["message_ref"] and row["reply_code"] == 250 for row in ledger)
