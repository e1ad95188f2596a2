"""Message content and its one-time preparation: CSS inlining, preheader, text part from HTML.

All of this runs once per mailing, before any recipient is rendered. Template syntax is protected by
placeholders while the HTML goes through css-inline (an HTML5 parser that would move ``{% for %}`` out of
a ``<table>``) and html2text (which would escape ``[email]`` inside links).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import css_inline
import html2text

from missiva.messages.templating import TemplateMode


class ContentError(ValueError):
    """The message content itself is unusable (e.g. CSS that cannot be inlined, no body at all)."""


@dataclass(frozen=True)
class Attachment:
    """A file sent with every copy of the message."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class MessageContent:
    """What the author wrote: the same for every recipient until personalised."""

    subject: str
    html: str | None
    from_address: str
    from_name: str = ""
    text: str | None = None
    reply_to: str | None = None
    preheader: str | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    mode: TemplateMode = "merge"


# Group 1 is an HTML comment, kept as it is (Outlook conditional comments hold brackets); any other
# match is template syntax to protect.
_MERGE_SYNTAX = re.compile(r"(<!--.*?-->)|\[[^\[\]\r\n<>]{1,64}\]", re.DOTALL)
_JINJA_SYNTAX = re.compile(r"(<!--.*?-->)|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_MARKDOWN_LINK = re.compile(r"\[([^\[\]\n]*)\]\(([^()\s]+)\)")
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_PREHEADER_STYLE = (
    "display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;"
    "opacity:0;overflow:hidden;mso-hide:all"
)


class _Placeholders:
    """Swap template syntax for inert tokens and back, so HTML tools leave it untouched."""

    def __init__(self, mode: TemplateMode, token: Callable[[int], str]) -> None:
        self._syntax = _JINJA_SYNTAX if mode == "jinja" else _MERGE_SYNTAX
        self._token = token
        self._saved: dict[str, str] = {}

    def protect(self, source: str) -> str:
        def swap(match: re.Match[str]) -> str:
            if match.group(1):
                return match.group(0)
            token = self._token(len(self._saved))
            self._saved[token] = match.group(0)
            return token

        return self._syntax.sub(swap, source)

    def restore(self, processed: str) -> str:
        if not self._saved:
            return processed
        pattern = re.compile("|".join(re.escape(token) for token in self._saved))
        return pattern.sub(lambda m: self._saved[m.group(0)], processed)


def inline_css(source: str, mode: TemplateMode) -> str:
    """Move ``<style>`` rules into ``style`` attributes, as most webmail clients drop ``<style>``."""
    # HTML comments survive the HTML5 parser in any position (even between table rows) and as
    # attribute text, so they carry template syntax through untouched.
    placeholders = _Placeholders(mode, lambda n: f"<!--missiva-{n}-->")
    try:
        inlined = css_inline.inline(placeholders.protect(source))
    except ValueError as exc:
        raise ContentError(f"cannot inline CSS: {exc}") from exc
    return placeholders.restore(inlined)


def add_preheader(source: str, preheader: str) -> str:
    """Put the preview text first in the body, hidden, where inbox lists pick it up."""
    block = f'<div style="{_PREHEADER_STYLE}">{html.escape(preheader)}</div>'
    match = _BODY_OPEN.search(source)
    if match is None:
        return block + source
    return source[: match.end()] + block + source[match.end() :]


def text_from_html(source: str, mode: TemplateMode) -> str:
    """A plain-text alternative of the HTML, keeping links as readable URLs and template tags intact."""
    placeholders = _Placeholders(mode, lambda n: f"MISSIVAPH{n:06d}X")
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.protect_links = False
    converter.inline_links = True
    converter.unicode_snob = True
    text = converter.handle(placeholders.protect(source))
    # Markdown link brackets would read as merge tags, and "label (url)" is what people expect in text.
    text = _MARKDOWN_LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) else m.group(2), text)
    return placeholders.restore(text).strip() + "\n"


@dataclass(frozen=True)
class PreparedContent:
    """Template sources ready to compile: CSS inlined, preheader in place, a text part always present."""

    subject: str
    html: str | None
    text: str
    text_from_html: bool = False


def prepare(content: MessageContent, *, inline: bool = True) -> PreparedContent:
    """Run the per-mailing HTML work once; raises `ContentError` when there is nothing to send."""
    if not content.html and not content.text:
        raise ContentError("a message needs an HTML part, a text part, or both")
    html_source = content.html
    text_source = content.text
    if html_source is not None:
        if inline:
            html_source = inline_css(html_source, content.mode)
        if text_source is None:
            # Before the preheader goes in: it is hidden in HTML but would be visible in text.
            text_source = text_from_html(html_source, content.mode)
        if content.preheader:
            html_source = add_preheader(html_source, content.preheader)
    assert text_source is not None
    return PreparedContent(
        subject=content.subject, html=html_source, text=text_source, text_from_html=content.text is None
    )
