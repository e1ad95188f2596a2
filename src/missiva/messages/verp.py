"""VERP return paths: the envelope sender names the mailing and the recipient a bounce belongs to.

``bounces+<mailing>-<recipient>@<bounce domain>``: a bounce that arrives at that address is matched to
its ledger row without parsing the DSN body, which is what makes VERP reliable.
"""

from __future__ import annotations

import re

_ID = re.compile(r"[A-Za-z0-9_]{1,64}\Z")
_VERP = re.compile(
    r"(?P<local>[^+@\s]+)\+(?P<mailing>[A-Za-z0-9_]{1,64})-(?P<recipient>[A-Za-z0-9_]{1,64})@(?P<domain>[^@\s]+)\Z"
)


class VerpError(ValueError):
    """An id cannot be carried in a VERP address."""


def verp_address(local: str, domain: str, mailing_id: str | int, recipient_id: str | int) -> str:
    """The envelope sender for one recipient of one mailing."""
    mailing, recipient = str(mailing_id), str(recipient_id)
    for label, value in (("mailing id", mailing), ("recipient id", recipient)):
        if not _ID.match(value):
            raise VerpError(f"{label} {value!r} must be 1-64 letters, digits or underscores")
    return f"{local}+{mailing}-{recipient}@{domain}"


def parse_verp(address: str) -> tuple[str, str] | None:
    """(mailing id, recipient id) from a VERP address, or None when the address is not one of ours."""
    match = _VERP.match(address.strip().strip("<>"))
    if match is None:
        return None
    return match.group("mailing"), match.group("recipient")
