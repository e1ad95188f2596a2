"""MailUp frontend calls (`/frontend/xml*.aspx`) with the quirks of real clients.

Each case follows mailup-legacy-api.md section 1: bare integer + CRLF bodies, case-insensitive pages and
parameters, GET/POST with query, urlencoded, multipart and raw unencoded bodies, and the IP allowlist.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from missiva.audience.models import AudienceEvent, Recipient, Subscription


@pytest.fixture
def lists(client, account):
    h = account["headers"]
    single = client.post("/api/v1/lists", json={"name": "Single", "opt_in": "single"}, headers=h).json()
    double = client.post("/api/v1/lists", json={"name": "Double", "opt_in": "double"}, headers=h).json()
    group = client.post(f"/api/v1/lists/{single['id']}/groups", json={"name": "VIP"}, headers=h).json()
    return {"single": single, "double": double, "group": group}


def call(client, page, method="GET", **params):
    r = getattr(client, method.lower())(f"/frontend/{page}", params=params)
    assert r.status_code == 200, r.text
    assert r.text.endswith("\r\n"), repr(r.text)
    return int(r.text)


def status_of(db, email, list_id):
    with db.session() as s:
        return s.scalar(
            select(Subscription.status)
            .join(Recipient, Recipient.id == Subscription.recipient_id)
            .where(Recipient.email == email, Subscription.list_id == list_id)
        )


def count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_subscribe_return_codes(client, db, lists):
    L = lists["single"]["id"]
    assert call(client, "xmlSubscribe.aspx", List=L, Email="new@example.com", Confirm=0) == 0
    assert status_of(db, "new@example.com", L) == "subscribed"
    assert call(client, "xmlSubscribe.aspx", List=L, Email="new@example.com", Confirm=0) == 3
    assert call(client, "xmlSubscribe.aspx", List=L, Email="not an email") == 2
    assert call(client, "xmlSubscribe.aspx", List=L, Sms="12") == 2
    assert call(client, "xmlSubscribe.aspx", List=L) == 2
    assert call(client, "xmlSubscribe.aspx", List=999999, Email="x@example.com") == 1
    assert call(client, "xmlSubscribe.aspx", List="abc", Email="x@example.com") == 1
    assert call(client, "xmlSubscribe.aspx", List=L, Email="x@example.com", Group=999999) == 1
    assert call(client, "xmlSubscribe.aspx", List=L, Email="x@example.com", ListGuid="not-the-guid") == 1
    assert count(db, Recipient) == 1


def test_confirm_defaults_to_double_opt_in_and_accepts_true_false(client, db, lists, settings):
    L = lists["single"]["id"]
    assert call(client, "xmlSubscribe.aspx", List=L, Email="d1@example.com") == 0
    assert status_of(db, "d1@example.com", L) == "pending"
    assert call(client, "xmlSubscribe.aspx", List=L, Email="d2@example.com", Confirm="false") == 0
    assert status_of(db, "d2@example.com", L) == "subscribed"
    assert call(client, "xmlSubscribe.aspx", List=L, Email="d3@example.com", Confirm="True") == 0
    assert status_of(db, "d3@example.com", L) == "pending"
    assert len(list((settings.data_dir / "outbox" / "new").iterdir())) == 2


def test_fields_groups_guid_and_several_lists(client, db, lists):
    s, d, g = lists["single"], lists["double"], lists["group"]
    code = call(
        client,
        "xmlSubscribe.aspx",
        List=f"{s['id']},{d['id']}",
        Email="multi@example.com",
        Confirm=0,
        Group=g["id"],
        csvFldNames="campo1;Campo2;nome",
        csvFldValues="Mario;Rossi;Mario",
        ListGuid=s["guid"].upper(),
        retCode=1,
        ipAddress="203.0.113.9",
        source="wordpress",
    )
    assert code == 0
    assert status_of(db, "multi@example.com", s["id"]) == "subscribed"
    assert status_of(db, "multi@example.com", d["id"]) == "subscribed"  # Confirm=0 wins over the list default
    with db.session() as sess:
        r = sess.scalar(select(Recipient))
        assert r.fields == {"1": "Mario", "2": "Rossi"}
        assert (
            sess.scalar(select(Subscription.consent_ip).where(Subscription.list_id == s["id"]))
            == "203.0.113.9"
        )


def test_semicolon_inside_a_value_breaks_the_field_count_and_writes_nothing(client, db, lists):
    L = lists["single"]["id"]
    code = call(
        client,
        "xmlSubscribe.aspx",
        List=L,
        Email="semi@example.com",
        Confirm=0,
        csvFldNames="campo1;campo2",
        csvFldValues="Via Roma; 1;Milano",
    )
    assert code == 1
    assert count(db, Recipient) == 0 and count(db, AudienceEvent) == 0


def test_oversized_field_and_unknown_field_name_are_errors(client, db, lists):
    L = lists["single"]["id"]
    assert (
        call(
            client,
            "xmlSubscribe.aspx",
            List=L,
            Email="o@example.com",
            csvFldNames="campo1",
            csvFldValues="x" * 1001,
        )
        == 1
    )
    assert (
        call(
            client,
            "xmlSubscribe.aspx",
            List=L,
            Email="o@example.com",
            csvFldNames="campo99",
            csvFldValues="x",
        )
        == 1
    )
    assert count(db, Recipient) == 0


def test_sms_subscription_with_00_prefix(client, db, lists):
    L = lists["single"]["id"]
    assert call(client, "xmlSubscribe.aspx", List=L, Sms="00393331234567", Confirm=0) == 0
    with db.session() as s:
        sub = s.scalar(select(Subscription))
        assert sub.channel == "sms" and sub.status == "subscribed"
        assert s.scalar(select(Recipient.mobile)) == "+393331234567"
    assert call(client, "xmlChkSubscriber.aspx", List=L, Sms="+39 333 1234567") == 2


def test_unsubscribe_return_codes(client, db, lists):
    L = lists["single"]["id"]
    call(client, "xmlSubscribe.aspx", List=L, Email="u@example.com", Confirm=0)
    call(client, "xmlSubscribe.aspx", List=L, Email="pend@example.com", Confirm=1)
    assert (
        call(client, "xmlUnsubscribe.aspx", List=L, Email="u@example.com", ListGuid=lists["single"]["guid"])
        == 0
    )
    assert status_of(db, "u@example.com", L) == "unsubscribed"
    assert call(client, "xmlUnsubscribe.aspx", List=L, Email="u@example.com") == 3
    assert call(client, "xmlUnsubscribe.aspx", List=L, Email="nobody@example.com") == 3
    assert call(client, "xmlUnsubscribe.aspx", List=L, Email="pend@example.com") == 3
    assert call(client, "xmlUnsubscribe.aspx", List=999999, Email="u@example.com") == 1
    assert call(client, "xmlUnsubscribe.aspx", List=L, Email="u@example.com", ListGuid="bad") == 1
    with db.session() as s:
        ev = s.scalar(select(AudienceEvent).where(AudienceEvent.type == "subscription.unsubscribed"))
        assert (ev.source, ev.reason) == ("api", "api")


def test_check_return_codes(client, lists):
    L = lists["single"]["id"]
    call(client, "xmlSubscribe.aspx", List=L, Email="s@example.com", Confirm=0)
    call(client, "xmlSubscribe.aspx", List=L, Email="p@example.com", Confirm=1)
    call(client, "xmlSubscribe.aspx", List=L, Email="o@example.com", Confirm=0)
    call(client, "xmlUnsubscribe.aspx", List=L, Email="o@example.com")
    assert call(client, "xmlChkSubscriber.aspx", List=L, Email="s@example.com") == 2
    assert call(client, "xmlChkSubscriber.aspx", List=L, Email="o@example.com") == 3
    assert call(client, "xmlChkSubscriber.aspx", List=L, Email="p@example.com") == 4
    assert call(client, "xmlChkSubscriber.aspx", List=L, Email="nobody@example.com") == 1
    assert call(client, "xmlChkSubscriber.aspx", List=L, Email="garbage") == 1
    # Magento's "test console URL": a fake GUID and list 1 must answer exactly 1.
    assert (
        call(
            client,
            "Xmlchksubscriber.aspx",
            List=1,
            ListGuid="00000000-0000-0000-0000-000000000000",
            Email="test@example.com",
        )
        == 1
    )


def test_update_return_codes(client, db, lists):
    L, G = lists["single"]["id"], lists["group"]["id"]
    call(client, "xmlSubscribe.aspx", List=L, Email="up@example.com", Confirm=0)
    assert (
        call(
            client,
            "xmlUpdSubscriber.aspx",
            List=L,
            Email="up@example.com",
            csvFldNames="campo1;campo3",
            csvFldValues="Ugo;ACME",
            Group=G,
            Replace="true",
        )
        == 0
    )
    with db.session() as s:
        assert s.scalar(select(Recipient.fields)) == {"1": "Ugo", "3": "ACME"}
    assert (
        call(
            client,
            "xmlUpdSubscriber.aspx",
            List=L,
            Email="up@example.com",
            csvFldNames="campo1;campo2",
            csvFldValues="a;b;c",
        )
        == 1
    )
    assert (
        call(
            client,
            "xmlUpdSubscriber.aspx",
            List=L,
            Email="up@example.com",
            csvFldNames="campo1",
            csvFldValues="x -- drop",
        )
        == 1
    )
    assert (
        call(
            client,
            "xmlUpdSubscriber.aspx",
            List=L,
            Email="notinlist@example.com",
            csvFldNames="campo1",
            csvFldValues="x",
        )
        == 1
    )
    assert (
        call(
            client,
            "xmlUpdSubscriber.aspx",
            List=L,
            Email="up@example.com",
            ListGuid="bad",
            csvFldNames="campo1",
            csvFldValues="x",
        )
        == 1
    )
    assert (
        call(
            client,
            "xmlUpdSubscriber.aspx",
            List=lists["double"]["id"],
            Email="up@example.com",
            csvFldNames="campo1",
            csvFldValues="x",
        )
        == 1
    )
    # Magento zeroes fields it owns.
    assert (
        call(
            client,
            "XmlUpdSubscriber.aspx",
            List=L,
            Email="up@example.com",
            csvFldNames="campo1;campo3",
            csvFldValues=";",
        )
        == 0
    )
    with db.session() as s:
        assert s.scalar(select(Recipient.fields)) == {}


@pytest.mark.parametrize(
    "page",
    [
        "xmlSubscribe.aspx",
        "Xmlsubscribe.aspx",
        "xmlsubscribe.aspx",
        "XMLSUBSCRIBE.ASPX",
        "xmlSubscribe.xml",
        "xmlSubscribe",
    ],
)
def test_page_names_are_case_insensitive_with_aspx_or_xml(client, db, lists, page):
    assert call(client, page, List=lists["single"]["id"], Email="case@example.com", Confirm=0) == 0


def test_double_slash_and_capitalised_frontend_path(client, lists):
    r = client.get(
        f"http://testserver//frontend/xmlChkSubscriber.aspx?List={lists['single']['id']}&Email=a@example.com"
    )
    assert r.status_code == 200 and r.text == "1\r\n"
    r = client.get(f"/Frontend/xmlChkSubscriber.aspx?List={lists['single']['id']}&Email=a@example.com")
    assert r.status_code == 200 and r.text == "1\r\n"


def test_parameter_names_are_case_insensitive_and_empty_values_ignored(client, db, lists):
    L = lists["single"]["id"]
    r = client.get(
        f"/frontend/xmlSubscribe.aspx?list={L}&EMAIL=pc@example.com&CONFIRM=0&sms=&group=&ListGuid="
    )
    assert r.text == "0\r\n"
    assert status_of(db, "pc@example.com", L) == "subscribed"


def test_post_variants_all_work(client, db, lists):
    L = lists["single"]["id"]
    # POST with parameters only in the query string (WooCommerce, Statamic).
    r = client.post(f"/frontend/xmlSubscribe.aspx?List={L}&Email=q1@example.com&Confirm=0")
    assert r.text == "0\r\n"
    # POST urlencoded body (Django).
    r = client.post(
        "/frontend/xmlSubscribe.aspx", data={"List": L, "Email": "q2@example.com", "Confirm": "0"}
    )
    assert r.text == "0\r\n"
    # POST multipart/form-data (PHP array to curl).
    r = client.post(
        "/frontend/xmlSubscribe.aspx",
        files={"List": (None, str(L)), "Email": (None, "q3@example.com"), "Confirm": (None, "0")},
    )
    assert r.text == "0\r\n"
    # POST a raw body never URL-encoded: spaces, & and UTF-8 as typed (WordPress plugin).
    raw = (
        f"List={L}&Email=q4@example.com&Confirm=0&csvFldNames=campo1;campo3&csvFldValues=Nicolò;Ben & Jerry's"
    ).encode()
    r = client.post(
        "/frontend/xmlSubscribe.aspx",
        content=raw,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.text == "0\r\n"
    with db.session() as s:
        fields = s.scalar(select(Recipient.fields).where(Recipient.email == "q4@example.com"))
    assert fields == {"1": "Nicolò", "3": "Ben & Jerry's"}
    # Query and body merge.
    r = client.post(f"/frontend/xmlSubscribe.aspx?List={L}", data={"Email": "q5@example.com", "Confirm": "0"})
    assert r.text == "0\r\n"
    assert all(status_of(db, f"q{i}@example.com", L) == "subscribed" for i in range(1, 6))


def test_get_without_parameters_answers_200(client):
    r = client.get("/frontend/xmlSubscribe.aspx", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.text == "1\r\n"
    assert client.get("/frontend/NoSuchPage.aspx").status_code == 404


def test_unregistered_ip_gets_minus_1011_and_nothing_changes(app, db, lists):
    L = lists["single"]["id"]
    with TestClient(app, client=("198.51.100.7", 5000)) as outsider:
        for page in (
            "xmlSubscribe.aspx",
            "xmlUnsubscribe.aspx",
            "xmlChkSubscriber.aspx",
            "xmlUpdSubscriber.aspx",
        ):
            r = outsider.get(f"/frontend/{page}", params={"List": L, "Email": "ip@example.com", "Confirm": 0})
            assert r.status_code == 200 and r.text == "-1011\r\n", page
    assert count(db, Recipient) == 0


def test_allowlist_managed_by_api_opens_the_door(app, client, account, db, lists):
    r = client.post(
        "/api/v1/allowed-ips", json={"network": "198.51.100.0/24", "note": "CRM"}, headers=account["headers"]
    )
    assert r.status_code == 201
    with TestClient(app, client=("198.51.100.7", 5000)) as crm:
        r = crm.get(
            "/frontend/xmlSubscribe.aspx",
            params={"List": lists["single"]["id"], "Email": "crm@example.com", "Confirm": 0},
        )
    assert r.text == "0\r\n"
    networks = [e["network"] for e in client.get("/api/v1/allowed-ips", headers=account["headers"]).json()]
    assert networks == ["127.0.0.0/8", "::1/128", "198.51.100.0/24"]


def test_console_host_selects_the_account(app, db, lists, account, other_account):
    """A list id of account A called on B's console host is not found: the host decides."""
    from missiva.tenancy.models import Account

    with db.session() as s:
        s.get(Account, other_account["id"]).host = "b.console.test"
    with TestClient(app, client=("127.0.0.1", 1), base_url="http://b.console.test") as c:
        r = c.get(
            "/frontend/xmlSubscribe.aspx", params={"List": lists["single"]["id"], "Email": "h@example.com"}
        )
    assert r.text == "1\r\n"
    assert count(db, Recipient) == 0


def test_ws_activation_registers_the_callers_ip(app, client, account, db, lists):
    def activate(c, **params):
        r = c.get("/frontend/WSActivation.aspx", params=params)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
        import xml.etree.ElementTree as ET

        return int(ET.fromstring(r.text).find("mailupBody/ReturnCode").text)  # noqa: S314

    good = {
        "usr": account["ws_username"],
        "pwd": account["ws_password"],
        "nl_url": "console.test",
        "ws_name": "WSMailupImport",
    }
    assert activate(client) == -30
    assert activate(client, usr="x", pwd="y") == -18
    assert activate(client, **{**good, "pwd": "wrong"}) == -1002
    assert activate(client, **{**good, "usr": "a999999"}) == -1001
    assert activate(client, **good) == -1008  # 127.0.0.1 is already allowed
    with TestClient(app, client=("192.0.2.44", 5000)) as remote:
        assert activate(remote, **good) == 0
        r = remote.get(
            "/frontend/xmlSubscribe.aspx",
            params={"List": lists["single"]["id"], "Email": "w@example.com", "Confirm": 0},
        )
        assert r.text == "0\r\n"
