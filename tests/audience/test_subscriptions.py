"""Subscription semantics of the service layer, as MailUp clients and the CRM observe them."""

from __future__ import annotations

import mailbox
import re
import threading

import pytest
from sqlalchemy import func, select

from missiva.audience import events, recipients
from missiva.audience import lists as lists_svc
from missiva.audience import subscriptions as subs
from missiva.audience.models import AudienceEvent, Recipient, Subscription
from missiva.errors import InvalidEmail, InvalidInput, InvalidMobile, NotFound, NotSubscribed


@pytest.fixture
def lst(db, account):
    with db.session() as s:
        return lists_svc.create_list(s, account["id"], "News", opt_in="single")


def events_of(db, account_id):
    with db.session() as s:
        return list(
            s.scalars(
                select(AudienceEvent).where(AudienceEvent.account_id == account_id).order_by(AudienceEvent.id)
            )
        )


def count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def outbox(settings):
    box = mailbox.Maildir(settings.data_dir / "outbox", create=True)
    return list(box)  # iterating a Maildir yields its messages


def test_new_recipient_on_single_opt_in_list_is_subscribed_with_one_event(db, account, lst):
    with db.session() as s:
        result = subs.subscribe(
            s,
            account["id"],
            lst.id,
            email="Mario.Rossi@Example.IT",
            fields={"nome": "Mario", "campo2": "Rossi"},
        )
    assert result.outcome is subs.Outcome.SUBSCRIBED and result.created
    assert result.recipient.email == "mario.rossi@example.it"
    assert result.recipient.fields == {"1": "Mario", "2": "Rossi"}
    evs = events_of(db, account["id"])
    assert [(e.type, e.source, e.list_id) for e in evs] == [("subscription.confirmed", "api", lst.id)]
    assert evs[0].data["email"] == "mario.rossi@example.it"
    assert evs[0].data["fields"] == {"1": "Mario", "2": "Rossi"}


def test_already_subscribed_is_a_distinct_outcome_and_records_no_status_event(db, account, lst):
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="a@example.com")
    with db.session() as s:
        again = subs.subscribe(s, account["id"], lst.id, email="A@example.com")
    assert again.outcome is subs.Outcome.ALREADY_SUBSCRIBED and not again.created
    assert [e.type for e in events_of(db, account["id"])] == ["subscription.confirmed"]


def test_double_opt_in_sends_localised_confirmation_and_link_confirms(db, account, settings, client):
    with db.session() as s:
        it_list = lists_svc.create_list(s, account["id"], "Notizie", opt_in="double", language="it")
    with db.session() as s:
        result = subs.subscribe(s, account["id"], it_list.id, email="anna@example.it")
    assert result.outcome is subs.Outcome.PENDING
    [message] = outbox(settings)
    assert message["To"] == "anna@example.it"
    assert "Conferma la tua iscrizione a Notizie" in message["Subject"]
    body = message.get_payload(decode=True).decode()
    link = re.search(r"http://missiva\.test(/c/\S+)", body).group(1)

    page = client.get(link)
    assert page.status_code == 200 and "ora sei iscritto a Notizie" in page.text
    with db.session() as s:
        sub = s.scalar(select(Subscription))
        assert sub.status == "subscribed" and sub.consent_method == "double_opt_in"
    types = [(e.type, e.source) for e in events_of(db, account["id"])]
    assert types == [("subscription.requested", "api"), ("subscription.confirmed", "recipient")]
    # Following the link again is harmless and says so.
    again = client.get(link)
    assert again.status_code == 200 and "Eri già iscritto" in again.text
    assert len(events_of(db, account["id"])) == 2


def test_forged_or_stale_confirmation_link_changes_nothing(db, account, settings, client):
    with db.session() as s:
        dlst = lists_svc.create_list(s, account["id"], "D", opt_in="double")
    with db.session() as s:
        subs.subscribe(s, account["id"], dlst.id, email="b@example.com")
    link = re.search(r"/c/\S+", outbox(settings)[0].get_payload(decode=True).decode()).group(0)
    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    assert client.get(forged).status_code == 404
    # Confirm, unsubscribe, ask again: the first link must not re-subscribe.
    assert client.get(link).status_code == 200
    with db.session() as s:
        subs.unsubscribe(s, account["id"], dlst.id, email="b@example.com", reason="link", source="recipient")
    with db.session() as s:
        assert (
            subs.subscribe(s, account["id"], dlst.id, email="b@example.com").outcome is subs.Outcome.PENDING
        )
    assert client.get(link).status_code == 404
    with db.session() as s:
        assert s.scalar(select(Subscription.status)) == "pending"


def test_unsubscribed_recipient_stays_out_unless_forced_or_reconfirmed(db, account, lst):
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="c@example.com")
    with db.session() as s:
        sub = subs.unsubscribe(
            s, account["id"], lst.id, email="c@example.com", reason="link", source="recipient"
        )
        assert sub.unsubscribe_reason == "link" and sub.unsubscribe_source == "recipient"
    with db.session() as s:
        unforced = subs.subscribe(s, account["id"], lst.id, email="c@example.com", double_opt_in=False)
    assert unforced.outcome is subs.Outcome.PENDING  # a new opt-in must be confirmed
    with db.session() as s:
        forced = subs.subscribe(s, account["id"], lst.id, email="c@example.com", force=True)
    assert forced.outcome is subs.Outcome.SUBSCRIBED
    evs = events_of(db, account["id"])
    assert [(e.type, e.reason) for e in evs] == [
        ("subscription.confirmed", None),
        ("subscription.unsubscribed", "link"),
        ("subscription.requested", None),
        ("subscription.confirmed", None),
    ]
    assert evs[1].data["optout_type"] == 2 and evs[-1].data["method"] == "forced"


def test_unsubscribe_of_unknown_pending_or_unsubscribed_is_not_subscribed(db, account, lst):
    with db.session() as s, pytest.raises(NotSubscribed):
        subs.unsubscribe(s, account["id"], lst.id, email="nobody@example.com")
    with db.session() as s:
        subs.subscribe(s, account["id"], lst.id, email="p@example.com", double_opt_in=True)
    with db.session() as s, pytest.raises(NotSubscribed):
        subs.unsubscribe(s, account["id"], lst.id, email="p@example.com")


def test_two_concurrent_subscribes_of_a_new_address_create_one_recipient(db, account, lst):
    barrier = threading.Barrier(2)
    outcomes, errors = [], []

    def worker():
        try:
            with db.session() as s:
                barrier.wait()
                outcomes.append(subs.subscribe(s, account["id"], lst.id, email="race@example.com").outcome)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(outcomes) == ["already_subscribed", "subscribed"]
    assert count(db, Recipient) == 1 and count(db, Subscription) == 1
    assert [e.type for e in events_of(db, account["id"])] == ["subscription.confirmed"]


def test_a_failure_midway_leaves_no_partial_rows(db, account, lst):
    def explode(_session, event):
        raise RuntimeError("outbox unavailable")

    events.add_listener(explode)
    try:
        with pytest.raises(RuntimeError), db.session() as s:
            subs.subscribe(s, account["id"], lst.id, email="half@example.com", fields={"nome": "Half"})
    finally:
        events.remove_listener(explode)
    assert count(db, Recipient) == 0 and count(db, Subscription) == 0 and count(db, AudienceEvent) == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"email": "not-an-address"}, InvalidEmail, "email"),
        ({"email": "a@b"}, InvalidEmail, "email"),
        ({"mobile": "12"}, InvalidMobile, "mobile"),
        ({"mobile": "+39 333 12"}, InvalidMobile, "mobile"),
        ({"email": "ok@example.com", "fields": {"campo1": "x" * 1001}}, InvalidInput, "fields.campo1"),
        ({"email": "ok@example.com", "fields": {"shoe_size": "42"}}, InvalidInput, "fields.shoe_size"),
        ({"email": "ok@example.com", "groups": [999999]}, NotFound, "group"),
        ({}, InvalidInput, "email"),
    ],
)
def test_bad_input_names_the_problem_and_writes_nothing(db, account, lst, kwargs, error, field):
    with pytest.raises(error) as info, db.session() as s:
        subs.subscribe(s, account["id"], lst.id, **kwargs)
    assert info.value.field == field and info.value.message
    assert count(db, Recipient) == 0 and count(db, AudienceEvent) == 0


def test_unknown_list_and_other_accounts_list_are_not_found(db, account, other_account, lst):
    with db.session() as s, pytest.raises(NotFound):
        subs.subscribe(s, account["id"], 424242, email="x@example.com")
    with db.session() as s, pytest.raises(NotFound):
        subs.subscribe(s, other_account["id"], lst.id, email="x@example.com")
    assert count(db, Recipient) == 0


def test_mobile_numbers_are_normalised_to_e164_with_the_account_country(db, account, lst):
    with db.session() as s:
        a = subs.subscribe(s, account["id"], lst.id, mobile="333 123 4567")
        b = subs.subscribe(s, account["id"], lst.id, mobile="00393331234567")
    assert a.recipient.mobile == "+393331234567" and a.subscription.channel == "sms"
    assert b.outcome is subs.Outcome.ALREADY_SUBSCRIBED and b.recipient.id == a.recipient.id


def test_profile_update_and_group_replace_record_one_changeprofile_event(db, account, lst):
    with db.session() as s:
        g1 = lists_svc.create_group(s, account["id"], lst.id, "VIP")
        g2 = lists_svc.create_group(s, account["id"], lst.id, "Sport")
        r = subs.subscribe(s, account["id"], lst.id, email="d@example.com", groups=[g1.id]).recipient
    with db.session() as s:
        r = recipients.get(s, account["id"], r.id)
        changes = recipients.update_profile(
            s,
            account["id"],
            r,
            source="console",
            fields={"nome": "Dora"},
            groups=[g2.id],
            replace_groups_in=[lst.id],
        )
        assert changes.groups_added == [g2.id] and changes.groups_removed == [g1.id]
        assert recipients.group_ids_of(s, r.id) == [g2.id]
    with db.session() as s:  # nothing changes -> no event
        r = recipients.get(s, account["id"], r.id)
        assert not recipients.update_profile(s, account["id"], r, source="api", fields={"nome": "Dora"})
    evs = events_of(db, account["id"])
    assert [(e.type, e.source) for e in evs] == [
        ("subscription.confirmed", "api"),
        ("recipient.updated", "console"),
    ]
    assert evs[1].data["changes"]["fields"] == {"1": ["", "Dora"]}


def test_delete_erases_personal_data_and_keeps_the_event(db, account, lst):
    with db.session() as s:
        r = subs.subscribe(s, account["id"], lst.id, email="e@example.com", fields={"nome": "Eva"}).recipient
    with db.session() as s:
        recipients.delete_recipient(s, account["id"], recipients.get(s, account["id"], r.id), source="api")
    assert count(db, Recipient) == 0 and count(db, Subscription) == 0
    evs = events_of(db, account["id"])
    assert [e.type for e in evs] == ["subscription.confirmed", "recipient.deleted"]
    assert evs[0].data == {"erased": True}
    assert evs[1].data["email"] == "e@example.com" and evs[1].data["fields"] == {}
    assert evs[1].data["lists"] == [lst.id]
