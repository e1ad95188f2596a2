"""A real mailing's outcomes (accepted, bounced at SMTP time, bounced by DSN, complained about) reach
the endpoints that asked for them, one event per request or in batches."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from sqlalchemy import select

from missiva.audience.models import AudienceEvent
from missiva.events.models import WebhookDelivery
from missiva.inbound.processor import process_message
from tests.delivery.conftest import HARD, send_now, subscribe_many

CORPUS = Path(__file__).parent.parent / "data" / "bounces"
MESSAGE_TYPES = ["message.delivered", "message.bounced", "message.complained"]


def _soft_dsn(recipient: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@bounces.example.com\r\n"
        "Subject: Delayed Mail\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 4.2.2\r\n"
        "Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n"
        "--R\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: News\r\n\r\n--R--\r\n"
    ).encode()


def _send(client, shop) -> int:
    return send_now(client, shop, "<p>Hello [email]</p>")


def _endpoint(client, shop, url: str, **body) -> dict:
    created = client.post("/api/v1/webhooks", headers=shop["headers"], json={"url": url, **body})
    assert created.status_code == 201, created.text
    return created.json()


def test_a_mailing_s_outcomes_reach_the_endpoints_that_asked_for_them(
    client, db, settings, shop, sink, receiver, make_dispatcher
):
    outcomes = _endpoint(client, shop, receiver.url("/outcomes"), event_types=MESSAGE_TYPES)
    batched = _endpoint(
        client, shop, receiver.url("/batched"), event_types=["message.delivered"], batch_size=50
    )
    assert (outcomes["batch_size"], batched["batch_size"]) == (1, 50)
    _endpoint(client, shop, receiver.url("/audience"))  # no filter: audience events only
    people = [f"p{i}@example.org" for i in range(6)]
    subscribe_many(db, shop["id"], shop["list_id"], people)
    sink.handler.rcpt_replies["p5@example.org"] = HARD.format("p5@example.org")

    mailing_id = _send(client, shop)
    return_path = {m.rcpt_tos[0]: m.mail_from for m in sink.handler.received}
    assert sorted(return_path) == people[:5]
    # Later reports about delivered messages, sent back to the VERP address each message carried.
    inbound = dataclasses.replace(settings, bounce_domain="bounces.example.com")
    complaint = (CORPUS / "sisimai-arf-02.eml").read_bytes()
    with db.session() as session:
        process_message(
            session, _soft_dsn("p1@example.org"), [return_path["p1@example.org"]], settings=inbound
        )
        process_message(session, complaint, [return_path["p2@example.org"]], settings=inbound)

    make_dispatcher().run_until_idle(20)
    by_path: dict[str, list] = {}
    for request in receiver.requests:
        by_path.setdefault(request.path, []).append(request)

    events = [json.loads(r.body) for r in by_path["/outcomes"]]
    summary = sorted(
        (e["type"], e["recipient"]["email"], e["data"].get("kind"), e["data"].get("reported_by"))
        for e in events
    )
    assert summary == [
        ("message.bounced", "p1@example.org", "soft", "smtp"),  # the DSN came in by SMTP
        ("message.bounced", "p5@example.org", "hard", "relay"),  # the relay said 550 5.1.1
        ("message.complained", "p2@example.org", None, "smtp"),
        *[("message.delivered", f"p{i}@example.org", None, None) for i in range(5)],
    ]
    assert all(e["mailing_id"] == mailing_id and e["source"] == "system" for e in events)
    hard = next(e for e in events if e["data"].get("kind") == "hard")
    assert hard["data"]["status"] == "5.1.1" and hard["data"]["reply"].startswith("550")
    delivered = next(e for e in events if e["type"] == "message.delivered")
    assert delivered["data"]["reply"].startswith("250") and delivered["list"]["id"] == shop["list_id"]

    # The batching endpoint got the five deliveries in one signed request.
    [request] = by_path["/batched"]
    body = json.loads(request.body)
    assert body["type"] == "batch" and body["count"] == 5 and request.webhook_id == body["id"]
    assert request.webhook_id.startswith("batch_") and "webhook-signature" in request.headers
    assert sorted(e["recipient"]["email"] for e in body["events"]) == people[:5]
    assert {e["type"] for e in body["events"]} == {"message.delivered"}

    # The unfiltered endpoint: the subscriptions and the two unsubscribes, no message events.
    audience = [json.loads(r.body)["type"] for r in by_path["/audience"]]
    assert sorted(set(audience)) == ["subscription.confirmed", "subscription.unsubscribed"]
    with db.session() as session:
        deliveries = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.status != "delivered")
        ).all()
        assert deliveries == []


def test_delivered_events_are_only_written_when_an_endpoint_wants_them(client, db, shop, sink):
    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org", "b@example.org"])
    sink.handler.rcpt_replies["b@example.org"] = HARD.format("b@example.org")
    _send(client, shop)
    with db.session() as session:
        types = session.scalars(
            select(AudienceEvent.type).where(
                AudienceEvent.account_id == shop["id"], AudienceEvent.type.like("message.%")
            )
        ).all()
    # A bounce is always in the event log and feed; an accepted message only when someone listens.
    assert types == ["message.bounced"]


def test_a_failed_batch_is_retried_as_a_whole_and_each_delivery_keeps_its_own_log(
    client, db, shop, sink, receiver, make_dispatcher, clock
):
    endpoint = _endpoint(
        client, shop, receiver.url("/batched"), event_types=["message.delivered"], batch_size=2
    )
    subscribe_many(db, shop["id"], shop["list_id"], [f"q{i}@example.org" for i in range(3)])
    _send(client, shop)
    receiver.status = 503
    clock.catch_up()
    make_dispatcher(clock=clock).run_once()
    assert sorted(json.loads(r.body).get("count", 1) for r in receiver.requests) == [1, 2]
    log = client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries", headers=shop["headers"]).json()
    assert (
        sorted((d["status"], d["attempts"], d["response_code"]) for d in log["items"])
        == [("pending", 1, 503)] * 3
    )

    receiver.status = 200
    clock.advance(hours=1)
    make_dispatcher(clock=clock).run_until_idle(10)
    log = client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries", headers=shop["headers"]).json()
    assert sorted((d["status"], d["attempts"]) for d in log["items"]) == [("delivered", 2)] * 3


def test_batch_size_is_validated_and_can_be_changed(client, shop, receiver):
    url = receiver.url()
    too_big = client.post("/api/v1/webhooks", headers=shop["headers"], json={"url": url, "batch_size": 501})
    assert too_big.status_code == 422 and "batch_size" in too_big.text
    mailup = client.post(
        "/api/v1/webhooks",
        headers=shop["headers"],
        json={"url": url, "format": "mailup", "mailup": {"params": [["e", "[Email]"]]}, "batch_size": 10},
    )
    assert mailup.status_code == 422 and "only native-format endpoints take batches" in mailup.text
    endpoint = _endpoint(client, shop, url)
    changed = client.patch(
        f"/api/v1/webhooks/{endpoint['id']}", headers=shop["headers"], json={"batch_size": 100}
    )
    assert changed.status_code == 200 and changed.json()["batch_size"] == 100
    zero = client.patch(f"/api/v1/webhooks/{endpoint['id']}", headers=shop["headers"], json={"batch_size": 0})
    assert zero.status_code == 422 and "batch_size" in zero.text
