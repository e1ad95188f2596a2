"""Where sync files come from and go to: local folders, FTP, FTPS and SFTP, behind one interface."""

from missiva.sync.transports.base import RemoteFile, Transport
from missiva.sync.transports.config import TransportConfig, open_transport
from missiva.sync.transports.disposal import AfterImport, Disposal, dispose

__all__ = [
    "AfterImport",
    "Disposal",
    "RemoteFile",
    "Transport",
    "TransportConfig",
    "dispose",
    "open_transport",
]
