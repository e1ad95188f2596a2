"""The unsubscriber export (MailUp "Export of email unsubscribers") and the full recipient export.

Columns of the unsubscriber export, email first as MailUp writes it: email, mobile, idList, OptOut_Date
(`20210122T111244` in the chosen time zone), reason (Missiva's name), optout_type (MailUp's code),
optout_nl (the mailing that caused it), then the chosen personal fields by name.

Rows stream from the database: on PostgreSQL the query itself formats them and `COPY ... TO STDOUT`
hands over finished CSV; on SQLite a server-side cursor feeds Python's csv writer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, func, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from missiva.audience.enums import Channel, Reason, Status
from missiva.audience.lists import list_fields
from missiva.audience.models import Recipient, Subscription
from missiva.errors import InvalidInput
from missiva.sync.export.csv_output import DEFAULT_DELIMITER, CsvSink
from missiva.sync.export.window import Span, Window, record_mark, resolve, zone

MAILUP_DATE = "%Y%m%dT%H%M%S"
_PG_MAILUP_DATE = 'YYYYMMDD"T"HH24MISS'
_COPY_CHUNK = 256 * 1024


def _reasons(values: Sequence[str], name: str) -> tuple[str, ...]:
    out = []
    for value in values:
        try:
            out.append(Reason(value).value)
        except ValueError:
            choices = ", ".join(r.value for r in Reason)
            raise InvalidInput(f"unknown reason {value!r} (one of {choices})", field=name) from None
    return tuple(out)


@dataclass(frozen=True)
class UnsubscriberExport:
    """What to export. Lists and reasons are included (only these) or excluded (all but these).

    Example, MailUp's classic: the previous day's unsubscribers of list 1, leaving out those who clicked
    the unsubscribe link: `UnsubscriberExport(lists_in=(1,), window=Window.PREVIOUS_DAY,
    reasons_out=("link",))`.
    """

    lists_in: tuple[int, ...] = ()
    lists_out: tuple[int, ...] = ()
    reasons_in: tuple[str, ...] = ()
    reasons_out: tuple[str, ...] = ()
    window: Window = Window.ALL
    since: datetime | None = None
    until: datetime | None = None
    timezone: str = "UTC"
    stream: str = "default"
    fields: tuple[int, ...] = ()
    channel: str | None = None
    delimiter: str = DEFAULT_DELIMITER
    zipped: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", Window(self.window))
        object.__setattr__(self, "reasons_in", _reasons(self.reasons_in, "reasons_in"))
        object.__setattr__(self, "reasons_out", _reasons(self.reasons_out, "reasons_out"))
        for name in ("lists_in", "lists_out", "fields"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.channel is not None:
            object.__setattr__(self, "channel", Channel(self.channel).value)
        zone(self.timezone)


@dataclass(frozen=True)
class ExportResult:
    rows: int
    span: Span | None = None
    columns: list[str] = field(default_factory=list)


def _field_columns(session: Session, account_id: int, numbers: Sequence[int]) -> list[tuple[int, str]]:
    names = {f.number: f.name for f in list_fields(session, account_id)}
    missing = [n for n in numbers if n not in names]
    if missing:
        raise InvalidInput(f"the account has no field {missing[0]}", field="fields")
    return [(n, names[n]) for n in numbers]


def _unsubscriber_query(account_id: int, spec: UnsubscriberExport, span: Span) -> Select[Any]:
    s, r = Subscription, Recipient
    conditions = [s.account_id == account_id, s.status == Status.UNSUBSCRIBED, s.unsubscribed_at < span.end]
    if span.start is not None:
        conditions.append(s.unsubscribed_at >= span.start)
    if spec.lists_in:
        conditions.append(s.list_id.in_(spec.lists_in))
    if spec.lists_out:
        conditions.append(s.list_id.not_in(spec.lists_out))
    if spec.reasons_in:
        conditions.append(s.unsubscribe_reason.in_(spec.reasons_in))
    if spec.reasons_out:
        conditions.append(s.unsubscribe_reason.is_(None) | s.unsubscribe_reason.not_in(spec.reasons_out))
    if spec.channel:
        conditions.append(s.channel == spec.channel)
    return (
        select(s, r)
        .join(r, r.id == s.recipient_id)
        .where(and_(*conditions))
        .order_by(s.unsubscribed_at, s.id)
    )


def export_unsubscribers(
    session: Session,
    account_id: int,
    spec: UnsubscriberExport,
    dest: BinaryIO,
    *,
    now: datetime | None = None,
    record: bool = True,
) -> ExportResult:
    """Write the unsubscribers matching `spec` to `dest`; with `record`, remember the window's end
    for the next since_last export of `spec.stream` (in `session`, committed by the caller)."""
    span = resolve(
        session,
        account_id,
        spec.window,
        timezone=spec.timezone,
        since=spec.since,
        until=spec.until,
        stream=spec.stream,
        now=now,
    )
    fields = _field_columns(session, account_id, spec.fields)
    header = ["email", "mobile", "idList", "OptOut_Date", "reason", "optout_type", "optout_nl"]
    header += [name for _, name in fields]
    query = _unsubscriber_query(account_id, spec, span)
    s, r = Subscription, Recipient
    with CsvSink(dest, delimiter=spec.delimiter, zipped=spec.zipped, entry="unsubscribers.csv") as sink:
        sink.write_header(header)
        optout = case(
            {reason.value: reason.optout_type for reason in Reason}, value=s.unsubscribe_reason, else_=None
        )
        extras = [r.fields[str(n)].as_string() for n, _ in fields]
        if session.get_bind().dialect.name == "postgresql":
            date = _pg_date(s.unsubscribed_at, spec.timezone)
            columns = [
                r.email,
                r.mobile,
                s.list_id,
                date,
                s.unsubscribe_reason,
                optout,
                s.unsubscribe_mailing_id,
            ]
            _copy_to(session, query.with_only_columns(*columns, *extras), sink)
        else:
            utc = spec.timezone == "UTC"
            # SQLite formats UTC dates itself (stored as text); other zones are converted here.
            date = func.strftime("%Y%m%dT%H%M%S", s.unsubscribed_at) if utc else s.unsubscribed_at
            columns = [
                r.email,
                r.mobile,
                s.list_id,
                date,
                s.unsubscribe_reason,
                optout,
                s.unsubscribe_mailing_id,
            ]
            # Core rather than the ORM: plain rows, fetched 10,000 at a time, each chunk written at once.
            result = session.connection().execute(query.with_only_columns(*columns, *extras))
            while chunk := result.fetchmany(10_000):
                sink.write_rows(chunk if utc else list(_in_zone(chunk, ZoneInfo(spec.timezone))))
        rows = sink.rows
    span_done = span
    if record:
        record_mark(session, account_id, spec.stream, span_done, rows)
    return ExportResult(rows=rows, span=span_done, columns=header)


def _pg_date(column: Any, timezone: str) -> Any:
    return func.to_char(func.timezone(literal(timezone), column), _PG_MAILUP_DATE)


def _in_zone(rows: Sequence[Any], tz: ZoneInfo) -> Iterator[tuple[Any, ...]]:
    """Rows with their date (4th column) written in MailUp's format in `tz`."""
    for row in rows:
        when = row[3]
        yield (*row[:3], when.astimezone(tz).strftime(MAILUP_DATE) if when else None, *row[4:])


def _copy_to(session: Session, query: Select[Any], sink: CsvSink) -> None:
    """Stream `query` as CSV straight from PostgreSQL (COPY TO STDOUT), in chunks of ~256 KB."""
    compiled = query.compile(
        dialect=postgresql.psycopg.dialect(), compile_kwargs={"render_postcompile": True}
    )
    params = {k: _bind_value(v) for k, v in compiled.params.items()}
    delimiter = sink.delimiter.replace("'", "''")
    statement = f"COPY ({compiled.string}) TO STDOUT WITH (FORMAT csv, DELIMITER '{delimiter}')"
    raw = session.connection().connection.driver_connection
    buffer = bytearray()
    rows = 0
    with raw.cursor() as cur, cur.copy(statement, params) as copy:
        for chunk in copy:
            buffer += chunk
            rows += 1
            if len(buffer) >= _COPY_CHUNK:
                sink.write_raw(bytes(buffer), rows)
                buffer.clear()
                rows = 0
    sink.write_raw(bytes(buffer), rows)


def _bind_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def export_recipients(
    session: Session,
    account_id: int,
    dest: BinaryIO,
    *,
    list_id: int,
    status: str | None = None,
    channel: str | None = None,
    fields: Sequence[int] = (),
    delimiter: str = DEFAULT_DELIMITER,
    zipped: bool = False,
    timezone: str = "UTC",
) -> ExportResult:
    """Every recipient of a list (optionally of one status and channel) with their subscription and fields."""
    from missiva.audience.lists import get_list

    get_list(session, account_id, list_id)
    if status is not None:
        status = Status(status).value
    if channel is not None:
        channel = Channel(channel).value
    tz = zone(timezone)
    chosen = _field_columns(session, account_id, list(fields))
    s, r = Subscription, Recipient
    conditions = [s.account_id == account_id, s.list_id == list_id, s.status != "new"]
    if status:
        conditions.append(s.status == status)
    if channel:
        conditions.append(s.channel == channel)
    query = (
        select(
            r.email, r.mobile, s.list_id, s.channel, s.status, s.subscribed_at, s.unsubscribed_at, r.fields
        )
        .join(r, r.id == s.recipient_id)
        .where(and_(*conditions))
        .order_by(s.recipient_id, s.channel)
        .execution_options(yield_per=10_000)
    )
    header = ["email", "mobile", "idList", "channel", "status", "subscribed_at", "unsubscribed_at"]
    header += [name for _, name in chosen]
    keys = [str(n) for n, _ in chosen]

    def rows() -> Iterator[tuple[Any, ...]]:
        for email, mobile, lst, chan, stat, sub_at, unsub_at, values in session.execute(query):
            values = values or {}
            yield (
                email,
                mobile,
                lst,
                chan,
                stat,
                sub_at.astimezone(tz).strftime(MAILUP_DATE) if sub_at else None,
                unsub_at.astimezone(tz).strftime(MAILUP_DATE) if unsub_at else None,
                *(values.get(k) for k in keys),
            )

    with CsvSink(dest, delimiter=delimiter, zipped=zipped, entry="recipients.csv") as sink:
        sink.write_header(header)
        sink.write_rows(rows())
        count = sink.rows
    return ExportResult(rows=count, columns=header)
