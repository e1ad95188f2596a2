"""The generic HTTP gateway adapter against a real HTTP server playing an SMS aggregator."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import pytest

from missiva.delivery.sms.events import InboundSms, Receipt, ReceiptState
from missiva.delivery.sms.http_gateway import (
    BasicAuth,
    BearerAuth,
    CallbackError,
    CallbackFields,
    GatewayConfigError,
    HeaderAuth,
    HttpGateway,
    HttpGatewaySettings,
    parse_callback,
)
from missiva.delivery.sms.keywords import is_stop
from missiva.delivery.sms.transport import NotSent, Rejected, Uncertain

if TYPE_CHECKING:
    from .conftest import GatewayServer

pytestmark = pytest.mark.anyio

TEXT = 'Saldi -50% & "spedizione" gratis 🎉 fino a domenica'


async def test_json_post_with_bearer_token_returns_the_gateway_message_id(
    http_gateway_server: GatewayServer,
) -> None:
    settings = HttpGatewaySettings(
        url_template=http_gateway_server.base_url + "/api/send",
        body="json",
        body_template={"to": ["{to}"], "sender": "{from}", "message": {"text": "{text}", "ref": "{ref}"}},
        auth=BearerAuth("tok-123"),
        message_id_path="messages.0.id",
        name="acme-json",
    )
    async with HttpGateway(settings) as gateway:
        result = await gateway.submit("m-1", "+393331234567", "Missiva", TEXT)

    [request] = http_gateway_server.requests
    assert json.loads(str(request["body"])) == {
        "to": ["+393331234567"],
        "sender": "Missiva",
        "message": {"text": TEXT, "ref": "m-1"},
    }
    assert result.message_ids == ["gw-1"]
    assert (result.encoding, result.segments, result.transport) == ("ucs2", 1, "acme-json")


async def test_get_with_url_template_and_basic_auth_reads_the_id_by_regex(
    http_gateway_server: GatewayServer,
) -> None:
    settings = HttpGatewaySettings(
        url_template=http_gateway_server.base_url + "/send.php?dst={to}&src={from}&msg={text}&cid={ref}",
        method="GET",
        auth=BasicAuth("acme", "pw"),
        message_id_regex=r"OK id=(\S+)",
    )
    async with HttpGateway(settings) as gateway:
        result = await gateway.submit("a&b=c", "+393331234567", "Missiva", TEXT)

    [request] = http_gateway_server.requests
    # Placeholders are percent-encoded: "&", "=", quotes and the emoji arrive intact.
    assert request["query"] == {"dst": "+393331234567", "src": "Missiva", "msg": TEXT, "cid": "a&b=c"}
    assert result.message_ids == ["txt-1"]


async def test_form_post_with_api_key_header(http_gateway_server: GatewayServer) -> None:
    settings = HttpGatewaySettings(
        url_template=http_gateway_server.base_url + "/form",
        body="form",
        body_template={"number": "{to}", "body": "{text}", "originator": "{from}"},
        auth=HeaderAuth("X-Api-Key", "k-1"),
        message_id_path="data.id",
    )
    async with HttpGateway(settings) as gateway:
        result = await gateway.submit("m-3", "+393331234567", "4321", "Ciao")

    [request] = http_gateway_server.requests
    assert dict(parse_qsl(str(request["body"]))) == {
        "number": "+393331234567",
        "body": "Ciao",
        "originator": "4321",
    }
    assert result.message_ids == ["f-1"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/busy", NotSent), ("/bad", Rejected), ("/noid", Uncertain), ("/slow", Uncertain)],
)
async def test_gateway_answers_map_to_the_submit_contract(
    http_gateway_server: GatewayServer, path: str, expected: type[Exception]
) -> None:
    # Only /slow must time out; the others get time enough for a loaded machine.
    settings = HttpGatewaySettings(
        url_template=http_gateway_server.base_url + path,
        message_id_path="id",
        timeout=0.2 if path == "/slow" else 10.0,
    )
    async with HttpGateway(settings) as gateway:
        with pytest.raises(expected) as caught:
            await gateway.submit("m-4", "+393331234567", "Missiva", "Hello")
    if isinstance(caught.value, Rejected):
        assert (caught.value.command_status, caught.value.detail) == (400, "invalid destination")


async def test_wrong_credentials_are_rejected_not_retried(http_gateway_server: GatewayServer) -> None:
    settings = HttpGatewaySettings(
        url_template=http_gateway_server.base_url + "/api/send",
        auth=BearerAuth("stale"),
        message_id_path="id",
    )
    async with HttpGateway(settings) as gateway:
        with pytest.raises(Rejected) as caught:
            await gateway.submit("m-5", "+393331234567", "Missiva", "Hello")
    assert caught.value.command_status == 401


async def test_unreachable_gateway_is_not_sent(closed_port: int) -> None:
    async with HttpGateway(
        HttpGatewaySettings(url_template=f"http://127.0.0.1:{closed_port}/send")
    ) as gateway:
        with pytest.raises(NotSent):
            await gateway.submit("m-6", "+393331234567", "Missiva", "Hello")


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"url_template": "http://gw/send?to={to.__class__}"}, "placeholder"),
        ({"url_template": "http://gw/send?to={phone}"}, "placeholder"),
        (
            {"url_template": "http://gw/send", "body": "json", "body_template": {"t": "{text!r}"}},
            "placeholder",
        ),
        (
            {"url_template": "http://gw/send", "method": "GET", "body": "form", "body_template": {"a": "b"}},
            "GET",
        ),
        ({"url_template": "http://gw/send", "body": "json"}, "body_template"),
        ({"url_template": "http://gw/send", "message_id_regex": "(unclosed"}, "message_id_regex"),
    ],
)
def test_unworkable_settings_are_refused_with_the_reason(kwargs: dict[str, object], complaint: str) -> None:
    with pytest.raises(GatewayConfigError, match=complaint):
        HttpGatewaySettings(**kwargs)  # type: ignore[arg-type]


def test_inbound_callback_reads_delivery_reports_and_stop_replies() -> None:
    fields = CallbackFields(source="msisdn", dest="shortcode", text="body", message_id="msgid", status="dlr")
    report = parse_callback(dict(parse_qsl("msgid=gw-1&dlr=UNDELIVERED&err=34&msisdn=393331234567")), fields)
    reply = parse_callback(dict(parse_qsl("msisdn=393331234567&shortcode=4321&body=Stop%21")), fields)

    assert report == Receipt("gw-1", ReceiptState.UNDELIVERABLE, "34", "393331234567", "UNDELIVERED", "http")
    assert isinstance(reply, InboundSms) and reply.source == "393331234567" and is_stop(reply.text)
    with pytest.raises(CallbackError, match="msgid"):
        parse_callback({"foo": "bar"}, fields)
