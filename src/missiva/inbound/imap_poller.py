"""IMAP poller for setups where bounces land in an existing mailbox instead of our SMTP receiver.

Each poll logs in (IMAPS, STARTTLS or plain IMAP on a trusted network), takes the unseen messages of a
folder, spools each one (the same spool the receiver writes), and only then marks it seen, or moves it
to a "processed" folder. A crash between spooling and marking fetches the message again next time;
processing recognises it by its fingerprint and does nothing twice.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from missiva.config import Settings
from missiva.inbound import spool

log = logging.getLogger(__name__)

_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapConfigError(ValueError):
    """The IMAP URL cannot be used (scheme, host, credentials, options)."""


class ImapError(RuntimeError):
    """The IMAP server refused a step of the poll (login, folder, fetch); the message names the step."""


@dataclass(frozen=True)
class ImapConfig:
    """Where to poll: `imaps://user:password@host:993/INBOX?processed=Done` (see `from_url`)."""

    host: str
    username: str
    password: str = ""
    port: int = 993
    security: str = "ssl"  # ssl (imaps://), starttls (imap://...?starttls=1) or none (imap://)
    folder: str = "INBOX"
    processed_folder: str | None = None  # move messages here after spooling (else: only mark seen)
    timeout: float = 30.0
    batch: int = 200  # messages per poll at most
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_url(cls, url: str, *, ssl_context: ssl.SSLContext | None = None) -> ImapConfig:
        """Read `imap[s]://user:password@host[:port]/FOLDER?processed=F&starttls=1`.

        User and password are percent-decoded. Raises ImapConfigError naming what is wrong.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps"):
            raise ImapConfigError(f"IMAP URL must start with imap:// or imaps://, got {parts.scheme!r}")
        if not parts.hostname:
            raise ImapConfigError("IMAP URL has no host")
        if not parts.username:
            raise ImapConfigError("IMAP URL has no user name (imaps://user:password@host/)")
        query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"processed", "starttls", "timeout", "batch"}
        if unknown:
            raise ImapConfigError(f"unknown IMAP URL option(s): {', '.join(sorted(unknown))}")
        starttls = query.get("starttls", "").lower() in ("1", "true", "yes")
        if parts.scheme == "imaps" and starttls:
            raise ImapConfigError("starttls=1 goes with imap://, imaps:// is TLS from the start")
        security = "ssl" if parts.scheme == "imaps" else ("starttls" if starttls else "none")
        try:
            port = parts.port or (993 if security == "ssl" else 143)
            timeout = float(query.get("timeout", 30))
            batch = int(query.get("batch", 200))
        except ValueError as exc:
            raise ImapConfigError(f"bad IMAP URL number: {exc}") from exc
        return cls(
            host=parts.hostname,
            username=unquote(parts.username),
            password=unquote(parts.password or ""),
            port=port,
            security=security,
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
            processed_folder=query.get("processed") or None,
            timeout=timeout,
            batch=max(1, batch),
            ssl_context=ssl_context,
        )


def _check(step: str, reply: tuple[str, list]) -> list:
    status, data = reply
    if status != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise ImapError(f"IMAP {step} failed: {status} {detail}".strip())
    return data


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _connect(config: ImapConfig) -> imaplib.IMAP4:
    context = config.ssl_context or ssl.create_default_context()
    try:
        if config.security == "ssl":
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                config.host, config.port, ssl_context=context, timeout=config.timeout
            )
        else:
            client = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
            if config.security == "starttls":
                _check("STARTTLS", client.starttls(ssl_context=context))
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapError(f"cannot connect to IMAP server {config.host}:{config.port}: {exc}") from exc
    try:
        _check("LOGIN", client.login(config.username, config.password))
    except imaplib.IMAP4.error as exc:
        client.logout()
        raise ImapError(f"IMAP LOGIN failed for {config.username!r}: {exc}") from exc
    return client


def poll(settings: Settings, config: ImapConfig, *, on_message: Callable[[str], None] | None = None) -> int:
    """Spool the folder's unseen messages (up to `config.batch`); how many were spooled.

    `on_message(key)` is called for each spooled message (queue its processing). Messages larger than
    MISSIVA_INBOUND_MAX_BYTES are not spooled (a warning is logged) but marked like the others, so they
    are not fetched again on every poll.
    """
    client = _connect(config)
    try:
        _check(f"SELECT {config.folder}", client.select(_quote(config.folder)))
        capabilities = {c.upper() for c in client.capabilities}
        if config.processed_folder:
            client.create(_quote(config.processed_folder))  # NO when it exists: fine
        uids = _check("UID SEARCH UNSEEN", client.uid("SEARCH", "UNSEEN"))[0].split()[: config.batch]
        spooled = 0
        for uid in uids:
            key = _take(settings, config, client, uid.decode("ascii"))
            if key is None:
                continue
            spooled += 1
            if on_message is not None:
                try:
                    on_message(key)
                except Exception:
                    log.exception("inbound notification failed for %s", key)
        if config.processed_folder and uids:
            if "UIDPLUS" in capabilities:
                _check("UID EXPUNGE", client.uid("EXPUNGE", b",".join(uids).decode("ascii")))
            else:
                _check("EXPUNGE", client.expunge())
        return spooled
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()


def _take(settings: Settings, config: ImapConfig, client: imaplib.IMAP4, uid: str) -> str | None:
    """Spool one message, then mark it seen (and move it); its spool key, None when too big."""
    size_reply = _check(f"UID FETCH {uid} RFC822.SIZE", client.uid("FETCH", uid, "(RFC822.SIZE)"))
    sizes = [int(m.group(1)) for item in size_reply if isinstance(item, bytes) and (m := _SIZE.search(item))]
    key = None
    if sizes and sizes[0] > settings.inbound_max_bytes:
        log.warning("IMAP message UID %s is %s bytes, over the inbound limit: left unspooled", uid, sizes[0])
    else:
        data = _check(f"UID FETCH {uid}", client.uid("FETCH", uid, "(BODY.PEEK[])"))
        raw = next((item[1] for item in data if isinstance(item, tuple) and len(item) == 2), None)
        if raw is None:
            raise ImapError(f"IMAP UID FETCH {uid} returned no message body")
        key = spool.store(settings, raw, (), source="imap")
    _check(f"UID STORE {uid}", client.uid("STORE", uid, "+FLAGS", "(\\Seen)"))
    if config.processed_folder:
        _check(f"UID COPY {uid}", client.uid("COPY", uid, _quote(config.processed_folder)))
        _check(f"UID STORE {uid} Deleted", client.uid("STORE", uid, "+FLAGS", "(\\Deleted)"))
    return key
