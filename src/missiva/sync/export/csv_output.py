"""CSV written to a binary destination, optionally inside a ZIP, for every export."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, BinaryIO

from missiva.errors import InvalidInput

# The console export and most of the MailUp ecosystem use ';' (Excel in Italian locales).
DEFAULT_DELIMITER = ";"
_CHUNK = 256 * 1024  # characters of CSV gathered before a write to the destination


def check_delimiter(delimiter: str) -> str:
    """One character, and not one that would make the file unreadable."""
    if len(delimiter) != 1 or delimiter in {'"', "\r", "\n"}:
        raise InvalidInput(
            "the delimiter must be one character other than a quote or newline", field="delimiter"
        )
    return delimiter


class CsvSink:
    """UTF-8 CSV with '\\n' line ends (as PostgreSQL's COPY writes them) into `dest`, zipped on request.

    Rows come either as Python tuples (`write_rows`) or as CSV bytes already produced by the database
    (`write_raw`, the COPY fast path); both end up in the same stream. Text is gathered in memory and
    written to `dest` in chunks of about `_CHUNK` characters: one write per row costs more than the
    formatting itself.
    """

    def __init__(
        self, dest: BinaryIO, *, delimiter: str, zipped: bool = False, entry: str = "export.csv"
    ) -> None:
        self.delimiter = check_delimiter(delimiter)
        self._archive: zipfile.ZipFile | None = None
        if zipped:
            self._archive = zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED)
            self._binary: BinaryIO = self._archive.open(entry, "w")  # type: ignore[assignment]
        else:
            self._binary = dest
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, delimiter=delimiter, lineterminator="\n")
        self.rows = 0

    def _flush(self) -> None:
        text = self._text.getvalue()
        if text:
            self._binary.write(text.encode("utf-8"))
            self._text.seek(0)
            self._text.truncate()

    def write_header(self, cells: Sequence[str]) -> None:
        self._writer.writerow(cells)

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Write rows of Python values; a list (a fetched chunk) goes through in one call."""
        if isinstance(rows, list):
            self._writer.writerows(rows)
            self.rows += len(rows)
            if self._text.tell() >= _CHUNK:
                self._flush()
            return
        for count, row in enumerate(rows, start=1):
            self._writer.writerow(row)
            self.rows += 1
            if count % 1000 == 0 and self._text.tell() >= _CHUNK:
                self._flush()

    def write_raw(self, chunk: bytes, rows: int = 0) -> None:
        """Write CSV bytes the database produced, after what is pending."""
        self._flush()
        self._binary.write(chunk)
        self.rows += rows

    def close(self) -> None:
        self._flush()
        if self._archive is not None:
            self._binary.close()
            self._archive.close()

    def __enter__(self) -> CsvSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
