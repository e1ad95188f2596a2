"""SMTP status codes in bounce text, and the hard/soft verdict built on them.

One table says which enhanced status codes (RFC 3463) mean "this address is dead" (a hard bounce that
should suppress the recipient) and everything else is soft: policy blocks, blocklists, content filters,
rate limits, a full mailbox, DNS or network trouble and any 4xx are about us or about now, not about the
address. MTAs often give only a generic code (5.0.0, X.Y.0) or none, so four unambiguous reasons are
recognised in the text and turn into a specific code; other texts leave the generic code alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# X.Y.Z with X in {2,4,5}; not part of a longer dotted number such as an IP address or version.
_ENHANCED = re.compile(r"(?<![\d.])([245])\.([0-7])\.(\d{1,3})(?!\d)(?!\.\d)")
# A basic reply code at the start of a line or after a separator ("550 ", "550-", "550:", "#550").
_BASIC = re.compile(r"(?<![\d.\w])([45][0-5]\d)(?=[ \-:]|$)", re.MULTILINE)

HARD_CODES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10"})
"""Codes that by themselves mean the address is dead."""

SENDER_CODES = frozenset({"5.1.7", "5.1.8"})
"""Problems with our sender address: never the recipient's fault."""


@dataclass(frozen=True, slots=True)
class Reason:
    """A reason recognised in free text and the status detail it stands for."""

    name: str
    subject_detail: str  # "1.1" for user unknown, ...
    permanent: bool  # True when the reason is permanent whatever class the MTA gave
    pattern: re.Pattern[str]


# Order matters: the first reason that matches wins (a domain that does not exist also makes the
# "address could not be found" sentence of Gmail true).
REASONS: tuple[Reason, ...] = (
    Reason(
        "null_mx",
        "1.10",
        True,
        re.compile(r"null mx|does not accept (e-?)?mail|doesn't receive (e-?)?mail", re.I),
    ),
    Reason(
        "domain_not_found",
        "1.2",
        True,
        re.compile(
            r"domain \S+ (couldn't|could not) be found|domain name not found|nxdomain|host unknown"
            r"|unknown host|couldn't find any host|no mx record|host or domain name not found",
            re.I,
        ),
    ),
    Reason(
        "mailbox_full",
        "2.2",
        False,
        re.compile(
            r"mailbox (is )?full|mailbox_full|(over|exceed(s|ed|ing)?( the| their| his| her| mailbox| disk)?)"
            r" (disk )?quota|quota exceeded|storage quota|insufficient (disk )?space|disk quota"
            r"|mailbox size limit"
            r"|not enough (disk )?space",
            re.I,
        ),
    ),
    Reason(
        "disabled",
        "2.1",
        False,
        re.compile(
            r"account (has been |is )?(disabled|discontinued|suspended|deactivated|inactive|expired|locked)"
            r"|(disabled|inactive|suspended|deactivated) (account|mailbox|recipient|user)"
            r"|mailbox (is )?(disabled|inactive)|no longer (active|in use)",
            re.I,
        ),
    ),
    Reason(
        "user_unknown",
        "1.1",
        False,
        re.compile(
            r"user ?unknown|unknown (user|recipient|local[- ]part|alias|mailbox|address)|no such (user"
            r"|mailbox|recipient)"
            r"|user (not found|doesn't exist|does not exist)|recipient (not found|unknown|does not exist)"
            r"|(address|account|mailbox|user)[^.\n]{0,40}(does not exist|doesn't exist|couldn't be found"
            r"|could not be found|wasn't found|was not found)|doesn't have an? \S+ account"
            r"|not listed in (the )?(domino directory|public name)|recipient name is not recognized"
            r"|invalid (recipient|mailbox|address)|no mailbox here|mailbox unavailable|not our (user"
            r"|customer)"
            r"|unknown or illegal|recipient address rejected: user unknown|no longer on server",
            re.I,
        ),
    ),
)

_TEMPORARY_DNS = re.compile(r"malformed|try again|servfail|timed? ?out|temporar", re.I)
_O365_EDGE_BLOCK = re.compile(r"recipient address rejected: access denied", re.I)


def enhanced_codes(text: str) -> list[str]:
    """Enhanced status codes found in ``text``, in order."""
    return [f"{a}.{b}.{c}" for a, b, c in _ENHANCED.findall(text)]


def basic_code(text: str) -> str | None:
    """The first three-digit SMTP failure reply code (4xx or 5xx) in ``text``, if any."""
    match = _BASIC.search(text)
    return match.group(1) if match else None


def is_generic(code: str) -> bool:
    """True for codes whose detail is 0 (5.0.0, 4.3.0, 5.1.0): they say little about the cause."""
    return code.rsplit(".", 1)[-1] == "0"


def best_code(*sources: str | None) -> str | None:
    """The most telling enhanced code: the first specific one across ``sources``, else the first generic.

    Callers pass the remote server's text before the reporting MTA's own Status field, since the
    reporter often summarises (sendmail writes Status 5.1.1 for a remote "550 5.7.1 blacklisted").
    """
    first: str | None = None
    for source in sources:
        if not source:
            continue
        for code in enhanced_codes(source):
            if not is_generic(code):
                return code
            first = first or code
    return first


def find_reason(*texts: str | None) -> Reason | None:
    """The first known reason found in the texts, tried in the given order."""
    for text in texts:
        if not text:
            continue
        for reason in REASONS:
            if reason.pattern.search(text):
                return reason
    return None


def refine(code: str | None, reason: Reason | None, status_class: str) -> str | None:
    """Replace a missing or generic code by the code of a recognised reason."""
    if reason is None or (code is not None and not is_generic(code)):
        return code
    klass = "5" if reason.permanent else (code[0] if code else status_class)
    return f"{klass}.{reason.subject_detail}"


def is_hard(code: str | None, text: str, reason: Reason | None) -> bool:
    """Whether a permanent failure with this code and text means the address itself is dead."""
    if code is None or not code.startswith("5."):
        return False
    if code in SENDER_CODES:
        return False
    if code in HARD_CODES:
        return True
    names = {reason.name} if reason else set()
    if code == "5.4.4":  # "unable to route": the domain does not resolve, unless DNS was merely broken
        return not _TEMPORARY_DNS.search(text)
    if code == "5.4.1":  # Office 365 directory-based edge blocking of an unknown recipient
        return bool(_O365_EDGE_BLOCK.search(text))
    if code == "5.2.1" or code == "5.7.13":  # disabled mailbox, unless it is only rate-limited
        return bool(names & {"disabled", "user_unknown"})
    if code.startswith("5.1."):  # vendor details such as Office 365's 5.1.351
        return bool(names & {"user_unknown", "domain_not_found", "null_mx"})
    return False
