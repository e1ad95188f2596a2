"""SMS messages and mailings over the REST API, sent through a real SMSC simulator process."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from sqlalchemy import select

from missiva.audience.models import AudienceEvent
from missiva.delivery.models import LedgerEntry
from missiva.delivery.sms.models import SmsPart

from .conftest import add_smpp_transport, sms_message, subscribe_mobiles

if TYPE_CHECKING:
    from .conftest import PeerProcess

# Rendered for Maria: 199 characters of text and one emoji, the emoji across the first part boundary.
EMOJI_TEXT = "Ciao [nome], " + "o" * 54 + "🎉" + " saldi fino al 50% su tutta la collezione!".ljust(133, ".")


def _start(client, shop, message_id: int, **body) -> dict:
    response = client.post(
        "/api/v1/mailings", headers=shop["headers"], json={"message_id": message_id, "start": True, **body}
    )
    assert response.status_code == 201, response.text
    return client.get(f"/api/v1/mailings/{response.json()['id']}", headers=shop["headers"]).json()


def test_emoji_text_goes_out_as_ucs2_parts_and_is_reassembled_by_the_smsc(
    client, db, sms_shop, smpp_peer: PeerProcess
) -> None:
    add_smpp_transport(client, sms_shop, smpp_peer)
    subscribe_mobiles(db, sms_shop, ["333 123 4567"], nome="Maria")
    expected = EMOJI_TEXT.replace("[nome]", "Maria")
    assert len(expected) == 200
    message = sms_message(client, sms_shop, EMOJI_TEXT)

    preview = client.get(
        f"/api/v1/messages/{message['id']}/preview", headers=sms_shop["headers"]
    ).json()  # blank sample recipient: "[nome]" renders empty
    assert preview["channel"] == "sms" and preview["from"] == "Shop"
    assert preview["sms"]["encoding"] == "ucs2" and preview["sms"]["unencodable"] == ["🎉"]
    person = client.get("/api/v1/recipients", headers=sms_shop["headers"], params={"mobile": "+393331234567"})
    mine = client.get(
        f"/api/v1/messages/{message['id']}/preview",
        headers=sms_shop["headers"],
        params={"recipient_id": person.json()["items"][0]["id"]},
    ).json()
    # 199 BMP characters + a surrogate pair = 201 UTF-16 units: 4 parts of at most 67.
    assert mine["text"] == expected and mine["to"] == "+393331234567"
    assert (mine["sms"]["segments"], mine["sms"]["length"]) == (4, 201)

    mailing = _start(client, sms_shop, message["id"])

    [record] = smpp_peer.records()
    assert record["text"] == expected
    assert (record["parts"], record["data_coding"]) == (4, 8)
    assert "".join(record["part_texts"]) == expected  # no part splits the emoji
    assert (record["source"], record["dest"]) == ("Shop", "393331234567")
    assert mailing["channel"] == "sms" and mailing["status"] == "finished"
    assert mailing["counters"]["sent"] == 1 and mailing["counters"]["segments"] == 4
    [row] = client.get(f"/api/v1/mailings/{mailing['id']}/ledger", headers=sms_shop["headers"]).json()
    assert row["address"] == "+393331234567" and row["state"] == "sent"
    assert row["message_ref"].split(",") == record["message_ids"]


def test_delivery_receipts_settle_ledger_rows_and_mailing_counters(
    client, db, sms_shop, smpp_peer: PeerProcess
) -> None:
    # The simulator's receipt depends on the last digit: 9 UNDELIV, 8 EXPIRED, 7 REJECTD, else DELIVRD.
    numbers = {
        "+393330000011": "delivered",
        "+393330000021": "delivered",
        "+393330000019": "undeliverable",
        "+393330000018": "expired",
        "+393330000017": "rejected",
    }
    add_smpp_transport(client, sms_shop, smpp_peer)
    subscribe_mobiles(db, sms_shop, list(numbers))
    message = sms_message(client, sms_shop, "Saldi! " + "x" * 160, opt_out=True)  # 2 GSM-7 parts
    hook = client.post(
        "/api/v1/webhooks",
        headers=sms_shop["headers"],
        json={"url": "https://crm.example/hook", "event_types": ["message.delivered", "message.bounced"]},
    )
    assert hook.status_code == 201, hook.text

    mailing = _start(client, sms_shop, message["id"])

    counters = mailing["counters"]
    assert counters["sent"] == 5 and counters["segments"] == 10
    assert (counters["delivered"], counters["undeliverable"], counters["expired"], counters["rejected"]) == (
        2,
        1,
        1,
        1,
    )
    rows = client.get(f"/api/v1/mailings/{mailing['id']}/ledger", headers=sms_shop["headers"]).json()
    assert {row["address"]: row["delivery"] for row in rows} == numbers
    assert all(row["delivered_at"] for row in rows)
    # Each settled receipt is a message event: delivered, or bounced with the carrier's verdict.
    feed = client.get(
        "/api/v1/events",
        headers=sms_shop["headers"],
        params={"types": "message.delivered,message.bounced", "limit": 100},
    )
    assert feed.status_code == 200, feed.text
    feed = feed.json()["items"]
    assert {e["recipient"]["mobile"]: (e["type"], e["data"].get("kind")) for e in feed} == {
        number: ("message.delivered", None) if state == "delivered" else ("message.bounced", state)
        for number, state in numbers.items()
    }
    assert {(e["channel"], e["mailing_id"]) for e in feed} == {("sms", mailing["id"])}
    texts = {str(r["text"]) for r in smpp_peer.records()}
    assert texts == {"Saldi! " + "x" * 160 + "\nSTOP al 4321"}


def test_smsc_dropping_the_connection_mid_mailing_sends_nobody_twice_and_skips_nobody(
    client, db, sms_shop, dropping_peer: PeerProcess
) -> None:
    # Ending in 1: the simulator's receipts say delivered. It aborts on its 37th submit_sm.
    numbers = [f"+39333{n:06d}1" for n in range(100)]
    add_smpp_transport(client, sms_shop, dropping_peer)
    subscribe_mobiles(db, sms_shop, numbers)
    message = sms_message(client, sms_shop, "Offerta per te")

    mailing = _start(client, sms_shop, message["id"])

    received = Counter("+" + str(r["dest"]) for r in dropping_peer.records())
    with db.session() as session:
        rows = {
            r.address: (r.state, r.message_ref)
            for r in session.scalars(select(LedgerEntry).where(LedgerEntry.mailing_id == mailing["id"]))
        }
    assert set(rows) == set(numbers)
    assert max(received.values()) == 1, "a number got the message twice"
    assert set(received) <= set(numbers)
    states = Counter(state for state, _ in rows.values())
    assert set(states) <= {"sent", "uncertain"}
    assert 1 <= states["uncertain"] <= 8  # what was in flight when the line dropped, never more
    for number, (state, ref) in rows.items():
        if state == "sent":
            assert received[number] == 1 and ref, number
    # Every message the SMSC took is accounted for: sent, or uncertain (it took one that went unanswered).
    unanswered = {n for n in received if rows[n][0] == "uncertain"}
    assert unanswered
    assert (
        mailing["counters"]["sent"] == states["sent"]
        and mailing["counters"]["uncertain"] == states["uncertain"]
    )
    assert mailing["counters"]["delivered"] == states["sent"]  # receipts came over the new bind


def test_paused_sms_mailing_resumes_and_cancelled_one_sends_nothing(
    client, db, sms_shop, smpp_peer: PeerProcess
) -> None:
    from missiva.delivery import mailings

    add_smpp_transport(client, sms_shop, smpp_peer)
    subscribe_mobiles(db, sms_shop, ["+393330000101", "+393330000102"])
    message = sms_message(client, sms_shop, "Hello")
    previous = mailings._enqueue
    mailings.set_enqueuer(lambda _mailing_id: None)
    try:
        started = _start(client, sms_shop, message["id"])
        paused = client.post(f"/api/v1/mailings/{started['id']}/pause", headers=sms_shop["headers"]).json()
        assert paused["status"] == "paused" and smpp_peer.records() == []
        other = _start(client, sms_shop, message["id"])
        cancelled = client.post(f"/api/v1/mailings/{other['id']}/cancel", headers=sms_shop["headers"]).json()
        assert cancelled["status"] == "cancelled"
    finally:
        mailings.set_enqueuer(previous)

    resumed = client.post(f"/api/v1/mailings/{started['id']}/resume", headers=sms_shop["headers"]).json()

    assert resumed["status"] == "finished" and resumed["counters"]["sent"] == 2
    assert sorted(str(r["dest"]) for r in smpp_peer.records()) == ["393330000101", "393330000102"]


def test_unsubscribed_numbers_are_suppressed_and_email_subscribers_ignored(
    client, db, sms_shop, smpp_peer: PeerProcess
) -> None:
    from missiva.audience import subscriptions

    add_smpp_transport(client, sms_shop, smpp_peer)
    subscribe_mobiles(db, sms_shop, ["+393330000201", "+393330000202"])
    with db.session() as session:
        subscriptions.unsubscribe(
            session, sms_shop["id"], sms_shop["list_id"], mobile="+393330000202", channel="sms"
        )
        subscriptions.subscribe(
            session, sms_shop["id"], sms_shop["list_id"], email="only-mail@example.org", double_opt_in=False
        )
    message = sms_message(client, sms_shop, "Hello [nome|amico]")

    mailing = _start(client, sms_shop, message["id"])

    assert [(r["dest"], r["text"]) for r in smpp_peer.records()] == [("393330000201", "Hello amico")]
    assert mailing["counters"]["suppressed_by_reason"] == {"unsubscribed": 1}
    assert mailing["counters"]["audience"] == 2


def test_sms_parts_are_recorded_with_their_smsc_ids(client, db, sms_shop, smpp_peer: PeerProcess) -> None:
    add_smpp_transport(client, sms_shop, smpp_peer)
    subscribe_mobiles(db, sms_shop, ["+393330000301"])
    message = sms_message(client, sms_shop, "é" * 100 + "€")  # GSM-7: 100 + 2 septets -> 1 part

    _start(client, sms_shop, message["id"])

    [record] = smpp_peer.records()
    with db.session() as session:
        parts = session.scalars(select(SmsPart)).all()
        events = session.scalars(
            select(AudienceEvent).where(AudienceEvent.type == "subscription.unsubscribed")
        )
        assert list(events) == []
    assert [p.smsc_id for p in parts] == record["message_ids"] and record["data_coding"] == 0
    assert [p.state for p in parts] == ["delivered"]
