"""Hashing and checking of passwords and API keys, in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """A salted scrypt hash of `password`, self-describing so parameters can change later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`; compares digests in constant time."""
    try:
        scheme, n, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.b64decode(salt_b64)
    expected = base64.b64decode(digest_b64)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=len(expected), n=int(n), r=8, p=1)
    return hmac.compare_digest(digest, expected)


def new_api_key() -> tuple[str, str, str]:
    """A fresh key as (full key shown once, public prefix, hash of the secret to store).

    The secret has 256 bits of entropy, so a plain SHA-256 is enough (no slow hash needed) and lets
    every request be checked in microseconds.
    """
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"msv_{prefix}_{secret}", prefix, hash_key_secret(secret)


def hash_key_secret(secret: str) -> str:
    """SHA-256 hex digest of an API key's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_key(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "msv" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def new_password() -> str:
    """A random password for generated users."""
    return secrets.token_urlsafe(18)
