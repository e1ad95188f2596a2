"""MailUp's import XML (`subscribers > subscriber[@email,@Prefix,@Number,@Name] > campoN`), streamed.

Parsed with defusedxml's SAX driver fed in chunks, so memory holds one chunk and the subscribers it
completed; entity declarations (billion laughs, external entities) stop the parse at once.
Values are kept verbatim (CDATA included): a single space is MailUp's way to blank a field, and
the column mapping, not the reader, interprets it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import BinaryIO
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl

from defusedxml.common import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.expatreader import DefusedExpatParser

from missiva.sync.errors import HostileInput, UnreadableFile
from missiva.sync.readers.limits import ReadLimits
from missiva.sync.readers.records import FieldGuard, Record, RecordSource, RowError

ROOT = "subscribers"
ITEM = "subscriber"
_CHUNK = 64 * 1024


class _SubscriberHandler(ContentHandler):
    """Collects completed subscribers as (position, values) pairs; refuses any other structure."""

    def __init__(self, guard: FieldGuard, where: str) -> None:
        super().__init__()
        self._guard = guard
        self._where = where
        self._depth = 0
        self._position = 0
        self._current: dict[str, str] | None = None
        self._field: str | None = None
        self._text: list[str] = []
        self._size = 0
        self.completed: deque[tuple[int, dict[str, str]]] = deque()

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        self._depth += 1
        if self._depth == 1:
            if name != ROOT:
                raise UnreadableFile(f"{self._where}: the XML root is <{name}>, expected <{ROOT}>")
        elif self._depth == 2:
            if name != ITEM:
                raise UnreadableFile(f"{self._where}: unexpected <{name}> inside <{ROOT}>")
            self._position += 1
            self._current = {}
            for key, value in attrs.items():
                self._guard.check(value, self._position, key)
                self._current[key] = value
        elif self._depth == 3:
            self._field, self._text, self._size = name, [], 0
        else:
            raise UnreadableFile(
                f"{self._where}: subscriber {self._position} has <{name}> nested inside <{self._field}>"
            )

    def characters(self, content: str) -> None:
        if self._depth != 3:
            return  # indentation between elements
        self._size += len(content)
        if self._size > self._guard.max_field_bytes:
            raise self._guard.error(self._position, self._field)
        self._text.append(content)

    def endElement(self, name: str) -> None:
        if self._depth == 3 and self._current is not None:
            value = "".join(self._text)
            self._guard.check(value, self._position, name)
            self._current[name] = value
            self._field = None
        elif self._depth == 2 and self._current is not None:
            self.completed.append((self._position, self._current))
            self._current = None
        self._depth -= 1


class XmlSource(RecordSource):
    """Records of a MailUp import XML; `row_number` is the subscriber's position (first = 1)."""

    format = "xml"

    def __init__(
        self, stream: BinaryIO, *, filename: str, limits: ReadLimits, entry: str | None = None
    ) -> None:
        super().__init__(filename=filename, limits=limits)
        self._stream = stream
        self._entry = entry
        self._where = f"{filename!r}" + (f" entry {entry!r}" if entry else "")
        self._handler = _SubscriberHandler(FieldGuard(limits.max_field_bytes, self._where), self._where)
        self._parser = DefusedExpatParser(forbid_dtd=False, forbid_entities=True, forbid_external=True)
        self._parser.setContentHandler(self._handler)
        self._finished = False
        # The header is the first subscriber's attributes and elements, in document order.
        self._fill()
        if self._handler.completed:
            self.header = list(self._handler.completed[0][1])
        if not self.header:
            raise UnreadableFile(f"{self._where} has no <{ITEM}> elements")

    def _fill(self) -> None:
        """Feed chunks until at least one subscriber is complete or the document ends."""
        while not self._handler.completed and not self._finished:
            chunk = self._stream.read(_CHUNK)
            try:
                if chunk:
                    self._parser.feed(chunk)
                else:
                    self._finished = True
                    self._parser.close()
            except EntitiesForbidden as exc:
                if exc.sysid or exc.pubid:
                    raise HostileInput(
                        f"{self._where}: XML external entity {exc.name!r} ({exc.sysid or exc.pubid}) "
                        "is forbidden"
                    ) from None
                raise HostileInput(
                    f"{self._where}: XML entity expansion is forbidden (entity {exc.name!r} declared)"
                ) from None
            except DTDForbidden:  # pragma: no cover - we allow a plain DOCTYPE
                raise HostileInput(f"{self._where}: XML document type definitions are forbidden") from None
            except DefusedXmlException as exc:
                raise HostileInput(f"{self._where}: XML external reference is forbidden ({exc})") from None
            except SAXParseException as exc:
                raise UnreadableFile(
                    f"{self._where} is not well-formed XML at line {exc.getLineNumber()}, "
                    f"column {exc.getColumnNumber()}: {exc.getMessage()}"
                ) from None

    def _records(self) -> Iterator[Record]:
        known = set(self.header)
        while True:
            self._fill()
            if not self._handler.completed:
                return
            position, values = self._handler.completed.popleft()
            extra = [key for key in values if key not in known]
            errors = tuple(
                RowError(position, key, "not present in the first subscriber; ignored", self._entry)
                for key in extra
            )
            for key in extra:
                del values[key]
            yield Record(row_number=position, values=values, errors=errors, entry=self._entry)
