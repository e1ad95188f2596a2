"""Fixtures for the sending tests: a recording SMTP server on 127.0.0.1, https settings, audiences."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from missiva import runtime
from missiva.audience import lists, subscriptions
from missiva.config import Settings
from missiva.delivery import configuration, mailings
from missiva.delivery.smtp import Relay
from missiva.messages import service as messages
from tests.conftest import make_account
from tests.smtp.conftest import ScriptedHandler, SmtpServer, free_port

HARD = "550 5.1.1 <{}>: Recipient address rejected: User unknown"


@dataclasses.dataclass
class SinkHandler(ScriptedHandler):
    """ScriptedHandler that can also answer 451 to an address for its first N attempts."""

    transient: dict[str, int] = dataclasses.field(default_factory=dict)

    def reset(self) -> None:
        super().reset()
        self.transient.clear()

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self.transient.get(address, 0) > 0:
            self.transient[address] -= 1
            return "451 4.7.1 Greylisted, try again later"
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.fixture(scope="session")
def _sink_server() -> Iterator[SmtpServer]:
    handler = SinkHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(port, handler)
    controller.stop()


@pytest.fixture
def sink(_sink_server: SmtpServer) -> SmtpServer:
    """aiosmtpd recording every message; `sink.handler.rcpt_replies[address] = "550 ..."` scripts replies."""
    _sink_server.handler.reset()
    return _sink_server


@pytest.fixture
def sending(settings: Settings, sink: SmtpServer) -> Iterator[configuration.SendingConfig]:
    """https base URL, the sink as the only relay, small chunks and fast retries."""
    runtime.configure(dataclasses.replace(settings, base_url="https://missiva.test"))
    config = configuration.SendingConfig(
        sending_domain="news.example.com",
        bounce_domain="bounces.example.com",
        relays=(Relay(sink.url(), max_connections=4),),
        chunk=20,
        retry_base=0.05,
        max_attempts=3,
    )
    configuration.configure(config)
    yield config
    configuration.configure(None)


def received_to(sink: SmtpServer) -> list[str]:
    """Every RCPT that received a message, in arrival order (repeats kept)."""
    return [rcpt for message in sink.handler.received for rcpt in message.rcpt_tos]


def subscribe_many(db, account_id: int, list_id: int, emails: list[str], **kwargs: Any) -> None:
    """Subscribe addresses at once (single opt-in)."""
    with db.session() as session:
        for email in emails:
            subscriptions.subscribe(session, account_id, list_id, email=email, double_opt_in=False, **kwargs)


def send_now(client, shop: dict[str, Any], html: str, subject: str = "News") -> int:
    """Create a message on the shop's list and start a mailing of it to the whole list; its id."""
    message = client.post(
        f"/api/v1/lists/{shop['list_id']}/messages",
        headers=shop["headers"],
        json={"subject": subject, "html": html},
    )
    assert message.status_code == 201, message.text
    started = client.post(
        "/api/v1/mailings", headers=shop["headers"], json={"message_id": message.json()["id"], "start": True}
    )
    assert started.status_code == 201, started.text
    return started.json()["id"]


@pytest.fixture
def shop(db, sending) -> dict[str, Any]:
    """An account with a list that has a sender address."""
    acct = make_account(db, "Shop S")
    with db.session() as session:
        lists.ensure_default_fields(session, acct["id"])
        lst = lists.create_list(
            session, acct["id"], "News", sender_email="news@shop.example", sender_name="Shop"
        )
        acct["list_id"] = lst.id
    return acct


@pytest.fixture
def no_sender_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a mailing queues no sender: the test runs one itself and looks at how the run ended."""
    monkeypatch.setattr(mailings, "_enqueue", None)


def started_mailing(db, shop: dict[str, Any], emails: list[str], **settings: int) -> int:
    """Subscribe `emails`, then create and start a mailing of a short text message to the list; its id."""
    subscribe_many(db, shop["id"], shop["list_id"], emails)
    with db.session() as session:
        message = messages.create(session, shop["id"], shop["list_id"], {"subject": "Hi", "text": "Hello"})
        mailing = mailings.create(session, shop["id"], {"message_id": message.id, **settings})
        mailings.start(session, shop["id"], mailing.id)
        return mailing.id
