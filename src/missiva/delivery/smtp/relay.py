"""Relay configuration from a URL: ``smtp://user:pass@host:port?starttls=1`` or ``smtps://...``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_TRUE = {"1", "true", "yes", "on"}


class RelayConfigError(ValueError):
    """A relay URL or its options cannot be used."""


class TlsMode(StrEnum):
    """How the session is encrypted."""

    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


@dataclass(frozen=True)
class Relay:
    """One SMTP relay: where it is, how to log in, and its share of the traffic.

    ``weight`` sets the share of new connections opened to it; ``max_connections`` caps its sessions;
    ``rate`` (messages per second, None: no limit) caps what goes through it: from one process, or
    from every process sharing the pool's `SlotSource`.
    """

    url: str = field(repr=False)
    weight: float = 1.0
    max_connections: int = 10
    rate: float | None = None
    host: str = field(init=False)
    port: int = field(init=False)
    tls: TlsMode = field(init=False)
    username: str | None = field(init=False, default=None)
    password: str | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("smtp", "smtps"):
            raise RelayConfigError(f"relay URL must start with smtp:// or smtps://, got {parts.scheme!r}")
        if not parts.hostname:
            raise RelayConfigError("relay URL has no host")
        try:
            port = parts.port
        except ValueError as exc:
            raise RelayConfigError(f"relay URL has a bad port: {exc}") from exc
        options = {key.lower(): values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(options) - {"starttls"}
        if unknown:
            raise RelayConfigError(f"unknown relay URL option(s): {', '.join(sorted(unknown))}")
        if parts.scheme == "smtps":
            tls = TlsMode.IMPLICIT
        elif options.get("starttls", "").lower() in _TRUE:
            tls = TlsMode.STARTTLS
        else:
            tls = TlsMode.NONE
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if username and tls is TlsMode.NONE and parts.hostname not in _LOOPBACK:
            raise RelayConfigError(
                f"relay {parts.hostname}: credentials would travel in clear; use smtps:// or ?starttls=1"
            )
        if self.weight <= 0:
            raise RelayConfigError(f"relay {parts.hostname}: weight must be positive")
        if self.max_connections < 1:
            raise RelayConfigError(f"relay {parts.hostname}: max_connections must be at least 1")
        if self.rate is not None and not self.rate > 0:
            raise RelayConfigError(f"relay {parts.hostname}: rate must be a positive number of messages/s")
        object.__setattr__(self, "host", parts.hostname)
        object.__setattr__(self, "port", port or (465 if tls is TlsMode.IMPLICIT else 25))
        object.__setattr__(self, "tls", tls)
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "password", password)

    @property
    def name(self) -> str:
        """host:port, for logs and error messages (never the credentials)."""
        return f"{self.host}:{self.port}"
