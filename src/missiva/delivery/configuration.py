"""Sending settings read from MISSIVA_* variables: domains, relays, batch sizes, retries.

Kept apart from `missiva.config.Settings` (the core's) so the sending engine owns its knobs; tests and
benchmarks override them with `configure`. See docs/configuration.md, section "Sending".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from missiva import runtime
from missiva.delivery.smtp import Relay, RelayConfigError
from missiva.delivery.smtp.rate import parse_rate


@dataclass(frozen=True)
class SendingConfig:
    """How mailings are sent; every field has a working default for a single machine."""

    sending_domain: str = "localhost"
    bounce_domain: str = "bounces.localhost"
    bounce_local: str = "bounces"
    relays: tuple[Relay, ...] = field(default_factory=tuple)
    # Rows claimed (and marked `sending`) per transaction, ahead of the SMTP sessions.
    chunk: int = 200
    # The send window: messages handed to SMTP whose outcome the ledger does not hold yet. A sender
    # never has more; after a crash at most this many rows of it are `uncertain`.
    window: int = 200
    max_attempts: int = 5
    retry_base: float = 60.0
    dkim_selector: str | None = None
    dkim_key_file: str | None = None
    # Senders started for each mailing: one process sends at most what one core renders, so with
    # several worker processes (`missiva worker --processes N`) as many senders share the mailing.
    parallel: int = 1


def parse_relays(value: str | None) -> tuple[Relay, ...]:
    """Relays from ``URL[#weight=W&max=N&rate=R], URL...``; raises RelayConfigError naming the bad entry.

    The options ride in the URL fragment because the query belongs to the relay URL itself
    (``?starttls=1``). ``rate`` is a message rate such as ``100/s``, ``3000/m`` or ``50000/h``.
    """
    relays = []
    for raw in (value or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        url, _, options = entry.partition("#")
        opts = {k.lower(): v[-1] for k, v in parse_qs(options).items()}
        unknown = set(opts) - {"weight", "max", "rate"}
        if unknown:
            raise RelayConfigError(f"relay {url!r}: unknown option(s) {', '.join(sorted(unknown))}")
        try:
            weight = float(opts.get("weight", 1))
            max_connections = int(opts.get("max", 10))
        except ValueError as exc:
            raise RelayConfigError(f"relay {url!r}: bad weight or max: {exc}") from exc
        try:
            rate = parse_rate(opts["rate"]) if "rate" in opts else None
        except RelayConfigError as exc:
            raise RelayConfigError(f"relay {url!r}: {exc}") from None
        relays.append(Relay(url, weight=weight, max_connections=max_connections, rate=rate))
    return tuple(relays)


def from_env(env: dict[str, str] | None = None) -> SendingConfig:
    """The configuration in `env` (default: the process environment and the core settings)."""
    env = dict(os.environ if env is None else env)
    smtp_url = env.get("MISSIVA_SMTP_URL") or runtime.settings().smtp_url
    return SendingConfig(
        sending_domain=env.get("MISSIVA_SENDING_DOMAIN") or "localhost",
        bounce_domain=env.get("MISSIVA_BOUNCE_DOMAIN") or "bounces.localhost",
        bounce_local=env.get("MISSIVA_BOUNCE_LOCAL") or "bounces",
        relays=parse_relays(smtp_url),
        chunk=_positive(env, "MISSIVA_SEND_CHUNK", 200),
        window=_positive(env, "MISSIVA_SEND_WINDOW", 200),
        max_attempts=int(env.get("MISSIVA_SEND_MAX_ATTEMPTS") or 5),
        retry_base=float(env.get("MISSIVA_SEND_RETRY_BASE") or 60),
        dkim_selector=env.get("MISSIVA_DKIM_SELECTOR") or None,
        dkim_key_file=env.get("MISSIVA_DKIM_KEY_FILE") or None,
        parallel=_parallel(env.get("MISSIVA_SEND_PARALLEL")),
    )


def _positive(env: dict[str, str], name: str, default: int) -> int:
    """A positive whole number from `name`, or `default` when unset."""
    value = env.get(name) or str(default)
    try:
        number = int(value)
    except ValueError:
        raise RelayConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise RelayConfigError(f"{name} must be at least 1, not {number}")
    return number


def _parallel(value: str | None) -> int:
    """MISSIVA_SEND_PARALLEL: 1 to 64 senders per mailing."""
    try:
        count = int(value or 1)
    except ValueError:
        raise RelayConfigError(f"MISSIVA_SEND_PARALLEL must be a number of senders, not {value!r}") from None
    if not 1 <= count <= 64:
        raise RelayConfigError(f"MISSIVA_SEND_PARALLEL must be 1 to 64, not {count}")
    return count


_current: SendingConfig | None = None


def configure(config: SendingConfig | None) -> None:
    """Make `config` the process's sending configuration (None: read the environment again)."""
    global _current
    _current = config


def current() -> SendingConfig:
    """The configured sending settings."""
    return _current or from_env()
