"""Messages (template errors, sandbox, preview, test send), mailing controls and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from missiva.delivery import mailings

from .conftest import received_to, subscribe_many


def _message(client, shop, **body) -> dict:
    values = {"subject": "News", "text": "Hello [email]", **body}
    return client.post(f"/api/v1/lists/{shop['list_id']}/messages", headers=shop["headers"], json=values)


def test_template_errors_name_the_part_line_and_tag(client, shop) -> None:
    unknown = _message(client, shop, html="<p>ok</p>\n<p>[colour]</p>")
    assert unknown.status_code == 422
    problem = unknown.json()
    assert problem["errors"][0]["field"] == "html"
    assert "line 2" in problem["detail"] and "'colour'" in problem["detail"]

    syntax = _message(client, shop, mode="jinja", text="Hi\n{% if nome %}\nno end")
    assert syntax.status_code == 422 and "line" in syntax.json()["detail"]


def test_jinja_sandbox_refuses_python_internals(client, shop) -> None:
    escape = _message(client, shop, mode="jinja", text="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert escape.status_code == 422
    assert "sandbox" in escape.json()["detail"] or "unsafe" in escape.json()["detail"]


def test_jinja_conditionals_and_preview_for_a_recipient(client, db, shop) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["anna@example.org"], fields={"nome": "Anna"})
    created = _message(
        client,
        shop,
        mode="jinja",
        subject="{% if nome %}Ciao {{ nome }}{% else %}Ciao{% endif %}",
        html="<p>{{ nome|default('amico', true) }}</p>",
        text=None,
    )
    assert created.status_code == 201, created.text
    person = client.get("/api/v1/recipients", headers=shop["headers"], params={"email": "anna@example.org"})
    recipient_id = person.json()["items"][0]["id"]

    sample = client.get(f"/api/v1/messages/{created.json()['id']}/preview", headers=shop["headers"]).json()
    assert sample["subject"] == "Ciao" and "amico" in sample["html"] and "amico" in sample["text"]
    mine = client.get(
        f"/api/v1/messages/{created.json()['id']}/preview",
        headers=shop["headers"],
        params={"recipient_id": recipient_id},
    ).json()
    assert mine["subject"] == "Ciao Anna" and mine["to"] == "anna@example.org"


def test_test_send_goes_to_the_given_addresses_only(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["subscriber@example.org"])
    message = _message(client, shop).json()
    response = client.post(
        f"/api/v1/messages/{message['id']}/test",
        headers=shop["headers"],
        json={"addresses": ["qa@shop.example"]},
    )
    assert response.status_code == 202
    assert response.json()["sends"][0]["status"] == "sent"
    assert received_to(sink) == ["qa@shop.example"]


def test_scheduled_mailing_starts_when_due_in_its_time_zone(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org"])
    message = _message(client, shop).json()
    local = (datetime.now(UTC) + timedelta(hours=3)).astimezone().replace(tzinfo=None)
    created = client.post(
        "/api/v1/mailings",
        headers=shop["headers"],
        json={"message_id": message["id"], "timezone": "Europe/Rome", "scheduled_at": local.isoformat()},
    ).json()
    assert created["status"] == "scheduled" and received_to(sink) == []
    with db.session() as session:
        assert mailings.start_due(session) == []
        due = mailings.start_due(session, now=datetime.now(UTC) + timedelta(hours=4))
    assert due == [created["id"]]
    assert (
        client.get(f"/api/v1/mailings/{created['id']}", headers=shop["headers"]).json()["status"]
        == "finished"
    )
    assert received_to(sink) == ["a@example.org"]


def test_pause_resume_and_cancel(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org", "b@example.org"])
    message = _message(client, shop).json()
    previous = mailings._enqueue
    mailings.set_enqueuer(lambda _mailing_id: None)
    try:
        mailing = client.post(
            "/api/v1/mailings", headers=shop["headers"], json={"message_id": message["id"], "start": True}
        ).json()
        paused = client.post(f"/api/v1/mailings/{mailing['id']}/pause", headers=shop["headers"]).json()
        assert paused["status"] == "paused"
    finally:
        mailings.set_enqueuer(previous)
    resumed = client.post(f"/api/v1/mailings/{mailing['id']}/resume", headers=shop["headers"])
    assert resumed.json()["status"] == "finished" and resumed.json()["counters"]["sent"] == 2

    other = client.post(
        "/api/v1/mailings", headers=shop["headers"], json={"message_id": message["id"]}
    ).json()
    cancelled = client.post(f"/api/v1/mailings/{other['id']}/cancel", headers=shop["headers"])
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/mailings/{other['id']}/start", headers=shop["headers"])
    assert again.status_code == 409
    assert len(received_to(sink)) == 2


def test_another_accounts_objects_are_not_found(client, db, shop, other_account) -> None:
    message = _message(client, shop).json()
    mailing = client.post(
        "/api/v1/mailings", headers=shop["headers"], json={"message_id": message["id"]}
    ).json()
    client.post("/api/v1/suppressions", headers=shop["headers"], json={"address": "x@example.org"})
    theirs = other_account["headers"]
    for method, path in [
        ("get", f"/api/v1/messages/{message['id']}"),
        ("patch", f"/api/v1/messages/{message['id']}"),
        ("delete", f"/api/v1/messages/{message['id']}"),
        ("get", f"/api/v1/messages/{message['id']}/preview"),
        ("get", f"/api/v1/lists/{shop['list_id']}/messages"),
        ("get", f"/api/v1/mailings/{mailing['id']}"),
        ("get", f"/api/v1/mailings/{mailing['id']}/ledger"),
        ("post", f"/api/v1/mailings/{mailing['id']}/start"),
        ("post", f"/api/v1/mailings/{mailing['id']}/cancel"),
        ("post", f"/api/v1/mailings/{mailing['id']}/resend-uncertain"),
        ("get", f"/api/v1/send/{mailing['id']}"),
        ("delete", "/api/v1/suppressions/x@example.org"),
    ]:
        kwargs = {"json": {}} if method == "patch" else {}
        response = getattr(client, method)(path, headers=theirs, **kwargs)
        assert response.status_code == 404, (method, path, response.status_code)
    create = client.post("/api/v1/mailings", headers=theirs, json={"message_id": message["id"]})
    assert create.status_code == 404
    assert client.get("/api/v1/suppressions", headers=theirs).json()["total"] == 0
