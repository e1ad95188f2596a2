"""ZIP archives of CSV or XML files: entries checked up front, then each one streamed in name order.

All data entries must share the first one's header, so one column mapping fits the whole archive.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import BinaryIO

from missiva.sync.errors import HostileInput, UnreadableFile
from missiva.sync.readers.archive_guard import inspect_archive
from missiva.sync.readers.csv_reader import CsvSource
from missiva.sync.readers.limits import ReadLimits
from missiva.sync.readers.records import Record, RecordSource
from missiva.sync.readers.sniff import sniff_format
from missiva.sync.readers.streams import GuardedStream, read_head
from missiva.sync.readers.xml_reader import XmlSource

DATA_SUFFIXES = {".csv", ".txt", ".tsv", ".xml"}
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError)


class ZipSource(RecordSource):
    """Records of every CSV/XML entry of a ZIP, tagged with the entry name (`Record.entry`)."""

    format = "zip"

    def __init__(
        self,
        archive: BinaryIO,
        *,
        filename: str,
        limits: ReadLimits,
        delimiter: str | None = None,
        encoding: str | None = None,
    ) -> None:
        super().__init__(filename=filename, limits=limits)
        self._delimiter = delimiter
        self._encoding = encoding
        try:
            self._zip = zipfile.ZipFile(archive)
        except (*_CORRUPT, ValueError) as exc:
            raise UnreadableFile(f"{filename!r} is not a readable ZIP archive: {exc}") from None
        self.close_with(self._zip.close)
        checked = inspect_archive(self._zip, limits, where=repr(filename))
        self._entries = sorted((info for info in checked if self._wanted(info)), key=lambda i: i.filename)
        if not self._entries:
            raise UnreadableFile(f"{filename!r} holds no CSV or XML file")
        self._first = self._open_entry(self._entries[0])
        self.header = self._first.header
        self.encoding = self._first.encoding
        self.delimiter = self._first.delimiter

    def _wanted(self, info: zipfile.ZipInfo) -> bool:
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.parts[0] == "__MACOSX" or path.name.startswith("."):
            return False  # Finder and editor leftovers, never data
        if path.suffix.lower() not in DATA_SUFFIXES:
            self.warnings.append(f"{self.filename!r}: entry {info.filename!r} skipped (not CSV or XML)")
            return False
        return True

    def _open_entry(self, info: zipfile.ZipInfo) -> RecordSource:
        try:
            member: BinaryIO = self._zip.open(info)  # type: ignore[assignment]
            head = read_head(member, self.limits.sample_bytes)
        except _CORRUPT as exc:
            raise UnreadableFile(f"{self.filename!r}: entry {info.filename!r} is corrupt: {exc}") from None
        except NotImplementedError as exc:
            raise UnreadableFile(f"{self.filename!r}: entry {info.filename!r}: {exc}") from None
        self.close_with(member.close)
        fmt = sniff_format(head, info.filename)
        if fmt == "zip":
            raise HostileInput(f"{self.filename!r}: entry {info.filename!r} is itself an archive")
        stream = GuardedStream(member, max_bytes=info.file_size, what=f"entry {info.filename!r}", head=head)
        source: RecordSource
        if fmt == "xml":
            source = XmlSource(stream, filename=self.filename, limits=self.limits, entry=info.filename)
        else:
            source = CsvSource(
                stream,  # type: ignore[arg-type]
                head=head,
                complete=len(head) >= info.file_size,
                filename=self.filename,
                limits=self.limits,
                delimiter=self._delimiter,
                encoding=self._encoding,
                entry=info.filename,
            )
        self.warnings.extend(source.warnings)
        return source

    def _records(self) -> Iterator[Record]:
        source = self._first
        for index, info in enumerate(self._entries):
            try:
                if index:
                    source = self._open_entry(info)
                    if [h.casefold() for h in source.header] != [h.casefold() for h in self.header]:
                        raise UnreadableFile(
                            f"{self.filename!r}: entry {info.filename!r} has a different header from "
                            f"{self._entries[0].filename!r}"
                        )
                yield from source
            except _CORRUPT as exc:
                raise UnreadableFile(
                    f"{self.filename!r}: entry {info.filename!r} is corrupt: {exc}"
                ) from None
            finally:
                source.close()
