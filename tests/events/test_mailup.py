"""MailUp-compatible webhooks as MailUp's own receivers (Magento and Joomla modules) decode them."""

from __future__ import annotations

import base64
import random
from datetime import datetime
from urllib.parse import parse_qs, parse_qsl, unquote_plus

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

from missiva.audience import lists as lists_svc
from missiva.audience import recipients
from missiva.audience import subscriptions as subs
from missiva.errors import InvalidInput
from missiva.events import mailup_format, service
from missiva.events.rc4 import rc4


def reference_rc4(key: bytes, data: bytes) -> bytes:
    """RC4 written independently of missiva's: a keystream generator over a bytearray state."""

    def keystream():
        s = bytearray(range(256))
        j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) % 256
            s[i], s[j] = s[j], s[i]
        i = j = 0
        while True:
            i = (i + 1) % 256
            j = (j + s[i]) % 256
            s[i], s[j] = s[j], s[i]
            yield s[(s[i] + s[j]) % 256]

    return bytes(a ^ b for a, b in zip(data, keystream(), strict=False))


def test_rc4_matches_published_vectors_and_independent_implementations():
    # Test vectors from the RC4 article of Wikipedia (also in RFC 6229's style of listing).
    assert rc4(b"Key", b"Plaintext").hex() == "bbf316e8d940af0ad3"
    assert rc4(b"Wiki", b"pedia").hex() == "1021bf0420"
    assert rc4(b"Secret", b"Attack at dawn").hex() == "45a01f645fc35b383552544b9bf5"
    rng = random.Random(5)
    for _ in range(200):
        key = rng.randbytes(rng.randint(1, 64))
        data = rng.randbytes(rng.randint(0, 700))
        assert rc4(key, data) == reference_rc4(key, data)
        assert rc4(key, rc4(key, data)) == data
    for size in (5, 7, 8, 10, 16, 20, 24, 32):  # the key sizes cryptography's decrepit ARC4 accepts
        key, data = rng.randbytes(size), rng.randbytes(300)
        assert rc4(key, data) == Cipher(ARC4(key), mode=None).encryptor().update(data)
    with pytest.raises(ValueError, match="RC4 key"):
        rc4(b"", b"x")


def test_parameters_are_checked_and_placeholders_named_in_any_case():
    assert mailup_format.check_params([["e", "[email]"], ["f", "x[Field1]y"]]) == [
        ["e", "[email]"],
        ["f", "x[Field1]y"],
    ]
    with pytest.raises(InvalidInput, match=r"unknown placeholder \[Emial\]") as bad:
        mailup_format.check_params([["ok", "[Email]"], ["e", "[Emial]"]])
    assert bad.value.field == "mailup.params.1"
    with pytest.raises(InvalidInput, match="given twice"):
        mailup_format.check_params([["e", "[Email]"], ["e", "[IdList]"]])
    with pytest.raises(InvalidInput, match="Field40"):
        mailup_format.check_params([["f", "[Field40]"]])


PARAMS = [
    ["customerEmail", "[Email]"],
    ["customerList", "[IdList]"],
    ["evt", "[EventType]"],
    ["evd", "[EventDate]"],
    ["console", "[IdConsole]"],
    ["name", "[Field01] [Field02]"],
    ["gru", "[Groups]"],
    ["src", "[EventSource]"],
    ["chan", "[Channel]"],
    ["tel", "[Prefix]|[Number]"],
    ["fixed", "a b&c=d"],
]


def decode_magento(raw: str) -> dict[str, str]:
    """What MailUp's Magento receiver does: each parameter NAME is Base64(RC4(key, query string))."""
    names = [unquote_plus(pair.split("=", 1)[0]) for pair in raw.split("&") if pair]
    assert len(names) == 1
    return dict(parse_qsl(reference_rc4(b"s3cr3t!", base64.b64decode(names[0])).decode()))


def decode_joomla(raw: str) -> dict[str, str]:
    """What MailUp's Joomla receiver does: urldecode the query string, Base64-decode, RC4-decrypt, parse."""
    return dict(parse_qsl(reference_rc4(b"s3cr3t!", base64.b64decode(unquote_plus(raw))).decode()))


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("shape", ["magento", "joomla"])
def test_encrypted_calls_decrypt_back_to_the_configured_parameters(
    db, account, lst, receiver, make_dispatcher, shape, method
):
    with db.session() as s:
        group = lists_svc.create_group(s, account["id"], lst.id, "VIP")
        service.create_endpoint(
            s,
            account["id"],
            url=receiver.url("/mailup/webhook/subscribe"),
            format="mailup",
            mailup=service.MailupOptions(
                params=PARAMS,
                method=method,
                encryption=shape,
                key="s3cr3t!",
                event_type_case="upper" if shape == "joomla" else "title",
            ),
        )
    with db.session() as s:
        subs.subscribe(
            s,
            account["id"],
            lst.id,
            email="ann@example.com",
            mobile="+39 333 123 4567",
            fields={"nome": "Anna Maria", "cognome": "Rossi"},
            groups=[group.id],
        )
    make_dispatcher().run_until_idle()
    [req] = receiver.wait_for(1)
    assert req.method == method
    raw = req.query if method == "GET" else req.body.decode("ascii")
    assert "ann" not in raw and "customerEmail" not in raw
    got = decode_magento(raw) if shape == "magento" else decode_joomla(raw)
    assert got.pop("evd").endswith("+00:00")
    assert got == {
        "customerEmail": "ann@example.com",
        "customerList": str(lst.id),
        "evt": "SUBSCRIBE" if shape == "joomla" else "Subscribe",
        "console": str(account["id"]),
        "name": "Anna Maria Rossi",
        "gru": str(group.id),
        "src": "API",
        "chan": "0",
        "tel": "+39|3331234567",
        "fixed": "a b&c=d",
    }


def call(type_: str, email: str, reason: str, source: str, f1: str) -> dict[str, str]:
    return {"type": type_, "email": email, "reason": reason, "source": source, "f1": f1}


def test_audience_changes_map_to_mailup_events_and_an_email_change_is_unsubscribe_then_subscribe(
    db, account, receiver, make_dispatcher
):
    with db.session() as s:
        lst = lists_svc.create_list(s, account["id"], "News", opt_in="double")
        service.create_endpoint(
            s,
            account["id"],
            url=receiver.url("/crm?token=abc"),
            format="mailup",
            mailup=service.MailupOptions(
                params=[
                    ["type", "[EventType]"],
                    ["email", "[Email]"],
                    ["list", "[IdList]"],
                    ["reason", "[Reason]"],
                    ["source", "[EventSource]"],
                    ["f1", "[Field01]"],
                    ["date", "[EventDate]"],
                ],
                method="GET",
            ),
        )
    with db.session() as s:
        pending = subs.subscribe(s, account["id"], lst.id, email="old@example.com", fields={"nome": "Ann"})
        token_time = pending.subscription.requested_at
        sub_id = pending.subscription.id
    with db.session() as s:
        subs.confirm(s, sub_id, token_time)
    with db.session() as s:
        r = recipients.find(s, account["id"], recipients.Identity(email="old@example.com"))
        recipients.update_profile(s, account["id"], r, source="console", fields={"nome": "Anna"})
    with db.session() as s:
        r = recipients.find(s, account["id"], recipients.Identity(email="old@example.com"))
        recipients.update_profile(s, account["id"], r, source="api", email="new@example.com")
    with db.session() as s:
        subs.unsubscribe(s, account["id"], lst.id, email="new@example.com", reason="link", source="recipient")
    make_dispatcher().run_until_idle()
    with db.session() as s:
        r = recipients.find(s, account["id"], recipients.Identity(email="new@example.com"))
        recipients.delete_recipient(s, account["id"], r, source="console")
    make_dispatcher().run_until_idle()
    got = receiver.wait_for(6)
    calls = [{k: v[0] for k, v in parse_qs(r.query, keep_blank_values=True).items()} for r in got]
    assert all(c.pop("token") == "abc" and c.pop("list") == str(lst.id) for c in calls)
    dates = [datetime.fromisoformat(c.pop("date")) for c in calls]
    assert dates == sorted(dates)
    assert calls == [
        # subscription.requested (pending) has no MailUp counterpart; the confirmation is the Subscribe.
        call("Subscribe", "old@example.com", "", "Recipient", "Ann"),
        call("Changeprofile", "old@example.com", "", "Console", "Anna"),
        call("Unsubscribe", "old@example.com", "", "API", "Anna"),
        call("Subscribe", "new@example.com", "", "API", "Anna"),
        call("Unsubscribe", "new@example.com", "2", "Recipient", "Anna"),
        call("Delete", "new@example.com", "", "Console", ""),
    ]
    assert [r.path for r in got] == ["/crm"] * 6 and len({r.webhook_id for r in got}) == 6


def test_deleting_a_recipient_cancels_its_undelivered_mailup_calls_but_sends_the_delete(
    db, account, lst, receiver, make_dispatcher
):
    with db.session() as s:
        endpoint, _ = service.create_endpoint(
            s,
            account["id"],
            url=receiver.url(),
            format="mailup",
            mailup=service.MailupOptions(params=[["t", "[EventType]"], ["e", "[Email]"]]),
        )
        endpoint_id = endpoint.id
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="gone@example.com")
    with db.session() as s:
        r = recipients.find(s, account["id"], recipients.Identity(email="gone@example.com"))
        recipients.delete_recipient(s, account["id"], r, source="api")
    make_dispatcher().run_until_idle()
    [req] = receiver.wait_for(1)
    assert parse_qs(req.body.decode()) == {"t": ["Delete"], "e": ["gone@example.com"]}
    with db.session() as s:
        log = service.list_deliveries(s, account["id"], endpoint_id)
    assert [(d.status, d.last_error is not None) for d in log] == [("delivered", False), ("cancelled", True)]
