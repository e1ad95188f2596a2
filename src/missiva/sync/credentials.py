"""Sync job secrets (passwords, private keys) encrypted at rest with a key derived from the
installation's secret: a database dump alone does not give away the customer's FTP logins."""

from __future__ import annotations

import json

from cryptography.fernet import InvalidToken

from missiva import keys

_PURPOSE = "sync-credentials"


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted: the secret key changed since they were saved."""


def seal(secrets: dict[str, str | None], secret_key: str) -> str | None:
    """The non-empty entries of `secrets` encrypted as one token (None when there are none)."""
    kept = {k: v for k, v in secrets.items() if v}
    if not kept:
        return None
    return keys.fernet(_PURPOSE, secret_key).encrypt(json.dumps(kept).encode()).decode()


def unseal(token: str | None, secret_key: str) -> dict[str, str]:
    """The secrets `seal` encrypted; CredentialsUnreadable if the key does not match."""
    if not token:
        return {}
    try:
        return json.loads(keys.fernet(_PURPOSE, secret_key).decrypt(token.encode()))
    except InvalidToken:
        raise CredentialsUnreadable(
            "the stored credentials cannot be decrypted (was MISSIVA_SECRET_KEY changed?); enter them again"
        ) from None
