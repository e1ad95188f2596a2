"""Validation and normalisation of the two recipient identities: email address and mobile number."""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from missiva.errors import InvalidEmail, InvalidMobile

MAX_EMAIL_LENGTH = 254

# The everyday address (ASCII dot-atom local part, letters/digits/hyphen domain labels, alphabetic TLD)
# that email_validator would accept unchanged apart from case. Checking it with one regex is ~20x
# faster, which is what lets a million-row import validate every address; anything else (quotes,
# IDN, special-use or borderline domains) still goes through email_validator.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+=-]{1,64}(?:\.[a-z0-9_+=-]{1,64})*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}",
    re.IGNORECASE | re.ASCII,
)
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def _plain_email(value: str) -> str | None:
    """`value` lower-cased when it is an everyday address email_validator accepts as is, else None."""
    if _PLAIN_EMAIL.fullmatch(value) is None:
        return None
    local, _, domain = value.rpartition("@")
    lowered = domain.lower()
    if (
        len(local) > 64
        or len(domain) > 253
        or "--" in domain
        or lowered.rpartition(".")[2] in _SPECIAL_USE_TLDS
    ):
        return None
    return value.lower()


def normalise_email(raw: str) -> str:
    """The address in the form we store and match on: syntax checked, lower case.

    Case is folded for the whole address: mailbox providers treat local parts case-insensitively in
    practice and MailUp matches that way, so `Mario@X.it` and `mario@x.it` are one recipient.
    """
    value = raw.strip()
    if not value:
        raise InvalidEmail("email is empty", field="email")
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"email is longer than {MAX_EMAIL_LENGTH} characters", field="email")
    plain = _plain_email(value)
    if plain is not None:
        return plain
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"invalid email {value!r}: {exc}", field="email") from exc
    return result.normalized.lower()


_MOBILE_JUNK = re.compile(r"[\s().\-/]")


def normalise_mobile(raw: str, default_country: str | None = None) -> str:
    """The number in E.164 (`+393331234567`).

    MailUp clients send numbers with a `00` international prefix (WordPress rewrites `+` as `00`) or a
    bare national number; the latter needs the account's default country.
    """
    value = _MOBILE_JUNK.sub("", raw.strip())
    if not value:
        raise InvalidMobile("mobile number is empty", field="mobile")
    if value.startswith("00"):
        value = "+" + value[2:]
    try:
        number = phonenumbers.parse(value, None if value.startswith("+") else default_country)
    except phonenumbers.NumberParseException as exc:
        hint = "" if value.startswith("+") or default_country else " (no international prefix)"
        raise InvalidMobile(f"invalid mobile number {raw!r}{hint}: {exc}", field="mobile") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidMobile(f"invalid mobile number {raw!r}", field="mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
