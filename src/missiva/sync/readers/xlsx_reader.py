"""Excel workbooks (.xlsx), first sheet, read with openpyxl in read-only mode (rows streamed).

The archive is checked by `archive_guard` before openpyxl sees it, and openpyxl parses the sheet
XML with defusedxml when it is installed (it is one of our dependencies).
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import openpyxl
from defusedxml.common import DefusedXmlException

from missiva.sync.errors import HostileInput, UnreadableFile
from missiva.sync.readers.limits import ReadLimits
from missiva.sync.readers.records import FieldGuard, Record, RecordSource, clean_header, row_values

# Integers up to this size survive a float round trip; phone numbers typed as numbers land here.
_EXACT_FLOAT = 2**53


def cell_text(value: Any) -> str:
    """The text a user expects for a cell: phone numbers without '.0', dates in ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT:
        return str(int(value))
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


class XlsxSource(RecordSource):
    """Records of the first worksheet; `row_number` is the sheet's own row number."""

    format = "xlsx"

    def __init__(self, archive: BinaryIO, *, filename: str, limits: ReadLimits) -> None:
        super().__init__(filename=filename, limits=limits)
        self._where = repr(filename)
        self._guard = FieldGuard(limits.max_field_bytes, self._where)
        try:
            self._book = openpyxl.load_workbook(archive, read_only=True, data_only=True, keep_links=False)
        except DefusedXmlException as exc:
            raise HostileInput(
                f"{self._where}: XML entity expansion is forbidden in the workbook ({exc})"
            ) from None
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
            raise UnreadableFile(f"{self._where} is not a readable XLSX workbook: {exc}") from None
        self.close_with(self._book.close)
        sheet = self._book.worksheets[0]
        if len(self._book.worksheets) > 1:
            self.warnings.append(f"{self._where}: only the first sheet, {sheet.title!r}, is read")
        # Ignore the declared dimension: a forged one would make every row 16,384 cells wide.
        sheet.reset_dimensions()
        self._rows = self._numbered_rows(sheet)
        self._row = 0
        self.header = self._read_header()

    def _numbered_rows(self, sheet: Any) -> Iterator[tuple[int, list[str]]]:
        try:
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, [cell_text(value) for value in row]
        except DefusedXmlException as exc:
            raise HostileInput(
                f"{self._where}: XML entity expansion is forbidden in the sheet ({exc})"
            ) from None
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise UnreadableFile(f"{self._where}: the sheet cannot be read: {exc}") from None

    def _read_header(self) -> list[str]:
        for number, cells in self._rows:
            while cells and not cells[-1].strip():
                cells.pop()  # formatting alone can extend a row to the right
            if cells:
                for cell in cells:
                    self._guard.check(cell, number, None)
                return clean_header(cells, where=self._where)
        raise UnreadableFile(f"{self._where}: the first sheet is empty")

    def _records(self) -> Iterator[Record]:
        width = len(self.header)
        for number, cells in self._rows:
            if not any(cell.strip() for cell in cells):
                continue
            # Trailing empty cells are absent in the sheet XML; pad or trim blanks to the header width.
            while len(cells) > width and not cells[-1].strip():
                cells.pop()
            cells.extend([""] * (width - len(cells)))
            for position, cell in enumerate(cells):
                self._guard.check(cell, number, self.header[position] if position < width else None)
            values, errors = row_values(self.header, cells, number, None)
            yield Record(row_number=number, values=values, errors=errors)
