"""Signed tracking tokens: which mailing, which recipient (0 in privacy mode), open or which link.

A token is ``base64url(payload || tag)``: the payload is three LEB128 varints (mailing id, recipient id,
link index + 1, with 0 meaning "the open pixel"), the tag the first 10 bytes (80 bits) of an
HMAC-SHA256 of the payload under a key derived from the secret key for tracking only, so a token of
another kind (unsubscribe, VERP) is never valid here. A mailing's token for a 100,000th recipient and
its tenth link is 21 characters.

Signing every link of every recipient is on the sending hot path, so `TokenSigner.links_for` reuses
HMAC states: the mailing prefix is hashed once per mailing, the recipient once per recipient.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from missiva.errors import DomainError

TAG_BYTES = 10
MAX_TOKEN_CHARS = 64
_MAX_ID = 1 << 63
OPEN = -1  # the link index an open-pixel token carries


class InvalidToken(DomainError):
    """A tracking token that is malformed, altered or signed with another key."""

    code = "invalid_token"


@dataclass(frozen=True, slots=True)
class TrackingToken:
    """What a genuine token says. ``link`` is `OPEN` for the pixel, else the link's index."""

    mailing_id: int
    recipient_id: int
    link: int

    @property
    def is_open(self) -> bool:
        return self.link == OPEN


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise InvalidToken("tracking token is truncated or malformed")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def derive_key(secret_key: str) -> bytes:
    """The tracking key derived from the instance secret (one key per purpose)."""
    return hmac.new(secret_key.encode(), b"missiva:tracking", hashlib.sha256).digest()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class TokenSigner:
    """Makes and checks tracking tokens under one key."""

    __slots__ = ("_base", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("tracking key must be at least 16 bytes")
        self._key = key
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def make(self, mailing_id: int, recipient_id: int, link: int = OPEN) -> str:
        """The token for one recipient's open pixel (``link=OPEN``) or one of its links."""
        return self.links_for(mailing_id, recipient_id, [link])[0]

    def links_for(self, mailing_id: int, recipient_id: int, links: list[int] | range) -> list[str]:
        """Tokens for several links of one recipient (the pixel is ``OPEN``)."""
        for value, what in ((mailing_id, "mailing id"), (recipient_id, "recipient id")):
            if not 0 <= value < _MAX_ID:
                raise ValueError(f"{what} {value} is out of range")
        prefix = _varint(mailing_id) + _varint(recipient_id)
        state = self._base.copy()
        state.update(prefix)
        out = []
        for link in links:
            payload = prefix + _varint(link + 1)
            h = state.copy()
            h.update(payload[len(prefix) :])
            out.append(_encode(payload + h.digest()[:TAG_BYTES]))
        return out

    def read(self, token: str) -> TrackingToken:
        """What a token says; raises `InvalidToken` for anything not made by this signer."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii():
            raise InvalidToken("tracking token has the wrong length or characters")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidToken("tracking token is not base64url") from exc
        if _encode(raw) != token:  # one canonical spelling per token (no trailing-bit variants)
            raise InvalidToken("tracking token is not in canonical form")
        if len(raw) <= TAG_BYTES:
            raise InvalidToken("tracking token is truncated")
        payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:TAG_BYTES]
        if not hmac.compare_digest(tag, expected):
            raise InvalidToken("tracking token signature does not match")
        mailing_id, position = _read_varint(payload, 0)
        recipient_id, position = _read_varint(payload, position)
        link, position = _read_varint(payload, position)
        if position != len(payload):
            raise InvalidToken("tracking token has trailing data")
        return TrackingToken(mailing_id, recipient_id, link - 1)


_signers: dict[str, TokenSigner] = {}


def signer_for(secret_key: str) -> TokenSigner:
    """The process's signer for `secret_key` (derived once)."""
    signer = _signers.get(secret_key)
    if signer is None:
        signer = _signers[secret_key] = TokenSigner(derive_key(secret_key))
    return signer
