"""/api/v1/webhooks and /api/v1/events as an integrator uses them."""

from __future__ import annotations

import base64
import json

import pytest
from standardwebhooks.webhooks import Webhook

from missiva.audience import recipients
from missiva.audience import subscriptions as subs
from missiva.events.models import WebhookEndpoint


@pytest.fixture
def make_list(client, account):
    def make(name="News"):
        r = client.post("/api/v1/lists", json={"name": name, "opt_in": "single"}, headers=account["headers"])
        assert r.status_code == 201, r.text
        return r.json()

    return make


def problem_field(response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["errors"][0]["field"]


def test_endpoint_lifecycle_and_validation(client, account, make_list, db):
    lst = make_list()
    h = account["headers"]
    r = client.post(
        "/api/v1/webhooks",
        json={
            "url": "https://crm.example/hook",
            "event_types": ["subscription.unsubscribed"],
            "list_id": lst["id"],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["health"] == "healthy"
    assert created["event_types"] == ["subscription.unsubscribed"] and created["mailup"] is None
    with db.session() as s:
        stored = s.get(WebhookEndpoint, created["id"])
        assert created["secret"] not in stored.secret  # sealed at rest
    wid = created["id"]
    assert client.get(f"/api/v1/webhooks/{wid}/secret", headers=h).json()["secret"] == created["secret"]
    assert [w["id"] for w in client.get("/api/v1/webhooks", headers=h).json()] == [wid]
    patched = client.patch(f"/api/v1/webhooks/{wid}", json={"active": False, "sources": ["api"]}, headers=h)
    assert patched.json()["health"] == "disabled" and patched.json()["sources"] == ["api"]

    bad = [
        ({"url": "ftp://crm.example/x"}, "url"),
        ({"url": "https:///nohost"}, "url"),
        ({"url": "https://crm.example", "event_types": ["subscription.exploded"]}, "event_types"),
        ({"url": "https://crm.example", "sources": ["robot"]}, "sources"),
        ({"url": "https://crm.example", "list_id": 999999}, "list_id"),
        ({"url": "https://crm.example", "format": "mailup"}, "mailup"),
        (
            {"url": "https://crm.example", "format": "mailup", "mailup": {"params": [["e", "[Mail]"]]}},
            "mailup.params.0",
        ),
        (
            {
                "url": "https://crm.example",
                "format": "mailup",
                "mailup": {"params": [["e", "[Email]"]], "encryption": "joomla"},
            },
            "mailup.key",
        ),
    ]
    for body, field in bad:
        r = client.post("/api/v1/webhooks", json=body, headers=h)
        assert r.status_code == 422 and problem_field(r) == field, (body, r.text)

    mailup = client.post(
        "/api/v1/webhooks",
        json={
            "url": "http://shop.example/mailup/webhook/subscribe",
            "format": "mailup",
            "mailup": {
                "params": [["customerEmail", "[Email]"]],
                "method": "GET",
                "encryption": "magento",
                "key": "k",
            },
        },
        headers=h,
    ).json()
    assert mailup["mailup"] == {
        "params": [["customerEmail", "[Email]"]],
        "method": "GET",
        "encryption": "magento",
        "event_type_case": "title",
    }
    assert "key" not in mailup["mailup"]
    assert client.delete(f"/api/v1/webhooks/{wid}", headers=h).status_code == 204
    assert client.get(f"/api/v1/webhooks/{wid}", headers=h).status_code == 404


def test_another_accounts_endpoint_is_404_everywhere(client, account, other_account):
    created = client.post(
        "/api/v1/webhooks", json={"url": "https://a.example/hook"}, headers=account["headers"]
    ).json()
    wid = created["id"]
    h = other_account["headers"]
    assert client.get("/api/v1/webhooks", headers=h).json() == []
    for method, path in [
        ("get", f"/api/v1/webhooks/{wid}"),
        ("patch", f"/api/v1/webhooks/{wid}"),
        ("delete", f"/api/v1/webhooks/{wid}"),
        ("get", f"/api/v1/webhooks/{wid}/secret"),
        ("post", f"/api/v1/webhooks/{wid}/rotate-secret"),
        ("post", f"/api/v1/webhooks/{wid}/test"),
        ("get", f"/api/v1/webhooks/{wid}/deliveries"),
        ("post", f"/api/v1/webhooks/{wid}/redeliver-dead"),
    ]:
        kwargs = {"json": {}} if method in ("patch", "post") else {}
        r = getattr(client, method)(path, headers=h, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
    assert client.get(f"/api/v1/webhooks/{wid}", headers=account["headers"]).status_code == 200


def test_delivery_log_redelivery_rotation_and_test_ping(
    client, account, make_list, receiver, make_dispatcher
):
    lst = make_list()
    h = account["headers"]
    wid = client.post("/api/v1/webhooks", json={"url": receiver.url()}, headers=h).json()["id"]
    ping = client.post(f"/api/v1/webhooks/{wid}/test", headers=h).json()
    assert ping["ok"] and ping["status_code"] == 200 and ping["webhook_id"].startswith("ping_")
    secret = client.get(f"/api/v1/webhooks/{wid}/secret", headers=h).json()["secret"]
    [first] = receiver.wait_for(1)
    assert Webhook(secret).verify(first.body, first.headers)["type"] == "webhook.ping"

    receiver.status = 410
    for email in ("a@example.com", "b@example.com"):
        client.post(f"/api/v1/lists/{lst['id']}/subscribe", json={"email": email}, headers=h)
    make_dispatcher().run_until_idle()
    log = client.get(f"/api/v1/webhooks/{wid}/deliveries", headers=h).json()
    assert [d["status"] for d in log["items"]] == ["dead", "dead"]
    dead = log["items"][1]  # newest first: this is a@example.com's
    assert dead["response_code"] == 410 and dead["attempts"] == 1 and dead["webhook_id"].startswith("evt_")
    assert client.get(f"/api/v1/webhooks/{wid}", headers=h).json()["health"] == "disabled"
    page = client.get(f"/api/v1/webhooks/{wid}/deliveries?limit=1", headers=h).json()
    assert len(page["items"]) == 1 and page["next_before"] == log["items"][0]["id"]
    assert client.get(f"/api/v1/webhooks/{wid}/deliveries?status=pending", headers=h).json()["items"] == []
    assert client.get(f"/api/v1/webhooks/{wid}/deliveries?status=lost", headers=h).status_code == 422

    receiver.status = 200
    client.patch(f"/api/v1/webhooks/{wid}", json={"active": True}, headers=h)
    assert client.post(f"/api/v1/webhooks/{wid}/redeliver-dead", headers=h).json() == {"requeued": 2}
    busy = client.post(f"/api/v1/webhooks/{wid}/deliveries/{dead['id']}/redeliver", headers=h)
    assert busy.status_code == 409  # already pending again
    rotated = client.post(
        f"/api/v1/webhooks/{wid}/rotate-secret", json={"overlap_hours": 0}, headers=h
    ).json()
    assert rotated["secret"] != secret and rotated["previous_valid_until"] is None
    make_dispatcher().run_until_idle()
    got = receiver.wait_for(5)
    retried = [r for r in got if r.webhook_id == dead["webhook_id"]]
    assert len(retried) == 2 and retried[0].body == retried[1].body
    assert Webhook(rotated["secret"]).verify(retried[1].body, retried[1].headers)["recipient"]["email"] == (
        "a@example.com"
    )
    done = client.get(f"/api/v1/webhooks/{wid}/deliveries/{dead['id']}", headers=h).json()
    assert done["status"] == "delivered" and done["attempts"] == 2 and done["next_attempt_at"] is None
    again = client.post(f"/api/v1/webhooks/{wid}/deliveries/{dead['id']}/redeliver", headers=h).json()
    assert again["status"] == "pending"


def test_event_feed_pages_with_a_stable_cursor_and_filters_by_type(
    client, account, other_account, db, make_list
):
    lst = make_list()
    h = account["headers"]
    with db.session() as s:
        for i in range(5):
            subs.subscribe(s, account["id"], lst["id"], email=f"r{i}@example.com")
        subs.unsubscribe(
            s, account["id"], lst["id"], email="r1@example.com", reason="link", source="recipient"
        )
        r3 = recipients.find(s, account["id"], recipients.Identity(email="r3@example.com"))
        recipients.update_profile(s, account["id"], r3, source="console", fields={"nome": "Tre"})

    items, cursor = [], None
    for _ in range(10):
        params = {"limit": 3} | ({"after": cursor} if cursor else {})
        page = client.get("/api/v1/events", params=params, headers=h).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert [e["type"] for e in items] == ["subscription.confirmed"] * 5 + [
        "subscription.unsubscribed",
        "recipient.updated",
    ]
    assert items[5]["reason"] == "link" and items[5]["data"]["optout_type"] == 2
    assert items[6]["recipient"]["fields"] == {"1": "Tre"} and items[6]["source"] == "console"
    assert items[0]["list"]["name"] == "News" and items[0]["id"].startswith("evt_")
    # The cursor is stable: nothing new after the end, then exactly the new event.
    empty = client.get("/api/v1/events", params={"after": cursor}, headers=h).json()
    assert empty == {"items": [], "next_cursor": cursor, "has_more": False}
    with db.session() as s:
        subs.subscribe(s, account["id"], lst["id"], email="late@example.com")
    late = client.get("/api/v1/events", params={"after": cursor}, headers=h).json()["items"]
    assert [e["recipient"]["email"] for e in late] == ["late@example.com"]

    only = client.get(
        "/api/v1/events", params={"types": "subscription.unsubscribed,recipient.updated"}, headers=h
    )
    assert [e["type"] for e in only.json()["items"]] == ["subscription.unsubscribed", "recipient.updated"]
    bad_type = client.get("/api/v1/events", params={"types": "subscription.exploded"}, headers=h)
    assert bad_type.status_code == 422 and problem_field(bad_type) == "types"
    forged = base64.urlsafe_b64encode(b"nope:12").decode()
    bad_cursor = client.get("/api/v1/events", params={"after": forged}, headers=h)
    assert bad_cursor.status_code == 422 and problem_field(bad_cursor) == "after"
    theirs = client.get("/api/v1/events", headers=other_account["headers"]).json()
    assert theirs["items"] == []
    webhook_shape = json.loads(json.dumps(items[0]))
    assert set(webhook_shape) == {
        "id",
        "type",
        "occurred_at",
        "account_id",
        "list",
        "recipient",
        "channel",
        "reason",
        "source",
        "mailing_id",
        "data",
    }
