"""DKIM signatures made with `cryptography` verify with dkimpy, whatever the message's whitespace."""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dkim.canonicalization import Relaxed

from missiva.messages.dkim_signing import DkimKeyError, DkimSigner, relaxed_body, relaxed_header
from missiva.messages.mime import DKIM_HEADERS

TRICKY_BODIES = [
    b"",
    b"\r\n\r\n",
    b"one line",
    b"trailing spaces   \r\n\ttabs\tand  runs \t \r\n\r\n\r\n",
    b"  leading\r\n \r\nlast line without CRLF  ",
    b"=20qp soft break=\r\nend\r\n \t\r\n",
]


@pytest.fixture(scope="module")
def rsa_key() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def _verifies(data: bytes, record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"sel._domainkey.example.com." else b""

    return bool(dkim.verify(data, dnsfunc=dns))


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_body_canonicalisation_matches_dkimpy(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


def test_header_canonicalisation_matches_dkimpy() -> None:
    headers = [(b"Subject", b" =?utf-8?b?Q2lhbw==?=\r\n =?utf-8?b?IQ==?=  "), (b"X-Tab", b"\ta \t b\t")]
    assert [relaxed_header(n, v) + b"\r\n" for n, v in headers] == [
        n + b":" + v for n, v in Relaxed.canonicalize_headers(headers)
    ]


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_signed_messages_verify_and_tampering_is_detected(rsa_key: tuple[bytes, bytes], body: bytes) -> None:
    private, record = rsa_key
    message = (
        b"From: Shop <news@example.com>\r\n"
        b"To: anna@example.org\r\n"
        b"Subject:  Offerte   di\r\n\t=?utf-8?b?bm92aXTDoA==?=  \r\n"
        b"Reply-To: help@example.com\r\n"
        b"Received: not signed\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n" + body
    )

    signed = DkimSigner("sel", "example.com", private).sign(message, DKIM_HEADERS)

    assert signed.endswith(message) and _verifies(signed, record)
    header = signed[: len(signed) - len(message)].replace(b"\r\n", b"").replace(b" ", b"")
    assert b"h=from:reply-to:to:subject:content-type;" in header  # present fields only, in order
    assert not _verifies(signed.replace(b"Offerte", b"0fferte"), record)
    assert not _verifies(signed + b"appended\r\n", record)


def test_keys_that_cannot_sign_are_refused_with_the_reason() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(DkimKeyError, match="must be an RSA key"):
        DkimSigner("sel", "example.com", ec_key)
    with pytest.raises(DkimKeyError, match="cannot be read"):
        DkimSigner("sel", "example.com", b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


def test_a_selector_that_is_not_a_dns_label_is_refused(rsa_key: tuple[bytes, bytes]) -> None:
    with pytest.raises(DkimKeyError, match="selector"):
        DkimSigner("bad selector;", "example.com", rsa_key[0])
