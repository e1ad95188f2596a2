"""The outcome of handing one message to a relay, and how SMTP replies map to it.

One place decides what a reply means for the send ledger: ``hard_bounce`` (the address does not
exist: suppress it), ``soft_fail`` (try again later, with backoff), ``failed`` (rejected for another
reason; the code says why), ``uncertain`` (the data went out but the final reply never came, so the
message may or may not have been accepted).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum


class SendStatus(StrEnum):
    """What the caller should record for a recipient."""

    SENT = "sent"
    HARD_BOUNCE = "hard_bounce"
    SOFT_FAIL = "soft_fail"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


# RFC 3463: X.1.1 bad mailbox, X.1.2 bad system, X.1.3 bad mailbox syntax, X.1.10 null MX (RFC 7505).
HARD_BOUNCE_ENHANCED = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.10"})
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
_UNKNOWN_USER = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient)|(?:mailbox|recipient|address|user)"
    r" (?:not found|does not exist|doesn't exist|unknown)|invalid (?:recipient|mailbox)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class SendResult:
    """Per-recipient result; ``code`` is the SMTP reply code, 0 when no server answered."""

    status: SendStatus
    code: int
    enhanced: str | None
    text: str

    @property
    def retryable(self) -> bool:
        """Whether sending again later may succeed (soft failures only; never after an uncertain send)."""
        return self.status is SendStatus.SOFT_FAIL


def enhanced_code(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of a reply text, if any."""
    match = _ENHANCED.match(text)
    return match.group(0) if match else None


def classify(code: int, text: str, *, recipient_stage: bool = True) -> SendResult:
    """Map a final SMTP reply to a result.

    ``recipient_stage`` is False for replies about the sender (MAIL FROM): a 550 there says nothing about
    the recipient's address, so it is never a hard bounce.
    """
    enhanced = enhanced_code(text)
    if 200 <= code < 300:
        status = SendStatus.SENT
    elif 400 <= code < 500:
        status = SendStatus.SOFT_FAIL
    elif recipient_stage and (
        enhanced in HARD_BOUNCE_ENHANCED
        or (enhanced is None and code in (550, 553) and _UNKNOWN_USER.search(text))
    ):
        status = SendStatus.HARD_BOUNCE
    else:
        status = SendStatus.FAILED
    return SendResult(status, code, enhanced, text)


def no_reply(status: SendStatus, reason: str) -> SendResult:
    """A result for which no server reply exists (connection lost, no relay reachable)."""
    return SendResult(status, 0, None, reason)


def retry_delay(attempt: int, *, base: float = 60.0, cap: float = 6 * 3600.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based) after a soft failure.

    Exponential with full jitter, so a relay that throttled a whole mailing is not hit by every retry
    at the same instant.
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)
