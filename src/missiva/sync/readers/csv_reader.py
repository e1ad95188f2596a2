"""Delimited text (CSV, TSV, MailUp's `|` files): encoding and delimiter found from a sample, then streamed.

Memory stays bounded because the csv module is fed lines of at most `max_row_bytes` characters and
a logical row (quoted newlines included) may not grow past that either; a 10 MB field is refused
after reading at most one such slice.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from typing import BinaryIO

from missiva.sync.errors import HostileInput, UnreadableFile
from missiva.sync.readers.encoding import detect_encoding
from missiva.sync.readers.limits import ReadLimits
from missiva.sync.readers.records import FieldGuard, Record, RecordSource, clean_header, row_values

DELIMITERS = ";,|\t"
_SNIFF_LINES = 20
_READ_BUFFER = 64 * 1024


class _RowTooLong(Exception):
    """Raised from inside the csv module's line iterator; turned into `HostileInput` by the reader."""


class _Undecodable(Exception):
    """A line held bytes the encoding cannot decode; turned into `UnreadableFile` with the row number."""


# Decoding with surrogateescape turns each undecodable byte into one of these, line by line, so
# the error can name the row (a strict decoder fails on a whole buffer, rows before it included).
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


class _LineFeeder:
    """Feeds the csv module one physical line at a time, never more than the row budget in total."""

    def __init__(self, text: io.TextIOBase, max_chars: int) -> None:
        self._text = text
        self._max = max_chars
        self._pending = 0
        self.overflow = False

    def __iter__(self) -> _LineFeeder:
        return self

    def __next__(self) -> str:
        if self.overflow:
            raise _RowTooLong
        line = self._text.readline(self._max - self._pending + 1)
        if not line:
            raise StopIteration
        if _ESCAPED_BYTE.search(line):
            raise _Undecodable
        self._pending += len(line)
        if self._pending > self._max:
            # Hand this slice over anyway: if it holds an over-long field the csv module says so,
            # which gives the user the more precise message.
            self.overflow = True
        return line

    def row_done(self) -> None:
        self._pending = 0


def sniff_delimiter(sample_text: str, *, complete: bool) -> str:
    """Pick the delimiter among `; , | tab` with csv.Sniffer, checked against the header line."""
    lines = sample_text.splitlines(keepends=True)
    if not complete and lines:
        lines.pop()  # probably cut in the middle
    lines = [line for line in lines if line.strip()][:_SNIFF_LINES]
    if not lines:
        return ","
    header = lines[0]
    try:
        found = csv.Sniffer().sniff("".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = ""
    if found and found in header:
        return found
    counts = {candidate: header.count(candidate) for candidate in DELIMITERS}
    best = max(counts, key=lambda c: counts[c])
    # A file with a single column (just emails) has no delimiter; any one reads it the same.
    return best if counts[best] else ","


class CsvSource(RecordSource):
    """Records of a delimited text file; see the module docstring for the memory bound."""

    format = "csv"

    def __init__(
        self,
        stream: BinaryIO,
        *,
        head: bytes,
        complete: bool,
        filename: str,
        limits: ReadLimits,
        delimiter: str | None = None,
        encoding: str | None = None,
        entry: str | None = None,
    ) -> None:
        super().__init__(filename=filename, limits=limits)
        self._entry = entry
        self._where = f"{filename!r}" + (f" entry {entry!r}" if entry else "")
        if encoding is None:
            detected = detect_encoding(head, complete=complete)
            encoding, reason = detected.name, detected.reason
        else:
            reason = "given"
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UnreadableFile(f"unknown text encoding {encoding!r}") from None
        self.encoding = encoding
        self.encoding_reason = reason
        if delimiter is None:
            sample = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=complete)
            delimiter = sniff_delimiter(sample, complete=complete)
        if len(delimiter) != 1:
            raise UnreadableFile(f"the delimiter must be one character, not {delimiter!r}")
        self.delimiter = delimiter
        self._text = io.TextIOWrapper(
            io.BufferedReader(stream, _READ_BUFFER),  # type: ignore[arg-type]
            encoding=encoding,
            errors="surrogateescape",
            newline="",
        )
        self._feeder = _LineFeeder(self._text, limits.max_row_bytes)
        self._reader = csv.reader(self._feeder, delimiter=delimiter, quotechar='"', doublequote=True)
        self._guard = FieldGuard(limits.max_field_bytes, self._where)
        self._row = 0
        self.header = self._read_header()

    def _next_cells(self) -> list[str] | None:
        """The next logical row's cells, or None at the end; counts blank rows so numbers match."""
        row_number = self._row + 1
        try:
            cells = next(self._reader)
        except StopIteration:
            return None
        except _RowTooLong:
            raise self._row_too_long(row_number) from None
        except _Undecodable:
            raise UnreadableFile(
                f"{self._where} is not valid {self.encoding} text at row {row_number}; "
                "give the file's encoding explicitly"
            ) from None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise self._guard.error(row_number, None) from None
            raise UnreadableFile(f"{self._where}: row {row_number} cannot be read: {exc}") from None
        if self._feeder.overflow:
            raise self._row_too_long(row_number)
        self._feeder.row_done()
        self._row = row_number
        return cells

    def _row_too_long(self, row_number: int) -> HostileInput:
        return HostileInput(f"{self._where}: row {row_number} exceeds {self.limits.max_row_bytes} bytes")

    def _read_header(self) -> list[str]:
        while (cells := self._next_cells()) is not None:
            if any(cell.strip() for cell in cells):
                for cell in cells:
                    self._guard.check(cell, self._row, None)
                return clean_header(cells, where=self._where)
        raise UnreadableFile(f"{self._where} is empty: no header row")

    def _records(self) -> Iterator[Record]:
        floor = self.limits.max_field_bytes // 4  # no shorter string can exceed the limit in UTF-8
        while (cells := self._next_cells()) is not None:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines and rows of empty cells carry nothing to import
            # Most rows have no cell anywhere near the limit: one max() clears them all at once.
            if max(map(len, cells)) > floor:
                for position, cell in enumerate(cells):
                    column = self.header[position] if position < len(self.header) else None
                    self._guard.check(cell, self._row, column)
            values, errors = row_values(self.header, cells, self._row, self._entry)
            yield Record(row_number=self._row, values=values, errors=errors, entry=self._entry)

    def close(self) -> None:
        self._text.close()
        super().close()
