"""Provider webhooks: SES (SNS-signed), SendGrid (ECDSA), Mailgun (HMAC), Postmark (basic auth/token).

Each test signs like the provider does, with keys made here: a self-signed certificate stands in for
the SNS signing certificate (served by an injected fetcher: there is no network), an EC key for
SendGrid's. Forged signatures must change nothing.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from missiva.delivery import suppression
from missiva.delivery.models import LedgerEntry, Mailing
from missiva.inbound.providers import api as provider_api
from missiva.inbound.providers.ses import SnsVerifier
from tests.conftest import make_account

from .conftest import Sent, seed_sent, subscription_of

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
PEOPLE = ["dead@example.org", "angry@example.org", "good@example.org", "leaving@example.org"]


@pytest.fixture
def shop(db, app) -> dict[str, Any]:
    """An account (with API key) whose mailing was sent to PEOPLE."""
    from missiva.audience import lists

    account = make_account(db, "Relay Shop")
    with db.session() as session:
        lists.ensure_default_fields(session, account["id"])
        list_id = lists.create_list(session, account["id"], "News", sender_email="n@shop.example").id
    account["sent"] = seed_sent(db, account["id"], list_id, PEOPLE)
    return account


def _endpoint(client, shop, **body) -> str:
    created = client.post("/api/v1/inbound/webhooks", headers=shop["headers"], json=body)
    assert created.status_code == 201, created.text
    return created.json()["url"].removeprefix("http://missiva.test")


def _ids(sent: Sent, address: str) -> dict[str, int]:
    return {"missiva_mailing_id": sent.mailing_id, "missiva_recipient_id": sent.recipients[address]}


def _nothing_changed(db, shop) -> None:
    for address in PEOPLE:
        assert subscription_of(db, shop["id"], address) == ("subscribed", None)
    with db.session() as session:
        assert suppression.count(session, shop["id"]) == 0


# -- Amazon SES via SNS ---------------------------------------------------------------------------


class FakeAws:
    """The SNS signing key and certificate, and a fetcher that serves the certificate at CERT_URL."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        assert url == CERT_URL, "only the certificate URL of the message may be fetched"
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, message: dict[str, Any]) -> dict[str, Any]:
        """SNS SignatureVersion 2: SHA256withRSA over `Name\\nValue\\n` of the type's fields in order."""
        fields = (
            ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
            if message["Type"] == "Notification"
            else ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
        )
        text = "".join(f"{f}\n{message[f]}\n" for f in fields if f in message)
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
        return {
            **message,
            "SignatureVersion": "2",
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": CERT_URL,
        }


@pytest.fixture
def aws(app) -> FakeAws:
    fake = FakeAws()
    confirmed: list[str] = []
    verifier = SnsVerifier(fake.fetch)
    app.dependency_overrides[provider_api.get_sns_verifier] = lambda: verifier
    app.dependency_overrides[provider_api.get_subscription_confirmer] = lambda: (
        lambda url: confirmed.append(url) is None
    )
    fake.confirmed = confirmed
    yield fake
    app.dependency_overrides.clear()


def _sns(event: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": json.dumps(event),
        "Timestamp": "2026-11-23T10:00:00.000Z",
    }


def _ses_event(kind: str, address: str, sent: Sent, **detail: Any) -> dict[str, Any]:
    mail = {
        "messageId": f"ses-{kind}-{address}",
        "headers": [
            {"name": "X-Missiva-Mailing", "value": str(sent.mailing_id)},
            {"name": "X-Missiva-Recipient", "value": str(sent.recipients[address])},
        ],
    }
    if kind == "Bounce":
        return {
            "notificationType": "Bounce",
            "mail": mail,
            "bounce": {
                "bounceType": detail.get("bounce_type", "Permanent"),
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": address,
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                    }
                ],
            },
        }
    return {
        "notificationType": "Complaint",
        "mail": mail,
        "complaint": {"complainedRecipients": [{"emailAddress": address}], "complaintFeedbackType": "abuse"},
    }


def test_ses_bounces_and_complaints_signed_by_sns_act_and_forgeries_do_not(client, db, shop, aws) -> None:
    url = _endpoint(client, shop, provider="ses", topic_arn=TOPIC)
    sent = shop["sent"]
    bounce = aws.sign(_sns(_ses_event("Bounce", "dead@example.org", sent), "m-1"))
    forged = {**bounce, "Message": json.dumps(_ses_event("Bounce", "good@example.org", sent))}
    elsewhere = {**bounce, "SigningCertURL": "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem"}

    assert client.post(url, content=json.dumps(forged)).status_code == 401
    assert client.post(url, content=json.dumps(elsewhere)).status_code == 401
    _nothing_changed(db, shop)

    first = client.post(url, content=json.dumps(bounce))
    again = client.post(url, content=json.dumps(bounce))  # SNS retries
    complaint = client.post(
        url, content=json.dumps(aws.sign(_sns(_ses_event("Complaint", "angry@example.org", sent), "m-2")))
    )

    assert first.json() == {"received": 1, "actions": {"suppressed": 1}}
    assert again.json() == {"received": 1, "actions": {"duplicate": 1}}
    assert complaint.json() == {"received": 1, "actions": {"suppressed": 1}}
    assert aws.fetched == [CERT_URL]  # fetched once, never from the forged host
    assert subscription_of(db, shop["id"], "dead@example.org") == ("unsubscribed", "hard_bounce")
    assert subscription_of(db, shop["id"], "angry@example.org") == ("unsubscribed", "complaint")
    with db.session() as session:
        row = session.scalar(select(LedgerEntry).where(LedgerEntry.address == "dead@example.org"))
        assert (row.state, row.reply_status) == ("hard_bounce", "5.1.1")
        mailing = session.get(Mailing, sent.mailing_id)
        assert (mailing.hard_bounced, mailing.complaints) == (1, 1)


def test_ses_subscription_confirmation_is_recorded_and_other_topics_are_refused(
    client, db, shop, aws
) -> None:
    url = _endpoint(client, shop, provider="ses", topic_arn=TOPIC)
    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t"
    confirmation = aws.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "c-1",
            "Token": "t",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": subscribe,
            "Timestamp": "2026-11-23T10:00:00.000Z",
        }
    )
    other_topic = aws.sign(
        {**_sns(_ses_event("Bounce", "dead@example.org", shop["sent"]), "m-9"), "TopicArn": TOPIC + "-other"}
    )

    assert client.post(url, content=json.dumps(confirmation)).json() == {"subscription": "confirmed"}
    assert client.post(url, content=json.dumps(other_topic)).status_code == 401

    assert aws.confirmed == [subscribe]
    listed = client.get("/api/v1/inbound/webhooks", headers=shop["headers"]).json()
    assert [(h["provider"], h["subscription"]["subscribe_url"]) for h in listed] == [("ses", subscribe)]
    _nothing_changed(db, shop)


# -- SendGrid -------------------------------------------------------------------------------------


def test_sendgrid_signed_events_act_and_forged_or_unsigned_ones_do_not(client, db, shop) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    url = _endpoint(client, shop, provider="sendgrid", public_key=public)
    sent = shop["sent"]
    events = [
        {"event": "processed", "email": "good@example.org", "sg_event_id": "e0"},
        {"event": "bounce", "type": "bounce", "email": "dead@example.org", "status": "5.1.1",
         "reason": "550 5.1.1 The email account that you tried to reach does not exist", "sg_event_id": "e1",
         **_ids(sent, "dead@example.org")},
        {"event": "spamreport", "email": "angry@example.org", "sg_event_id": "e2"},
        {"event": "group_unsubscribe", "email": "leaving@example.org", "sg_event_id": "e3",
         **_ids(sent, "leaving@example.org")},
        {"event": "bounce", "type": "blocked", "email": "good@example.org", "status": "5.7.1",
         "reason": "550 5.7.1 blocked by policy", "sg_event_id": "e4"},
    ]  # fmt: skip
    body = json.dumps(events).encode()

    def signed(payload: bytes, signer=key) -> dict[str, str]:
        stamp = "1763892000"
        signature = signer.sign(stamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }

    other = ec.generate_private_key(ec.SECP256R1())
    assert client.post(url, content=body, headers=signed(body, other)).status_code == 401
    assert client.post(url, content=body).status_code == 401
    tampered = body.replace(b"dead@", b"good@")
    assert client.post(url, content=tampered, headers=signed(body)).status_code == 401
    _nothing_changed(db, shop)

    done = client.post(url, content=body, headers=signed(body))

    assert done.json() == {"received": 4, "actions": {"suppressed": 2, "unsubscribed": 1, "counted": 1}}
    assert subscription_of(db, shop["id"], "dead@example.org") == ("unsubscribed", "hard_bounce")
    assert subscription_of(db, shop["id"], "angry@example.org") == ("unsubscribed", "complaint")
    assert subscription_of(db, shop["id"], "leaving@example.org") == ("unsubscribed", "list_unsubscribe")
    assert subscription_of(db, shop["id"], "good@example.org") == ("subscribed", None)  # a block is soft


def test_sendgrid_endpoint_needs_a_real_verification_key(client, shop) -> None:
    response = client.post(
        "/api/v1/inbound/webhooks",
        headers=shop["headers"],
        json={"provider": "sendgrid", "public_key": "abc"},
    )
    assert response.status_code == 422 and "verification key" in response.text


# -- Mailgun --------------------------------------------------------------------------------------


def _mailgun(event: dict[str, Any], key: str) -> bytes:
    stamp, token = "1763892000", "tok-" + event["id"]
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event}
    ).encode()


def test_mailgun_hmac_signed_failures_act_and_wrong_keys_do_not(client, db, shop) -> None:
    url = _endpoint(client, shop, provider="mailgun", signing_key="key-right")
    sent = shop["sent"]
    failed = {
        "id": "mg-1",
        "event": "failed",
        "severity": "permanent",
        "recipient": "dead@example.org",
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
        "user-variables": _ids(sent, "dead@example.org"),
    }
    temporary = {**failed, "id": "mg-2", "severity": "temporary", "recipient": "good@example.org"}

    assert client.post(url, content=_mailgun(failed, "key-wrong")).status_code == 401
    _nothing_changed(db, shop)
    complained = {"id": "mg-3", "event": "complained", "recipient": "angry@example.org"}
    delivered = {"id": "mg-4", "event": "delivered", "recipient": "good@example.org"}
    results = [
        client.post(url, content=_mailgun(event, "key-right")).json()
        for event in (failed, temporary, complained, delivered)
    ]

    assert [r["actions"] for r in results] == [{"suppressed": 1}, {"recorded": 1}, {"suppressed": 1}, {}]
    assert subscription_of(db, shop["id"], "dead@example.org") == ("unsubscribed", "hard_bounce")
    assert subscription_of(db, shop["id"], "angry@example.org") == ("unsubscribed", "complaint")
    assert subscription_of(db, shop["id"], "good@example.org") == ("subscribed", None)


# -- Postmark -------------------------------------------------------------------------------------


def test_postmark_with_basic_auth_and_token_only(client, db, shop) -> None:
    guarded = _endpoint(client, shop, provider="postmark", username="pm", password="s3cret")
    plain = _endpoint(client, shop, provider="postmark")
    hard = {
        "RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "Email": "dead@example.org",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Metadata": _ids(shop["sent"], "dead@example.org"),
    }  # fmt: skip
    complaint = {
        "RecordType": "SpamComplaint",
        "ID": 43,
        "Type": "SpamComplaint",
        "Email": "angry@example.org",
    }
    auth = "Basic " + base64.b64encode(b"pm:s3cret").decode()

    assert client.post(guarded, json=hard).status_code == 401
    assert (
        client.post(
            guarded, json=hard, headers={"Authorization": "Basic " + base64.b64encode(b"pm:no").decode()}
        ).status_code
        == 401
    )
    assert client.post(guarded.replace("/postmark/", "/mailgun/"), json=hard).status_code == 404
    assert client.post(plain[:-4] + "xxxx", json=hard).status_code == 404
    _nothing_changed(db, shop)

    assert client.post(guarded, json=hard, headers={"Authorization": auth}).json()["actions"] == {
        "suppressed": 1
    }
    assert client.post(plain, json=complaint).json()["actions"] == {"suppressed": 1}
    assert subscription_of(db, shop["id"], "dead@example.org") == ("unsubscribed", "hard_bounce")
    assert subscription_of(db, shop["id"], "angry@example.org") == ("unsubscribed", "complaint")


def test_an_endpoint_acts_only_on_its_own_account(client, db, shop) -> None:
    other = make_account(db, "Other Shop")
    url = _endpoint(client, other, provider="postmark")
    # The other account's endpoint names this shop's mailing and recipient in its metadata.
    forged = {
        "RecordType": "Bounce", "ID": 7, "Type": "HardBounce", "Email": "dead@example.org",
        "Details": "550 5.1.1 unknown", "Metadata": _ids(shop["sent"], "dead@example.org"),
    }  # fmt: skip

    result = client.post(url, json=forged).json()

    assert result["actions"] == {"suppressed": 1}  # in the other account, by address
    _nothing_changed(db, shop)
    with db.session() as session:
        assert suppression.find(session, other["id"], "dead@example.org").reason == "hard_bounce"
        assert session.get(Mailing, shop["sent"].mailing_id).hard_bounced == 0
