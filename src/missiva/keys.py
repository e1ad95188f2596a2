"""Keys derived from the installation secret (MISSIVA_SECRET_KEY), one per purpose.

Separate keys per purpose mean a token of one kind can never be replayed as another, and a database
dump alone reveals no stored secret (webhook signing secrets, FTP logins, SMSC passwords).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from missiva import runtime


def derived_secret(purpose: str, secret_key: str | None = None) -> bytes:
    """A 32-byte key for one purpose (VERP, unsubscribe links, ...).

    `secret_key` defaults to the process settings'; the inbound receiver passes its own settings' key
    so it checks VERP tags with exactly the key the sender signed them with.
    """
    key = runtime.settings().secret_key if secret_key is None else secret_key
    return hashlib.sha256(f"missiva:{purpose}:{key}".encode()).digest()


def fernet(purpose: str, secret_key: str | None = None) -> Fernet:
    """The Fernet (authenticated encryption) that seals secrets stored for `purpose`."""
    key = runtime.settings().secret_key if secret_key is None else secret_key
    if not key:
        raise ValueError("the installation secret (MISSIVA_SECRET_KEY) is empty")
    return _fernet(purpose, key)


@lru_cache(maxsize=32)
def _fernet(purpose: str, secret_key: str) -> Fernet:
    info = f"missiva/{purpose}/v1".encode()
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(raw))
