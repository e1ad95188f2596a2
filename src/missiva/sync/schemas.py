"""API shapes of the batch sync: imports, sync jobs, drop logins."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ImportOptionsIn(BaseModel):
    """MailUp's import options; `import_type` (1..6) may replace `channels` + `overwrite_empty`."""

    list_id: int | None = Field(default=None, description="list for rows that do not name one")
    group_ids: list[int] = Field(default_factory=list, description="groups for every row")
    import_type: int | None = Field(default=None, ge=1, le=6, description="MailUp importType 1..6")
    channels: Literal["email", "sms", "both"] = "email"
    overwrite_empty: bool = False
    as_pending: bool = False
    send_confirmation: bool = False
    as_opt_out: bool = False
    force_opt_in: bool = False
    replace_groups: bool = False
    mapping: dict[str, str | int] = Field(default_factory=dict, description="column -> target")
    delimiter: str | None = Field(default=None, max_length=1)
    encoding: str | None = Field(default=None, max_length=40)

    def to_options(self) -> dict[str, Any]:
        """Keyword arguments for `ImportOptions`."""
        data = self.model_dump(include=set(ImportOptionsIn.model_fields) - {"import_type"})
        data["group_ids"] = tuple(self.group_ids)
        if self.import_type is not None:
            data["channels"] = ("email", "sms", "both")[(self.import_type - 1) % 3]
            data["overwrite_empty"] = self.import_type > 3
        return data


class ImportFromDropIn(ImportOptionsIn):
    """Import a file already uploaded to Missiva's FTP/SFTP drop."""

    drop_file: str = Field(description="file name inside the drop login's folder", max_length=255)
    drop_login: str | None = Field(default=None, description="drop login username (needed if several)")


class ImportCountersOut(BaseModel):
    total: int
    new: int
    updated: int
    unchanged: int
    unsubscribed: int
    skipped: int
    errors: int


class ImportRunOut(BaseModel):
    id: int
    status: str
    source: str
    filename: str
    list_id: int | None
    options: dict[str, Any]
    counters: ImportCountersOut
    error: str | None
    warnings: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class DisposalIn(BaseModel):
    action: Literal["archive", "rename", "delete"] = "archive"
    folder: str = "archive"
    name_template: str = "{stamp}-{name}"


class SyncJobIn(BaseModel):
    """A sync job. Secrets are write-only: the API never returns them."""

    name: str = Field(max_length=200)
    direction: Literal["import", "export"] = "import"
    kind: Literal["local", "ftp", "ftps", "sftp"]
    host: str = Field(default="", max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str = Field(default="", max_length=200)
    password: str | None = None
    private_key: str | None = None
    private_key_passphrase: str | None = None
    known_host_key: str | None = Field(default=None, description="the SFTP server's public key line")
    ca_cert: str | None = Field(default=None, description="PEM certificate an FTPS server must chain to")
    verify_tls: bool = True
    remote_dir: str = Field(default="", max_length=500)
    pattern: str = Field(default="*.csv", max_length=200, description="glob, or 're:<regex>'")
    schedule: str = Field(default="0 2 * * *", description="cron expression, UTC")
    options: dict[str, Any] = Field(default_factory=dict, description="import options or export filters")
    disposal: DisposalIn = Field(default_factory=DisposalIn)
    active: bool = True


class SyncJobPatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    kind: Literal["local", "ftp", "ftps", "sftp"] | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    private_key: str | None = None
    private_key_passphrase: str | None = None
    known_host_key: str | None = None
    ca_cert: str | None = None
    verify_tls: bool | None = None
    remote_dir: str | None = None
    pattern: str | None = None
    schedule: str | None = None
    options: dict[str, Any] | None = None
    disposal: DisposalIn | None = None
    active: bool | None = None


class SyncJobOut(BaseModel):
    id: int
    name: str
    direction: str
    kind: str
    host: str
    port: int | None
    username: str
    has_password: bool
    has_private_key: bool
    known_host_key: str | None
    verify_tls: bool
    remote_dir: str
    pattern: str
    schedule: str
    options: dict[str, Any]
    disposal: dict[str, Any]
    active: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    last_error: str | None


class DropLoginIn(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    password: str = Field(min_length=12, max_length=200)
    options: ImportOptionsIn = Field(default_factory=ImportOptionsIn)


class DropLoginOut(BaseModel):
    id: int
    username: str
    options: dict[str, Any]
    created_at: datetime
