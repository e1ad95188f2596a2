"""Personalisation templates: MailUp merge tags and sandboxed Jinja2.

A template is compiled once per mailing and rendered once per recipient, so compilation does all the
parsing and rendering is a single ``str.format`` call (merge tags) or a compiled Jinja2 function.

Merge tags follow MailUp: ``[email]``, ``[campo3]`` (field by number) or ``[nome]`` (field by its name,
case-insensitive), each with an optional default for empty values: ``[nome|Cliente]``. In HTML parts the
values are HTML-escaped; tags inside HTML comments and ``<style>`` blocks are left alone, so Outlook
conditional comments (``<!--[if mso]>``) and CSS attribute selectors are not mistaken for tags.

Jinja2 mode runs in ``ImmutableSandboxedEnvironment`` because template authors are not trusted: a
template that reaches for Python internals (``''.__class__``) is refused with `TemplateSecurityError`.
"""

from __future__ import annotations

import html
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

TemplateMode = Literal["merge", "jinja"]

_FIELD_NUMBER = re.compile(r"campo(\d{1,4})\Z", re.IGNORECASE)
# One alternation: HTML regions to copy verbatim (comments, <style>), or a merge tag.
_HTML_SCAN = re.compile(
    r"(?P<skip><!--.*?-->|<style\b.*?</style\s*>)"
    r"|\[(?P<name>[^\[\]|\r\n<>]{1,64})(?:\|(?P<default>[^\[\]\r\n]*))?\]",
    re.IGNORECASE | re.DOTALL,
)
_TEXT_SCAN = re.compile(r"\[(?P<name>[^\[\]|\r\n<>]{1,64})(?:\|(?P<default>[^\[\]\r\n]*))?\]")
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


class TemplateError(Exception):
    """A template cannot be compiled or rendered; names the part, line and tag at fault."""

    def __init__(self, message: str, *, part: str, line: int | None = None, tag: str | None = None) -> None:
        self.part = part
        self.line = line
        self.tag = tag
        self.reason = message
        where = part if line is None else f"{part}, line {line}"
        what = f" (tag {tag!r})" if tag else ""
        super().__init__(f"{where}{what}: {message}")


class TemplateSecurityError(TemplateError):
    """The sandbox refused something the template tried to reach (Python internals, unsafe calls)."""


@dataclass(frozen=True)
class FieldMap:
    """The account's recipient fields: MailUp numbers them (``campoN``) and gives each a display name.

    ``names`` maps a field name (any case) to its number, e.g. ``{"nome": 1, "cognome": 2}``.
    """

    names: Mapping[str, int]

    def __post_init__(self) -> None:
        lowered = {name.strip().lower(): number for name, number in self.names.items()}
        object.__setattr__(self, "names", lowered)

    def resolve(self, tag: str) -> str | int | None:
        """The slot a tag refers to: ``"email"``, a field number, or None when unknown."""
        key = tag.strip().lower()
        if key == "email":
            return "email"
        match = _FIELD_NUMBER.match(key)
        if match:
            return int(match.group(1))
        return self.names.get(key)

    def numbers(self) -> set[int]:
        """Every field number that has a name."""
        return set(self.names.values())


EMPTY_FIELDS = FieldMap({})


def _line_of(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def _text(value: object) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


class MergeTemplate:
    """MailUp merge-tag template compiled to a format string and a list of slots."""

    __slots__ = ("_chunks", "_format", "_html", "_order", "_slots", "_unique", "part", "source")

    def __init__(
        self,
        source: str,
        *,
        part: str,
        html_part: bool,
        fields: FieldMap = EMPTY_FIELDS,
        strict: bool = True,
    ) -> None:
        self.source = source
        self.part = part
        self._html = html_part
        chunks: list[str] = []
        slots: list[tuple[str | int, str]] = []
        scanner = _HTML_SCAN if html_part else _TEXT_SCAN
        position = 0
        for match in scanner.finditer(source):
            if html_part and match.group("skip"):
                continue
            name = match.group("name")
            slot = fields.resolve(name)
            if slot is None:
                if strict:
                    raise TemplateError(
                        "unknown merge tag; use [email], [campoN] or a field name",
                        part=part,
                        line=_line_of(source, match.start()),
                        tag=name.strip(),
                    )
                continue
            chunks.append(source[position : match.start()])
            default = match.group("default") or ""
            slots.append((slot, html.escape(default) if html_part else default))
            position = match.end()
        chunks.append(source[position:])
        self._chunks = tuple(chunks)
        self._slots = tuple(slots)
        # A tag repeated in the template ([città] in every paragraph) is looked up, escaped and
        # encoded once per recipient: the format string refers to unique slots by index.
        self._unique = tuple(dict.fromkeys(slots))
        self._order = tuple(self._unique.index(slot) for slot in slots)
        escaped = [chunk.replace("{", "{{").replace("}", "}}") for chunk in chunks]
        self._format = escaped[0] + "".join(
            f"{{{index}}}{chunk}" for index, chunk in zip(self._order, escaped[1:], strict=True)
        )

    @property
    def slots(self) -> tuple[tuple[str | int, str], ...]:
        """(slot, default) for each tag in order of appearance."""
        return self._slots

    @property
    def chunks(self) -> tuple[str, ...]:
        """The literal text around the tags: one more chunk than there are slots."""
        return self._chunks

    @property
    def order(self) -> tuple[int, ...]:
        """For each tag in order of appearance, its index in `unique_values`."""
        return self._order

    def render(self, email: str, values: Mapping[int, object]) -> str:
        """The template with each tag replaced by the recipient's value, or the tag's default if empty."""
        return self._format.format(*self.unique_values(email, values))

    def unique_values(self, email: str, values: Mapping[int, object]) -> list[str]:
        """The text of each distinct (tag, default) pair, escaped in HTML parts; see `order`."""
        out: list[str] = []
        for slot, default in self._unique:
            value = email if slot == "email" else values.get(slot)  # type: ignore[call-overload]
            text = _text(value)
            if not text.strip():
                out.append(default)
            elif self._html:
                out.append(html.escape(text))
            else:
                out.append(text)
        return out


def _sandbox(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


_ENVIRONMENTS = {True: _sandbox(True), False: _sandbox(False)}


class JinjaTemplate:
    """Sandboxed Jinja2 template; recipient fields are variables named ``email``, ``campoN`` and by name."""

    __slots__ = ("_fields", "_numbers", "_template", "part", "source")

    def __init__(
        self,
        source: str,
        *,
        part: str,
        html_part: bool,
        fields: FieldMap = EMPTY_FIELDS,
        shared: Mapping[str, object] | None = None,
    ) -> None:
        self.source = source
        self.part = part
        self._fields = fields
        shared = dict(shared or {})
        environment = _ENVIRONMENTS[html_part]
        try:
            tree = environment.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                exc.message or "syntax error", part=part, line=exc.lineno, tag=_tag_of(exc)
            ) from exc
        known = {"email", *fields.names, *environment.globals, *shared}
        numbers = set(fields.numbers())
        for name in sorted(meta.find_undeclared_variables(tree) - known):
            numbered = _FIELD_NUMBER.match(name)
            if numbered:
                numbers.add(int(numbered.group(1)))
                continue
            line = next(node.lineno for node in tree.find_all(nodes.Name) if node.name == name)
            raise TemplateError("unknown variable", part=part, line=line, tag=name)
        self._numbers = frozenset(numbers)
        self._template = environment.from_string(tree, globals=shared)

    def render(self, email: str, values: Mapping[int, object]) -> str:
        """Render for one recipient; empty fields are empty strings so ``|default(x, true)`` applies."""
        context: dict[str, object] = {"email": email}
        for number in self._numbers:
            context[f"campo{number}"] = _text(values.get(number))
        for name, number in self._fields.names.items():
            context[name] = context[f"campo{number}"]
        try:
            return self._template.render(context)
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateSecurityError(
                f"refused by the sandbox: {exc}", part=self.part, line=_template_line(exc)
            ) from None
        except jinja2.UndefinedError as exc:
            found = _UNDEFINED_NAME.search(str(exc))
            raise TemplateError(
                str(exc), part=self.part, line=_template_line(exc), tag=found.group(1) if found else None
            ) from None
        except Exception as exc:  # any runtime error inside author code: report where it happened
            raise TemplateError(
                f"{type(exc).__name__}: {exc}", part=self.part, line=_template_line(exc)
            ) from None


def _tag_of(exc: jinja2.TemplateSyntaxError) -> str | None:
    found = re.search(r"(?:tag|closed is) '([^']+)'", exc.message or "")
    return found.group(1) if found else None


def _template_line(exc: BaseException) -> int | None:
    """The template line Jinja2 put in the traceback (its frames are rewritten to the template source)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>":
            line = frame.lineno
    return line


Template = MergeTemplate | JinjaTemplate


def compile_template(
    source: str,
    *,
    part: str,
    mode: TemplateMode = "merge",
    html_part: bool = False,
    fields: FieldMap = EMPTY_FIELDS,
    strict: bool = True,
    shared: Mapping[str, object] | None = None,
) -> Template:
    """Compile one part (subject, text or HTML) of a message; raises `TemplateError` on bad input.

    ``strict=False`` keeps unknown merge tags as literal text (used for a text part derived from HTML,
    whose tags were already checked in the HTML). ``shared`` are Jinja2 variables common to every
    recipient of the mailing (e.g. a product list to loop over).
    """
    if mode == "merge":
        return MergeTemplate(source, part=part, html_part=html_part, fields=fields, strict=strict)
    if mode == "jinja":
        return JinjaTemplate(source, part=part, html_part=html_part, fields=fields, shared=shared)
    raise ValueError(f"unknown template mode {mode!r}; expected 'merge' or 'jinja'")
