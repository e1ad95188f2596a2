"""A relay's message rate (``#rate=`` in MISSIVA_SMTP_URL) is honoured by the pool, against a real server."""

from __future__ import annotations

import asyncio

import pytest

from missiva.delivery.configuration import parse_relays
from missiva.delivery.smtp import RelayConfigError, SendStatus, SmtpPool

from .conftest import SmtpServer
from .test_delivery import job


def test_rate_is_read_from_the_relay_options_in_any_unit() -> None:
    relays = parse_relays("smtp://a.example.com#rate=120/m, smtp://b.example.com#rate=5/s&max=2, smtp://c")

    assert [relay.rate for relay in relays] == [2.0, 5.0, None]
    assert parse_relays("smtp://a.example.com#rate=36000/h")[0].rate == 10.0


@pytest.mark.parametrize("rate", ["fast", "10", "0/s", "-3/m", "10/day"])
def test_an_unusable_rate_is_refused_naming_the_relay_and_the_format(rate: str) -> None:
    with pytest.raises(RelayConfigError, match=r"relay 'smtp://a\.example\.com'.*rate"):
        parse_relays(f"smtp://a.example.com#rate={rate}")


def test_messages_to_a_rate_limited_relay_are_spread_over_time_across_all_sessions(
    smtp_server: SmtpServer,
) -> None:
    (relay,) = parse_relays(f"{smtp_server.url()}#rate=20/s&max=4")
    jobs = [job(i) for i in range(30)]

    async def run() -> list[SendStatus]:
        async with SmtpPool([relay]) as pool:
            return [result.status async for _, result in pool.send_stream(jobs)]

    statuses = asyncio.run(run())

    assert statuses == [SendStatus.SENT] * 30
    arrivals = sorted(message.at for message in smtp_server.handler.received)
    assert len(arrivals) == 30
    assert smtp_server.handler.sessions > 1  # the limit holds for the relay, not per session
    # 20/s with a burst of 2: the last of 30 messages cannot arrive before (30 - 2) / 20 = 1.4 s after
    # the first (a lower bound only, which a slow machine cannot break; 0.2 s off for network jitter).
    assert arrivals[-1] - arrivals[0] >= 1.2


def test_single_sends_take_their_slot_of_the_relay_rate_too(smtp_server: SmtpServer) -> None:
    (relay,) = parse_relays(f"{smtp_server.url()}#rate=10/s")
    pool = SmtpPool([relay])

    async def run() -> list[SendStatus]:
        async with pool:
            sends = [pool.send(item.envelope_from, item.recipient, item.data) for item in map(job, range(6))]
            return [result.status for result in await asyncio.gather(*sends)]

    assert asyncio.run(run()) == [SendStatus.SENT] * 6
    arrivals = sorted(message.at for message in smtp_server.handler.received)
    assert arrivals[-1] - arrivals[0] >= 0.4  # 6 messages at 10/s with a burst of 1: 0.5 s, less jitter
