"""What every reader yields: numbered records of named string values, plus per-row problems."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

from missiva.sync.errors import HostileInput, UnreadableFile
from missiva.sync.readers.limits import ReadLimits


@dataclass(frozen=True)
class RowError:
    """A problem with one row, for the import's error report; `column` is None for the whole row."""

    row: int
    column: str | None
    reason: str
    entry: str | None = None

    def __str__(self) -> str:
        where = f"{self.entry}, row {self.row}" if self.entry else f"row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Record:
    """One data row. `row_number` is the row as the user sees it in a spreadsheet (header = row 1).

    A row that could be read but is malformed (wrong column count) still comes through, carrying
    its `errors`, so the report can show every bad row instead of stopping at the first.
    """

    row_number: int
    values: dict[str, str]
    errors: tuple[RowError, ...] = ()
    entry: str | None = None


class RecordSource(ABC):
    """A readable import file: its `header`, then its records, streamed once in bounded memory."""

    format: str = ""

    def __init__(self, *, filename: str, limits: ReadLimits) -> None:
        self.filename = filename
        self.limits = limits
        self.header: list[str] = []
        self.warnings: list[str] = []
        self.encoding: str | None = None
        self.delimiter: str | None = None
        self._iterated = False
        self._closers: list[Callable[[], object]] = []

    @abstractmethod
    def _records(self) -> Iterator[Record]:
        """Yield the data records, raising `ImportFileError` for problems that void the file."""

    def close_with(self, closer: Callable[[], object]) -> None:
        """Register something to release when this source is closed (files open_source opened)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Release files and archives this source opened itself, newest first."""
        while self._closers:
            self._closers.pop()()

    def __iter__(self) -> Iterator[Record]:
        if self._iterated:
            raise RuntimeError("a RecordSource can be iterated only once")
        self._iterated = True
        for count, record in enumerate(self._records(), start=1):
            if count > self.limits.max_rows:
                raise HostileInput(f"{self.filename!r} has more than {self.limits.max_rows} rows")
            yield record

    def __enter__(self) -> RecordSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def clean_header(cells: Iterable[str], *, where: str) -> list[str]:
    """Trim header names, name blank ones by position, and refuse duplicates (they make mapping ambiguous)."""
    header: list[str] = []
    seen: dict[str, int] = {}
    for position, cell in enumerate(cells, start=1):
        name = cell.strip().lstrip("\ufeff").strip() or f"(column {position})"
        key = name.casefold()
        if key in seen:
            raise UnreadableFile(
                f"{where}: column {name!r} appears twice in the header (columns {seen[key]} and {position})"
            )
        seen[key] = position
        header.append(name)
    return header


def row_values(
    header: list[str], cells: list[str], row_number: int, entry: str | None
) -> tuple[dict[str, str], tuple[RowError, ...]]:
    """Pair cells with header names; a row of the wrong width becomes a row error, not an exception."""
    values = dict(zip(header, cells, strict=False))
    if len(cells) == len(header):
        return values, ()
    error = RowError(
        row=row_number,
        column=None,
        reason=f"has {len(cells)} columns, the header has {len(header)}",
        entry=entry,
    )
    return values, (error,)


@dataclass
class FieldGuard:
    """Refuses any single value over `max_field_bytes` (UTF-8), naming the row and column."""

    max_field_bytes: int
    where: str
    _char_floor: int = field(init=False)

    def __post_init__(self) -> None:
        # A UTF-8 character is at most 4 bytes: shorter strings cannot be over the limit.
        self._char_floor = self.max_field_bytes // 4

    def check(self, value: str, row_number: int, column: str | None) -> None:
        """Raise `HostileInput` when `value` is longer than the limit once encoded."""
        if len(value) > self._char_floor and len(value.encode("utf-8")) > self.max_field_bytes:
            raise self.error(row_number, column)

    def error(self, row_number: int, column: str | None) -> HostileInput:
        """The exception for an over-long field, with the same wording from every reader."""
        where = f"field at row {row_number}" + (f", column {column!r}," if column else "")
        return HostileInput(f"{self.where}: {where} exceeds {self.max_field_bytes} bytes")
