"""Send-time suppression: every reason excludes the right recipients and the counts add up."""

from __future__ import annotations

from missiva.audience import lists, subscriptions
from missiva.delivery import suppression

from .conftest import received_to, subscribe_many


def _message(client, shop) -> int:
    created = client.post(
        f"/api/v1/lists/{shop['list_id']}/messages",
        headers=shop["headers"],
        json={"subject": "News", "text": "Hello [email]"},
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_each_reason_excludes_its_recipients_and_counts_add_up(client, db, shop, sink) -> None:
    account, list_id = shop["id"], shop["list_id"]
    with db.session() as session:
        g1 = lists.create_group(session, account, list_id, "g1").id
        g2 = lists.create_group(session, account, list_id, "g2").id
        g3 = lists.create_group(session, account, list_id, "excluded").id
    wanted = ["a1@example.org", "a2@example.org", "a3@example.org"]
    listed = {
        r: f"{r}@example.org" for r in ("hard_bounce", "complaint", "manual", "import", "list_unsubscribe")
    }
    subscribe_many(db, account, list_id, [*wanted, "u1@example.org", *listed.values()], groups=[g1])
    subscribe_many(db, account, list_id, ["a2@example.org"], groups=[g2])  # in two included groups
    subscribe_many(db, account, list_id, ["x1@example.org"], groups=[g1, g3])  # excluded group wins
    with db.session() as session:
        subscriptions.subscribe(
            session, account, list_id, email="p1@example.org", groups=[g1], double_opt_in=True
        )
        subscriptions.unsubscribe(session, account, list_id, email="u1@example.org")
        for reason, address in listed.items():
            suppression.add(session, account, address, reason=reason)

    response = client.post(
        "/api/v1/mailings",
        headers=shop["headers"],
        json={
            "message_id": _message(client, shop),
            "audience": {"groups": [g1, g2], "exclude_groups": [g3]},
            "start": True,
        },
    )
    assert response.status_code == 201, response.text
    counters = client.get(f"/api/v1/mailings/{response.json()['id']}", headers=shop["headers"]).json()[
        "counters"
    ]

    assert sorted(received_to(sink)) == wanted
    assert counters["sent"] == 3
    assert counters["suppressed_by_reason"] == {
        "duplicate": 1,
        "unsubscribed": 1,
        "pending": 1,
        "hard_bounce": 1,
        "complaint": 1,
        "manual": 1,
        "import": 1,
        "list_unsubscribe": 1,
    }
    assert counters["audience"] == 11 == counters["sent"] + counters["suppressed"]
    assert counters["suppressed"] == sum(counters["suppressed_by_reason"].values())


def test_explicit_recipients_count_duplicates_and_strangers(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org", "b@example.org"])
    response = client.post(
        "/api/v1/mailings",
        headers=shop["headers"],
        json={
            "message_id": _message(client, shop),
            "audience": {"recipients": ["a@example.org", "A@Example.org", "stranger@example.org"]},
            "start": True,
        },
    )
    counters = client.get(f"/api/v1/mailings/{response.json()['id']}", headers=shop["headers"]).json()[
        "counters"
    ]

    assert received_to(sink) == ["a@example.org"]
    assert counters["suppressed_by_reason"] == {"duplicate": 1, "not_subscribed": 1}
    assert counters["audience"] == 3


def test_field_filter_narrows_the_audience(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["rome@example.org"], fields={"citta": "Roma"})
    subscribe_many(db, shop["id"], shop["list_id"], ["milan@example.org"], fields={"citta": "Milano"})
    response = client.post(
        "/api/v1/mailings",
        headers=shop["headers"],
        json={
            "message_id": _message(client, shop),
            "audience": {"filter": {"fields": [{"field": "citta", "op": "eq", "value": "roma"}]}},
            "start": True,
        },
    )
    assert response.status_code == 201, response.text
    assert received_to(sink) == ["rome@example.org"]


def test_suppression_list_api_add_list_import_export_remove(client, shop) -> None:
    headers = shop["headers"]
    assert (
        client.post("/api/v1/suppressions", headers=headers, json={"address": "One@Example.org"}).status_code
        == 201
    )
    imported = client.post(
        "/api/v1/suppressions/import",
        headers=headers,
        content="email\ntwo@example.org\nnot-an-address\none@example.org\n",
    ).json()
    assert imported["added"] == 1 and imported["already"] == 1
    assert imported["errors"][0]["line"] == 3

    page = client.get("/api/v1/suppressions", headers=headers).json()
    assert {(i["address"], i["reason"]) for i in page["items"]} == {
        ("one@example.org", "manual"),
        ("two@example.org", "import"),
    }
    export = client.get("/api/v1/suppressions/export", headers=headers).text.splitlines()
    assert export[0].startswith("address,reason") and len(export) == 3
    assert client.delete("/api/v1/suppressions/one@example.org", headers=headers).status_code == 204
    assert client.delete("/api/v1/suppressions/one@example.org", headers=headers).status_code == 404
    bad = client.post(
        "/api/v1/suppressions", headers=headers, json={"address": "x@example.org", "reason": "whim"}
    )
    assert bad.status_code == 422 and "whim" in bad.json()["detail"]


def test_transactional_send_obeys_the_suppression_list(client, shop, sink) -> None:
    headers = shop["headers"]
    client.post("/api/v1/suppressions", headers=headers, json={"address": "blocked@example.org"})
    body = {"subject": "Your order", "text": "Thanks", "from_email": "shop@shop.example"}

    sent = client.post("/api/v1/send", headers=headers, json={**body, "to": "buyer@example.org"})
    blocked = client.post("/api/v1/send", headers=headers, json={**body, "to": "blocked@example.org"})

    assert sent.status_code == 202 and sent.json()["status"] == "sent" and sent.json()["message_id"]
    assert blocked.json()["status"] == "suppressed" and blocked.json()["reason"] == "manual"
    assert received_to(sink) == ["buyer@example.org"]
    again = client.get(f"/api/v1/send/{sent.json()['id']}", headers=headers).json()
    assert again["reply_code"] == 250
