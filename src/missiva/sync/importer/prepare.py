"""From a file record to a row the batch writer can apply: mapped, validated, normalised.

Validation is the audience domain's: `normalise_email` and `normalise_mobile` (with the account's
default country), the field length limit of `audience.recipients`, lists and groups of the account.
Every problem becomes a `RowError` naming the row, the column and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience.identity import normalise_email, normalise_mobile
from missiva.audience.lists import fold_name, list_fields
from missiva.audience.models import Group, MailingList
from missiva.audience.recipients import MAX_FIELD_LENGTH
from missiva.errors import InvalidInput
from missiva.sync.importer.batch_writer import PreparedRow
from missiva.sync.importer.options import Channels, ImportOptions
from missiva.sync.mapping import ColumnMapping, Target
from missiva.sync.readers.records import Record, RowError
from missiva.tenancy.models import Account

_MOBILE_JUNK = str.maketrans("", "", " ()./-\t")
# One encoder for every row: json.dumps with non-default options builds a new encoder per call, which
# costs more than encoding a row's few fields.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass
class AccountContext:
    """What validation needs to know about the account, loaded once per run."""

    account_id: int
    country: str | None
    fields: dict[int, str]
    lists: dict[str, int]
    groups: dict[int, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, account_id: int) -> AccountContext:
        """Read the account's country, fields, lists and groups."""
        country = session.scalar(select(Account.default_country).where(Account.id == account_id))
        fields = {f.number: f.name for f in list_fields(session, account_id)}
        lists: dict[str, int] = {}
        for lst in session.scalars(select(MailingList).where(MailingList.account_id == account_id)):
            lists[str(lst.id)] = lst.id
            lists[lst.guid.lower()] = lst.id
            lists.setdefault(fold_name(lst.name), lst.id)
        groups: dict[int, dict[str, int]] = {}
        for group in session.scalars(select(Group).where(Group.account_id == account_id)):
            by_ref = groups.setdefault(group.list_id, {})
            by_ref[str(group.id)] = group.id
            by_ref.setdefault(fold_name(group.name), group.id)
        return cls(account_id=account_id, country=country, fields=fields, lists=lists, groups=groups)


def identity_key(mapping: ColumnMapping) -> IdentityKey:
    """The duplicate-detection key of `mapping`'s records (see `IdentityKey`)."""
    return IdentityKey(mapping)


class IdentityKey:
    """A record's identity as written in the file: the email lower-cased, else the mobile's digits.

    Cheap enough for the first pass over the file, before any validation; two rows with the same key
    are duplicates and the later one wins.
    """

    def __init__(self, mapping: ColumnMapping) -> None:
        by_kind = {t.kind: column for column, t in mapping.columns.items()}
        self._email = by_kind.get(Target.EMAIL)
        self._prefix = by_kind.get(Target.MOBILE_PREFIX)
        self._number = by_kind.get(Target.MOBILE_NUMBER)
        self._full = by_kind.get(Target.MOBILE_FULL)

    def __call__(self, record: Record) -> str | None:
        values = record.values
        if self._email is not None:
            email = values.get(self._email, "").strip()
            if email:
                return email.lower()
        mobile = ""
        if self._number is not None and values.get(self._number, "").strip():
            mobile = (values.get(self._prefix, "") if self._prefix else "") + values[self._number]
        elif self._full is not None:
            mobile = values.get(self._full, "")
        mobile = mobile.translate(_MOBILE_JUNK)
        return "m:" + mobile if mobile else None


@lru_cache(maxsize=65536)
def _mobile(raw: str, country: str | None) -> str:
    return normalise_mobile(raw, country)


class RowPreparer:
    """Turns records into `PreparedRow`s or row errors, for one account, mapping and set of options."""

    def __init__(self, context: AccountContext, mapping: ColumnMapping, options: ImportOptions) -> None:
        self.context = context
        self.mapping = mapping
        self.options = options
        self._column_of: dict[object, str] = {}
        for column, target in mapping.columns.items():
            key: object = target.field if target.kind is Target.FIELD else target.kind
            self._column_of.setdefault(key, column)
        self._has_groups_column = Target.GROUPS in self._column_of

    def _column(self, key: object) -> str | None:
        return self._column_of.get(key)

    def prepare(self, record: Record, ordinal: int) -> tuple[PreparedRow | None, list[RowError]]:
        """The row to write, or None with the reasons it cannot be imported."""
        mapped = self.mapping.apply(record)
        errors = list(mapped.errors)
        row, entry = record.row_number, record.entry

        def fail(column: str | None, reason: str) -> None:
            errors.append(RowError(row, column, reason, entry))

        email = mobile = None
        if mapped.email:
            try:
                email = normalise_email(mapped.email)
            except InvalidInput as exc:
                fail(self._column(Target.EMAIL), exc.message)
        if mapped.mobile:
            try:
                mobile = _mobile(mapped.mobile, self.context.country)
            except InvalidInput as exc:
                column = self._column(Target.MOBILE_NUMBER) or self._column(Target.MOBILE_FULL)
                fail(column, exc.message)
        channels = self.options.channels
        if not errors:
            if channels is Channels.EMAIL and email is None:
                fail(
                    self._column(Target.EMAIL), "has no email address (the import writes email subscriptions)"
                )
            elif channels is Channels.SMS and mobile is None:
                fail(
                    self._column(Target.MOBILE_FULL) or self._column(Target.MOBILE_NUMBER),
                    "has no mobile number (this import writes SMS subscriptions)",
                )
        patch: dict[str, str | None] = {}
        for number, value in mapped.fields.items():
            if len(value) > MAX_FIELD_LENGTH:
                fail(self._column(number), f"is longer than {MAX_FIELD_LENGTH} characters")
            elif value:
                patch[str(number)] = value
            elif number in mapped.cleared or self.options.overwrite_empty:
                patch[str(number)] = None
        list_id = self._list(mapped.list_ref, fail)
        groups = self._groups(list_id, mapped.groups, fail) if list_id is not None else None
        if errors or list_id is None:
            return None, errors
        return (
            ordinal,
            email,
            mobile,
            list_id,
            _encode(patch),
            groups,
        ), errors

    def _list(self, ref: str | None, fail: Callable[[str | None, str], None]) -> int | None:
        if ref is None or not ref.strip():
            fail(self._column(Target.LIST), "names no list (give one in the file or with the import)")
            return None
        found = self.context.lists.get(ref.strip().lower()) or self.context.lists.get(fold_name(ref))
        if found is None:
            fail(self._column(Target.LIST), f"names list {ref!r}, which the account does not have")
        return found

    def _groups(self, list_id: int, refs: list[str], fail: Callable[[str | None, str], None]) -> str | None:
        if not refs:
            return "[]" if self._has_groups_column and self.options.replace_groups else None
        known: Mapping[str, int] = self.context.groups.get(list_id, {})
        ids: list[int] = []
        for ref in refs:
            group_id = known.get(ref.strip()) or known.get(fold_name(ref))
            if group_id is None:
                fail(self._column(Target.GROUPS), f"names group {ref!r}, which list {list_id} does not have")
            elif group_id not in ids:
                ids.append(group_id)
        return json.dumps(sorted(ids)) if ids else None
