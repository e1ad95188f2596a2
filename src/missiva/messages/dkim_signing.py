"""DKIM signatures (RFC 6376: rsa-sha256, relaxed/relaxed) with the RSA of `cryptography` (OpenSSL).

dkimpy signs with its own pure-Python RSA, about 6 ms a message; OpenSSL takes a fraction of that.
Only signing lives here: verification (tests, inbound) keeps using dkimpy, which is how the signatures
made here are checked.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_WSP_RUN = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")
_TRAILING_LINES = re.compile(rb"(?:\r\n)+\Z")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})\Z")


class DkimKeyError(ValueError):
    """The private key or selector cannot sign (not RSA, too short, unreadable)."""


def relaxed_body(body: bytes) -> bytes:
    """The body canonicalised with the "relaxed" algorithm (RFC 6376, 3.4.4)."""
    body = _WSP_RUN.sub(b" ", body)
    body = _TRAILING_WSP.sub(b"\r\n", body)
    body = _TRAILING_LINES.sub(b"", body)
    # A body without a final CRLF (never the case over SMTP) gets one, as dkimpy adds it.
    return body + b"\r\n" if body else b""


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """One header field canonicalised with the "relaxed" algorithm (RFC 6376, 3.4.2), without CRLF."""
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value)).strip(b" ")
    return name.strip().lower() + b":" + value


def _headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, raw value) of each field of a header block, folded lines kept in the value."""
    fields: list[tuple[bytes, bytes]] = []
    for line in _FOLD.sub(b"\x00", block).split(b"\r\n"):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        fields.append((name, value.replace(b"\x00", b"\r\n")))
    return fields


class DkimSigner:
    """Signs messages for one domain and selector; build once, then `sign` each message."""

    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        if not _SELECTOR.match(selector):
            raise DkimKeyError(f"DKIM selector {selector!r} is not a valid DNS label")
        try:
            key = serialization.load_pem_private_key(private_key, password=None)
        except (ValueError, TypeError) as exc:
            raise DkimKeyError(f"DKIM private key cannot be read: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DkimKeyError("DKIM private key must be an RSA key (rsa-sha256)")
        if key.key_size < 1024:
            raise DkimKeyError(f"DKIM RSA key of {key.key_size} bits is too short (at least 1024)")
        self._key = key
        self._prefix = f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s={selector};".encode()

    def sign(self, message: bytes, include: Iterable[bytes], *, now: float | None = None) -> bytes:
        """``message`` (CRLF line ends) with a ``DKIM-Signature`` field prepended.

        ``include`` names the header fields to sign, lowercase; the ones absent from the message are
        left out of ``h=``. A field present more than once is signed in its last instance only.
        """
        head, separator, body = message.partition(b"\r\n\r\n")
        if not separator:
            head, body = message, b""
        fields = {name.strip().lower(): (name, value) for name, value in _headers(head + b"\r\n")}
        signed = [name for name in include if name in fields]
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        stamp = int(time.time() if now is None else now)
        value = (
            self._prefix
            + b" t="
            + str(stamp).encode()
            + b";\r\n h="
            + b":".join(signed)
            + b";\r\n bh="
            + body_hash
            + b";\r\n b="
        )
        data = b"".join(relaxed_header(*fields[name]) + b"\r\n" for name in signed)
        data += relaxed_header(b"DKIM-Signature", value)
        signature = base64.b64encode(self._key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
        folded = b"\r\n  ".join(signature[i : i + 72] for i in range(0, len(signature), 72))
        return b"DKIM-Signature: " + value + folded + b"\r\n" + message
