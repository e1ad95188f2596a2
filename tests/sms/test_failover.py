"""Failover across real transports: an HTTP gateway and the SMPP simulator."""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from missiva.delivery.sms.failover import FailoverTransport, Route
from missiva.delivery.sms.http_gateway import HttpGateway, HttpGatewaySettings
from missiva.delivery.sms.smpp.client import SmppClient, SmppSettings
from missiva.delivery.sms.transport import NotSent, Rejected, SubmitResult, Uncertain

if TYPE_CHECKING:
    from .conftest import GatewayServer, PeerProcess

pytestmark = pytest.mark.anyio


def smpp(peer: PeerProcess) -> SmppClient:
    return SmppClient(SmppSettings("127.0.0.1", peer.port, "missiva", "secret", name="smpp"))


def gateway(url: str, timeout: float = 0.2) -> HttpGateway:
    """A gateway client; the short default lets `/slow` time out, a loaded machine needs `timeout`."""
    return HttpGateway(
        HttpGatewaySettings(url_template=url, message_id_path="id", timeout=timeout, name="http")
    )


async def test_message_not_taken_by_the_first_route_goes_through_the_next(
    smpp_peer: PeerProcess, closed_port: int
) -> None:
    async with gateway(f"http://127.0.0.1:{closed_port}/send") as down, smpp(smpp_peer) as backup:
        routes = FailoverTransport([Route(backup, priority=1), Route(down, priority=0)])
        result = await routes.submit("f-1", "+393331234567", "Missiva", "Hello")

    assert result.transport == "smpp"
    assert [r["text"] for r in smpp_peer.records()] == ["Hello"]


@pytest.mark.parametrize(("path", "outcome"), [("/slow", Uncertain), ("/bad", Rejected)])
async def test_uncertain_or_rejected_is_never_tried_on_another_route(
    smpp_peer: PeerProcess, http_gateway_server: GatewayServer, path: str, outcome: type[Exception]
) -> None:
    async with gateway(http_gateway_server.base_url + path) as first, smpp(smpp_peer) as backup:
        routes = FailoverTransport([Route(first, priority=0), Route(backup, priority=1)])
        with pytest.raises(outcome):
            await routes.submit("f-2", "+393331234567", "Missiva", "Hello")

    assert len(http_gateway_server.requests) == 1
    assert smpp_peer.records() == []


async def test_not_sent_anywhere_names_every_route(
    http_gateway_server: GatewayServer, closed_port: int
) -> None:
    async with (
        gateway(f"http://127.0.0.1:{closed_port}/x") as down,
        gateway(http_gateway_server.base_url + "/busy", timeout=10.0) as busy,
    ):
        routes = FailoverTransport([Route(down), Route(busy)], rng=random.Random(1))
        with pytest.raises(NotSent, match="HTTP 503") as caught:
            await routes.submit("f-3", "+393331234567", "Missiva", "Hello")
    assert "unreachable" in caught.value.reason


class Named:
    """A transport that is only ordered, never asked to send."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def submit(self, msg_ref: str, dest: str, source: str, text: str) -> SubmitResult:
        raise NotSent(msg_ref, "not used")


def test_weights_share_first_choice_among_equal_priorities() -> None:
    heavy, light, fallback = Named("heavy"), Named("light"), Named("fallback")
    routes = FailoverTransport(
        [Route(fallback, priority=5), Route(heavy, weight=3), Route(light, weight=1)], rng=random.Random(7)
    )
    orders = [routes.order() for _ in range(4000)]
    first = Counter(id(order[0]) for order in orders)

    assert all(order[-1] is fallback for order in orders)
    assert 0.72 < first[id(heavy)] / 4000 < 0.78
    with pytest.raises(ValueError, match="weight"):
        FailoverTransport([Route(heavy, weight=0)])
