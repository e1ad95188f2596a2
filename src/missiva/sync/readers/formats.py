"""`open_source`: one entry point that recognises the format and returns the matching reader."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from missiva.sync.errors import HostileInput, ImportFileError, UnreadableFile
from missiva.sync.readers.archive_guard import inspect_archive
from missiva.sync.readers.csv_reader import CsvSource
from missiva.sync.readers.limits import ReadLimits
from missiva.sync.readers.records import RecordSource
from missiva.sync.readers.sniff import is_xlsx, sniff_format
from missiva.sync.readers.streams import GuardedStream, read_head, remaining_size, seekable_copy
from missiva.sync.readers.xlsx_reader import XlsxSource
from missiva.sync.readers.xml_reader import XmlSource
from missiva.sync.readers.zip_reader import ZipSource

DEFAULT_LIMITS = ReadLimits()


def open_source(
    path_or_fileobj: str | os.PathLike[str] | BinaryIO,
    *,
    filename: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> RecordSource:
    """Open an import file (path or binary file object) as a `RecordSource`, format found by content.

    CSV, ZIP (of CSV/XML), MailUp XML and XLSX are recognised by their first bytes, `filename`
    (used in messages; defaults to the path's name) only breaks ties. Anything that voids the file
    and can be seen up front (size, archive bombs, traversal, structure, header) raises here as
    `HostileInput` or `UnreadableFile`; the rest raises while iterating, before the bad row is
    yielded. A file object passed in stays open: closing the source closes only what it opened.
    """
    closers: list[Callable[[], object]] = []
    if isinstance(path_or_fileobj, str | os.PathLike):
        path = Path(path_or_fileobj)
        filename = filename or path.name
        try:
            size: int | None = path.stat().st_size
            stream: BinaryIO = path.open("rb")
        except OSError as exc:
            raise UnreadableFile(f"{filename!r} cannot be opened: {exc.strerror}") from None
        closers.append(stream.close)
    else:
        stream = path_or_fileobj
        filename = filename or Path(str(getattr(stream, "name", "upload"))).name
        size = remaining_size(stream)
    try:
        source = _open(stream, size, filename=filename, limits=limits, delimiter=delimiter, encoding=encoding)
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    for close in closers:
        source.close_with(close)
    return source


def _open(
    stream: BinaryIO,
    size: int | None,
    *,
    filename: str,
    limits: ReadLimits,
    delimiter: str | None,
    encoding: str | None,
) -> RecordSource:
    what = f"{filename!r}"
    if size is not None and size > limits.max_file_bytes:
        raise HostileInput(f"{what} is {size} bytes, over the limit of {limits.max_file_bytes} bytes")
    start = stream.tell() if size is not None else 0
    head = read_head(stream, limits.sample_bytes)
    complete = len(head) < limits.sample_bytes
    fmt = sniff_format(head, filename)
    if fmt == "zip":
        return _open_archive(stream, size, start, head, filename, limits, delimiter, encoding)
    guarded = GuardedStream(stream, max_bytes=limits.max_file_bytes, what=what, head=head)
    if fmt == "xml":
        if encoding:
            raise UnreadableFile(f"{what}: XML declares its own encoding; do not give one")
        return XmlSource(guarded, filename=filename, limits=limits)  # type: ignore[arg-type]
    return CsvSource(
        guarded,  # type: ignore[arg-type]
        head=head,
        complete=complete,
        filename=filename,
        limits=limits,
        delimiter=delimiter,
        encoding=encoding,
    )


def _open_archive(
    stream: BinaryIO,
    size: int | None,
    start: int,
    head: bytes,
    filename: str,
    limits: ReadLimits,
    delimiter: str | None,
    encoding: str | None,
) -> RecordSource:
    spooled: BinaryIO | None = None
    if size is None:
        # The central directory is at the end: a pipe or socket must be copied (bounded) first.
        stream = spooled = seekable_copy(
            stream, head=head, max_bytes=limits.max_file_bytes, what=repr(filename)
        )
    else:
        stream.seek(start)
    try:
        try:
            with zipfile.ZipFile(stream) as probe:
                spreadsheet = is_xlsx(probe)
                if spreadsheet:
                    inspect_archive(probe, limits, where=repr(filename))
        except zipfile.BadZipFile as exc:
            raise UnreadableFile(f"{filename!r} is not a readable ZIP archive: {exc}") from None
        stream.seek(0 if spooled else start)
        source: RecordSource
        if spreadsheet:
            source = XlsxSource(stream, filename=filename, limits=limits)
        else:
            source = ZipSource(
                stream, filename=filename, limits=limits, delimiter=delimiter, encoding=encoding
            )
    except ImportFileError:
        if spooled is not None:
            spooled.close()
        raise
    if spooled is not None:
        source.close_with(spooled.close)
    return source
