"""Exports: unsubscribers (filtered by list, date window and reason) and recipients of a list."""

from missiva.sync.export.unsubscribers import (
    ExportResult,
    UnsubscriberExport,
    export_recipients,
    export_unsubscribers,
)
from missiva.sync.export.window import Span, Window

__all__ = [
    "ExportResult",
    "Span",
    "UnsubscriberExport",
    "Window",
    "export_recipients",
    "export_unsubscribers",
]
