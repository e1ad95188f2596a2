"""VERP return paths that say which mailing and recipient a bounce belongs to.

Every message of a mailing goes out with its own envelope sender, e.g.
``bounces+m123.r456.k3j5x2ab7q@bounce.example.com``. A bounce comes back to that address, so the
receiver knows the mailing and recipient without parsing the bounce at all. The trailing tag is a
truncated HMAC-SHA256 of the two ids: anyone can mail the bounce domain, and without the tag a forger
could mark arbitrary recipients as bounced. The tag is lowercase base32 because some MTAs lowercase
the local part.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re

TAG_LENGTH = 10
"""Base32 characters kept from the HMAC (50 bits): plenty against guessing, short enough for a local part."""

_VERP_LOCAL = re.compile(
    r"^(?P<prefix>[^+@\s]+)\+m(?P<mailing>\d{1,18})\.r(?P<recipient>\d{1,18})\.(?P<tag>[a-z2-7]{8,12})$"
)
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*/=?^_`{|}~.-]+$")
_DOMAIN = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)


class VerpError(ValueError):
    """Arguments that cannot make a valid VERP address (negative id, bad local part or domain, no secret)."""


def _tag(mailing_id: int, recipient_id: int, secret: bytes, length: int = TAG_LENGTH) -> str:
    digest = hmac.new(secret, f"{mailing_id}.{recipient_id}".encode(), hashlib.sha256).digest()
    # Base32 turns each 5 bytes into 8 characters, so 10 bytes give the same first 16 characters as
    # the whole digest at a third of the cost (this runs once per message sent).
    return base64.b32encode(digest[:10]).decode("ascii").lower()[:length]


@functools.lru_cache(maxsize=64)
def _check_parts(local: str, domain: str) -> None:
    """Raise VerpError for a local part or domain that cannot make an address (cached: a mailing uses
    the same pair for every message)."""
    if not local or "+" in local or not _LOCAL_PART.match(local):
        raise VerpError(f"invalid VERP local part {local!r} (no '+', no spaces, no '@')")
    if not domain or not _DOMAIN.match(domain):
        raise VerpError(f"invalid VERP domain {domain!r}")


def encode(mailing_id: int, recipient_id: int, *, local: str, domain: str, secret: bytes) -> str:
    """Return the VERP envelope sender for one recipient of one mailing.

    Raises VerpError for negative ids, an empty secret, or a local part / domain that would not make a
    deliverable address (a ``+`` in ``local`` would make the address ambiguous to decode).
    """
    if isinstance(mailing_id, bool) or isinstance(recipient_id, bool):
        raise VerpError("mailing_id and recipient_id must be integers, not booleans")
    if mailing_id < 0 or recipient_id < 0:
        raise VerpError(f"ids must be non-negative, got mailing {mailing_id} recipient {recipient_id}")
    if not secret:
        raise VerpError("the VERP secret must not be empty")
    _check_parts(local, domain)
    return f"{local}+m{mailing_id}.r{recipient_id}.{_tag(mailing_id, recipient_id, secret)}@{domain}"


def decode(address: str, *, secret: bytes) -> tuple[int, int] | None:
    """Return ``(mailing_id, recipient_id)`` from a VERP address, or None if it is not one of ours.

    None covers every kind of refusal (not VERP-shaped, tag forged or truncated, wrong secret), since a
    bounce for an address we cannot authenticate must simply not be attributed. Accepts ``<...>``
    brackets and any letter case; compares tags in constant time.
    """
    if not secret or not isinstance(address, str) or len(address) > 512:
        return None
    address = address.strip().strip("<>").strip()
    local, at, _domain = address.rpartition("@")
    if not at:
        return None
    match = _VERP_LOCAL.match(local.lower())
    if match is None:
        return None
    mailing_id, recipient_id = int(match["mailing"]), int(match["recipient"])
    given = match["tag"]
    # Any length from 8 to 12 is checked against the HMAC prefix of that length, so changing
    # TAG_LENGTH later does not orphan bounces of messages already sent.
    if not hmac.compare_digest(given, _tag(mailing_id, recipient_id, secret, len(given))):
        return None
    return mailing_id, recipient_id
