"""Replies and reports coming back: STOP over SMPP and an HTTP gateway callback, receipts by callback."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import select

from missiva.audience.models import AudienceEvent, Recipient, Subscription
from missiva.delivery.models import LedgerEntry
from missiva.delivery.sms.listener import SmsListener
from missiva.delivery.sms.models import SmsInbound

from .conftest import add_smpp_transport, sms_message, subscribe_mobiles

if TYPE_CHECKING:
    from .conftest import PeerProcess


@contextmanager
def listening(db) -> Iterator[SmsListener]:
    """`missiva sms listen` in a thread: every account's SMPP transports bound until the block ends."""
    listener = SmsListener(db, sweep_interval=0.2)
    thread = threading.Thread(target=lambda: asyncio.run(listener.run()), daemon=True)
    thread.start()
    assert listener.ready.wait(10), "the listener did not bind"
    try:
        yield listener
    finally:
        listener.stop()
        thread.join(10)


def _wait_for_inbound(db, count: int) -> list[SmsInbound]:
    deadline = time.monotonic() + 10
    while True:
        with db.session() as session:
            rows = list(session.scalars(select(SmsInbound).order_by(SmsInbound.id)))
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"{len(rows)} inbound messages, expected {count}"
        time.sleep(0.02)


def _sms_status(db, list_id: int, mobile: str, channel: str = "sms") -> Subscription:
    with db.session() as session:
        return session.scalars(
            select(Subscription)
            .join(Recipient, Recipient.id == Subscription.recipient_id)
            .where(
                Recipient.mobile == mobile, Subscription.list_id == list_id, Subscription.channel == channel
            )
        ).one()


def test_stop_reply_over_smpp_unsubscribes_the_number_from_sms_only(
    client, db, sms_shop, smpp_peer: PeerProcess
) -> None:
    from missiva.audience import lists, subscriptions

    add_smpp_transport(client, sms_shop, smpp_peer)
    subscribe_mobiles(db, sms_shop, ["+393331112222", "+393339998888"])
    with db.session() as session:
        second = lists.create_list(session, sms_shop["id"], "Second", opt_in="single").id
        subscriptions.subscribe(
            session, sms_shop["id"], second, mobile="+393331112222", channel="sms", double_opt_in=False
        )
        subscriptions.subscribe(  # the same person's email subscription must survive a STOP by SMS
            session,
            sms_shop["id"],
            sms_shop["list_id"],
            email="mario@example.org",
            mobile="+393331112222",
            channel="email",
            double_opt_in=False,
        )

    with listening(db):
        smpp_peer.command("mo 393331112222 4321 Arrêt !")
        smpp_peer.command("mo 393339998888 4321 Alt er fint, takk")
        stop, chat = _wait_for_inbound(db, 2)

    assert (stop.source, stop.action, sorted(stop.unsubscribed_lists)) == (
        "+393331112222",
        "stop",
        sorted([sms_shop["list_id"], second]),
    )
    assert (chat.action, chat.text) == ("none", "Alt er fint, takk")
    for list_id in (sms_shop["list_id"], second):
        sub = _sms_status(db, list_id, "+393331112222")
        assert (sub.status, sub.unsubscribe_reason, sub.unsubscribe_source) == (
            "unsubscribed",
            "sms_stop",
            "recipient",
        )
    assert _sms_status(db, sms_shop["list_id"], "+393331112222", "email").status == "subscribed"
    assert _sms_status(db, sms_shop["list_id"], "+393339998888").status == "subscribed"
    with db.session() as session:
        events = session.scalars(
            select(AudienceEvent).where(AudienceEvent.type == "subscription.unsubscribed")
        ).all()
    assert sorted((e.list_id, e.channel, e.reason, e.source) for e in events) == sorted(
        (list_id, "sms", "sms_stop", "recipient") for list_id in (sms_shop["list_id"], second)
    )
    feed = client.get("/api/v1/sms/inbound", headers=sms_shop["headers"]).json()
    assert [m["action"] for m in feed] == ["stop", "none"]


def test_receipts_arriving_after_the_mailing_reach_the_ledger_through_the_listener(
    client, db, sms_shop, smpp_peer: PeerProcess, monkeypatch
) -> None:
    monkeypatch.setenv("MISSIVA_SMS_RECEIPT_WAIT", "0")  # the sender unbinds at once
    add_smpp_transport(client, sms_shop, smpp_peer)
    subscribe_mobiles(db, sms_shop, ["+393330000601", "+393330000609"])
    message = sms_message(client, sms_shop, "Hello")
    with listening(db):  # bound on the same SMPP account, as a separate `missiva sms listen` would be
        mailing = client.post(
            "/api/v1/mailings", headers=sms_shop["headers"], json={"message_id": message["id"], "start": True}
        ).json()
        deadline = time.monotonic() + 10
        while True:
            counters = client.get(f"/api/v1/mailings/{mailing['id']}", headers=sms_shop["headers"]).json()[
                "counters"
            ]
            if counters["delivered"] + counters["undeliverable"] == 2:
                break
            assert time.monotonic() < deadline, counters
            time.sleep(0.05)
    assert (counters["sent"], counters["delivered"], counters["undeliverable"]) == (2, 1, 1)


def test_gateway_callback_with_the_account_token_handles_stop_and_custom_keywords(
    client, db, sms_shop
) -> None:
    subscribe_mobiles(db, sms_shop, ["+393334445555", "+393334446666"])
    token = client.post("/api/v1/sms/settings/inbound-token", headers=sms_shop["headers"]).json()
    assert token["url"].endswith(f"/sms/inbound/{token['token']}")
    path = f"/sms/inbound/{token['token']}"

    # Query string, as many gateways send it; the sender number without "+".
    stop = client.get(path, params={"from": "393334445555", "to": "4321", "text": "stop"})
    assert stop.status_code == 200, stop.text
    assert stop.json() == {"type": "inbound", "action": "stop"}
    assert _sms_status(db, sms_shop["list_id"], "+393334445555").unsubscribe_reason == "sms_stop"

    changed = client.patch(
        "/api/v1/sms/settings", headers=sms_shop["headers"], json={"stop_keywords": ["Basta"]}
    )
    assert changed.json()["stop_keywords"] == ["Basta"]
    kept = client.post(path, data={"from": "+393334446666", "text": "STOP"})  # no longer a keyword here
    assert kept.json()["action"] == "none"
    ended = client.post(path, json={"from": "+39 333 444 6666", "text": "BASTA!"})
    assert ended.json()["action"] == "stop"
    assert _sms_status(db, sms_shop["list_id"], "+393334446666").status == "unsubscribed"

    assert client.get("/sms/inbound/not-a-token", params={"from": "1", "text": "stop"}).status_code == 404
    bad = client.get(path, params={"hello": "world"})
    assert bad.status_code == 422 and "delivery report" in bad.json()["detail"]
    blank = client.patch("/api/v1/sms/settings", headers=sms_shop["headers"], json={"stop_keywords": ["!!"]})
    assert blank.status_code == 422 and blank.json()["errors"][0]["field"] == "stop_keywords.0"


def test_callback_receipts_with_decimal_ids_settle_parts_submitted_with_hex_ids(
    client, db, sms_shop, smpp_peer: PeerProcess, monkeypatch
) -> None:
    monkeypatch.setenv("MISSIVA_SMS_RECEIPT_WAIT", "0")  # the receipts come later, by callback
    # This SMSC answers submits with hex ids (1..c here) and writes receipt ids in decimal.
    add_smpp_transport(
        client, sms_shop, smpp_peer, registered_delivery=False, receipt_id_type="submit_hex_receipt_dec"
    )
    numbers = [f"+3933300007{n:02d}" for n in range(12)]
    subscribe_mobiles(db, sms_shop, numbers)
    message = sms_message(client, sms_shop, "Hello")
    mailing = client.post(
        "/api/v1/mailings", headers=sms_shop["headers"], json={"message_id": message["id"], "start": True}
    ).json()
    token = client.post("/api/v1/sms/settings/inbound-token", headers=sms_shop["headers"]).json()["token"]
    hex_ids = [str(r["message_ids"][0]) for r in smpp_peer.records()]
    assert {"a", "b", "c"} <= set(hex_ids)

    for hex_id in hex_ids:
        reply = client.post(
            f"/sms/inbound/{token}?transport=peer", data={"id": str(int(hex_id, 16)), "status": "DELIVRD"}
        )
        assert reply.json() == {"type": "receipt", "action": None}

    counters = client.get(f"/api/v1/mailings/{mailing['id']}", headers=sms_shop["headers"]).json()["counters"]
    assert counters["delivered"] == 12
    with db.session() as session:
        row = session.scalars(select(LedgerEntry).where(LedgerEntry.message_ref == "a")).one()
    assert row.delivery == "delivered"
