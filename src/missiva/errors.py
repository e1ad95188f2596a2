"""Domain errors raised by services; adapters (REST, MailUp compat, CLI) translate them.

Each error names what is wrong (`field`) so an adapter can point at the offending parameter.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """A referenced object does not exist in the caller's account."""

    code = "not_found"


class InvalidInput(DomainError):
    """A value is malformed, too long, or inconsistent with others."""

    code = "invalid"


class InvalidEmail(InvalidInput):
    code = "invalid_email"


class InvalidMobile(InvalidInput):
    code = "invalid_mobile"


class Conflict(DomainError):
    """The request contradicts existing state (e.g. a name already taken)."""

    code = "conflict"


class NotSubscribed(DomainError):
    """An unsubscribe or update names a recipient who is not subscribed to the list."""

    code = "not_subscribed"


class PermissionDenied(DomainError):
    """Authentication or authorisation failed."""

    code = "forbidden"
