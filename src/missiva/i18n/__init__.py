"""Translations for recipient-facing pages and messages, from gettext catalogs (Babel).

Catalogs are kept as `.po` source and compiled in memory on first use, so there is no build step and
no binary file to keep in sync.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = Path(__file__).parent / "locales"
SUPPORTED = ("en", "it")


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The translations for `language` (falling back to English, then to the source strings)."""
    lang = language if language in SUPPORTED else "en"
    po_path = LOCALES / lang / "LC_MESSAGES" / "missiva.po"
    if not po_path.exists():
        return gettext.NullTranslations()
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def gettext_for(language: str):
    """The `gettext` function of `language`."""
    return translations(language).gettext
