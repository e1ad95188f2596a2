"""The import engine: files of recipients applied to the audience in checked, resumable batches."""

from missiva.sync.importer.engine import DEFAULT_BATCH_SIZE, run_import
from missiva.sync.importer.options import Channels, ImportOptions
from missiva.sync.importer.runs import (
    ImportCounters,
    RunStatus,
    create_run,
    errors_csv,
    find_resumable,
    get_run,
    list_runs,
    run_errors,
    run_view,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Channels",
    "ImportCounters",
    "ImportOptions",
    "RunStatus",
    "create_run",
    "errors_csv",
    "find_resumable",
    "get_run",
    "list_runs",
    "run_errors",
    "run_import",
    "run_view",
]
