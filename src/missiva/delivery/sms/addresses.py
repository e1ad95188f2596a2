"""SMS addresses as SMPP wants them: sender ids (alphanumeric, short code, number) and recipients.

The type of number (TON) and numbering plan (NPI) tell the SMSC how to read ``source_addr``: an
alphanumeric sender id is TON 5, a short code TON 3 (network specific), an international number
TON 1 / NPI 1 (E.164, sent without the leading "+").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TON_INTERNATIONAL = 0x01
TON_NETWORK_SPECIFIC = 0x03
TON_ALPHANUMERIC = 0x05
NPI_UNKNOWN = 0x00
NPI_E164 = 0x01

#: Alphanumeric sender ids are shown by handsets up to 11 characters.
MAX_ALPHANUMERIC = 11

_E164 = re.compile(r"\+?[1-9][0-9]{6,14}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 .\-_&]+")


class InvalidAddress(ValueError):
    """A sender id or recipient number that no SMSC would accept."""


@dataclass(frozen=True, slots=True)
class Address:
    """An address ready for a PDU: the digits or id, and its TON/NPI."""

    value: str
    ton: int
    npi: int


def sender(value: str) -> Address:
    """Classify a sender id: E.164 number, short code, or alphanumeric name (at most 11 characters)."""
    text = value.strip()
    if _E164.fullmatch(text) and (text.startswith("+") or len(text) > 8):
        return Address(text.removeprefix("+"), TON_INTERNATIONAL, NPI_E164)
    if _SHORT_CODE.fullmatch(text):
        return Address(text, TON_NETWORK_SPECIFIC, NPI_UNKNOWN)
    if not text or not _ALPHANUMERIC.fullmatch(text) or text.isdigit():
        raise InvalidAddress(
            f"sender id {value!r}: use a number, a short code or letters/digits/space . - _ &"
        )
    if len(text) > MAX_ALPHANUMERIC:
        raise InvalidAddress(
            f"alphanumeric sender id {value!r} has {len(text)} characters; at most {MAX_ALPHANUMERIC}"
        )
    return Address(text, TON_ALPHANUMERIC, NPI_UNKNOWN)


def recipient(value: str) -> Address:
    """A recipient number in international form (E.164, "+" optional)."""
    text = value.strip().replace(" ", "")
    if not _E164.fullmatch(text):
        raise InvalidAddress(f"recipient {value!r} is not an international number (E.164, 7-15 digits)")
    return Address(text.removeprefix("+"), TON_INTERNATIONAL, NPI_E164)
