"""Secrets at rest: webhook signing secrets and MailUp keys, sealed with a key derived from the installation
secret (MISSIVA_SECRET_KEY).

A database dump alone therefore reveals no secret that would let someone forge events to a customer.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from missiva.errors import DomainError

_INFO = b"missiva/webhook-secrets/v1"


class SecretUnreadable(DomainError):
    """A sealed secret cannot be opened: the installation secret changed since it was stored."""

    code = "secret_unreadable"


@lru_cache(maxsize=8)
def _fernet(installation_secret: str) -> Fernet:
    if not installation_secret:
        raise ValueError("the installation secret (MISSIVA_SECRET_KEY) is empty")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        installation_secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(installation_secret: str, plaintext: str) -> str:
    """`plaintext` encrypted and authenticated (Fernet) for storage."""
    return _fernet(installation_secret).encrypt(plaintext.encode()).decode("ascii")


def unseal(installation_secret: str, token: str) -> str:
    """The plaintext of a sealed secret; SecretUnreadable if it was sealed with another installation key."""
    try:
        return _fernet(installation_secret).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "a stored webhook secret cannot be decrypted; was MISSIVA_SECRET_KEY changed? "
            "rotate the endpoint's secret to replace it",
            field="secret",
        ) from exc
