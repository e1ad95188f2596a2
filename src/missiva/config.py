"""Settings read from MISSIVA_* environment variables.

One frozen object, built once per process, so every module reads the same values and tests can build
their own with `Settings.from_env(overrides)`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; see docs/configuration.md for each variable."""

    data_dir: Path
    database_url: str
    redis_url: str | None = None
    smtp_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    mail_from: str = "Missiva <no-reply@localhost>"
    huey_immediate: bool = False
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    bounce_domain: str = "bounces.localhost"
    inbound_host: str = "127.0.0.1"
    inbound_port: int | None = 2525
    inbound_max_bytes: int = 25 * 1024 * 1024
    soft_bounce_limit: int = 5  # this many soft bounces (distinct mailings) ...
    soft_bounce_days: int = 14  # ... within this many days suppress the address
    imap_url: str | None = None  # imaps://user:pass@host/INBOX?processed=Processed

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: the process environment)."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("MISSIVA_DATA_DIR") or "./var").resolve()
        database_url = env.get("MISSIVA_DATABASE_URL") or f"sqlite:///{data_dir / 'missiva.db'}"
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            redis_url=env.get("MISSIVA_REDIS_URL") or None,
            smtp_url=env.get("MISSIVA_SMTP_URL") or None,
            base_url=(env.get("MISSIVA_BASE_URL") or "http://127.0.0.1:8000").rstrip("/"),
            secret_key=env.get("MISSIVA_SECRET_KEY") or _secret_from_file(data_dir),
            mail_from=env.get("MISSIVA_MAIL_FROM") or "Missiva <no-reply@localhost>",
            huey_immediate=_bool(env.get("MISSIVA_HUEY_IMMEDIATE"), False),
            trusted_proxies=tuple(
                p.strip() for p in (env.get("MISSIVA_TRUSTED_PROXIES") or "").split(",") if p.strip()
            ),
            bounce_domain=(env.get("MISSIVA_BOUNCE_DOMAIN") or "bounces.localhost").lower(),
            inbound_host=env.get("MISSIVA_INBOUND_HOST") or "127.0.0.1",
            inbound_port=_port(env.get("MISSIVA_INBOUND_PORT"), 2525),
            inbound_max_bytes=int(env.get("MISSIVA_INBOUND_MAX_BYTES") or 25 * 1024 * 1024),
            soft_bounce_limit=int(env.get("MISSIVA_SOFT_BOUNCE_LIMIT") or 5),
            soft_bounce_days=int(env.get("MISSIVA_SOFT_BOUNCE_DAYS") or 14),
            imap_url=env.get("MISSIVA_IMAP_URL") or None,
        )


def _port(value: str | None, default: int) -> int | None:
    """A port number; `0`/`off` disables the listener."""
    if value is None or value == "":
        return default
    if value.strip().lower() in ("0", "off", "no", "false"):
        return None
    return int(value)


def _secret_from_file(data_dir: Path) -> str:
    """A per-installation signing secret, created on first use under the data directory.

    Tokens in public links (confirm, unsubscribe, tracking) are signed with it, so it must survive
    restarts; generating it into the data directory keeps `make run` zero-configuration.
    """
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings.from_env()
