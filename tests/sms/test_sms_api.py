"""SMS over the REST API: number checks, transports with encrypted secrets, messages, transactional SMS."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import select

from missiva.delivery.sms.models import SmsTransportConfig

from .conftest import add_smpp_transport, sms_message, subscribe_mobiles

if TYPE_CHECKING:
    from .conftest import PeerProcess


def test_invalid_mobile_numbers_are_refused_at_subscribe_and_in_batches(client, sms_shop) -> None:
    path = f"/api/v1/lists/{sms_shop['list_id']}/subscribe"
    refused = client.post(path, headers=sms_shop["headers"], json={"mobile": "12345", "channel": "sms"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "mobile"
    assert "'12345'" in refused.json()["detail"]

    national = client.post(
        path, headers=sms_shop["headers"], json={"mobile": "333 123 4567", "channel": "sms"}
    )
    assert national.status_code == 201  # the account's default country (IT) completes it
    assert national.json()["recipient"]["mobile"] == "+393331234567"

    batch = client.post(
        f"{path}/batch",
        headers=sms_shop["headers"],
        json={
            "items": [
                {"mobile": "0039 333 765 4321", "channel": "sms"},  # MailUp's 00 prefix form
                {"mobile": "+39 12", "channel": "sms"},
                {"mobile": "not a number", "channel": "sms"},
            ]
        },
    ).json()
    assert batch["counts"] == {"subscribed": 1, "error": 2}
    assert [item["error"]["field"] for item in batch["results"][1:]] == ["mobile", "mobile"]
    assert all(item["error"]["title"] == "invalid_mobile" for item in batch["results"][1:])

    send = client.post(
        "/api/v1/send", headers=sms_shop["headers"], json={"channel": "sms", "to": "+1 555", "text": "x"}
    )
    assert send.status_code == 422 and send.json()["errors"][0]["field"] == "mobile"


def test_transport_secrets_are_encrypted_at_rest_and_never_returned(client, db, sms_shop, smpp_peer) -> None:
    created = add_smpp_transport(client, sms_shop, smpp_peer)
    assert created["secrets_set"] == ["password"]
    assert '"secret"' not in json.dumps(created) and "password" not in created["settings"]
    with db.session() as session:
        stored = session.scalars(select(SmsTransportConfig)).one()
    assert stored.secret and "secret" not in stored.secret and stored.secret.startswith("gAAAA")  # Fernet

    listed = client.get("/api/v1/sms/transports", headers=sms_shop["headers"]).json()
    assert [t["name"] for t in listed] == ["peer"] and '"secret"' not in json.dumps(listed)
    moved = client.patch(
        f"/api/v1/sms/transports/{created['id']}", headers=sms_shop["headers"], json={"priority": 5}
    ).json()
    assert moved["priority"] == 5 and moved["secrets_set"] == ["password"]  # secrets kept when not given

    wrong = client.post(
        "/api/v1/sms/transports",
        headers=sms_shop["headers"],
        json={"name": "gw", "kind": "http", "settings": {"url_template": "http://127.0.0.1/{recipient}"}},
    )
    assert wrong.status_code == 422 and "placeholder {recipient}" in wrong.json()["detail"]
    leaky = client.post(
        "/api/v1/sms/transports",
        headers=sms_shop["headers"],
        json={
            "name": "x",
            "kind": "smpp",
            "settings": {"host": "127.0.0.1", "port": 1, "system_id": "a", "pasword": "p"},
        },
    )
    assert leaky.status_code == 422 and "pasword" in leaky.json()["detail"]
    twice = client.post(
        "/api/v1/sms/transports",
        headers=sms_shop["headers"],
        json={"name": "peer", "kind": "http", "settings": {"url_template": "http://127.0.0.1/"}},
    )
    assert twice.status_code == 409


def test_sms_message_checks_sender_id_template_and_opt_out_text(client, sms_shop) -> None:
    path = f"/api/v1/lists/{sms_shop['list_id']}/messages"
    long_sender = client.post(
        path, headers=sms_shop["headers"], json={"channel": "sms", "text": "Hi", "sender_id": "TwelveLetter"}
    )
    assert long_sender.status_code == 422 and long_sender.json()["errors"][0]["field"] == "sender_id"
    bad_tag = client.post(path, headers=sms_shop["headers"], json={"channel": "sms", "text": "Hi [colour]"})
    assert bad_tag.status_code == 422 and "'colour'" in bad_tag.json()["detail"]
    with_html = client.post(
        path, headers=sms_shop["headers"], json={"channel": "sms", "text": "Hi", "html": "<p>"}
    )
    assert with_html.status_code == 422 and with_html.json()["errors"][0]["field"] == "html"

    message = sms_message(client, sms_shop, "Saldi [nome|per te]", opt_out=True, sender_id="+393330001111")
    preview = client.get(f"/api/v1/messages/{message['id']}/preview", headers=sms_shop["headers"]).json()
    assert preview["text"] == "Saldi per te\nSTOP al 4321" and preview["from"] == "+393330001111"
    assert preview["sms"] == {
        "encoding": "gsm7",
        "segments": 1,
        "length": 25,
        "per_segment_limit": 160,
        "unencodable": [],
    }

    analysis = client.post(
        "/api/v1/sms/analyse", headers=sms_shop["headers"], json={"text": "Ciao ☺ " + "a" * 70}
    ).json()
    assert (analysis["encoding"], analysis["segments"], analysis["unencodable"]) == ("ucs2", 2, ["☺"])
    assert "".join(analysis["parts"]) == "Ciao ☺ " + "a" * 70


def test_sms_mailing_without_sender_id_or_transport_is_refused_with_the_reason(client, db, sms_shop) -> None:
    client.put(f"/api/v1/lists/{sms_shop['list_id']}/sms", headers=sms_shop["headers"], json={})
    message = sms_message(client, sms_shop, "Hi")
    no_sender = client.post(
        "/api/v1/mailings", headers=sms_shop["headers"], json={"message_id": message["id"], "start": True}
    )
    assert no_sender.status_code == 422 and no_sender.json()["errors"][0]["field"] == "sender_id"

    client.patch("/api/v1/sms/settings", headers=sms_shop["headers"], json={"sender_id": "ShopIT"})
    subscribe_mobiles(db, sms_shop, ["+393330000801"])
    no_transport = client.post(
        "/api/v1/mailings", headers=sms_shop["headers"], json={"message_id": message["id"], "start": True}
    )
    assert no_transport.status_code == 422
    assert "no enabled SMS transport" in no_transport.json()["detail"]


def test_transactional_sms_is_sent_and_reports_its_delivery(
    client, db, sms_shop, smpp_peer: PeerProcess
) -> None:
    from missiva.audience import subscriptions

    add_smpp_transport(client, sms_shop, smpp_peer)
    sent = client.post(
        "/api/v1/send",
        headers=sms_shop["headers"],
        json={"channel": "sms", "to": "333 000 0901", "text": "Il tuo codice è 4821", "sender_id": "ShopOTP"},
    )
    assert sent.status_code == 202, sent.text
    status = client.get(f"/api/v1/send/{sent.json()['id']}", headers=sms_shop["headers"]).json()
    assert (status["channel"], status["status"], status["delivery"]) == ("sms", "sent", "delivered")
    [record] = smpp_peer.records()
    assert (record["dest"], record["source"], record["text"]) == (
        "393330000901",
        "ShopOTP",
        "Il tuo codice è 4821",
    )
    assert status["message_id"] == record["message_ids"][0]

    subscribe_mobiles(db, sms_shop, ["+393330000902"])
    with db.session() as session:
        subscriptions.unsubscribe(
            session, sms_shop["id"], sms_shop["list_id"], mobile="+393330000902", channel="sms"
        )
    message = sms_message(client, sms_shop, "Promo")
    refused = client.post(
        "/api/v1/send", headers=sms_shop["headers"], json={"to": "+393330000902", "message_id": message["id"]}
    ).json()
    assert (refused["channel"], refused["status"], refused["reason"]) == ("sms", "suppressed", "unsubscribed")
    assert len(smpp_peer.records()) == 1


def test_another_accounts_sms_objects_are_not_found(client, sms_shop, other_account, smpp_peer) -> None:
    transport = add_smpp_transport(client, sms_shop, smpp_peer)
    theirs = other_account["headers"]
    assert client.get(f"/api/v1/sms/transports/{transport['id']}", headers=theirs).status_code == 404
    assert client.delete(f"/api/v1/sms/transports/{transport['id']}", headers=theirs).status_code == 404
    assert client.get(f"/api/v1/lists/{sms_shop['list_id']}/sms", headers=theirs).status_code == 404
    assert client.get("/api/v1/sms/transports", headers=theirs).json() == []
