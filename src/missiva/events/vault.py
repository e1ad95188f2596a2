"""Secrets at rest: webhook signing secrets and MailUp keys, sealed with a key derived from the installation
secret (MISSIVA_SECRET_KEY).

A database dump alone therefore reveals no secret that would let someone forge events to a customer.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken

from missiva import keys
from missiva.errors import DomainError

_PURPOSE = "webhook-secrets"


class SecretUnreadable(DomainError):
    """A sealed secret cannot be opened: the installation secret changed since it was stored."""

    code = "secret_unreadable"


def seal(installation_secret: str, plaintext: str) -> str:
    """`plaintext` encrypted and authenticated (Fernet) for storage."""
    return keys.fernet(_PURPOSE, installation_secret).encrypt(plaintext.encode()).decode("ascii")


def unseal(installation_secret: str, token: str) -> str:
    """The plaintext of a sealed secret; SecretUnreadable if it was sealed with another installation key."""
    try:
        return keys.fernet(_PURPOSE, installation_secret).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "a stored webhook secret cannot be decrypted; was MISSIVA_SECRET_KEY changed? "
            "rotate the endpoint's secret to replace it",
            field="secret",
        ) from exc
