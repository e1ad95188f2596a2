"""Native webhooks as a customer's CRM receives them: signed, complete, in order, nothing lost."""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import missiva.jobs
from missiva.audience import lists as lists_svc
from missiva.audience import recipients
from missiva.audience import subscriptions as subs
from missiva.events import outbox, service
from missiva.events.enums import DeliveryStatus, Health
from missiva.events.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import make_account


def add_endpoint(db, account_id, url, **options):
    with db.session() as s:
        endpoint, secret = service.create_endpoint(s, account_id, url=url, **options)
        return endpoint.id, secret


def deliveries(db, endpoint_id=None):
    with db.session() as s:
        stmt = select(WebhookDelivery).order_by(WebhookDelivery.id)
        if endpoint_id is not None:
            stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
        return list(s.scalars(stmt))


def endpoint_row(db, endpoint_id):
    with db.session() as s:
        return s.get(WebhookEndpoint, endpoint_id)


def test_subscribe_sends_one_signed_event_that_verifies_and_a_tampered_body_fails(
    db, account, lst, receiver, make_dispatcher
):
    with db.session() as s:
        group = lists_svc.create_group(s, account["id"], lst.id, "VIP")
    _, secret = add_endpoint(db, account["id"], receiver.url())
    with db.session() as s:
        subs.subscribe(
            s, account["id"], lst.id, email="Ann@Example.com", fields={"nome": "Ann"}, groups=[group.id]
        )

    assert len(make_dispatcher().run_once()) == 1
    [req] = receiver.wait_for(1)
    payload = Webhook(secret).verify(req.body, req.headers)
    assert req.method == "POST" and req.headers["content-type"] == "application/json"
    assert payload["type"] == "subscription.confirmed" and payload["source"] == "api"
    assert payload["id"] == req.webhook_id and payload["account_id"] == account["id"]
    assert payload["list"] == {"id": lst.id, "guid": lst.guid, "name": "News"}
    assert payload["recipient"]["email"] == "ann@example.com"
    assert payload["recipient"]["fields"] == {"1": "Ann"}
    assert payload["recipient"]["groups"] == [{"id": group.id, "list_id": lst.id}]
    assert payload["channel"] == "email"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(req.body.replace(b"ann@", b"bob@"), req.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(service_secret_of_other(db, account)).verify(req.body, req.headers)
    [row] = deliveries(db)
    assert row.status == DeliveryStatus.DELIVERED and row.attempts == 1 and row.response_code == 200
    assert row.latency_ms is not None and endpoint_row(db, row.endpoint_id).health is Health.HEALTHY


def service_secret_of_other(db, account):
    """The secret of a second endpoint: a valid secret, but not this endpoint's."""
    return add_endpoint(db, account["id"], "https://elsewhere.example/hook", active=False)[1]


def test_receiver_down_then_up_gets_every_event_once_in_order_per_recipient(
    db, account, lst, receiver, make_dispatcher, clock
):
    add_endpoint(db, account["id"], receiver.url())
    receiver.stop()
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    for email in emails:
        with db.session() as s:
            subs.subscribe(s, account["id"], lst.id, email=email)
        with db.session() as s:
            subs.unsubscribe(s, account["id"], lst.id, email=email, reason="link", source="recipient")
        with db.session() as s:
            subs.subscribe(s, account["id"], lst.id, email=email, force=True)
        with db.session() as s:
            r = recipients.find(s, account["id"], recipients.Identity(email=email))
            recipients.update_profile(s, account["id"], r, source="console", fields={"cognome": "X"})

    clock.catch_up()
    dispatcher = make_dispatcher(clock=clock, rng=random.Random(7))
    assert dispatcher.run_until_idle() == 3  # only the first event of each recipient may be tried
    rows = deliveries(db)
    assert len(rows) == 12 and sorted(r.attempts for r in rows) == [0] * 9 + [1] * 3
    assert all(r.status == DeliveryStatus.PENDING and r.last_error for r in rows if r.attempts)

    receiver.start()
    for _ in range(10):
        clock.advance(minutes=5)
        dispatcher.run_until_idle()
    got = receiver.wait_for(12)
    assert len(got) == 12 and len({r.webhook_id for r in got}) == 12
    by_recipient = defaultdict(list)
    for req in got:
        body = json.loads(req.body)
        by_recipient[body["recipient"]["email"]].append((body["id"], body["type"]))
    for email in emails:
        sent = by_recipient[email]
        assert [t for _, t in sent] == [
            "subscription.confirmed",
            "subscription.unsubscribed",
            "subscription.confirmed",
            "recipient.updated",
        ]
        ids = [int(i.removeprefix("evt_")) for i, _ in sent]
        assert ids == sorted(ids)
    assert {r.status for r in deliveries(db)} == {DeliveryStatus.DELIVERED}


def test_retries_back_off_exponentially_with_jitter_then_dead_letter_after_25_hours(
    db, account, lst, receiver, make_dispatcher, clock
):
    endpoint_id, _ = add_endpoint(db, account["id"], receiver.url())
    receiver.status = 500
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="ann@example.com")
    clock.catch_up()
    dispatcher = make_dispatcher(clock=clock, rng=random.Random(3))
    started = clock.now
    delays = []
    while True:
        [outcome] = dispatcher.run_once()
        assert outcome.status_code == 500
        [row] = deliveries(db)
        if row.status != DeliveryStatus.PENDING:
            break
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        clock.now = row.next_attempt_at
    assert row.status == DeliveryStatus.DEAD and row.last_error.startswith("HTTP 500")
    assert clock.now - started >= timedelta(hours=25)
    assert row.attempts == len(delays) + 1 == len(receiver.requests)
    assert 8 <= delays[0] <= 12  # 10 s +/- 20 %
    growing = [b / a for a, b in itertools.pairwise(delays) if b < 6 * 3600 * 0.8]
    assert all(1.3 < ratio < 3.1 for ratio in growing) and len(growing) >= 8
    assert any(abs(ratio - 2) > 0.01 for ratio in growing)  # jitter: not exact doublings
    assert max(delays) <= 6 * 3600 * 1.2
    endpoint = endpoint_row(db, endpoint_id)
    assert endpoint.health is Health.UNHEALTHY and endpoint.active  # failing for over 24 h
    # A success makes it healthy again.
    receiver.status = 200
    with db.session() as s:
        service.redeliver(s, account["id"], endpoint_id, row.id, now=clock.now)
    dispatcher.run_once()
    assert endpoint_row(db, endpoint_id).health is Health.HEALTHY
    assert deliveries(db)[0].status == DeliveryStatus.DELIVERED


def test_410_gone_dead_letters_and_disables_the_endpoint(db, account, lst, receiver, make_dispatcher):
    endpoint_id, _ = add_endpoint(db, account["id"], receiver.url())
    receiver.status = 410
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="ann@example.com")
    make_dispatcher().run_until_idle()
    [row] = deliveries(db)
    assert row.status == DeliveryStatus.DEAD and row.response_code == 410
    endpoint = endpoint_row(db, endpoint_id)
    assert not endpoint.active and endpoint.health is Health.DISABLED and "410" in endpoint.disabled_reason
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="bob@example.com")
    assert len(deliveries(db)) == 1  # a disabled endpoint gets nothing queued
    assert len(receiver.requests) == 1


def test_an_endpoint_never_receives_another_accounts_events(db, account, receiver, make_dispatcher):
    other = make_account(db, "Shop B")
    with db.session() as s:
        list_a = lists_svc.create_list(s, account["id"], "A", opt_in="single").id
        list_b = lists_svc.create_list(s, other["id"], "B", opt_in="single").id
    add_endpoint(db, account["id"], receiver.url("/a"))
    add_endpoint(db, other["id"], receiver.url("/b"))
    for i in range(3):
        with db.session() as s:
            subs.subscribe(s, account["id"], list_a, email=f"a{i}@example.com")
            subs.subscribe(s, other["id"], list_b, email=f"b{i}@example.com")
    make_dispatcher().run_until_idle()
    got = receiver.wait_for(6)
    for req in got:
        body = json.loads(req.body)
        assert req.path == "/a" if body["account_id"] == account["id"] else req.path == "/b"
        assert body["recipient"]["email"][0] == req.path[1]
    assert sorted(r.path for r in got) == ["/a"] * 3 + ["/b"] * 3


def test_filters_by_event_type_list_and_source(db, account, lst, receiver, make_dispatcher):
    with db.session() as s:
        other_list = lists_svc.create_list(s, account["id"], "Other", opt_in="single").id
    add_endpoint(
        db,
        account["id"],
        receiver.url(),
        event_types=["subscription.unsubscribed"],
        list_id=lst.id,
        sources=["recipient"],
    )
    with db.session() as s:
        for list_id in (lst.id, other_list):
            subs.subscribe(s, account["id"], list_id, email="ann@example.com")
            subs.subscribe(s, account["id"], list_id, email="bob@example.com")
            subs.unsubscribe(s, account["id"], list_id, email="ann@example.com", source="recipient")
            subs.unsubscribe(s, account["id"], list_id, email="bob@example.com", source="console")
    make_dispatcher().run_until_idle()
    [req] = receiver.wait_for(1)
    body = json.loads(req.body)
    assert (body["type"], body["list"]["id"], body["recipient"]["email"], body["source"]) == (
        "subscription.unsubscribed",
        lst.id,
        "ann@example.com",
        "recipient",
    )
    assert body["reason"] == "api" and body["data"]["optout_type"] == 1


def test_rotation_sends_both_signatures_during_the_overlap_then_only_the_new_one(
    db, account, lst, receiver, make_dispatcher, clock
):
    endpoint_id, old = add_endpoint(db, account["id"], receiver.url())
    with db.session() as s:
        rotation = service.rotate_secret(
            s, account["id"], endpoint_id, overlap=timedelta(hours=1), now=clock.now
        )
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="ann@example.com")
    clock.catch_up()
    make_dispatcher(clock=clock).run_once()
    [req] = receiver.wait_for(1)
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    new = rotation.secret
    assert Webhook(old).verify(req.body, req.headers) == Webhook(new).verify(req.body, req.headers)

    clock.advance(hours=1, seconds=1)
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="bob@example.com")
    make_dispatcher(clock=clock).run_once()
    second = receiver.wait_for(2)[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(second.body, second.headers)
    assert Webhook(new).verify(second.body, second.headers)["recipient"]["email"] == "bob@example.com"


def test_events_leave_right_after_commit_without_waiting_for_the_worker(
    db, account, lst, receiver, client, monkeypatch
):
    monkeypatch.setattr(outbox, "_kickers", [missiva.jobs._kick_dispatcher])
    add_endpoint(db, account["id"], receiver.url())
    r = client.post(
        f"/api/v1/lists/{lst.id}/subscribe", json={"email": "ann@example.com"}, headers=account["headers"]
    )
    assert r.status_code == 201
    [req] = receiver.wait_for(1)
    assert json.loads(req.body)["recipient"]["email"] == "ann@example.com"
    assert deliveries(db)[0].status == DeliveryStatus.DELIVERED


def test_a_receiver_that_never_answers_times_out_and_gets_the_same_message_again_later(
    db, account, lst, receiver, make_dispatcher, clock
):
    add_endpoint(db, account["id"], receiver.url())
    receiver.hang_from = 0
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="ann@example.com")
    clock.catch_up()
    dispatcher = make_dispatcher(clock=clock, timeout=0.3)
    [outcome] = dispatcher.run_once()
    assert outcome.error == "timeout after 0.3 s" and not outcome.ok
    [row] = deliveries(db)
    assert row.status == DeliveryStatus.PENDING and row.next_attempt_at > clock.now
    receiver.hang_from = None
    receiver.release.set()
    assert dispatcher.run_once() == []  # not due yet
    clock.now = row.next_attempt_at
    [outcome] = dispatcher.run_once()
    assert outcome.ok
    first, second = receiver.wait_for(2)
    assert first.webhook_id == second.webhook_id and first.body == second.body


def test_two_dispatchers_at_once_send_each_event_once_and_in_order(
    db, account, lst, receiver, make_dispatcher
):
    add_endpoint(db, account["id"], receiver.url())
    emails = [f"r{i}@example.com" for i in range(4)]
    with db.session() as s:
        for n in range(5):
            for email in emails:
                subs.subscribe(s, account["id"], lst.id, email=email, fields={"nome": f"v{n}"})
    first, second = make_dispatcher(batch_size=3), make_dispatcher(batch_size=3)
    threads = [threading.Thread(target=d.run_until_idle) for d in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    got = receiver.wait_for(20)
    assert len(got) == 20 and len({r.webhook_id for r in got}) == 20
    by_recipient = defaultdict(list)
    for req in got:
        body = json.loads(req.body)
        by_recipient[body["recipient"]["email"]].append(int(body["id"].removeprefix("evt_")))
    assert all(ids == sorted(ids) and len(ids) == 5 for ids in by_recipient.values())
