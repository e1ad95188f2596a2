"""What an import is asked to do: MailUp's import options, stored with each run as plain JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from missiva.errors import InvalidInput


class Channels(StrEnum):
    """Which subscriptions an import writes (MailUp `importType` 1/4 email, 2/5 SMS, 3/6 both)."""

    EMAIL = "email"
    SMS = "sms"
    BOTH = "both"


@dataclass(frozen=True)
class ImportOptions:
    """MailUp's import options.

    Defaults follow MailUp: new recipients are subscribed, existing ones keep their status (pending
    and unsubscribed rows are skipped), empty cells leave fields as they are.

    - `overwrite_empty`: an empty cell clears the field (import types 4/5/6). A cell holding exactly
      one space always clears it, as in MailUp's XML.
    - `as_pending`: new subscriptions wait for confirmation (`asPending`).
    - `send_confirmation`: with `as_pending`, mail the confirmation request (`ConfirmEmail`).
    - `as_opt_out`: the file lists unsubscribers; subscribed and pending rows become unsubscribed with
      reason `import`, unknown ones are added as unsubscribed (`asOptOut`).
    - `force_opt_in`: pending and unsubscribed rows become subscribed (`forceOptIn`).
    - `replace_groups`: the row's groups replace the recipient's groups in that list (`replaceGroups`).
    - `list_id`/`group_ids`: where rows go when the file does not say; `mapping` overrides the header
      matching (column -> "email", a field number, "campoN", a field name, "list", "groups", "ignore").
    """

    list_id: int | None = None
    group_ids: tuple[int, ...] = ()
    channels: Channels = Channels.EMAIL
    overwrite_empty: bool = False
    as_pending: bool = False
    send_confirmation: bool = False
    as_opt_out: bool = False
    force_opt_in: bool = False
    replace_groups: bool = False
    mapping: Mapping[str, str | int] = field(default_factory=dict)
    delimiter: str | None = None
    encoding: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", Channels(self.channels))
        object.__setattr__(self, "group_ids", tuple(int(g) for g in self.group_ids))
        object.__setattr__(self, "mapping", dict(self.mapping))
        if self.as_opt_out and (self.as_pending or self.force_opt_in):
            raise InvalidInput(
                "as_opt_out cannot be combined with as_pending or force_opt_in", field="as_opt_out"
            )
        if self.send_confirmation and not self.as_pending:
            raise InvalidInput("send_confirmation needs as_pending", field="send_confirmation")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise InvalidInput("delimiter must be one character", field="delimiter")

    @property
    def import_type(self) -> int:
        """MailUp's `importType` code for these options."""
        base = {Channels.EMAIL: 1, Channels.SMS: 2, Channels.BOTH: 3}[self.channels]
        return base + 3 if self.overwrite_empty else base

    @classmethod
    def from_import_type(cls, import_type: int, **other: Any) -> ImportOptions:
        """Options from MailUp's numeric `importType` (1..6) plus the other options by name."""
        if import_type not in range(1, 7):
            raise InvalidInput("importType must be 1..6", field="import_type")
        channels = (Channels.EMAIL, Channels.SMS, Channels.BOTH)[(import_type - 1) % 3]
        return cls(channels=channels, overwrite_empty=import_type > 3, **other)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, the form stored with runs and jobs."""
        out = asdict(self)
        out["channels"] = self.channels.value
        out["group_ids"] = list(self.group_ids)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ImportOptions:
        """Options from `to_json`'s form; unknown keys are refused by name."""
        data = dict(data or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown import option {unknown[0]!r}", field=unknown[0])
        if "group_ids" in data:
            data["group_ids"] = tuple(data["group_ids"] or ())
        try:
            return cls(**data)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="channels") from None
