"""SMTP client errors, by what the caller can do about them."""

from __future__ import annotations


class SmtpError(Exception):
    """Base class of SMTP client errors."""


class SmtpConnectError(SmtpError):
    """No usable session with a relay: refused, timed out, TLS or login failed, or greeting refused."""


class SessionLost(SmtpError):
    """The session ended before the message was committed: nothing was delivered, it can go elsewhere."""


class ReplyTimeout(SessionLost):
    """The relay did not answer in time; the session is dropped."""
