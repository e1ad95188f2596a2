"""The native REST API as an integrator uses it: lists, groups, fields, recipients, subscriptions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from missiva.audience.models import AudienceEvent, GroupMember, MailingList, Recipient, Subscription


def make_list(client, account, **extra):
    r = client.post(
        "/api/v1/lists", json={"name": "News", "opt_in": "single", **extra}, headers=account["headers"]
    )
    assert r.status_code == 201, r.text
    return r.json()


def count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_requests_without_a_valid_key_get_401_problem(client, account):
    for headers in ({}, {"Authorization": "Bearer msv_nope_nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/api/v1/lists", headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")


def test_list_group_field_lifecycle(client, account):
    lst = make_list(client, account, sender_email="News@Shop.IT", language="it")
    assert lst["id"] > 0 and len(lst["guid"]) == 36 and lst["sender_email"] == "news@shop.it"
    r = client.patch(f"/api/v1/lists/{lst['id']}", json={"opt_in": "double"}, headers=account["headers"])
    assert r.json()["opt_in"] == "double" and r.json()["language"] == "it"
    g = client.post(f"/api/v1/lists/{lst['id']}/groups", json={"name": "VIP"}, headers=account["headers"])
    assert g.status_code == 201
    dup = client.post(f"/api/v1/lists/{lst['id']}/groups", json={"name": "VIP"}, headers=account["headers"])
    assert dup.status_code == 409 and dup.json()["errors"][0]["field"] == "name"
    fields = client.get("/api/v1/fields", headers=account["headers"]).json()
    assert [f["name"] for f in fields][:3] == ["nome", "cognome", "azienda"] and len(fields) == 11
    f12 = client.put("/api/v1/fields/12", json={"name": "customer_id"}, headers=account["headers"])
    assert f12.json() == {"number": 12, "name": "customer_id"}
    assert client.put("/api/v1/fields/41", json={"name": "x"}, headers=account["headers"]).status_code == 422
    assert client.delete(f"/api/v1/groups/{g.json()['id']}", headers=account["headers"]).status_code == 204
    assert client.delete(f"/api/v1/lists/{lst['id']}", headers=account["headers"]).status_code == 204
    assert client.get(f"/api/v1/lists/{lst['id']}", headers=account["headers"]).status_code == 404


def test_subscribe_status_unsubscribe_roundtrip(client, account, db):
    lst = make_list(client, account)
    url = f"/api/v1/lists/{lst['id']}"
    r = client.post(
        f"{url}/subscribe",
        json={"email": "Ann@Example.com", "fields": {"nome": "Ann", "12": None}},
        headers=account["headers"],
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "fields.12"  # field 12 not defined
    r = client.post(
        f"{url}/subscribe",
        json={"email": "Ann@Example.com", "fields": {"nome": "Ann"}},
        headers=account["headers"],
    )
    assert r.status_code == 201 and r.json()["outcome"] == "subscribed"
    assert r.json()["recipient"]["fields"] == {"1": "Ann"}
    again = client.post(f"{url}/subscribe", json={"email": "ann@example.com"}, headers=account["headers"])
    assert again.status_code == 200 and again.json()["outcome"] == "already_subscribed"
    st = client.get(f"{url}/status", params={"email": "ann@example.com"}, headers=account["headers"]).json()
    assert st["status"] == "subscribed"
    un = client.post(
        f"{url}/unsubscribe",
        json={"email": "ann@example.com", "reason": "console"},
        headers=account["headers"],
    )
    assert un.status_code == 200 and un.json()["unsubscribe_reason"] == "console"
    un2 = client.post(f"{url}/unsubscribe", json={"email": "ann@example.com"}, headers=account["headers"])
    assert un2.status_code == 409
    bad_reason = client.post(
        f"{url}/unsubscribe", json={"email": "ann@example.com", "reason": "bored"}, headers=account["headers"]
    )
    assert bad_reason.status_code == 422 and bad_reason.json()["errors"][0]["field"] == "reason"
    st = client.get(
        f"{url}/status", params={"email": "nobody@example.com"}, headers=account["headers"]
    ).json()
    assert st["status"] == "unknown"
    assert count(db, AudienceEvent) == 2


def test_invalid_input_is_a_problem_naming_the_field_and_writes_nothing(client, account, db):
    lst = make_list(client, account)
    cases = [
        ({"email": "mario@"}, "email"),
        ({"mobile": "+39 12"}, "mobile"),
        ({"email": "a@example.com", "fields": {"nome": "x" * 5000}}, "fields.nome"),
        ({"email": "a@example.com", "groups": ["abc"]}, "groups.0"),
        ({"email": "x" * 300 + "@example.com"}, "email"),
    ]
    for body, field in cases:
        r = client.post(f"/api/v1/lists/{lst['id']}/subscribe", json=body, headers=account["headers"])
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == field, r.json()
    r = client.post(
        "/api/v1/lists/999999/subscribe", json={"email": "a@example.com"}, headers=account["headers"]
    )
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "list"
    assert count(db, Recipient) == 0


def test_batch_subscribe_reports_each_item_and_caps_at_1000(client, account, db):
    lst = make_list(client, account)
    items = [{"email": f"user{i}@example.com"} for i in range(998)] + [
        {"email": "broken"},
        {"email": "user1@example.com"},
    ]
    r = client.post(
        f"/api/v1/lists/{lst['id']}/subscribe/batch", json={"items": items}, headers=account["headers"]
    )
    assert r.status_code == 200
    body = r.json()
    assert body["counts"] == {"subscribed": 998, "error": 1, "already_subscribed": 1}
    assert body["results"][998]["error"]["field"] == "email"
    assert count(db, Recipient) == 998
    too_many = client.post(
        f"/api/v1/lists/{lst['id']}/subscribe/batch",
        json={"items": [{"email": f"x{i}@example.com"} for i in range(1001)]},
        headers=account["headers"],
    )
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "items"


def test_recipient_search_is_paginated_and_filtered(client, account):
    lst = make_list(client, account)
    g = client.post(
        f"/api/v1/lists/{lst['id']}/groups", json={"name": "G"}, headers=account["headers"]
    ).json()
    for i in range(5):
        client.post(
            f"/api/v1/lists/{lst['id']}/subscribe",
            json={"email": f"p{i}@example.com", "groups": [g["id"]] if i % 2 == 0 else []},
            headers=account["headers"],
        )
    client.post(
        f"/api/v1/lists/{lst['id']}/unsubscribe", json={"email": "p4@example.com"}, headers=account["headers"]
    )
    seen, after = [], 0
    while True:
        page = client.get(
            "/api/v1/recipients",
            params={"list_id": lst["id"], "limit": 2, "after": after},
            headers=account["headers"],
        ).json()
        seen += [r["email"] for r in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == [f"p{i}@example.com" for i in range(5)]
    in_group = client.get(
        "/api/v1/recipients", params={"group_id": g["id"], "status": "subscribed"}, headers=account["headers"]
    ).json()
    assert [r["email"] for r in in_group["items"]] == ["p0@example.com", "p2@example.com"]
    by_email = client.get(
        "/api/v1/recipients", params={"email": "P3@example.com"}, headers=account["headers"]
    ).json()
    assert [r["email"] for r in by_email["items"]] == ["p3@example.com"]


def test_patch_recipient_replaces_groups_and_delete_erases(client, account, db):
    lst = make_list(client, account)
    g1 = client.post(
        f"/api/v1/lists/{lst['id']}/groups", json={"name": "A"}, headers=account["headers"]
    ).json()
    g2 = client.post(
        f"/api/v1/lists/{lst['id']}/groups", json={"name": "B"}, headers=account["headers"]
    ).json()
    rec = client.post(
        f"/api/v1/lists/{lst['id']}/subscribe",
        json={"email": "q@example.com", "groups": [g1["id"]]},
        headers=account["headers"],
    ).json()["recipient"]
    r = client.patch(
        f"/api/v1/recipients/{rec['id']}",
        json={"fields": {"cognome": "Quinto"}, "groups": [g2["id"]], "replace_groups_in": [lst["id"]]},
        headers=account["headers"],
    )
    assert r.status_code == 200 and r.json()["groups"] == [g2["id"]] and r.json()["fields"] == {"2": "Quinto"}
    assert client.delete(f"/api/v1/recipients/{rec['id']}", headers=account["headers"]).status_code == 204
    assert client.get(f"/api/v1/recipients/{rec['id']}", headers=account["headers"]).status_code == 404
    assert count(db, GroupMember) == 0 and count(db, Subscription) == 0


def test_idempotency_key_replays_the_first_answer(client, account, db):
    headers = {**account["headers"], "Idempotency-Key": "create-news-1"}
    first = client.post("/api/v1/lists", json={"name": "Once"}, headers=headers)
    second = client.post("/api/v1/lists", json={"name": "Once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and second.headers.get("idempotent-replayed") == "true"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MailingList)) == 1
    other = client.post("/api/v1/lists", json={"name": "Different"}, headers=headers)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"


def test_idempotency_keys_are_per_account(client, account, other_account):
    a = client.post(
        "/api/v1/lists", json={"name": "L"}, headers={**account["headers"], "Idempotency-Key": "k"}
    )
    b = client.post(
        "/api/v1/lists", json={"name": "L"}, headers={**other_account["headers"], "Idempotency-Key": "k"}
    )
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


@pytest.fixture
def b_objects(client, other_account):
    """A list, group and recipient of account B."""
    h = other_account["headers"]
    lst = client.post("/api/v1/lists", json={"name": "B list", "opt_in": "single"}, headers=h).json()
    grp = client.post(f"/api/v1/lists/{lst['id']}/groups", json={"name": "B group"}, headers=h).json()
    rec = client.post(
        f"/api/v1/lists/{lst['id']}/subscribe",
        json={"email": "b@example.com", "groups": [grp["id"]]},
        headers=h,
    ).json()["recipient"]
    return {"list": lst["id"], "group": grp["id"], "recipient": rec["id"]}


def test_account_a_cannot_see_or_touch_account_b_objects(client, account, other_account, b_objects, db):
    a_list = make_list(client, account)["id"]
    L, G, R = b_objects["list"], b_objects["group"], b_objects["recipient"]
    calls = [
        ("get", f"/api/v1/lists/{L}", None),
        ("patch", f"/api/v1/lists/{L}", {"name": "stolen"}),
        ("delete", f"/api/v1/lists/{L}", None),
        ("get", f"/api/v1/lists/{L}/groups", None),
        ("post", f"/api/v1/lists/{L}/groups", {"name": "x"}),
        ("get", f"/api/v1/groups/{G}", None),
        ("patch", f"/api/v1/groups/{G}", {"name": "stolen"}),
        ("delete", f"/api/v1/groups/{G}", None),
        ("post", f"/api/v1/lists/{L}/subscribe", {"email": "a@example.com"}),
        ("post", f"/api/v1/lists/{L}/subscribe/batch", {"items": [{"email": "a@example.com"}]}),
        ("post", f"/api/v1/lists/{L}/unsubscribe", {"email": "b@example.com"}),
        ("get", f"/api/v1/lists/{L}/status?email=b@example.com", None),
        ("get", f"/api/v1/recipients?list_id={L}", None),
        ("get", f"/api/v1/recipients?group_id={G}", None),
        ("get", f"/api/v1/recipients/{R}", None),
        ("patch", f"/api/v1/recipients/{R}", {"fields": {"nome": "x"}}),
        ("delete", f"/api/v1/recipients/{R}", None),
        ("post", f"/api/v1/lists/{a_list}/subscribe", {"email": "a@example.com", "groups": [G]}),
        ("patch", f"/api/v1/recipients/{R}", {"groups": [G]}),
    ]
    with db.session() as s:
        before = (
            s.scalar(select(func.count()).select_from(AudienceEvent)),
            s.scalar(select(func.count()).select_from(Recipient)),
        )
    for method, url, body in calls:
        kwargs = {"headers": account["headers"]}
        if body is not None:
            kwargs["json"] = body
        r = getattr(client, method)(url, **kwargs)
        assert r.status_code == 404, (method, url, r.status_code, r.text)
    # Nothing of B changed, and A's search never returns B's recipient.
    b = client.get(f"/api/v1/recipients/{R}", headers=other_account["headers"]).json()
    assert b["fields"] == {} and b["subscriptions"][0]["status"] == "subscribed" and b["groups"] == [G]
    assert client.get(f"/api/v1/lists/{L}", headers=other_account["headers"]).json()["name"] == "B list"
    assert (
        client.get("/api/v1/recipients?email=b@example.com", headers=account["headers"]).json()["items"] == []
    )
    with db.session() as s:
        after = (
            s.scalar(select(func.count()).select_from(AudienceEvent)),
            s.scalar(select(func.count()).select_from(Recipient)),
        )
    assert after == before


def test_openapi_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    assert "/api/v1/lists/{list_id}/subscribe" in spec["paths"]
    assert client.get("/docs").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}
