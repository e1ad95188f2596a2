"""A mailing sent to a real SMTP sink, then opened, clicked, bounced and unsubscribed over HTTP:
every number of the mailing report and the recipient report matches what happened."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from missiva.audience import subscriptions
from missiva.db import utcnow
from missiva.delivery import suppression
from missiva.delivery.models import LedgerEntry
from missiva.events import message_events
from missiva.reports import webhooks
from missiva.reports.models import TrackingEvent
from tests.delivery.conftest import HARD, send_now, subscribe_many
from tests.reports.conftest import parse, path_of

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"}
HTML = (
    "<html><body><p>Ciao [nome|amico]</p>"
    '<p><a href="https://shop.example/sale?x=1&amp;y=2">Sale</a> '
    '<a href="https://shop.example/new">New</a> <a href="mailto:help@shop.example">Help</a></p>'
    "</body></html>"
)
SALE, NEW = "https://shop.example/sale?x=1&y=2", "https://shop.example/new"


@pytest.fixture
def published():
    captured: list[webhooks.MessageEvent] = []
    webhooks.set_publisher(lambda session, batch: captured.extend(batch))
    yield captured
    message_events.install()  # the worker's publisher again, for the tests that follow


def start_mailing(client, shop) -> int:
    return send_now(client, shop, HTML, subject="Saldi")


def received(sink) -> dict[str, tuple]:
    """Address -> (parsed tracked message, unsubscribe path) for every message in the sink."""
    out = {}
    for message in sink.handler.received:
        parsed = email.message_from_bytes(message.content, policy=email.policy.default)
        unsubscribe = re.search(r"<https://missiva\.test(/u/[^>]+)>", parsed["List-Unsubscribe"]).group(1)
        out[message.rcpt_tos[0]] = (parse(message.content), unsubscribe)
    return out


def test_every_number_of_the_reports_matches_what_happened(client, db, shop, sink, published):
    people = [f"p{i}@example.org" for i in range(10)]
    subscribe_many(db, shop["id"], shop["list_id"], people, fields={"nome": "Ada"})
    with db.session() as s:
        subscriptions.unsubscribe(s, shop["id"], shop["list_id"], email="p9@example.org")
        suppression.add(s, shop["id"], "p8@example.org", reason="manual")
    sink.handler.rcpt_replies["p7@example.org"] = HARD.format("p7@example.org")
    sink.handler.transient["p6@example.org"] = 10  # 4xx until the retries run out

    mailing_id = start_mailing(client, shop)
    inbox = received(sink)
    assert sorted(inbox) == [f"p{i}@example.org" for i in range(6)]
    first, _ = inbox["p0@example.org"]
    assert len(first.clicks) == 2 and first.pixel and "mailto:help@shop.example" in first.html
    assert "Ciao Ada" in first.html
    with db.session() as s:  # delivered a minute ago, except p5: its click comes "seconds after delivery"
        s.execute(
            update(LedgerEntry)
            .where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.address != "p5@example.org")
            .values(sent_at=utcnow() - timedelta(minutes=1))
        )

    def get(url, **headers):
        response = client.get(path_of(url), headers={**BROWSER, **headers}, follow_redirects=False)
        assert response.status_code in (200, 302)
        return response

    p0, p1, p2, p4, p5 = (inbox[f"p{i}@example.org"][0] for i in (0, 1, 2, 4, 5))
    get(p0.pixel)
    get(p0.pixel)
    assert get(p0.clicks[0]).headers["location"] == SALE
    assert get(p0.text_clicks[0]).headers["location"] == SALE  # the text part's link counts the same
    assert get(p0.clicks[1]).headers["location"] == NEW
    get(p1.pixel)
    assert get(p1.clicks[1]).headers["location"] == NEW
    get(p2.pixel, **{"User-Agent": "Mozilla/5.0"})  # Apple Mail Privacy Protection prefetch
    client.head(path_of(p4.clicks[0]), headers=BROWSER)  # a link checker
    get(p5.clicks[0])  # a scanner, seconds after delivery
    one_click = client.post(
        inbox["p1@example.org"][1],
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    with db.session() as s:  # a feedback-loop complaint about this mailing
        subscriptions.unsubscribe(
            s,
            shop["id"],
            shop["list_id"],
            email="p0@example.org",
            reason="complaint",
            source="system",
            mailing_id=mailing_id,
        )

    report = client.get(f"/api/v1/reports/mailings/{mailing_id}", headers=shop["headers"])
    assert report.status_code == 200, report.text
    r = report.json()
    assert {k: r[k] for k in ("audience", "suppressed", "suppressed_by_reason", "queued")} == {
        "audience": 10,
        "suppressed": 2,
        "suppressed_by_reason": {"manual": 1, "unsubscribed": 1},
        "queued": 0,
    }
    assert {
        k: r[k] for k in ("sent", "delivered", "hard_bounces", "soft_bounces", "failed", "uncertain")
    } == {
        "sent": 8,
        "delivered": 6,
        "hard_bounces": 1,
        "soft_bounces": 1,
        "failed": 0,
        "uncertain": 0,
    }
    assert r["complaints"] == 1 and r["unsubscribes"] == 3
    assert r["unsubscribes_by_reason"] == {"complaint": 1, "hard_bounce": 1, "list_unsubscribe": 1}
    assert r["opens"] == {"total": 3, "unique": 2, "proxy": 1, "bot": 0, "by_hour": [{"hour": 0, "count": 3}]}
    assert r["clicks"] == {
        "total": 4,
        "unique": 2,
        "bot": 2,
        "by_url": [
            {"link": 0, "url": SALE, "total": 2, "unique": 1},
            {"link": 1, "url": NEW, "total": 2, "unique": 2},
        ],
        "by_hour": [{"hour": 0, "count": 4}],
    }
    assert r["rates"] == {
        "delivery": 0.75,
        "bounce": 0.25,
        "open": 0.3333,
        "click": 0.3333,
        "click_to_open": 1.0,
        "unsubscribe": 0.5,
        "complaint": 0.1667,
    }
    assert r["tracking"] == {"opens": True, "clicks": True, "privacy_mode": False}

    # Every outcome went to the webhook publisher: the relay's acceptances, the 5.1.1 and the retries
    # that ran out, and the people's opens and clicks (scanners' and proxies' did not count).
    by_type = {}
    for e in published:
        by_type.setdefault(e.type, []).append(e)
    assert {t: len(es) for t, es in by_type.items()} == {
        "message.delivered": 6,
        "message.bounced": 2,
        "message.clicked": 4,
        "message.opened": 3,
    }
    assert sorted(e.data["email"] for e in by_type["message.delivered"]) == [
        f"p{i}@example.org" for i in range(6)
    ]
    assert sorted((e.data["email"], e.data["kind"]) for e in by_type["message.bounced"]) == [
        ("p6@example.org", "soft"),
        ("p7@example.org", "hard"),
    ]
    assert sorted(e.data["url"] for e in by_type["message.clicked"]) == [NEW, NEW, SALE, SALE]

    as_csv = client.get(f"/api/v1/reports/mailings/{mailing_id}?format=csv", headers=shop["headers"])
    row = next(csv.DictReader(io.StringIO(as_csv.text)))
    assert (row["delivered"], row["unique_opens"], row["clicks"], row["bot_clicks"], row["open_rate"]) == (
        "6",
        "2",
        "4",
        "2",
        "0.3333",
    )
    events = list(
        csv.DictReader(
            io.StringIO(
                client.get(f"/api/v1/reports/mailings/{mailing_id}/events.csv", headers=shop["headers"]).text
            )
        )
    )
    assert len(events) == 10
    assert [
        (e["kind"], e["url"], e["is_bot"]) for e in events if e["recipient_id"] == events[-1]["recipient_id"]
    ] == [("click", SALE, "1")]

    ada = client.get(
        "/api/v1/reports/recipients", params={"email": "P0@example.org"}, headers=shop["headers"]
    )
    assert ada.status_code == 200, ada.text
    a = ada.json()
    assert [
        (s["list_id"], s["channel"], s["status"], s["unsubscribe_reason"]) for s in a["subscriptions"]
    ] == [(shop["list_id"], "email", "unsubscribed", "complaint")]
    (sent,) = a["mailings"]
    assert (sent["mailing_id"], sent["outcome"], sent["opens"], sent["clicks"], sent["bot_clicks"]) == (
        mailing_id,
        "sent",
        2,
        3,
        0,
    )
    assert sent["clicked_links"] == [{"url": NEW, "clicks": 1}, {"url": SALE, "clicks": 2}]
    assert sent["unsubscribed"] and sent["unsubscribe_reason"] == "complaint"
    assert a["totals"] == {"mailings": 1, "delivered": 1, "opened": 1, "clicked": 1, "opens": 2, "clicks": 3}

    bounced = client.get(
        "/api/v1/reports/recipients", params={"email": "p7@example.org"}, headers=shop["headers"]
    ).json()
    (entry,) = bounced["mailings"]
    assert entry["outcome"] == "hard_bounce" and entry["reply"]["code"] == 550 and entry["opens"] == 0
    assert bounced["subscriptions"][0]["unsubscribe_reason"] == "hard_bounce"
    deferred = client.get(
        f"/api/v1/reports/recipients/{_id(db, 'p6@example.org')}", headers=shop["headers"]
    ).json()
    assert (
        deferred["mailings"][0]["outcome"] == "failed"
        and deferred["mailings"][0]["reason"] == "retries_exhausted"
    )
    p5_report = client.get(
        "/api/v1/reports/recipients", params={"email": "p5@example.org"}, headers=shop["headers"]
    ).json()
    assert p5_report["mailings"][0]["clicks"] == 0 and p5_report["mailings"][0]["bot_clicks"] == 1

    # A second mailing, side by side with the first: later unsubscribes are suppressed this time.
    sink.handler.reset()
    second = start_mailing(client, shop)
    both = client.get(
        "/api/v1/reports/mailings", params={"ids": f"{second},{mailing_id}"}, headers=shop["headers"]
    )
    reports = both.json()["mailings"]
    assert [m["mailing_id"] for m in reports] == [second, mailing_id]
    assert reports[1] == r
    # p0 complained, p1 unsubscribed, p7 bounced, p8 and p9 were out already: p2..p6 remain.
    assert reports[0]["delivered"] == len(sink.handler.received) == 5
    assert reports[0]["audience"] == 10 and reports[0]["opens"]["total"] == 0
    side = list(
        csv.DictReader(
            io.StringIO(
                client.get(
                    "/api/v1/reports/mailings",
                    params={"ids": f"{mailing_id},{second}", "format": "csv"},
                    headers=shop["headers"],
                ).text
            )
        )
    )
    assert [row["mailing_id"] for row in side] == [str(mailing_id), str(second)]


def _id(db, address: str) -> int:
    from missiva.audience.models import Recipient

    with db.session() as s:
        return s.scalar(select(Recipient.id).where(Recipient.email == address))


def test_privacy_mode_mailing_counts_without_recipients(client, db, shop, sink):
    assert client.put(
        "/api/v1/tracking/settings", json={"privacy_mode": True}, headers=shop["headers"]
    ).json() == {"privacy_mode": True, "track_opens": True, "track_clicks": True}
    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org", "b@example.org"])
    mailing_id = start_mailing(client, shop)
    with db.session() as s:
        s.execute(update(LedgerEntry).values(sent_at=utcnow() - timedelta(minutes=1)))
    messages = [parse(m.content) for m in sink.handler.received]
    assert messages[0].clicks == messages[1].clicks and messages[0].pixel == messages[1].pixel
    for message in messages:
        client.get(path_of(message.pixel), headers=BROWSER)
        assert (
            client.get(path_of(message.clicks[0]), headers=BROWSER, follow_redirects=False).headers[
                "location"
            ]
            == SALE
        )
    r = client.get(f"/api/v1/reports/mailings/{mailing_id}", headers=shop["headers"]).json()
    assert r["tracking"]["privacy_mode"] is True
    assert (r["opens"]["total"], r["opens"]["unique"], r["clicks"]["total"], r["clicks"]["unique"]) == (
        2,
        None,
        2,
        None,
    )
    assert r["rates"]["open"] is None
    with db.session() as s:
        assert s.scalars(select(TrackingEvent.recipient_id)).all() == [None] * 4
    person = client.get(
        "/api/v1/reports/recipients", params={"email": "a@example.org"}, headers=shop["headers"]
    ).json()
    assert person["mailings"][0]["outcome"] == "sent" and person["mailings"][0]["opens"] == 0


def test_tracking_can_be_turned_off_for_one_mailing(client, db, shop, sink):
    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org"])
    message = client.post(
        f"/api/v1/lists/{shop['list_id']}/messages",
        headers=shop["headers"],
        json={"subject": "S", "html": HTML},
    ).json()
    draft = client.post(
        "/api/v1/mailings", headers=shop["headers"], json={"message_id": message["id"]}
    ).json()
    off = client.put(
        f"/api/v1/tracking/mailings/{draft['id']}",
        json={"opens": False, "clicks": False},
        headers=shop["headers"],
    )
    assert off.status_code == 200 and off.json()["opens"] is False
    assert client.post(
        f"/api/v1/mailings/{draft['id']}/start", headers=shop["headers"], json={}
    ).status_code in (200, 202)
    (only,) = [parse(m.content) for m in sink.handler.received]
    assert only.clicks == [] and only.pixel is None and 'href="https://shop.example/new"' in only.html
    late = client.put(
        f"/api/v1/tracking/mailings/{draft['id']}", json={"opens": True}, headers=shop["headers"]
    )
    assert late.status_code == 409


def test_reports_of_another_account_are_not_found(client, db, shop, sink, other_account):
    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org"])
    mailing_id = start_mailing(client, shop)
    for path in (
        f"/api/v1/reports/mailings/{mailing_id}",
        f"/api/v1/reports/mailings?ids={mailing_id}",
        f"/api/v1/reports/mailings/{mailing_id}/events.csv",
        f"/api/v1/reports/recipients/{_id(db, 'a@example.org')}",
        "/api/v1/reports/recipients?email=a@example.org",
    ):
        assert client.get(path, headers=other_account["headers"]).status_code == 404, path
    bad = client.get("/api/v1/reports/mailings?ids=1,x", headers=shop["headers"])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "ids"


def test_report_commands(client, db, shop, sink):
    from typer.testing import CliRunner

    from missiva.cli import app

    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org", "b@example.org"])
    mailing_id = start_mailing(client, shop)
    with db.session() as s:
        s.execute(update(LedgerEntry).values(sent_at=utcnow() - timedelta(minutes=1)))
    (first, *_) = [parse(m.content) for m in sink.handler.received if "a@example.org" in m.rcpt_tos]
    client.get(path_of(first.clicks[1]), headers=BROWSER, follow_redirects=False)
    runner = CliRunner()
    account = ["--account", str(shop["id"])]
    as_csv = runner.invoke(app, ["report", "mailing", str(mailing_id), "--csv", *account])
    assert as_csv.exit_code == 0, as_csv.output
    row = next(csv.DictReader(io.StringIO(as_csv.output)))
    assert (row["delivered"], row["clicks"], row["unique_clicks"], row["click_rate"]) == (
        "2",
        "1",
        "1",
        "0.5",
    )
    person = runner.invoke(app, ["report", "recipient", "a@example.org", *account])
    assert person.exit_code == 0, person.output
    assert json.loads(person.output)["mailings"][0]["clicked_links"] == [{"url": NEW, "clicks": 1}]
    missing = runner.invoke(app, ["report", "recipient", "nobody@example.org", *account])
    assert missing.exit_code == 2 and "not found" in missing.output
