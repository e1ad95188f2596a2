"""Opens and clicks over HTTP: redirects only to the message's URLs, tampering records nothing,
privacy mode keeps recipients out, machines are flagged and not counted as people."""

from __future__ import annotations

from sqlalchemy import func, select

from missiva.reports import counters, plan
from missiva.reports.models import Metric, TrackingEvent
from tests.reports.conftest import path_of, render_tracked

HTML = """<html><body><h1>Hello [nome|friend]</h1>
<p><a href="https://shop.example/sale?c=1&amp;d=2">Sale</a> <a href="https://shop.example/new">New</a></p>
<p><a href="mailto:help@shop.example">Help</a></p></body></html>"""
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}


def events(db):
    with db.session() as s:
        return s.scalars(select(TrackingEvent).order_by(TrackingEvent.id)).all()


def report_counters(db, mailing_id):
    counters.roll_up_all(db)
    with db.session() as s:
        return counters.read(s, [mailing_id])[mailing_id]


def test_clicks_redirect_to_the_original_urls_and_opens_get_a_pixel(db, client, account):
    with db.session() as s:
        received = render_tracked(
            s, mailing_id=7, account_id=account["id"], html=HTML, recipients=[(11, "ann@example.com")]
        )[11]
    assert len(received.clicks) == 2 and received.pixel is not None
    assert "mailto:help@shop.example" in received.html and "Hello friend" in received.html
    assert len(received.text_clicks) == 2  # the text part generated from the HTML is tracked too
    targets = []
    for url in received.clicks + received.text_clicks:
        r = client.get(path_of(url), headers=BROWSER, follow_redirects=False)
        assert r.status_code == 302 and r.headers["cache-control"].startswith("no-store")
        targets.append(r.headers["location"])
    assert targets == ["https://shop.example/sale?c=1&d=2", "https://shop.example/new"] * 2
    pixel = client.get(path_of(received.pixel), headers=BROWSER)
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
    assert pixel.content.startswith(b"GIF89a") and "no-store" in pixel.headers["cache-control"]
    recorded = events(db)
    assert [(e.kind, e.link, e.recipient_id, e.is_bot, e.is_proxy) for e in recorded] == [
        ("click", 0, 11, False, False),
        ("click", 1, 11, False, False),
        ("click", 0, 11, False, False),
        ("click", 1, 11, False, False),
        ("open", None, 11, False, False),
    ]
    numbers = report_counters(db, 7)
    assert numbers[(Metric.CLICKS, 0)] == 4 and numbers[(Metric.CLICKS_UNIQUE, 0)] == 1
    assert numbers[(Metric.LINK_CLICKS, 0)] == 2 and numbers[(Metric.LINK_UNIQUE, 1)] == 1
    assert numbers[(Metric.OPENS, 0)] == 1 and numbers[(Metric.OPENS_UNIQUE, 0)] == 1
    assert numbers[(Metric.CLICKS_BY_HOUR, 0)] == 4


def test_tampered_tokens_get_404_and_record_nothing(db, client, account):
    with db.session() as s:
        received = render_tracked(
            s, mailing_id=8, account_id=account["id"], html=HTML, recipients=[(12, "bob@example.com")]
        )[12]
    good = path_of(received.clicks[0])
    token = good.rsplit("/", 1)[1]
    for bad in (
        good[:-1] + ("A" if good[-1] != "A" else "B"),
        good.replace(token, token[1:]),
        "/t/c/https%3A%2F%2Fevil.example%2F",
        "/t/c/" + path_of(received.pixel).rsplit("/", 1)[1].removesuffix(".gif"),  # an open token as a click
        "/t/o/" + token + ".gif",  # a click token as a pixel
    ):
        r = client.get(bad, headers=BROWSER, follow_redirects=False)
        assert r.status_code == 404, bad
        assert "location" not in r.headers
    assert events(db) == []


def test_a_mailing_without_stored_links_redirects_nowhere(db, client, account):
    from missiva.reports.tokens import signer_for

    token = signer_for("test-secret").make(999, 1, 0)  # genuine signature, unknown mailing
    assert client.get(f"/t/c/{token}", follow_redirects=False).status_code == 404
    with db.session() as s:
        render_tracked(
            s, mailing_id=9, account_id=account["id"], html=HTML, recipients=[(1, "a@example.com")]
        )
    beyond = signer_for("test-secret").make(9, 1, 5)  # genuine, but the message has 2 links
    assert client.get(f"/t/c/{beyond}", follow_redirects=False).status_code == 404
    assert events(db) == []


def test_privacy_mode_stores_no_recipient(db, client, account):
    with db.session() as s:
        plan.set_preferences(s, account["id"], privacy_mode=True)
        received = render_tracked(
            s,
            mailing_id=10,
            account_id=account["id"],
            html=HTML,
            recipients=[(21, "ann@example.com"), (22, "bob@example.com")],
        )
    assert received[21].clicks == received[22].clicks  # the links identify nobody
    for person in received.values():
        client.get(path_of(person.pixel), headers=BROWSER)
        client.get(path_of(person.clicks[1]), headers=BROWSER, follow_redirects=False)
    recorded = events(db)
    assert len(recorded) == 4 and {e.recipient_id for e in recorded} == {None}
    numbers = report_counters(db, 10)
    assert numbers[(Metric.OPENS, 0)] == 2 and numbers[(Metric.CLICKS, 0)] == 2
    assert (Metric.OPENS_UNIQUE, 0) not in numbers
    with db.session() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(TrackingEvent).where(TrackingEvent.recipient_id.is_not(None))
            )
            == 0
        )


def test_proxies_and_scanners_are_flagged_and_not_counted_as_people(db, client, account):
    with db.session() as s:
        received = render_tracked(
            s,
            mailing_id=11,
            account_id=account["id"],
            html=HTML.replace("</p></body>", '<a href="https://shop.example/third">3</a></p></body>'),
            recipients=[(31, "ann@example.com"), (32, "bob@example.com")],
        )
    ann, bob = received[31], received[32]
    client.get(path_of(ann.pixel), headers={"User-Agent": "Mozilla/5.0"})  # Apple Mail Privacy Protection
    client.get(path_of(ann.pixel), headers={"User-Agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"})
    client.head(path_of(ann.clicks[0]), headers=BROWSER)  # link checker
    client.get(path_of(ann.clicks[1]), headers={"User-Agent": "python-requests/2.32"}, follow_redirects=False)
    for url in bob.clicks:  # every link within the same second: a security scanner
        client.get(path_of(url), headers=BROWSER, follow_redirects=False)
    client.get(path_of(bob.pixel), headers=BROWSER)  # and one real open
    flags = [(e.recipient_id, e.kind, e.ua_class, e.is_proxy, e.is_bot) for e in events(db)]
    assert flags[:4] == [
        (31, "open", "apple_mpp", True, False),
        (31, "open", "gmail_proxy", True, False),
        (31, "click", "desktop", False, True),
        (31, "click", "bot", False, True),
    ]
    numbers = report_counters(db, 11)
    assert numbers[(Metric.OPENS_PROXY, 0)] == 2 and numbers[(Metric.OPENS, 0)] == 1
    assert numbers[(Metric.OPENS_UNIQUE, 0)] == 1
    assert numbers[(Metric.CLICKS_BOT, 0)] == 5 and (Metric.CLICKS, 0) not in numbers
    with db.session() as s:
        assert all(
            e.is_bot
            for e in s.scalars(
                select(TrackingEvent).where(TrackingEvent.recipient_id == 32, TrackingEvent.kind == "click")
            )
        )
