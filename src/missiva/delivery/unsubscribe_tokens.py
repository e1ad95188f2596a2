"""Signed unsubscribe tokens for the List-Unsubscribe URL and mailto address.

``m<mailing>.r<recipient>.<tag>``: digits, dots and lowercase base32 only, so the same token is valid
in a URL path and in the local part of ``unsubscribe+<token>@<bounce domain>`` (some MTAs lowercase
local parts). The tag is an HMAC of the two ids under a key derived for this purpose only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from missiva.keys import derived_secret

TAG_LENGTH = 16  # 80 bits
_TOKEN = re.compile(r"m(\d{1,18})\.r(\d{1,18})\.([a-z2-7]{16})\Z")


def _tag(mailing_id: int, recipient_id: int, key: bytes) -> str:
    digest = hmac.new(key, f"{mailing_id}.{recipient_id}".encode(), hashlib.sha256).digest()
    # Base32 maps each 5 bytes to 8 characters, so the first 10 bytes give exactly the 16 characters
    # kept (encoding the whole digest only to cut it costs twice as much per message).
    return base64.b32encode(digest[: TAG_LENGTH * 5 // 8]).decode().lower()


def make(mailing_id: int, recipient_id: int, *, key: bytes | None = None) -> str:
    """The token for one recipient of one mailing."""
    key = key or derived_secret("unsubscribe")
    return f"m{mailing_id}.r{recipient_id}.{_tag(mailing_id, recipient_id, key)}"


def read(token: str, *, key: bytes | None = None) -> tuple[int, int] | None:
    """(mailing id, recipient id) of a genuine token; None for anything forged, altered or malformed."""
    match = _TOKEN.match(token.strip().lower()) if isinstance(token, str) and len(token) < 80 else None
    if match is None:
        return None
    mailing_id, recipient_id = int(match.group(1)), int(match.group(2))
    key = key or derived_secret("unsubscribe")
    if not hmac.compare_digest(match.group(3), _tag(mailing_id, recipient_id, key)):
        return None
    return mailing_id, recipient_id


def mailto_address(token: str, bounce_domain: str) -> str:
    """Where List-Unsubscribe's mailto points; the inbound receiver reads the token back."""
    return f"unsubscribe+{token}@{bounce_domain}"
