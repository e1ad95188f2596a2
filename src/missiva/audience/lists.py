"""Use cases for lists, groups and personal-data fields."""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from missiva.audience.enums import DEFAULT_FIELDS, Language, OptIn
from missiva.audience.identity import normalise_email
from missiva.audience.models import Field, Group, MailingList
from missiva.cache import TTLCache
from missiva.errors import Conflict, InvalidInput, NotFound

MAX_FIELDS = 40


def create_list(session: Session, account_id: int, name: str, **options: Any) -> MailingList:
    """Create a list; options: sender_name, sender_email, opt_in ('single'|'double'), language."""
    lst = MailingList(account_id=account_id, name=_clean_name(name, 200))
    _apply_list_options(lst, options)
    session.add(lst)
    session.flush()
    return lst


def update_list(session: Session, account_id: int, list_id: int, **options: Any) -> MailingList:
    """Change a list's name, sender defaults, opt-in mode or language."""
    lst = get_list(session, account_id, list_id)
    if options.get("name") is not None:
        lst.name = _clean_name(options["name"], 200)
    _apply_list_options(lst, options)
    session.flush()
    return lst


def _apply_list_options(lst: MailingList, options: dict[str, Any]) -> None:
    if options.get("sender_name") is not None:
        lst.sender_name = options["sender_name"].strip()[:200]
    if options.get("sender_email"):
        lst.sender_email = normalise_email(options["sender_email"])
    if options.get("opt_in") is not None:
        try:
            lst.opt_in = OptIn(options["opt_in"]).value
        except ValueError as exc:
            raise InvalidInput("opt_in must be 'single' or 'double'", field="opt_in") from exc
    if options.get("language") is not None:
        try:
            lst.language = Language(options["language"]).value
        except ValueError as exc:
            choices = ", ".join(x.value for x in Language)
            raise InvalidInput(f"language must be one of {choices}", field="language") from exc


def _clean_name(name: str, limit: int) -> str:
    value = (name or "").strip()
    if not value:
        raise InvalidInput("name is empty", field="name")
    if len(value) > limit:
        raise InvalidInput(f"name is longer than {limit} characters", field="name")
    return value


def get_list(session: Session, account_id: int, list_id: int) -> MailingList:
    """The account's list `list_id`; NotFound when it does not exist or belongs to another account."""
    lst = session.get(MailingList, list_id)
    if lst is None or lst.account_id != account_id:
        raise NotFound(f"list {list_id} does not exist", field="list")
    return lst


def find_list_owner(session: Session, list_id: int) -> int | None:
    """The account owning list `list_id` (MailUp calls name a list before any account)."""
    return _owner_cache.get_or_load(
        (str(session.get_bind().url), list_id),
        lambda: session.scalar(select(MailingList.account_id).where(MailingList.id == list_id)),
    )


def list_lists(session: Session, account_id: int) -> list[MailingList]:
    """The account's lists, oldest first."""
    stmt = select(MailingList).where(MailingList.account_id == account_id).order_by(MailingList.id)
    return list(session.scalars(stmt))


def delete_list(session: Session, account_id: int, list_id: int) -> None:
    """Delete a list with its groups and subscriptions (recipients stay in the account)."""
    session.delete(get_list(session, account_id, list_id))
    _owner_cache.clear()


def create_group(session: Session, account_id: int, list_id: int, name: str, notes: str = "") -> Group:
    """Create a group in a list; Conflict when the list already has a group of that name."""
    get_list(session, account_id, list_id)
    name = _clean_name(name, 100)
    if session.scalar(select(Group.id).where(Group.list_id == list_id, Group.name == name)):
        raise Conflict(f"list {list_id} already has a group named {name!r}", field="name")
    group = Group(account_id=account_id, list_id=list_id, name=name, notes=notes[:500])
    session.add(group)
    session.flush()
    return group


def get_group(session: Session, account_id: int, group_id: int, list_id: int | None = None) -> Group:
    """The account's group; NotFound if missing, another account's, or not in `list_id`."""
    group = session.get(Group, group_id)
    if group is None or group.account_id != account_id or (list_id is not None and group.list_id != list_id):
        raise NotFound(
            f"group {group_id} does not exist" + (f" in list {list_id}" if list_id else ""), field="group"
        )
    return group


def list_groups(session: Session, account_id: int, list_id: int) -> list[Group]:
    """The groups of a list."""
    get_list(session, account_id, list_id)
    return list(session.scalars(select(Group).where(Group.list_id == list_id).order_by(Group.id)))


def update_group(
    session: Session, account_id: int, group_id: int, *, name: str | None = None, notes: str | None = None
) -> Group:
    """Rename a group or change its notes."""
    group = get_group(session, account_id, group_id)
    if name is not None:
        group.name = _clean_name(name, 100)
    if notes is not None:
        group.notes = notes[:500]
    session.flush()
    return group


def delete_group(session: Session, account_id: int, group_id: int) -> None:
    """Delete a group and its memberships."""
    session.delete(get_group(session, account_id, group_id))


def ensure_default_fields(session: Session, account_id: int) -> None:
    """Give an account MailUp's eleven standard fields (campo1 nome ... campo11 telefono) if it has none."""
    if session.scalar(select(func.count()).select_from(Field).where(Field.account_id == account_id)):
        return
    for number, name in enumerate(DEFAULT_FIELDS, start=1):
        session.add(Field(account_id=account_id, number=number, name=name))
    session.flush()


def list_fields(session: Session, account_id: int) -> list[Field]:
    """The account's fields by number."""
    return list(session.scalars(select(Field).where(Field.account_id == account_id).order_by(Field.number)))


def set_field(session: Session, account_id: int, number: int, name: str) -> Field:
    """Define or rename field `number` (1..40)."""
    if not 1 <= number <= MAX_FIELDS:
        raise InvalidInput(f"field number must be between 1 and {MAX_FIELDS}", field="number")
    name = _clean_name(name, 50)
    clash = session.scalar(
        select(Field).where(Field.account_id == account_id, Field.name == name, Field.number != number)
    )
    if clash is not None:
        raise Conflict(f"field {clash.number} is already named {name!r}", field="name")
    field = session.scalar(select(Field).where(Field.account_id == account_id, Field.number == number))
    if field is None:
        field = Field(account_id=account_id, number=number, name=name)
        session.add(field)
    else:
        field.name = name
    session.flush()
    _fields_cache.clear()
    return field


def fold_name(name: str) -> str:
    """A field name folded for matching: case, accents and spaces ignored ('Città' == 'citta')."""
    decomposed = unicodedata.normalize("NFKD", name.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c) and not c.isspace())


# Field definitions are read on every subscribe and change rarely: other processes see a rename within
# 5 seconds, this process at once. A list's owner never changes.
_fields_cache: TTLCache[dict[str, int]] = TTLCache(ttl=5.0)
_owner_cache: TTLCache[int | None] = TTLCache(ttl=3600.0)


def field_resolver(session: Session, account_id: int) -> dict[str, int]:
    """Map every accepted spelling of each field (number, campoN, name) to its number."""

    def load() -> dict[str, int]:
        lookup: dict[str, int] = {}
        for field in list_fields(session, account_id):
            lookup[str(field.number)] = field.number
            lookup[f"campo{field.number}"] = field.number
            lookup[fold_name(field.name)] = field.number
        return lookup

    return _fields_cache.get_or_load((str(session.get_bind().url), account_id), load)
