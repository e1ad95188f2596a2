"""Unsubscriber and recipient exports: every filter combination returns exactly the right rows."""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from import_helpers import make_list
from sqlalchemy import select, update

from missiva.audience import subscriptions as subs_svc
from missiva.audience.models import Recipient, Subscription
from missiva.sync.export import UnsubscriberExport, Window, export_recipients, export_unsubscribers

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)
YESTERDAY = datetime(2025, 3, 14, tzinfo=UTC)

# (email, list, reason, unsubscribed at): None reason means still subscribed.
PEOPLE = [
    ("a@example.it", "L1", "link", YESTERDAY + timedelta(hours=10)),
    ("b@example.it", "L1", "hard_bounce", YESTERDAY + timedelta(hours=23, minutes=30)),  # Rome: the 15th
    ("c@example.it", "L1", "api", YESTERDAY - timedelta(days=1)),
    ("d@example.it", "L2", "link", YESTERDAY + timedelta(hours=1)),
    ("e@example.it", "L2", "complaint", NOW - timedelta(hours=1)),
    ("g@example.it", "L1", "import", YESTERDAY + timedelta(minutes=5)),
    ("h@example.it", "L2", "list_unsubscribe", YESTERDAY - timedelta(minutes=30)),  # Rome: the 14th
    ("f@example.it", "L1", None, None),
]


@pytest.fixture
def people(db, account):
    lists = {name: make_list(db, account["id"], name)["id"] for name in ("L1", "L2")}
    with db.session() as session:
        for email, lst, reason, when in PEOPLE:
            subs_svc.subscribe(
                session, account["id"], lists[lst], email=email, fields={"nome": email[0].upper()}
            )
            if reason is None:
                continue
            sub = subs_svc.unsubscribe(
                session, account["id"], lists[lst], email=email, reason=reason, mailing_id=7
            )
            session.execute(
                update(Subscription).where(Subscription.id == sub.id).values(unsubscribed_at=when)
            )
    return lists


def run_export(db, account_id: int, spec: UnsubscriberExport, now: datetime = NOW) -> list[dict[str, str]]:
    buffer = io.BytesIO()
    with db.session() as session:
        export_unsubscribers(session, account_id, spec, buffer, now=now)
    data = buffer.getvalue()
    if spec.zipped:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = archive.read("unsubscribers.csv")
    return list(csv.DictReader(io.StringIO(data.decode()), delimiter=spec.delimiter))


def expected(
    lists, lists_in=(), lists_out=(), reasons_in=(), reasons_out=(), start=None, end=NOW
) -> list[str]:
    names = {v: k for k, v in lists.items()}
    out = []
    for email, lst, reason, when in sorted(PEOPLE, key=lambda p: p[3] or NOW):
        if reason is None or when >= end or (start is not None and when < start):
            continue
        list_id = lists[lst]
        if (lists_in and list_id not in lists_in) or list_id in lists_out:
            continue
        if (reasons_in and reason not in reasons_in) or reason in reasons_out:
            continue
        assert names[list_id] == lst
        out.append(email)
    return out


def test_every_combination_of_list_window_and_reason_filters(db, account, people):
    l1 = people["L1"]
    list_filters = [{}, {"lists_in": (l1,)}, {"lists_out": (l1,)}]
    reason_filters = [{}, {"reasons_in": ("link", "hard_bounce")}, {"reasons_out": ("link",)}]
    windows = [
        ({"window": Window.ALL}, {}),
        ({"window": Window.PREVIOUS_DAY}, {"start": YESTERDAY, "end": YESTERDAY + timedelta(days=1)}),
        (
            {
                "window": Window.RANGE,
                "since": YESTERDAY + timedelta(hours=2),
                "until": NOW - timedelta(hours=2),
            },
            {"start": YESTERDAY + timedelta(hours=2), "end": NOW - timedelta(hours=2)},
        ),
    ]
    for lf, rf, (wf, span) in itertools.product(list_filters, reason_filters, windows):
        rows = run_export(db, account["id"], UnsubscriberExport(**lf, **rf, **wf))
        assert [r["email"] for r in rows] == expected(people, **lf, **rf, **span), (lf, rf, wf)


def test_previous_day_of_list_1_without_link_clicks_in_the_account_time_zone(db, account, people):
    spec = UnsubscriberExport(
        lists_in=(people["L1"],),
        window="previous_day",
        reasons_out=("link",),
        timezone="Europe/Rome",
        fields=(1,),
    )
    rows = run_export(db, account["id"], spec)
    # In Rome the 14th runs from 23:00 UTC on the 13th to 23:00 UTC on the 14th: b falls on the 15th.
    assert rows == [
        {
            "email": "g@example.it",
            "mobile": "",
            "idList": str(people["L1"]),
            "OptOut_Date": "20250314T010500",
            "reason": "import",
            "optout_type": "4",
            "optout_nl": "7",
            "nome": "G",
        }
    ]


def test_utc_export_carries_personal_fields_and_mailup_dates(db, account, people):
    spec = UnsubscriberExport(lists_in=(people["L1"],), window="previous_day", fields=(1,))
    rows = run_export(db, account["id"], spec)
    assert [(r["email"], r["OptOut_Date"], r["reason"], r["nome"]) for r in rows] == [
        ("g@example.it", "20250314T000500", "import", "G"),
        ("a@example.it", "20250314T100000", "link", "A"),
        ("b@example.it", "20250314T233000", "hard_bounce", "B"),
    ]


def test_reason_codes_delimiter_and_zip(db, account, people):
    rows = run_export(
        db, account["id"], UnsubscriberExport(delimiter="|", zipped=True, lists_in=(people["L2"],))
    )
    assert [(r["email"], r["reason"], r["optout_type"]) for r in rows] == [
        ("h@example.it", "list_unsubscribe", "2"),
        ("d@example.it", "link", "2"),
        ("e@example.it", "complaint", "16"),
    ]


def test_since_last_export_continues_where_the_previous_one_ended(db, account, people):
    first = run_export(
        db, account["id"], UnsubscriberExport(window="since_last", stream="crm"), now=YESTERDAY
    )
    assert [r["email"] for r in first] == ["c@example.it", "h@example.it"]
    second = run_export(db, account["id"], UnsubscriberExport(window="since_last", stream="crm"))
    assert [r["email"] for r in second] == [
        "g@example.it",
        "d@example.it",
        "a@example.it",
        "b@example.it",
        "e@example.it",
    ]
    other = run_export(db, account["id"], UnsubscriberExport(window="since_last", stream="other"))
    assert len(other) == 7


def test_full_export_of_a_list_by_status(db, account, people):
    buffer = io.BytesIO()
    with db.session() as session:
        export_recipients(
            session, account["id"], buffer, list_id=people["L1"], status="subscribed", fields=(1,)
        )
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue().decode()), delimiter=";"))
    assert [(r["email"], r["status"], r["nome"]) for r in rows] == [("f@example.it", "subscribed", "F")]
    buffer = io.BytesIO()
    with db.session() as session:
        result = export_recipients(session, account["id"], buffer, list_id=people["L1"])
        emails = session.scalars(select(Recipient.email).order_by(Recipient.id)).all()
    assert result.rows == 5 and len(emails) == 8
