"""Link rewriting: a message's http(s) links become per-recipient link slots, plus an open pixel.

`rewrite` runs once per mailing on the author's HTML (and text part, if written by hand), before the
message is compiled. Each distinct tracked URL gets an index; its ``href`` becomes the skeleton's link
slot of that index (`missiva.messages.mime.link_slot`), which the skeleton fills per recipient with a
signed click URL. The URL list is stored with the mailing and is the only place a click may redirect
to: the token carries an index, never a URL, so there is no open redirect.

Not tracked: ``mailto:``, ``tel:``, anchors and other schemes; links into Missiva itself (unsubscribe,
confirmation pages); URLs holding template syntax (``[email]``, ``{{ x }}``), which differ per recipient
and so cannot be a fixed redirect target; and ``<a>`` tags marked ``data-missiva-track="off"``. Links
inside HTML comments (Outlook conditional blocks) are left alone too.

The HTML is tokenised with the standard library's parser only to find where each start tag sits; edits
are spliced into the original text, so template syntax and the author's markup stay byte-for-byte.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from missiva.messages.mime import link_slot

MAX_LINKS = 500
_HREF = re.compile(r"""(\shref\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)
_TEMPLATE_SYNTAX = re.compile(r"\[[^\[\]\r\n<>]{1,64}\]|\{\{|\{%|\{#|%7B%7B|%7B%25", re.IGNORECASE)
_TEXT_URL = re.compile(r"""https?://[^\s<>()"'\[\]]+""", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?"


class TooManyLinks(ValueError):
    """A message has more distinct tracked links than a mailing may carry."""


@dataclass(frozen=True)
class RewrittenContent:
    """Content ready to compile: link slots in place, and what each slot index stands for.

    ``urls[i]`` is the original target of slot ``i``; slot ``len(urls)`` is the open pixel (when
    ``pixel``). `html`/`text` are None when the input had none.
    """

    html: str | None
    text: str | None
    urls: tuple[str, ...]
    pixel: bool

    @property
    def slot_count(self) -> int:
        return len(self.urls) + (1 if self.pixel else 0)


class _UrlIndex:
    def __init__(self) -> None:
        self.urls: dict[str, int] = {}

    def slot(self, url: str) -> str:
        index = self.urls.get(url)
        if index is None:
            if len(self.urls) >= MAX_LINKS:
                raise TooManyLinks(f"more than {MAX_LINKS} distinct links in one message")
            index = self.urls[url] = len(self.urls)
        return link_slot(index)


def is_trackable(url: str, own_base: str | None) -> bool:
    """Whether a link target can be tracked (see the module docstring for what is not)."""
    lowered = url.strip().lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")):
        return False
    if _TEMPLATE_SYNTAX.search(url) or any(ch.isspace() for ch in url.strip()):
        return False
    if own_base and lowered.startswith(own_base.lower().rstrip("/") + "/"):
        return False
    return ".missiva.invalid/" not in lowered


class _Finder(HTMLParser):
    """Collects (offset, start-tag text) for every ``<a>``/``<area>`` start tag outside comments."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self.tags: list[tuple[int, str, dict[str, str | None]]] = []
        self._line_starts = [0]
        for match in re.finditer("\n", source):
            self._line_starts.append(match.end())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            line, column = self.getpos()
            text = self.get_starttag_text() or ""
            self.tags.append((self._line_starts[line - 1] + column, text, dict(attrs)))

    handle_startendtag = handle_starttag


def _rewrite_html(source: str, index: _UrlIndex, own_base: str | None) -> str:
    finder = _Finder(source)
    finder.feed(source)
    finder.close()
    edits: list[tuple[int, int, str]] = []
    for offset, tag_text, attrs in finder.tags:
        if source[offset : offset + len(tag_text)] != tag_text:
            continue  # the parser's position disagrees with the text: leave the tag alone
        if (attrs.get("data-missiva-track") or "").lower() == "off":
            continue
        match = _HREF.search(tag_text)
        if match is None:
            continue
        raw = match.group(2)
        url = html.unescape(raw[1:-1] if raw[0] in "\"'" else raw).strip()
        if not is_trackable(url, own_base):
            continue
        start = offset + match.start(2)
        edits.append((start, start + len(raw), f'"{index.slot(url)}"'))
    out = source
    for start, end, replacement in reversed(edits):
        out = out[:start] + replacement + out[end:]
    return out


def _add_pixel(source: str, url: str) -> str:
    image = (
        f'<img src="{url}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )
    closing = list(_BODY_CLOSE.finditer(source))
    if not closing:
        return source + image
    at = closing[-1].start()
    return source[:at] + image + source[at:]


def _rewrite_text(source: str, index: _UrlIndex, own_base: str | None) -> str:
    def swap(match: re.Match[str]) -> str:
        url = match.group(0)
        trail = ""
        while url and url[-1] in _TRAILING_PUNCTUATION:
            url, trail = url[:-1], url[-1] + trail
        if not is_trackable(url, own_base):
            return match.group(0)
        return index.slot(url) + trail

    return _TEXT_URL.sub(swap, source)


def rewrite(
    html_source: str | None,
    text_source: str | None = None,
    *,
    own_base: str | None = None,
    clicks: bool = True,
    opens: bool = True,
) -> RewrittenContent:
    """Put link slots into a message's HTML (and hand-written text part) and list their targets.

    `own_base` is Missiva's public base URL: links to it (unsubscribe, pages) are not tracked. The
    pixel goes just before ``</body>`` (at the end without one) and only into an HTML part. Raises
    `TooManyLinks` past `MAX_LINKS` distinct URLs.
    """
    index = _UrlIndex()
    new_html, new_text = html_source, text_source
    if clicks and html_source is not None:
        new_html = _rewrite_html(html_source, index, own_base)
    if clicks and text_source is not None:
        new_text = _rewrite_text(text_source, index, own_base)
    pixel = opens and new_html is not None
    if new_html is not None and pixel:
        new_html = _add_pixel(new_html, link_slot(len(index.urls)))
    return RewrittenContent(new_html, new_text, tuple(index.urls), pixel)
