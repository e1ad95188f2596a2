"""Drop servers Missiva hosts itself: FTP/FTPS and SFTP, one folder per account, import on upload."""

from missiva.sync.drop.ftp_server import FtpDropServer
from missiva.sync.drop.sftp_server import SftpDropServer, load_or_create_host_key
from missiva.sync.drop.uploads import Authenticate, OnUpload, account_home, is_partial_upload

__all__ = [
    "Authenticate",
    "FtpDropServer",
    "OnUpload",
    "SftpDropServer",
    "account_home",
    "is_partial_upload",
    "load_or_create_host_key",
]
