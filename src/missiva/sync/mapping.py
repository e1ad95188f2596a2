"""Column mapping: which column of an import file feeds which recipient attribute.

A header cell is matched, in this order, by MailUp field id (111 email, 222/333/444 mobile
prefix/number/full, 1..N a personal field), by `campoN`, by common names for email, by the
account's own field names (case and accents ignored: "Città" = "citta"), and by common names for
mobile, list and groups. An explicit mapping overrides any column it names.

Values are only trimmed here; addresses and numbers are validated by the service layer. One
MailUp convention is kept: a value that is exactly one space clears the field (`MappedRow.cleared`),
which differs from an empty value that an import may be told to ignore.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from missiva.sync.errors import MappingError
from missiva.sync.readers.records import Record, RowError


class Target(StrEnum):
    """What a column feeds."""

    EMAIL = "email"
    MOBILE_PREFIX = "mobile_prefix"
    MOBILE_NUMBER = "mobile_number"
    MOBILE_FULL = "mobile_full"
    FIELD = "field"
    LIST = "list"
    GROUPS = "groups"
    IGNORED = "ignored"


@dataclass(frozen=True)
class ColumnTarget:
    """A column's destination; `field` is the personal field number when `kind` is FIELD."""

    kind: Target
    field: int | None = None

    def __str__(self) -> str:
        return f"field {self.field}" if self.kind is Target.FIELD else self.kind.value


IGNORED = ColumnTarget(Target.IGNORED)
MAILUP_IDS: dict[int, Target] = {
    111: Target.EMAIL,
    222: Target.MOBILE_PREFIX,
    333: Target.MOBILE_NUMBER,
    444: Target.MOBILE_FULL,
}
_EMAIL_NAMES = {
    "email",
    "e mail",
    "mail",
    "email address",
    "e mail address",
    "indirizzo email",
    "indirizzo e mail",
    "posta elettronica",
}
_OTHER_NAMES: dict[str, Target] = {
    **dict.fromkeys(["prefix", "prefisso", "mobile prefix", "prefisso internazionale"], Target.MOBILE_PREFIX),
    **dict.fromkeys(["number", "numero"], Target.MOBILE_NUMBER),
    **dict.fromkeys(
        [
            "mobile",
            "mobile phone",
            "mobile number",
            "cellphone",
            "cell",
            "cellulare",
            "numero cellulare",
            "telefono cellulare",
            "phone",
            "sms",
        ],
        Target.MOBILE_FULL,
    ),
    **dict.fromkeys(["list", "lista", "id list", "idlist", "list id", "id lista"], Target.LIST),
    **dict.fromkeys(["groups", "gruppi", "group", "gruppo", "id groups", "idgroups"], Target.GROUPS),
}
_CAMPO = re.compile(r"(?:campo|field) ?0*(\d+)")
_EXPLICIT_KINDS = {t.value: t for t in Target if t is not Target.FIELD} | {"ignore": Target.IGNORED}
_IDENTITY = {Target.EMAIL, Target.MOBILE_NUMBER, Target.MOBILE_FULL}


def normalize_name(name: str) -> str:
    """Compare names the way people read them: no accents, no case, punctuation as spaces."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.split(r"[^0-9a-z]+", bare)).strip()


@dataclass
class MappedRow:
    """One record translated to recipient attributes, with every problem found in it."""

    row_number: int
    email: str
    mobile: str
    fields: dict[int, str]
    list_ref: str | None
    groups: list[str]
    errors: list[RowError]
    cleared: set[int] = field(default_factory=set)
    entry: str | None = None


@dataclass
class ColumnMapping:
    """Header column name -> `ColumnTarget`; build it with `from_header`, then `apply` it to records."""

    columns: dict[str, ColumnTarget]
    warnings: list[str] = field(default_factory=list)
    default_list: str | None = None
    default_groups: tuple[str, ...] = ()

    @classmethod
    def from_header(
        cls,
        header: list[str],
        fields: Mapping[int, str],
        explicit: Mapping[str, str | int] | None = None,
        *,
        default_list: str | None = None,
        default_groups: Sequence[str] = (),
    ) -> ColumnMapping:
        """Map each header column for an account whose personal fields are `fields` (number -> name).

        `explicit` maps column names to a target: "email", "mobile_prefix", "mobile_number",
        "mobile_full", "list", "groups", "ignore", a field number, "campoN" or a field name.
        Raises `MappingError` for an explicit entry that names no column or no target, for two
        columns feeding one target, and when no column carries an email or a mobile number.
        `default_list` and `default_groups` come from the sync job; a row's own non-empty list or
        groups cell wins over them.
        """
        by_name = _field_index(fields)
        explicit_by_column = _explicit_targets(header, fields, by_name, explicit or {})
        columns: dict[str, ColumnTarget] = {}
        warnings: list[str] = []
        for column in header:
            if column in explicit_by_column:
                columns[column] = explicit_by_column[column]
                continue
            target, problem = _resolve(column, fields, by_name)
            if problem:
                warnings.append(f"column {column!r} {problem}; ignored")
            columns[column] = target
        _prefer_number_when_prefixed(columns)
        _check_unique(columns)
        if not any(t.kind in _IDENTITY for t in columns.values()):
            raise MappingError("no column holds an email address or a mobile number")
        return cls(
            columns=columns,
            warnings=warnings,
            default_list=default_list,
            default_groups=tuple(default_groups),
        )

    def apply(self, record: Record) -> MappedRow:
        """Translate one record; missing identity and the reader's row errors go into `errors`."""
        email = prefix = number = full = ""
        list_ref = self.default_list
        groups = list(self.default_groups)
        values: dict[int, str] = {}
        cleared: set[int] = set()
        for column, target in self.columns.items():
            raw = record.values.get(column)
            if raw is None or target.kind is Target.IGNORED:
                continue
            value = raw.strip()
            match target.kind:
                case Target.FIELD:
                    assert target.field is not None
                    values[target.field] = value
                    if raw == " ":
                        cleared.add(target.field)
                case Target.EMAIL:
                    email = value
                case Target.MOBILE_PREFIX:
                    prefix = value
                case Target.MOBILE_NUMBER:
                    number = value
                case Target.MOBILE_FULL:
                    full = value
                case Target.LIST:
                    list_ref = value or list_ref
                case Target.GROUPS:
                    groups = _split_groups(value) or groups
        mobile = prefix + number if number else full
        errors = list(record.errors)
        if not email and not mobile:
            errors.append(
                RowError(
                    record.row_number, None, "has neither an email address nor a mobile number", record.entry
                )
            )
        return MappedRow(
            row_number=record.row_number,
            email=email,
            mobile=mobile,
            fields=values,
            list_ref=list_ref,
            groups=groups,
            errors=errors,
            cleared=cleared,
            entry=record.entry,
        )


def _field_index(fields: Mapping[int, str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for number in sorted(fields):
        index.setdefault(normalize_name(fields[number]), number)
    return index


def _resolve(
    name: str, fields: Mapping[int, str], by_name: Mapping[str, int]
) -> tuple[ColumnTarget, str | None]:
    """The target for a header name, or IGNORED with the reason to warn about."""
    normal = normalize_name(name)
    number: int | None = None
    if normal.isdigit():
        number = int(normal)
        if number in MAILUP_IDS:
            return ColumnTarget(MAILUP_IDS[number]), None
    elif match := _CAMPO.fullmatch(normal):
        number = int(match.group(1))
    if number is not None:
        if number in fields:
            return ColumnTarget(Target.FIELD, number), None
        return IGNORED, f"refers to field {number}, which the account does not have"
    if normal in _EMAIL_NAMES:
        return ColumnTarget(Target.EMAIL), None
    if normal in by_name:
        return ColumnTarget(Target.FIELD, by_name[normal]), None
    if normal in _OTHER_NAMES:
        return ColumnTarget(_OTHER_NAMES[normal]), None
    return IGNORED, "matches no field"


def _explicit_targets(
    header: list[str],
    fields: Mapping[int, str],
    by_name: Mapping[str, int],
    explicit: Mapping[str, str | int],
) -> dict[str, ColumnTarget]:
    by_folded = {column.casefold(): column for column in header}
    resolved: dict[str, ColumnTarget] = {}
    for wanted, spec in explicit.items():
        column = by_folded.get(wanted.strip().casefold())
        if column is None:
            raise MappingError(f"the mapping names column {wanted!r}, which the file does not have")
        if isinstance(spec, str) and spec.strip().lower() in _EXPLICIT_KINDS:
            resolved[column] = ColumnTarget(_EXPLICIT_KINDS[spec.strip().lower()])
            continue
        target, problem = _resolve(str(spec), fields, by_name)
        if problem:
            raise MappingError(f"column {column!r} is mapped to {spec!r}, which {problem}")
        resolved[column] = target
    return resolved


def _prefer_number_when_prefixed(columns: dict[str, ColumnTarget]) -> None:
    """With a prefix column, a "mobile" column holds the rest of the number, not the whole of it."""
    kinds = [t.kind for t in columns.values()]
    if (
        Target.MOBILE_PREFIX in kinds
        and Target.MOBILE_NUMBER not in kinds
        and kinds.count(Target.MOBILE_FULL) == 1
    ):
        for column, target in columns.items():
            if target.kind is Target.MOBILE_FULL:
                columns[column] = ColumnTarget(Target.MOBILE_NUMBER)


def _check_unique(columns: Mapping[str, ColumnTarget]) -> None:
    seen: dict[ColumnTarget, str] = {}
    for column, target in columns.items():
        if target.kind is Target.IGNORED:
            continue
        if target in seen:
            raise MappingError(f"columns {seen[target]!r} and {column!r} both map to {target}")
        seen[target] = column


def _split_groups(value: str) -> list[str]:
    """Groups are comma-separated, as in MailUp's `idGroups` and webhook `[Groups]`."""
    groups: list[str] = []
    for part in value.split(","):
        name = part.strip()
        if name and name not in groups:
            groups.append(name)
    return groups
