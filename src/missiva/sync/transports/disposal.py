"""What happens to a source file once it has been imported: keep, archive, rename or delete it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath

from missiva.sync.transports.base import Transport, safe_folder


class AfterImport(StrEnum):
    """The action; the default templates stamp names so nightly files never overwrite each other."""

    KEEP = "keep"
    ARCHIVE = "archive"
    RENAME = "rename"
    DELETE = "delete"


@dataclass(frozen=True)
class Disposal:
    """`name_template` may use {name}, {stem}, {suffix} and {stamp} (UTC, 20250131T020000)."""

    action: AfterImport = AfterImport.ARCHIVE
    folder: str = "archive"
    name_template: str = "{stamp}-{name}"

    def __post_init__(self) -> None:
        if self.action is AfterImport.ARCHIVE:
            safe_folder(self.folder)


def disposed_name(name: str, template: str, now: datetime) -> str:
    """The new name for `name` under `template` at time `now`."""
    path = PurePosixPath(name)
    return template.format(name=name, stem=path.stem, suffix=path.suffix, stamp=now.strftime("%Y%m%dT%H%M%S"))


def dispose(transport: Transport, name: str, disposal: Disposal, *, now: datetime) -> str | None:
    """Apply `disposal` to `name`; return where the file is now (folder/name), or None if deleted."""
    match disposal.action:
        case AfterImport.KEEP:
            return name
        case AfterImport.DELETE:
            transport.delete(name)
            return None
        case AfterImport.RENAME:
            new = disposed_name(name, disposal.name_template, now)
            transport.rename(name, new)
            return new
        case AfterImport.ARCHIVE:
            new = disposed_name(name, disposal.name_template, now)
            if new != name:
                transport.rename(name, new)
            transport.move(new, disposal.folder)
            return f"{safe_folder(disposal.folder)}/{new}"
