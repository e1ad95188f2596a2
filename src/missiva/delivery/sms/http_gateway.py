"""A generic HTTP SMS gateway, configured rather than coded: URL template, method, auth, response mapping.

Most SMS aggregators take one HTTP request per message and answer with an id. The settings describe
that request (placeholders ``{to}``, ``{from}``, ``{text}``, ``{ref}`` in the URL and in a form or JSON
body) and how to read the answer (which statuses mean accepted, where the message id is). Outcomes
follow :mod:`missiva.delivery.sms.transport`: a refused connection is :class:`NotSent`, a request
that went out without a usable answer is :class:`Uncertain`, a 4xx is :class:`Rejected`.

:func:`parse_callback` reads the gateway's inbound callback (an MO message or a delivery report)
from its query or form parameters, with configurable parameter names.
"""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

from missiva.delivery.sms.encoding import analyse
from missiva.delivery.sms.events import InboundSms, Receipt, ReceiptState
from missiva.delivery.sms.transport import NotSent, Rejected, SubmitResult, Uncertain

PLACEHOLDERS = frozenset({"to", "from", "text", "ref"})


class GatewayConfigError(ValueError):
    """The gateway settings cannot work (unknown placeholder, body with GET, bad regex...)."""


class CallbackError(ValueError):
    """An inbound callback that is neither a delivery report nor an MO message."""


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP Basic credentials."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class BearerAuth:
    """``Authorization: Bearer <token>``."""

    token: str


@dataclass(frozen=True, slots=True)
class HeaderAuth:
    """An API key in a header of the gateway's choosing (``X-Api-Key: ...``)."""

    header: str
    value: str


Auth = BasicAuth | BearerAuth | HeaderAuth
JsonTemplate = str | int | float | bool | None | list["JsonTemplate"] | dict[str, "JsonTemplate"]


@dataclass(frozen=True)
class HttpGatewaySettings:
    """How to talk to one gateway.

    ``body_template`` maps form fields (``body="form"``) or describes the JSON document
    (``body="json"``); string leaves may hold placeholders. ``retry_statuses`` are answers that
    promise the message was not taken (429, 503 by default): they raise NotSent. The message id is
    read from the JSON answer at ``message_id_path`` (dotted, list indexes as numbers:
    ``messages.0.id``) or by the first group of ``message_id_regex`` over the body.
    """

    url_template: str
    method: Literal["GET", "POST"] = "POST"
    body: Literal["none", "form", "json"] = "none"
    body_template: Mapping[str, JsonTemplate] | None = None
    auth: Auth | None = None
    success_statuses: frozenset[int] = frozenset({200, 201, 202})
    retry_statuses: frozenset[int] = frozenset({429, 503})
    message_id_path: str | None = None
    message_id_regex: str | None = None
    timeout: float = 10.0
    name: str = "http"
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in ("GET", "POST"):
            raise GatewayConfigError(f"method must be GET or POST, got {self.method!r}")
        if self.body not in ("none", "form", "json"):
            raise GatewayConfigError(f"body must be none, form or json, got {self.body!r}")
        if self.method == "GET" and self.body != "none":
            raise GatewayConfigError("a GET request carries no body: use body='none' and URL placeholders")
        if self.body != "none" and not self.body_template:
            raise GatewayConfigError(f"body={self.body!r} needs a body_template")
        _check_template(self.url_template, "url_template")
        for leaf in _leaves(self.body_template or {}):
            _check_template(leaf, "body_template")
        if self.message_id_regex is not None:
            try:
                re.compile(self.message_id_regex)
            except re.error as exc:
                raise GatewayConfigError(f"message_id_regex: {exc}") from exc


def _check_template(template: str, where: str) -> None:
    """Only bare known placeholders: ``{to.__class__}`` or ``{text!r}`` would leak or mislead."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise GatewayConfigError(f"{where}: {exc}") from exc
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise GatewayConfigError(
                f"{where}: placeholder {{{name}}} not allowed; use {', '.join(sorted(PLACEHOLDERS))}"
            )


def _leaves(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, Mapping):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _leaves(value)]
    return []


def render(template: str, values: Mapping[str, str], escape: bool = False) -> str:
    """Fill placeholders; with ``escape`` every value is percent-encoded (for URLs)."""
    out: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(quote(values[name], safe="") if escape else values[name])
    return "".join(out)


def _render_tree(node: JsonTemplate, values: Mapping[str, str]) -> JsonTemplate:
    if isinstance(node, str):
        return render(node, values)
    if isinstance(node, dict):
        return {key: _render_tree(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_render_tree(value, values) for value in node]
    return node


def _json_path(document: Any, path: str) -> Any:
    for step in path.split("."):
        if isinstance(document, list) and step.isdigit() and int(step) < len(document):
            document = document[int(step)]
        elif isinstance(document, dict) and step in document:
            document = document[step]
        else:
            raise KeyError(step)
    return document


class HttpGateway:
    """An :class:`~missiva.delivery.sms.transport.SmsTransport` over a generic HTTP API."""

    def __init__(self, settings: HttpGatewaySettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._client = client or httpx.AsyncClient(timeout=settings.timeout)
        self._owns_client = client is None

    @property
    def name(self) -> str:
        """Transport name recorded with results and events."""
        return self.settings.name

    async def __aenter__(self) -> HttpGateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (only when this gateway created it)."""
        if self._owns_client:
            await self._client.aclose()

    def build_request(self, msg_ref: str, dest: str, source: str, text: str) -> httpx.Request:
        """The request that would be sent; useful to show an operator what a template produces."""
        settings = self.settings
        values = {"to": dest, "from": source, "text": text, "ref": msg_ref}
        headers = dict(settings.headers)
        auth = settings.auth
        if isinstance(auth, BearerAuth):
            headers["Authorization"] = f"Bearer {auth.token}"
        elif isinstance(auth, HeaderAuth):
            headers[auth.header] = auth.value
        elif isinstance(auth, BasicAuth):
            credentials = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
            headers["Authorization"] = f"Basic {credentials}"
        url = render(settings.url_template, values, escape=True)
        template = dict(settings.body_template or {})
        if settings.body == "form":
            form = {key: str(_render_tree(value, values)) for key, value in template.items()}
            return self._client.build_request(settings.method, url, data=form, headers=headers)
        if settings.body == "json":
            return self._client.build_request(
                settings.method, url, json=_render_tree(template, values), headers=headers
            )
        return self._client.build_request(settings.method, url, headers=headers)

    async def submit(self, msg_ref: str, dest: str, source: str, text: str) -> SubmitResult:
        """Send one SMS through the gateway; see the module docstring for the outcomes."""
        analysis = analyse(text)
        request = self.build_request(msg_ref, dest, source, text)
        try:
            response = await self._client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(msg_ref, f"gateway unreachable: {exc!r}") from None
        except httpx.TransportError as exc:
            raise Uncertain(msg_ref, f"request sent, no answer: {exc!r}") from None
        status = response.status_code
        if status in self.settings.success_statuses:
            message_id = self._message_id(msg_ref, response)
            ids = [message_id] if message_id is not None else []
            return SubmitResult(msg_ref, ids, analysis.segments, analysis.encoding, self.name)
        if status in self.settings.retry_statuses:
            raise NotSent(msg_ref, f"gateway busy (HTTP {status})")
        if status >= 500:
            raise Uncertain(msg_ref, f"gateway failed after receiving the request (HTTP {status})")
        raise Rejected(msg_ref, status, response.text[:200])

    def _message_id(self, msg_ref: str, response: httpx.Response) -> str | None:
        settings = self.settings
        if settings.message_id_path:
            try:
                return str(_json_path(response.json(), settings.message_id_path))
            except (json.JSONDecodeError, KeyError) as exc:
                raise Uncertain(
                    msg_ref,
                    f"HTTP {response.status_code} but no message id at {settings.message_id_path!r}: {exc}",
                ) from None
        if settings.message_id_regex:
            match = re.search(settings.message_id_regex, response.text)
            if match is None:
                raise Uncertain(
                    msg_ref, f"HTTP {response.status_code} but {settings.message_id_regex!r} does not match"
                )
            return match.group(1) if match.groups() else match.group(0)
        return None


#: Status words of common gateways' delivery reports, lower-cased.
DEFAULT_STATUS_MAP: Mapping[str, ReceiptState] = {
    "delivered": ReceiptState.DELIVERED,
    "delivrd": ReceiptState.DELIVERED,
    "expired": ReceiptState.EXPIRED,
    "undelivered": ReceiptState.UNDELIVERABLE,
    "undeliv": ReceiptState.UNDELIVERABLE,
    "undeliverable": ReceiptState.UNDELIVERABLE,
    "failed": ReceiptState.UNDELIVERABLE,
    "rejected": ReceiptState.REJECTED,
    "rejectd": ReceiptState.REJECTED,
}


@dataclass(frozen=True)
class CallbackFields:
    """Parameter names of a gateway's callback; a report has message id and status, an MO has text."""

    source: str = "from"
    dest: str = "to"
    text: str = "text"
    message_id: str = "id"
    status: str = "status"
    err: str = "err"
    status_map: Mapping[str, ReceiptState] = field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))


def parse_callback(
    params: Mapping[str, object], fields: CallbackFields | None = None, transport: str = "http"
) -> InboundSms | Receipt:
    """Read one inbound callback (query, form or flat JSON parameters) as a receipt or an MO message."""
    fields = fields or CallbackFields()

    def value(name: str) -> str | None:
        found = params.get(name)
        return None if found is None else str(found)

    message_id, status = value(fields.message_id), value(fields.status)
    if message_id and status:
        state = fields.status_map.get(status.lower(), ReceiptState.UNKNOWN)
        return Receipt(
            message_id=message_id,
            state=state,
            err=value(fields.err),
            recipient=value(fields.source) or value(fields.dest) or "",
            raw_status=status,
            transport=transport,
        )
    text, source = value(fields.text), value(fields.source)
    if text is not None and source:
        return InboundSms(source=source, dest=value(fields.dest) or "", text=text, transport=transport)
    raise CallbackError(
        f"callback has neither {fields.message_id!r}+{fields.status!r} (delivery report) "
        f"nor {fields.source!r}+{fields.text!r} (inbound message); got {sorted(params)}"
    )
