"""Readers for import files: CSV, ZIP of CSV/XML, MailUp XML, XLSX, all behind `open_source`."""

from missiva.sync.errors import HostileInput, ImportFileError, UnreadableFile
from missiva.sync.readers.formats import open_source
from missiva.sync.readers.limits import ReadLimits
from missiva.sync.readers.records import Record, RecordSource, RowError

__all__ = [
    "HostileInput",
    "ImportFileError",
    "ReadLimits",
    "Record",
    "RecordSource",
    "RowError",
    "UnreadableFile",
    "open_source",
]
