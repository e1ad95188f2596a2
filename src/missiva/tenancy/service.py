"""Use cases of the tenancy domain: accounts, users, API keys and the caller-IP allowlist."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.cache import TTLCache
from missiva.db import utcnow
from missiva.errors import Conflict, InvalidInput, NotFound
from missiva.tenancy.models import Account, AllowedIp, ApiKey, User
from missiva.tenancy.secrets import (
    hash_key_secret,
    hash_password,
    new_api_key,
    new_password,
    split_api_key,
    verify_password,
)

# A new account's allowlist: calls from the machine itself work out of the box, nothing else does.
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class NewAccount:
    """A created account with the secrets shown only once."""

    account: Account
    ws_username: str
    ws_password: str
    api_key: str


@dataclass(frozen=True)
class NewApiKey:
    """A created key; `key` is the only time the secret is visible."""

    id: int
    account_id: int
    name: str
    key: str


def create_account(
    session: Session, name: str, *, host: str | None = None, default_country: str | None = None
) -> NewAccount:
    """Create an account with its web-service user, a first API key and a loopback-only allowlist.

    Raises Conflict if `host` is already another account's console host.
    """
    name = name.strip()
    if not name:
        raise InvalidInput("account name is empty", field="name")
    if host is not None:
        host = normalise_host(host)
        if session.scalar(select(Account.id).where(Account.host == host)):
            raise Conflict(f"host {host!r} already belongs to another account", field="host")
    country = default_country.upper() if default_country else None
    account = Account(name=name, host=host, default_country=country)
    session.add(account)
    session.flush()
    _host_cache.clear()
    password = new_password()
    username = f"a{account.id}"
    session.add(User(account_id=account.id, username=username, password_hash=hash_password(password)))
    for network in LOOPBACK_NETWORKS:
        session.add(AllowedIp(account_id=account.id, network=network, note="loopback (default)"))
    key = create_api_key(session, account.id, name="default")
    return NewAccount(account=account, ws_username=username, ws_password=password, api_key=key.key)


def normalise_host(host: str) -> str:
    """A console host as stored: lower case, no port, no trailing dot."""
    return host.strip().lower().rstrip(".").split(":")[0]


def get_account(session: Session, account_id: int) -> Account:
    """The account with `account_id`; NotFound otherwise."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} does not exist", field="account")
    return account


def account_by_host(session: Session, host: str) -> Account | None:
    """The account whose console host is `host` (port ignored), if any."""
    name = normalise_host(host)
    account_id = _host_cache.get_or_load(
        (str(session.get_bind().url), name),
        lambda: session.scalar(select(Account.id).where(Account.host == name)),
    )
    return session.get(Account, account_id) if account_id is not None else None


def list_accounts(session: Session) -> list[Account]:
    """Every account, oldest first."""
    return list(session.scalars(select(Account).order_by(Account.id)))


def create_api_key(session: Session, account_id: int, *, name: str = "") -> NewApiKey:
    """Create an API key for `account_id`; only its hash is stored."""
    get_account(session, account_id)
    full, prefix, digest = new_api_key()
    row = ApiKey(account_id=account_id, prefix=prefix, secret_hash=digest, name=name)
    session.add(row)
    session.flush()
    return NewApiKey(id=row.id, account_id=account_id, name=name, key=full)


@dataclass(frozen=True)
class KeyInfo:
    """An authenticated API key: which key, which account."""

    id: int
    account_id: int


# Checking a key, an allowlist or a host costs a query on every request; answers are remembered
# briefly. A change applies at once in the process that made it and within 10 seconds in the others.
_key_cache: TTLCache[KeyInfo | None] = TTLCache(ttl=10.0)
_networks_cache: TTLCache[list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = TTLCache(ttl=10.0)
_host_cache: TTLCache[int | None] = TTLCache(ttl=10.0)


def authenticate_api_key(session: Session, key: str) -> KeyInfo | None:
    """The live key for a presented key string, or None; the secret is compared in constant time."""
    parts = split_api_key(key)
    if parts is None:
        return None
    prefix, secret = parts
    digest = hash_key_secret(secret)

    def load() -> KeyInfo | None:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if row is None or row.revoked_at is not None:
            hmac.compare_digest(digest, "0" * 64)  # same work either way
            return None
        if not hmac.compare_digest(digest, row.secret_hash):
            return None
        return KeyInfo(id=row.id, account_id=row.account_id)

    info = _key_cache.get_or_load((str(session.get_bind().url), prefix, digest), load)
    if info is None:
        _key_cache.clear()  # never let a failed guess occupy the cache
    return info


def clear_key_cache() -> None:
    """Forget verified keys (after a revocation)."""
    _key_cache.clear()


def revoke_api_key(session: Session, account_id: int, key_id: int) -> None:
    """Revoke one of the account's keys; NotFound for a key of another account."""
    row = session.get(ApiKey, key_id)
    if row is None or row.account_id != account_id:
        raise NotFound(f"API key {key_id} does not exist", field="key_id")
    row.revoked_at = utcnow()
    clear_key_cache()


def authenticate_user(session: Session, username: str, password: str) -> User | None:
    """The user with these credentials, or None."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(password, "scrypt$16384$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44)
        return None
    return user if verify_password(password, user.password_hash) else None


def find_user(session: Session, username: str) -> User | None:
    """The user named `username`, if any."""
    return session.scalar(select(User).where(User.username == username))


def _parse_network(network: str) -> str:
    try:
        return str(ipaddress.ip_network(network.strip(), strict=False))
    except ValueError as exc:
        raise InvalidInput(f"{network!r} is not an IP address or network", field="network") from exc


def add_allowed_ip(session: Session, account_id: int, network: str, *, note: str = "") -> AllowedIp:
    """Allow `network` (an address or CIDR) to call the MailUp frontend for this account.

    Adding an address already allowed returns the existing entry.
    """
    canonical = _parse_network(network)
    existing = session.scalar(
        select(AllowedIp).where(AllowedIp.account_id == account_id, AllowedIp.network == canonical)
    )
    if existing is not None:
        return existing
    row = AllowedIp(account_id=account_id, network=canonical, note=note)
    session.add(row)
    session.flush()
    _networks_cache.clear()
    return row


def list_allowed_ips(session: Session, account_id: int) -> list[AllowedIp]:
    """The account's allowlist."""
    return list(
        session.scalars(select(AllowedIp).where(AllowedIp.account_id == account_id).order_by(AllowedIp.id))
    )


def remove_allowed_ip(session: Session, account_id: int, entry_id: int) -> None:
    """Remove one allowlist entry of the account; NotFound otherwise."""
    row = session.get(AllowedIp, entry_id)
    if row is None or row.account_id != account_id:
        raise NotFound(f"allowed IP entry {entry_id} does not exist", field="id")
    session.delete(row)
    _networks_cache.clear()


def ip_allowed(session: Session, account_id: int, address: str) -> bool:
    """Whether `address` falls in one of the account's allowed networks."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    networks = _networks_cache.get_or_load(
        (str(session.get_bind().url), account_id),
        lambda: [
            ipaddress.ip_network(n)
            for n in session.scalars(select(AllowedIp.network).where(AllowedIp.account_id == account_id))
        ],
    )
    return any(ip in network for network in networks)
