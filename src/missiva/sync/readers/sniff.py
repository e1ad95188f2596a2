"""Tell the file format from its first bytes; the extension is only a hint people get wrong."""

from __future__ import annotations

import codecs
import zipfile
from pathlib import PurePosixPath
from typing import Literal

from missiva.sync.errors import UnreadableFile

Format = Literal["csv", "xml", "zip", "xlsx"]

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_CONTENT_TYPES = "[Content_Types].xml"
_CONTENT_TYPES_MAX = 1024 * 1024
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def sniff_format(head: bytes, filename: str) -> Literal["csv", "xml", "zip"]:
    """Classify by magic bytes: ZIP (an XLSX is a ZIP too, see `is_xlsx`), XML, else delimited text."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(OLE_MAGIC):
        raise UnreadableFile(
            f"{filename!r} is a legacy Excel (.xls) or other OLE file; save it as .xlsx or CSV"
        )
    if _starts_with_markup(head):
        return "xml"
    if PurePosixPath(filename.lower()).suffix in {".xlsx", ".zip", ".xml"}:
        raise UnreadableFile(f"{filename!r} does not contain what its extension says; it is not a ZIP or XML")
    return "csv"


def _starts_with_markup(head: bytes) -> bool:
    text = head[:512]
    if text.startswith(codecs.BOM_UTF8):
        text = text[len(codecs.BOM_UTF8) :]
    elif text.startswith(_UTF16_BOMS):
        text = text.decode("utf-16", errors="ignore").encode("utf-8")
    return text.lstrip().startswith(b"<")


def is_xlsx(archive: zipfile.ZipFile) -> bool:
    """True when the ZIP is an Office Open XML spreadsheet (its content types name spreadsheetml)."""
    try:
        info = archive.getinfo(_CONTENT_TYPES)
    except KeyError:
        return False
    if info.file_size > _CONTENT_TYPES_MAX:
        return False
    with archive.open(info) as member:
        return b"spreadsheetml" in member.read(_CONTENT_TYPES_MAX)
