"""Opens and clicks counted by tracking reach the endpoints that asked for them, signed like the rest."""

from __future__ import annotations

import json

from missiva.audience import subscriptions as subs
from missiva.db import utcnow
from missiva.events import message_events
from missiva.events import service as webhooks
from missiva.reports.webhooks import MessageEvent


def test_message_events_go_only_to_endpoints_that_name_them(db, account, lst, receiver, make_dispatcher):
    with db.session() as s:
        rec = subs.subscribe(s, account["id"], lst.id, email="click@example.com").recipient
        webhooks.create_endpoint(
            s, account["id"], url=receiver.url("/clicks"), event_types=["message.clicked"]
        )
        webhooks.create_endpoint(s, account["id"], url=receiver.url("/all"))
    now = utcnow()
    with db.session() as s:
        message_events.publish(
            s,
            [
                MessageEvent("message.opened", account["id"], 41, rec.id, now, {"mailing_id": 41}),
                MessageEvent(
                    "message.clicked",
                    account["id"],
                    41,
                    rec.id,
                    now,
                    {"mailing_id": 41, "url": "https://shop.example/offer", "link": 0},
                ),
            ],
        )
    make_dispatcher().run_until_idle(10)
    got = receiver.wait_for(1)
    by_path = {}
    for r in got:
        by_path.setdefault(r.path, []).append(json.loads(r.body))
    assert [p["type"] for p in by_path["/clicks"]] == ["message.clicked"]
    click = by_path["/clicks"][0]
    assert click["recipient"]["email"] == "click@example.com" and click["mailing_id"] == 41
    assert click["data"]["url"] == "https://shop.example/offer" and click["source"] == "system"
    # The unfiltered endpoint got the audience events only (here none: it was created after the subscribe).
    assert "/all" not in by_path


def test_endpoints_may_subscribe_to_message_types_and_unknown_types_are_refused(db, account, receiver):
    import pytest

    from missiva.errors import InvalidInput

    with db.session() as s:
        endpoint, _ = webhooks.create_endpoint(
            s, account["id"], url=receiver.url(), event_types=["message.opened", "subscription.confirmed"]
        )
        assert endpoint.event_types == ["message.opened", "subscription.confirmed"]
        with pytest.raises(InvalidInput) as info:
            webhooks.create_endpoint(s, account["id"], url=receiver.url(), event_types=["message.teleported"])
        assert info.value.field == "event_types"
