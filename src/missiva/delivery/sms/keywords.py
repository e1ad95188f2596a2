"""Recognising an opt-out reply ("STOP", "Arrêt", "stop!", "Cancella") in an inbound SMS.

A reply counts as a stop request when, once accents, case and punctuation are dropped, it is a
keyword, optionally followed by at most ``max_extra_words`` words ("STOP ALL", "arret svp"). Longer
messages that merely start with a keyword ("Alt er fint") are not: an unwanted unsubscribe is worse
than a reply read by a person.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

DEFAULT_STOP_KEYWORDS: tuple[str, ...] = ("STOP", "ARRET", "ALT", "CANCELLA", "STOPP", "BAJA", "UNSUBSCRIBE")

_NOT_WORD = re.compile(r"[^0-9A-Z]+")


def normalise(text: str) -> list[str]:
    """Words of ``text`` upper-cased, without accents or punctuation ("Arrêt !" -> ["ARRET"])."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_WORD.sub(" ", bare.upper()).split()


def is_stop(text: str, keywords: Iterable[str] = DEFAULT_STOP_KEYWORDS, max_extra_words: int = 1) -> bool:
    """Whether an inbound SMS asks to unsubscribe (see the module docstring for the rule)."""
    words = normalise(text)
    if not words:
        return False
    for keyword in keywords:
        wanted = normalise(keyword)
        if not wanted:
            raise ValueError(f"stop keyword {keyword!r} has no letters or digits")
        if words[: len(wanted)] == wanted and len(words) - len(wanted) <= max_extra_words:
            return True
    return False
