"""Sync job secrets (passwords, private keys) encrypted at rest with a key derived from the
installation's secret: a database dump alone does not give away the customer's FTP logins."""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"missiva sync job credentials v1"


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted: the secret key changed since they were saved."""


def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise ValueError("an installation secret key is required to store credentials")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secrets: dict[str, str | None], secret_key: str) -> str | None:
    """The non-empty entries of `secrets` encrypted as one token (None when there are none)."""
    kept = {k: v for k, v in secrets.items() if v}
    if not kept:
        return None
    return _fernet(secret_key).encrypt(json.dumps(kept).encode()).decode()


def unseal(token: str | None, secret_key: str) -> dict[str, str]:
    """The secrets `seal` encrypted; CredentialsUnreadable if the key does not match."""
    if not token:
        return {}
    try:
        return json.loads(_fernet(secret_key).decrypt(token.encode()))
    except InvalidToken:
        raise CredentialsUnreadable(
            "the stored credentials cannot be decrypted (was MISSIVA_SECRET_KEY changed?); enter them again"
        ) from None
