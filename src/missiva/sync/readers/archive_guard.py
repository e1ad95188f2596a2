"""Checks on a ZIP's central directory, done before a single byte is inflated.

Declared sizes are trustworthy as ceilings: zipfile never returns more than an entry's declared
size (it stops there and the CRC check fails), so refusing on declared sizes and ratios bounds the
real work. Used for ZIP imports and for XLSX workbooks, which are ZIPs too.
"""

from __future__ import annotations

import zipfile
from pathlib import PurePosixPath

from missiva.sync.errors import HostileInput, UnreadableFile
from missiva.sync.readers.limits import ReadLimits


def check_entry_name(name: str) -> None:
    """Refuse names that would land outside a folder the archive were extracted into."""
    normal = name.replace("\\", "/")
    parts = PurePosixPath(normal).parts
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":") or ".." in parts:
        raise HostileInput(f"ZIP entry {name!r} escapes the archive")
    if "\x00" in name:
        raise HostileInput(f"ZIP entry {name!r} has a NUL byte in its name")


def inspect_archive(archive: zipfile.ZipFile, limits: ReadLimits, *, where: str) -> list[zipfile.ZipInfo]:
    """Validate every entry against `limits`; return the file entries (directories left out)."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise HostileInput(f"{where} has {len(infos)} entries, more than the limit of {limits.max_entries}")
    total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        check_entry_name(info.filename)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise UnreadableFile(f"{where}: entry {info.filename!r} is password-protected")
        if info.file_size > limits.ratio_floor_bytes:
            ratio = info.file_size // max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise HostileInput(
                    f"{where}: entry {info.filename!r}: compression ratio {ratio}:1 "
                    f"exceeds {limits.max_ratio}:1"
                )
        total += info.file_size
        if total > limits.max_total_uncompressed:
            raise HostileInput(
                f"{where} expands to more than {limits.max_total_uncompressed} bytes, over the limit"
            )
        files.append(info)
    return files
