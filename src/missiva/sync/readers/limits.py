"""Ceilings that keep one import file from exhausting memory, disk or CPU."""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class ReadLimits:
    """Limits applied while reading an import file; every one is checked before the work it guards.

    `max_ratio` only applies to ZIP entries larger than `ratio_floor_bytes`: a few kilobytes of
    repetitive text compress far beyond 100:1 and are harmless, a bomb is large by definition.
    """

    max_file_bytes: int = 1 * GiB
    max_field_bytes: int = 64 * KiB
    max_row_bytes: int = 1 * MiB
    max_rows: int = 10_000_000
    max_total_uncompressed: int = 4 * GiB
    max_ratio: int = 100
    ratio_floor_bytes: int = 1 * MiB
    max_entries: int = 100
    sample_bytes: int = 64 * KiB

    def __post_init__(self) -> None:
        for name in (
            "max_file_bytes",
            "max_field_bytes",
            "max_row_bytes",
            "max_rows",
            "max_total_uncompressed",
            "max_ratio",
            "max_entries",
            "sample_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ReadLimits.{name} must be positive")
        if self.max_row_bytes < self.max_field_bytes:
            raise ValueError("ReadLimits.max_row_bytes must be at least max_field_bytes")
