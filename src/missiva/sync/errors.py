"""Domain errors of the batch sync: files we refuse to read and remote file stores we cannot use.

The import engine catches `ImportFileError` to fail a run as a whole (no partial import) and
`TransportError` to retry or report a transfer; the API layer maps both to its own codes.
"""

from __future__ import annotations


class ImportFileError(Exception):
    """A file cannot be imported at all; the message says why in words a user can act on."""


class HostileInput(ImportFileError):
    """The file looks like an attack or exceeds a configured limit (bomb, traversal, oversize)."""


class UnreadableFile(ImportFileError):
    """The file is not in a format we can read (corrupt, wrong structure, undecodable text)."""


class MappingError(ImportFileError):
    """The requested column mapping does not fit this file (unknown column, two columns for one target)."""


class TransportError(Exception):
    """A remote or local file store failed: connection, authentication, missing file, refused command."""


class UnsafeName(TransportError):
    """A file or folder name would leave the configured directory ('/', '..', absolute paths)."""
